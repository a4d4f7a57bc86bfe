"""Calls put through to numbers outside the center, over the trunk (a SIPp UAS).

The IVR's transfer step, and an agent's blind and warm transfers to a
number: the dial rules and the role's permissions apply, as for
click-to-call, and every attempt is audited.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from callcenter.media import g711
from callcenter.server import Server
from tests.conftest import ApiClient
from tests.voice.sipp import Sipp, free_port
from tests.voice.test_call_edges import calls_cleared, ports_free
from tests.voice.test_monitor import CALLER_HZ, RATE, tone
from tests.voice.test_outbound import (
    CUSTOMER,
    NATIONAL,
    TRUNK,
    dial_audit,
    header,
    interaction,
    received,
    trunk,
)
from tests.voice.test_transfers import FLOWS, floor, relaying

SIP = {"digest_algorithms": ["MD5", "SHA-256"], "trunks": ["127.0.0.1"]}
VOICE = {"numbers": {"100": "support", "200": "forward"}, "flows_directory": str(FLOWS)}
OUT = pytest.mark.settings(sip=SIP, voice=VOICE, outbound=TRUNK)


async def caller(server: Server, folder: Path, number: str, phones: list[Sipp]) -> Sipp:
    """A SIPp caller dialling ``number`` that talks until it is hung up on."""
    assert server.voice is not None
    (folder / "caller_tone.al").write_bytes(g711.pcm_to_alaw(tone(CALLER_HZ, 0, RATE)))
    started = await Sipp(
        "caller_talks",
        f"127.0.0.1:{server.voice.port}",
        *("-s", number, "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)),
        folder=folder,
        timeout=60,
    ).start()
    phones.append(started)
    return started


@OUT
async def test_the_flows_transfer_step_puts_the_caller_through(
    server: Server, client: ApiClient, tmp_path: Path, phones: list[Sipp]
) -> None:
    assert server.calls is not None
    ports = ports_free(server)
    office = await trunk(tmp_path, "trunk_answers")
    phones.append(office)
    line = await caller(server, tmp_path, "200", phones)
    for _ in range(100):
        if server.calls.externals:
            break
        await asyncio.sleep(0.1)
    [call] = server.calls.externals.values()
    assert call.bridge is not None
    # The head office talks (g711a.pcap) and the caller hears it.
    assert await relaying(lambda: call.bridge.relayed_to(call.caller.port) if call.bridge else 0)
    # The head office hangs up; the caller gets our BYE.
    for peer in (office, line):
        done = await peer.finish()
        assert done.returncode == 0, done.errors or done.stderr
    [(_, invite)] = received(tmp_path / "trunk-messages.log", "INVITE")
    assert CUSTOMER in header(invite, "To")  # the dial rules made the number
    await client.login("super")
    record = await interaction(client, call.contact_id)
    assert record["end_reason"] == "transferred"
    assert record["collected"]["transferred_to"] == CUSTOMER
    assert await calls_cleared(server, ports)


@OUT
async def test_an_agent_puts_the_caller_through_to_a_number(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    assert server.calls is not None
    here = await floor(server, client, new_client, tmp_path, phones)
    first_contact = here.contact_id
    # A number the agent's role may not dial is refused, and nothing rings.
    await here.first.send(
        type="call", contact_id=first_contact, action="transfer", number="+4420123456", ref="x"
    )
    assert (await here.first.type("error", ref="x"))["code"] == "not_allowed"

    office = await trunk(tmp_path, "trunk_answers")
    phones.append(office)
    moved = await here.control("transfer", number=NATIONAL)
    assert moved["transferred_to_number"] == CUSTOMER
    await here.first.type("wrapup", contact_id=first_contact)
    done = await here.phones[0].finish()
    assert done.returncode == 0, done.errors  # the agent's phone got our BYE
    for _ in range(100):
        if server.calls.externals:
            break
        await asyncio.sleep(0.1)
    [call] = server.calls.externals.values()
    assert call.agent is None and call.bridge is not None
    assert await relaying(lambda: call.bridge.relayed_to(call.caller.port) if call.bridge else 0)
    for peer in (office, here.caller):
        done = await peer.finish()
        assert done.returncode == 0, done.errors or done.stderr
    admin = new_client()
    await admin.login("admin")
    outcomes = [e["detail"]["outcome"] for e in await dial_audit(admin, 2)]
    assert sorted(outcomes) == ["allowed", "not_allowed"]


@OUT
async def test_an_agent_consults_a_number_then_hands_the_caller_over(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    assert server.calls is not None
    here = await floor(server, client, new_client, tmp_path, phones)
    first_contact = here.contact_id
    office = await trunk(tmp_path, "trunk_answers")
    phones.append(office)
    ringing = await here.control("consult", number=NATIONAL)
    assert ringing["consult"]["number"] == CUSTOMER
    call = here.call
    assert call.player is not None  # the caller hears music meanwhile
    talking = await here.consult_state("talking")
    assert talking["number"] == CUSTOMER
    completed = await here.control("complete")
    assert completed["consult"]["state"] == "completed"
    await here.first.type("wrapup", contact_id=first_contact)
    assert call.external is not None and call.bridge is not None and call.agent is None
    assert call.player is None
    for peer in (office, here.caller, here.phones[0]):
        done = await peer.finish()
        assert done.returncode == 0, done.errors or done.stderr
