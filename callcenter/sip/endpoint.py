"""The SIP endpoint: UDP and TCP transports, the transaction table and its timers.

This is the asyncio adapter around the pure pieces: it parses what arrives
(:mod:`callcenter.sip.message`), matches it to a transaction
(:mod:`callcenter.sip.transaction`, RFC 3261 17.1.3 and 17.2.3), carries out
the transactions' effects on the wire and hands what remains to the UA core
(a :class:`Handler`): new requests, ACKs for 2xx responses, CANCELs and
responses that arrive after their transaction ended.

Responses go back the way RFC 3261 18.2.2 and RFC 3581 say: over the
connection the request came on (TCP), or to the address and port it came
from when the client asked for ``rport`` (UDP), so phones behind NAT are
reachable. Every INVITE is answered with ``100 Trying`` at once, which stops
the caller's retransmissions while the core decides.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from callcenter.sip import transaction as tx
from callcenter.sip.message import (
    DEFAULT_LIMITS,
    Limits,
    ParseError,
    Request,
    Response,
    StreamParser,
    Via,
    error_response,
    is_keepalive,
    make_response,
    new_branch,
    new_tag,
    parse_datagram,
)

log = logging.getLogger(__name__)
DEFAULT_TIMERS = tx.Timers()


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from or goes to."""

    transport: str  # "udp" or "tcp"
    host: str
    port: int


class Handler(Protocol):
    """The UA core: what the endpoint cannot decide by itself."""

    def request(self, server: ServerRequest) -> None:
        """A new request (never ACK or CANCEL); answer it with ``server.respond``."""

    def ack(self, request: Request, peer: Peer) -> None:
        """An ACK for a 2xx response: the end of a successful INVITE (13.3.1.4)."""

    def cancelled(self, server: ServerRequest) -> None:
        """The INVITE was CANCELled (9.2; the 200 for the CANCEL is sent): send 487."""

    def stray_response(self, response: Response, peer: Peer) -> None:
        """A response no transaction wants (a 2xx retransmitted after ours ended)."""


