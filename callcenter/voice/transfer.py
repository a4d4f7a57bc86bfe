"""Calls handed from one agent to another: blind and warm transfers, three-way calls.

A call meant for one agent waits in the router's direct queue asking for
that agent's personal skill (:data:`~callcenter.cti.center.DIRECT_QUEUE`),
so the agent's capacity, presence and no-answer rules hold for it as for
any call, and the agent's console gets the offer with the customer's screen
pop while the phone rings.

``transfer`` to an agent (blind): the transferring agent's part ends at
once (wrap-up, its interaction and recording), and the caller, hearing
music, waits for the other agent as a new contact.

``consult`` an agent (warm): the caller is held with music and the
consulted agent's phone rings for a contact of its own (the consultation).
Once it answers, the two agents talk, unheard by the caller. Then:

==============  ========================================================
``complete``    the caller talks to the consulted agent, whose contact
                becomes the call's; the first agent's part ends (as when
                the first agent hangs up during the consultation)
``conference``  all three talk (the recording keeps the caller and the
                first agent); the first agent hanging up leaves the other
                two talking, the consulted agent hanging up leaves the
                first two
``cancel``      the consultation ends (as when the consulted agent hangs
                up) and the first agent is back with the caller
==============  ========================================================

A consultation the other agent does not answer, or declines, ends by
itself; the first agent's console hears of every step through
``call_state`` messages with a ``consult`` object (docs/protocols.md).

The agent's phone may transfer the call itself, blind, with a REFER (RFC
3515) naming an agent's extension, a queue or a number: the same rules as
from the console apply.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callcenter.acd import events as router_events
from callcenter.cti.center import DIRECT_QUEUE, Contact, ContactError, personal_skill
from callcenter.media.bridge import Bridge
from callcenter.media.mixer import Mixer
from callcenter.media.recorder import Side
from callcenter.sip.endpoint import Peer, ServerRequest
from callcenter.sip.message import NameAddr, ParseError, Response
from callcenter.sip.uri import SipUri
from callcenter.store.models import User
from callcenter.voice.dialog import Dialog
from callcenter.voice.dialplan import DialError
from callcenter.voice.leg import Leg, ack_again

if TYPE_CHECKING:
    from callcenter.voice.calls import Call, CallManager

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Consult:
    """An agent's consultation call with another agent, while the caller holds."""

    call: Call
    #: The consulted agent, and the consultation's own contact (in the direct queue);
    #: both empty when a number outside the center is consulted.
    target: str
    contact_id: str
    #: The number consulted through the trunk, as the trunk gets it.
    number: str = ""
    leg: Leg | None = None
    #: The two agents talking, or all three in a conference.
    bridge: Bridge | None = None
    mixer: Mixer | None = None
    ended: bool = False
    #: Done when the consultation ends: stops a number still ringing.
    stopped: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def state(self) -> str:
        if self.ended:
            return "ended"
        if self.mixer is not None:
            return "conference"
        return "talking" if self.bridge is not None else "ringing"


