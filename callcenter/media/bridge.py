"""Relays a two-party call's RTP between the caller's and the agent's legs as it arrives.

Bridged audio is not re-clocked (no jitter buffer, no media clock): each
packet goes out on the other leg the moment it comes in, which adds no
delay and leaves de-jittering to the phone that plays it. Packets keep the
size the sender chose (``a=ptime`` is a wish, RFC 4566 section 6, and
phones play any G.711 packet size). What the bridge does on the way:

* transcodes PCMU <-> PCMA when the legs negotiated different laws (one
  ``bytes.translate`` through the G.711 conversion tables);
* renumbers it into the other leg's own stream: SSRC, and sequence number
  and timestamp shifted by fixed offsets, so losses and reordering show
  through to the receiver as they happened. The offsets are taken again
  (and the marker bit set) when the source changes SSRC or jumps, or when
  something else has sent on the target leg in between (a prompt, a digit),
  so the target always sees one consistent stream;
* maps telephone-event payload types between the legs (RFC 4733 to RFC
  4733); toward a leg without telephone-event the key presses are played
  as in-band tones instead. In-band digits need nothing: they are audio;
* stops toward a leg on hold (:meth:`Bridge.hold`), which then gets hold
  music from a :class:`~callcenter.media.player.Player` instead;
* feeds each side's decoded audio to the recorder, held or not.
"""

from __future__ import annotations

from collections.abc import Callable

from callcenter.media import g711
from callcenter.media.dtmf import DtmfReceiver, TelephoneEventError
from callcenter.media.port import CLOCK_RATE, RtpPort
from callcenter.media.recorder import CallRecorder, Side
from callcenter.media.rtp import SEQUENCE_MOD, TIMESTAMP_MOD, RtpPacket

#: Source timestamp or sequence jumps beyond these are a new stream, not
#: loss: the relay takes new offsets from the target leg's own clock.
MAX_TIMESTAMP_JUMP = 10 * CLOCK_RATE
MAX_SEQUENCE_JUMP = 3000

_TRANSCODE: dict[tuple[str, str], Callable[[bytes], bytes]] = {
    ("PCMU", "PCMA"): g711.ulaw_to_alaw,
    ("PCMA", "PCMU"): g711.alaw_to_ulaw,
}


class _Relay:
    """One direction of the bridge: packets from ``source`` out on ``target``."""

    def __init__(
        self, source: RtpPort, target: RtpPort, side: Side, recorder: CallRecorder | None
    ) -> None:
        self.source = source
        self.target = target
        self.side = side
        self.recorder = recorder
        self.held = False
        self.relayed = 0
        self.transcode = _TRANSCODE.get((source.encoding, target.encoding))
        self.in_band = (
            DtmfReceiver()
            if source.event_payload_type is not None and target.event_payload_type is None
            else None
        )
        self._ssrc: int | None = None
        self._anchor_sequence = 0
        self._last_sequence = 0
        self._last_timestamp = 0
        self._sequence_offset = 0
        self._timestamp_offset = 0
        self._next_sequence: int | None = None

    def audio(self, payload: bytes, packet: RtpPacket) -> None:
        if self.recorder is not None:
            self.recorder.feed(self.side, self.source.decode(payload), self.source.last_received)
        if self.held:
            return
        if self.transcode is not None:
            payload = self.transcode(payload)
        self._relay(packet, payload, self.target.payload_type, len(payload))

    def event(self, packet: RtpPacket) -> None:
        if self.held:
            return
        if self.target.event_payload_type is not None:
            self._relay(packet, packet.payload, self.target.event_payload_type, 0)
        elif self.in_band is not None:
            try:
                digits = self.in_band.feed(packet, self.source.last_received)
            except TelephoneEventError:
                return  # the port has already refused and counted it
            for digit in digits:
                self.target.send_digit(digit)

    def _relay(self, packet: RtpPacket, payload: bytes, payload_type: int, samples: int) -> None:
        target = self.target
        marker = packet.marker
        if self._needs_anchor(packet):
            sequence, timestamp = target.next_numbers()
            self._ssrc = packet.ssrc
            self._anchor_sequence = packet.sequence
            self._sequence_offset = (sequence - packet.sequence) % SEQUENCE_MOD
            self._timestamp_offset = (timestamp - packet.timestamp) % TIMESTAMP_MOD
            marker = True
        elif (packet.sequence - self._anchor_sequence) % SEQUENCE_MOD >= SEQUENCE_MOD // 2:
            return  # from before the anchor: its number is taken on the target
        self._last_sequence = packet.sequence
        self._last_timestamp = packet.timestamp
        target.send_packet(
            RtpPacket(
                payload_type=payload_type,
                sequence=(packet.sequence + self._sequence_offset) % SEQUENCE_MOD,
                timestamp=(packet.timestamp + self._timestamp_offset) % TIMESTAMP_MOD,
                ssrc=target.sender.ssrc,
                payload=payload,
                marker=marker,
            ),
            samples,
        )
        self._next_sequence = target.sender.sequence
        self.relayed += 1

    def _needs_anchor(self, packet: RtpPacket) -> bool:
        if packet.ssrc != self._ssrc or self._next_sequence != self.target.sender.sequence:
            return True
        jump = (packet.timestamp - self._last_timestamp) % TIMESTAMP_MOD
        if MAX_TIMESTAMP_JUMP < jump < TIMESTAMP_MOD - MAX_TIMESTAMP_JUMP:
            return True
        step = (packet.sequence - self._last_sequence) % SEQUENCE_MOD
        return MAX_SEQUENCE_JUMP < step < SEQUENCE_MOD - MAX_SEQUENCE_JUMP


