"""Outbound calls with real SIPp peers: the agent's phone first, then the trunk; permissions."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import wave
from pathlib import Path
from typing import Any

import pytest

from callcenter.server import Server
from tests.conftest import ApiClient
from tests.voice.sipp import Sipp, free_port, register_phone
from tests.voice.test_calls import energy
from tests.web.test_chat_flow import Socket

#: The trunk (a SIPp UAS) listens here in every test of this module.
TRUNK_PORT = free_port()
SIPP_MD5 = {"digest_algorithms": ["MD5", "SHA-256"]}
CALLER_ID = "+861088886666"
#: Dialled as typed in the console; the dial rule makes it +8613800138000.
NATIONAL = "013800138000"
CUSTOMER = "+8613800138000"
TRUNK: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": TRUNK_PORT,
    "caller_id": CALLER_ID,
    "dial_rules": [{"pattern": r"0(\d+)", "replace": r"+86\1"}],
    "allow": {"agent": [r"\+861[3-9]\d{9}"]},
    "callback_poll_seconds": 0.5,
}
#: The credentials trunk_challenges.xml checks.
WITH_AUTH = {**TRUNK, "username": "trunkuser", "password": "trunk-secret"}


class Listener(asyncio.DatagramProtocol):
    """A UDP port that only notes what reaches it (a trunk or phone that must stay quiet)."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.append(data)


async def listen(port: int = 0) -> tuple[asyncio.DatagramTransport, Listener, int]:
    transport, listener = await asyncio.get_running_loop().create_datagram_endpoint(
        Listener, local_addr=("127.0.0.1", port)
    )
    return transport, listener, int(transport.get_extra_info("sockname")[1])


async def agent_phone(server: Server, folder: Path, scenario: str) -> Sipp:
    """The agent's phone: a SIPp UAS echoing the audio, registered for extension 1001."""
    port = free_port()
    phone = await Sipp(
        scenario,
        "",
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_port() & ~1),
        "-rtp_echo",
        "-trace_msg",
        "-message_file",
        str(folder / "agent-messages.log"),
        folder=folder,
        port=port,
        timeout=40,
    ).start()
    await register_phone(f"127.0.0.1:{server.voice.port}", port, folder=folder)
    return phone


async def trunk(folder: Path, scenario: str) -> Sipp:
    return await Sipp(
        scenario,
        "",
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_port() & ~1),
        "-trace_msg",
        "-message_file",
        str(folder / "trunk-messages.log"),
        folder=folder,
        port=TRUNK_PORT,
        timeout=40,
    ).start()


def received(log: Path, method: str) -> list[tuple[dt.datetime, str]]:
    """The ``method`` requests a SIPp received, with when, from its -message_file."""
    text = log.read_text(errors="replace")
    found = []
    for match in re.finditer(
        r"^-+ (\S+ \S+)\n.*?message received .*?:\n\n(.*?)(?=\n-+ \S+ \S+\n|\Z)",
        text,
        re.M | re.S,
    ):
        if match.group(2).startswith(method + " "):
            found.append((dt.datetime.fromisoformat(match.group(1)), match.group(2)))
    return found


def header(message: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.*)$", message, re.M | re.I)
    return match.group(1).strip() if match else ""


async def interaction(client: ApiClient, call_id: str) -> dict[str, Any]:
    for _ in range(100):  # written through the spool
        found = await client.get(f"/api/v1/interactions/{call_id}")
        if found.status == 200:
            return dict(found.body)
        await asyncio.sleep(0.1)
    pytest.fail(f"interaction {call_id} not recorded")


async def dial_audit(admin: ApiClient, count: int) -> list[dict[str, Any]]:
    for _ in range(50):  # the audit log is written through the spool
        entries = await admin.get("/api/v1/audit", action="call.dial")
        if len(entries.body["items"]) >= count:
            return list(entries.body["items"])
        await asyncio.sleep(0.1)
    pytest.fail("dialling not audited")


