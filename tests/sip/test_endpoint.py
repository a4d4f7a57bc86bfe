"""The SIP endpoint over real UDP and TCP sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from callcenter.sip.endpoint import Endpoint, Peer, ServerRequest
from callcenter.sip.message import ParseError, Request, Response, parse_datagram
from callcenter.sip.transaction import Timers
from callcenter.sip.uri import parse_uri

#: The kernel's cap on socket receive buffers.
RMEM_MAX = int(Path("/proc/sys/net/core/rmem_max").read_text())
FAST = Timers(t1=0.02, t2=0.16, t4=0.2)


class Core:
    """Answers as told and remembers what it saw."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[ServerRequest] = []
        self.acks: list[Request] = []
        self.cancels: list[ServerRequest] = []
        self.stray: list[Response] = []

    def request(self, server: ServerRequest) -> None:
        self.requests.append(server)
        if self.status:
            server.reply(self.status, to_tag="srv")

    def ack(self, request: Request, peer: Peer) -> None:
        self.acks.append(request)

    def cancelled(self, server: ServerRequest) -> None:
        self.cancels.append(server)
        server.reply(487, to_tag="srv")

    def stray_response(self, response: Response, peer: Peer) -> None:
        self.stray.append(response)


class Phone(asyncio.DatagramProtocol):
    """A bare UDP socket playing a phone."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[Response | Request] = asyncio.Queue()
        self.unparsed: asyncio.Queue[bytes] = asyncio.Queue()
        self.raw: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.raw.append(data)
        try:
            self.received.put_nowait(parse_datagram(data))
        except ParseError:
            # A 400 echoes the malformed header it refuses; keep the bytes only.
            self.unparsed.put_nowait(data)

    async def next(self, timeout: float = 2.0) -> Response | Request:
        return await asyncio.wait_for(self.received.get(), timeout)


def message(method: str, port: int, branch: str, cseq: int = 1, extra: str = "") -> bytes:
    return (
        f"{method} sip:100@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:100@127.0.0.1>\r\n"
        f"Call-ID: call-{branch}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def _setup(core: Core) -> tuple[Endpoint, Phone, int]:
    endpoint = Endpoint(core, host="127.0.0.1", port=0, timers=FAST)
    await endpoint.start()
    loop = asyncio.get_running_loop()
    transport, phone = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", 0))
    return endpoint, phone, transport.get_extra_info("sockname")[1]


async def test_options_answered_once_and_retransmission_gets_the_same_answer() -> None:
    core = Core(200)
    endpoint, phone, port = await _setup(core)
    try:
        assert phone.transport is not None
        phone.transport.sendto(message("OPTIONS", port, "opt1"), ("127.0.0.1", endpoint.port))
        first = await phone.next()
        assert isinstance(first, Response) and first.status == 200
        # rport was filled in with the port the request really came from.
        assert first.top_via.rport == port
        phone.transport.sendto(message("OPTIONS", port, "opt1"), ("127.0.0.1", endpoint.port))
        again = await phone.next()
        assert isinstance(again, Response) and again.status == 200
        assert len(core.requests) == 1
    finally:
        await endpoint.close()
        assert phone.transport is not None
        phone.transport.close()


async def test_invite_error_is_retransmitted_until_acked() -> None:
    core = Core(486)
    endpoint, phone, port = await _setup(core)
    try:
        assert phone.transport is not None
        phone.transport.sendto(message("INVITE", port, "inv1"), ("127.0.0.1", endpoint.port))
        trying, busy = await phone.next(), await phone.next()
        assert isinstance(trying, Response) and trying.status == 100
        assert isinstance(busy, Response) and busy.status == 486
        again = await phone.next()  # timer G: the 486 again, no ACK came
        assert isinstance(again, Response) and again.status == 486
        phone.transport.sendto(message("ACK", port, "inv1"), ("127.0.0.1", endpoint.port))
        await asyncio.sleep(0.3)
        while not phone.received.empty():
            phone.received.get_nowait()
        await asyncio.sleep(0.3)
        assert phone.received.empty()  # confirmed: no more retransmissions
        assert core.acks == []  # a non-2xx ACK stays in the transaction
    finally:
        await endpoint.close()
        assert phone.transport is not None
        phone.transport.close()


async def test_cancel_gets_200_and_the_invite_487() -> None:
    core = Core(0)  # rings: no final answer
    endpoint, phone, port = await _setup(core)
    try:
        assert phone.transport is not None
        phone.transport.sendto(message("INVITE", port, "inv2"), ("127.0.0.1", endpoint.port))
        assert (await phone.next()).status == 100  # type: ignore[union-attr]
        phone.transport.sendto(message("CANCEL", port, "inv2"), ("127.0.0.1", endpoint.port))
        answers = {(r.cseq.method, r.status) for r in [await phone.next(), await phone.next()]}  # type: ignore[union-attr]
        assert answers == {("CANCEL", 200), ("INVITE", 487)}
        assert len(core.cancels) == 1
        stray = message("CANCEL", port, "nosuch")
        phone.transport.sendto(stray, ("127.0.0.1", endpoint.port))
        assert (await phone.next()).status == 481  # type: ignore[union-attr]
    finally:
        await endpoint.close()
        assert phone.transport is not None
        phone.transport.close()


async def test_malformed_request_gets_400_and_the_endpoint_goes_on() -> None:
    core = Core(200)
    endpoint, phone, port = await _setup(core)
    try:
        assert phone.transport is not None
        bad = message("OPTIONS", port, "bad1").replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS")
        phone.transport.sendto(bad, ("127.0.0.1", endpoint.port))
        refused = await asyncio.wait_for(phone.unparsed.get(), 2)
        assert refused.startswith(b"SIP/2.0 400 Malformed CSeq\r\n")
        phone.transport.sendto(b"\x00\xff garbage", ("127.0.0.1", endpoint.port))
        phone.transport.sendto(message("OPTIONS", port, "ok1"), ("127.0.0.1", endpoint.port))
        good = await phone.next()
        assert isinstance(good, Response) and good.status == 200
    finally:
        await endpoint.close()
        assert phone.transport is not None
        phone.transport.close()


async def test_client_transactions_between_two_endpoints_and_a_timeout() -> None:
    server_core, client_core = Core(200), Core(200)
    server = Endpoint(server_core, port=0, timers=FAST)
    client = Endpoint(client_core, port=0, timers=FAST)
    await server.start()
    await client.start()
    try:
        for transport in ("udp", "tcp"):
            request = Request(
                "OPTIONS",
                parse_uri(f"sip:ping@127.0.0.1:{server.port}"),
                (
                    ("Via", client.via(transport)),
                    ("Max-Forwards", "70"),
                    ("From", "<sip:cc@127.0.0.1>;tag=c1"),
                    ("To", "<sip:ping@127.0.0.1>"),
                    ("Call-ID", f"ping-{transport}"),
                    ("CSeq", "1 OPTIONS"),
                ),
            )
            answer = await client.request(request, Peer(transport, "127.0.0.1", server.port))
            assert answer.status == 200
        # Nobody listens there: timer F ends it with a 408 made up locally.
        lost = Request(
            "OPTIONS",
            parse_uri("sip:ping@127.0.0.1:9"),
            (
                ("Via", client.via()),
                ("Max-Forwards", "70"),
                ("From", "<sip:cc@127.0.0.1>;tag=c2"),
                ("To", "<sip:ping@127.0.0.1>"),
                ("Call-ID", "lost"),
                ("CSeq", "1 OPTIONS"),
            ),
        )
        assert (await client.request(lost, Peer("udp", "127.0.0.1", 9))).status == 408
        assert client.transactions == 0
    finally:
        await client.close()
        await server.close()


async def test_the_udp_socket_gets_a_large_receive_buffer() -> None:
    wanted = 1 << 20
    endpoint = Endpoint(Core(200), port=0, receive_buffer=wanted)
    await endpoint.start()
    try:
        assert endpoint._udp is not None
        sock = endpoint._udp.get_extra_info("socket")
        ceiling = RMEM_MAX
        # Linux doubles what it grants, up to net.core.rmem_max.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= min(wanted, ceiling)
    finally:
        await endpoint.close()