class Bridge:
    """Connects ``caller`` and ``agent`` until :meth:`close`; feeds ``recorder`` if given.

    The bridge takes the ports' ``on_audio`` and ``on_event`` callbacks
    (they must be free: stop the IVR's listeners first) and gives them back
    on :meth:`close`; ``on_digit`` stays the call layer's, so key presses
    during the conversation still reach it. While the bridge relays to a
    leg, nothing else may send on it; put the leg on :meth:`hold` first to
    play something to it. Closing the bridge closes neither the ports nor
    the recorder.
    """

    def __init__(
        self, caller: RtpPort, agent: RtpPort, recorder: CallRecorder | None = None
    ) -> None:
        if caller is agent:
            raise ValueError("a bridge joins two different legs")
        for port in (caller, agent):
            if port.on_audio is not None or port.on_event is not None:
                raise ValueError("a leg's audio already goes elsewhere (IVR, mixer, bridge)")
        self.caller = caller
        self.agent = agent
        self.recorder = recorder
        self._relays = {
            id(agent): _Relay(caller, agent, Side.CALLER, recorder),
            id(caller): _Relay(agent, caller, Side.AGENT, recorder),
        }
        for relay in self._relays.values():
            relay.source.on_audio = relay.audio
            relay.source.on_event = relay.event
        self._open = True

    def _toward(self, leg: RtpPort) -> _Relay:
        relay = self._relays.get(id(leg))
        if relay is None or relay.target is not leg:
            raise ValueError("that leg is not in this bridge")
        return relay

    def hold(self, leg: RtpPort) -> None:
        """Stop relaying toward ``leg`` (the other side's audio and digits no longer reach it)."""
        self._toward(leg).held = True

    def resume(self, leg: RtpPort) -> None:
        """Relay toward ``leg`` again, as a new talkspurt."""
        self._toward(leg).held = False

    def is_held(self, leg: RtpPort) -> bool:
        return self._toward(leg).held

    def relayed_to(self, leg: RtpPort) -> int:
        """Packets relayed toward ``leg`` so far."""
        return self._toward(leg).relayed

    def close(self) -> None:
        """Stop relaying and recording, and free the legs' callbacks; harmless twice."""
        if not self._open:
            return
        self._open = False
        for relay in self._relays.values():
            if relay.source.on_audio == relay.audio:
                relay.source.on_audio = None
            if relay.source.on_event == relay.event:
                relay.source.on_event = None
