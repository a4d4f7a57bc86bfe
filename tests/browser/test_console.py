"""The agent console in Chromium: offer, screen pop, chat, wrap-up, tickets, reconnecting."""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from callcenter.chat.identity import sign
from callcenter.server import Server
from tests.browser.conftest import Pages, log_in, screenshot
from tests.conftest import ApiClient, add_user
from tests.tcp_proxy import TcpProxy
from tests.web.test_chat_flow import Socket

SECRET = "site-secret"


async def _setup(client: ApiClient) -> None:
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "chat", "wrapup_seconds": 120})
    assert made.status == 201, made.body
    code = await client.post(
        "/api/v1/dispositions", {"code": "resolved", "label_en": "Resolved", "label_zh": "已解决"}
    )
    assert code.status == 201
    canned = await client.post(
        "/api/v1/canned-responses",
        {"shortcut": "hi", "language": "en", "title": "Greeting", "body": "Hello, how can I help?"},
    )
    assert canned.status == 201, canned.body


async def _key_customer(client: ApiClient, name: str) -> str:
    made = await client.post(
        "/api/v1/customers",
        {
            "name": name,
            "account_number": "K-77",
            "tier": "key",
            "company": "Acme Ltd",
            "phones": ["+86 138 0013 8000"],
            "emails": ["li.na@acme.example"],
        },
    )
    assert made.status == 201, made.body
    return sign(SECRET, {"sub": "K-77", "name": name, "exp": time.time() + 600})


async def _customer(server: Server, http: aiohttp.ClientSession, **start: Any) -> Socket:
    ws = await http.ws_connect(server.url + "/ws/chat", headers={"Origin": server.url})
    customer = Socket(ws)
    await customer.send(type="start", **start)
    await customer.type("queued")
    return customer


async def _available(page: Page) -> None:
    await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    await page.select_option("#presence", "available")
    await expect(page.locator("#presence")).to_have_attribute("data-presence", "available")


@pytest.mark.settings(chat={"identity_secret": SECRET})
async def test_offer_pop_chat_wrapup_and_ticket(
    server: Server, client: ApiClient, pages: Pages
) -> None:
    await _setup(client)
    token = await _key_customer(client, "Li Na")
    page = await pages.open("/console/")
    await log_in(page, "agent")
    await _available(page)

    async with aiohttp.ClientSession() as http:
        customer = await _customer(
            server, http, name="Li Na", message="My invoice is wrong", identity_token=token
        )
        offer = page.locator("#offer")
        await expect(offer).to_be_visible()
        pop = page.locator("#pop")
        await expect(pop.locator(".customer-name")).to_have_text("Li Na")
        await expect(pop.locator(".badge.tier-key")).to_have_text("Key customer")
        await expect(pop).to_contain_text("Acme Ltd")
        await expect(pop).to_contain_text("+8613800138000")
        await expect(pop).to_contain_text("li.na@acme.example")
        await expect(pop).not_to_contain_text("[object Object]")
        await expect(page.locator("#transcript")).to_contain_text("My invoice is wrong")
        await expect(page.locator("#offer-countdown")).to_contain_text("s left")
        await screenshot(page, "console-offer")

        await page.click("#accept")
        await customer.type("agent_joined")
        composer = page.locator("#composer-input")
        await expect(composer).to_be_focused()
        # A canned response by its shortcut, then Enter sends it.
        await composer.press_sequentially("/hi ")
        await expect(composer).to_have_value("Hello, how can I help?")
        await composer.press("Enter")
        reply = await customer.type("message")
        assert reply["from"] == "agent" and reply["text"] == "Hello, how can I help?"
        await expect(composer).to_have_value("")

        await customer.send(type="typing")
        await expect(page.locator("#typing")).to_contain_text("Li Na is typing")
        await customer.send(type="message", text="Invoice 2026-11, please check")
        await expect(page.locator("#transcript .from-customer").last).to_have_text(
            re.compile("Invoice 2026-11, please check")
        )
        await screenshot(page, "console-chat")

        await customer.send(type="end")
        form = page.locator("#wrapup-form")
        await expect(form).to_be_visible()
        await expect(page.locator("#wrapup-countdown")).to_contain_text("left")
        # Finishing without a disposition is refused in the page.
        await page.click("#wrapup-submit")
        await expect(page.locator("#wrapup-error")).to_have_text("Choose a disposition.")
        await page.select_option("#disposition", "resolved")
        await page.fill("#wrapup-notes", "Checked invoice 2026-11")
        await page.fill("#ticket-subject", "Invoice 2026-11 query")
        await page.select_option("#ticket-category", "complaint")
        await page.select_option("#ticket-status", "open")
        await screenshot(page, "console-wrapup")
        await page.click("#wrapup-submit")
        await expect(page.locator("#wrapup-form")).to_have_count(0)

    # The ticket the wrap-up made is found by ticket search.
    await page.click("#tab-tickets")
    row = page.locator("#ticket-results tr", has_text="Invoice 2026-11 query")
    for _ in range(40):
        await page.fill("#ticket-search", "Invoice 2026-11")
        await page.click("#ticket-search-button")
        try:
            await expect(row).to_have_count(1, timeout=500)
            break
        except AssertionError:
            continue
    await expect(row).to_contain_text("Open")
    await row.locator("button").click()
    detail = page.locator("#ticket-detail")
    await expect(detail).to_contain_text("Complaint")
    await page.fill("#comment-body", "Refund requested from billing")
    await page.click("#comment-submit")
    await expect(detail.locator(".comment-text")).to_have_text(["Refund requested from billing"])
    await screenshot(page, "console-ticket")


