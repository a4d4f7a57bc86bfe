"""Benchmark of media: IVR calls hearing a long prompt, and bridged, recorded calls to agents.

Project path: the real server (``python -m callcenter.cli serve``, this
checkout's code) in its own process, pinned to one core, with an SQLite
database in a temporary folder (or, with ``--database postgresql``, a
PostgreSQL database made for the run) migrated by ``callcenter db upgrade``;
everything else runs on the other core. Two figures, each a ladder of call
counts run until a step fails:

* IVR calls, number ``200`` -> ``bench/flows/long_prompt.yaml``: a menu whose
  prompt (TTS, about 27 s) plays from the shared 20 ms media clock. Every
  caller sends G.711 u-law audio every 20 ms and presses 1 (RFC 4733 events)
  every few seconds, which barges in and starts the prompt over.
* Bridged calls, number ``300`` -> ``bench/flows/to_agent.yaml``: straight
  into a queue whose agents are available in their consoles (a ``/ws/agent``
  websocket each, with an API token, presence available) and registered from
  phones that are one SIPp UAS with ``-rtp_echo`` (``agent_echo.xml``; the
  registrations come from ``agents_register.xml``, a SIPp run a phone).
  The call is offered by ringing the agent's phone, answered, bridged and
  recorded; the agent's phone echoes the caller's audio back through the
  bridge.

The callers are this file run again as a child process (``--caller``), a small
SIP user agent (INVITE, ACK, BYE over UDP) with one RTP socket per call. SIPp
could play the audio, but it cannot say when each packet reached it; this
caller reads the kernel's receive time of every packet (``SO_TIMESTAMPNS``),
so its own scheduling does not blur the figures. The caller's packets go out
on 20 phases 1 ms apart, as independent phones would, each audio packet
numbered in its first four payload bytes.

What is measured, over ``--seconds`` after a warm-up, for each step:

* IVR: the prompt's packets as they arrive. *Lateness* is how much later than
  its timestamp says a packet arrives, compared with the earliest packet of
  its talkspurt: ``(arrival - timestamp / 8000) - min(...)`` (a prompt started
  over opens a new talkspurt). *Lost* counts sequence numbers that never came.
  *Audio skips* count talkspurts that did not start the prompt over: the
  server's media clock skipped ticks after a stall longer than three ticks
  and moved the timestamps on (the audio of those ticks was never sent).
* Bridged: the caller's own packets coming back through server, agent phone
  and server again. *Lateness* is each packet's round trip less the call's
  fastest; *lost* counts numbered packets that never came back.

A step passes when every call was set up (and, bridged, heard its echo),
nothing was lost, no audio was skipped and the p99 lateness is under 10 ms;
a step that misses by a glitch only (a packet in ten thousand or fewer) is
run three times and passes when two runs do. The figure is the largest
passing call count; the ladder stops at the first failing step. The server's CPU (share of its core
over the measured seconds), the kernel's drops at the server's RTP sockets,
and the caller's own health (its tick lateness and socket drops; a caller
that fell behind makes a step's figures its own, and says so) are printed
for every step. After the bridged ladder the recordings and the
interactions in the database are counted.

Ceiling: the same caller against a bare asyncio loop in its own process on
the server's core (``--relay``): for IVR, one UDP socket a call that takes
the caller's packets and sends one 172-byte packet a call every 20 ms from
one clock; for bridged calls, two sockets a call that hand each packet on to
the same echoing SIPp and back. No SIP, no IVR, no recording: what moving the
same packets costs a Python event loop on that core. The ceiling climbs the
same ladder (and beyond, up to the cap) until it fails.

Run from the project root::

    .venv/bin/python bench/media_calls.py [--quick] [--seconds S] [--only ivr|bridged]
        [--database sqlite|postgresql] [--nice N]

The last line printed is one JSON object with the figures. Needs SIPp (Debian
``sip-tester``), espeak-ng for the prompt, and ``taskset``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import itertools
import json
import math
import os
import random
import secrets
import signal
import socket
import struct
import sys
import tempfile
import time
from array import array
from collections.abc import AsyncIterator, Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
from sip_cps import (
    CLIENT_CORE,
    NOISY_CORES,
    NOISY_RETRIES,
    ROOT,
    SCENARIOS,
    SERVER_CORE,
    RunFailed,
    add_nice_option,
    busy_seconds,
    child,
    cpu_seconds,
    database_url,
    free_port,
    jsonable,
    niceness,
    percentile,
    pinned,
    pinning_possible,
    run_cli,
    run_sipp,
    server,
    server_config,
    set_niceness,
    settle_self,
    sipp_background,
    sipp_folder,
    spawn,
    stop_process,
    udp_drops,
)

THIS_FILE = Path(__file__).resolve()
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
if str(ROOT) not in sys.path:
    # What this file imports of the package comes from its own checkout too.
    sys.path.insert(1, str(ROOT))
IVR_NUMBER, IVR_FLOW = "200", "long_prompt"
AGENT_NUMBER, AGENT_FLOW = "300", "to_agent"
QUEUE = "bench_voice"
#: Call counts of the ladders (the full run, then ``--quick``).
IVR_STEPS = (100, 200, 300, 400, 500, 600, 800, 1000)
QUICK_IVR_STEPS = (50, 100, 200)
BRIDGED_STEPS = (50, 100, 150, 200, 250, 300, 400)
QUICK_BRIDGED_STEPS = (25, 50, 100)
#: The ceiling goes on past the ladder by these factors of its last step.
CEILING_EXTRA = (1.5, 2.0, 3.0, 4.0)
MEASURE_SECONDS = 20.0
QUICK_MEASURE_SECONDS = 5.0
WARMUP_SECONDS = 3.0
#: Calls placed a second while a step sets up.
SETUP_RATE = 100
#: Each IVR caller presses 1 this often (a new prompt each time).
DIGIT_EVERY = 4.0
#: The bar a step must clear: p99 lateness under this many ms.
MAX_LATENESS_MS = 10.0
#: A step that fails by no more than one packet lost or skipped in this many
#: (all else in order) is run three times in all and passes if two runs pass.
GLITCH_SHARE = 10_000
GLITCH_RUNS = 3
GLITCH_RUNS_TO_PASS = 2
#: RTP ports the server may use; the range leaves room for 2,500 legs.
RTP_PORTS = (20000, 24999)
RTP_RANGE = range(RTP_PORTS[0], RTP_PORTS[1] + 1)
#: How long a step may take to set up all its calls (and hear their echoes).
SETUP_TIMEOUT = 60.0
#: After the measured seconds, how long the last packets have to come back.
DRAIN_SECONDS = 1.0
SETTLE_SECONDS = 3.0
#: Agents' SIP secrets (digest) and their extensions' first number.
AGENT_SECRET = "bench-agent-secret"
FIRST_EXTENSION = 7000
JOIN_TIMEOUT = 60.0
CONNECTS_AT_ONCE = 50
REGISTERS_AT_ONCE = 10

# RTP as the caller speaks it.
PCMU = 0
EVENT_PT = 101
SAMPLES = 160
PTIME = 0.020
#: Phases of the caller's 20 ms clock, so its calls do not all send at once.
PHASES = 20
#: Leading packets of a talkspurt compared with the prompt's start (at least
#: the smaller number of them, or the talkspurt is not judged).
SIGNATURE_FRAMES = 10
SIGNATURE_MIN = 3
#: Audio skips described in the figures, at most.
MAX_SKIP_DETAILS = 5
SOCKET_BUFFER = 1 << 20
#: Linux's SO_TIMESTAMPNS (Python's socket module does not name it).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
RTP_HEADER = struct.Struct("!BBHII")
TAG = struct.Struct("!I")
TIMESPEC = struct.Struct("qq")
EVENT = struct.Struct("!BBH")
#: RFC 4733 key press: packets with growing duration, then the end three times.
DIGIT_PACKETS = 5
DIGIT_ENDS = 3
DIGIT_VOLUME = 10
DIGIT_CODE = 1
#: A packet of ours that comes back later than this is not taken for ours
#: (music on hold carries arbitrary bytes where our number would be).
ECHO_WITHIN = 5.0
#: RFC 3261 timer T1 and the caller's give-up time for a transaction.
T1 = 0.5
TRANSACTION_TIMEOUT = 16.0


# -- the caller (a child process) ---------------------------------------------------


def tone_frames() -> list[bytes]:
    """One second of a 440 Hz tone at -13 dBm0 as 50 u-law frames."""
    from callcenter.media import g711

    amplitude = 0.22 * 32767
    samples = array(
        "h", (round(amplitude * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8000))
    )
    if sys.byteorder == "big":
        samples.byteswap()
    codes = g711.pcm_to_ulaw(samples.tobytes())
    return [codes[i : i + SAMPLES] for i in range(0, len(codes), SAMPLES)]


class CallerLeg:
    """One caller's RTP: sends audio (and key presses) on its phase, keeps what arrives."""

    def __init__(self, index: int, frames: list[bytes]) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind(("127.0.0.1", 0))
        self.index = index
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.frames = frames
        self.remote: tuple[str, int] | None = None
        self.ssrc = random.getrandbits(32)
        self.sequence = random.getrandbits(16)
        self.timestamp = random.getrandbits(32)
        self.marker = True
        #: Send time (wall clock) of each numbered audio packet, by number.
        self.sent_at = array("d")
        self.send_errors = 0
        self.pending_event: list[bytes] = []
        self.next_digit = math.inf
        self.digits_sent: list[float] = []
        # What arrived: kernel receive time, sequence, timestamp, marker and
        # payload type, the number in the payload (-1 if none), the payload.
        self.rx_time = array("d")
        self.rx_sequence = array("H")
        self.rx_timestamp = array("Q")
        self.rx_flags = array("B")
        self.rx_tag = array("q")
        #: The first payloads of each talkspurt (by index into the rx arrays).
        self.spurt_payloads: dict[int, list[bytes]] = {}
        self._spurt: int | None = None

    def readable(self) -> None:
        receive = self.sock.recvmsg
        while True:
            try:
                data, ancillary, _, _ = receive(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(data) < 12:
                continue
            _, second, sequence, timestamp, _ = RTP_HEADER.unpack_from(data)
            if ancillary:
                seconds, nanoseconds = TIMESPEC.unpack_from(ancillary[0][2])
                arrived = seconds + nanoseconds * 1e-9
            else:
                arrived = time.time()
            payload_type = second & 0x7F
            index = len(self.rx_time)
            self.rx_time.append(arrived)
            self.rx_sequence.append(sequence)
            self.rx_timestamp.append(timestamp)
            self.rx_flags.append(second)
            if payload_type == PCMU and len(data) >= 16:
                self.rx_tag.append(TAG.unpack_from(data, 12)[0])
                if second & 0x80 or self._spurt is None:
                    self._spurt = index
                    self.spurt_payloads[index] = []
                kept = self.spurt_payloads[self._spurt]
                if len(kept) < SIGNATURE_FRAMES:
                    kept.append(data[12:])
            else:
                self.rx_tag.append(-1)

    def tick(self, wall: float) -> None:
        """One 20 ms frame: a key-press packet while one is going, else numbered audio."""
        assert self.remote is not None
        if wall >= self.next_digit and not self.pending_event:
            self._press(wall)
        if self.pending_event:
            packet = self.pending_event.pop(0)
            number = -1
        else:
            number = len(self.sent_at)
            frame = self.frames[number % len(self.frames)]
            header = RTP_HEADER.pack(
                0x80,
                (0x80 if self.marker else 0) | PCMU,
                self.sequence,
                self.timestamp,
                self.ssrc,
            )
            packet = header + TAG.pack(number) + frame[TAG.size :]
            self.marker = False
        try:
            self.sock.sendto(packet, self.remote)
        except OSError:
            self.send_errors += 1
        if number >= 0:
            self.sent_at.append(wall)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + SAMPLES) & 0xFFFFFFFF

    def _press(self, wall: float) -> None:
        """Queue the packets of one key press (RFC 4733 2.5), starting at this frame."""
        self.digits_sent.append(wall)
        self.next_digit += DIGIT_EVERY
        start = self.timestamp
        packets = []
        for count in range(DIGIT_PACKETS + DIGIT_ENDS):
            end = count >= DIGIT_PACKETS
            duration = SAMPLES * min(count + 1, DIGIT_PACKETS)
            header = RTP_HEADER.pack(
                0x80,
                (0x80 if count == 0 else 0) | EVENT_PT,
                (self.sequence + count) & 0xFFFF,
                start,
                self.ssrc,
            )
            flags = (0x80 if end else 0) | DIGIT_VOLUME
            packets.append(header + EVENT.pack(DIGIT_CODE, flags, duration))
        self.pending_event = packets
        # Audio after the key press opens a new talkspurt.
        self.marker = True

    def echoed(self) -> bool:
        """Whether one of this leg's own numbered packets has come back (music does not count)."""
        sent = len(self.sent_at)
        for tag, arrived in zip(self.rx_tag, self.rx_time, strict=True):
            if 0 <= tag < sent and 0 <= arrived - self.sent_at[tag] < ECHO_WITHIN:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


