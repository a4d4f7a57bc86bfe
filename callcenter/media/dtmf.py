"""DTMF as RFC 4733 telephone events: the payload, a sender and a receiver.

A key press travels as a run of RTP packets sharing one timestamp (the
instant the tone began), the first with the marker bit, each repeating the
event with a growing duration, and the last sent three times with the E bit.
:class:`DtmfSender` makes that run on top of an :class:`RtpSender`;
:class:`DtmfReceiver` turns such runs back into digits, each exactly once,
whether packets come twice, late, or not at all.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from callcenter.media.rtp import TIMESTAMP_MOD, RtpPacket, RtpSender

#: Event codes 0-15 (RFC 4733 section 3.2) in order.
DIGITS = "0123456789*#ABCD"
#: A dynamic payload type commonly offered for telephone-event.
DEFAULT_PAYLOAD_TYPE = 101
EVENT_SIZE = 4
MAX_DURATION = 0xFFFF

#: How long a generated key press lasts, the update interval, and its level
#: (in dB below 0 dBm0); ITU-T Q.24 receivers accept tones from 40 ms.
DEFAULT_DURATION_MS = 100
DEFAULT_INTERVAL_MS = 20
DEFAULT_VOLUME = 10
#: RFC 4733 section 2.5.1.4: the final packet is sent a total of three times.
END_REPEATS = 3
#: How long a receiver waits for the next packet of an event before it takes
#: the end packets as lost and reports the digit anyway.
DEFAULT_END_TIMEOUT = 0.5

_EVENT = struct.Struct("!BBH")


class TelephoneEventError(ValueError):
    """The payload is not a telephone event this module reads."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One event report (RFC 4733 section 2.3).

    ``volume`` is the tone's power in dB below 0 dBm0 (0-63); ``duration``
    counts timestamp units since the event began. The R bit is reserved: it
    is sent as zero and ignored on receipt (section 2.3.3).
    """

    event: int
    end: bool = False
    volume: int = DEFAULT_VOLUME
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 0xFF:
            raise ValueError(f"event code {self.event} is not 8 bits")
        if not 0 <= self.volume <= 0x3F:
            raise ValueError(f"volume {self.volume} is not 0..63")
        if not 0 <= self.duration <= MAX_DURATION:
            raise ValueError(f"duration {self.duration} is not 16 bits")

    @property
    def digit(self) -> str | None:
        """The DTMF digit for events 0-15; ``None`` for any other event."""
        return DIGITS[self.event] if self.event < len(DIGITS) else None

    def to_bytes(self) -> bytes:
        flags = (0x80 if self.end else 0) | self.volume
        return _EVENT.pack(self.event, flags, self.duration)


def parse_event(payload: bytes) -> TelephoneEvent:
    """Read a telephone-event payload; :class:`TelephoneEventError` if it is not one.

    Only the one-event form is read: packing several events into one packet
    (RFC 4733 section 2.5.1.5) is refused rather than half understood.
    """
    if len(payload) != EVENT_SIZE:
        raise TelephoneEventError(f"telephone event of {len(payload)} bytes, expected 4")
    event, flags, duration = _EVENT.unpack(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def event_code(digit: str) -> int:
    """The event code for a DTMF digit (``0-9 * # A-D``, case-insensitive)."""
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"{digit!r} is not a DTMF digit")
    return code


