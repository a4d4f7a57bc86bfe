"""A caller waiting in line asks to be called back: the place in line is kept, and the
agent it reaches calls the customer back through the trunk (SIPp peers all round)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callcenter.server import Server
from tests.conftest import ApiClient
from tests.voice.sipp import Sipp, free_port, sipp
from tests.voice.test_call_edges import agent_phone, calls_cleared, ports_free
from tests.voice.test_outbound import CUSTOMER, TRUNK, header, interaction, received, trunk
from tests.voice.test_transfers import FLOWS
from tests.web.test_chat_flow import Socket

SIP = {"digest_algorithms": ["MD5", "SHA-256"], "trunks": ["127.0.0.1"]}


@pytest.mark.settings(
    sip=SIP,
    voice={"numbers": {"100": "callback"}, "flows_directory": str(FLOWS)},
    outbound=TRUNK,
)
async def test_a_caller_keeps_their_place_and_the_agent_calls_back(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    assert server.voice is not None and server.center is not None
    ports = ports_free(server)
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 120})
    assert made.status == 201, made.body
    code = {"code": "resolved", "label_en": "Resolved", "label_zh": "已解决"}
    assert (await client.post("/api/v1/dispositions", code)).status == 201
    phone = await agent_phone(phones, server, tmp_path, "agent_answers", "1001", "sip-secret-1001")
    agent = new_client()
    await agent.login("agent")
    console = Socket(await agent.console())
    await console.type("welcome")  # signed in, not yet available: the caller waits

    run = await sipp(
        "caller_callback",
        f"127.0.0.1:{server.voice.port}",
        *("-s", "100", "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)),
        folder=tmp_path,
        timeout=40,
    )
    assert run.returncode == 0, run.errors or run.stderr  # thanked and hung up on
    # The caller is gone, yet the contact keeps its place in line.
    [waiting] = list(server.center.contacts.values())
    assert waiting.callback_number == CUSTOMER
    assert server.center.router.contact_status(waiting.contact_id).value == "queued"

    office = await trunk(tmp_path, "trunk_answers")
    phones.append(office)
    await console.send(type="presence", presence="available", ref="p")
    await console.type("ok", ref="p")
    offer = await console.expect(lambda m: m.get("type") == "offer", timeout=20)
    assert offer["contact_id"] == waiting.contact_id
    assert offer["pop"]["collected"]["callback_number"] == CUSTOMER
    # The agent's phone answers: the offer is taken and the customer is called.
    await console.expect(
        lambda m: m.get("type") == "connected" and m.get("contact_id") == offer["contact_id"],
        timeout=20,
    )
    # The console hears when the customer answers; its call controls work from then.
    await console.type("call_state", contact_id=offer["contact_id"], customer_answered=True)
    for action, held in (("hold", True), ("resume", False)):
        await console.send(type="call", contact_id=offer["contact_id"], action=action, ref=action)
        await console.type("ok", ref=action)
        state = await console.type("call_state", contact_id=offer["contact_id"])
        assert state["held"] is held
    for peer in (office, phone):
        done = await peer.finish()
        assert done.returncode == 0, done.errors or done.stderr
    [(_, invite)] = received(tmp_path / "trunk-messages.log", "INVITE")
    assert CUSTOMER in header(invite, "To")
    await console.type("wrapup", contact_id=offer["contact_id"])
    await console.send(
        type="wrapup", contact_id=offer["contact_id"], disposition="resolved", ref="w"
    )
    await console.type("ok", ref="w")
    record = await interaction(client, offer["contact_id"])
    assert record["collected"]["callback_result"] == "answered"
    assert record["has_recording"] and record["answered_at"]
    assert await calls_cleared(server, ports)
