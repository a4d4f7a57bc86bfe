"""Malformed, truncated and oversized SIP thrown at the server over UDP and TCP.

A seeded generator turns good messages (OPTIONS, REGISTER, INVITE with SDP,
BYE, ACK, INFO, responses...) into bad ones: truncated at random points,
bytes flipped, header fields deleted, duplicated or replaced by broken
values, absurd Content-Lengths, sizes past the parser's limits, garbage,
bad start lines, bad Via, CSeq, From and To. Over UDP they go out in bursts,
with one OPTIONS after each burst as a marker (answered only once the burst
before it was read, since a socket is read in order); over TCP several go
back to back on each connection, some in pieces. Afterwards the server must
still serve (OPTIONS, a digest REGISTER with SIPp), must have logged no
error, must have answered what it could with a 4xx, and every transaction
and call must end, and every RTP port come back, once the (short) timers
have run.

The tests at the end each pin down one bug found this way; ``fuzzed``
leaves their inputs out of the mix until they are fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from callcenter.media.port import RtpPort
from callcenter.server import Server
from tests.voice.sipp import free_port, sipp

FLOWS = Path(__file__).parent / "flows"
SEED = 4475
UDP_MESSAGES = 10_000
BURST = 40
TCP_CONNECTIONS = 40

#: Short timers, so that every transaction ends within a few seconds; a high
#: lockout threshold, since fuzzed credentials count as failed attempts.
SIP = {
    "digest_algorithms": ["MD5", "SHA-256"],
    "trunks": ["127.0.0.1"],
    "t1_ms": 20,
    "t2_ms": 160,
    "t4_ms": 200,
    "auth_max_failures": 10_000,
}
VOICE = {"numbers": {"100": "support"}, "flows_directory": str(FLOWS)}
ROBUSTNESS = pytest.mark.settings(sip=SIP, voice=VOICE)
#: An RTP range of one port, which the test holds itself.
ONE_PORT = free_port() & ~1

_STATUS_LINE = re.compile(rb"SIP/2\.0 ([0-9]{3}) ")
_CALL_ID = re.compile(rb"^(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)

SDP = (
    b"v=0\r\n"
    b"o=fuzz 1 1 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 9 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)


# -- good messages ---------------------------------------------------------------------


def message(start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [start, *(f"{n}: {v}" for n, v in headers), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Good:
    """Well-formed messages to the server at ``port`` from ``transport`` ``local``."""

    def __init__(self, port: int, local: int, transport: str = "UDP") -> None:
        self.port = port
        self.local = local
        self.transport = transport
        self.count = 0

    def common(self, method: str, cseq: int = 1, to_tag: bool = False) -> list[tuple[str, str]]:
        self.count += 1
        n = self.count
        to = f"<sip:100@127.0.0.1:{self.port}>" + (f";tag=t{n}" if to_tag else "")
        return [
            ("Via", f"SIP/2.0/{self.transport} 127.0.0.1:{self.local};branch=z9hG4bK-fz{n};rport"),
            ("Max-Forwards", "70"),
            ("From", f'"Fuzz" <sip:fuzz@127.0.0.1:{self.local}>;tag=f{n}'),
            ("To", to),
            ("Call-ID", f"fuzz-{n}@127.0.0.1"),
            ("CSeq", f"{cseq} {method}"),
        ]

    def options(self) -> bytes:
        headers = self.common("OPTIONS")
        return message(f"OPTIONS sip:callcenter@127.0.0.1:{self.port} SIP/2.0", headers)

    def register(self, authorization: bytes = b"") -> bytes:
        headers = self.common("REGISTER")
        headers[2] = ("From", "<sip:1001@callcenter>;tag=r1")
        headers[3] = ("To", "<sip:1001@callcenter>")
        headers += [
            ("Contact", f"<sip:1001@127.0.0.1:{self.local}>"),
            ("Expires", "120"),
        ]
        data = message(f"REGISTER sip:127.0.0.1:{self.port} SIP/2.0", headers)
        if authorization:
            data = data.replace(b"Expires:", b"Authorization: " + authorization + b"\r\nExpires:")
        return data

    def invite(self, number: str = "100", body: bytes = SDP) -> bytes:
        headers = self.common("INVITE")
        headers[3] = ("To", f"<sip:{number}@127.0.0.1:{self.port}>")
        headers += [
            ("Contact", f"<sip:fuzz@127.0.0.1:{self.local}>"),
            ("Content-Type", "application/sdp"),
        ]
        return message(f"INVITE sip:{number}@127.0.0.1:{self.port} SIP/2.0", headers, body)

    def in_dialog(self, method: str) -> bytes:
        headers = self.common(method, 2, to_tag=method != "CANCEL")
        return message(f"{method} sip:callcenter@127.0.0.1:{self.port} SIP/2.0", headers)

    def other(self, method: str) -> bytes:
        headers = self.common(method)
        headers.append(("Event", "presence"))
        return message(f"{method} sip:100@127.0.0.1:{self.port} SIP/2.0", headers)

    def response(self, status: int, method: str) -> bytes:
        headers = self.common(method, to_tag=True)
        return message(f"SIP/2.0 {status} Whatever", headers)

    def any(self, rng: random.Random) -> bytes:
        """A random good message (or one with a broken SDP or unreadable credentials)."""
        kinds: list[tuple[int, Callable[[], bytes]]] = [
            (14, self.options),
            (12, self.register),
            (3, lambda: self.register(rng.choice(UNREADABLE_CREDENTIALS))),
            (8, lambda: self.invite("999")),
            (2, lambda: self.invite("100")),
            (2, lambda: self.invite("100", rng.choice(BROKEN_SDP))),
            (4, lambda: self.in_dialog("CANCEL")),
            (5, lambda: self.in_dialog("BYE")),
            (4, lambda: self.in_dialog("ACK")),
            (3, lambda: self.in_dialog("INFO")),
            (3, lambda: self.in_dialog("UPDATE")),
            (3, lambda: self.other("SUBSCRIBE")),
            (3, lambda: self.other("MESSAGE")),
            (3, lambda: self.response(200, "INVITE")),
            (2, lambda: self.response(180, "INVITE")),
            (2, lambda: self.response(486, "BYE")),
        ]
        make = rng.choices([k for _, k in kinds], [w for w, _ in kinds])[0]
        return make()


# -- ways to break them -------------------------------------------------------------------


def split(data: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def join(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        i = rng.randrange(len(out))
        if rng.random() < 0.5:
            out[i] ^= 1 << rng.randrange(8)
        else:
            out[i] = rng.choice(b'\x00\r\n :;<>"@,=\x7f\xff%\t')
    return bytes(out)


def delete_header(data: bytes, rng: random.Random) -> bytes:
    lines, body = split(data)
    if len(lines) > 1:
        del lines[rng.randrange(1, len(lines))]
    return join(lines, body)


def duplicate_header(data: bytes, rng: random.Random) -> bytes:
    lines, body = split(data)
    if len(lines) > 1:
        i = rng.randrange(1, len(lines))
        lines.insert(i, lines[i])
    return join(lines, body)


def shuffle_headers(data: bytes, rng: random.Random) -> bytes:
    lines, body = split(data)
    headers = lines[1:]
    rng.shuffle(headers)
    return join([lines[0], *headers], body)


BAD_VALUES: dict[bytes, list[bytes]] = {
    b"Content-Length": [
        b"-1",
        b"-99999",
        b"abc",
        b"",
        b"0x10",
        b"1 2",
        b"99999999999999999999999",
        b"4294967296",
        b"+5",
        b"\xff\xfe",
    ],
    b"Via": [
        b"",
        b"SIP/2.0/UDP",
        b"SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bK1",
        b"SIP/2.0 UDP 127.0.0.1",
        b"SIP/2.0/UDP [::1;branch=z9hG4bK1",
        b"SIP/2.0/UDP 127.0.0.1;branch",
        b"SIP/2.0/UDP 127.0.0.1;;;=;",
        b",,,",
        b"SIP/2.0/UDP 127.0.0.1;rport=abc",
        b"SIP/2.0/UDP 127.0.0.1;rport=70000",
        b"SIP/2.0/UDP 127.0.0.1;received=not-an-address",
        b"SIP/2.0/UDP 127.0.0.1;ttl=999",
        b"SIP/2.0/UDP 127.0.0.1;maddr=",
        b"SIP/3.0/UDP 127.0.0.1",
        b"SIP/2.0/UDP 127.0.0.1:0",
        b"SIP/2.0/UDP \xc3\x28:5060",
    ],
    b"CSeq": [
        b"",
        b"abc INVITE",
        b"1",
        b"99999999999 INVITE",
        b"4294967296 INVITE",
        b"1 OPTIONS",
        b"-1 INVITE",
        b"1 INV ITE",
        b"1 INVITE extra",
        b"1\tREGISTER\t",
    ],
    b"From": [
        b"",
        b"<sip:",
        b"sip:a@b>",
        b'"unterminated <sip:a@b>',
        b"<sip:a@b>;tag=",
        b"<mailto:x@y>;tag=1",
        b"<>;tag=1",
        b"<sip:a@b:99999>;tag=1",
        b"<sip:@>;tag=1",
        b"a b c <sip:a@b>;tag=1",
        b"<sip:a@b>;tag=1;tag=2",
        b"<sip:a@[::1>;tag=1",
    ],
    b"To": [
        b"",
        b"<sip:",
        b"<sip:100@127.0.0.1",
        b'"x" sip:100@h',
        b"<sip:100@h>;tag",
        b"<sip:100@h>;tag=;tag=",
        b"<tel:>",
        b"<sip:100@h>,<sip:101@h>",
    ],
    b"Call-ID": [b"", b"a b", b"@@", b"\x00", b"x" * 9000],
    b"Max-Forwards": [b"abc", b"-1", b"256", b"99999999999", b""],
    b"Expires": [b"x", b"-5", b"99999999999", b""],
    b"Contact": [
        b"*, <sip:a@b>",
        b"<sip:a@b>;expires=abc",
        b"<sip:",
        b"x;expires=4294967296",
        b"*",
        b"<sip:a@b>;expires=-1",
        b",",
    ],
    b"Content-Type": [b"", b"application", b"/", b"application/sdp;;", b"\x00/\x00"],
}


UNREADABLE_CREDENTIALS = [
    b"Digest",
    b"Digest username=",
    b"Basic YWxhZGRpbjpvcGVuc2VzYW1l",
    b'Digest realm="callcenter", username="1001", nonce=""',
    b'Digest realm="callcenter", username="1001", nonce="x", uri="sip:x", response="zz", qop=auth',
    b'Digest realm="callcenter", username="1001", nonce="x", uri="sip:x", '
    b'response="00", algorithm=BOGUS',
    b'Digest realm="callcenter", username="1001", nonce="x", uri="sip:x", '
    b'response="00", qop=auth, nc=zz, cnonce="a"',
    b'Digest realm="callcenter", username="1001", nonce="x", uri="sip:x", '
    b'response="00", qop=auth-int-x, nc=00000001, cnonce="a"',
    b'Digest realm="callcenter", realm="other", username="1001"',
    b'Digest username="' + b"a" * 5000 + b'"',
    b'Digest realm="callcenter" username="1001"',
]


def bad_value(data: bytes, rng: random.Random) -> bytes:
    """One header field (added if missing) gets a broken value."""
    name = rng.choice(list(BAD_VALUES))
    value = rng.choice(BAD_VALUES[name])
    lines, body = split(data)
    wanted = name.lower() + b":"
    for i, line in enumerate(lines[1:], 1):
        if line.lower().startswith(wanted):
            lines[i] = name + b": " + value
            break
    else:
        lines.insert(rng.randrange(1, len(lines) + 1), name + b": " + value)
    return join(lines, body)


def content_length(data: bytes, rng: random.Random) -> bytes:
    """A Content-Length larger or smaller than the body, or several."""
    lines, body = split(data)
    lines = [line for line in lines if not line.lower().startswith(b"content-length:")]
    choice = rng.randrange(4)
    if choice == 0:
        lines.append(b"Content-Length: %d" % (len(body) + rng.randint(1, 70_000)))
    elif choice == 1:
        lines.append(b"Content-Length: %d" % rng.randint(0, max(0, len(body) - 1)))
    elif choice == 2:
        lines += [b"Content-Length: %d" % len(body), b"l: %d" % len(body)]
    else:
        lines.append(b"Content-Length: " + rng.choice(BAD_VALUES[b"Content-Length"]))
    return join(lines, body)


BAD_STARTS = [
    b"INVITE sip:100@127.0.0.1 SIP/3.0",
    b"OPTIONS sip:callcenter@127.0.0.1 SIP/1.0",
    b"OPTIONS sip:callcenter@127.0.0.1 SIP/2.0 extra",
    b"OPTIONS",
    b"OPTIONS  SIP/2.0",
    b" SIP/2.0",
    b"",
    b"GARBAGE",
    b"SIP/2.0 9999 Bad",
    b"SIP/1.0 200 OK",
    b"SIP/2.0 200",
    b"SIP/2.0 099 Low",
    b"INV@ITE sip:x SIP/2.0",
    b"OPTIONS <sip:x> SIP/2.0",
    b"OPTIONS sip:x?Call-ID=1 SIP/2.0",
    b"OPTIONS sip:[::1 SIP/2.0",
    b"OPTIONS sip:callcenter@127.0.0.1:99999 SIP/2.0",
    b"OPTIONS sip: SIP/2.0",
    b"OPTIONS http://example.com/ SIP/2.0",
    b"OPTIONS sip:x@y SIP/2.0\rINVITE sip:x@y SIP/2.0",
    b"options sip:callcenter@127.0.0.1 sip/2.0",
    b"OPTIONS sip:callcenter@127.0.0.1 SIP/20.0",
    b"OPTIONS sip:callcenter@127.0.0.1 SIP/2.0000",
    b"\xff\xfe\xfd sip:x SIP/2.0",
]


def bad_start(data: bytes, rng: random.Random) -> bytes:
    lines, body = split(data)
    lines[0] = rng.choice(BAD_STARTS)
    return join(lines, body)


def beyond_limits(data: bytes, rng: random.Random) -> bytes:
    """A header field, a header count, a Request-Line or a body past the parser's limits."""
    lines, body = split(data)
    choice = rng.randrange(5)
    if choice == 0:
        lines.insert(1, b"X-Huge: " + b"a" * rng.randint(8_200, 20_000))
    elif choice == 1:
        lines[1:1] = [b"X-Many-%d: %d" % (i, i) for i in range(rng.randint(257, 600))]
    elif choice == 2:
        lines[0] = b"OPTIONS sip:" + b"a" * rng.randint(8_200, 12_000) + b"@127.0.0.1 SIP/2.0"
    elif choice == 3:
        body = b"x" * rng.randint(32_800, 50_000)
        lines = [line for line in lines if not line.lower().startswith(b"content-length:")]
        lines.append(b"Content-Length: %d" % len(body))
    else:
        # Folded continuation lines that add up past the limit.
        lines.insert(1, b"Subject: a")
        lines[2:2] = [b" " + b"b" * 1000 for _ in range(10)]
    return join(lines, body)


