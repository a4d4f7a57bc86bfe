"""Mixes several legs on the media clock: conferences and supervisor monitoring.

Each participant's packets go through its own jitter buffer; every tick of
the shared :class:`~callcenter.media.clock.MediaClock` the mixer takes 20 ms
from each, decodes to linear PCM, adds up for every participant what that
participant may hear, clips the sum to 16 bits and encodes it in the
participant's codec. Who hears whom follows the participants' modes:

=============  ====================================================
``CONFERENCE``  heard by everyone else (``BARGE`` is the same mode:
                a supervisor barging in joins the conference)
``LISTEN``      heard by nobody (silent monitoring)
``WHISPER``     heard only by the participant it whispers to (the
                agent, coached without the caller hearing)
=============  ====================================================

Everyone hears every conference participant but themselves, whatever their
own mode. A participant who hears nothing this tick is sent nothing.

A two-party call is relayed by a :class:`~callcenter.media.bridge.Bridge`;
the call layer moves its legs into a mixer when a third party joins, and
back when it leaves.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field
from enum import StrEnum

from callcenter.media.clock import MediaClock
from callcenter.media.jitter import Frame, JitterBuffer
from callcenter.media.port import CLOCK_RATE, RtpPort
from callcenter.media.recorder import CallRecorder, Side
from callcenter.media.rtp import RtpPacket

#: Frames each input buffers before it plays (60 ms at 20 ms a frame).
DEFAULT_JITTER_DEPTH = 3
DEFAULT_MAX_PARTICIPANTS = 16
#: Bytes of 16-bit PCM in one 20 ms tick.
TICK_PCM_BYTES = 2 * CLOCK_RATE * 20 // 1000

_MAX = 32767
_MIN = -32768


class Mode(StrEnum):
    CONFERENCE = "conference"
    BARGE = "conference"
    LISTEN = "listen"
    WHISPER = "whisper"


@dataclass(eq=False)
class _Participant:
    port: RtpPort
    mode: Mode
    whisper_to: RtpPort | None
    side: Side | None
    buffer: JitterBuffer
    pending: bytearray = field(default_factory=bytearray)
    #: PCM bytes in this participant's last packet: what a lost one is worth.
    packet_bytes: int = TICK_PCM_BYTES
    #: This tick's audio as PCM, or ``None`` when it has none.
    pcm: bytes | None = None


class Mixer:
    """Mixes the legs added to it, one tick of the media clock at a time, until :meth:`close`.

    :meth:`add` takes a leg's ``on_audio`` callback (it must be free: close
    the leg's bridge first) and makes the mixer the leg's only writer;
    :meth:`remove` gives both back. Legs marked with a ``side`` feed the
    recorder with what they say, as a bridge does.
    """

    def __init__(
        self,
        clock: MediaClock,
        *,
        recorder: CallRecorder | None = None,
        jitter_depth: int = DEFAULT_JITTER_DEPTH,
        max_participants: int = DEFAULT_MAX_PARTICIPANTS,
    ) -> None:
        self.clock = clock
        self.recorder = recorder
        self.jitter_depth = jitter_depth
        self.max_participants = max_participants
        self._participants: dict[int, _Participant] = {}

    @property
    def ports(self) -> list[RtpPort]:
        return [p.port for p in self._participants.values()]

    def add(
        self,
        port: RtpPort,
        mode: Mode = Mode.CONFERENCE,
        *,
        whisper_to: RtpPort | None = None,
        side: Side | None = None,
    ) -> None:
        """Bring ``port`` in with ``mode``; ``whisper_to`` names who hears a whisper."""
        if id(port) in self._participants:
            raise ValueError("that leg is already in the mix")
        if len(self._participants) >= self.max_participants:
            raise ValueError(f"a mix holds at most {self.max_participants} legs")
        if port.on_audio is not None:
            raise ValueError("the leg's audio already goes elsewhere (IVR, bridge, mixer)")
        self._check(port, mode, whisper_to)
        participant = _Participant(
            port, mode, whisper_to, side, JitterBuffer(frame_ms=port.ptime, depth=self.jitter_depth)
        )
        self._participants[id(port)] = participant
        port.on_audio = lambda payload, packet: self._receive(participant, payload, packet)
        if len(self._participants) == 1:
            self.clock.subscribe(self._tick)

    def set_mode(self, port: RtpPort, mode: Mode, *, whisper_to: RtpPort | None = None) -> None:
        """Change what ``port`` may be heard by (listen -> whisper -> barge, and back)."""
        participant = self._get(port)
        self._check(port, mode, whisper_to)
        if mode is Mode.LISTEN:
            # A listener's audio is not buffered; if it speaks up again, it
            # starts afresh rather than with what it said before.
            participant.buffer = JitterBuffer(frame_ms=port.ptime, depth=self.jitter_depth)
            participant.pending.clear()
        participant.mode = mode
        participant.whisper_to = whisper_to

    def mode_of(self, port: RtpPort) -> Mode:
        return self._get(port).mode

    def remove(self, port: RtpPort) -> None:
        """Take ``port`` out; harmless if it is not in. Its pending output is sent."""
        participant = self._participants.pop(id(port), None)
        if participant is None:
            return
        port.on_audio = None
        port.flush_audio()
        for other in self._participants.values():
            if other.whisper_to is port:
                other.whisper_to = None  # nobody left to hear that whisper
        if not self._participants:
            self.clock.unsubscribe(self._tick)

    def close(self) -> None:
        """Remove every leg and leave the clock."""
        for participant in list(self._participants.values()):
            self.remove(participant.port)

    def hears(self, listener: RtpPort, speaker: RtpPort) -> bool:
        """Whether ``listener`` hears ``speaker`` in the current modes."""
        return self._audible(self._get(speaker), self._get(listener))

    # -- internals ---------------------------------------------------------

    def _get(self, port: RtpPort) -> _Participant:
        participant = self._participants.get(id(port))
        if participant is None:
            raise ValueError("that leg is not in the mix")
        return participant

    def _check(self, port: RtpPort, mode: Mode, whisper_to: RtpPort | None) -> None:
        if mode is Mode.WHISPER:
            if whisper_to is None or whisper_to is port or id(whisper_to) not in self._participants:
                raise ValueError("a whisper goes to one other leg in the mix")
        elif whisper_to is not None:
            raise ValueError("only a whisper has someone to whisper to")

    @staticmethod
    def _audible(speaker: _Participant, listener: _Participant) -> bool:
        if speaker is listener:
            return False
        if speaker.mode is Mode.CONFERENCE:
            return True
        return speaker.mode is Mode.WHISPER and speaker.whisper_to is listener.port

    def _receive(self, participant: _Participant, payload: bytes, packet: RtpPacket) -> None:
        now = participant.port.last_received
        if self.recorder is not None and participant.side is not None:
            self.recorder.feed(participant.side, participant.port.decode(payload), now)
        if participant.mode is not Mode.LISTEN:
            participant.buffer.push(packet.sequence, packet.timestamp, payload, now)

    def _pull(self, participant: _Participant, now: float) -> bytes | None:
        """This tick's 20 ms of a participant's audio, or ``None`` if it has none."""
        pending = participant.pending
        while len(pending) < TICK_PCM_BYTES:
            item = participant.buffer.pop(now)
            if isinstance(item, Frame):
                pcm = participant.port.decode(item.payload)
                participant.packet_bytes = len(pcm)
                pending += pcm
            elif item.sequence is not None:
                # A lost packet inside a talkspurt: concealed with silence.
                pending += bytes(participant.packet_bytes)
            else:
                break  # (re)filling: nothing to play
        if not pending:
            return None
        pcm = bytes(pending[:TICK_PCM_BYTES]).ljust(TICK_PCM_BYTES, b"\0")
        del pending[:TICK_PCM_BYTES]
        return pcm

    def _tick(self, tick: int) -> None:
        now = self.clock.deadline(tick)
        participants = list(self._participants.values())
        for participant in participants:
            participant.pcm = None
            if participant.mode is not Mode.LISTEN:
                participant.pcm = self._pull(participant, now)
        for listener in participants:
            heard = [
                speaker.pcm
                for speaker in participants
                if speaker.pcm is not None and self._audible(speaker, listener)
            ]
            if heard:
                listener.port.write_audio(listener.port.encode(_mix(heard)))


def _mix(frames: list[bytes]) -> bytes:
    """The sum of equal-length 16-bit little-endian PCM frames, clipped to 16 bits."""
    if len(frames) == 1:
        return frames[0]
    tracks = []
    for frame in frames:
        samples = array("h", frame)
        if sys.byteorder == "big":
            samples.byteswap()
        tracks.append(samples)
    mixed = array(
        "h",
        (
            _MAX if s > _MAX else _MIN if s < _MIN else s
            for s in map(sum, zip(*tracks, strict=True))
        ),
    )
    if sys.byteorder == "big":
        mixed.byteswap()
    return mixed.tobytes()
