"""The SIP side of the contact center: the UA core behind the endpoint.

It answers OPTIONS, runs the registrar for agents' extensions (digest
authenticated, see :mod:`callcenter.voice.auth`) and hands INVITEs and
in-dialog requests to the calls layer. Registrations decide whether an agent
can take calls: an agent whose extension has no live binding is not routable
for voice (``on_reachable``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from callcenter.config import SipSettings
from callcenter.services import Services
from callcenter.sip.endpoint import Endpoint, Peer, ServerRequest
from callcenter.sip.message import ParseError, Request, Response
from callcenter.sip.registrar import ContactRequest, Registrar, RegistrarLimits
from callcenter.sip.transaction import Timers
from callcenter.sip.uri import SipUri, UriError, parse_uri
from callcenter.voice.auth import SipAuth

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, REFER"
#: How often lapsed registrations are swept, in seconds.
SWEEP_SECONDS = 5.0


class Calls(Protocol):
    """What the service needs from the calls layer."""

    async def invite(self, server: ServerRequest) -> None: ...

    def in_dialog(self, server: ServerRequest) -> bool: ...

    def ack(self, request: Request, peer: Peer) -> None: ...

    def cancelled(self, server: ServerRequest) -> None: ...

    def stray_response(self, response: Response, peer: Peer) -> None: ...


class Dialogs(Protocol):
    """Another owner of dialogs (outbound calls), asked before the calls layer."""

    def in_dialog(self, server: ServerRequest) -> bool:
        """Whether ``server`` belongs to one of its dialogs (then it has been answered)."""

    def stray_response(self, response: Response, peer: Peer) -> None: ...


class VoiceService:
    """See the module docstring. ``await start()``, then ``await stop()``."""

    def __init__(
        self,
        services: Services,
        settings: SipSettings,
        on_reachable: Callable[[int, bool], Awaitable[None]] | None = None,
    ) -> None:
        self.services = services
        self.settings = settings
        self.auth = SipAuth(services, settings)
        self.registrar = Registrar(
            RegistrarLimits(min_expires=settings.min_expires, max_expires=settings.max_expires)
        )
        timers = Timers(settings.t1_ms / 1000, settings.t2_ms / 1000, settings.t4_ms / 1000)
        self.endpoint = Endpoint(
            self,
            host=settings.host,
            port=settings.port,
            advertised_host=settings.advertised_address,
            timers=timers,
            receive_buffer=settings.udp_receive_buffer_bytes,
        )
        self.calls: Calls | None = None
        self.dialogs: list[Dialogs] = []
        self.on_reachable = on_reachable
        #: Extension -> user id of agents with a live registration.
        self._reachable: dict[str, int] = {}
        self._extensions: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.endpoint.start()
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        pending = [*self._tasks, *([self._sweeper] if self._sweeper else [])]
        await asyncio.gather(*pending, return_exceptions=True)
        await self.endpoint.close()

    @property
    def port(self) -> int:
        return self.endpoint.port

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("SIP request handling failed", exc_info=error)

    # -- the endpoint's handler ---------------------------------------------------------

    def request(self, server: ServerRequest) -> None:
        method = server.request.method
        if method == "OPTIONS":
            server.reply(200, headers=(("Allow", ALLOW), ("Accept", "application/sdp")))
        elif method == "REGISTER":
            self.spawn(self._register(server))
        elif any(owner.in_dialog(server) for owner in self.dialogs):
            return
        elif self.calls is not None and self.calls.in_dialog(server):
            return
        elif method == "INVITE" and self.calls is not None:
            self.spawn(self._guarded(server, self.calls.invite(server)))
        elif method in ("BYE", "INFO", "UPDATE", "INVITE", "REFER"):
            server.reply(481 if method != "INVITE" else 480)
        else:
            server.reply(405, headers=(("Allow", ALLOW),))

    def ack(self, request: Request, peer: Peer) -> None:
        if self.calls is not None:
            self.calls.ack(request, peer)

    def cancelled(self, server: ServerRequest) -> None:
        if self.calls is not None:
            self.calls.cancelled(server)
        elif not server.answered:
            server.reply(487)

    def stray_response(self, response: Response, peer: Peer) -> None:
        for owner in self.dialogs:
            owner.stray_response(response, peer)
        if self.calls is not None:
            self.calls.stray_response(response, peer)

    async def _guarded(self, server: ServerRequest, work: Awaitable[None]) -> None:
        """Run a request's handling; whatever goes wrong, the request gets an answer."""
        try:
            await work
        except ParseError as error:
            if not server.answered:
                server.reply(400, error.reason)
        except Exception:
            if not server.answered:
                server.reply(500)
            raise

    # -- registrations ---------------------------------------------------------------

    async def _register(self, server: ServerRequest) -> None:
        request = server.request
        try:
            to = request.to_addr.uri
            contacts = request.contacts
            star = request.contact_star
            expires = request.expires
        except ParseError as error:
            server.reply(400, error.reason)
            return
        agent = await self.auth.authenticate(server)
        if agent is None:
            return
        if not isinstance(to, SipUri) or to.user != agent.extension:
            server.reply(403, "Not your extension")
            return
        peer = server.peer
        outcome = self.registrar.update(
            agent.extension,
            [ContactRequest(str(c.uri), c.expires) for c in contacts],
            wildcard=star,
            header_expires=expires,
            call_id=request.call_id,
            cseq=request.cseq.number,
            source=(peer.transport, peer.host, peer.port),
            now=time.monotonic(),
        )
        if outcome.status == 423:
            server.reply(423, headers=(("Min-Expires", str(outcome.min_expires)),))
            return
        if outcome.status != 200:
            server.reply(outcome.status, outcome.reason)
            return
        now = time.monotonic()
        headers = tuple(
            ("Contact", f"<{b.contact}>;expires={b.expires_in(now)}") for b in outcome.bindings
        )
        server.reply(200, headers=headers)
        await self._reachability(agent.extension, agent.user_id, bool(outcome.bindings))

    async def _reachability(self, extension: str, user_id: int, reachable: bool) -> None:
        if reachable == (extension in self._reachable):
            return
        if reachable:
            self._reachable[extension] = user_id
            self._extensions[user_id] = extension
        else:
            self._reachable.pop(extension, None)
            self._extensions.pop(user_id, None)
        log.info("extension %s %s", extension, "registered" if reachable else "unregistered")
        if self.on_reachable is not None:
            await self.on_reachable(user_id, reachable)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            for extension in self.registrar.expire(time.monotonic()):
                user_id = self._reachable.get(extension)
                if user_id is not None:
                    await self._reachability(extension, user_id, False)

    def binding_peer(self, extension: str) -> tuple[Peer, str] | None:
        """Where to ring ``extension``, and its Contact URI, from the newest binding.

        Over TCP the connection the REGISTER came on; over UDP the Contact's
        address when it is the one the REGISTER came from, else (a phone
        behind NAT) the address and port the REGISTER really came from.
        """
        bindings = self.registrar.lookup(extension, time.monotonic())
        if not bindings:
            return None
        transport, host, port = bindings[0].source
        contact = bindings[0].contact
        if transport == "udp":
            try:
                uri = parse_uri(contact)
            except UriError:
                uri = None
            if isinstance(uri, SipUri) and uri.host == host and uri.transport in (None, "udp"):
                return Peer("udp", host, uri.port or 5060), contact
        return Peer(transport, host, port), contact

    def reachable_user(self, extension: str) -> int | None:
        return self._reachable.get(extension)

    def phone_of(self, user_id: int) -> tuple[Peer, str] | None:
        """Where to ring a user's phone (see :meth:`binding_peer`), from memory.

        No database read: ringing must not wait for the database (SQLite's
        write lock under load), and only a registered phone can ring anyway.
        """
        extension = self._extensions.get(user_id)
        return None if extension is None else self.binding_peer(extension)