def line_endings(data: bytes, rng: random.Random) -> bytes:
    choice = rng.randrange(4)
    if choice == 0:
        return data.replace(b"\r\n", b"\n")
    if choice == 1:
        return data.replace(b"\r\n", b"\r")
    if choice == 2:
        return data.replace(b"\r\n\r\n", b"\r\n \r\n", 1)
    return data.replace(b"\r\n", b"\r\n ", 1)


def folding(data: bytes, rng: random.Random) -> bytes:
    lines, body = split(data)
    i = rng.randrange(1, len(lines) + 1)
    lines.insert(i, rng.choice([b" continued", b"\tmore", b" ", b":", b"NoColon", b": empty"]))
    return join(lines, body)


def compact(data: bytes, rng: random.Random) -> bytes:
    swaps = {b"Via:": b"v:", b"From:": b"f:", b"To:": b"t:", b"Call-ID:": b"i:"}
    swaps |= {b"Contact:": b"m:", b"Content-Length:": b"l:", b"Content-Type:": b"c:"}
    out = data
    for long, short in swaps.items():
        if rng.random() < 0.5:
            out = out.replace(long, short)
    return out


#: Session descriptions that cannot be used (RFC 4566 syntax, or nothing we can take).
BROKEN_SDP = [
    b"",
    SDP[:40],
    SDP.replace(b"m=audio 9", b"m=audio abc"),
    SDP.replace(b"v=0", b"v=1"),
    SDP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4"),
    SDP + b"m=audio 9 RTP/AVP 0\r\n" * 40,
    b"\xff\xfe" + SDP,
    b"<html>not a session description</html>",
]


