"""Outbound calls: click-to-call from the console, and callbacks once they are due.

An outbound call rings the agent's registered phone first, the way an
offered call does; only when the agent answers is the customer called,
through the trunk of the ``[outbound]`` settings, with the configured
caller ID in From and P-Asserted-Identity (RFC 3325). A trunk that
challenges the INVITE (401, or 407 from a proxy) gets it again with digest
credentials (RFC 3261 22.2), CSeq one higher. When the customer answers,
the two legs are bridged and recorded (customer left, agent right) until
either side hangs up, and the other side is then hung up on. Every call,
connected or not, is recorded as an outbound interaction with its recording
and why it ended (``agent_no_answer``, ``customer_busy``, ...).

What may be dialled is decided before anything rings, by the
:class:`~callcenter.voice.dialplan.DialPlan`: nothing is allowed by default.
While calling out, an available agent shows as away (reason
``outbound_call``), so that the router offers no call meanwhile.

Callbacks: every ``callback_poll_seconds`` the pending callbacks whose due
time has passed are read, and each one whose assignee is available (joined,
no contact held, phone registered) is dialled the same way. A callback the
customer answered is marked done; one that failed on the customer's side
(busy, no answer, a number not allowed) is marked failed with the reason as
outcome. One the agent let ring stays pending, and the agent becomes what
``routing.missed_offer_presence`` says, as after a missed offer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from callcenter.acd import events as router_events
from callcenter.clock import to_iso, utcnow
from callcenter.cti.center import Contact, ContactError
from callcenter.media.bridge import Bridge
from callcenter.media.player import Player
from callcenter.media.port import PortsExhausted
from callcenter.media.recorder import CallRecorder
from callcenter.sip import digest, sdp
from callcenter.sip.endpoint import Peer, ServerRequest
from callcenter.sip.message import Response
from callcenter.store import records
from callcenter.store.customers import lookup
from callcenter.store.models import Callback, User
from callcenter.voice import controls
from callcenter.voice.calls import CallManager
from callcenter.voice.dialog import Dialog
from callcenter.voice.dialplan import DialError, DialPlan
from callcenter.voice.leg import Leg, ack_again

log = logging.getLogger(__name__)

#: The presence reason of an agent calling out.
ON_OUTBOUND_CALL = "outbound_call"
#: Authenticated INVITEs sent at most: a second one only for a stale nonce.
MAX_AUTH_ATTEMPTS = 2
#: Due callbacks read at one look.
CALLBACK_BATCH = 50


class OutboundError(Exception):
    """The call cannot be made now; ``code`` says why and is safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(eq=False)
class OutboundCall:
    """One outbound call, from the agent's phone ringing to the last BYE."""

    call_id: str
    user_id: int
    username: str
    #: The number as the trunk is asked for it (after the dial rules).
    number: str
    customer_id: int | None
    callback_id: int | None = None
    started: dt.datetime = field(default_factory=utcnow)
    agent: Leg | None = None
    customer: Leg | None = None
    agent_answered: bool = False
    answered_at: dt.datetime | None = None
    bridge: Bridge | None = None
    recorder: CallRecorder | None = None
    recording: Path | None = None
    #: The agent was made away for the call and is to be made available again.
    holds_agent: bool = False
    #: A queued callback: the contact the router offered the agent (recorded by
    #: the contact center when it ends, not here).
    contact_id: str | None = None
    #: Held or muted from the agent's console, and the music the customer hears.
    held: bool = False
    muted: bool = False
    player: Player | None = None
    #: Gets the end reason when either side hangs up or the server stops.
    hung_up: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def end(self, reason: str) -> None:
        if not self.hung_up.done():
            self.hung_up.set_result(reason)


def failure(status: int, side: str) -> str:
    """The end reason for a final response ``status`` from the agent's or the customer's side."""
    if status in (486, 600):
        return f"{side}_busy"
    if status == 603:
        return f"{side}_declined"
    if status in (408, 480, 487):
        return f"{side}_no_answer"
    if status in (401, 407) and side == "customer":
        return "trunk_refused_auth"
    if status in (404, 484, 604):
        return "invalid_number"
    return f"{side}_failed"