class DtmfSender:
    """Telephone-event packets for key presses, on an outgoing RTP stream.

    The events are part of the audio stream: they share its SSRC, sequence
    numbers and clock, and only the payload type differs.
    """

    def __init__(
        self,
        rtp: RtpSender,
        *,
        payload_type: int = DEFAULT_PAYLOAD_TYPE,
        clock_rate: int = 8000,
        duration_ms: int = DEFAULT_DURATION_MS,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        volume: int = DEFAULT_VOLUME,
        end_repeats: int = END_REPEATS,
    ) -> None:
        self.rtp = rtp
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.duration_ms = duration_ms
        self.interval_ms = interval_ms
        self.volume = volume
        self.end_repeats = end_repeats

    def packets(self, digit: str, *, duration_ms: int | None = None) -> list[RtpPacket]:
        """Every packet for one key press, to send one per interval, the first now.

        RFC 4733 section 2.5.1.2: all carry the timestamp of the moment the
        tone starts, the first has the marker bit, and the duration grows by
        an interval with each update; the last update has the E bit and goes
        out ``end_repeats`` times (section 2.5.1.4). The stream's clock moves
        past all of them, so audio resumes after the last with a new
        talkspurt.
        """
        code = event_code(digit)
        total = (self.duration_ms if duration_ms is None else duration_ms) * self.clock_rate // 1000
        interval = self.interval_ms * self.clock_rate // 1000
        if not 0 < total <= MAX_DURATION:
            raise ValueError(f"a key press of {total} samples does not fit one event")
        if interval <= 0:
            raise ValueError("the update interval must be at least one sample")
        start = self.rtp.timestamp
        updates = -(-total // interval)
        packets: list[RtpPacket] = []
        for update in range(1, updates + 1):
            end = update == updates
            report = TelephoneEvent(code, end, self.volume, min(update * interval, total))
            payload = report.to_bytes()
            for _ in range(self.end_repeats if end else 1):
                packets.append(
                    self.rtp.emit(
                        payload,
                        timestamp=start,
                        marker=not packets,
                        payload_type=self.payload_type,
                    )
                )
        self.rtp.skip(len(packets) * interval)
        return packets


@dataclass(slots=True)
class _Event:
    timestamp: int
    code: int
    duration: int
    last_seen: float


class DtmfReceiver:
    """Digits from incoming telephone-event packets of one call, each reported once.

    Call :meth:`feed` with every telephone-event packet and :meth:`poll` on a
    clock (``now`` in seconds, any monotonic origin). An event is keyed by
    its RTP timestamp (RFC 4733 section 2.5.2): the digit is reported when
    its first E-bit packet comes, when a packet with a newer timestamp shows
    that a new event began (the end packets were lost), or when nothing has
    come for ``end_timeout`` seconds. Repeated end packets and late packets
    of a reported or older event are dropped, and an event whose first packet
    was lost still counts from its next one. A long event split into segments
    (section 2.5.1.3) stays one digit.
    """

    def __init__(self, *, end_timeout: float = DEFAULT_END_TIMEOUT) -> None:
        self.end_timeout = end_timeout
        self._ssrc: int | None = None
        # Timestamp of the newest event seen from this source, reported or not.
        self._timestamp: int | None = None
        self._current: _Event | None = None

    def feed(self, packet: RtpPacket, now: float) -> list[str]:
        """Take one packet; returns the digits this completes, oldest first.

        Raises :class:`TelephoneEventError` for a payload that is not an
        event, and then changes nothing.
        """
        report = parse_event(packet.payload)
        digits = self.poll(now)
        if packet.ssrc != self._ssrc:
            digits += self._finish()
            self._ssrc = packet.ssrc
            self._timestamp = None
        timestamp = packet.timestamp
        current = self._current
        if self._timestamp is not None:
            age = (self._timestamp - timestamp) % TIMESTAMP_MOD
            if age == 0 and current is None:
                return digits  # a repeat of an event already reported
            if 0 < age < TIMESTAMP_MOD // 2:
                return digits  # a late packet of an earlier event
        if current is not None and current.timestamp != timestamp:
            if report.event == current.code and (
                (timestamp - current.timestamp) % TIMESTAMP_MOD == current.duration
            ):
                # The next segment of the same long event (section 2.5.1.3).
                current.timestamp = timestamp
                current.duration = 0
            else:
                digits += self._finish()
                current = None
        if current is None:
            current = self._current = _Event(timestamp, report.event, 0, now)
        self._timestamp = timestamp
        current.duration = max(current.duration, report.duration)
        current.last_seen = now
        if report.end:
            digits += self._finish()
        return digits

    def poll(self, now: float) -> list[str]:
        """Report an event whose packets stopped ``end_timeout`` ago without an end."""
        current = self._current
        if current is not None and now - current.last_seen >= self.end_timeout:
            return self._finish()
        return []

    def _finish(self) -> list[str]:
        current, self._current = self._current, None
        if current is None or current.code >= len(DIGITS):
            return []
        return [DIGITS[current.code]]