def garbage(rng: random.Random) -> bytes:
    size = rng.choice([1, 2, 3, 16, 200, 1400, rng.randint(1, 60_000)])
    data = rng.randbytes(size)
    if rng.random() < 0.3:
        data = b"INVITE sip:100@127.0.0.1 SIP/2.0\r\n" + data
    if rng.random() < 0.3:
        data += b"\r\n\r\n"
    return data


MUTATIONS: list[tuple[int, Callable[[bytes, random.Random], bytes]]] = [
    (12, truncate),
    (12, flip_bytes),
    (6, delete_header),
    (5, duplicate_header),
    (2, shuffle_headers),
    (16, bad_value),
    (7, content_length),
    (6, bad_start),
    (4, beyond_limits),
    (3, line_endings),
    (3, folding),
    (3, compact),
]


def several_vias(data: bytes) -> bool:
    """Whether the head has more than one Via value (fields unfolded as the parser does)."""
    fields: list[bytes] = []
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\n")[1:]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    vias = [f for f in fields if re.match(rb"(?i)(via|v)[ \t]*:", f)]
    return len(vias) > 1 or any(b"," in v for v in vias)


def fuzzed(good: Good, rng: random.Random) -> bytes:
    """One bad (or, now and then, accidentally good) message.

    Until the bug of ``test_refused_request_with_a_broken_later_via_is_answered``
    is fixed, messages with several Via values are left out of the mix: they
    would only hit it again.
    """
    while True:
        data = garbage(rng) if rng.random() < 0.05 else good.any(rng)
        functions = [f for _, f in MUTATIONS]
        weights = [w for w, _ in MUTATIONS]
        for mutate in rng.choices(functions, weights, k=rng.choice([1, 1, 1, 2, 3])):
            if data:
                data = mutate(data, rng)
        if not several_vias(data):
            return data


