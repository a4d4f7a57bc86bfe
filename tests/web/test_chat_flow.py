"""A web chat end to end over real websockets: customer, router, agent console, ticket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from callcenter.chat.identity import sign
from callcenter.server import Server
from tests.conftest import ApiClient, add_user


class Socket:
    """A websocket with a memory: wait for the message you expect, keep the rest."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def expect(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        for message in self.seen:
            if match(message):
                self.seen.remove(message)
                return message
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"not received; saw {self.seen[-5:]}"
            try:
                message = await self.ws.receive_json(timeout=left)
            except TimeoutError:
                raise AssertionError(f"not received; saw {self.seen[-5:]}") from None
            if match(message):
                return message
            self.seen.append(message)

    async def type(self, kind: str, **fields: Any) -> dict[str, Any]:
        return await self.expect(
            lambda m: m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())
        )

    async def send(self, **message: Any) -> None:
        await self.ws.send_json(message)


async def _setup(server: Server, client: ApiClient, **queue: Any) -> None:
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "chat", "wrapup_seconds": 60, **queue})
    assert made.status == 201, made.body
    code = await client.post(
        "/api/v1/dispositions", {"code": "resolved", "label_en": "Resolved", "label_zh": "已解决"}
    )
    assert code.status == 201


async def _agent(server: Server, new_client: Any, name: str = "agent") -> Socket:
    api = new_client()
    assert (await api.login(name)).status == 200
    console = Socket(await api.console())
    await console.type("welcome")
    await console.send(type="presence", presence="available", ref="p")
    await console.type("ok", ref="p")
    return console


async def _customer(server: Server, http: aiohttp.ClientSession, **start: Any) -> Socket:
    ws = await http.ws_connect(server.url + "/ws/chat", headers={"Origin": server.url})
    customer = Socket(ws)
    await customer.send(type="start", **start)
    return customer


async def test_chat_from_widget_to_ticket(
    server: Server, client: ApiClient, new_client: Any
) -> None:
    await _setup(server, client)
    agent = await _agent(server, new_client)
    async with aiohttp.ClientSession() as http:
        customer = await _customer(
            server, http, name="<b>Zhou</b> 周", email="zhou@example.com", message="我的账单有问题"
        )
        queued = await customer.type("queued")
        contact_id = queued["contact_id"]
        assert queued["verified"] is False and queued["resume_token"]

        offer = await agent.type("offer", contact_id=contact_id)
        assert offer["pop"]["customer"]["name"] == "<b>Zhou</b> 周"
        assert offer["pop"]["verified"] is False
        assert offer["pop"]["customer"]["tier"] is None  # typed-in identity earns no tier
        assert [m["text"] for m in offer["transcript"]] == ["我的账单有问题"]
        assert offer["seq"] > 0 and offer["epoch"]

        await agent.send(type="accept", contact_id=contact_id, ref="a")
        await agent.type("ok", ref="a")
        await agent.type("connected", contact_id=contact_id)
        await customer.type("agent_joined")

        await agent.send(type="message", contact_id=contact_id, text="您好，我来帮您查一下")
        reply = await customer.type("message")
        assert reply["from"] == "agent" and reply["text"] == "您好，我来帮您查一下"
        await customer.send(type="message", text="谢谢")
        heard = await agent.type("message", contact_id=contact_id, **{"from": "customer"})
        assert heard["text"] == "谢谢"

        await customer.send(type="end")
        await agent.type("wrapup", contact_id=contact_id)
        await agent.send(type="wrapup", contact_id=contact_id, disposition="nonsense", ref="bad")
        assert (await agent.type("error", ref="bad"))["code"] == "invalid_disposition"
        await agent.send(
            type="wrapup",
            contact_id=contact_id,
            disposition="resolved",
            notes="Explained the bill",
            ticket={
                "subject": "Bill explained to Zhou",
                "category": "inquiry",
                "status": "resolved",
            },
            ref="w",
        )
        await agent.type("ok", ref="w")
        await agent.type("contact_ended", contact_id=contact_id, outcome="done")

    assert server.services is not None
    for _ in range(100):
        await server.services.recorder.drained(10)
        found = await client.get("/api/v1/tickets", q="Bill explained")
        if found.body["items"] and found.body["items"][0]["status"] == "resolved":
            break
        await asyncio.sleep(0.05)
    (ticket,) = found.body["items"]
    assert ticket["status"] == "resolved"
    full = await client.get(f"/api/v1/tickets/{ticket['id']}")
    assert full.body["interaction_ids"] == [contact_id]
    interaction = await client.get(f"/api/v1/interactions/{contact_id}")
    assert interaction.body["disposition_code"] == "resolved"
    assert interaction.body["channel"] == "chat" and interaction.body["answered_at"]
    transcript = interaction.body["transcript"]
    assert [line.split(": ", 1)[1] for line in transcript] == [
        "我的账单有问题",
        "您好，我来帮您查一下",
        "谢谢",
    ]