class Pacer:
    """The caller's 20 ms clock: ``PHASES`` timers, each sending for its share of the legs."""

    def __init__(self, legs: list[CallerLeg]) -> None:
        self.loop = asyncio.get_running_loop()
        self.groups = [legs[phase::PHASES] for phase in range(PHASES)]
        self.origin = self.loop.time() + 0.05
        self.lateness: list[float] = []
        self.skipped = 0
        self.measuring = False
        self._handles: list[asyncio.TimerHandle | None] = [None] * PHASES
        for phase in range(PHASES):
            self._schedule(phase, 0)

    def _due(self, phase: int, tick: int) -> float:
        return self.origin + tick * PTIME + phase * PTIME / PHASES

    def _schedule(self, phase: int, tick: int) -> None:
        self._handles[phase] = self.loop.call_at(self._due(phase, tick), self._tick, phase, tick)

    def _tick(self, phase: int, tick: int) -> None:
        late = self.loop.time() - self._due(phase, tick)
        if self.measuring:
            self.lateness.append(late)
        wall = time.time()
        for leg in self.groups[phase]:
            if leg.remote is not None:
                leg.tick(wall)
        behind = int(late / PTIME)
        if behind > 3:
            self.skipped += behind
            tick += behind
        self._schedule(phase, tick + 1)

    def stop(self) -> None:
        for handle in self._handles:
            if handle is not None:
                handle.cancel()