async def test_customer_text_is_shown_as_text(
    server: Server, client: ApiClient, pages: Pages
) -> None:
    await _setup(client)
    page = await pages.open("/console/")
    await log_in(page, "agent")
    await _available(page)
    evil = "<img src=x onerror=alert(1)>"
    async with aiohttp.ClientSession() as http:
        await _customer(server, http, name=evil, message="<b>bold</b><script>alert(2)</script>")
        await expect(page.locator("#pop .customer-name")).to_have_text(evil)
        await expect(page.locator(".contact-name")).to_have_text(evil)
        await expect(page.locator("#transcript")).to_contain_text("<b>bold</b>")
        # Nothing the customer typed became markup (the pages fixture also
        # fails the test on any dialog an injected script would open).
        assert await page.locator("#app img, #app b, #app script").count() == 0


async def test_console_reconnects_and_shows_what_came_meanwhile(
    server: Server, client: ApiClient, pages: Pages
) -> None:
    await _setup(client)
    host, port = server.url.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        page = await pages.open_url(f"http://{host}:{proxy.port}/console/")
        await log_in(page, "agent")
        await _available(page)
        async with aiohttp.ClientSession() as http:
            customer = await _customer(server, http, name="Zhao", message="hello")
            await page.click("#accept")
            await customer.type("agent_joined")

            proxy.cut()
            await expect(page.locator("#connection")).not_to_have_attribute("data-state", "online")
            await customer.send(type="message", text="are you still there?")
            await page.wait_for_timeout(300)
            proxy.restore()

            await expect(page.locator("#connection")).to_have_attribute(
                "data-state", "online", timeout=15_000
            )
            await expect(page.locator("#transcript .from-customer")).to_have_text(
                [re.compile("hello"), re.compile("are you still there\\?")]
            )
            await page.fill("#composer-input", "yes, still here")
            await page.press("#composer-input", "Enter")
            assert (await customer.type("message"))["text"] == "yes, still here"
    finally:
        await proxy.close()


#: Words allowed in the Chinese console: data (names, the queue), and the
#: languages' own names in the switcher.
DATA_WORDS = {"agent", "chat", "English", "Wang"}


