"""Call controls from the agent's console: hold, mute, keypad, hang up, blind transfer."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from callcenter.server import Server
from tests.conftest import ApiClient
from tests.voice.sipp import Sipp, available_console, free_port
from tests.voice.test_call_features import _agent_phone

FLOWS = Path(__file__).parent / "flows"
SETTINGS = pytest.mark.settings(
    sip={"digest_algorithms": ["MD5", "SHA-256"], "trunks": ["127.0.0.1"]},
    voice={"numbers": {"100": "support"}, "flows_directory": str(FLOWS)},
)


async def _connected_call(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> tuple[Any, Sipp, Sipp, str]:
    assert server.voice is not None
    await client.login("super")
    for name in ("support", "billing"):
        made = await client.post("/api/v1/queues", {"name": name, "wrapup_seconds": 120})
        assert made.status == 201, made.body
    phone = await _agent_phone(server, tmp_path, "agent_answers")
    console = await available_console(new_client, "agent")
    caller = await Sipp(
        "caller_waits",
        f"127.0.0.1:{server.voice.port}",
        *("-s", "100", "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)),
        folder=tmp_path,
        timeout=40,
    ).start()
    # Generous waits: the menu's prompt is rendered by the TTS on a busy machine.
    offer = await console.expect(lambda m: m.get("type") == "offer", timeout=30)
    assert offer["channel"] == "voice"
    await console.expect(
        lambda m: m.get("type") == "connected" and m.get("contact_id") == offer["contact_id"],
        timeout=30,
    )
    return console, phone, caller, offer["contact_id"]


@SETTINGS
async def test_hold_mute_keypad_and_hang_up(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    console, phone, caller, contact_id = await _connected_call(server, client, new_client, tmp_path)
    assert server.calls is not None
    call = server.calls.by_contact[contact_id]
    assert call.bridge is not None and call.agent is not None

    async def control(action: str, **extra: Any) -> dict[str, Any]:
        await console.send(type="call", contact_id=contact_id, action=action, ref=action, **extra)
        await console.type("ok", ref=action)
        return await console.type("call_state", contact_id=contact_id)

    held = await control("hold")
    assert (held["held"], held["muted"]) == (True, False)
    # Neither side hears the other while held.
    assert call.bridge.is_held(call.caller.port) and call.bridge.is_held(call.agent.port)
    assert (await control("resume"))["held"] is False
    assert not call.bridge.is_held(call.caller.port)
    muted = await control("mute")
    assert muted["muted"] is True
    assert call.bridge.is_held(call.caller.port) and not call.bridge.is_held(call.agent.port)
    assert (await control("unmute"))["muted"] is False
    sent = call.caller.port.packets_sent
    await control("dtmf", digits="5#")
    assert call.caller.port.packets_sent > sent
    await console.send(type="call", contact_id=str(uuid.uuid4()), action="hold", ref="bad")
    assert (await console.type("error", ref="bad"))["code"] == "not_your_contact"

    await console.send(type="call", contact_id=contact_id, action="hangup", ref="bye")
    await console.type("ok", ref="bye")
    await console.type("wrapup", contact_id=contact_id)
    assert (await caller.finish()).returncode == 0  # the caller got our BYE
    assert (await phone.finish()).returncode == 0  # and so did the agent's phone


@SETTINGS
async def test_blind_transfer_to_another_queue(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    console, phone, caller, contact_id = await _connected_call(server, client, new_client, tmp_path)
    assert server.calls is not None and server.center is not None
    await console.send(
        type="call", contact_id=contact_id, action="transfer", queue="billing", ref="t"
    )
    await console.type("ok", ref="t")
    await console.type("wrapup", contact_id=contact_id)  # the agent's part is over
    assert (await phone.finish()).returncode == 0  # its leg was hung up
    waiting = [
        c for c in server.center.contacts.values() if c.queue == "billing" and c.channel == "voice"
    ]
    assert len(waiting) == 1 and waiting[0].contact_id != contact_id
    assert server.center.router.contact_status(waiting[0].contact_id).value == "queued"
    call = server.calls.by_contact[waiting[0].contact_id]
    assert call.player is not None  # the caller hears music while waiting again
    await server.calls.close()  # ends the call: the caller gets a BYE
    assert (await caller.finish()).returncode == 0


@SETTINGS
async def test_the_agents_phone_holds_and_resumes_the_call(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    assert server.voice is not None and server.calls is not None
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 120})
    assert made.status == 201, made.body
    phone = await _agent_phone(server, tmp_path, "agent_holds")
    console = await available_console(new_client, "agent")
    caller = await Sipp(
        "caller_waits",
        f"127.0.0.1:{server.voice.port}",
        *("-s", "100", "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)),
        folder=tmp_path,
        timeout=40,
    ).start()
    offer = await console.expect(lambda m: m.get("type") == "offer", timeout=30)
    call = server.calls.by_contact[offer["contact_id"]]
    seen = []
    for _ in range(100):  # the phone holds after 1.5 s and resumes 1.5 s later
        seen.append(call.on_hold)
        if True in seen and seen[-1] is False:
            break
        await asyncio.sleep(0.05)
    assert True in seen and seen[-1] is False
    assert call.bridge is not None and not call.bridge.is_held(call.caller.port)
    await console.send(type="call", contact_id=offer["contact_id"], action="hangup", ref="bye")
    await console.type("ok", ref="bye")
    assert (await phone.finish()).returncode == 0  # both answers carried the right direction
    assert (await caller.finish()).returncode == 0


@SETTINGS
async def test_a_transferred_call_nobody_takes_in_time_is_ended(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    console, phone, caller, contact_id = await _connected_call(server, client, new_client, tmp_path)
    assert server.calls is not None
    # Billing waits one second at most, and nobody is there to take the call.
    queues = await client.get("/api/v1/queues")
    billing = next(q for q in queues.body["items"] if q["name"] == "billing")
    changed = await client.call("PATCH", f"/api/v1/queues/{billing['id']}", {"max_wait_seconds": 1})
    assert changed.status == 200, changed.body
    await console.send(
        type="call", contact_id=contact_id, action="transfer", queue="billing", ref="t"
    )
    await console.type("ok", ref="t")
    # The flow's queue step is behind the call: it ends rather than waiting on in silence.
    assert (await caller.finish()).returncode == 0  # our BYE reached the caller
    assert (await phone.finish()).returncode == 0
    assert not server.calls.calls