def sip_fields(data: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """Start line, header fields (lower-case names, compact forms expanded) and body."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    compact = {
        "v": "via",
        "f": "from",
        "t": "to",
        "i": "call-id",
        "m": "contact",
        "l": "content-length",
    }
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        fields.append((compact.get(key, key), value.strip()))
    return lines[0], fields, body


def first(fields: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in fields if key == name), "")


def tag_of(value: str) -> str:
    for param in value.split(";")[1:]:
        key, _, tag = param.partition("=")
        if key.strip().lower() == "tag":
            return tag.strip()
    return ""


def sdp_media(body: bytes) -> tuple[str, int] | None:
    """The audio address of an SDP body (c= and m=audio), or None."""
    address, port = "", 0
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("c=IN IP4 "):
            address = line[9:].strip()
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return (address, port) if address and port else None


@dataclass(eq=False)
class SipCall:
    leg: CallerLeg
    call_id: str
    tag: str
    branch: str
    invite: bytes
    established: asyncio.Future[bool]
    state: str = "calling"
    remote_tag: str = ""
    remote_target: str = ""
    status: int = 0
    placed_at: float = 0.0
    setup_seconds: float = math.nan
    bye: bytes = b""
    bye_done: asyncio.Future[int] | None = None
    ended_by_server: bool = False


class SipCaller(asyncio.DatagramProtocol):
    """Just enough of a SIP user agent over UDP to place, keep and end the calls."""

    def __init__(self, target: tuple[str, int], number: str) -> None:
        self.target = target
        self.number = number
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.calls: dict[str, SipCall] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not a DatagramTransport subclass before Python 3.12, but one in all but name.
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        self.port = sock.getsockname()[1]

    def _send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.target)

    def _message(self, start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
        lines = [start, *(f"{name}: {value}" for name, value in headers)]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport"

    def place(self, leg: CallerLeg) -> SipCall:
        host, port = self.target
        call_id = f"{secrets.token_hex(8)}@127.0.0.1"
        tag, branch = secrets.token_hex(4), f"z9hG4bK{secrets.token_hex(8)}"
        sdp = (
            "v=0\r\n"
            f"o=caller {leg.index} 1 IN IP4 127.0.0.1\r\n"
            "s=-\r\n"
            "c=IN IP4 127.0.0.1\r\n"
            "t=0 0\r\n"
            f"m=audio {leg.port} RTP/AVP {PCMU} {EVENT_PT}\r\n"
            f"a=rtpmap:{PCMU} PCMU/8000\r\n"
            f"a=rtpmap:{EVENT_PT} telephone-event/8000\r\n"
            f"a=fmtp:{EVENT_PT} 0-15\r\n"
            "a=ptime:20\r\n"
            "a=sendrecv\r\n"
        ).encode()
        caller = f"+86138{leg.index:08d}"
        invite = self._message(
            f"INVITE sip:{self.number}@{host}:{port} SIP/2.0",
            [
                ("Via", self._via(branch)),
                ("Max-Forwards", "70"),
                ("From", f'"Caller {leg.index}" <sip:{caller}@127.0.0.1>;tag={tag}'),
                ("To", f"<sip:{self.number}@{host}:{port}>"),
                ("Call-ID", call_id),
                ("CSeq", "1 INVITE"),
                ("Contact", f"<sip:caller@127.0.0.1:{self.port}>"),
                ("Content-Type", "application/sdp"),
            ],
            sdp,
        )
        call = SipCall(leg, call_id, tag, branch, invite, self.loop.create_future())
        call.placed_at = time.perf_counter()
        self.calls[call_id] = call
        self._send(invite)
        self.loop.call_later(T1, self._resend_invite, call, T1)
        return call

    def _resend_invite(self, call: SipCall, interval: float) -> None:
        if call.state != "calling":
            return
        if time.perf_counter() - call.placed_at > TRANSACTION_TIMEOUT:
            call.state = "failed"
            call.status = 408
            if not call.established.done():
                call.established.set_result(False)
            return
        self._send(call.invite)
        self.loop.call_later(interval * 2, self._resend_invite, call, interval * 2)

    def _dialog_headers(self, call: SipCall, branch: str, cseq: str) -> list[tuple[str, str]]:
        host, port = self.target
        caller = f"+86138{call.leg.index:08d}"
        return [
            ("Via", self._via(branch)),
            ("Max-Forwards", "70"),
            ("From", f'"Caller {call.leg.index}" <sip:{caller}@127.0.0.1>;tag={call.tag}'),
            ("To", f"<sip:{self.number}@{host}:{port}>;tag={call.remote_tag}"),
            ("Call-ID", call.call_id),
            ("CSeq", cseq),
        ]

    def hang_up(self, call: SipCall) -> asyncio.Future[int]:
        done: asyncio.Future[int] = self.loop.create_future()
        call.bye_done = done
        if call.state != "up" or call.ended_by_server:
            done.set_result(0)
            return done
        call.state = "ending"
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        call.bye = self._message(
            f"BYE {call.remote_target} SIP/2.0", self._dialog_headers(call, branch, "2 BYE")
        )
        self._send(call.bye)
        self.loop.call_later(T1, self._resend_bye, call, T1, time.perf_counter())
        return done

    def _resend_bye(self, call: SipCall, interval: float, began: float) -> None:
        if call.bye_done is None or call.bye_done.done():
            return
        if time.perf_counter() - began > TRANSACTION_TIMEOUT:
            call.bye_done.set_result(408)
            return
        self._send(call.bye)
        self.loop.call_later(min(interval * 2, 4.0), self._resend_bye, call, interval * 2, began)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not data.strip():
            return
        start, fields, body = sip_fields(data)
        call = self.calls.get(first(fields, "call-id"))
        if start.startswith("SIP/2.0 "):
            if call is not None:
                self._response(call, int(start.split()[1]), fields, body)
            return
        method = start.split(" ", 1)[0]
        if method == "ACK":
            return
        # A request from the server (a BYE): answer it as it came.
        kept = [(n, v) for n, v in fields if n in ("via", "from", "to", "call-id", "cseq")]
        names = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}
        answer = self._message("SIP/2.0 200 OK", [(names[n], v) for n, v in kept])
        assert self.transport is not None
        self.transport.sendto(answer, addr)
        if method == "BYE" and call is not None:
            call.ended_by_server = True

    def _response(
        self, call: SipCall, status: int, fields: list[tuple[str, str]], body: bytes
    ) -> None:
        method = first(fields, "cseq").split()[-1:]
        if method == ["BYE"]:
            if call.bye_done is not None and not call.bye_done.done() and status >= 200:
                call.bye_done.set_result(status)
            return
        if method != ["INVITE"]:
            return
        if status < 200:
            if call.state == "calling":
                call.state = "proceeding"
            return
        call.status = status
        if 200 <= status < 300:
            if call.state in ("calling", "proceeding"):
                call.remote_tag = tag_of(first(fields, "to"))
                contact = first(fields, "contact")
                call.remote_target = contact.split("<", 1)[-1].split(">", 1)[0]
                call.leg.remote = sdp_media(body)
                call.state = "up"
                call.setup_seconds = time.perf_counter() - call.placed_at
                if not call.established.done():
                    call.established.set_result(call.leg.remote is not None)
            # Every 2xx (a retransmission too, our ACK being lost) gets an ACK.
            branch = f"z9hG4bK{secrets.token_hex(8)}"
            self._send(
                self._message(
                    f"ACK {call.remote_target} SIP/2.0",
                    self._dialog_headers(call, branch, "1 ACK"),
                )
            )
            return
        # A refusal: the ACK for a non-2xx final response is hop by hop (17.1.1.3).
        call.remote_tag = tag_of(first(fields, "to"))
        self._send(
            self._message(
                f"ACK sip:{self.number}@{self.target[0]}:{self.target[1]} SIP/2.0",
                self._dialog_headers(call, call.branch, "1 ACK"),
            )
        )
        if call.state in ("calling", "proceeding"):
            call.state = "failed"
            if not call.established.done():
                call.established.set_result(False)


def talkspurt_lateness(
    leg: CallerLeg, rows: list[int]
) -> tuple[list[float], int, list[dict[str, Any]]]:
    """Lateness of each audio packet in ``rows`` within its talkspurt, talkspurts, audio skips.

    A talkspurt starts at a marker bit. One that does not begin with the
    prompt's own first frames was not a prompt starting over: the server
    skipped audio after a stall.
    """
    out: list[float] = []
    spurts = 0
    skips: list[dict[str, Any]] = []
    signature: list[bytes] | None = None
    if leg.spurt_payloads:
        signature = leg.spurt_payloads[min(leg.spurt_payloads)]
    spurt: list[float] = []
    base_ts = 0

    def close() -> None:
        if spurt:
            low = min(spurt)
            out.extend(d - low for d in spurt)
            spurt.clear()

    for position, row in enumerate(rows):
        flags = leg.rx_flags[row]
        if flags & 0x7F != PCMU:
            continue
        if position == 0 or flags & 0x80:
            close()
            spurts += 1
            base_ts = leg.rx_timestamp[row]
            if position and signature is not None:
                # The frames both have (either may have been cut short by a key press).
                heard = leg.spurt_payloads.get(row, [])
                common = min(len(heard), len(signature))
                if common >= SIGNATURE_MIN and heard[:common] != signature[:common]:
                    # What a reader needs to tell a stall from a misjudged talkspurt.
                    arrived = leg.rx_time[row]
                    pressed = [arrived - t for t in leg.digits_sent if t <= arrived]
                    before = rows[position - 1]
                    skips.append(
                        {
                            "call": leg.index,
                            "gap_ms": round((arrived - leg.rx_time[before]) * 1e3, 2),
                            "timestamp_step": (leg.rx_timestamp[row] - leg.rx_timestamp[before])
                            % (1 << 32),
                            "since_key_ms": round(min(pressed) * 1e3, 1) if pressed else None,
                            "frames_compared": common,
                        }
                    )
        elapsed = ((leg.rx_timestamp[row] - base_ts) % (1 << 32)) / 8000
        spurt.append(leg.rx_time[row] - elapsed)
    close()
    return out, spurts, skips


def analyse(legs: list[CallerLeg], echo: bool, start: float, end: float) -> dict[str, Any]:
    """The step's figures from what the legs sent and received between ``start`` and ``end``."""
    lateness: list[float] = []
    sent = received = lost = skips = duplicates = spurts = 0
    skip_details: list[dict[str, Any]] = []
    for leg in legs:
        if echo:
            first_tag = next((i for i, t in enumerate(leg.sent_at) if t >= start), None)
            if first_tag is None:
                continue
            last_tag = next(
                (i for i in range(first_tag, len(leg.sent_at)) if leg.sent_at[i] >= end),
                len(leg.sent_at),
            )
            back: dict[int, float] = {}
            for tag, arrived in zip(leg.rx_tag, leg.rx_time, strict=True):
                if first_tag <= tag < last_tag and 0 <= arrived - leg.sent_at[tag] < ECHO_WITHIN:
                    if tag in back:
                        duplicates += 1
                    else:
                        back[tag] = arrived
            delays = [arrived - leg.sent_at[tag] for tag, arrived in back.items()]
            if delays:
                fastest = min(delays)
                lateness.extend(d - fastest for d in delays)
            sent += last_tag - first_tag
            received += len(back)
            lost += last_tag - first_tag - len(back)
            continue
        rows = [i for i, t in enumerate(leg.rx_time) if start <= t < end]
        audio = [i for i in rows if leg.rx_flags[i] & 0x7F == PCMU]
        received += len(audio)
        for before, after in itertools.pairwise(audio):
            gap = (leg.rx_sequence[after] - leg.rx_sequence[before]) & 0xFFFF
            if gap == 0:
                duplicates += 1
            elif gap < 0x8000:
                lost += gap - 1
        values, started, skipped = talkspurt_lateness(leg, audio)
        lateness.extend(values)
        spurts += started
        skips += len(skipped)
        skip_details.extend(skipped[: MAX_SKIP_DETAILS - len(skip_details)])
        sent += len(audio)
    return {
        "packets": sent,
        "received": received,
        "lost": lost,
        "duplicates": duplicates,
        "audio_skips": skips,
        "skip_details": skip_details,
        "talkspurts": spurts,
        "p50_ms": percentile(lateness, 0.5) * 1e3,
        "p99_ms": percentile(lateness, 0.99) * 1e3,
        "max_ms": max(lateness) * 1e3 if lateness else math.nan,
    }


async def caller_main(job: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    count = int(job["calls"])
    echo = bool(job["echo"])
    frames = tone_frames()
    legs = [CallerLeg(i, frames) for i in range(count)]
    for leg in legs:
        loop.add_reader(leg.sock.fileno(), leg.readable)
    pacer = Pacer(legs)
    ports = {leg.port for leg in legs}
    began = time.perf_counter()
    caller: SipCaller | None = None
    calls: list[SipCall] = []
    try:
        if job["mode"] == "sip":
            host, port = job["target"]
            transport, caller = await loop.create_datagram_endpoint(
                lambda: SipCaller((host, int(port)), job["number"]), local_addr=("127.0.0.1", 0)
            )
            origin = time.perf_counter()
            for index, leg in enumerate(legs):
                wait = origin + index / job["setup_rate"] - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                calls.append(caller.place(leg))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETUP_TIMEOUT):
                    await asyncio.gather(*(c.established for c in calls))
        else:
            for leg, (host, port) in zip(legs, job["targets"], strict=True):
                leg.remote = (host, int(port))
        established = sum(leg.remote is not None for leg in legs)
        if job["digits_every"]:
            now = time.time()
            for leg in legs:
                leg.next_digit = now + 1.0 + job["digits_every"] * leg.index / count
        # Set up means hearing the prompt (IVR), or its own audio back through
        # the agent's phone (bridged; music on hold does not count).
        done: set[int] = set()
        deadline = time.perf_counter() + SETUP_TIMEOUT
        while time.perf_counter() < deadline:
            for leg in legs:
                if leg.index not in done and (leg.echoed() if echo else len(leg.rx_time) > 0):
                    done.add(leg.index)
            if len(done) >= established:
                break
            await asyncio.sleep(0.2)
        heard = len(done)
        setup_seconds = time.perf_counter() - began
        await asyncio.sleep(job["warmup"])
        # Nothing the caller keeps is cyclic garbage: no collector pauses while measuring.
        gc.collect()
        gc.freeze()
        gc.disable()
        drops_before = udp_drops(ports)
        cpu_before = time.process_time()
        pacer.measuring = True
        print("window start", flush=True)
        start = time.time()
        await asyncio.sleep(job["seconds"])
        end = time.time()
        print("window end", flush=True)
        pacer.measuring = False
        cpu = time.process_time() - cpu_before
        await asyncio.sleep(DRAIN_SECONDS)
        gc.enable()
        client_drops = udp_drops(ports) - drops_before
        figures = analyse(legs, echo, start, end)
        ended_by_server = sum(c.ended_by_server for c in calls)
        if caller is not None:
            byes = [caller.hang_up(c) for c in calls]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TRANSACTION_TIMEOUT + 5):
                    await asyncio.gather(*byes)
            hung_up = sum(1 for b in byes if b.done() and 200 <= b.result() < 300)
            transport.close()
        else:
            hung_up = count
        setups = [c.setup_seconds for c in calls if math.isfinite(c.setup_seconds)]
        return {
            **figures,
            "calls": count,
            "established": established,
            "heard": heard,
            "ended_by_server": ended_by_server,
            "hung_up": hung_up,
            "refused": sum(1 for c in calls if c.status >= 300),
            "setup_s": round(setup_seconds, 3),
            "setup_p99_ms": percentile(setups, 0.99) * 1e3 if setups else math.nan,
            "digits": sum(len(leg.digits_sent) for leg in legs),
            "window_s": end - start,
            "client_tick_p99_ms": percentile(pacer.lateness, 0.99) * 1e3,
            "client_tick_max_ms": max(pacer.lateness, default=math.nan) * 1e3,
            "client_skipped_ticks": pacer.skipped,
            "client_drops": client_drops,
            "client_send_errors": sum(leg.send_errors for leg in legs),
            "client_cpu_share": cpu / (end - start),
        }
    finally:
        pacer.stop()
        for leg in legs:
            loop.remove_reader(leg.sock.fileno())
            leg.close()


