"""The agent's phone transfers the call itself with a REFER (RFC 3515), as desk phones'
transfer keys do: SIPp phones and caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callcenter.cti.center import DIRECT_QUEUE
from callcenter.server import Server
from tests.conftest import ApiClient, add_user
from tests.voice.sipp import Sipp, available_console
from tests.voice.test_call_edges import agent_phone
from tests.voice.test_transfers import SETTINGS, relaying
from tests.voice.test_transfers_out import caller


async def _first_agent_talks(
    server: Server,
    client: ApiClient,
    new_client: Any,
    tmp_path: Path,
    phones: list[Sipp],
    scenario: str,
    refer_to: str,
) -> tuple[Any, Sipp, Sipp, str]:
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 120})
    assert made.status == 201, made.body
    phone = await agent_phone(
        phones, server, tmp_path, scenario, "1001", "sip-secret-1001", "-set", "refer_to", refer_to
    )
    console = await available_console(new_client, "agent")
    line = await caller(server, tmp_path, "100", phones)
    offer = await console.expect(lambda m: m.get("type") == "offer", timeout=30)
    await console.expect(
        lambda m: m.get("type") == "connected" and m.get("contact_id") == offer["contact_id"],
        timeout=30,
    )
    return console, phone, line, offer["contact_id"]


@SETTINGS
async def test_the_agents_phone_transfers_the_call_to_another_agent(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    assert server.calls is not None
    second_id = await add_user(
        server, "agent2", "agent", sip_extension="1002", sip_secret="sip-secret-1002"
    )
    other = await agent_phone(phones, server, tmp_path, "agent_answers", "1002", "sip-secret-1002")
    console, phone, line, first = await _first_agent_talks(
        server, client, new_client, tmp_path, phones, "agent_refers", "1002"
    )
    second = await available_console(new_client, "agent2")  # before the phone's REFER
    await console.type("wrapup", contact_id=first)  # the first agent's part is over
    done = await phone.finish()
    assert done.returncode == 0, done.errors or done.stderr  # 202, NOTIFY 200 OK, our BYE
    offer = await second.expect(lambda m: m.get("type") == "offer", timeout=20)
    assert offer["queue"] == DIRECT_QUEUE and offer["pop"]["collected"]["transferred_by"]
    await second.type("connected", contact_id=offer["contact_id"])
    call = server.calls.by_contact[offer["contact_id"]]
    assert call.agent_id == str(second_id)
    assert await relaying(lambda: call.bridge.relayed_to(call.caller.port) if call.bridge else 0)
    await server.calls.close()
    for peer in (line, other):
        done = await peer.finish()
        assert done.returncode == 0, done.errors or done.stderr


@SETTINGS
async def test_a_transfer_the_server_cannot_make_is_refused_and_the_call_goes_on(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    assert server.calls is not None
    # No such agent or queue, and no trunk to dial a number through.
    console, phone, line, first = await _first_agent_talks(
        server, client, new_client, tmp_path, phones, "agent_refer_refused", "nobody"
    )
    done = await phone.finish()
    assert done.returncode == 0, done.errors or done.stderr  # NOTIFY 403, then its own BYE
    await console.type("wrapup", contact_id=first)
    done = await line.finish()  # the flow goes on after the agent and hangs up
    assert done.returncode == 0, done.errors or done.stderr
