"""Supervisors on live calls: listening in, whispering to the agent, barging in.

A supervisor asks to listen in on a call that is talking to an agent
(:meth:`Monitor.start`). The server rings the supervisor's registered phone,
offering the caller leg's codec, and on answer moves the call's two legs out
of their :class:`~callcenter.media.bridge.Bridge` into a
:class:`~callcenter.media.mixer.Mixer` on the shared media clock, the
supervisor's leg with them:

===========  =========================================================
``listen``   the supervisor hears both sides and is heard by nobody
``whisper``  the agent also hears the supervisor; the caller does not
``barge``    all three hear one another
===========  =========================================================

The call's recorder stays fed with the caller and the agent (what the
supervisor says is not recorded). :meth:`Monitor.start` again switches the
mode; :meth:`Monitor.stop`, or the supervisor hanging up, closes the mixer
and bridges the two parties again. When the call ends or its agent leaves,
the supervisor's phone is hung up (or stops ringing).

One supervisor at a time per call. The supervisors' dialogs are the
monitor's own (it is one of the SIP service's dialog owners). Each
supervisor's wallboards are told of their sessions with ``monitor`` messages
(docs/protocols.md): ringing, connected with the mode, ended with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callcenter.cti.center import ContactError, Outbox
from callcenter.media.bridge import Bridge
from callcenter.media.mixer import Mixer, Mode
from callcenter.media.recorder import Side
from callcenter.sip.endpoint import Peer, ServerRequest
from callcenter.sip.message import Response
from callcenter.voice.dialog import Dialog
from callcenter.voice.leg import Leg, ack_again

if TYPE_CHECKING:
    from callcenter.voice.calls import Call, CallManager

log = logging.getLogger(__name__)

#: The modes a supervisor chooses from, and the mixer mode each puts their leg in.
MODES = {"listen": Mode.LISTEN, "whisper": Mode.WHISPER, "barge": Mode.BARGE}
#: Final responses that mean nobody picked up (rather than a refusal).
_UNANSWERED = (408, 480, 487)


@dataclass(eq=False)
class Session:
    """One supervisor on one call: ringing until ``mixer`` is set, over once ``ended``."""

    call: Call
    user_id: int
    mode: str
    leg: Leg | None = None
    mixer: Mixer | None = None
    ended: bool = False

    @property
    def state(self) -> str:
        if self.ended:
            return "ended"
        return "connected" if self.mixer is not None else "ringing"


class Monitor:
    """See the module docstring; made by the :class:`CallManager`, one per server."""

    def __init__(self, calls: CallManager, ring_seconds: float) -> None:
        self.calls = calls
        #: How long the supervisor's phone rings before the request is dropped.
        self.ring_seconds = ring_seconds
        #: Sessions by contact id, and those connected by their dialog's key.
        self.sessions: dict[str, Session] = {}
        self._dialogs: dict[tuple[str, str, str], Session] = {}
        self._watchers: dict[int, list[Outbox]] = {}
        calls.on_leaving.append(self._call_leaving)
        calls.voice.dialogs.append(self)

    # -- the supervisor's wallboards --------------------------------------------------

    def watch(self, user_id: int, outbox: Outbox) -> None:
        """Send the user's ``monitor`` messages to ``outbox``, first those of sessions now."""
        self._watchers.setdefault(user_id, []).append(outbox)
        for session in self.sessions.values():
            if session.user_id == user_id:
                outbox.push(_message(session))

    def unwatch(self, user_id: int, outbox: Outbox) -> None:
        kept = [o for o in self._watchers.get(user_id, ()) if o is not outbox]
        if kept:
            self._watchers[user_id] = kept
        else:
            self._watchers.pop(user_id, None)

    def _tell(self, session: Session, reason: str = "") -> None:
        message = _message(session, reason)
        for outbox in self._watchers.get(session.user_id, ()):
            outbox.push(message)

    # -- commands ----------------------------------------------------------------------

    async def start(self, contact_id: str, user_id: int, mode: str) -> bool:
        """Listen in on a call in ``mode``, or switch an own session to it.

        Returns True when the supervisor's phone was rung, False for a switch.
        Raises :class:`ContactError`: ``unknown_contact``, ``not_a_call`` (a
        chat), ``not_connected`` (queued, ringing, on hold, muted or in
        wrap-up), ``monitored`` (another supervisor is on the call) or
        ``no_phone`` (the supervisor's extension has no live registration).
        The phone then rings in the background; the wallboards hear how it
        went.
        """
        if mode not in MODES:
            raise ContactError("invalid_mode", "mode is listen, whisper or barge")
        session = self.sessions.get(contact_id)
        if session is not None:
            self._own(session, user_id)
            self._switch(session, mode)
            return False
        call = self._connected(contact_id)
        session = Session(call, user_id, mode)
        # Held while the phone rings, so a second request waits its turn.
        self.sessions[contact_id] = session
        try:
            found = self.calls.voice.phone_of(user_id)
            if found is None:
                raise ContactError("no_phone", "your phone is not registered")
            if session.ended:
                raise ContactError("not_connected", "the call is no longer connected")
            peer, target = found
            leg, final = await Leg.ring(
                self.calls.endpoint,
                self.calls.allocator,
                self.calls.address,
                call.caller.port.codec,
                peer=peer,
                target=target,
                caller=f'"Monitor {call.caller_id}" <sip:monitor@{self.calls.address}>',
            )
        except BaseException:
            if self.sessions.get(contact_id) is session:
                del self.sessions[contact_id]
            raise
        session.leg = leg
        # Ringing goes on in the call layer's tasks, which it closes with the calls.
        self.calls._spawn(self._ring(session, final))
        if session.ended:
            leg.cancel()
            raise ContactError("not_connected", "the call is no longer connected")
        self._tell(session)
        log.info("supervisor %d rings in on call %s to %s", user_id, contact_id, mode)
        return True

    def stop(self, contact_id: str, user_id: int) -> None:
        """End the user's session on the call; the two parties are bridged again."""
        session = self.sessions.get(contact_id)
        if session is None:
            if contact_id in self.calls.by_contact or contact_id in self.calls.center.contacts:
                raise ContactError("not_monitoring", "you are not on this call")
            raise ContactError("unknown_contact", "no such contact")
        self._own(session, user_id)
        self._end(session, "stopped", restore=True)

    def release(self, contact_id: str, reason: str) -> None:
        """Take any supervisor off the call, bridging the two parties again (the agent's
        call controls act on the bridge)."""
        session = self.sessions.get(contact_id)
        if session is not None:
            self._end(session, reason, restore=True)

    def mode_of(self, contact_id: str) -> str | None:
        session = self.sessions.get(contact_id)
        return session.mode if session is not None else None

    # -- requests within the supervisors' dialogs --------------------------------------

    def in_dialog(self, server: ServerRequest) -> bool:
        """Whether ``server`` is within a supervisor's dialog (then it has been answered).

        A BYE takes the supervisor off the call; a re-INVITE is answered as
        the call layer answers its own legs' (RFC 3261 12.2.2, 14.2).
        """
        request = server.request
        if request.to_addr.tag is None:
            return False
        session = self._dialogs.get(Dialog.key_of(request))
        if session is None:
            return False
        assert session.leg is not None
        if session.leg.receive(server) == "bye":
            self._end(session, "hung_up")
        return True

    def stray_response(self, response: Response, peer: Peer) -> None:
        ack_again(response, [session.leg for session in self.sessions.values()])

    # -- internals ---------------------------------------------------------------------

    def _connected(self, contact_id: str) -> Call:
        call = self.calls.by_contact.get(contact_id)
        if call is None:
            contact = self.calls.center.contacts.get(contact_id)
            if contact is None:
                raise ContactError("unknown_contact", "no such contact")
            if contact.channel != "voice":
                raise ContactError("not_a_call", "this contact is not a call")
            raise ContactError("not_connected", "the call is not talking to an agent")
        if call.ended or call.agent is None or call.bridge is None:
            raise ContactError("not_connected", "the call is not talking to an agent")
        if call.on_hold or call.held or call.muted:
            raise ContactError("not_connected", "the call is on hold or muted")
        return call

    @staticmethod
    def _own(session: Session, user_id: int) -> None:
        if session.user_id != user_id:
            raise ContactError("monitored", "another supervisor is on this call")

    def _switch(self, session: Session, mode: str) -> None:
        session.mode = mode
        if session.mixer is not None:
            self._apply(session)
        self._tell(session)
        log.info("supervisor %d on call %s: %s", session.user_id, session.call.contact_id, mode)

    def _apply(self, session: Session) -> None:
        call, leg, mixer = session.call, session.leg, session.mixer
        assert leg is not None and mixer is not None and call.agent is not None
        whisper_to = call.agent.port if session.mode == "whisper" else None
        mixer.set_mode(leg.port, MODES[session.mode], whisper_to=whisper_to)

    async def _ring(self, session: Session, final: asyncio.Future[Response]) -> None:
        leg = session.leg
        assert leg is not None
        owned = True  # this task closes the leg unless the session takes it over
        try:
            try:
                response = await asyncio.wait_for(asyncio.shield(final), self.ring_seconds)
            except TimeoutError:
                leg.cancel()
                response = await final
            answered = 200 <= response.status < 300
            if answered:
                leg.answered(response)
            if session.ended:
                if answered:
                    await leg.hang_up()
                return
            if not answered:
                reason = "no_answer" if response.status in _UNANSWERED else "declined"
                self._end(session, reason, restore=False)
                return
            owned = False
            if not self._mix(session):
                self._end(session, "not_connected", restore=False)
                return
            self._tell(session)
            log.info("supervisor %d on call %s", session.user_id, session.call.contact_id)
        finally:
            if owned:
                leg.close()

    def _mix(self, session: Session) -> bool:
        """Move the call from its bridge into a mixer with the supervisor; False if it cannot."""
        call, leg = session.call, session.leg
        assert leg is not None and leg.dialog is not None
        if call.ended or call.agent is None or call.bridge is None:
            return False
        if call.on_hold or call.held or call.muted:
            return False
        call.bridge.close()
        call.bridge = None
        mixer = Mixer(self.calls.clock, recorder=call.recorder)
        mixer.add(call.caller.port, side=Side.CALLER)
        mixer.add(call.agent.port, side=Side.AGENT)
        mixer.add(leg.port, Mode.LISTEN)
        session.mixer = mixer
        self._apply(session)
        self._dialogs[leg.dialog.key] = session
        return True

    def _end(self, session: Session, reason: str, *, restore: bool = True) -> None:
        """Take the supervisor off the call; ``restore`` bridges the two parties again."""
        if session.ended:
            return
        session.ended = True
        call = session.call
        if self.sessions.get(call.contact_id) is session:
            del self.sessions[call.contact_id]
        if session.mixer is not None:
            session.mixer.close()
            session.mixer = None
            if restore and not call.ended and call.agent is not None and call.bridge is None:
                call.bridge = Bridge(call.caller.port, call.agent.port, call.recorder)
        leg = session.leg
        if leg is not None and leg.dialog is not None:
            self._dialogs.pop(leg.dialog.key, None)
            self.calls._spawn(_hang_up(leg))
        elif leg is not None:
            leg.cancel()  # still ringing: the ring task closes the leg once it is answered
        self._tell(session, reason)
        log.info("supervisor %d off call %s: %s", session.user_id, call.contact_id, reason)

    def _call_leaving(self, call: Call) -> None:
        """The call ends or its agent leaves: the supervisor goes too, nothing is restored."""
        session = self.sessions.get(call.contact_id)
        if session is not None and session.call is call:
            self._end(session, "call_ended", restore=False)


async def _hang_up(leg: Leg) -> None:
    try:
        await leg.hang_up()
    finally:
        leg.close()


def _message(session: Session, reason: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "monitor",
        "contact_id": session.call.contact_id,
        "agent_id": session.call.agent_id or "",
        "state": session.state,
        "mode": session.mode,
    }
    if reason:
        message["reason"] = reason
    return message