# -- the ceiling: a bare relay (a child process) ------------------------------------------


class _Stream(asyncio.DatagramProtocol):
    """IVR ceiling: takes the caller's packets, and is sent one packet a tick."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.sequence = random.getrandbits(16)
        self.timestamp = random.getrandbits(32)
        self.ssrc = random.getrandbits(32)
        self.marker = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not a DatagramTransport subclass before Python 3.12, but one in all but name.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.remote = (addr[0], addr[1])

    def send(self, payload: bytes) -> None:
        if self.remote is None or self.transport is None:
            return
        header = RTP_HEADER.pack(
            0x80, (0x80 if self.marker else 0) | PCMU, self.sequence, self.timestamp, self.ssrc
        )
        self.marker = False
        self.transport.sendto(header + payload, self.remote)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + SAMPLES) & 0xFFFFFFFF


class _Side(asyncio.DatagramProtocol):
    """Bridged ceiling: one leg of a relayed pair; hands every packet to the other leg."""

    def __init__(self, echo: tuple[str, int] | None) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        #: Where this side's packets go: the agent's echo, or the latched caller.
        self.remote = echo
        self.other: _Side | None = None
        self.latch = echo is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not a DatagramTransport subclass before Python 3.12, but one in all but name.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.latch:
            self.remote = (addr[0], addr[1])
        other = self.other
        if other is not None and other.remote is not None and other.transport is not None:
            other.transport.sendto(data, other.remote)


async def relay_main(job: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    count = int(job["calls"])
    transports: list[asyncio.BaseTransport] = []
    ports: list[int] = []
    handle: asyncio.TimerHandle | None = None

    async def bind(factory: Any) -> Any:
        transport, protocol = await loop.create_datagram_endpoint(
            factory, local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return transport.get_extra_info("sockname")[1], protocol

    if job["echo"]:
        echo = (job["echo"][0], int(job["echo"][1]))
        for _ in range(count):
            port, caller_side = await bind(lambda: _Side(None))
            _, agent_side = await bind(lambda: _Side(echo))
            caller_side.other, agent_side.other = agent_side, caller_side
            ports.append(port)
    else:
        streams: list[_Stream] = []
        for _ in range(count):
            port, stream = await bind(_Stream)
            streams.append(stream)
            ports.append(port)
        payload = tone_frames()[0]
        origin = loop.time()

        def tick(number: int) -> None:
            nonlocal handle
            for stream in streams:
                stream.send(payload)
            # Absolute deadlines, like the media clock: no drift.
            handle = loop.call_at(origin + (number + 1) * PTIME, tick, number + 1)

        handle = loop.call_at(origin + PTIME, tick, 1)
    bound = [t.get_extra_info("sockname")[1] for t in transports]
    gc.collect()
    gc.freeze()
    print("relay ready " + json.dumps({"callers": ports, "all": bound}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if handle is not None:
            handle.cancel()
        for transport in transports:
            transport.close()


# -- the orchestration ------------------------------------------------------------------


@dataclass(slots=True)
class StepResult:
    kind: str
    calls: int
    figures: dict[str, Any]
    window: Window
    #: Earlier runs of this step that failed while other processes were busy.
    noisy_reruns: int = 0
    #: For a step decided by three runs (a glitch failed the first): how many passed.
    runs_passed: int | None = None

    @property
    def cpu_share(self) -> float:
        return self.window.cpu_share

    @property
    def server_drops(self) -> int:
        return self.window.drops

    @property
    def noisy(self) -> bool:
        return self.window.other_cores > NOISY_CORES

    @property
    def client_ok(self) -> bool:
        """The caller kept its own pace: its packets went out within a frame of their time."""
        f = self.figures
        return f.get("client_drops", 0) == 0 and num(f.get("client_tick_p99_ms")) < PTIME * 1e3

    @property
    def passed(self) -> bool:
        """This run passed, or for a step run three times, two of its runs did."""
        if self.runs_passed is not None:
            return self.runs_passed >= GLITCH_RUNS_TO_PASS
        return self.clean

    @property
    def glitch(self) -> bool:
        """Failed by a hair: all set up and in time, but a packet in ten thousand missing."""
        f = self.figures
        missing = int(f.get("lost", 0)) + int(f.get("audio_skips", 0))
        return (
            not self.clean
            and f.get("established") == self.calls
            and f.get("heard") == self.calls
            and num(f.get("p99_ms")) < MAX_LATENESS_MS
            and self.server_drops == 0
            and missing * GLITCH_SHARE <= int(f.get("packets", 0))
        )

    @property
    def clean(self) -> bool:
        f = self.figures
        p99 = f.get("p99_ms")
        return (
            f.get("established") == self.calls
            and f.get("heard") == self.calls
            and f.get("lost") == 0
            and f.get("audio_skips") == 0
            and p99 is not None
            and math.isfinite(p99)
            and p99 < MAX_LATENESS_MS
            and self.server_drops == 0
        )

    def describe(self) -> str:
        f = self.figures
        verdict = "pass" if self.passed else "FAIL"
        client = "" if self.client_ok else "  (the caller fell behind: these figures are its own)"
        return (
            f"{self.calls:5,d} calls: {f.get('established', 0):,d} set up, {f.get('heard', 0):,d}"
            f" heard; {f.get('packets', 0):8,d} packets, lost {f.get('lost', 0)},"
            f" skips {f.get('audio_skips', 0)}, lateness p50 {num(f.get('p50_ms')):.2f}"
            f" p99 {num(f.get('p99_ms')):.2f} max {num(f.get('max_ms')):.1f} ms;"
            f" CPU {self.cpu_share:.0%}, drops {self.server_drops}"
            + (f" (phones {self.window.phone_drops})" if self.window.phone_drops else "")
            + ";"
            f" caller tick p99 {num(f.get('client_tick_p99_ms')):.1f} ms,"
            f" CPU {num(f.get('client_cpu_share')):.0%}; others {self.window.other_cores:.2f}"
            f" cores  [{verdict}]{client}"
            + (f" (run again after {self.noisy_reruns} noisy)" if self.noisy_reruns else "")
            + (
                f" ({self.runs_passed} of {GLITCH_RUNS} runs passed)"
                if self.runs_passed is not None
                else ""
            )
        )


def num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


@dataclass(slots=True)
class Window:
    """What the harness saw of the machine over a step's measured seconds."""

    #: Share of its core the server (or relay) used.
    cpu_share: float = math.nan
    #: Datagrams the kernel dropped at the server's (or relay's) full RTP socket buffers.
    drops: int = 0
    #: Cores kept busy by other processes (not the server, caller or agent phones).
    other_cores: float = 0.0
    #: Datagrams the kernel dropped at the agents' phones (SIPp's echo socket).
    phone_drops: int = 0


