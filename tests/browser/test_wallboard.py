"""The supervisor wallboard in Chromium against the real server.

Customers and agents are driven over their websockets from the test, as in
``tests/web/test_chat_flow.py``; the page must follow them live, without a
reload.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from typing import Any

import aiohttp
import pytest

from callcenter.server import Server
from tests.browser.conftest import Pages, log_in, screenshot
from tests.conftest import PASSWORD, ApiClient, add_user
from tests.voice.test_monitor import FLOWS, SIP, agent_takes_a_call, supervisor_phone
from tests.web.test_chat_flow import Socket

try:
    from playwright.async_api import Page, expect
except ImportError:  # pragma: no cover - the browser fixture reports it
    pytest.skip("the playwright package is not installed", allow_module_level=True)

#: A name that would run as markup if the page ever parsed data as HTML.
HOSTILE = '<img src=x onerror="alert(1)">Lin'


async def _queue(client: ApiClient, name: str, **fields: Any) -> None:
    made = await client.post("/api/v1/queues", {"name": name, **fields})
    assert made.status == 201, made.body


async def _agent(new_client: Any, name: str = "agent") -> tuple[Socket, str]:
    api = new_client()
    assert (await api.login(name)).status == 200
    me = await api.get("/api/v1/auth/me")
    console = Socket(await api.console())
    await console.type("welcome")
    await console.send(type="presence", presence="available", ref="p")
    await console.type("ok", ref="p")
    return console, str(me.body["user"]["id"])


async def _customer(server: Server, http: aiohttp.ClientSession, **start: Any) -> Socket:
    ws = await http.ws_connect(server.url + "/ws/chat", headers={"Origin": server.url})
    customer = Socket(ws)
    await customer.send(type="start", **start)
    return customer


async def _wallboard(pages: Pages, language: str = "en") -> Page:
    page = await pages.open("/wallboard/", language=language, viewport=(1920, 1080))
    await log_in(page, "super")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    return page


def _waiting(page: Page, queue: str) -> Any:
    return page.locator(f'[data-queue="{queue}"] [data-figure="waiting"]')


async def test_waiting_count_follows_a_chat_live(
    server: Server, client: ApiClient, new_client: Any, pages: Pages
) -> None:
    await client.login("super")
    await _queue(client, "chat", display_name="Billing", wrapup_seconds=30)
    await _queue(client, "sales", display_name="Sales")
    # One chat at a time, so a second customer has to wait.
    (agent,) = (await client.get("/api/v1/users", role="agent")).body["items"]
    changed = await client.call("PATCH", f"/api/v1/users/{agent['id']}", {"chat_capacity": 1})
    assert changed.status == 200, changed.body
    page = await _wallboard(pages)
    await expect(_waiting(page, "chat")).to_have_text("0")
    await expect(page.locator('[data-queue="chat"] .tile-title')).to_have_text("Billing")
    # Marks this document: a reload would lose it.
    await page.evaluate("window.notReloaded = true")

    async with aiohttp.ClientSession() as http:
        customer = await _customer(server, http, name=HOSTILE, message="hello", queue="chat")
        contact_id = (await customer.type("queued"))["contact_id"]
        await expect(_waiting(page, "chat")).to_have_text("1")
        waiting_row = page.locator(f'#waiting-rows tr[data-contact="{contact_id}"]')
        await expect(waiting_row.locator("th")).to_contain_text(HOSTILE)
        assert await page.locator("#waiting-rows img").count() == 0

        console, agent_id = await _agent(new_client)
        await console.type("offer", contact_id=contact_id)
        agent_row = page.locator(f'#agent-rows tr[data-agent="{agent_id}"]')
        await expect(agent_row).to_have_attribute("data-state", "ringing")
        await console.send(type="accept", contact_id=contact_id, ref="a")
        await console.type("ok", ref="a")
        await expect(_waiting(page, "chat")).to_have_text("0")
        await expect(agent_row).to_have_attribute("data-state", "busy")
        await expect(agent_row).to_contain_text("Billing")
        await expect(waiting_row).to_have_count(0)

        # A second customer waits, for the picture of a working wallboard.
        other = await _customer(server, http, name="Chen 陈", message="hi", queue="sales")
        await other.type("queued")
        await expect(_waiting(page, "sales")).to_have_text("1")
        await customer.send(type="end")
        await expect(agent_row).to_have_attribute("data-state", "wrapup")
        await expect(agent_row.locator('[data-figure="handled"]')).to_have_text("0")
        assert await page.evaluate("window.notReloaded") is True
        await screenshot(page, "wallboard")


async def test_state_change_and_move_from_the_wallboard(
    server: Server, client: ApiClient, new_client: Any, pages: Pages
) -> None:
    await client.login("super")
    await _queue(client, "chat")
    await _queue(client, "vip", display_name="VIP")
    console, agent_id = await _agent(new_client)
    page = await _wallboard(pages)
    row = page.locator(f'#agent-rows tr[data-agent="{agent_id}"]')
    await expect(row).to_have_attribute("data-state", "available")

    # Keyboard only: choose the state in the select, press Enter on the button.
    await row.locator("select").focus()
    await row.locator("select").select_option("away")
    await row.locator("button").focus()
    await page.keyboard.press("Enter")
    told = await console.type("presence", presence="away")
    assert told["reason"] == "supervisor"
    await expect(row).to_have_attribute("data-state", "away")
    await expect(row).to_contain_text("set by a supervisor")
    # Every queue the agent serves counts it as away, not only the one with traffic.
    for queue in ("chat", "vip"):
        await expect(page.locator(f'[data-queue="{queue}"] [data-figure="away"]')).to_have_text("1")
        await expect(
            page.locator(f'[data-queue="{queue}"] [data-figure="available"]')
        ).to_have_text("0")

    async with aiohttp.ClientSession() as http:
        customer = await _customer(server, http, name="Wang", message="hi", queue="chat")
        contact_id = (await customer.type("queued"))["contact_id"]
        waiting_row = page.locator(f'#waiting-rows tr[data-contact="{contact_id}"]')
        await waiting_row.locator("select").select_option("vip")
        await waiting_row.locator("button").click()
        await expect(_waiting(page, "vip")).to_have_text("1")
        await expect(_waiting(page, "chat")).to_have_text("0")
        await expect(waiting_row.locator("td").first).to_have_text("VIP")
        # The agent comes back and gets the moved contact from the other queue.
        await console.send(type="presence", presence="available")
        offer = await console.type("offer", contact_id=contact_id)
        assert offer["queue"] == "vip"


async def test_chinese_wallboard_has_no_english_left(
    server: Server, client: ApiClient, new_client: Any, pages: Pages
) -> None:
    await client.login("super")
    await _queue(client, "chat")
    console, agent_id = await _agent(new_client)
    async with aiohttp.ClientSession() as http:
        customer = await _customer(server, http, name="Zhou", message="hi", queue="chat")
        contact_id = (await customer.type("queued"))["contact_id"]
        await console.type("offer", contact_id=contact_id)
        waiting = await _customer(server, http, name="Liu", message="hi", queue="chat")
        await waiting.type("queued")
        page = await _wallboard(pages, language="zh-CN")
        # Both ring for the agent; a ringing contact still waits.
        await expect(_waiting(page, "chat")).to_have_text("2")
        await expect(page.locator(f'tr[data-agent="{agent_id}"]')).to_contain_text("振铃中")
        await expect(page.locator("#chart-today svg")).to_have_count(1)
        await screenshot(page, "wallboard-zh")
        # Names of queues, agents and customers are data, shown as given; the
        # language switcher names English in English.
        allowed = {"chat", "agent", "super", "Zhou", "Liu", "English"}

        async def english_words() -> list[str]:
            text = await page.evaluate("document.title + ' ' + document.body.innerText")
            return [w for w in re.findall(r"[A-Za-z]{2,}", text) if w not in allowed]

        assert await english_words() == []
        await page.click("#tab-reports")
        await expect(page.locator("#queue-totals, .report-results .muted")).not_to_have_count(0)
        assert await english_words() == []


async def test_reports_export_defuses_formula_cells(
    server: Server, client: ApiClient, new_client: Any, pages: Pages
) -> None:
    await client.login("super")
    # A queue name may start with "-", a display name with anything.
    await _queue(client, "-cmd", display_name="=cmd|' /C calc'!A0", wrapup_seconds=0)
    made = await client.post(
        "/api/v1/users",
        {
            "username": "mallory",
            "password": PASSWORD,
            "role": "agent",
            "display_name": "@SUM(1+1)",
        },
    )
    assert made.status == 201, made.body
    console, _ = await _agent(new_client, "mallory")
    async with aiohttp.ClientSession() as http:
        customer = await _customer(server, http, name="Xu", message="hi", queue="-cmd")
        contact_id = (await customer.type("queued"))["contact_id"]
        await console.type("offer", contact_id=contact_id)
        await console.send(type="accept", contact_id=contact_id)
        await customer.type("agent_joined")
        await customer.send(type="end")
        await console.type("contact_ended", contact_id=contact_id)
    assert server.center is not None and server.services is not None
    await server.center.flush_intervals()
    await server.services.recorder.drained(10)

    page = await pages.open("/wallboard/#reports", viewport=(1280, 800))
    await log_in(page, "super")
    await expect(page.locator('#queue-totals tr[data-queue="-cmd"]')).to_contain_text(
        "=cmd|' /C calc'!A0"
    )
    await expect(page.locator("#agent-totals tbody")).to_contain_text("@SUM(1+1)")
    await expect(page.locator("#report-chart svg")).to_have_count(1)
    await screenshot(page, "wallboard-reports")

    expected = {
        "#export-queues": ["'-cmd", "'=cmd|' /C calc'!A0"],
        "#export-agents": ["'@SUM(1+1)"],
    }
    for button, defused in expected.items():
        async with page.expect_download() as info:
            await page.click(button)
        download = await info.value
        path = await download.path()
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        cells = [cell for row in rows for cell in row]
        assert all(cell in cells for cell in defused), rows
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], rows


async def test_agents_see_forbidden(server: Server, pages: Pages) -> None:
    page = await pages.open("/wallboard/")
    await log_in(page, "agent")
    await expect(page.locator("#forbidden")).to_have_text("Your role may not open this page.")
    await expect(page.locator("#tiles")).to_have_count(0)


@pytest.mark.settings(sip=SIP, voice={"numbers": {"100": "support"}, "flows_directory": str(FLOWS)})
async def test_a_supervisor_listens_in_from_the_wallboard_by_keyboard(
    server: Server, client: ApiClient, new_client: Any, pages: Pages, tmp_path: Any
) -> None:
    assert server.calls is not None
    await client.login("super")
    await _queue(client, "support", wrapup_seconds=30)
    await add_user(server, "boss", "supervisor", sip_extension="2001", sip_secret="sip-secret-2001")
    phone, transports = await supervisor_phone(server, tmp_path)
    try:
        page = await pages.open("/wallboard/", viewport=(1920, 1080))
        await log_in(page, "boss")
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
        talk = await agent_takes_a_call(server, new_client, tmp_path, agent_talks_ms=10_000)
        controls = page.locator(f'.monitor[data-contact="{talk.contact_id}"]')
        await expect(controls).to_have_attribute("data-state", "off")
        listen = controls.get_by_role("button", name="Listen")
        whisper = controls.get_by_role("button", name="Whisper")
        stop = controls.get_by_role("button", name="Stop")
        await expect(stop).to_be_disabled()

        # Listen: the phone rings and answers, the button shows the mode.
        await listen.focus()
        await page.keyboard.press("Enter")
        await expect(controls).to_have_attribute("data-state", "connected")
        await expect(listen).to_have_attribute("aria-pressed", "true")
        await expect(controls.get_by_role("status")).to_have_text("Listening")
        assert phone.rings == 1
        # The focus stayed where it was: Tab moves on to Whisper.
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(whisper).to_have_attribute("aria-pressed", "true")
        await expect(listen).to_have_attribute("aria-pressed", "false")
        await expect(controls.get_by_role("status")).to_have_text("Whispering to the agent")
        assert server.calls.monitor.mode_of(talk.contact_id) == "whisper"
        await screenshot(page, "wallboard-monitor")

        await stop.focus()
        await page.keyboard.press("Enter")
        await expect(controls).to_have_attribute("data-state", "off")
        await expect(whisper).to_have_attribute("aria-pressed", "false")
        await expect(stop).to_be_disabled()
        await expect(listen).to_be_focused()
        await asyncio.wait_for(phone.hung_up.wait(), 5)
        assert server.calls.by_contact[talk.contact_id].bridge is not None

        # The call ends when the agent hangs up; the controls go with it.
        assert (await talk.agent_phone.finish()).returncode == 0
        assert (await talk.caller.finish()).returncode == 0
        await expect(controls).to_have_count(0)
    finally:
        if phone.talking is not None:
            phone.talking.cancel()
        for transport in transports:
            transport.close()
