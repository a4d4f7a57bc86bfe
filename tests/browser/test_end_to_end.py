"""Widget to console to ticket: a customer and an agent, each in their own browser."""

from __future__ import annotations

import json
import time

import pytest
from playwright.async_api import expect

from callcenter.chat.identity import sign
from callcenter.server import Server
from tests.browser.conftest import Pages, log_in, screenshot
from tests.conftest import ApiClient

SECRET = "site-secret"
CUSTOMER = '#cc-messages [data-from="customer"] .bubble'
AGENT = '#cc-messages [data-from="agent"] .bubble'


@pytest.mark.settings(chat={"identity_secret": SECRET})
async def test_widget_chat_reaches_the_console_and_becomes_a_ticket(
    server: Server, client: ApiClient, pages: Pages
) -> None:
    await client.login("super")
    queue = await client.post("/api/v1/queues", {"name": "chat", "wrapup_seconds": 60})
    assert queue.status == 201
    code = {"code": "resolved", "label_en": "Resolved", "label_zh": "已解决"}
    assert (await client.post("/api/v1/dispositions", code)).status == 201
    made = await client.post(
        "/api/v1/customers",
        {"name": "Zhou Wei 周伟", "account_number": "A-1001", "tier": "key"},
    )
    assert made.status == 201

    console = await pages.open("/console/")
    await log_in(console, "agent")
    await console.select_option("#presence", "available")
    await expect(console.locator("#presence")).to_have_attribute("data-presence", "available")

    # The company's site vouches for its logged-in customer with a signed token.
    widget = await pages.open("/widget/")
    token = sign(SECRET, {"sub": "A-1001", "name": "Zhou Wei 周伟", "exp": time.time() + 600})
    await widget.wait_for_function("() => window.CCWidget !== undefined")
    await widget.evaluate(f"window.CCWidget.identify({json.dumps(token)})")
    await widget.click("#cc-launcher")
    await widget.fill("#cc-name", "Zhou Wei 周伟")
    await widget.fill("#cc-message", "My fibre box shows a red light")
    await widget.click("#cc-start")

    await expect(console.locator("#offer")).to_be_visible()
    await expect(console.locator("#offer")).to_contain_text("Zhou Wei 周伟")
    await expect(console.locator("#pop .customer-name")).to_have_text("Zhou Wei 周伟")
    await expect(console.locator("#pop .badge.tier-key")).to_have_text("Key customer")
    await expect(console.locator("#pop")).to_contain_text("Verified")
    await console.click("#accept")

    await console.fill("#composer-input", "Let me check the line for you")
    await console.press("#composer-input", "Enter")
    await expect(widget.locator(AGENT)).to_have_text(["Let me check the line for you"])
    await widget.fill("#cc-input", "Thank you")
    await widget.press("#cc-input", "Enter")
    await expect(console.locator("#transcript .from-customer .message-text")).to_have_text(
        ["My fibre box shows a red light", "Thank you"]
    )
    await screenshot(widget, "e2e-widget")
    await screenshot(console, "e2e-console")

    await console.click("#end-chat")
    await expect(console.locator("#wrapup-form")).to_be_visible()
    await console.select_option("#disposition", "resolved")
    await console.fill("#ticket-subject", "Red light on fibre box")
    await console.select_option("#ticket-category", "fault")
    await console.click("#wrapup-submit")
    await expect(console.locator("#wrapup-form")).to_have_count(0)

    await console.click("#tab-tickets")
    row = console.locator("#ticket-results tr", has_text="Red light on fibre box")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        await console.fill("#ticket-search", "Red light")
        await console.click("#ticket-search-button")
        try:
            await expect(row).to_have_count(1, timeout=500)
            break
        except AssertionError:
            continue
    await expect(row).to_contain_text("Resolved")
