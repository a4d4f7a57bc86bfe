"""Calls through the contact center: IVR, queue, the agent's phone, the bridge.

A call dialled to a configured number is answered at once and runs the
number's IVR flow (:mod:`callcenter.ivr`): prompts are rendered by the TTS
cache and played on the shared media clock, keys and speech go back to the
interpreter. When the flow queues the call it becomes a contact of the
contact center like a chat: the router offers it to an agent, and for a
call *the offer is the ringing of the agent's registered phone*. A 200 from
the phone accepts the offer; 486, 480, 603 or no answer before the offer
times out count as a rejection or a missed offer, under the router's rules.
On answer the two legs are bridged and recorded (caller left, agent right).

A caller who hangs up while queued or while the agent's phone rings is an
abandon; either side hanging up after the answer ends the call, and the
recording goes with the interaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from callcenter.acd import events as router_events
from callcenter.clock import to_iso, utcnow
from callcenter.config import Settings
from callcenter.cti.center import Contact, ContactCenter, ContactError
from callcenter.cti.screen_pop import Identity, screen_pop
from callcenter.hours import BusinessCalendar
from callcenter.ivr import events as ivr
from callcenter.ivr.asr import SpeechRecognizer, SpeechStream
from callcenter.ivr.flow import Flow, FlowLimits, load_flows
from callcenter.ivr.interpreter import Interpreter
from callcenter.ivr.tts import VOICES, PromptCache
from callcenter.media.bridge import Bridge
from callcenter.media.clock import MediaClock
from callcenter.media.player import Player
from callcenter.media.port import PortAllocator, PortsExhausted
from callcenter.media.recorder import CallRecorder, Side
from callcenter.phones import to_e164
from callcenter.services import Services
from callcenter.sip import sdp, session_timer
from callcenter.sip.endpoint import Peer, ServerRequest
from callcenter.sip.message import ParseError, Request, Response
from callcenter.sip.uri import SipUri
from callcenter.store import records
from callcenter.store.customers import lookup
from callcenter.store.models import BusinessHours, Holiday
from callcenter.store.tickets import new_ticket
from callcenter.voice import controls
from callcenter.voice.dialog import Dialog
from callcenter.voice.leg import Leg, NoCommonCodec, ack_again
from callcenter.voice.monitor import Monitor
from callcenter.voice.service import VoiceService
from callcenter.voice.sounds import Sounds
from callcenter.voice.transfer import Consult, Transfers

if TYPE_CHECKING:
    from callcenter.voice.outbound import OutboundCalls

log = logging.getLogger(__name__)

FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"
#: Audio handed to the recogniser at a time (100 ms at 8 kHz, 16-bit).
ASR_CHUNK_BYTES = 1600
#: How long the business calendar read from the database is reused, seconds.
CALENDAR_SECONDS = 60.0


@dataclass(eq=False)
class Call:
    """One caller's call, from the INVITE to the last BYE."""

    call_id: str
    caller: Leg
    number: str
    caller_id: str
    interpreter: Interpreter
    contact_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    agent: Leg | None = None
    agent_id: str | None = None
    queued: bool = False
    bridge: Bridge | None = None
    recorder: CallRecorder | None = None
    player: Player | None = None
    music: bytes = b""
    #: Prompts waiting to be played, in order.
    prompts: list[bytes] = field(default_factory=list)
    prompting: bool = False
    timer: asyncio.TimerHandle | None = None
    ended: bool = False
    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    arrived_at: dt.datetime = field(default_factory=utcnow)
    #: Written as an interaction by this module (a call that never reached a queue).
    logged: bool = False
    #: The speech recogniser listening to the caller, and audio not yet fed to it.
    listening: SpeechStream | None = None
    heard: bytearray = field(default_factory=bytearray)
    feeding: bool = False
    #: Set to end a voicemail recording early ('#').
    voicemail: asyncio.Event | None = None
    #: The caller put the call on hold (its re-INVITE said sendonly or inactive).
    on_hold: bool = False
    #: Held or muted from the agent's console.
    held: bool = False
    muted: bool = False
    #: The agent's consultation with another agent, while the caller holds.
    consult: Consult | None = None
    #: Sent to another queue or agent after talking to one: the flow's queue step
    #: is behind it, so a wait that ends without an agent ends the call.
    transferred: bool = False
    #: A number outside the center the call was transferred to, through the trunk.
    external: Leg | None = None
    #: When the caller's session timer is checked next (RFC 4028).
    session_check: asyncio.TimerHandle | None = None
    #: Done when the call ends: stops whatever rings on the call's behalf.
    gone: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


#: Call controls that act on a consultation (callcenter.voice.transfer).
CONSULT_ACTIONS = ("consult", "complete", "conference", "cancel_consult")