async def run_caller(
    job: dict[str, Any],
    folder: Path,
    target_pid: int,
    ports: Container[int],
    extra_pids: Sequence[int] = (),
    phone_ports: Container[int] = (),
) -> tuple[dict[str, Any], Window]:
    """Run the caller child for one step; its figures, and what the harness saw meanwhile."""
    job_file = folder / f"job-{job['kind']}-{job['calls']}-{time.monotonic_ns()}.json"
    job_file.write_text(json.dumps(job))
    core = CLIENT_CORE if pinning_possible() else None
    argv = pinned([sys.executable, str(THIS_FILE), "--caller", str(job_file)], core)
    proc = await spawn(argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    window = Window()
    pids = (target_pid, *extra_pids)
    before: tuple[float, float, int, int, list[float]] = (0.0, 0.0, 0, 0, [])
    last = ""
    lines: list[str] = []
    try:
        async with asyncio.timeout(SETUP_TIMEOUT * 2 + job["seconds"] * 2 + 120):
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                lines.append(line)
                if line == "window start":
                    cpus = [cpu_seconds(pid) for pid in pids]
                    before = (
                        time.perf_counter(),
                        busy_seconds(),
                        udp_drops(ports),
                        udp_drops(phone_ports),
                        cpus,
                    )
                elif line == "window end":
                    began, busy, drops, phone_drops, cpus = before
                    wall = time.perf_counter() - began
                    used = [cpu_seconds(pid) - cpu for pid, cpu in zip(pids, cpus, strict=True)]
                    window.cpu_share = used[0] / wall
                    window.drops = udp_drops(ports) - drops
                    window.phone_drops = udp_drops(phone_ports) - phone_drops
                    window.other_cores = busy_seconds() - busy - sum(used)
                elif line.startswith("{"):
                    last = line
            await proc.wait()
    except TimeoutError:
        await stop_process(proc, 5)
    if not last:
        raise RunFailed("the caller gave no figures:\n" + "\n".join(lines[-30:]))
    figures = json.loads(last)
    # The caller's own CPU in the window, as it measured it.
    caller = num(figures.get("client_cpu_share")) * num(figures.get("window_s"))
    if math.isfinite(caller) and math.isfinite(window.cpu_share):
        window.other_cores = max(0.0, (window.other_cores - caller) / figures["window_s"])
    return figures, window


async def step(
    kind: str,
    calls: int,
    seconds: float,
    folder: Path,
    target_pid: int,
    ports: Container[int],
    *,
    sip: tuple[str, int] | None = None,
    targets: list[int] | None = None,
    extra_pids: Sequence[int] = (),
    phone_ports: Container[int] = (),
) -> StepResult:
    job: dict[str, Any] = {
        "kind": kind,
        "calls": calls,
        "echo": kind == "bridged",
        "digits_every": DIGIT_EVERY if kind == "ivr" else 0,
        "warmup": WARMUP_SECONDS,
        "seconds": seconds,
        "setup_rate": SETUP_RATE,
    }
    if sip is not None:
        job |= {
            "mode": "sip",
            "target": list(sip),
            "number": IVR_NUMBER if kind == "ivr" else AGENT_NUMBER,
        }
    else:
        assert targets is not None
        job |= {"mode": "direct", "targets": [["127.0.0.1", p] for p in targets]}
    figures, window = await run_caller(job, folder, target_pid, ports, extra_pids, phone_ports)
    return StepResult(kind, calls, figures, window)


# -- agents: their phones (SIPp) and consoles (websockets) ------------------------------


@contextlib.asynccontextmanager
async def database(kind: str, folder: Path) -> AsyncIterator[str]:
    """The run's database URL: an SQLite file in ``folder``, or a PostgreSQL database
    created for the run (and dropped after it) through ``BENCH_PG_ADMIN_URL``."""
    if kind == "sqlite":
        yield database_url(folder)
        return
    import asyncpg

    name = f"cc_bench_media_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield (
            "postgresql+asyncpg://" + PG_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name
        )
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def count_in(url: str, query: str) -> int:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from callcenter.store import db

    engine = db.create_engine(url)
    try:
        for attempt in range(20):
            try:
                async with engine.connect() as conn:
                    return int((await conn.execute(text(query))).scalar_one())
            except OperationalError as error:
                # SQLite: the server's spool holds the write lock a moment; read again.
                if "locked" not in str(error) or attempt == 19:
                    raise
                await asyncio.sleep(0.25)
        raise AssertionError("unreachable")
    finally:
        await engine.dispose()