@pytest.mark.settings(sip=SIPP_MD5, outbound=WITH_AUTH)
async def test_click_to_call_rings_the_agent_then_the_customer_through_the_trunk(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    customer = await trunk(tmp_path, "trunk_challenges")
    phone = await agent_phone(server, tmp_path, "agent_answers")
    me = await client.login("agent")

    placed = await client.post("/api/v1/calls", {"number": NATIONAL})
    assert placed.status == 202, placed.body
    call_id = placed.body["id"]

    talked = await customer.finish()
    assert talked.returncode == 0, talked.errors or talked.stderr
    answered = await phone.finish()
    assert answered.returncode == 0, answered.errors or answered.stderr

    # The agent's phone rang first, showing the number; the trunk's INVITE came after.
    [(rung, ringing)] = received(tmp_path / "agent-messages.log", "INVITE")
    assert CUSTOMER in header(ringing, "From")
    first, second = received(tmp_path / "trunk-messages.log", "INVITE")
    assert rung < first[0]
    # To the rewritten number, with the caller ID; challenged, then with credentials.
    assert first[1].startswith(f"INVITE sip:{CUSTOMER}@127.0.0.1:{TRUNK_PORT} SIP/2.0")
    assert f"<sip:{CALLER_ID}@" in header(first[1], "From")
    assert header(first[1], "P-Asserted-Identity") == f"<sip:{CALLER_ID}@127.0.0.1>"
    assert header(first[1], "Authorization") == ""
    authorization = header(second[1], "Authorization")
    assert 'username="trunkuser"' in authorization and 'realm="trunk.example"' in authorization
    assert header(second[1], "Call-ID") == header(first[1], "Call-ID")
    assert header(first[1], "CSeq") == "1 INVITE" and header(second[1], "CSeq") == "2 INVITE"

    # Recorded as an outbound call with its recording: customer left, echoing agent right.
    record = await interaction(client, call_id)
    assert record["direction"] == "outbound" and record["channel"] == "voice"
    assert record["agent_id"] == me.body["user"]["id"]
    assert record["remote_identity"] == CUSTOMER
    assert record["answered_at"] is not None and record["end_reason"] == "customer_hung_up"
    assert record["has_recording"]
    assert server.calls is not None
    with wave.open(str(server.calls.recordings / f"{call_id}.wav")) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        frames = wav.readframes(wav.getnframes())
    left = b"".join(frames[i : i + 2] for i in range(0, len(frames), 4))
    right = b"".join(frames[i + 2 : i + 4] for i in range(0, len(frames), 4))
    assert energy(left) > 1000 and energy(right) > 1000

    admin = new_client()
    await admin.login("admin")
    [entry] = await dial_audit(admin, 1)
    assert entry["actor"] == "agent" and entry["target"] == f"number:{NATIONAL}"
    assert entry["detail"]["outcome"] == "allowed" and entry["detail"]["call_id"] == call_id


@pytest.mark.settings(sip=SIPP_MD5, outbound=TRUNK)
async def test_a_number_outside_the_roles_patterns_is_refused_and_nothing_rings(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    trunk_port, silent_trunk, _ = await listen(TRUNK_PORT)
    phone_port, silent_phone, contact_port = await listen()
    try:
        await register_phone(f"127.0.0.1:{server.voice.port}", contact_port, folder=tmp_path)
        await client.login("agent")
        # A premium-rate style number: valid, but no pattern of the agent role allows it.
        refused = await client.post("/api/v1/calls", {"number": "+88213456789"})
        assert refused.status == 403 and refused.body["error"]["code"] == "not_allowed"
        # Patterns are per role: the supervisor has none, so dials nothing at all.
        boss = new_client()
        await boss.login("super")
        refused = await boss.post("/api/v1/calls", {"number": CUSTOMER})
        assert refused.status == 403 and refused.body["error"]["code"] == "not_allowed"
        bad = await client.post("/api/v1/calls", {"number": "sip:100@evil"})
        assert bad.status == 422
        await asyncio.sleep(1.0)
        assert silent_trunk.received == [] and silent_phone.received == []
        assert server.outbound is not None and not server.outbound.active
    finally:
        trunk_port.close()
        phone_port.close()
    admin = new_client()
    await admin.login("admin")
    entries = await dial_audit(admin, 3)
    assert sorted((e["actor"], e["detail"]["outcome"]) for e in entries) == [
        ("agent", "invalid_field"),
        ("agent", "not_allowed"),
        ("super", "not_allowed"),
    ]


@pytest.mark.settings(sip=SIPP_MD5)
async def test_by_default_no_number_may_be_dialled(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    assert server.settings.outbound.allow == {}
    phone_port, silent_phone, contact_port = await listen()
    try:
        await register_phone(f"127.0.0.1:{server.voice.port}", contact_port, folder=tmp_path)
        for user in ("agent", "super", "admin"):
            api = new_client()
            await api.login(user)
            for number in (CUSTOMER, NATIONAL, "110"):
                refused = await api.post("/api/v1/calls", {"number": number})
                assert refused.status == 403, (user, number, refused.body)
        await asyncio.sleep(0.5)
        assert silent_phone.received == []
    finally:
        phone_port.close()


@pytest.mark.settings(sip=SIPP_MD5, outbound=TRUNK)
async def test_the_customer_is_not_called_when_the_agent_does_not_answer(
    server: Server, client: ApiClient, tmp_path: Path
) -> None:
    trunk_port, silent_trunk, _ = await listen(TRUNK_PORT)
    try:
        phone = await agent_phone(server, tmp_path, "agent_busy")
        await client.login("agent")
        placed = await client.post("/api/v1/calls", {"number": CUSTOMER})
        assert placed.status == 202, placed.body
        declined = await phone.finish()
        assert declined.returncode == 0, declined.errors or declined.stderr
        record = await interaction(client, placed.body["id"])
        assert record["direction"] == "outbound" and record["end_reason"] == "agent_busy"
        assert record["answered_at"] is None and not record["has_recording"]
        assert silent_trunk.received == []
    finally:
        trunk_port.close()


@pytest.mark.settings(sip=SIPP_MD5, outbound=TRUNK)
async def test_a_due_callback_rings_its_available_agent_then_the_customer(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    customer = await trunk(tmp_path, "trunk_answers")
    phone = await agent_phone(server, tmp_path, "agent_answers")
    me = await client.login("agent")
    agent_id = me.body["user"]["id"]
    console = Socket(await client.console())
    await console.type("welcome")
    await console.send(type="presence", presence="available", ref="p")
    await console.type("ok", ref="p")

    due = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    planned = await client.post(
        "/api/v1/callbacks", {"phone": "13800138000", "due_at": due, "assignee_id": agent_id}
    )
    assert planned.status == 201, planned.body

    # While calling out the agent shows as away, so no inbound call is offered.
    await console.type("presence", presence="away", reason="outbound_call")
    talked = await customer.finish()
    assert talked.returncode == 0, talked.errors or talked.stderr
    answered = await phone.finish()
    assert answered.returncode == 0, answered.errors or answered.stderr
    await console.type("presence", presence="available")

    for _ in range(50):
        done = await client.get("/api/v1/callbacks", status="done")
        if done.body["items"]:
            break
        await asyncio.sleep(0.1)
    [callback] = done.body["items"]
    assert callback["id"] == planned.body["id"] and "answered" in callback["outcome"]
    assert callback["completed_at"] is not None

    for _ in range(100):  # the interaction is written through the spool
        calls = await client.get("/api/v1/interactions", agent_id=str(agent_id))
        if calls.body["items"]:
            break
        await asyncio.sleep(0.1)
    [record] = calls.body["items"]
    assert record["direction"] == "outbound" and record["remote_identity"] == CUSTOMER
    assert record["collected"] == {"callback_id": planned.body["id"]}
    assert record["has_recording"]