class CallManager:
    """See the module docstring; plugged into the :class:`VoiceService` and the center."""

    def __init__(
        self, services: Services, settings: Settings, voice: VoiceService, center: ContactCenter
    ) -> None:
        self.services = services
        self.settings = settings
        self.voice = voice
        self.center = center
        self.endpoint = voice.endpoint
        vs = settings.voice
        self.address = vs.media_address or settings.sip.advertised_address or settings.sip.host
        self.allocator = PortAllocator(vs.rtp_first_port, vs.rtp_last_port)
        self.clock = MediaClock()
        # A language with a speech model is one the center serves: flows may
        # use it, and espeak-ng's voice of that name speaks its prompts.
        voices = {**{language: language for language in vs.speech_models}, **VOICES}
        self.prompts = PromptCache(Path(vs.prompt_cache_directory), voices=voices)
        self.recordings = Path(vs.recordings_directory)
        folder = Path(vs.flows_directory) if vs.flows_directory else FLOWS
        flows = load_flows(folder, limits=FlowLimits(known_languages=tuple(voices)))
        self.flows: dict[str, Flow] = {}
        for number, name in vs.numbers.items():
            if name not in flows:
                raise ValueError(f"voice.numbers.{number}: no flow {name!r} in {folder}")
            self.flows[number] = flows[name]
        models = {lang: Path(folder) for lang, folder in vs.speech_models.items()}
        self.recognizer = SpeechRecognizer(models) if models else None
        self._calendar: tuple[float, BusinessCalendar] | None = None
        self.calls: dict[tuple[str, str, str], Call] = {}
        self.by_contact: dict[str, Call] = {}
        #: Calls whose agent has left, still in the flow (a survey) after the contact.
        self.surveys: dict[str, Call] = {}
        self.draining = False
        self.sounds = Sounds(
            Path(vs.sounds_directory) if vs.sounds_directory else Path(folder) / "sounds"
        )
        #: Set when draining and the last call has ended.
        self._idle = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Told of each call that ends or whose agent leaves, before its legs are
        # closed: for legs joined to it from outside this module (a supervisor).
        self.on_leaving: list[Callable[[Call], None]] = []
        self.monitor = Monitor(self, vs.monitor_ring_seconds)
        self.transfers = Transfers(self)
        #: Calls forwarded to a number, by the dialog key of that number's leg.
        self.externals: dict[tuple[str, str, str], Call] = {}
        #: Rings numbers through the trunk (set by the outbound dialler, if any).
        self.dialer: OutboundCalls | None = None
        voice.calls = self
        center.voice_calls = self

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        for call in list(self.by_contact.values()) + list(self.calls.values()):
            await self._end(call, "shutdown")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.clock.close()
        await self.prompts.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("call handling failed", exc_info=error)

    # -- requests from the SIP service ------------------------------------------------------

    async def invite(self, server: ServerRequest) -> None:
        request = server.request
        if self.draining:
            server.reply(503, "Shutting down", headers=(("Retry-After", "60"),))
            return
        if not self.voice.auth.from_trunk(server.peer.host):
            # Not a trunk: only an authenticated agent may call in.
            if await self.voice.auth.authenticate(server, proxy=True) is None:
                return
        uri = request.uri
        number = uri.user if isinstance(uri, SipUri) and uri.user else ""
        flow = self.flows.get(number)
        if flow is None:
            server.reply(404, "No such number")
            return
        caller = request.from_addr.uri
        caller_id = caller.user if isinstance(caller, SipUri) and caller.user else ""
        sip = self.settings.sip
        session = (
            max(sip.session_expires_seconds, sip.min_session_expires_seconds),
            sip.min_session_expires_seconds,
        )
        try:
            timer = session_timer.negotiate(request, wanted=session[0], min_se=session[1])
        except ParseError as error:
            server.reply(400, error.reason)
            return
        if timer.too_small is not None:
            server.reply(422, "Session Interval Too Small", headers=(("Min-SE", str(session[1])),))
            return
        try:
            leg = await Leg.answer(
                self.endpoint, server, self.allocator, self.address, self._no_ack, session=session
            )
        except (NoCommonCodec, sdp.SdpError):
            server.reply(488, "Not Acceptable Here")
            return
        except ParseError as error:
            server.reply(400, error.reason)
            return
        except PortsExhausted:
            log.warning("call from %r refused: no RTP port free", caller_id)
            server.reply(503, "No Media Port Free", headers=(("Retry-After", "5"),))
            return
        if leg is None:
            return  # CANCELled (and answered 487) while it was being answered
        region = self.settings.site.default_region
        interpreter = Interpreter(
            flow,
            {"caller_number": to_e164(caller_id, region) or "", "called_number": number},
            utcnow(),
            calendar=await self.calendar() if flow.uses_hours else None,
            speech_languages=self.recognizer.languages if self.recognizer else (),
        )
        call = Call(request.call_id, leg, number, caller_id, interpreter)
        assert leg.dialog is not None
        self.calls[leg.dialog.key] = call
        self._arm_session(call)
        leg.port.on_digit = lambda digit: self._event(call, ivr.Digit(digit))
        log.info("call %s from %r to %s", call.contact_id, caller_id, number)
        await self._actions(call, interpreter.start(utcnow()))

    def in_dialog(self, server: ServerRequest) -> bool:
        request = server.request
        if request.to_addr.tag is None:
            return False
        call = self._call_of(request)
        if call is None:
            if request.method in ("BYE", "INVITE", "INFO", "UPDATE"):
                server.reply(481)
                return True
            return False
        key = Dialog.key_of(request)
        leg = next(
            leg
            for leg in (call.caller, call.agent, call.external)
            if leg is not None and leg.dialog is not None and leg.dialog.key == key
        )
        if request.method == "REFER" and leg is call.agent and leg.dialog is not None:
            if leg.dialog.accepts(request):
                self._spawn(self.transfers.referred(call, server))
            else:
                server.reply(500, "CSeq out of order")
            return True
        what = leg.receive(server)
        if what == "bye":
            self._spawn(self._hung_up(call, leg))
        elif what:
            self._held_by_phone(call, leg, what == "hold")
        return True

    def _call_of(self, request: Request) -> Call | None:
        key = Dialog.key_of(request)
        call = self.calls.get(key) or self.externals.get(key)
        if call is not None:
            return call
        for candidate in self.by_contact.values():
            agent = candidate.agent
            if agent is not None and agent.dialog is not None and agent.dialog.key == key:
                return candidate
        return None

    def ack(self, request: Request, peer: Peer) -> None:
        call = self.calls.get(Dialog.key_of(request))
        if call is not None:
            call.caller.acknowledged()

    def cancelled(self, server: ServerRequest) -> None:
        if not server.answered:
            server.reply(487)

    def stray_response(self, response: Response, peer: Peer) -> None:
        calls = [*self.by_contact.values(), *self.externals.values()]
        ack_again(response, [leg for call in calls for leg in (call.agent, call.external)])

    def _no_ack(self, leg: Leg) -> None:
        for call in list(self.calls.values()):
            if call.caller is leg:
                self._spawn(self._end(call, "no_ack"))

    def _held_by_phone(self, call: Call, leg: Leg, held: bool) -> None:
        """A phone put the call on hold or took it off (its re-INVITE, answered by the leg)."""
        if call.bridge is None or call.agent is None:
            return  # not talking to an agent: nothing to play instead
        # The side that put the call on hold hears nothing; the other side hears music.
        other = call.agent if leg is call.caller else call.caller
        assert other is not None
        if held and not call.bridge.is_held(other.port):
            call.on_hold = True
            call.bridge.hold(other.port)
            if call.music:
                call.player = Player(other.port, self.clock, call.music, loop=True)
                call.player.start()
        elif not held and call.bridge.is_held(other.port):
            call.on_hold = False
            self._stop_player(call)
            call.bridge.resume(other.port)

    # -- the IVR --------------------------------------------------------------------------------

    def _event(self, call: Call, event: ivr.Event) -> None:
        if call.ended:
            return
        log.debug("call %s: %s", call.contact_id, event)
        self._spawn(self._actions(call, call.interpreter.handle(event, utcnow())))

    async def _actions(self, call: Call, actions: list[ivr.Action]) -> None:
        for action in actions:
            if call.ended:
                return
            await self._act(call, action)
        self._arm(call)

    def _arm(self, call: Call) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        deadline = call.interpreter.next_deadline()
        if deadline is None or call.ended:
            return
        delay = max(0.0, (deadline - utcnow()).total_seconds())
        call.timer = asyncio.get_running_loop().call_later(
            delay, lambda: self._event(call, ivr.Tick())
        )

    async def _act(self, call: Call, action: ivr.Action) -> None:
        log.debug("call %s does %s", call.contact_id, action)
        match action:
            case ivr.Say():
                text = action.reading or action.text
                try:
                    if call.caller.port.encoding == "PCMA":
                        audio = await self.prompts.render(text, action.language, law="alaw")
                    else:
                        audio = await self.prompts.render(text, action.language, law="ulaw")
                except (ValueError, RuntimeError) as error:
                    log.warning("prompt not rendered: %s", error)
                    audio = b""
                self._queue_prompt(call, audio)
            case ivr.Play():
                self._queue_prompt(
                    call, await self.sounds.load(action.path, call.caller.port.encoding)
                )
            case ivr.StopPrompt():
                call.prompts.clear()
                call.prompting = False
                self._stop_player(call)
                self._play_music(call)
            case ivr.LookupCustomer():
                await self._lookup(call, action)
            case ivr.QueryQueue():
                self._event(call, self._queue_info(call, action.queue))
            case ivr.Enqueue():
                await self._enqueue(call, action)
            case ivr.SaveSurvey():
                await self._save_survey(call, action.score)
            case ivr.Listen():
                await self._listen(call, action)
            case ivr.StopListening():
                self._stop_listening(call)
            case ivr.Hangup():
                await self._end(call, action.reason or "ivr")
            case ivr.Transfer():
                await self.transfers.forward(call, action.number)
            case ivr.RecordVoicemail():
                await self._record_voicemail(call, action)
            case ivr.RequestCallback():
                await self._request_callback(call, action)
            case ivr.StopRecording():
                if call.voicemail is not None:
                    call.voicemail.set()
            case _:
                pass  # SetLanguage: nothing to do here

    async def _listen(self, call: Call, action: ivr.Listen) -> None:
        if self.recognizer is None or action.language not in self.recognizer.languages:
            return
        self._stop_listening(call)
        call.listening = await self.recognizer.open(action.language, action.grammar)
        port = call.caller.port
        port.on_audio = lambda payload, _packet: self._hear(call, port.decode(payload))

    def _hear(self, call: Call, pcm: bytes) -> None:
        call.heard += pcm
        if not call.feeding and len(call.heard) >= ASR_CHUNK_BYTES:
            call.feeding = True
            self._spawn(self._feed(call))

    async def _feed(self, call: Call) -> None:
        # One chunk at a time, in order: the recogniser is a stream.
        try:
            while call.listening is not None and len(call.heard) >= ASR_CHUNK_BYTES:
                stream = call.listening
                chunk = bytes(call.heard)
                call.heard.clear()
                result = await stream.feed(chunk)
                if result is not None and call.listening is stream:
                    self._stop_listening(call)
                    self._event(call, ivr.SpeechResult(result.text, result.confidence))
        finally:
            call.feeding = False

    def _stop_listening(self, call: Call) -> None:
        call.listening = None
        call.heard.clear()
        if call.bridge is None:
            call.caller.port.on_audio = None

    async def calendar(self) -> BusinessCalendar:
        """The business hours and holidays (the "default" calendar), read at most once a minute."""
        now = asyncio.get_running_loop().time()
        if self._calendar is not None and now - self._calendar[0] < CALENDAR_SECONDS:
            return self._calendar[1]
        async with self.services.sessions() as db:
            hours = (
                await db.execute(select(BusinessHours).where(BusinessHours.calendar == "default"))
            ).scalars()
            spans = [(h.weekday, h.opens, h.closes) for h in hours]
            days = (
                await db.execute(select(Holiday.day).where(Holiday.calendar == "default"))
            ).scalars()
            calendar = BusinessCalendar.build(self.settings.site.time_zone, spans, list(days))
        self._calendar = (now, calendar)
        return calendar

    async def _save_survey(self, call: Call, score: int) -> None:
        """The caller's score goes on the interaction (the contact, or its record if written)."""
        contact = self.center.contacts.get(call.contact_id)
        if contact is not None:
            contact.csat_score = score
            return
        await self.services.recorder.record(
            records.INTERACTION_SCORED, {"id": call.contact_id, "csat_score": score}
        )

    async def _record_voicemail(self, call: Call, action: ivr.RecordVoicemail) -> None:
        """Record the caller until '#', ``max_seconds`` or hang-up; the message becomes a ticket."""
        self.recordings.mkdir(parents=True, exist_ok=True)
        path = self.recordings / f"{call.contact_id}-voicemail.wav"
        loop = asyncio.get_running_loop()
        recorder = CallRecorder(path, start=loop.time())
        port = call.caller.port
        port.on_audio = lambda payload, _p: recorder.feed(
            Side.CALLER, port.decode(payload), loop.time()
        )
        call.voicemail = asyncio.Event()
        self._spawn(self._voicemail(call, action, recorder, path))

    async def _voicemail(
        self, call: Call, action: ivr.RecordVoicemail, recorder: CallRecorder, path: Path
    ) -> None:
        assert call.voicemail is not None
        try:
            await asyncio.wait_for(call.voicemail.wait(), action.max_seconds)
        except TimeoutError:
            pass
        call.voicemail = None
        if call.bridge is None:
            call.caller.port.on_audio = None
        seconds = await recorder.close()
        subject = f"Voicemail from {call.caller_id or 'an unknown caller'}"
        ticket = new_ticket(
            {
                "subject": subject,
                "description": _describe(call.interpreter.collected),
                "category": "request",
            },
            None,
            self.center.clock(),
            self.settings.tickets,
        )
        await self.log_ivr_call(call, "voicemail", recording=str(path), ticket=ticket)
        self._event(call, ivr.VoicemailDone(str(path), seconds))

    async def log_ivr_call(
        self,
        call: Call,
        reason: str,
        *,
        recording: str | None = None,
        ticket: dict[str, Any] | None = None,
        collected: dict[str, str] | None = None,
    ) -> None:
        """A call the IVR served alone (menu, hang-up, voicemail, transfer out) is an
        interaction too; ``collected`` adds to what the flow collected.

        Calls that reached a queue are written by the contact center instead.
        """
        call.logged = True
        interaction: dict[str, Any] = {
            "id": call.contact_id,
            "channel": "voice",
            "direction": "inbound",
            "remote_identity": call.caller_id[:254],
            "arrived_at": to_iso(call.arrived_at),
            "ended_at": to_iso(self.center.clock()),
            "collected": {**call.interpreter.collected, **(collected or {})},
            "ivr_path": list(call.interpreter.path),
            "recording_path": recording,
            "end_reason": reason,
        }
        data: dict[str, Any] = {"interaction": interaction}
        if ticket is not None:
            data["ticket"] = ticket
        await self.services.recorder.record(records.INTERACTION_RECORDED, data)

    def _arm_session(self, call: Call) -> None:
        """Check the caller's session timer (RFC 4028) when it would run out."""
        leg = call.caller
        if call.ended or leg.session_interval is None:
            return
        deadline = leg.refreshed_at + session_timer.give_up_after(leg.session_interval)
        loop = asyncio.get_running_loop()
        call.session_check = loop.call_at(deadline, self._session_due, call)

    def _session_due(self, call: Call) -> None:
        leg = call.caller
        if call.ended or leg.session_interval is None:
            return
        deadline = leg.refreshed_at + session_timer.give_up_after(leg.session_interval)
        if asyncio.get_running_loop().time() < deadline:
            self._arm_session(call)  # refreshed meanwhile
            return
        log.info(
            "call %s: session not refreshed in %d s, ending it",
            call.contact_id,
            leg.session_interval,
        )
        self._spawn(self._end(call, "session_expired"))

    async def _watch(self) -> None:
        """Clear calls whose media stopped: a caller whose BYE was lost still frees its agent."""
        limit = self.settings.voice.rtp_timeout_seconds
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(5.0, limit / 2))
            now = loop.time()
            for call in list(self.calls.values()):
                port = call.caller.port
                since = port.last_received or call.started
                if not call.ended and not call.on_hold and now - since > limit:
                    log.info("call %s: no RTP for %d s, clearing it", call.contact_id, limit)
                    self._spawn(self._end(call, "rtp_timeout"))

    def start(self) -> None:
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def drain(self, limit: float) -> None:
        """Take no new calls and wait up to ``limit`` seconds for those in progress."""
        self.draining = True
        if not self.calls:
            return
        try:
            await asyncio.wait_for(self._idle.wait(), limit)
        except TimeoutError:
            log.info("%d calls still up after %.0f s of draining", len(self.calls), limit)

    def _queue_prompt(self, call: Call, audio: bytes) -> None:
        call.prompts.append(audio)
        if not call.prompting:
            call.prompting = True
            self._next_prompt(call)

    def _next_prompt(self, call: Call) -> None:
        if call.ended or call.bridge is not None:
            return
        if not call.prompts:
            call.prompting = False
            self._play_music(call)
            self._event(call, ivr.PromptDone())
            return
        audio = call.prompts.pop(0)
        self._stop_player(call)
        player = Player(call.caller.port, self.clock, audio)
        call.player = player
        player.start().add_done_callback(lambda _: self._prompt_ended(call, player))

    def _prompt_ended(self, call: Call, player: Player) -> None:
        if call.player is player and call.prompting:
            call.player = None
            self._next_prompt(call)

    def _play_music(self, call: Call) -> None:
        if call.queued and call.music and call.player is None and call.bridge is None:
            call.player = Player(call.caller.port, self.clock, call.music, loop=True)
            call.player.start()

    def _stop_player(self, call: Call) -> None:
        if call.player is not None:
            player, call.player = call.player, None
            player.stop()

    async def _lookup(self, call: Call, action: ivr.LookupCustomer) -> None:
        region = self.settings.site.default_region
        async with self.services.sessions() as db:
            if action.by == "account":
                found = await lookup(db, region, account=action.value)
            else:
                found = await lookup(db, region, phone=action.value)
        if not found:
            self._event(call, ivr.CustomerNotFound())
            return
        customer = found[0]
        self._event(
            call,
            ivr.CustomerFound(
                str(customer.id), customer.name, customer.tier, customer.language or ""
            ),
        )

    def _queue_info(self, call: Call, queue: str) -> ivr.QueueInfo:
        figures = self.center.queue_figures(queue)
        position = self.center.position(queue, call.contact_id) if call.queued else 0
        return ivr.QueueInfo(
            queue,
            int(figures.get("agents", {}).get("available", 0)),
            int(figures.get("waiting", 0)),
            float(figures.get("asa_seconds") or 0.0),
            position,
        )

    async def _enqueue(self, call: Call, action: ivr.Enqueue) -> None:
        contact, verified = await self._new_contact(call, action.queue, call.contact_id)
        call.queued = True
        encoding = call.caller.port.encoding
        call.music = (await self.sounds.load(action.music, encoding)) if action.music else b""
        call.music = call.music or self.sounds.music_on_hold(encoding)
        self.by_contact[call.contact_id] = call
        try:
            await self.center.arrive(contact, action.tier if verified else None)
        except ContactError as error:
            log.warning("call %s not queued: %s", call.contact_id, error)
            call.queued = False
            self._event(call, ivr.QueueExited("rejected"))
            return
        self._play_music(call)

    async def _new_contact(self, call: Call, queue: str, contact_id: str) -> tuple[Contact, bool]:
        """The caller as a contact of ``queue``, with its screen pop; and whether the
        caller's number is vouched for."""
        # Caller ID from a trunk is the company's carrier vouching for the number.
        verified = (
            self.voice.auth.from_trunk(call.caller.dialog.peer.host)
            if call.caller.dialog
            else False
        )
        identity = Identity(phone=call.caller_id or None, verified=verified)
        collected = dict(call.interpreter.collected)
        # What the recogniser heard, and how sure it was, goes on the interaction.
        for heard in call.interpreter.recognised:
            collected[f"{heard.step}.heard"] = heard.text
            collected[f"{heard.step}.confidence"] = f"{heard.confidence:.2f}"
        async with self.services.sessions() as db:
            pop = await screen_pop(db, identity, self.settings.site.default_region, collected)
            await db.commit()
        customer = pop["customer"]
        contact = Contact(
            contact_id=contact_id,
            channel="voice",
            queue=queue,
            pop=pop,
            remote_identity=call.caller_id,
            arrived_at=self.center.clock(),
            customer_name=(customer or {}).get("name") or call.caller_id,
            customer_id=customer["id"] if customer else None,
            collected=collected,
        )
        contact.ivr_path = list(call.interpreter.path)
        return contact, verified

    async def _request_callback(self, call: Call, action: ivr.RequestCallback) -> None:
        """The caller asked to be called back: a waiting call keeps its place in line;
        otherwise a callback contact waits in ``action.queue`` from now. Either way the
        agent it is offered to rings the caller's number (the outbound dialler)."""
        contact = self.center.contacts.get(call.contact_id)
        try:
            if call.queued and contact is not None and contact.queue == action.queue:
                await self.center.request_callback(call.contact_id, action.number)
                return
            made, verified = await self._new_contact(call, action.queue, str(uuid.uuid4()))
            customer = made.pop.get("customer") or {}
            await self.center.arrive(made, customer.get("tier") if verified else None)
            await self.center.request_callback(made.contact_id, action.number)
        except ContactError as error:
            log.warning("call %s: callback not booked: %s", call.contact_id, error)

    # -- the router's decisions ----------------------------------------------------------

    def routed(
        self,
        effect: router_events.Offer
        | router_events.Withdraw
        | router_events.Connect
        | router_events.ContactEnded,
    ) -> None:
        if self.transfers.routed(effect):
            return
        call = self.by_contact.get(effect.contact_id)
        if call is None:
            # A callback whose caller has hung up: the agent it is offered to calls out.
            contact = self.center.contacts.get(effect.contact_id)
            if contact is not None and contact.callback_number and self.dialer is not None:
                self.dialer.routed_callback(effect, contact)
            return
        match effect:
            case router_events.Offer():
                self._spawn(self._ring(call, effect.agent_id))
            case router_events.Withdraw():
                if (
                    call.agent is not None
                    and call.agent_id == effect.agent_id
                    and call.bridge is None
                ):
                    agent, call.agent, call.agent_id = call.agent, None, None
                    self._spawn(self._drop_agent(agent))
            case router_events.Connect():
                self._bridge(call)
            case router_events.ContactEnded():
                if effect.outcome != "done" and not call.ended and call.bridge is None:
                    if call.transferred:
                        self._spawn(self._end(call, f"transfer_{effect.outcome}"))
                    else:
                        self._event(call, ivr.QueueExited(effect.outcome))

    async def _ring(self, call: Call, agent_id: str) -> None:
        contact = self.center.contacts.get(call.contact_id)
        if call.ended or contact is None or agent_id not in contact.offered_to:
            return  # the offer was withdrawn before this task ran
        found = self.voice.phone_of(int(agent_id))
        if found is None:
            await self._refuse(call, agent_id)
            return
        peer, target = found
        caller = f'"{call.caller_id}" <sip:{call.caller_id or "anonymous"}@{self.address}>'
        leg, final = await Leg.ring(
            self.endpoint,
            self.allocator,
            self.address,
            call.caller.port.codec,
            peer=peer,
            target=target,
            caller=caller,
        )
        call.agent, call.agent_id = leg, agent_id
        response = await final
        if call.agent is not leg or call.ended:
            if 200 <= response.status < 300:
                leg.answered(response)
                await leg.hang_up()
            leg.close()
            return
        if 200 <= response.status < 300:
            leg.answered(response)
            try:
                await self.center.accept(agent_id, call.contact_id)
            except ContactError:
                await leg.hang_up()
                leg.close()
                call.agent, call.agent_id = None, None
            return
        call.agent, call.agent_id = None, None
        leg.close()
        if response.status != 487:
            await self._refuse(call, agent_id)
        if response.status in (486, 600):
            # A busy phone would be rung again at once when nobody else can take
            # the call: the agent is away until they say otherwise.
            await self.center.set_presence(agent_id, "away", "phone_busy")

    async def _refuse(self, call: Call, agent_id: str) -> None:
        try:
            await self.center.reject(agent_id, call.contact_id)
        except ContactError:
            pass

    async def _drop_agent(self, leg: Leg) -> None:
        leg.cancel()
        await leg.hang_up()
        leg.close()

    def _bridge(self, call: Call) -> None:
        if call.agent is None or call.ended:
            return
        call.prompts.clear()
        call.prompting = False
        self._stop_player(call)
        self._connect_media(call)
        self._event(call, ivr.AgentAnswered(call.agent_id or ""))

    def _connect_media(self, call: Call) -> None:
        """Bridge the caller to the call's agent, recorded under the call's contact."""
        assert call.agent is not None
        self.recordings.mkdir(parents=True, exist_ok=True)
        path = self.recordings / f"{call.contact_id}.wav"
        call.recorder = CallRecorder(path)
        contact = self.center.contacts.get(call.contact_id)
        if contact is not None:
            contact.recording_path = str(path)
        call.caller.port.on_audio = None
        call.bridge = Bridge(call.caller.port, call.agent.port, call.recorder)

    # -- call controls from the console -------------------------------------------------

    async def control(self, contact_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Hold (the caller hears music, the agent nothing), mute (the caller stops
        hearing the agent), send digits to the caller, hang up, or transfer the
        caller to another queue (blind: the agent's part ends at once).
        """
        # The controls act on the two-party bridge: a supervisor on the call leaves first.
        self.monitor.release(contact_id, "agent_control")
        call = self.by_contact.get(contact_id)
        if call is None and self.dialer is not None and contact_id in self.dialer.active:
            return await self.dialer.control(contact_id, action, body)  # a callback
        if call is None or call.agent is None or (call.bridge is None and call.consult is None):
            raise ContactError("not_connected", "the call is not connected")
        if call.consult is not None or action in CONSULT_ACTIONS:
            return await self._consult_control(call, action, body)
        assert call.bridge is not None
        if action == "hangup":
            await self._end(call, "agent_hung_up")
            return {}
        if action in controls.ACTIONS:
            return await controls.press(
                call,
                action,
                body,
                bridge=call.bridge,
                customer=call.caller.port,
                agent=call.agent.port,
                clock=self.clock,
                music=call.music,
            )
        if action == "transfer":
            if body.get("number"):
                dialled = await self.transfers.dialled(call, body["number"])
                await self.transfers.blind_to_number(call, dialled)
                return {"transferred_to_number": dialled}
            if body.get("agent"):
                target = self.transfers.target(call, body)
                await self.transfers.blind(call, target)
                return {"transferred_to_agent": target}
            queue = body.get("queue", "")
            if queue not in self.center.queues:
                raise ContactError("unknown_queue", f"no queue {queue}")
            await self.requeue(call, queue)
            return {"transferred_to": queue}
        return {"held": call.held, "muted": call.muted}

    async def _consult_control(
        self, call: Call, action: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The controls of a call with a consultation, or starting one."""
        transfers = self.transfers
        if action == "consult":
            if call.consult is not None:
                raise ContactError("consulting", "a consultation is already going on")
            if call.held or call.muted or call.on_hold:
                raise ContactError("on_hold", "take the call off hold first")
            if body.get("number"):
                dialled = await transfers.dialled(call, body["number"])
                return transfers.consult_number(call, dialled)
            return await transfers.consult(call, transfers.target(call, body))
        if action == "complete":
            return await transfers.complete(call)
        if action == "conference":
            return transfers.conference(call)
        if action == "cancel_consult":
            return transfers.cancel(call)
        if action == "hangup":
            # Leaving an answered consultation hands the caller over, as on the phone.
            if not await transfers.first_agent_left(call):
                await self._end(call, "agent_hung_up")
            return {}
        raise ContactError("consulting", "end the consultation first")

    def follow_up_contact(
        self,
        call: Call,
        old: Contact | None,
        queue: str,
        contact_id: str,
        note: dict[str, str] | None = None,
    ) -> Contact:
        """The contact that carries the caller on after ``old``: same customer and pop."""
        pop = dict(old.pop) if old else {"verified": False, "customer": None, "collected": {}}
        collected = {**(old.collected if old else {}), **(note or {})}
        pop["collected"] = {**pop.get("collected", {}), **(note or {})}
        contact = Contact(
            contact_id=contact_id,
            channel="voice",
            queue=queue,
            pop=pop,
            remote_identity=call.caller_id,
            arrived_at=self.center.clock(),
            customer_name=old.customer_name if old else call.caller_id,
            customer_id=old.customer_id if old else None,
            collected=collected,
        )
        contact.ivr_path = list(call.interpreter.path)
        return contact

    async def requeue(
        self,
        call: Call,
        queue: str,
        *,
        skills: dict[str, int] | None = None,
        note: dict[str, str] | None = None,
    ) -> None:
        """Blind transfer: the agent's contact ends (wrap-up), a new one waits in ``queue``."""
        old = await self.let_agent_go(call)
        await self.queue_again(call, old, queue, skills=skills, note=note)

    async def let_agent_go(self, call: Call) -> Contact | None:
        """The agent's part of the call ends (wrap-up) while the caller stays; returns
        the agent's contact as it was."""
        old = self.center.contacts.get(call.contact_id)
        if call.bridge is not None:
            call.bridge.close()
            call.bridge = None
        if call.recorder is not None:
            recorder, call.recorder = call.recorder, None
            self._spawn(self._close_recorder(call, recorder))
        agent, call.agent, call.agent_id = call.agent, None, None
        if agent is not None:
            self._spawn(self._drop_agent(agent))
        call.held = call.muted = False
        self.by_contact.pop(call.contact_id, None)
        await self.center.leave(call.contact_id)
        return old

    async def queue_again(
        self,
        call: Call,
        old: Contact | None,
        queue: str,
        *,
        skills: dict[str, int] | None = None,
        note: dict[str, str] | None = None,
    ) -> None:
        """The caller waits in ``queue`` again, as a new contact carrying ``old``'s pop."""
        call.transferred = True
        contact = self.follow_up_contact(call, old, queue, str(uuid.uuid4()), note)
        call.contact_id = contact.contact_id
        self.by_contact[call.contact_id] = call
        log.info("call transferred to queue %s as %s", queue, call.contact_id)
        await self.center.arrive(contact, None, skills=skills)
        self._play_music(call)

    async def hand_over(self, call: Call, leg: Leg, agent_id: str, contact_id: str) -> None:
        """Another agent, already talking on ``leg`` for ``contact_id``, takes the caller:
        the first agent's part ends (wrap-up, its recording closed)."""
        old_contact, old_leg = call.contact_id, call.agent
        if call.bridge is not None:
            call.bridge.close()
            call.bridge = None
        if call.recorder is not None:
            recorder, call.recorder = call.recorder, None
            self._spawn(self._close_recorder(call, recorder))
        self.by_contact.pop(old_contact, None)
        call.contact_id = contact_id
        self.by_contact[contact_id] = call
        call.agent, call.agent_id = leg, agent_id
        call.held = call.muted = False
        self._stop_player(call)
        self._connect_media(call)
        log.info("call %s handed over to agent %s as %s", old_contact, agent_id, contact_id)
        await self.center.leave(old_contact)
        if old_leg is not None:
            self._spawn(self._drop_agent(old_leg))

    def forwarded(self, call: Call, leg: Leg) -> None:
        """The caller talks to ``leg``, a number outside the center, from now on.

        The call is no longer a contact of the center: it ends when either
        side hangs up, with nothing more to record.
        """
        assert leg.dialog is not None
        self._stop_player(call)
        call.external = leg
        call.queued = False
        call.logged = True
        self.by_contact.pop(call.contact_id, None)
        self.externals[leg.dialog.key] = call
        call.caller.port.on_audio = None
        call.bridge = Bridge(call.caller.port, leg.port)

    def hold_music(self, call: Call) -> None:
        """The caller hears music on hold until :meth:`stop_music`."""
        self._stop_player(call)
        music = call.music or self.sounds.music_on_hold(call.caller.port.encoding)
        call.player = Player(call.caller.port, self.clock, music, loop=True)
        call.player.start()

    def stop_music(self, call: Call) -> None:
        self._stop_player(call)

    def talk_again(self, call: Call) -> None:
        """After a consultation: the caller and the call's agent are bridged again."""
        if call.ended or call.agent is None or call.bridge is not None or call.consult:
            return
        self._stop_player(call)
        call.bridge = Bridge(call.caller.port, call.agent.port, call.recorder)

    # -- hanging up ----------------------------------------------------------------------

    async def _hung_up(self, call: Call, leg: Leg) -> None:
        if leg is call.external:
            await self._end(call, "external_hung_up")
        elif leg is call.caller:
            self._event(call, ivr.CallerHungUp())
            await self._end(call, "caller_hung_up")
        else:
            await self._agent_left(call)

    async def _agent_left(self, call: Call) -> None:
        """The agent hung up: the contact goes to wrap-up, the caller to the rest of the flow.

        The flow decides what follows (a satisfaction survey, or goodbye); a
        flow with nothing after the queue hangs up.
        """
        if await self.transfers.first_agent_left(call):
            return  # the consulted agent has the caller now
        for listener in self.on_leaving:
            listener(call)
        agent = call.agent
        if call.bridge is not None:
            call.bridge.close()
            call.bridge = None
        if call.recorder is not None:
            recorder, call.recorder = call.recorder, None
            self._spawn(self._close_recorder(call, recorder))
        if agent is not None:
            agent.close()
        call.agent, call.agent_id = None, None
        if call.queued:
            call.queued = False
            self.surveys[call.contact_id] = call
            await self.center.leave(call.contact_id)
        self._event(call, ivr.AgentLeft())

    async def _close_recorder(self, call: Call, recorder: CallRecorder) -> None:
        try:
            await recorder.close()
        except Exception:
            log.exception("recording of %s not finished", call.contact_id)

    async def _end(self, call: Call, reason: str) -> None:
        if call.ended:
            return
        call.ended = True
        if not call.gone.done():
            call.gone.set_result(reason)
        self.transfers.call_ended(call)
        for listener in self.on_leaving:
            listener(call)
        for timer in (call.timer, call.session_check):
            if timer is not None:
                timer.cancel()
        self._stop_player(call)
        if call.bridge is not None:
            call.bridge.close()
        legs = [leg for leg in (call.caller, call.agent, call.external) if leg is not None]
        for leg in legs:
            if not leg.ended:
                await leg.hang_up()
        if call.recorder is not None:
            await self._close_recorder(call, call.recorder)
        for leg in legs:
            leg.close()
        if call.caller.dialog is not None:
            self.calls.pop(call.caller.dialog.key, None)
        if call.external is not None and call.external.dialog is not None:
            self.externals.pop(call.external.dialog.key, None)
        if self.draining and not self.calls:
            self._idle.set()
        if call.queued:
            contact = self.center.contacts.get(call.contact_id)
            if contact is not None:
                contact.ivr_path = list(call.interpreter.path)
            await self.center.leave(call.contact_id)
        elif not call.logged and call.contact_id not in self.surveys:
            await self.log_ivr_call(call, reason)
        self.by_contact.pop(call.contact_id, None)
        self.surveys.pop(call.contact_id, None)
        log.info("call %s ended: %s", call.contact_id, reason)


def _describe(collected: dict[str, str]) -> str:
    """What the IVR collected, one line each, for a voicemail ticket."""
    return "\n".join(f"{name}: {value}" for name, value in sorted(collected.items()))