# -- the other end ---------------------------------------------------------------------------


def status_of(data: bytes) -> tuple[int, str] | None:
    """The status and Call-ID of a response (read loosely: it may echo broken fields)."""
    match = _STATUS_LINE.match(data)
    if match is None:
        return None
    found = _CALL_ID.search(data)
    call_id = found.group(1).decode(errors="replace").strip() if found else ""
    return int(match.group(1)), call_id


class Catcher(asyncio.DatagramProtocol):
    """Our UDP socket: counts the responses that come back, by status and Call-ID."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.answers: defaultdict[str, list[int]] = defaultdict(list)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        found = status_of(data)
        if found is None:
            return  # a request of the server's (the BYE of a call never acknowledged)
        status, call_id = found
        self.statuses[status] += 1
        self.answers[call_id].append(status)

    def error_received(self, exc: Exception) -> None:
        pass

    async def final(self, call_id: str, timeout: float = 2.0) -> int | None:
        """The first final status for ``call_id``, waiting up to ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (finals := [s for s in self.answers.get(call_id, []) if s >= 200]):
            if loop.time() > deadline:
                return None
            await asyncio.sleep(0.002)
        return finals[0]


class UdpPeer:
    """A UDP socket of ours talking to the server: ``async with UdpPeer(server) as peer``."""

    def __init__(self, server: Server) -> None:
        assert server.voice is not None
        self.destination = ("127.0.0.1", server.voice.port)
        self.catcher = Catcher()
        self.transport: asyncio.DatagramTransport | None = None
        self.good = Good(server.voice.port, 0)

    async def __aenter__(self) -> UdpPeer:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self.catcher, local_addr=("127.0.0.1", 0)
        )
        self.good.local = self.transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.destination)

    async def ask(self, data: bytes, call_id: str, timeout: float = 2.0) -> int | None:
        """Send one request with Call-ID ``call_id``; its final status (None if none came)."""
        self.send(with_call_id(data, call_id))
        return await self.catcher.final(call_id, timeout)


