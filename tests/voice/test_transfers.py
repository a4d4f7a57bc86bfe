"""Calls handed between agents from the console: blind and warm transfers, three-way calls.

Real peers: a SIPp caller that talks (a steady tone) until it is hung up on,
and two agents' SIPp phones that register with digest auth, answer and echo
what they hear.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from callcenter.cti.center import DIRECT_QUEUE
from callcenter.media import g711
from callcenter.server import Server
from callcenter.voice.calls import Call
from tests.conftest import ApiClient, add_user
from tests.voice.sipp import Sipp, available_console, free_port
from tests.voice.test_call_edges import agent_phone, calls_cleared, ports_free
from tests.voice.test_monitor import CALLER_HZ, RATE, tone
from tests.web.test_chat_flow import Socket

FLOWS = Path(__file__).parent / "flows"
SETTINGS = pytest.mark.settings(
    sip={"digest_algorithms": ["MD5", "SHA-256"], "trunks": ["127.0.0.1"]},
    voice={"numbers": {"100": "support"}, "flows_directory": str(FLOWS)},
)


class Floor:
    """A caller talking to the first agent, and a second agent signed in with a phone."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.first: Socket
        self.second: Socket
        self.second_id = 0
        self.caller: Sipp
        self.phones: tuple[Sipp, Sipp]
        self.contact_id = ""

    @property
    def call(self) -> Call:
        assert self.server.calls is not None
        return self.server.calls.by_contact[self.contact_id]

    async def control(self, action: str, **extra: Any) -> dict[str, Any]:
        """Send a call control from the first agent's console; the call's state after it."""
        await self.first.send(
            type="call", contact_id=self.contact_id, action=action, ref=action, **extra
        )
        answer = await self.first.expect(lambda m: m.get("ref") == action, timeout=10)
        assert answer["type"] == "ok", answer
        # The state is published before the answer: the last one seen is the newest.
        states = [m for m in self.first.seen if m.get("type") == "call_state"]
        for message in states:
            self.first.seen.remove(message)
        return states[-1] if states else {}

    async def consult_state(self, state: str) -> dict[str, Any]:
        message = await self.first.expect(
            lambda m: m.get("type") == "call_state" and m.get("consult", {}).get("state") == state,
            timeout=20,
        )
        return dict(message["consult"])