@dataclass(eq=False)
class ServerRequest:
    """A request in its server transaction, and how to answer it."""

    request: Request
    peer: Peer
    _endpoint: Endpoint
    _transaction: tx.InviteServer | tx.NonInviteServer
    #: Final response sent (the core's own bookkeeping).
    answered: bool = False
    #: Our To tag for every response of this transaction (8.2.6.2), and of
    #: the dialog an INVITE creates.
    tag: str = field(default_factory=new_tag)

    def respond(self, response: Response) -> None:
        if response.status >= 200:
            self.answered = True
        self._endpoint._run(self._transaction, self._transaction.respond(response, _now()))

    def reply(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> Response:
        """Build the response with :func:`make_response` (our tag unless given) and send it."""
        response = make_response(self.request, status, reason, to_tag or self.tag, headers, body)
        self.respond(response)
        return response

    @property
    def terminated(self) -> bool:
        return self._transaction.state is tx.State.TERMINATED


@dataclass(eq=False)
class _Client:
    transaction: tx.InviteClient | tx.NonInviteClient
    peer: Peer
    final: asyncio.Future[Response]
    on_provisional: Callable[[Response], None] | None = None


@dataclass(eq=False)
class _Connection(asyncio.Protocol):
    """One TCP connection, framed by a :class:`StreamParser`."""

    endpoint: Endpoint
    parser: StreamParser = field(init=False)
    transport: asyncio.Transport | None = None
    peer: Peer | None = None

    def __post_init__(self) -> None:
        self.parser = StreamParser(self.endpoint.limits)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Peer("tcp", host, port)
        self.endpoint._connections[(host, port)] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        self.parser.feed(data)
        while True:
            try:
                message = self.parser.next_message()
            except ParseError as error:
                self.endpoint._refuse(error, self.peer)
                if self.parser.broken:
                    self.transport.close()
                    return
                continue
            if message is None:
                break
            self.endpoint._received(message, self.peer)
        if pings := self.parser.take_pings():
            self.transport.write(b"\r\n" * pings)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.endpoint._connections.pop((self.peer.host, self.peer.port), None)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        peer = Peer("udp", addr[0], addr[1])
        if is_keepalive(data):
            return
        try:
            message = parse_datagram(data, self.endpoint.limits)
        except ParseError as error:
            self.endpoint._refuse(error, peer)
            return
        self.endpoint._received(message, peer)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: retransmissions or timer B/F decide.
        log.debug("udp error: %s", exc)


def _now() -> float:
    return asyncio.get_running_loop().time()


class Endpoint:
    """See the module docstring. Start with :meth:`start`, always :meth:`close`."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 5060,
        advertised_host: str = "",
        timers: tx.Timers = DEFAULT_TIMERS,
        limits: Limits = DEFAULT_LIMITS,
        receive_buffer: int = 4 * 1024 * 1024,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.advertised_host = advertised_host or host
        self.timers = timers
        self.limits = limits
        #: SO_RCVBUF of the UDP socket: a burst of calls must not overflow it.
        self.receive_buffer = receive_buffer
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._servers: dict[tuple[str, str, str], ServerRequest] = {}
        self._clients: dict[tuple[str, str], _Client] = {}
        self._deadlines: list[tuple[float, int, tx.ClientTransaction | tx.ServerTransaction]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._owner: dict[int, ServerRequest | _Client] = {}

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Bind UDP and TCP on the same port (an ephemeral one when ``port`` is 0)."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(self.host, self.port)
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await loop.create_server(
                    lambda: _Connection(self), self.host, port, reuse_address=True
                )
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue  # the ephemeral UDP port is taken for TCP: draw another
            self._udp, self.port = udp, port
            udp.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer
            )
            return
        raise OSError("no port free for both UDP and TCP")

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.transport.close()
        for client in self._clients.values():
            if not client.final.done():
                client.final.cancel()

    # -- building ---------------------------------------------------------------------

    def via(self, transport: str = "udp") -> str:
        """A Via header value for a new request from us, with a fresh branch and rport."""
        sent_by = f"{self.advertised_host}:{self.port}"
        return f"SIP/2.0/{transport.upper()} {sent_by};branch={new_branch()};rport"

    def contact(self, user: str = "callcenter", transport: str = "udp") -> str:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:{user}@{self.advertised_host}:{self.port}{suffix}>"

    # -- sending ----------------------------------------------------------------------

    def send(self, message: Request | Response, peer: Peer) -> None:
        """Send without a transaction (ACK for 2xx, a 2xx retransmitted by the core)."""
        data = message.encode()
        if peer.transport == "udp":
            if self._udp is not None:
                self._udp.sendto(data, (peer.host, peer.port))
            return
        connection = self._connections.get((peer.host, peer.port))
        if connection is not None and connection.transport is not None:
            connection.transport.write(data)
            return
        asyncio.get_running_loop().create_task(self._connect_and_send(data, peer))

    async def _connect_and_send(self, data: bytes, peer: Peer) -> None:
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self), peer.host, peer.port
            )
        except OSError as error:
            log.info("tcp connect to %s:%s failed: %s", peer.host, peer.port, error)
            self._transport_failed(peer)
            return
        assert connection.transport is not None
        connection.transport.write(data)

    def request(
        self,
        request: Request,
        peer: Peer,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> asyncio.Future[Response]:
        """Send ``request`` in a client transaction; the future gets its final response.

        A timeout resolves it with a 408 and a transport failure with a 503
        made up here (8.1.3.1), so the caller handles one kind of outcome.
        """
        reliable = peer.transport == "tcp"
        transaction: tx.InviteClient | tx.NonInviteClient
        if request.method == "INVITE":
            transaction = tx.InviteClient(
                request, reliable, self.timers, lambda r: self._ack_for(request, r)
            )
        else:
            transaction = tx.NonInviteClient(request, reliable, self.timers)
        final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        client = _Client(transaction, peer, final, on_provisional)
        key = self._client_key(request.top_via.branch or "", request.method)
        self._clients[key] = client
        self._owner[id(transaction)] = client
        self._run(transaction, transaction.start(_now()))
        return final

    @staticmethod
    def _ack_for(invite: Request, response: Response) -> Request:
        """The ACK for a non-2xx final response (17.1.1.3).

        One Via, the INVITE's top one (so the same branch); From, Call-ID and
        Route as in the INVITE; To from the response (with its tag).
        """
        headers: list[tuple[str, str]] = [("Via", str(invite.top_via))]
        headers += [(n, v) for n, v in invite.headers if n.lower() in ("from", "call-id")]
        headers.append(("To", response.header("To") or invite.header("To") or ""))
        headers.append(("CSeq", f"{invite.cseq.number} ACK"))
        headers += [(n, v) for n, v in invite.headers if n.lower() == "route"]
        headers.append(("Max-Forwards", "70"))
        return Request("ACK", invite.uri, tuple(headers))

    # -- receiving ------------------------------------------------------------------------

    def _refuse(self, error: ParseError, peer: Peer) -> None:
        log.info("refused a message from %s:%s: %s", peer.host, peer.port, error)
        answer = error_response(error)
        if answer is not None:
            self.send(answer, self._response_peer(answer, peer))

    def _received(self, message: Request | Response, peer: Peer) -> None:
        try:
            if isinstance(message, Response):
                self._response(message, peer)
            else:
                self._request(message, peer)
        except ParseError as error:
            # A header the parser let through but that cannot be used here.
            log.info("unusable message from %s:%s: %s", peer.host, peer.port, error)

    def _request(self, request: Request, peer: Peer) -> None:
        via = sent = request.top_via
        # RFC 3261 18.2.1 and RFC 3581: note where it really came from.
        if via.host != peer.host:
            via = via.with_param("received", peer.host)
        if via.rport_requested:
            via = via.with_param("rport", str(peer.port))
        if via is not sent:
            request = request.with_top_via(via)
        branch = via.branch or ""
        if request.method == "ACK":
            server = self._servers.get((branch, via.sent_by, "INVITE"))
            if server is not None and server._transaction.state is not tx.State.ACCEPTED:
                self._run(server._transaction, server._transaction.receive(request, _now()))
            else:
                self.handler.ack(request, peer)
            return
        if request.method == "CANCEL":
            self._cancel(request, peer, branch, via.sent_by)
            return
        key = (branch, via.sent_by, request.method)
        existing = self._servers.get(key)
        if existing is not None:
            self._run(existing._transaction, existing._transaction.receive(request, _now()))
            return
        reliable = peer.transport == "tcp"
        transaction: tx.InviteServer | tx.NonInviteServer
        if request.method == "INVITE":
            transaction = tx.InviteServer(request, reliable, self.timers)
        else:
            transaction = tx.NonInviteServer(request, reliable, self.timers)
        server = ServerRequest(request, peer, self, transaction)
        self._servers[key] = server
        self._owner[id(transaction)] = server
        if request.method == "INVITE":
            server.reply(100)  # before the core: it may take a while to decide
        self._run(transaction, transaction.start(_now()))

    def _cancel(self, cancel: Request, peer: Peer, branch: str, sent_by: str) -> None:
        """9.2: answer the CANCEL itself, then let the core end the INVITE with 487."""
        reliable = peer.transport == "tcp"
        transaction = tx.NonInviteServer(cancel, reliable, self.timers)
        server = ServerRequest(cancel, peer, self, transaction)
        self._servers[(branch, sent_by, "CANCEL")] = server
        self._owner[id(transaction)] = server
        # Not started: a CANCEL is answered here, never handed to the core as a request.
        invite = self._servers.get((branch, sent_by, "INVITE"))
        if invite is None:
            server.reply(481)
            return
        server.reply(200)
        if not invite.answered:
            # An INVITE answered already is not affected by its CANCEL (9.2).
            self.handler.cancelled(invite)

    def _response(self, response: Response, peer: Peer) -> None:
        via = response.top_via
        client = self._clients.get(self._client_key(via.branch or "", response.cseq.method))
        if client is None:
            self.handler.stray_response(response, peer)
            return
        self._run(client.transaction, client.transaction.receive(response, _now()))

    # -- effects and timers ---------------------------------------------------------------

    def _run(
        self, transaction: tx.ClientTransaction | tx.ServerTransaction, effects: list[tx.Effect]
    ) -> None:
        owner = self._owner.get(id(transaction))
        for effect in effects:
            if isinstance(effect, tx.Send):
                self.send(effect.message, self._destination(owner, effect.message))
            elif isinstance(effect, tx.Deliver):
                self._deliver(owner, effect.message)
            elif isinstance(effect, (tx.TimedOut, tx.TransportFailed)):
                self._failed(owner, effect)
        if transaction.state is tx.State.TERMINATED:
            self._forget(transaction, owner)
        elif (at := transaction.next_deadline()) is not None:
            heapq.heappush(self._deadlines, (at, next(self._order), transaction))
            self._arm()

    def _destination(
        self, owner: ServerRequest | _Client | None, message: Request | Response
    ) -> Peer:
        if isinstance(owner, _Client):
            return owner.peer
        assert owner is not None
        return self._response_peer(message, owner.peer)

    @staticmethod
    def _response_peer(message: Request | Response, peer: Peer) -> Peer:
        """18.2.2 with RFC 3581: the connection, or received and rport, or sent-by."""
        if peer.transport == "tcp":
            return peer
        via: Via = message.top_via
        host = via.received or peer.host
        port = via.rport or (peer.port if via.received is None else via.port or 5060)
        return Peer("udp", host, port)

    def _deliver(self, owner: ServerRequest | _Client | None, message: Request | Response) -> None:
        if isinstance(owner, ServerRequest):
            if isinstance(message, Request) and message.method == "ACK":
                self.handler.ack(message, owner.peer)
            else:
                self.handler.request(owner)
            return
        if isinstance(owner, _Client) and isinstance(message, Response):
            if message.status < 200:
                if owner.on_provisional is not None:
                    owner.on_provisional(message)
            elif not owner.final.done():
                owner.final.set_result(message)
            else:
                # A 2xx retransmitted while Accepted: the core ACKs it again.
                self.handler.stray_response(message, owner.peer)

    def _failed(self, owner: ServerRequest | _Client | None, effect: tx.Effect) -> None:
        if isinstance(owner, _Client) and not owner.final.done():
            request = owner.transaction.request
            status = 408 if isinstance(effect, tx.TimedOut) else 503
            owner.final.set_result(make_response(request, status))
        elif isinstance(owner, ServerRequest):
            log.info("no ACK for the final response to %s", owner.request.call_id)

    def _transport_failed(self, peer: Peer) -> None:
        for client in list(self._clients.values()):
            if client.peer == peer:
                self._run(client.transaction, client.transaction.transport_error())

    def _forget(
        self,
        transaction: tx.ClientTransaction | tx.ServerTransaction,
        owner: ServerRequest | _Client | None,
    ) -> None:
        self._owner.pop(id(transaction), None)
        if isinstance(owner, _Client):
            request = owner.transaction.request
            self._clients.pop(self._client_key(request.top_via.branch or "", request.method), None)
        elif isinstance(owner, ServerRequest):
            via = owner.request.top_via
            self._servers.pop((via.branch or "", via.sent_by, owner.request.method), None)

    @staticmethod
    def _client_key(branch: str, method: str) -> tuple[str, str]:
        return branch, "INVITE" if method == "ACK" else method

    def _arm(self) -> None:
        if not self._deadlines:
            return
        at = self._deadlines[0][0]
        if self._timer is not None and self._timer.when() <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = _now()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, transaction = heapq.heappop(self._deadlines)
            if transaction.state is not tx.State.TERMINATED:
                self._run(transaction, transaction.fire(now))
        self._arm()

    @property
    def transactions(self) -> int:
        """Transactions alive (for metrics and tests)."""
        return len(self._servers) + len(self._clients)