class OutboundCalls:
    """See the module docstring. Made after the :class:`CallManager`, whose media
    ports, address and recordings folder it shares; ``start()``, then ``await close()``."""

    def __init__(self, calls: CallManager) -> None:
        self.inbound = calls
        self.services = calls.services
        self.settings = calls.settings.outbound
        self.routing = calls.settings.routing
        self.region = calls.settings.site.default_region
        self.rtp_timeout = calls.settings.voice.rtp_timeout_seconds
        self.voice = calls.voice
        self.center = calls.center
        self.endpoint = calls.endpoint
        self.allocator = calls.allocator
        self.address = calls.address
        self.recordings = calls.recordings
        self.plan = DialPlan.from_settings(self.settings)
        self.codec = sdp.PCMA if self.settings.codec == "PCMA" else sdp.PCMU
        #: Calls in progress by id, and by the dialog key of each answered leg.
        self.active: dict[str, OutboundCall] = {}
        self._dialogs: dict[tuple[str, str, str], OutboundCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.voice.dialogs.append(self)
        calls.dialer = self

    def start(self) -> None:
        if not self.settings.host:
            return  # no trunk: nothing can be dialled
        loop = asyncio.get_running_loop()
        self._loops.append(loop.create_task(self._watch(), name="outbound-watch"))
        if self.settings.dial_due_callbacks:
            self._loops.append(loop.create_task(self._poll_callbacks(), name="due-callbacks"))

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for call in list(self.active.values()):
            call.end("shutdown")
        if self._tasks:
            # Hanging up waits for the BYEs' answers; a dead peer does not hold up the stop.
            _, late = await asyncio.wait(set(self._tasks), timeout=self.endpoint.timers.timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self in self.voice.dialogs:
            self.voice.dialogs.remove(self)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("outbound call handling failed", exc_info=error)

    # -- placing a call -----------------------------------------------------------------

    async def click_to_call(
        self,
        user_id: int,
        number: str,
        customer_id: int | None = None,
        *,
        callback_id: int | None = None,
    ) -> str:
        """Ring the user's phone, then ``number``; returns the call's (and interaction's) id.

        Raises :class:`DialError` when the number is not one the user's role
        may dial, and :class:`OutboundError` when the user's phone is not
        registered or already in a call; in both cases nothing rings. The
        call goes on in the background.
        """
        async with self.services.sessions() as db:
            user = await db.get(User, user_id)
        if user is None or not user.active:
            raise OutboundError("unknown_user", "no such user")
        dialled = self.plan.check(user.role, number)
        if self.inbound.draining:
            raise OutboundError("shutting_down", "the server is shutting down")
        found = self.voice.binding_peer(user.sip_extension) if user.sip_extension else None
        if found is None:
            raise OutboundError("phone_not_registered", "the user's phone is not registered")
        if customer_id is None:
            customer_id = await self._customer(dialled)
        # No await from this check to the call being listed: one call at a time per phone.
        if self._in_call(user_id):
            raise OutboundError("busy", "the user's phone is already in a call")
        call = OutboundCall(str(uuid.uuid4()), user_id, user.username, dialled, customer_id)
        call.callback_id = callback_id
        self.active[call.call_id] = call
        log.info("outbound call %s: %s rings, then %s", call.call_id, user.username, dialled)
        self._spawn(self._run(call, found))
        return call.call_id

    def _in_call(self, user_id: int) -> bool:
        """Whether the user's phone rings or talks already, for an outbound or an inbound call."""
        if any(call.user_id == user_id for call in self.active.values()):
            return True
        agent = str(user_id)
        return any(
            call.agent_id == agent and call.agent is not None
            for call in self.inbound.by_contact.values()
        )

    async def _customer(self, number: str) -> int | None:
        async with self.services.sessions() as db:
            found = await lookup(db, self.region, phone=number)
        return found[0].id if found else None

    async def _run(self, call: OutboundCall, found: tuple[Peer, str]) -> None:
        reason = "failed"
        try:
            await self._hold_agent(call)
            reason = await self._connect(call, found)
        finally:
            await self._finish(call, reason)

    def _tell(self, call: OutboundCall, state: str, reason: str = "") -> None:
        """The agent's consoles follow the call: ``outbound`` in a ``call_state`` message
        with the call's id (docs/protocols.md)."""
        progress = {"state": state, "number": call.number}
        if reason:
            progress["reason"] = reason
        self.center.call_state(str(call.user_id), call.call_id, {"outbound": progress})

    async def _connect(self, call: OutboundCall, found: tuple[Peer, str]) -> str:
        """Ring the agent, then the customer, and bridge them; returns why the call ended."""
        self._tell(call, "ringing_agent")
        response = await self._ring_agent(
            call, found, f'"{call.number}" <sip:{call.number}@{self.address}>'
        )
        if isinstance(response, str):
            return response
        if call.hung_up.done():
            return call.hung_up.result()
        if not 200 <= response.status < 300:
            return failure(response.status, "agent")
        call.agent_answered = True
        self._tell(call, "ringing_customer")
        failed = await self._call_customer(call, call.number)
        if failed:
            return failed
        self._tell(call, "connected")
        log.info("outbound call %s connected", call.call_id)
        return await call.hung_up

    async def _call_customer(self, call: OutboundCall, number: str) -> str:
        """Ring the customer; once answered, bridge and record the call. Returns why
        not, or "" when connected."""
        customer, why = await self.ring_number(
            number, self.codec, call.hung_up, on_leg=lambda leg: setattr(call, "customer", leg)
        )
        if customer is not None and customer.dialog is not None:
            self._dialogs[customer.dialog.key] = call
        if call.hung_up.done():
            return call.hung_up.result()
        if customer is None:
            return why
        assert call.agent is not None
        call.answered_at = utcnow()
        self.recordings.mkdir(parents=True, exist_ok=True)
        call.recording = self.recordings / f"{call.call_id}.wav"
        call.recorder = CallRecorder(call.recording)
        call.bridge = Bridge(customer.port, call.agent.port, call.recorder)
        return ""

    async def ring_number(
        self,
        number: str,
        codec: sdp.Codec,
        stop: asyncio.Future[Any],
        *,
        on_leg: Callable[[Leg], None] | None = None,
    ) -> tuple[Leg | None, str]:
        """Ring ``number`` (as the trunk is to get it) through the trunk, answering
        its digest challenge; returns the answered leg, or None and why not.

        Ringing stops when ``stop`` is done. ``on_leg`` is told of the leg as soon
        as it rings (so that it is hung up with the rest of its call). A leg not
        answered is closed here.
        """
        s = self.settings
        if not s.host:
            return None, "no_trunk"
        try:
            trunk = await self._trunk()
        except OSError as error:
            log.warning("trunk %s not found: %s", s.host, error)
            return None, "trunk_unreachable"
        try:
            leg, final = await Leg.ring(
                self.endpoint,
                self.allocator,
                self.address,
                codec,
                peer=trunk,
                target=self._target(number),
                caller=self._from(),
                headers=self._identity(),
            )
        except PortsExhausted:
            return None, "no_media_ports"
        if on_leg is not None:
            on_leg(leg)
        response = await self._answered(stop, leg, final, s.customer_ring_seconds)
        for attempt in range(MAX_AUTH_ATTEMPTS):
            if response.status not in (401, 407) or stop.done():
                break
            answer = self._credentials(leg, response, retry=attempt > 0)
            if answer is None:
                break
            final = leg.authorize(*answer)
            response = await self._answered(stop, leg, final, s.customer_ring_seconds)
        if 200 <= response.status < 300:
            return leg, ""
        if on_leg is None:
            leg.close()
        return None, failure(response.status, "customer")

    async def _ring_agent(
        self, call: OutboundCall, found: tuple[Peer, str], caller: str
    ) -> Response | str:
        """Ring the agent's phone for ``call``: its final response, or why it cannot ring."""
        peer, target = found
        try:
            agent, final = await Leg.ring(
                self.endpoint,
                self.allocator,
                self.address,
                self.codec,
                peer=peer,
                target=target,
                caller=caller,
            )
        except PortsExhausted:
            return "no_media_ports"
        call.agent = agent
        response = await self._answered(
            call.hung_up, agent, final, self.settings.agent_ring_seconds
        )
        if agent.dialog is not None:
            self._dialogs[agent.dialog.key] = call
        return response

    async def _answered(
        self, stop: asyncio.Future[Any], leg: Leg, final: asyncio.Future[Response], timeout: float
    ) -> Response:
        """The final response to ``leg``'s INVITE, after ringing at most ``timeout`` seconds.

        Ringing that times out, or outlasts the call (the other side hung up,
        the server stops), is CANCELled (RFC 3261 9.1). A 2xx, even one that
        crossed the CANCEL, makes the dialog and is ACKed: hanging up is then
        a BYE.
        """
        done, _ = await asyncio.wait(
            (final, stop), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if final not in done:
            leg.cancel()
            try:
                # A phone that answers neither the INVITE nor the CANCEL is given up
                # after 64*T1, as RFC 3261 9.1 allows.
                await asyncio.wait_for(asyncio.shield(final), self.endpoint.timers.timeout)
            except TimeoutError:
                return Response(408, "Request Timeout")
        if final.cancelled():
            return Response(503, "Service Unavailable")
        response = final.result()
        if 200 <= response.status < 300:
            leg.answered(response)
        return response

    async def _trunk(self) -> Peer:
        """Where the trunk is: its host name resolved now (without blocking the loop)."""
        s = self.settings
        kind = socket.SOCK_STREAM if s.transport == "tcp" else socket.SOCK_DGRAM
        found = await asyncio.get_running_loop().getaddrinfo(s.host, s.port, type=kind)
        if not found:
            raise OSError(f"no address for {s.host}")
        return Peer(s.transport, str(found[0][4][0]), s.port)

    def _host(self) -> str:
        host = self.settings.host
        return f"[{host}]" if ":" in host else host

    def _target(self, number: str) -> str:
        s = self.settings
        suffix = ";transport=tcp" if s.transport == "tcp" else ""
        return f"sip:{number}@{self._host()}:{s.port}{suffix}"

    def _from(self) -> str:
        caller_id = self.settings.caller_id
        if not caller_id:
            return '"Anonymous" <sip:anonymous@anonymous.invalid>'  # RFC 3323 4.1.1.3
        return f'"{caller_id}" <sip:{caller_id}@{self._host()}>'

    def _identity(self) -> tuple[tuple[str, str], ...]:
        caller_id = self.settings.caller_id
        if not caller_id:
            return ()
        return (("P-Asserted-Identity", f"<sip:{caller_id}@{self._host()}>"),)

    def _credentials(self, leg: Leg, response: Response, *, retry: bool) -> tuple[str, str] | None:
        """The header answering the trunk's challenge (RFC 3261 22.2, 22.3), or None.

        A second challenge is answered only when it says our nonce was stale:
        otherwise the credentials are wrong, and sending them again is no use.
        """
        s = self.settings
        invite = leg.invite
        if not s.username or invite is None:
            return None
        proxy = response.status == 407
        offered: list[digest.Challenge] = []
        for value in response.header_values("Proxy-Authenticate" if proxy else "WWW-Authenticate"):
            try:
                offered.append(digest.Challenge.parse(value))
            except digest.DigestError:
                continue
        challenge = digest.choose_challenge(offered)
        if challenge is None or (retry and not challenge.stale):
            log.warning("outbound trunk %s refused our credentials", s.host)
            return None
        try:
            credentials = digest.authorize(
                challenge,
                method="INVITE",
                uri=str(invite.uri),
                username=s.username,
                password=s.password,
                body=invite.body,
            )
        except digest.DigestError:
            return None
        return ("Proxy-Authorization" if proxy else "Authorization", str(credentials))

    # -- the agent's presence --------------------------------------------------------------

    async def _hold_agent(self, call: OutboundCall) -> None:
        """An available agent shows as away while calling out: the router offers nothing."""
        agent = str(call.user_id)
        if not self.center.is_joined(agent):
            return
        try:
            if self.center.router.agent_presence(agent)[0] != "available":
                return
            await self.center.set_presence(agent, "away", ON_OUTBOUND_CALL)
        except (KeyError, ContactError):
            return
        call.holds_agent = True

    async def _release_agent(self, call: OutboundCall, reason: str) -> None:
        if not call.holds_agent:
            return
        agent = str(call.user_id)
        presence, why = "available", ""
        if call.callback_id is not None and not call.agent_answered and reason != "shutdown":
            # A callback the agent let ring counts as a missed offer.
            presence, why = self.routing.missed_offer_presence, self.routing.missed_offer_reason
        try:
            if self.center.router.agent_presence(agent) == ("away", ON_OUTBOUND_CALL):
                await self.center.set_presence(agent, presence, why)
        except (KeyError, ContactError):
            pass

    # -- requests within the calls' dialogs ------------------------------------------------

    def in_dialog(self, server: ServerRequest) -> bool:
        request = server.request
        if request.to_addr.tag is None:
            return False
        key = Dialog.key_of(request)
        call = self._dialogs.get(key)
        if call is None:
            return False
        leg = next(
            leg
            for leg in (call.agent, call.customer)
            if leg is not None and leg.dialog is not None and leg.dialog.key == key
        )
        if leg.receive(server) == "bye":
            call.end("agent_hung_up" if leg is call.agent else "customer_hung_up")
        return True

    def stray_response(self, response: Response, peer: Peer) -> None:
        ack_again(response, [leg for c in self.active.values() for leg in (c.agent, c.customer)])

    # -- the end -----------------------------------------------------------------------

    async def _finish(self, call: OutboundCall, reason: str) -> None:
        call.end(reason)
        if call.player is not None:
            call.player.stop()
        if call.bridge is not None:
            call.bridge.close()
        legs = [leg for leg in (call.customer, call.agent) if leg is not None]
        await asyncio.gather(
            *(leg.hang_up() for leg in legs if not leg.ended), return_exceptions=True
        )
        if call.recorder is not None:
            try:
                await call.recorder.close()
            except Exception:
                log.exception("recording of %s not finished", call.call_id)
        for leg in legs:
            leg.close()
            if leg.dialog is not None:
                self._dialogs.pop(leg.dialog.key, None)
        self.active.pop(call.call_id, None)
        log.info("outbound call %s ended: %s", call.call_id, reason)
        await self._release_agent(call, reason)
        if call.contact_id is not None:
            await self._end_contact(call, reason)
            return
        self._tell(call, "ended", reason)
        await self._record(call, reason)
        if call.callback_id is not None:
            await self._callback_done(call, reason)

    async def _record(self, call: OutboundCall, reason: str) -> None:
        interaction: dict[str, Any] = {
            "id": call.call_id,
            "channel": "voice",
            "direction": "outbound",
            "customer_id": call.customer_id,
            "queue_id": None,
            "agent_id": call.user_id,
            "remote_identity": call.number,
            "arrived_at": to_iso(call.started),
            "queued_at": None,
            # The agent's phone rang first: that is the offer.
            "offered_at": to_iso(call.started),
            "answered_at": to_iso(call.answered_at),
            "ended_at": to_iso(utcnow()),
            "collected": {"callback_id": call.callback_id} if call.callback_id else {},
            "ivr_path": [],
            "transcript": [],
            "recording_path": str(call.recording) if call.recording else None,
            "end_reason": reason,
        }
        await self.services.recorder.record(
            records.INTERACTION_RECORDED, {"interaction": interaction}
        )

    # -- callbacks kept in line ------------------------------------------------------------

    def routed_callback(
        self,
        effect: router_events.Offer
        | router_events.Withdraw
        | router_events.Connect
        | router_events.ContactEnded,
        contact: Contact,
    ) -> None:
        """The router's word on a callback whose caller has hung up: an offer rings the
        agent's phone, and once the agent answers the customer is called."""
        match effect:
            case router_events.Offer():
                if contact.contact_id in self.active:
                    return
                call = OutboundCall(
                    contact.contact_id,
                    int(effect.agent_id),
                    self.center.agent_name(effect.agent_id),
                    contact.callback_number,
                    contact.customer_id,
                    contact_id=contact.contact_id,
                )
                self.active[call.call_id] = call
                log.info("callback %s offered to agent %s", call.call_id, effect.agent_id)
                self._spawn(self._run_queued(call))
            case router_events.Withdraw():
                ringing = self.active.get(contact.contact_id)
                if ringing is not None and not ringing.agent_answered:
                    ringing.end("withdrawn")

    async def _run_queued(self, call: OutboundCall) -> None:
        reason = "failed"
        try:
            reason = await self._connect_queued(call)
        finally:
            await self._finish(call, reason)

    async def _connect_queued(self, call: OutboundCall) -> str:
        """Ring the agent the callback is offered to; on answer accept the offer and call
        the customer (the number the caller gave, through the dial rules)."""
        assert call.contact_id is not None
        agent_id = str(call.user_id)
        found = self.voice.phone_of(call.user_id)
        response = (
            await self._ring_agent(
                call, found, f'"Callback {call.number}" <sip:callback@{self.address}>'
            )
            if found is not None
            else "agent_no_phone"
        )
        if isinstance(response, str):
            await self._refuse(call)
            return response
        if call.hung_up.done():
            return call.hung_up.result()
        if not 200 <= response.status < 300:
            await self._refuse(call)
            return failure(response.status, "agent")
        call.agent_answered = True
        try:
            await self.center.accept(agent_id, call.contact_id)
        except ContactError:
            return "withdrawn"
        try:
            number = self.plan.rewrite(call.number)
        except DialError:
            return "invalid_number"
        failed = await self._call_customer(call, number)
        if failed:
            return failed
        contact = self.center.contacts.get(call.contact_id)
        if contact is not None:
            contact.recording_path = str(call.recording)
        # The console learns the customer picked up: its call controls apply from now.
        self.center.call_state(agent_id, call.contact_id, {"customer_answered": True})
        log.info("callback %s connected", call.call_id)
        return await call.hung_up

    async def control(self, call_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """The agent's console on a connected callback: hang up, hold, mute, keypad."""
        call = self.active.get(call_id)
        if call is None or call.bridge is None or call.agent is None or call.customer is None:
            raise ContactError("not_connected", "the call is not connected")
        if action == "hangup":
            call.end("agent_hung_up")
            return {}
        if action not in controls.ACTIONS:
            raise ContactError("not_supported", "not on a callback")
        return await controls.press(
            call,
            action,
            body,
            bridge=call.bridge,
            customer=call.customer.port,
            agent=call.agent.port,
            clock=self.inbound.clock,
            music=self.inbound.sounds.music_on_hold(call.customer.port.encoding),
        )

    async def _refuse(self, call: OutboundCall) -> None:
        """The agent did not take the callback: the router's no-answer rule applies."""
        assert call.contact_id is not None
        try:
            await self.center.reject(str(call.user_id), call.contact_id)
        except ContactError:
            pass  # withdrawn meanwhile

    async def _end_contact(self, call: OutboundCall, reason: str) -> None:
        """A callback the agent took ends: its contact goes to wrap-up, with the outcome."""
        assert call.contact_id is not None
        contact = self.center.contacts.get(call.contact_id)
        if contact is None or not call.agent_answered:
            return  # not taken: it waits in line again (or was withdrawn)
        contact.collected["callback_result"] = "answered" if call.answered_at else reason
        await self.center.leave(call.contact_id)

    # -- callbacks -------------------------------------------------------------------------

    async def _poll_callbacks(self) -> None:
        while True:
            await asyncio.sleep(self.settings.callback_poll_seconds)
            try:
                await self.dial_due_callbacks()
            except Exception as error:  # the database may be down: try again next time
                log.warning("due callbacks not dialled: %s", error)

    async def dial_due_callbacks(self) -> None:
        """Dial each pending, due callback whose assignee is available now."""
        if self.inbound.draining:
            return
        async with self.services.sessions() as db:
            rows = (
                await db.execute(
                    select(
                        Callback.id,
                        Callback.phone,
                        Callback.customer_id,
                        Callback.assignee_id,
                        User.username,
                    )
                    .join(User, User.id == Callback.assignee_id)
                    .where(Callback.status == "pending", Callback.due_at <= utcnow())
                    .order_by(Callback.due_at, Callback.id)
                    .limit(CALLBACK_BATCH)
                )
            ).all()
        dialling = {call.callback_id for call in self.active.values()}
        for callback_id, phone, customer_id, assignee_id, username in rows:
            if callback_id in dialling or not self._available(assignee_id):
                continue
            detail: dict[str, Any] = {"number": phone, "callback_id": callback_id}
            try:
                call_id = await self.click_to_call(
                    assignee_id, phone, customer_id, callback_id=callback_id
                )
            except DialError as error:
                await self.services.audit(
                    assignee_id,
                    username,
                    "call.dial",
                    f"callback:{callback_id}",
                    "",
                    {**detail, "outcome": error.code},
                )
                await self._close_callback(callback_id, assignee_id, username, "failed", str(error))
                continue
            except OutboundError:
                continue  # the phone went away or got busy meanwhile: next time
            await self.services.audit(
                assignee_id,
                username,
                "call.dial",
                f"callback:{callback_id}",
                "",
                {**detail, "outcome": "allowed", "call_id": call_id},
            )

    def _available(self, user_id: int) -> bool:
        agent = str(user_id)
        if not self.center.is_joined(agent):
            return False
        try:
            presence, _ = self.center.router.agent_presence(agent)
            load = self.center.router.agent_load(agent)
        except KeyError:
            return False
        return presence == "available" and not any(load.values())

    async def _callback_done(self, call: OutboundCall, reason: str) -> None:
        assert call.callback_id is not None
        if call.answered_at is not None:
            seconds = int((utcnow() - call.answered_at).total_seconds())
            status, outcome = "done", f"Called {call.number}: answered, {seconds} s ({reason})"
        elif call.agent_answered:
            status, outcome = "failed", f"Called {call.number}: {reason}"
        else:
            return  # the agent did not take it: it stays pending
        await self._close_callback(call.callback_id, call.user_id, call.username, status, outcome)

    async def _close_callback(
        self, callback_id: int, user_id: int, username: str, status: str, outcome: str
    ) -> None:
        """Mark a pending callback done or failed, as ``PATCH /callbacks/{id}`` does."""
        async with self.services.sessions() as db:
            callback = await db.get(Callback, callback_id)
            if callback is None or callback.status != "pending":
                return
            callback.status, callback.outcome = status, outcome
            callback.completed_at = utcnow()
            await db.commit()
        await self.services.audit(
            user_id,
            username,
            "callback.update",
            f"callback:{callback_id}",
            "",
            {"fields": ["outcome", "status"]},
        )

    # -- media watch -----------------------------------------------------------------------

    async def _watch(self) -> None:
        """End connected calls whose customer sent no RTP for ``voice.rtp_timeout_seconds``."""
        limit = self.rtp_timeout
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(5.0, limit / 2))
            now = loop.time()
            for call in list(self.active.values()):
                if call.bridge is None or call.customer is None:
                    continue
                if now - call.customer.port.last_received > limit:
                    log.info("outbound call %s: no RTP for %d s", call.call_id, limit)
                    call.end("rtp_timeout")