async def test_chinese_console_has_no_english_left(
    server: Server, client: ApiClient, pages: Pages
) -> None:
    await _setup(client)
    page = await pages.open("/console/", language="zh-CN")
    await expect(page.locator("#login-submit")).to_have_text("登录")
    await log_in(page, "agent")
    await _available(page)
    async with aiohttp.ClientSession() as http:
        customer = await _customer(server, http, name="Wang", message="你好")
        await expect(page.locator("#offer")).to_be_visible()
        await _no_english(page)
        await page.click("#accept")
        await customer.type("agent_joined")
        await customer.send(type="end")
        await expect(page.locator("#wrapup-form")).to_be_visible()
        await _no_english(page)
        await screenshot(page, "console-zh")
        await page.click("#tab-tickets")
        await expect(page.locator("#ticket-search-button")).to_have_text("搜索")
        await _no_english(page)
        await page.keyboard.press("Escape")  # out of the search field
        await page.keyboard.press("?")
        await expect(page.locator("#help")).to_be_visible()
        await _no_english(page, allowed={"Alt", "Shift", "Enter", "Esc"})


async def _no_english(page: Page, allowed: set[str] | None = None) -> None:
    text = await page.locator("body").inner_text()
    words = set(re.findall(r"[A-Za-z]{2,}", text)) - DATA_WORDS - (allowed or set())
    assert not words, f"untranslated: {sorted(words)}"


async def test_agents_see_who_else_has_a_ticket_open(
    server: Server, client: ApiClient, pages: Pages
) -> None:
    await add_user(server, "agent2", "agent")
    await client.login("super")
    made = await client.post(
        "/api/v1/tickets", {"subject": "Router keeps rebooting", "category": "fault"}
    )
    assert made.status == 201, made.body
    ticket_id = made.body["id"]
    first, second = await pages.open("/console/"), await pages.open("/console/")
    for page, name in ((first, "agent"), (second, "agent2")):
        await log_in(page, name)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
        await page.click("#tab-tickets")
        await page.locator(f'#ticket-results tr[data-ticket="{ticket_id}"] button').click()
        await expect(page.locator("#ticket-detail")).to_contain_text("Router keeps rebooting")
    await expect(first.locator("#ticket-viewers")).to_have_text("Also viewing: agent2")
    await expect(second.locator("#ticket-viewers")).to_have_text("Also viewing: agent")
    # Leaving the ticket (back to the conversations) clears it for the other.
    await second.click("#tab-contacts")
    await expect(first.locator("#ticket-viewers")).to_have_text("")


async def test_two_chats_at_once_with_unread_counts_and_shortcuts(
    server: Server, client: ApiClient, pages: Pages
) -> None:
    await _setup(client)
    page = await pages.open("/console/")
    await log_in(page, "agent")
    await _available(page)
    async with aiohttp.ClientSession() as http:
        first = await _customer(server, http, name="Chen", message="first question")
        await page.keyboard.press("Alt+A")  # accept from the keyboard
        await first.type("agent_joined")
        second = await _customer(server, http, name="Sun", message="second question")
        await expect(page.locator("#offer")).to_be_visible()
        await page.click("#accept")
        await second.type("agent_joined")
        await expect(page.locator(".conversation-head h2")).to_have_text("Sun")

        # A message in the chat not shown counts as unread until it is opened.
        await first.send(type="message", text="still waiting")
        chen = page.locator('.contact[data-status="connected"]', has_text="Chen")
        await expect(chen.locator(".unread")).to_have_text("1")
        # Alt+1 goes to the first contact of the list (the console's order).
        await page.keyboard.press("Alt+1")
        await expect(page.locator(".conversation-head h2")).to_have_text("Chen")
        await expect(chen.locator(".unread")).to_have_count(0)
        await expect(page.locator("#transcript")).to_contain_text("still waiting")
        await page.fill("#composer-input", "Sorry for the wait")
        await page.press("#composer-input", "Enter")
        assert (await first.type("message"))["text"] == "Sorry for the wait"
        await page.keyboard.press("Alt+2")
        await expect(page.locator(".conversation-head h2")).to_have_text("Sun")