async def settled(url: str, query: str, expected: int, timeout: float) -> int:
    """Poll ``query`` until it reaches ``expected`` or stops moving for two seconds."""
    deadline = time.perf_counter() + timeout
    last, since = -1, time.perf_counter()
    while True:
        now = time.perf_counter()
        count = await count_in(url, query)
        if count >= expected or now > deadline:
            return count
        if count != last:
            last, since = count, now
        elif now - since > 2.0:
            return count
        await asyncio.sleep(0.5)


async def seed(url: str, agents: int) -> list[str]:
    """The voice queue and ``agents`` agents with extensions and API tokens; their tokens."""
    from callcenter.credentials import hash_password, new_token, sip_ha1, token_digest
    from callcenter.store import db
    from callcenter.store.models import ApiToken, Queue, User

    engine = db.create_engine(url)
    now = dt.datetime.now(dt.UTC)
    password_hash = hash_password(secrets.token_urlsafe(16))
    tokens = [new_token() for _ in range(agents)]
    try:
        async with db.session_factory(engine)() as session:
            session.add(
                Queue(
                    name=QUEUE,
                    display_name="Bench voice",
                    channel="voice",
                    wrapup_seconds=0,
                    created_at=now,
                )
            )
            users = []
            for i in range(agents):
                extension = str(FIRST_EXTENSION + i)
                md5, sha256 = sip_ha1(extension, "callcenter", AGENT_SECRET)
                users.append(
                    User(
                        username=f"voice{i:04d}",
                        display_name=f"Agent {i}",
                        role="agent",
                        password_hash=password_hash,
                        sip_extension=extension,
                        sip_ha1_md5=md5,
                        sip_ha1_sha256=sha256,
                        chat_capacity=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
            session.add_all(users)
            await session.flush()
            session.add_all(
                ApiToken(
                    token_hash=token_digest(token),
                    user_id=user.id,
                    name="media bench",
                    created_at=now,
                    expires_at=None,
                )
                for user, token in zip(users, tokens, strict=True)
            )
            await session.commit()
    finally:
        await engine.dispose()
    return tokens


class Console:
    """An agent's console: says hello, goes available, and reads (and counts) what comes."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ready = asyncio.Event()
        self.offers = 0
        self.connected = 0
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(frame.data)
            kind = data.get("type")
            if kind == "ok" and data.get("ref") == "ready":
                self.ready.set()
            elif kind == "offer":
                self.offers += 1
            elif kind == "connected":
                self.connected += 1

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def open_consoles(http: aiohttp.ClientSession, base: str, tokens: list[str]) -> list[Console]:
    ws_base = base.replace("http://", "ws://", 1)
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def open_one(token: str) -> Console:
        async with gate:
            ws = await http.ws_connect(
                ws_base + "/ws/agent", headers={"Authorization": f"Bearer {token}"}
            )
            console = Console(ws)
            await ws.send_str(json.dumps({"type": "hello"}))
            await ws.send_str(
                json.dumps({"type": "presence", "presence": "available", "ref": "ready"})
            )
            return console

    consoles = await asyncio.gather(*(open_one(t) for t in tokens))
    try:
        async with asyncio.timeout(JOIN_TIMEOUT):
            await asyncio.gather(*(c.ready.wait() for c in consoles))
    except TimeoutError:
        ready = sum(c.ready.is_set() for c in consoles)
        raise RunFailed(f"only {ready} of {len(tokens)} agents became available") from None
    return list(consoles)


async def register_agents(folder: Path, sip_port: int, agents: int, contact_port: int) -> None:
    """Every agent's extension registered, Contact at the one UAS that answers for all."""
    gate = asyncio.Semaphore(REGISTERS_AT_ONCE)

    async def register(index: int) -> str:
        extension = str(FIRST_EXTENSION + index)
        args = [
            f"127.0.0.1:{sip_port}",
            "-sf",
            str(SCENARIOS / "agents_register.xml"),
            "-s",
            extension,
            "-au",
            extension,
            "-ap",
            AGENT_SECRET,
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-m",
            "1",
            "-set",
            "contact_port",
            str(contact_port),
            "-recv_timeout",
            "10000",
        ]
        async with gate:
            with sipp_folder(folder, f"register-{extension}") as work:
                run = await run_sipp(args, work, None, 60)
        return "" if run.count("SuccessfulCall") == 1 else run.errors[-1000:] or run.output[-1000:]

    failures = [e for e in await asyncio.gather(*(register(i) for i in range(agents))) if e]
    if failures:
        raise RunFailed(
            f"{agents - len(failures)} of {agents} agent phones registered:\n{failures[0]}"
        )


# -- the ladders ----------------------------------------------------------------------


@dataclass(slots=True)
class Ladder:
    kind: str
    label: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def best(self) -> StepResult | None:
        passed = [s for s in self.steps if s.passed]
        return max(passed, key=lambda s: s.calls) if passed else None

    @property
    def top(self) -> int:
        best = self.best
        return best.calls if best else 0


async def climb(
    ladder: Ladder, counts: Sequence[int], run: Any, *, keep_going: bool = False
) -> Ladder:
    """Run ``run(calls)`` for each count until a step fails."""
    for calls in counts:
        result = await run(calls)
        reruns = 0
        while not result.passed and result.noisy and reruns < NOISY_RETRIES:
            reruns += 1
            print(f"  {ladder.label:16s} {result.describe()}  (others were busy: again)")
            await asyncio.sleep(SETTLE_SECONDS)
            result = await run(calls)
        result.noisy_reruns = reruns
        if result.glitch:
            # One glitch is not a verdict: the step is decided by three runs.
            print(f"  {ladder.label:16s} {result.describe()}  (a glitch: two more runs)")
            runs = [result]
            for _ in range(GLITCH_RUNS - 1):
                await asyncio.sleep(SETTLE_SECONDS)
                runs.append(await run(calls))
                print(f"  {ladder.label:16s} {runs[-1].describe()}", flush=True)
            passed = [r for r in runs if r.clean]
            result = max(passed, key=lambda r: num(r.figures.get("p99_ms")), default=runs[-1])
            result.runs_passed = len(passed)
        ladder.steps.append(result)
        print(f"  {ladder.label:16s} {result.describe()}", flush=True)
        await asyncio.sleep(SETTLE_SECONDS)
        if not result.passed and not keep_going:
            break
    return ladder


async def project_ivr(folder: Path, counts: Sequence[int], seconds: float, url: str) -> Ladder:
    sip_port = free_port(both=True)
    config = server_config(
        folder,
        sip_port,
        {IVR_NUMBER: IVR_FLOW},
        rtp_ports=RTP_PORTS,
        extra=CTI_SETTINGS,
        database=url,
    )
    core = SERVER_CORE if pinning_possible() else None
    ladder = Ladder("ivr", "IVR project")
    async with server(config, core) as running:
        # One call first renders the prompt into the TTS cache.
        await step("ivr", 1, 1.0, folder, running.pid, RTP_RANGE, sip=("127.0.0.1", sip_port))

        async def run(calls: int) -> StepResult:
            return await step(
                "ivr", calls, seconds, folder, running.pid, RTP_RANGE, sip=("127.0.0.1", sip_port)
            )

        await climb(ladder, counts, run)
    return ladder


CTI_SETTINGS = """
[cti]
agent_grace_seconds = 3600
"""


@dataclass(slots=True)
class BridgedRun:
    ladder: Ladder
    recordings: int = 0
    recordings_bytes: int = 0
    calls_bridged: int = 0
    interactions: int = 0
    interactions_with_recording: int = 0
    offers: int = 0


async def project_bridged(
    folder: Path, counts: Sequence[int], seconds: float, echo_port: int, url: str
) -> BridgedRun:
    agents = max(counts)
    sip_port = free_port(both=True)
    config = server_config(
        folder,
        sip_port,
        {AGENT_NUMBER: AGENT_FLOW},
        rtp_ports=RTP_PORTS,
        extra=CTI_SETTINGS,
        database=url,
    )
    core = SERVER_CORE if pinning_possible() else None
    client_core = CLIENT_CORE if pinning_possible() else None
    result = BridgedRun(Ladder("bridged", "bridged project"))
    await run_cli("db", "upgrade", "--config", str(config))
    tokens = await seed(url, agents)
    uas_port = free_port()
    uas_args = [
        "-sf",
        str(SCENARIOS / "agent_echo.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        str(uas_port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(echo_port),
        "-rtp_echo",
        "-buff_size",
        str(4 * 1024 * 1024),
    ]
    async with (
        sipp_background(uas_args, folder, client_core, "agent-phones") as phones,
        server(config, core) as running,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        base = running.line.rsplit(" ", 1)[1]
        await register_agents(folder, sip_port, agents, uas_port)
        consoles = await open_consoles(http, base, tokens)
        try:

            async def run(calls: int) -> StepResult:
                return await step(
                    "bridged",
                    calls,
                    seconds,
                    folder,
                    running.pid,
                    RTP_RANGE,
                    sip=("127.0.0.1", sip_port),
                    extra_pids=(phones.pid,),
                    phone_ports=(echo_port,),
                )

            await climb(result.ladder, counts, run)
            result.offers = sum(c.offers for c in consoles)
            result.calls_bridged = sum(c.connected for c in consoles)
            result.interactions = await settled(
                url,
                "SELECT count(*) FROM interactions WHERE channel = 'voice'",
                result.calls_bridged,
                30,
            )
            result.interactions_with_recording = await count_in(
                url,
                "SELECT count(*) FROM interactions"
                " WHERE channel = 'voice' AND recording_path IS NOT NULL",
            )
        finally:
            for console in consoles:
                await console.close()
    wavs = list((folder / "recordings").glob("*.wav"))
    result.recordings = len(wavs)
    result.recordings_bytes = sum(w.stat().st_size for w in wavs)
    return result


async def ceiling(
    kind: str, folder: Path, counts: Sequence[int], seconds: float, echo_port: int
) -> Ladder:
    """The same ladder through the bare relay (a fresh relay each step), beyond it to the cap."""
    ladder = Ladder(kind, f"{kind} ceiling")
    core = SERVER_CORE if pinning_possible() else None
    client_core = CLIENT_CORE if pinning_possible() else None
    phones: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()
    if kind == "bridged":
        phones = sipp_background(
            [
                "-sf",
                str(SCENARIOS / "agent_echo.xml"),
                "-i",
                "127.0.0.1",
                "-p",
                str(free_port()),
                "-mi",
                "127.0.0.1",
                "-mp",
                str(echo_port),
                "-rtp_echo",
                "-buff_size",
                str(4 * 1024 * 1024),
            ],
            folder,
            client_core,
            "ceiling-phones",
        )
    async with phones as echoing:
        extra = (echoing.pid,) if echoing is not None else ()

        async def run(calls: int) -> StepResult:
            job = {"calls": calls, "echo": ["127.0.0.1", echo_port] if kind == "bridged" else None}
            job_file = folder / f"relay-{kind}-{calls}.json"
            job_file.write_text(json.dumps(job))
            argv = pinned([sys.executable, str(THIS_FILE), "--relay", str(job_file)], core)
            log = folder / f"relay-{kind}-{calls}.log"
            async with child(argv, log, "relay ready ") as relay:
                ports = json.loads(relay.line.split(" ", 2)[2])
                return await step(
                    kind,
                    calls,
                    seconds,
                    folder,
                    relay.pid,
                    set(ports["all"]),
                    targets=ports["callers"],
                    extra_pids=extra,
                    phone_ports=(echo_port,),
                )

        beyond = [round(counts[-1] * factor) for factor in CEILING_EXTRA]
        await climb(ladder, [*counts, *beyond], run)
    return ladder


# -- the run ---------------------------------------------------------------------------


def summary(ladder: Ladder) -> dict[str, Any]:
    best = ladder.best
    if best is None:
        return {"top": 0}
    f = best.figures
    return {
        "top": best.calls,
        "p99_ms": f.get("p99_ms"),
        "lost": f.get("lost"),
        "cpu_share": best.cpu_share,
    }


def first_failure(ladder: Ladder) -> StepResult | None:
    return next((s for s in ladder.steps if not s.passed), None)


async def bench(kinds: Sequence[str], quick: bool, seconds: float, db_kind: str) -> dict[str, Any]:
    pin = pinning_possible()
    settle_self(CLIENT_CORE if pin else None)
    load_before = os.getloadavg()[0]
    print(
        f"media: {seconds:g} s measured a step after {WARMUP_SECONDS:g} s of warm-up, calls set up"
        f" at {SETUP_RATE}/s; pass: nothing lost, no audio skipped, p99 lateness under"
        f" {MAX_LATENESS_MS:g} ms;"
        + (
            f" server on core {SERVER_CORE}, callers and agent phones on core {CLIENT_CORE}"
            if pin
            else " NOT pinned (fewer than two cores or no taskset)"
        )
        + f", nice {niceness()}, {db_kind} (load average {load_before:.2f} before the run)",
        flush=True,
    )
    figures: dict[str, Any] = {
        "pinned": pin,
        "nice": niceness(),
        "step_seconds": seconds,
        "database": db_kind,
    }
    echo_port = free_port() & ~1
    with tempfile.TemporaryDirectory(prefix="cc_bench_media_") as name:
        folder = Path(name)
        ladders: dict[str, Ladder] = {}
        if "ivr" in kinds:
            counts = QUICK_IVR_STEPS if quick else IVR_STEPS
            ivr_folder = folder / "ivr"
            ivr_folder.mkdir()
            async with database(db_kind, ivr_folder) as url:
                ladders["ivr"] = await project_ivr(ivr_folder, counts, seconds, url)
            ladders["ivr ceiling"] = await ceiling("ivr", folder, counts, seconds, echo_port)
        bridged: BridgedRun | None = None
        if "bridged" in kinds:
            counts = QUICK_BRIDGED_STEPS if quick else BRIDGED_STEPS
            bridged_folder = folder / "bridged"
            bridged_folder.mkdir()
            async with database(db_kind, bridged_folder) as url:
                bridged = await project_bridged(bridged_folder, counts, seconds, echo_port, url)
            ladders["bridged"] = bridged.ladder
            ladders["bridged ceiling"] = await ceiling(
                "bridged", folder, counts, seconds, echo_port
            )

    for key, ladder in ladders.items():
        best, failed = ladder.best, first_failure(ladder)
        line = f"  {key:16s}: {ladder.top:,d} calls"
        if best is not None:
            line += (
                f" (p99 lateness {num(best.figures.get('p99_ms')):.2f} ms,"
                f" CPU {best.cpu_share:.0%} of a core)"
            )
        if failed is not None:
            line += f"; failed at {failed.calls:,d}"
        else:
            line += "; never failed up to the last step"
        print(line)
    if "ivr" in ladders:
        ivr, top = summary(ladders["ivr"]), summary(ladders["ivr ceiling"])
        ratio = ivr["top"] / top["top"] if top["top"] else math.nan
        print(f"  IVR ratio       : {ratio:.3f}  (project / ceiling)")
        figures |= {
            "max_calls": ivr["top"],
            "p99_lateness_ms": ivr.get("p99_ms"),
            "lost_packets": ivr.get("lost"),
            "ivr_cpu_share": ivr.get("cpu_share"),
            "ceiling_calls": top["top"],
            "ceiling_p99_lateness_ms": top.get("p99_ms"),
            "ceiling_capped": first_failure(ladders["ivr ceiling"]) is None,
            "ratio": round(ratio, 4),
        }
    if bridged is not None:
        mine, top = summary(ladders["bridged"]), summary(ladders["bridged ceiling"])
        ratio = mine["top"] / top["top"] if top["top"] else math.nan
        print(f"  bridged ratio   : {ratio:.3f}  (project / ceiling)")
        print(
            f"  recordings      : {bridged.recordings:,d} WAV files"
            f" ({bridged.recordings_bytes / 1e6:.1f} MB) for {bridged.calls_bridged:,d} calls"
            f" connected; {bridged.interactions:,d} interactions,"
            f" {bridged.interactions_with_recording:,d} with their recording"
        )
        figures |= {
            "max_bridged_calls": mine["top"],
            "bridged_p99_lateness_ms": mine.get("p99_ms"),
            "bridged_lost_packets": mine.get("lost"),
            "bridged_cpu_share": mine.get("cpu_share"),
            "ceiling_bridged_calls": top["top"],
            "ceiling_bridged_p99_lateness_ms": top.get("p99_ms"),
            "ceiling_bridged_capped": first_failure(ladders["bridged ceiling"]) is None,
            "bridged_ratio": round(ratio, 4),
            "calls_connected": bridged.calls_bridged,
            "recordings": bridged.recordings,
            "interactions_recorded": bridged.interactions,
            "interactions_with_recording": bridged.interactions_with_recording,
        }
        if "p99_lateness_ms" not in figures:
            figures["p99_lateness_ms"] = mine.get("p99_ms")
            figures["lost_packets"] = mine.get("lost")
    figures["steps"] = {
        key: [
            {
                "calls": s.calls,
                "passed": s.passed,
                "cpu_share": s.cpu_share,
                "server_drops": s.server_drops,
                "other_cores": s.window.other_cores,
                "phone_drops": s.window.phone_drops,
                "noisy_reruns": s.noisy_reruns,
                "runs_passed": s.runs_passed,
                **s.figures,
            }
            for s in ladder.steps
        ]
        for key, ladder in ladders.items()
    }
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--seconds", type=float, help=f"seconds measured a step (default {MEASURE_SECONDS:g})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_MEASURE_SECONDS:g} s steps of {QUICK_IVR_STEPS} IVR and"
        f" {QUICK_BRIDGED_STEPS} bridged calls",
    )
    parser.add_argument("--only", choices=("ivr", "bridged"), help="run one of the two figures")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the server's database: an SQLite file (default) or a PostgreSQL database made"
        " for the run through BENCH_PG_ADMIN_URL",
    )
    add_nice_option(parser)
    # The caller and the ceiling's relay run this file again in their own processes.
    parser.add_argument("--caller", help=argparse.SUPPRESS)
    parser.add_argument("--relay", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.caller:
        job = json.loads(Path(args.caller).read_text())
        print(json.dumps(jsonable(asyncio.run(caller_main(job)))), flush=True)
        return 0
    if args.relay:
        asyncio.run(relay_main(json.loads(Path(args.relay).read_text())))
        return 0
    seconds = args.seconds or (QUICK_MEASURE_SECONDS if args.quick else MEASURE_SECONDS)
    if seconds <= 0:
        parser.error("--seconds must be positive")
    kinds = [args.only] if args.only else ["ivr", "bridged"]
    set_niceness(args.nice)
    try:
        figures = asyncio.run(bench(kinds, args.quick, seconds, args.database))
    except RunFailed as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(jsonable(figures), allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
