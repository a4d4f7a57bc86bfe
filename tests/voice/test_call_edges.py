"""Calls at their edges, with SIPp peers: CANCEL, abandon, busy phones, lost ACK, retransmission.

Each test starts its own server with the support line (100: press 1 for the
support queue), registers SIPp agent phones as test_calls.py does, and
checks both what the peers saw (each SIPp scenario is strict about what may
arrive) and what the server made of it: console events, the interaction
recorded through the spool, RTP ports given back, no call left behind.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from callcenter.server import Server
from callcenter.sip.endpoint import ServerRequest
from tests.conftest import ApiClient, add_user
from tests.voice.sipp import Sipp, SippRun, available_console, free_port, register_phone, sipp
from tests.voice.test_robustness import (
    close_left_open,
    errors_logged,
    ports_free,
    track_rtp_ports,
)

FLOWS = Path(__file__).parent / "flows"
SIP = {"trunks": ["127.0.0.1"], "digest_algorithms": ["MD5", "SHA-256"]}
VOICE = {"numbers": {"100": "support"}, "flows_directory": str(FLOWS)}
EDGES = pytest.mark.settings(sip=SIP, voice=VOICE)
#: Shorter timers where a test waits for transactions to end or for 64*T1.
SHORT_TIMERS = {"t1_ms": 50, "t2_ms": 400, "t4_ms": 500}


def target(server: Server) -> str:
    assert server.voice is not None
    return f"127.0.0.1:{server.voice.port}"


async def support_queue(client: ApiClient) -> None:
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 30})
    assert made.status == 201, made.body


async def agent_phone(
    phones: list[Sipp],
    server: Server,
    folder: Path,
    scenario: str,
    extension: str,
    secret: str,
    *args: str,
    calls: int = 1,
) -> Sipp:
    """A SIPp phone running ``scenario`` (``calls`` times), registered for ``extension``."""
    uas_port, media_port = free_port(), free_port() & ~1
    phone = await Sipp(
        scenario,
        "",
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media_port),
        "-rtp_echo",
        *args,
        folder=folder,
        port=uas_port,
        calls=calls,
        timeout=30,
    ).start()
    phones.append(phone)
    await register_phone(
        target(server), uas_port, folder=folder, extension=extension, secret=secret
    )
    return phone


async def caller(
    server: Server, folder: Path, scenario: str, *args: str, timeout: float = 25
) -> SippRun:
    return await sipp(
        scenario,
        target(server),
        "-s",
        "100",
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_port() & ~1),
        *args,
        folder=folder,
        timeout=timeout,
    )


def traced(folder: Path, name: str) -> tuple[str, ...]:
    """SIPp arguments that log every message sent and received to ``folder/name``."""
    return ("-trace_msg", "-message_file", str(folder / name))


def messages(log: Path, direction: str) -> list[str]:
    """The messages SIPp logged as ``direction`` ("sent" or "received"), in order."""
    found = []
    for block in re.split(r"\n-{20,} [^\n]*\n", log.read_text(errors="replace")):
        header, _, text = block.partition("\n\n")
        if re.search(rf"message {direction}\b", header):
            found.append(text.strip("\n"))
    return found


def cseq(message: str) -> str:
    """The CSeq of a message SIPp logged."""
    found = re.search(r"^CSeq:[ \t]*(.*)$", message, re.MULTILINE | re.IGNORECASE)
    return found.group(1).strip() if found else ""


def passed(run: SippRun) -> bool:
    return run.returncode == 0


async def recorded(client: ApiClient, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The voice interactions, once the spool has written at least one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        reply = await client.get("/api/v1/interactions", channel="voice")
        assert reply.status == 200, reply.body
        if reply.body["items"] or loop.time() > deadline:
            return list(reply.body["items"])
        await asyncio.sleep(0.1)


async def calls_cleared(server: Server, ports: int, timeout: float = 10.0) -> bool:
    """Whether, within ``timeout``, no call is left and every RTP port is given back.

    Tests wait for this before judging, so that nothing of a call is still
    running when the server stops.
    """
    assert server.calls is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while server.calls.calls or server.calls.allocator.available != ports:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


# -- CANCEL ----------------------------------------------------------------------------------


@pytest.mark.settings(sip={**SIP, **SHORT_TIMERS}, voice=VOICE)
async def test_cancel_while_the_invite_is_taken_gets_200_and_487(
    server: Server,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING)
    opened = track_rtp_ports(monkeypatch)
    ports = ports_free(server)
    try:
        run = await caller(server, tmp_path, "caller_cancels", "-t", "t1")
        cleared = await calls_cleared(server, ports)
    finally:
        close_left_open(opened)
    assert passed(run), run.errors or run.stderr
    assert cleared
    assert errors_logged(caplog) == []


@pytest.mark.settings(sip={**SIP, **SHORT_TIMERS}, voice=VOICE)
async def test_cancel_crossing_the_200_is_answered_200_and_changes_nothing(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ports = ports_free(server)
    run = await caller(server, tmp_path, "caller_cancels_late")
    cleared = await calls_cleared(server, ports)
    assert passed(run), run.errors or run.stderr
    assert cleared
    assert errors_logged(caplog) == []


async def hang_up_while_ringing(
    phones: list[Sipp], server: Server, client: ApiClient, new_client: Any, folder: Path
) -> tuple[SippRun, list[str]]:
    """The caller hangs up while the agent's phone rings; the phone's run and what it received."""
    await support_queue(client)
    ports = ports_free(server)
    phone = await agent_phone(
        phones,
        server,
        folder,
        "agent_rings_cancelled",
        "1001",
        "sip-secret-1001",
        *traced(folder, "phone"),
    )
    console = await available_console(new_client, "agent")
    run = await caller(server, folder, "caller_abandons", "-set", "wait_ms", "4000")
    assert passed(run), run.errors or run.stderr
    rang = await phone.finish()

    offer = await console.type("offer")
    withdrawn = await console.type("offer_withdrawn", contact_id=offer["contact_id"])
    assert withdrawn["reason"] == "abandoned"
    [interaction] = await recorded(client)
    assert interaction["id"] == offer["contact_id"]
    assert (interaction["end_reason"], interaction["answered_at"]) == ("abandoned", None)
    assert await calls_cleared(server, ports)
    return rang, messages(folder / "phone", "received")


@EDGES
async def test_caller_hanging_up_while_the_agent_rings_cancels_the_ringing(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    # The phone rang (180), got the CANCEL, answered it 200 and the INVITE 487, got the ACK;
    # an abandon, recorded as such, and the agent's offer withdrawn.
    rang, received = await hang_up_while_ringing(phones, server, client, new_client, tmp_path)
    assert passed(rang), rang.errors or rang.stderr
    assert [m.split(" ", 1)[0] for m in received[:2]] == ["INVITE", "CANCEL"]
    assert received[-1].startswith("ACK ")


@EDGES
async def test_ringing_is_cancelled_once(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    _, received = await hang_up_while_ringing(phones, server, client, new_client, tmp_path)
    assert [m.split(" ", 1)[0] for m in received] == ["INVITE", "CANCEL", "ACK"]


# -- abandon ----------------------------------------------------------------------------------


@EDGES
async def test_caller_hanging_up_in_the_queue_is_an_abandon_without_a_ticket(
    server: Server, client: ApiClient, tmp_path: Path
) -> None:
    await support_queue(client)
    ports = ports_free(server)
    run = await caller(server, tmp_path, "caller_abandons", "-set", "wait_ms", "2500")
    assert passed(run), run.errors or run.stderr

    [interaction] = await recorded(client)
    assert interaction["channel"] == "voice"
    assert interaction["end_reason"] == "abandoned"
    assert interaction["queue_id"] is not None
    assert (interaction["agent_id"], interaction["answered_at"]) == (None, None)
    assert interaction["remote_identity"] == "+8613800138000"
    assert interaction["ivr_path"]
    one = await client.get(f"/api/v1/interactions/{interaction['id']}")
    assert one.status == 200 and one.body["ticket_ids"] == []
    tickets = await client.get("/api/v1/tickets")
    assert tickets.status == 200 and tickets.body["items"] == []
    assert await calls_cleared(server, ports)


# -- a busy phone ---------------------------------------------------------------------------------


@EDGES
async def test_busy_phone_is_a_rejection_and_the_call_goes_to_the_next_agent(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    await support_queue(client)
    await add_user(server, "agent2", "agent", sip_extension="1002", sip_secret="sip-secret-1002")
    ports = ports_free(server)
    busy = await agent_phone(phones, server, tmp_path, "agent_busy", "1001", "sip-secret-1001")
    answers = await agent_phone(
        phones, server, tmp_path, "agent_answers", "1002", "sip-secret-1002"
    )
    # The busy agent has waited longest, so the call is offered to it first.
    first = await available_console(new_client, "agent")
    await asyncio.sleep(0.2)
    second = await available_console(new_client, "agent2")

    run = await caller(server, tmp_path, "caller_menu")
    assert passed(run), run.errors or run.stderr
    for phone in (busy, answers):
        done = await phone.finish()
        assert passed(done), done.errors or done.stderr

    offer = await first.type("offer")
    withdrawn = await first.type("offer_withdrawn", contact_id=offer["contact_id"])
    assert withdrawn["reason"] == "rejected"
    await second.type("offer", contact_id=offer["contact_id"])
    await second.type("connected", contact_id=offer["contact_id"])
    assert await calls_cleared(server, ports)


@EDGES
async def test_busy_phone_of_the_only_agent_is_not_rung_again_and_the_call_waits(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, phones: list[Sipp]
) -> None:
    await support_queue(client)
    ports = ports_free(server)
    # A phone that stays busy: it answers 486 to every INVITE, as often as it comes.
    busy = await agent_phone(
        phones,
        server,
        tmp_path,
        "agent_busy",
        "1001",
        "sip-secret-1001",
        *traced(tmp_path, "busy"),
        calls=10_000,
    )
    await available_console(new_client, "agent")
    run = await caller(server, tmp_path, "caller_abandons", "-set", "wait_ms", "4000")
    assert passed(run), run.errors or run.stderr
    assert busy.process is not None
    busy.process.terminate()
    await busy.finish()

    invites = [m for m in messages(tmp_path / "busy", "received") if m.startswith("INVITE")]
    [interaction] = await recorded(client)
    assert (len(invites), interaction["end_reason"]) == (1, "abandoned")
    assert await calls_cleared(server, ports)


# -- retransmissions ------------------------------------------------------------------------------


@pytest.mark.settings(sip={**SIP, "t1_ms": 100, "t2_ms": 800}, voice=VOICE)
async def test_lost_ack_gets_the_200_again_and_the_call_goes_on(
    server: Server, tmp_path: Path
) -> None:
    ports = ports_free(server)
    # The 200 comes again after T1 and, once acknowledged, never again; no BYE comes
    # either, even past 64*T1 (6.4 s), when a call never acknowledged is hung up.
    run = await caller(
        server,
        tmp_path,
        "caller_late_ack",
        "-nr",
        "-set",
        "wait_ms",
        "7500",
        *traced(tmp_path, "caller"),
    )
    assert passed(run), run.errors or run.stderr
    answers = [m for m in messages(tmp_path / "caller", "received") if "INVITE" in cseq(m)]
    ok = [m for m in answers if m.startswith("SIP/2.0 200")]
    assert len(ok) == 2 and ok[0] == ok[1]  # the very same 200, sent again
    assert await calls_cleared(server, ports)


#: T2 just over T1: the 200's copies add up to exactly 64*T1 (1.28 s), when timer L ends
#: the INVITE transaction; the copy due then comes when the transaction is gone.
NO_ACK_TIMERS = {"t1_ms": 20, "t2_ms": 21}


@pytest.mark.settings(sip={**SIP, **NO_ACK_TIMERS}, voice=VOICE)
async def test_caller_who_never_acknowledges_is_hung_up_after_64_t1(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert server.calls is not None
    caplog.set_level(logging.WARNING)
    ports = ports_free(server)
    try:
        run = await caller(server, tmp_path, "caller_never_acks", timeout=6)
        cleared = await calls_cleared(server, ports, timeout=3.0)
    finally:
        # Until then, collect what the dead task raised, so that asyncio does not log
        # "exception was never retrieved" into another test when the task is collected.
        for call in list(server.calls.calls.values()):
            task = call.caller._retransmit
            if task is not None and task.done() and not task.cancelled():
                task.exception()
    assert passed(run), run.errors or run.stderr
    assert cleared
    assert errors_logged(caplog) == []


@EDGES
async def test_retransmitted_invite_gets_the_same_answer_and_makes_one_call(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server.calls is not None
    ports = ports_free(server)
    seen: list[ServerRequest] = []
    invite = server.calls.invite

    async def counted(request: ServerRequest) -> None:
        seen.append(request)
        await invite(request)

    monkeypatch.setattr(server.calls, "invite", counted)
    run = await caller(
        server, tmp_path, "caller_retransmits_invite", "-nr", *traced(tmp_path, "caller")
    )
    assert passed(run), run.errors or run.stderr
    # The core took one INVITE; the copies got the answer again: 100 while it was being
    # taken (unless the 200 was quicker), and the very same 200 once it was answered.
    assert len(seen) == 1
    sent = [m for m in messages(tmp_path / "caller", "sent") if m.startswith("INVITE")]
    assert len(sent) == 3 and len(set(sent)) == 1
    answers = [m for m in messages(tmp_path / "caller", "received") if "INVITE" in cseq(m)]
    trying = [m for m in answers if m.startswith("SIP/2.0 100")]
    ok = [m for m in answers if m.startswith("SIP/2.0 200")]
    assert len(trying) + len(ok) == len(answers) and 1 <= len(trying) <= 2
    assert len(ok) == 2 and ok[0] == ok[1]
    assert await calls_cleared(server, ports)


# -- session timers (RFC 4028) -------------------------------------------------------------

SESSION = {**SIP, "session_expires_seconds": 3, "min_session_expires_seconds": 2}


@pytest.mark.settings(sip=SESSION, voice=VOICE)
async def test_a_session_not_refreshed_is_hung_up(
    server: Server, client: ApiClient, tmp_path: Path
) -> None:
    ports = ports_free(server)
    run = await caller(server, tmp_path, "caller_session_expires")
    assert passed(run), run.errors or run.stderr  # our BYE came within the interval
    assert await calls_cleared(server, ports)
    await client.login("super")
    [record] = await recorded(client)
    assert record["end_reason"] == "session_expired"


@pytest.mark.settings(sip=SESSION, voice=VOICE)
async def test_refreshes_keep_the_session_until_they_stop(
    server: Server, client: ApiClient, tmp_path: Path
) -> None:
    ports = ports_free(server)
    started = time.monotonic()
    run = await caller(server, tmp_path, "caller_session_refreshes")
    assert passed(run), run.errors or run.stderr  # each UPDATE answered, no BYE before
    # Two refreshes 1.2 s apart, then 2 s more (3 s less a third) before our BYE.
    assert time.monotonic() - started >= 4.0
    assert await calls_cleared(server, ports)
    await client.login("super")
    [record] = await recorded(client)
    assert record["end_reason"] == "session_expired"


@pytest.mark.settings(sip=SESSION, voice=VOICE)
async def test_too_short_a_session_is_refused_with_422(server: Server, tmp_path: Path) -> None:
    ports = ports_free(server)
    run = await caller(server, tmp_path, "caller_session_too_short")
    assert passed(run), run.errors or run.stderr  # 422 with Min-SE: 2
    assert await calls_cleared(server, ports)