def with_call_id(data: bytes, call_id: str) -> bytes:
    return re.sub(rb"Call-ID: [^\r]*", b"Call-ID: " + call_id.encode(), data, count=1)


def replace_line(data: bytes, prefix: bytes, line: bytes) -> bytes:
    lines, body = split(data)
    return join([line if x.startswith(prefix) else x for x in lines], body)


def refused_cases(good: Good) -> dict[str, tuple[bytes, int]]:
    """Bad requests whose answer is known, each a fresh OPTIONS (a branch of its own)."""

    def changed(prefix: bytes, line: bytes) -> bytes:
        return replace_line(good.options(), prefix, line)

    def added(*more: bytes, body: bytes = b"") -> bytes:
        lines, _ = split(good.options())
        return join([*lines, *more], body)

    def sized(length: int) -> bytes:
        lines, _ = split(good.options())  # the last line is Content-Length
        return join([*lines[:-1], b"Content-Length: %d" % length], b"x" * length)

    return {
        "version": (changed(b"OPTIONS", b"OPTIONS sip:callcenter@127.0.0.1 SIP/3.0"), 505),
        "large-body": (sized(40_000), 413),
        "short-body": (changed(b"Content-Length", b"Content-Length: 500"), 400),
        "length-text": (changed(b"Content-Length", b"Content-Length: many"), 400),
        "length-negative": (changed(b"Content-Length", b"Content-Length: -3"), 400),
        "length-twice": (added(b"l: 0"), 400),
        "cseq-method": (changed(b"CSeq", b"CSeq: 1 INVITE"), 400),
        "cseq-number": (changed(b"CSeq", b"CSeq: x OPTIONS"), 400),
        "cseq-huge": (changed(b"CSeq", b"CSeq: 4294967296 OPTIONS"), 400),
        "from": (changed(b"From", b"From: <sip:"), 400),
        "to": (changed(b"To", b"To: sip:a@b>"), 400),
        "to-twice": (added(b"t: <sip:x@y>"), 400),
        "max-forwards": (changed(b"Max-Forwards", b"Max-Forwards: -1"), 400),
        "request-uri": (changed(b"OPTIONS", b"OPTIONS sip: SIP/2.0"), 400),
    }