async def floor(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> Floor:
    assert server.voice is not None
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 120})
    assert made.status == 201, made.body
    here = Floor(server)
    here.second_id = await add_user(
        server, "agent2", "agent", sip_extension="1002", sip_secret="sip-secret-1002"
    )
    here.phones = (
        await agent_phone(phones, server, tmp_path, "agent_answers", "1001", "sip-secret-1001"),
        await agent_phone(phones, server, tmp_path, "agent_answers", "1002", "sip-secret-1002"),
    )
    here.first = await available_console(new_client, "agent")
    (tmp_path / "caller_tone.al").write_bytes(g711.pcm_to_alaw(tone(CALLER_HZ, 0, RATE)))
    here.caller = await Sipp(
        "caller_talks",
        f"127.0.0.1:{server.voice.port}",
        *("-s", "100", "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)),
        folder=tmp_path,
        timeout=60,
    ).start()
    phones.append(here.caller)
    # Generous waits: the menu's prompt is rendered by the TTS on a busy machine.
    offer = await here.first.expect(lambda m: m.get("type") == "offer", timeout=30)
    here.contact_id = offer["contact_id"]
    await here.first.expect(
        lambda m: m.get("type") == "connected" and m.get("contact_id") == here.contact_id,
        timeout=30,
    )
    # Only now is the second agent available, so the call was the first agent's.
    here.second = await available_console(new_client, "agent2")
    return here


async def relaying(count: Any, timeout: float = 10.0) -> bool:
    """Whether the packet count ``count()`` grows within ``timeout``: audio flows."""
    start = count()
    for _ in range(int(timeout / 0.1)):
        await asyncio.sleep(0.1)
        if count() > start + 10:
            return True
    return False


async def interactions(client: ApiClient, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The voice interactions by id, once the spool has written each of ``ids``."""
    found: dict[str, dict[str, Any]] = {}
    for _ in range(150):
        reply = await client.get("/api/v1/interactions", channel="voice")
        found = {item["id"]: item for item in reply.body["items"]}
        if ids <= set(found):
            break
        await asyncio.sleep(0.1)
    return found


@SETTINGS
async def test_warm_transfer_the_consulted_agent_takes_the_caller(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    ports = ports_free(server)
    here = await floor(server, client, new_client, tmp_path, phones)
    first_contact = here.contact_id
    consulting = await here.control("consult", agent=str(here.second_id))
    assert consulting["consult"]["agent_id"] == str(here.second_id)
    call = here.call
    assert call.bridge is None and call.player is not None  # the caller hears music

    # The second agent's console gets the offer with the customer's screen pop
    # while its phone rings, and is connected once the phone answers.
    offer = await here.second.expect(lambda m: m.get("type") == "offer", timeout=20)
    assert offer["queue"] == DIRECT_QUEUE and offer["channel"] == "voice"
    assert offer["pop"]["collected"]["transferred_by"]
    await here.second.type("connected", contact_id=offer["contact_id"])
    talking = await here.consult_state("talking")
    assert talking["agent_id"] == str(here.second_id)
    assert call.consult is not None and call.consult.bridge is not None
    # The two agents' legs are bridged; the caller's is not in it (it hears music).
    bridge, leg = call.consult.bridge, call.consult.leg
    assert call.agent is not None and leg is not None
    assert {id(bridge.caller), id(bridge.agent)} == {id(call.agent.port), id(leg.port)}
    assert call.caller.port.on_audio is None

    completed = await here.control("complete")
    assert completed["consult"]["state"] == "completed"
    await here.first.type("wrapup", contact_id=first_contact)  # the first agent's part is over
    first_phone = await here.phones[0].finish()
    assert first_phone.returncode == 0, first_phone.errors  # and its phone got our BYE

    assert server.calls is not None
    call = server.calls.by_contact[offer["contact_id"]]
    assert call.agent_id == str(here.second_id) and call.bridge is not None
    assert call.player is None  # no more music: the caller talks to the second agent
    assert await relaying(lambda: call.bridge.relayed_to(call.caller.port) if call.bridge else 0)

    await here.second.send(type="call", contact_id=offer["contact_id"], action="hangup", ref="bye")
    await here.second.type("ok", ref="bye")
    await here.second.type("wrapup", contact_id=offer["contact_id"])
    for peer in (here.caller, here.phones[1]):
        done = await peer.finish()
        assert done.returncode == 0, done.errors or done.stderr
    assert await calls_cleared(server, ports)

    # Each agent's part is an interaction of its own, with its own recording.
    code = {"code": "resolved", "label_en": "Resolved", "label_zh": "已解决"}
    assert (await client.post("/api/v1/dispositions", code)).status == 201
    for console, contact in ((here.first, first_contact), (here.second, offer["contact_id"])):
        await console.send(type="wrapup", contact_id=contact, disposition="resolved", ref="w")
        await console.type("ok", ref="w")
    found = await interactions(client, {first_contact, offer["contact_id"]})
    first, second = found[first_contact], found[offer["contact_id"]]
    assert second["agent_id"] == here.second_id and first["agent_id"] != here.second_id
    assert first["has_recording"] and second["has_recording"]


@SETTINGS
async def test_three_way_call_then_the_first_agent_leaves(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    ports = ports_free(server)
    here = await floor(server, client, new_client, tmp_path, phones)
    first_contact = here.contact_id
    await here.control("consult", agent=str(here.second_id))
    offer = await here.second.expect(lambda m: m.get("type") == "offer", timeout=20)
    await here.consult_state("talking")
    conference = await here.control("conference")
    assert conference["consult"]["state"] == "conference"
    call = here.call
    assert call.consult is not None and call.consult.mixer is not None
    mixer, leg = call.consult.mixer, call.consult.leg
    assert leg is not None and call.agent is not None
    caller, first, second = call.caller.port, call.agent.port, leg.port
    # Everyone hears everyone else.
    for listener, speaker in ((caller, first), (caller, second), (second, caller), (first, second)):
        assert mixer.hears(listener, speaker)
    assert call.player is None

    # The first agent hangs up in the console: the other two go on talking.
    await here.first.send(type="call", contact_id=first_contact, action="hangup", ref="bye")
    await here.first.type("ok", ref="bye")
    await here.first.type("wrapup", contact_id=first_contact)
    assert server.calls is not None
    call = server.calls.by_contact[offer["contact_id"]]
    assert call.agent_id == str(here.second_id) and call.bridge is not None
    assert await relaying(lambda: call.bridge.relayed_to(call.caller.port) if call.bridge else 0)
    done = await here.phones[0].finish()
    assert done.returncode == 0, done.errors

    await server.calls.close()  # the caller and the second phone get our BYEs
    for peer in (here.caller, here.phones[1]):
        done = await peer.finish()
        assert done.returncode == 0, done.errors or done.stderr
    assert await calls_cleared(server, ports)


@SETTINGS
async def test_cancelled_consultation_returns_the_caller_to_the_first_agent(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    here = await floor(server, client, new_client, tmp_path, phones)
    # Not while the consulted agent could not take a call.
    await here.second.send(type="presence", presence="away", reason="lunch", ref="away")
    await here.second.type("ok", ref="away")
    await here.first.send(
        type="call",
        contact_id=here.contact_id,
        action="consult",
        agent=str(here.second_id),
        ref="c1",
    )
    assert (await here.first.type("error", ref="c1"))["code"] == "agent_unavailable"
    await here.second.send(type="presence", presence="available", ref="back")
    await here.second.type("ok", ref="back")
    await here.first.send(type="call", contact_id=here.contact_id, action="complete", ref="c2")
    assert (await here.first.type("error", ref="c2"))["code"] == "not_consulting"

    await here.control("consult", agent=str(here.second_id))
    offer = await here.second.expect(lambda m: m.get("type") == "offer", timeout=20)
    await here.consult_state("talking")
    cancelled = await here.control("cancel_consult")
    assert cancelled["consult"] == {"state": "ended", "reason": "cancelled"}
    # The consulted agent's phone is hung up on; its consultation goes to wrap-up.
    done = await here.phones[1].finish()
    assert done.returncode == 0, done.errors
    await here.second.type("wrapup", contact_id=offer["contact_id"])
    call = here.call
    assert call.consult is None and call.bridge is not None and call.player is None
    assert await relaying(lambda: call.bridge.relayed_to(call.caller.port) if call.bridge else 0)
    assert server.calls is not None
    await server.calls.close()
    for peer in (here.caller, here.phones[0]):
        done = await peer.finish()
        assert done.returncode == 0, done.errors or done.stderr


@SETTINGS
async def test_blind_transfer_to_an_agent(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    here = await floor(server, client, new_client, tmp_path, phones)
    first_contact = here.contact_id
    moved = await here.control("transfer", agent=str(here.second_id))
    assert moved["transferred_to_agent"] == str(here.second_id)
    await here.first.type("wrapup", contact_id=first_contact)
    offer = await here.second.expect(lambda m: m.get("type") == "offer", timeout=20)
    assert offer["queue"] == DIRECT_QUEUE and offer["contact_id"] != first_contact
    await here.second.type("connected", contact_id=offer["contact_id"])
    assert server.calls is not None
    call = server.calls.by_contact[offer["contact_id"]]
    assert call.agent_id == str(here.second_id) and call.bridge is not None
    assert await relaying(lambda: call.bridge.relayed_to(call.caller.port) if call.bridge else 0)
    # A queue of that name cannot be made: it is the router's own.
    taken = await client.post("/api/v1/queues", {"name": DIRECT_QUEUE})
    assert taken.status == 409, taken.body
    await server.calls.close()
    for peer in (here.caller, *here.phones):
        done = await peer.finish()
        assert done.returncode == 0, done.errors or done.stderr