@pytest.mark.settings(chat={"identity_secret": "site-secret"})
async def test_key_customer_overtakes_and_ignored_offer_moves_on(
    server: Server, client: ApiClient, new_client: Any
) -> None:
    await _setup(server, client, offer_timeout_seconds=5)
    made = await client.post(
        "/api/v1/customers", {"name": "Key Account", "account_number": "K-1", "tier": "key"}
    )
    assert made.status == 201
    async with aiohttp.ClientSession() as http:
        normal = await _customer(server, http, name="Normal", message="hello")
        await normal.type("queued")
        token = sign("site-secret", {"sub": "K-1", "name": "Key Account", "exp": time.time() + 600})
        key = await _customer(server, http, name="Key", message="urgent", identity_token=token)
        key_contact = (await key.type("queued", verified=True))["contact_id"]
        forged = await _customer(
            server, http, name="Forger", message="x", identity_token=token + "x"
        )
        assert (await forged.type("error"))["code"] == "bad_identity_token"

        lazy = await _agent(server, new_client, "agent")
        offer = await lazy.type("offer")
        assert offer["contact_id"] == key_contact  # arrived later, served first
        assert offer["pop"]["customer"]["tier"] == "key"
        # The agent lets it ring out: it goes away and the next agent gets it.
        await add_user(server, "agent2", "agent")
        busy = await _agent(server, new_client, "agent2")
        withdrawn = await lazy.type("offer_withdrawn", contact_id=key_contact)
        assert withdrawn["reason"] == "timeout"
        assert (await lazy.type("presence", reason="missed"))["presence"] == "away"
        assert (await busy.type("offer", contact_id=key_contact))["pop"]["verified"] is True


async def test_console_reconnects_and_misses_nothing(
    server: Server, client: ApiClient, new_client: Any
) -> None:
    await _setup(server, client)
    api = new_client()
    await api.login("agent")
    first = Socket(await api.console())
    await first.type("welcome")
    await first.send(type="presence", presence="available")
    async with aiohttp.ClientSession() as http:
        customer = await _customer(server, http, name="Wu", message="hi")
        contact_id = (await customer.type("queued"))["contact_id"]
        offer = await first.type("offer", contact_id=contact_id)
        await first.send(type="accept", contact_id=contact_id)
        connected = await first.type("connected")
        last = (connected["epoch"], connected["seq"])
        await first.ws.close()  # the agent's network drops
        await customer.send(type="message", text="are you there?")
        await customer.send(type="message", text="hello?")
        await asyncio.sleep(0.2)
        second = Socket(await api.console(epoch=last[0], seq=last[1]))
        await second.type("welcome")
        replay = await second.type("replay")
        assert replay["count"] >= 2
        texts = [(await second.type("message"))["text"] for _ in range(2)]
        assert texts == ["are you there?", "hello?"]
        # A console with a stale epoch gets a snapshot with the conversation instead.
        third = Socket(await api.console(epoch="stale", seq=1))
        assert (await third.type("resync"))["reason"] == "epoch"
        snapshot = await third.type("snapshot")
        (mine,) = snapshot["contacts"]
        assert [m["text"] for m in mine["transcript"]] == ["hi", "are you there?", "hello?"]
        # Only a name given: nothing to match or create a record by; the pop still shows it.
        assert offer["pop"]["customer"] is None and offer["pop"]["collected"]["name"] == "Wu"


async def test_chat_needs_an_allowed_origin_and_valid_messages(
    server: Server, client: ApiClient
) -> None:
    await _setup(server, client)
    async with aiohttp.ClientSession() as http:
        for headers in ({"Origin": "https://evil.example"}, {}):
            try:
                await http.ws_connect(server.url + "/ws/chat", headers=headers)
                raise AssertionError("connected from a foreign origin")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 403
        customer = await _customer(server, http, name="", message="hi")
        assert (await customer.type("error"))["code"] == "invalid_field"
        await customer.send(type="message", text="before start")
        assert (await customer.type("error"))["code"] == "no_chat"
        await customer.ws.send_str("{not json")
        assert (await customer.type("error"))["code"] == "malformed_json"
        await customer.send(type="start", name="Ok", message="hi", queue="nowhere")
        assert (await customer.type("error"))["code"] == "unknown_queue"
        await customer.send(type="resume", contact_id="0" * 36, resume_token="x")
        assert (await customer.type("error"))["code"] == "cannot_resume"


