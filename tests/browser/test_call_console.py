"""The console's call controls in Chromium, on a real call: a warm transfer to another agent.

The caller and both agents' phones are SIPp; the first agent works in the
browser, the second through its console's websocket.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from callcenter.media import g711
from callcenter.server import Server
from tests.browser.conftest import Pages, log_in, screenshot
from tests.conftest import ApiClient, add_user
from tests.voice.sipp import Sipp, available_console, free_port
from tests.voice.test_call_edges import agent_phone
from tests.voice.test_monitor import CALLER_HZ, RATE, tone
from tests.voice.test_outbound import CUSTOMER, NATIONAL, TRUNK, trunk

FLOWS = Path(__file__).parents[1] / "voice" / "flows"


@pytest.mark.settings(
    sip={"digest_algorithms": ["MD5", "SHA-256"], "trunks": ["127.0.0.1"]},
    voice={"numbers": {"100": "support"}, "flows_directory": str(FLOWS)},
)
async def test_consult_another_agent_then_complete_the_transfer(
    server: Server, client: ApiClient, new_client: Any, pages: Pages, tmp_path: Path
) -> None:
    assert server.voice is not None and server.calls is not None
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 120})
    assert made.status == 201, made.body
    second_id = await add_user(
        server,
        "agent2",
        "agent",
        display_name="Zhang Wei",
        sip_extension="1002",
        sip_secret="sip-secret-1002",
    )
    peers: list[Sipp] = []
    try:
        await agent_phone(peers, server, tmp_path, "agent_answers", "1001", "sip-secret-1001")
        await agent_phone(peers, server, tmp_path, "agent_answers", "1002", "sip-secret-1002")
        page = await pages.open("/console/")
        await log_in(page, "agent")
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
        await page.select_option("#presence", "available")
        await expect(page.locator("#presence")).to_have_attribute("data-presence", "available")

        (tmp_path / "caller_tone.al").write_bytes(g711.pcm_to_alaw(tone(CALLER_HZ, 0, RATE)))
        caller = await Sipp(
            "caller_talks",
            f"127.0.0.1:{server.voice.port}",
            *("-s", "100", "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)),
            folder=tmp_path,
            timeout=60,
        ).start()
        peers.append(caller)
        # The phone answers the offer; the console shows the call's controls.
        controls = page.locator("#call-controls")
        await expect(controls).to_be_visible(timeout=30_000)
        await expect(page.locator("#call-status")).to_have_text("On the call")

        second = await available_console(new_client, "agent2")
        await page.click("#agents-refresh")
        await page.select_option("#transfer-agent", label="Zhang Wei")
        await page.click("#call-consult")
        offer = await second.expect(lambda m: m.get("type") == "offer", timeout=20)
        assert offer["pop"]["collected"]["transferred_by"]
        await second.type("connected", contact_id=offer["contact_id"])
        status = page.locator("#call-status")
        await expect(status).to_have_text("Talking to Zhang Wei: the caller holds")
        await screenshot(page, "console-consult")

        await page.click("#consult-conference")
        await expect(status).to_have_text("Three-way call with Zhang Wei and the caller")
        await expect(page.locator("#consult-conference")).to_be_disabled()
        await page.click("#consult-complete")
        # The first agent's part is over: on to its wrap-up.
        await expect(page.locator("#wrapup-form")).to_be_visible()
        call = server.calls.by_contact[offer["contact_id"]]
        assert call.agent_id == str(second_id)
        assert call.bridge is not None and call.consult is None

        await server.calls.close()
        for peer in peers:
            done = await peer.finish()
            assert done.returncode == 0, done.errors or done.stderr
    finally:
        for peer in peers:
            if peer.process is not None and peer.process.returncode is None:
                peer.process.kill()
                await peer.finish()


@pytest.mark.settings(sip={"digest_algorithms": ["MD5", "SHA-256"]}, outbound=TRUNK)
async def test_click_to_call_from_the_console(
    server: Server, client: ApiClient, pages: Pages, tmp_path: Path
) -> None:
    assert server.outbound is not None
    peers: list[Sipp] = []
    try:
        phone = await agent_phone(
            peers, server, tmp_path, "agent_answers", "1001", "sip-secret-1001"
        )
        page = await pages.open("/console/")
        await log_in(page, "agent")
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")

        # A number the agent's role may not dial: told why, nothing rings.
        await page.fill("#dial-number", "+4420123456")
        await page.click("#dial-button")
        await expect(page.locator(".toast").last).to_have_text(
            "Not called: your role may not dial this number"
        )
        customer = await trunk(tmp_path, "trunk_answers")
        peers.append(customer)
        await page.fill("#dial-number", NATIONAL)
        await page.press("#dial-number", "Enter")
        await expect(page.locator(".toast").last).to_contain_text("Your phone rings")
        # The console follows the call: connected, then ended when the customer hangs up.
        toasts = page.locator(".toast")
        await expect(toasts.filter(has_text=f"On the call with {CUSTOMER}")).to_have_count(
            1, timeout=15_000
        )
        await expect(
            toasts.filter(has_text=f"Call with {CUSTOMER} ended: the customer hung up")
        ).to_have_count(1, timeout=15_000)
        for peer in (customer, phone):  # the agent answered, then the customer
            done = await peer.finish()
            assert done.returncode == 0, done.errors or done.stderr
        await client.login("super")
        for _ in range(100):
            found = await client.get("/api/v1/interactions", channel="voice")
            if found.body["items"]:
                break
            await asyncio.sleep(0.1)
        [record] = found.body["items"]
        assert record["direction"] == "outbound" and record["remote_identity"] == CUSTOMER
    finally:
        for peer in peers:
            if peer.process is not None and peer.process.returncode is None:
                peer.process.kill()
                await peer.finish()