def limit_cases(good: Good) -> dict[str, tuple[bytes, int]]:
    """Requests past the parser's size limits: 414 and 513 (RFC 3261 21.4.12, 21.5.14)."""
    long_uri = b"OPTIONS sip:" + b"a" * 9_000 + b"@h SIP/2.0"
    long_header = [b"Subject: " + b"a" * 9_000]
    many_headers = [b"X-N%d: 1" % i for i in range(300)]
    return {
        "long-request-uri": (replace_line(good.options(), b"OPTIONS", long_uri), 414),
        "long-header": (join([*split(good.options())[0], *long_header], b""), 513),
        "many-headers": (join([*split(good.options())[0], *many_headers], b""), 513),
    }


async def settle(server: Server, ports: int, limit: float = 20.0) -> None:
    """Wait until every transaction and call has ended and every RTP port is back."""
    assert server.voice is not None and server.calls is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    endpoint, calls = server.voice.endpoint, server.calls
    while loop.time() < deadline:
        if not endpoint.transactions and not calls.calls and calls.allocator.available == ports:
            return
        await asyncio.sleep(0.1)
    pytest.fail(
        f"after {limit} s: {endpoint.transactions} transactions, {len(calls.calls)} calls, "
        f"{ports - calls.allocator.available} RTP ports still taken"
    )


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if r.levelno >= logging.ERROR
    ]


async def register_with_sipp(server: Server, folder: Path, transport: str = "u1") -> None:
    assert server.voice is not None
    target = f"127.0.0.1:{server.voice.port}"
    args = ("-s", "1001", "-au", "1001", "-ap", "sip-secret-1001", "-t", transport)
    registered = await sipp("register", target, *args, folder=folder)
    assert registered.returncode == 0, registered.errors or registered.stderr
    assert server.voice.binding_peer("1001") is not None


def track_rtp_ports(monkeypatch: pytest.MonkeyPatch) -> list[RtpPort]:
    """Every RTP port the server opens from now on, to close what a bug leaves open."""
    opened: list[RtpPort] = []
    real = RtpPort.open.__func__  # type: ignore[attr-defined]

    async def spy(cls: type[RtpPort], *args: Any, **kwargs: Any) -> RtpPort:
        port: RtpPort = await real(cls, *args, **kwargs)
        opened.append(port)
        return port

    monkeypatch.setattr(RtpPort, "open", classmethod(spy))
    return opened


def close_left_open(opened: list[RtpPort]) -> None:
    for port in opened:
        if not port.closed:
            port.close()


def ports_free(server: Server) -> int:
    assert server.calls is not None
    return server.calls.allocator.available


# -- the tests ---------------------------------------------------------------------------------