@pytest.mark.settings(cti={"agent_grace_seconds": 0})
async def test_wallboard_follows_queues_and_agents_and_an_absent_console_goes_offline(
    server: Server, client: ApiClient, new_client: Any
) -> None:
    await _setup(server, client)
    boss = Socket(await client.console("/ws/supervisor"))
    await boss.type("welcome")
    await boss.type("resync")
    snapshot = await boss.type("snapshot")
    # With the router's own queue of calls meant for one agent (transfers).
    assert [q["queue"] for q in snapshot["queues"]] == ["chat", "direct"]
    async with aiohttp.ClientSession() as http:
        customer = await _customer(server, http, name="Lin", message="hello")
        contact_id = (await customer.type("queued"))["contact_id"]
        waiting = await boss.expect(lambda m: m.get("type") == "queue" and m["waiting"] == 1)
        assert waiting["queue"] == "chat"
        api = new_client()
        await api.login("agent")
        console = Socket(await api.console())
        await console.type("welcome")
        await console.send(type="presence", presence="available")
        await console.type("offer", contact_id=contact_id)
        seen = await boss.expect(
            lambda m: m.get("type") == "agent" and m["presence"] == "available"
        )
        assert seen["name"] == "agent"
        # The agent's console vanishes with the offer ringing: after the grace
        # period the agent is offline and the offer is released.
        await console.ws.close()
        gone = await boss.expect(lambda m: m.get("type") == "agent" and m["presence"] == "offline")
        assert gone["reason"] == "disconnected"
        await boss.send(type="move", contact_id=contact_id, queue="nowhere", ref="m")
        assert (await boss.type("error", ref="m"))["code"] == "unknown_queue"
        await boss.send(
            type="agent_presence", agent_id=seen["agent_id"], presence="available", ref="s"
        )
        await boss.type("ok", ref="s")
        back = await boss.expect(
            lambda m: m.get("type") == "agent" and m["presence"] == "available"
        )
        assert back["agent_id"] == seen["agent_id"]


async def test_interval_totals_reach_the_report(server: Server, client: ApiClient) -> None:
    await _setup(server, client)
    async with aiohttp.ClientSession() as http:
        for name in ("A", "B"):
            customer = await _customer(server, http, name=name, message="hi")
            await customer.type("queued")
            await customer.send(type="end")
            await customer.type("ended")
    assert server.center is not None and server.services is not None
    await server.center.flush_intervals()
    await server.services.recorder.drained(10)
    report = await client.get(
        "/api/v1/reports/intervals", since="2020-01-01T00:00:00Z", until="2100-01-01T00:00:00Z"
    )
    assert report.status == 400  # more than a year at once
    now = time.time()
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    report = await client.get("/api/v1/reports/intervals", since=since, until=until)
    assert report.status == 200, report.body
    (chat,) = report.body["queues"]
    assert (chat["queue"], chat["offered"], chat["abandoned"], chat["answered"]) == (
        "chat",
        2,
        2,
        0,
    )
    assert chat["abandon_rate"] == 1.0 and len(chat["intervals"]) >= 1


async def test_customer_resumes_within_the_grace_period(
    server: Server, client: ApiClient, new_client: Any
) -> None:
    await _setup(server, client)
    agent = await _agent(server, new_client)
    async with aiohttp.ClientSession() as http:
        customer = await _customer(server, http, name="Ma", email="ma@example.com", message="hi")
        queued = await customer.type("queued")
        contact_id, token = queued["contact_id"], queued["resume_token"]
        await agent.type("offer", contact_id=contact_id)
        await agent.send(type="accept", contact_id=contact_id)
        joined = await customer.type("agent_joined")
        await customer.ws.close()  # the page reloads
        await agent.send(type="message", contact_id=contact_id, text="still there?", ref="m")
        await agent.type("ok", ref="m")
        wrong = Socket(
            await http.ws_connect(server.url + "/ws/chat", headers={"Origin": server.url})
        )
        await wrong.send(type="resume", contact_id=contact_id, resume_token="guess")
        assert (await wrong.type("error"))["code"] == "cannot_resume"
        back = Socket(
            await http.ws_connect(server.url + "/ws/chat", headers={"Origin": server.url})
        )
        await back.send(type="resume", contact_id=contact_id, resume_token=token)
        resumed = await back.type("resumed")
        assert [m["text"] for m in resumed["transcript"]] == ["hi", "still there?"]
        assert resumed["agent_name"] == joined["agent_name"] != ""
        await agent.send(type="message", contact_id=contact_id, text="welcome back")
        assert (await back.type("message"))["text"] == "welcome back"
        await back.send(type="message", text="thanks")
        assert (await agent.type("message", contact_id=contact_id, text="thanks"))[
            "from"
        ] == "customer"