class Transfers:
    """See the module docstring; made by the :class:`CallManager`, one per server."""

    def __init__(self, calls: CallManager) -> None:
        self.calls = calls
        self.center = calls.center
        #: Consultations by their contact id, and those answered by their dialog's key.
        self.consults: dict[str, Consult] = {}
        self._dialogs: dict[tuple[str, str, str], Consult] = {}
        calls.voice.dialogs.append(self)

    # -- from the first agent's console ---------------------------------------------

    def target(self, call: Call, body: dict[str, Any]) -> str:
        """The agent named in ``body``, if that agent could take the call now."""
        raw = body.get("agent")
        target = str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else ""
        if not target.isdigit() or not self.center.is_joined(target):
            raise ContactError("unknown_agent", "no such agent is signed in")
        if target == call.agent_id:
            raise ContactError("same_agent", "the call is yours already")
        if not self.center.free_for_call(target):
            raise ContactError("agent_unavailable", "that agent cannot take a call now")
        return target

    async def blind(self, call: Call, target: str) -> None:
        """The caller waits for ``target`` alone; the first agent's part ends now."""
        await self.calls.requeue(
            call,
            DIRECT_QUEUE,
            skills={personal_skill(target): 1},
            note=self._note(call),
        )

    async def consult(self, call: Call, target: str) -> dict[str, Any]:
        if call.consult is not None:
            raise ContactError("consulting", "a consultation is already going on")
        assert call.bridge is not None and call.agent is not None
        old = self.center.contacts.get(call.contact_id)
        contact = self.calls.follow_up_contact(
            call, old, DIRECT_QUEUE, str(uuid.uuid4()), self._note(call)
        )
        consult = Consult(call, target, contact.contact_id)
        call.consult = consult
        self.consults[consult.contact_id] = consult
        call.bridge.close()
        call.bridge = None
        self.calls.hold_music(call)
        log.info("call %s: agent %s consults agent %s", call.contact_id, call.agent_id, target)
        try:
            await self.center.arrive(contact, None, skills={personal_skill(target): 1})
        except ContactError:
            self._finish(consult, "failed")
            raise
        return self._state(consult)

    def consult_number(self, call: Call, number: str) -> dict[str, Any]:
        """Consult a number outside the center (already checked by :meth:`dialled`)."""
        if call.consult is not None:
            raise ContactError("consulting", "a consultation is already going on")
        assert call.bridge is not None
        consult = Consult(call, "", "", number=number)
        call.consult = consult
        call.bridge.close()
        call.bridge = None
        self.calls.hold_music(call)
        log.info("call %s: agent %s consults %s", call.contact_id, call.agent_id, number)
        self.calls._spawn(self._dial(consult))
        return self._state(consult)

    async def complete(self, call: Call) -> dict[str, Any]:
        """The consulted party takes the caller; the first agent's part ends."""
        consult = self._answered(call)
        await self._hand_over(consult)
        done: dict[str, Any] = {"state": "completed", "agent_id": consult.target}
        if consult.number:
            done["number"] = consult.number
        return {"consult": done}

    # -- transfers from the agent's phone -------------------------------------------------

    async def referred(self, call: Call, server: ServerRequest) -> None:
        """The agent's phone transferred the call itself (REFER, RFC 3515): a blind
        transfer to the agent extension, queue or number in Refer-To, under the same
        rules as from the console. Answered 202, then one NOTIFY with the outcome
        (RFC 3515 2.4.5); on success the agent's leg is hung up, as for any blind
        transfer. An attended transfer (Refer-To with Replaces) is refused: the
        console's consultation does that."""
        request = server.request
        leg = call.agent
        assert leg is not None
        try:
            refer_to = NameAddr.parse(request.header("Refer-To") or "")
        except ParseError:
            server.reply(400, "Bad Refer-To")
            return
        uri = refer_to.uri
        if not isinstance(uri, SipUri) or not uri.user:
            server.reply(400, "Bad Refer-To")
            return
        if any(name.lower() == "replaces" for name, _ in uri.headers):
            server.reply(501, "Attended transfer from the phone not supported")
            return
        if call.bridge is None or call.consult is not None:
            server.reply(403, "Not while the call is held or in a consultation")
            return
        server.reply(202, "Accepted")
        try:
            transfer = await self._refer_target(call, uri.user)
        except ContactError as error:
            log.info("call %s: transfer to %s refused: %s", call.contact_id, uri.user, error)
            await _notify(leg, "403 Forbidden")
            return
        await _notify(leg, "200 OK")
        if call.ended or call.agent is not leg or call.bridge is None:
            return  # the call changed while the phone heard the outcome
        log.info("call %s: the agent's phone transferred it to %s", call.contact_id, uri.user)
        await transfer()

    async def _refer_target(self, call: Call, name: str) -> Callable[[], Awaitable[None]]:
        """What transferring to ``name`` does: an agent's extension, a queue, or a number."""
        user = self.calls.voice.reachable_user(name)
        if user is not None:
            target = self.target(call, {"agent": user})
            return lambda: self.blind(call, target)
        if name in self.center.queues and name != DIRECT_QUEUE:
            return lambda: self.calls.requeue(call, name)
        dialled = await self.dialled(call, name)
        return lambda: self.blind_to_number(call, dialled)

    # -- numbers outside the center ----------------------------------------------------

    async def dialled(self, call: Call, number: str) -> str:
        """``number`` as the trunk is to get it, if the call's agent may dial it.

        The same dial plan and permissions as click-to-call, and the same
        audit entry (``call.dial``), allowed or refused: a transfer out is
        a call out.
        """
        dialer = self.calls.dialer
        if dialer is None or not dialer.settings.host:
            raise ContactError("no_trunk", "no trunk is configured for calls out")
        async with self.calls.services.sessions() as db:
            user = await db.get(User, int(call.agent_id or 0))
        if user is None:
            raise ContactError("unknown_agent", "no such agent")
        detail: dict[str, Any] = {"number": number, "contact_id": call.contact_id}
        try:
            dialled = dialer.plan.check(user.role, number)
        except DialError as error:
            await self._audit(user, number, {**detail, "outcome": error.code})
            raise ContactError(error.code, str(error)) from None
        await self._audit(user, number, {**detail, "outcome": "allowed", "dialled": dialled})
        return dialled

    async def _audit(self, user: User, number: str, detail: dict[str, Any]) -> None:
        await self.calls.services.audit(
            user.id, user.username, "call.dial", f"number:{number}", "", detail
        )

    async def blind_to_number(self, call: Call, number: str) -> None:
        """The caller is put through to ``number``; the agent's part ends now. If the
        number does not answer, the caller waits in the queue it came from again."""
        old = await self.calls.let_agent_go(call)
        self.calls.hold_music(call)
        self.calls._spawn(self._forward(call, number, old))

    async def forward(self, call: Call, number: str) -> None:
        """The IVR's transfer step: the caller is put through to ``number`` (the dial
        rules apply; the flow is trusted to name it). If it cannot be, the call ends."""
        dialer = self.calls.dialer
        if dialer is None or not dialer.settings.host:
            log.warning("call %s: no trunk to transfer to %s", call.contact_id, number)
            await self.calls._end(call, "transfer_unavailable")
            return
        try:
            dialled = dialer.plan.rewrite(number)
        except DialError:
            log.warning(
                "call %s: the flow's transfer number %r is not valid", call.contact_id, number
            )
            await self.calls._end(call, "transfer_failed")
            return
        self.calls.hold_music(call)
        self.calls._spawn(self._forward(call, dialled, None))

    async def _forward(self, call: Call, number: str, old: Contact | None) -> None:
        dialer = self.calls.dialer
        assert dialer is not None
        leg, why = await dialer.ring_number(number, call.caller.port.codec, call.gone)
        if call.ended:
            if leg is not None:
                await _hang_up(leg)
            return
        if leg is None:
            log.info("call %s: transfer to %s failed: %s", call.contact_id, number, why)
            if old is None:
                await self.calls._end(call, "transfer_failed")
            else:
                note = {"transfer_failed": f"{number} ({why})"}
                await self.calls.queue_again(call, old, old.queue, note=note)
            return
        if old is None:
            await self.calls.log_ivr_call(call, "transferred", collected={"transferred_to": number})
        self.calls.forwarded(call, leg)
        log.info("call %s put through to %s", call.contact_id, number)

    def conference(self, call: Call) -> dict[str, Any]:
        consult = self._answered(call)
        if consult.mixer is None:
            assert consult.bridge is not None and consult.leg is not None
            assert call.agent is not None
            consult.bridge.close()
            consult.bridge = None
            self.calls.stop_music(call)
            mixer = Mixer(self.calls.clock, recorder=call.recorder)
            mixer.add(call.caller.port, side=Side.CALLER)
            mixer.add(call.agent.port, side=Side.AGENT)
            mixer.add(consult.leg.port)
            consult.mixer = mixer
            log.info("call %s: conference with agent %s", call.contact_id, consult.target)
        return self._state(consult)

    def cancel(self, call: Call) -> dict[str, Any]:
        consult = call.consult
        if consult is None:
            raise ContactError("not_consulting", "there is no consultation")
        self._finish(consult, "cancelled")
        return {"consult": {"state": "ended", "reason": "cancelled"}}

    # -- the call layer's hooks --------------------------------------------------------

    async def first_agent_left(self, call: Call) -> bool:
        """The first agent hung up: an answered consultation takes the call (True)."""
        consult = call.consult
        if consult is None:
            return False
        if consult.state in ("talking", "conference"):
            await self._hand_over(consult)
            return True
        self._finish(consult, "cancelled")
        return False

    def call_ended(self, call: Call) -> None:
        if call.consult is not None:
            self._finish(call.consult, "call_ended")

    def routed(
        self,
        effect: router_events.Offer
        | router_events.Withdraw
        | router_events.Connect
        | router_events.ContactEnded,
    ) -> bool:
        """The router's word on a consultation's contact (True if it was one)."""
        consult = self.consults.get(effect.contact_id)
        if consult is None:
            return False
        match effect:
            case router_events.Offer():
                self.calls._spawn(self._ring(consult, effect.agent_id))
            case router_events.Withdraw():
                if consult.leg is not None and consult.leg.dialog is None:
                    consult.leg.cancel()
            case router_events.Connect():
                self._talk(consult)
            case router_events.ContactEnded():
                self._finish(consult, effect.outcome)
        return True

    # -- requests within the consulted agents' dialogs ---------------------------------

    def in_dialog(self, server: ServerRequest) -> bool:
        request = server.request
        if request.to_addr.tag is None:
            return False
        consult = self._dialogs.get(Dialog.key_of(request))
        if consult is None or consult.leg is None:
            return False
        if consult.leg.receive(server) == "bye":
            self._finish(consult, "hung_up")
        return True

    def stray_response(self, response: Response, peer: Peer) -> None:
        ack_again(response, [consult.leg for consult in self._dialogs.values()])

    # -- internals ---------------------------------------------------------------------

    def _note(self, call: Call) -> dict[str, str]:
        """What the next agent's screen pop says of where the call comes from."""
        return {"transferred_by": self.center.agent_name(call.agent_id)}

    @staticmethod
    def _answered(call: Call) -> Consult:
        consult = call.consult
        if consult is None:
            raise ContactError("not_consulting", "there is no consultation")
        if consult.state not in ("talking", "conference"):
            raise ContactError("consult_not_answered", "the other agent has not answered yet")
        return consult

    def _state(self, consult: Consult, reason: str = "") -> dict[str, Any]:
        state: dict[str, Any] = {
            "state": consult.state,
            "agent_id": consult.target,
            "agent_name": self.center.agent_name(consult.target) or consult.number,
        }
        if consult.number:
            state["number"] = consult.number
        if reason:
            state["reason"] = reason
        return {"consult": state}

    def _tell(self, consult: Consult, reason: str = "") -> None:
        call = consult.call
        if call.agent_id is not None:
            self.center.call_state(call.agent_id, call.contact_id, self._state(consult, reason))

    async def _ring(self, consult: Consult, agent_id: str) -> None:
        contact = self.center.contacts.get(consult.contact_id)
        if consult.ended or contact is None or agent_id not in contact.offered_to:
            return  # withdrawn before this task ran
        found = self.calls.voice.phone_of(int(agent_id))
        if found is None:
            self._finish(consult, "no_phone")
            return
        peer, target = found
        call = consult.call
        leg, final = await Leg.ring(
            self.calls.endpoint,
            self.calls.allocator,
            self.calls.address,
            call.caller.port.codec,
            peer=peer,
            target=target,
            caller=f'"{self.center.agent_name(call.agent_id)}" <sip:consult@{self.calls.address}>',
        )
        consult.leg = leg
        self._tell(consult)
        response = await final
        answered = 200 <= response.status < 300
        if answered:
            leg.answered(response)
        if consult.ended:
            if answered:
                await leg.hang_up()
            leg.close()
            return
        if not answered:
            consult.leg = None
            leg.close()
            reason = "no_answer" if response.status in (408, 480, 487) else "declined"
            self._finish(consult, reason)
            return
        assert leg.dialog is not None
        self._dialogs[leg.dialog.key] = consult
        try:
            await self.center.accept(agent_id, consult.contact_id)
        except ContactError:
            self._finish(consult, "failed")

    async def _dial(self, consult: Consult) -> None:
        dialer = self.calls.dialer
        assert dialer is not None
        codec = consult.call.caller.port.codec
        leg, why = await dialer.ring_number(consult.number, codec, consult.stopped)
        if consult.ended:
            if leg is not None:
                await _hang_up(leg)
            return
        if leg is None:
            self._finish(consult, why)
            return
        assert leg.dialog is not None
        consult.leg = leg
        self._dialogs[leg.dialog.key] = consult
        self._talk(consult)

    def _talk(self, consult: Consult) -> None:
        call = consult.call
        if consult.ended or consult.leg is None or call.agent is None:
            return
        consult.bridge = Bridge(call.agent.port, consult.leg.port)
        self._tell(consult)
        log.info("call %s: agents talking", call.contact_id)

    async def _hand_over(self, consult: Consult) -> None:
        """The caller goes to the consulted agent, whose contact becomes the call's."""
        call = consult.call
        assert consult.leg is not None
        self._close_media(consult)
        self.consults.pop(consult.contact_id, None)
        if consult.leg.dialog is not None:
            self._dialogs.pop(consult.leg.dialog.key, None)
        call.consult = None
        if consult.number:
            await self.calls.let_agent_go(call)
            self.calls.forwarded(call, consult.leg)
            return
        await self.calls.hand_over(call, consult.leg, consult.target, consult.contact_id)

    def _close_media(self, consult: Consult) -> None:
        if consult.bridge is not None:
            consult.bridge.close()
            consult.bridge = None
        if consult.mixer is not None:
            consult.mixer.close()
            consult.mixer = None

    def _finish(self, consult: Consult, reason: str) -> None:
        """End the consultation: its leg hangs up, its contact leaves, the first agent
        talks to the caller again (if both are still there)."""
        if consult.ended:
            return
        consult.ended = True
        if not consult.stopped.done():
            consult.stopped.set_result(reason)
        call = consult.call
        self._close_media(consult)
        self.consults.pop(consult.contact_id, None)
        if call.consult is consult:
            call.consult = None
        leg = consult.leg
        if leg is not None:
            if leg.dialog is not None:
                self._dialogs.pop(leg.dialog.key, None)
                self.calls._spawn(_hang_up(leg))
            else:
                leg.cancel()  # still ringing: the ring task closes it
        if consult.contact_id in self.center.contacts:
            self.calls._spawn(self.center.leave(consult.contact_id))
        self.calls.talk_again(call)
        self._tell(consult, reason)
        log.info("call %s: consultation ended (%s)", call.contact_id, reason)


async def _notify(leg: Leg, status: str) -> None:
    """The NOTIFY that ends a REFER's implicit subscription with the outcome (RFC 3515)."""
    dialog = leg.dialog
    if dialog is None:
        return
    notify = dialog.request(
        "NOTIFY",
        leg.endpoint.via(dialog.peer.transport),
        headers=(
            ("Event", "refer"),
            ("Subscription-State", "terminated;reason=noresource"),
            ("Content-Type", "message/sipfrag;version=2.0"),
        ),
        body=f"SIP/2.0 {status}\r\n".encode(),
    )
    try:
        # Its answer first, so the phone hears the outcome before any BYE.
        await asyncio.wait_for(leg.endpoint.request(notify, dialog.peer), 5)
    except TimeoutError:
        log.info("no answer to the NOTIFY of a transfer")


async def _hang_up(leg: Leg) -> None:
    try:
        await leg.hang_up()
    finally:
        leg.close()