@ROBUSTNESS
async def test_malformed_udp_flood_is_refused_and_the_server_keeps_serving(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ports = ports_free(server)
    rng = random.Random(SEED)
    markers_lost = 0
    async with UdpPeer(server) as peer:
        sent = 0
        while sent < UDP_MESSAGES:
            for _ in range(min(BURST, UDP_MESSAGES - sent)):
                peer.send(fuzzed(peer.good, rng)[:65_000])
                sent += 1
            # Read after the burst: its answer means the burst was read (or dropped).
            if await peer.ask(peer.good.options(), f"marker-{sent}", 1.0) != 200:
                markers_lost += 1

        # A full socket buffer may drop a marker now and then, not many.
        assert markers_lost < UDP_MESSAGES // BURST // 10, markers_lost
        for name, (data, status) in refused_cases(peer.good).items():
            assert await peer.ask(data, f"refused-{name}") == status, name
        # Still serving.
        assert await peer.ask(peer.good.options(), "after") == 200

    seen = peer.catcher.statuses
    for status in (400, 404, 405, 413, 481, 505):
        assert seen[status] > 0, (status, seen)
    assert not [s for s in seen if s >= 500 and s not in (505, 513)], seen
    await register_with_sipp(server, tmp_path)
    await settle(server, ports)
    assert errors_logged(caplog) == []


async def tcp_exchange(port: int, data: bytes, *, trickle: bool = False) -> list[int]:
    """Send ``data`` on a new connection; the statuses that come back until it goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()
    try:
        if trickle:
            # In pieces, to split messages at every kind of place.
            step = 1 + len(data) // 9
            for i in range(0, len(data), step):
                writer.write(data[i : i + step])
                await writer.drain()
                await asyncio.sleep(0.001)
        else:
            writer.write(data)
            await writer.drain()
        while more := await asyncio.wait_for(reader.read(65_536), 1.0):
            received += more
    except (TimeoutError, ConnectionError):
        pass  # quiet, or closed on us after a framing error
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return [int(m.group(1)) for m in re.finditer(rb"SIP/2\.0 ([0-9]{3}) ", received)]


def tcp_stream(good: Good, rng: random.Random) -> bytes:
    """Several messages back to back, fuzzed and good mixed."""
    count = rng.randint(5, 12)
    return b"".join(
        fuzzed(good, rng) if rng.random() < 0.6 else good.any(rng) for _ in range(count)
    )


def stream_cases(good: Good) -> dict[str, tuple[bytes, list[int]]]:
    """What only a stream can carry, with the answers expected."""
    lines, _ = split(good.options())
    big = [b"X-Big-%d: " % i + b"b" * 4_000 for i in range(10)]
    body = b"y" * 30_000
    return {
        # A head and a body each within their limits, too much together (513).
        "whole-too-large": (join([*lines[:-1], *big, b"Content-Length: 30000"], body), [513]),
        "pings": (b"\r\n\r\n" * 3 + good.options(), [200]),
        "no-length": (join(lines[:-1], b""), [400]),  # mandatory on a stream (18.3)
        "pipelined": (good.options() + good.register() + good.options(), [200, 401, 200]),
    }


@ROBUSTNESS
async def test_malformed_tcp_streams_are_refused_and_the_server_keeps_serving(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert server.voice is not None
    caplog.set_level(logging.WARNING)
    ports = ports_free(server)
    port = server.voice.port
    rng = random.Random(SEED + 1)
    good = Good(port, 5060, "TCP")
    streams = [tcp_stream(good, rng) for _ in range(TCP_CONNECTIONS)]
    assert good.count >= 300
    seen: Counter[int] = Counter()
    for answers in await asyncio.gather(
        *(tcp_exchange(port, data, trickle=n % 3 == 0) for n, data in enumerate(streams))
    ):
        seen.update(answers)

    # The known cases, one connection each (a framing error closes it).
    cases = {name: (data, [status]) for name, (data, status) in refused_cases(good).items()}
    del cases["short-body"]  # on a stream the rest of the body may still come
    cases.update(stream_cases(good))
    got = await asyncio.gather(
        *(tcp_exchange(port, data, trickle=n == "pipelined") for n, (data, _) in cases.items())
    )
    for (name, (_, expected)), answers in zip(cases.items(), got, strict=True):
        assert sorted(answers) == sorted(expected), name
        seen.update(answers)

    for status in (400, 413, 505, 513):
        assert seen[status] > 0, (status, seen)
    assert not [s for s in seen if s >= 500 and s not in (505, 513)], seen
    # Still serving, over TCP.
    assert await tcp_exchange(port, good.options()) == [200]
    await register_with_sipp(server, tmp_path, "t1")
    await settle(server, ports)
    assert errors_logged(caplog) == []


@ROBUSTNESS
async def test_requests_past_the_size_limits_are_answered(server: Server) -> None:
    async with UdpPeer(server) as peer:
        answers = {
            name: await peer.ask(data, f"limit-{name}", 1.0)
            for name, (data, _) in limit_cases(peer.good).items()
        }
    assert answers == {name: status for name, (_, status) in limit_cases(peer.good).items()}


@ROBUSTNESS
async def test_unusable_session_descriptions_are_refused_with_488(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ports = ports_free(server)
    async with UdpPeer(server) as peer:
        answers = [
            await peer.ask(peer.good.invite("100", body), f"sdp-{n}")
            for n, body in enumerate(BROKEN_SDP)
        ]
    await settle(server, ports)
    assert (answers, errors_logged(caplog)) == ([488] * len(BROKEN_SDP), [])


@ROBUSTNESS
async def test_invite_without_one_contact_is_refused_and_takes_no_rtp_port(
    server: Server, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING)
    opened = track_rtp_ports(monkeypatch)
    ports = ports_free(server)
    try:
        async with UdpPeer(server) as peer:
            no_contact = re.sub(rb"Contact: [^\r]*\r\n", b"", peer.good.invite("100"))
            two_contacts = peer.good.invite("100").replace(
                b"Contact: ", b"Contact: <sip:a@127.0.0.1>, "
            )
            assert await peer.ask(no_contact, "no-contact") == 400
            assert await peer.ask(two_contacts, "two-contacts") == 400
        await settle(server, ports, limit=3.0)
        assert errors_logged(caplog) == []
    finally:
        close_left_open(opened)


@ROBUSTNESS
async def test_unreadable_credentials_are_challenged_afresh(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ports = ports_free(server)
    async with UdpPeer(server) as peer:
        # Readable but wrong credentials: challenged again (the behaviour to match).
        wrong = peer.good.register(
            b'Digest username="1001", realm="callcenter", nonce="bm9uY2U=", '
            b'uri="sip:127.0.0.1", response="0123456789abcdef0123456789abcdef", algorithm=MD5'
        )
        assert await peer.ask(wrong, "wrong") == 401
        answers = await asyncio.gather(
            *(
                peer.ask(peer.good.register(value), f"unreadable-{n}")
                for n, value in enumerate(UNREADABLE_CREDENTIALS)
            )
        )
    assert list(answers) == [401] * len(UNREADABLE_CREDENTIALS)
    await settle(server, ports, limit=5.0)
    assert errors_logged(caplog) == []


@ROBUSTNESS
async def test_cancel_that_matches_nothing_gets_481(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ports = ports_free(server)
    async with UdpPeer(server) as peer:
        cancel = peer.good.in_dialog("CANCEL")
        assert await peer.ask(cancel, "cancel-nothing") == 481
        assert peer.catcher.answers["cancel-nothing"] == [481]
    await settle(server, ports, limit=5.0)
    assert errors_logged(caplog) == []


@ROBUSTNESS
async def test_refused_request_with_a_broken_later_via_is_answered(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with UdpPeer(server) as peer:
        options = replace_line(peer.good.options(), b"CSeq", b"CSeq: 1 INVITE")
        lines, body = split(options)
        broken = join([*lines, b"Via: SIP/2.0/UDP"], body)
        assert await peer.ask(broken, "second-via", 1.0) == 400
    assert errors_logged(caplog) == []


@pytest.mark.settings(
    sip=SIP, voice={**VOICE, "rtp_first_port": ONE_PORT, "rtp_last_port": ONE_PORT + 1}
)
async def test_call_with_no_rtp_port_left_is_refused_with_503(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        with contextlib.suppress(OSError):  # taken already is as good
            holder.bind(("127.0.0.1", ONE_PORT))
        async with UdpPeer(server) as peer:
            status = await peer.ask(peer.good.invite("100"), "no-port")
    assert (status, errors_logged(caplog)) == (503, [])
