"""RTP packets (RFC 3550 section 5.1), a sender's state and a receiver's statistics.

* :func:`parse_packet` and :meth:`RtpPacket.to_bytes` read and write the fixed
  header, the CSRC list, a header extension and padding. Malformed input raises
  :class:`RtpError` and nothing else; the size limit is a parameter.
* :class:`RtpSender` owns what RFC 3550 section 5.1 asks a sender to keep: a
  random SSRC, sequence number and timestamp origin, and the media clock.
* :class:`RtpReceiverStats` follows one source: the sequence number state
  machine of RFC 3550 Appendix A.1, loss as in A.3 and interarrival jitter as
  in A.8, fed with each packet and its arrival time.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

#: Largest datagram :func:`parse_packet` reads (a security limit): an Ethernet
#: MTU holds 60 ms of G.711 three times over.
MAX_PACKET_SIZE = 1500

VERSION = 2
HEADER_SIZE = 12
SEQUENCE_MOD = 1 << 16
TIMESTAMP_MOD = 1 << 32

_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")


class RtpError(ValueError):
    """The bytes are not an RTP packet this module accepts."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 section 5.3.1): profile-defined id and 32-bit words."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise ValueError(f"extension profile {self.profile} is not 16 bits")
        if len(self.data) % 4 or len(self.data) > 4 * 0xFFFF:
            raise ValueError("extension data is a whole number of 32-bit words")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; padding is not kept (it carries nothing)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 0x7F:
            raise ValueError(f"payload type {self.payload_type} is not 7 bits")
        if not 0 <= self.sequence < SEQUENCE_MOD:
            raise ValueError(f"sequence number {self.sequence} is not 16 bits")
        if not 0 <= self.timestamp < TIMESTAMP_MOD:
            raise ValueError(f"timestamp {self.timestamp} is not 32 bits")
        if not 0 <= self.ssrc < TIMESTAMP_MOD:
            raise ValueError(f"SSRC {self.ssrc} is not 32 bits")
        if len(self.csrcs) > 15 or not all(0 <= c < TIMESTAMP_MOD for c in self.csrcs):
            raise ValueError("at most 15 CSRCs of 32 bits each")

    def to_bytes(self, padding: int = 0) -> bytes:
        """The packet on the wire, with ``padding`` octets (0..255) after the payload.

        RFC 3550 section 5.1: the last padding octet counts the padding,
        itself included, so one octet is the least there can be.
        """
        if not 0 <= padding <= 0xFF:
            raise ValueError(f"padding {padding} is not 0..255 octets")
        first = (VERSION << 6) | (len(self.csrcs) & 0x0F)
        if padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts.extend(c.to_bytes(4, "big") for c in self.csrcs)
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXTENSION_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if padding:
            parts.append(bytes(padding - 1) + bytes((padding,)))
        return b"".join(parts)


def parse_packet(data: bytes, *, max_size: int = MAX_PACKET_SIZE) -> RtpPacket:
    """Read one RTP packet; raises :class:`RtpError` if it is not one.

    Checks what RFC 3550 section 5.1 fixes: version 2, a CSRC list and a
    header extension (section 5.3.1) that fit, and a padding count that is
    at least one and no longer than what follows the header.
    """
    size = len(data)
    if size > max_size:
        raise RtpError(f"packet of {size} bytes exceeds the {max_size}-byte limit")
    if size < HEADER_SIZE:
        raise RtpError(f"packet of {size} bytes is shorter than the RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != VERSION:
        raise RtpError(f"RTP version {first >> 6}, expected {VERSION}")
    offset = HEADER_SIZE
    csrc_count = first & 0x0F
    end = size
    if first & 0x20:
        padding = data[-1]
        if padding == 0:
            raise RtpError("padding bit set but the padding count is zero")
        end -= padding
        if end < HEADER_SIZE:
            raise RtpError(f"padding of {padding} octets runs into the header")
    if offset + 4 * csrc_count > end:
        raise RtpError("CSRC list runs past the end of the packet")
    csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset)
    offset += 4 * csrc_count
    extension = None
    if first & 0x10:
        if offset + 4 > end:
            raise RtpError("header extension runs past the end of the packet")
        profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
        offset += 4
        if offset + 4 * words > end:
            raise RtpError("header extension runs past the end of the packet")
        extension = RtpExtension(profile, bytes(data[offset : offset + 4 * words]))
        offset += 4 * words
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
        csrcs=csrcs,
        extension=extension,
    )


class RtpSender:
    """One outgoing stream: SSRC, next sequence number and the media clock.

    RFC 3550 section 5.1: the SSRC and the initial sequence number and
    timestamp are random (here from :mod:`secrets`), so a stream cannot be
    guessed or mistaken for an earlier one. ``timestamp`` is the media time of
    the next frame; it moves by the samples each frame holds, and also while
    nothing is sent (:meth:`skip`).

    The caller sends each packet it gets back, in order, on its 20 ms clock.
    """

    def __init__(
        self,
        payload_type: int,
        *,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        self.payload_type = payload_type
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.sequence = secrets.randbits(16) if sequence is None else sequence
        self.timestamp = secrets.randbits(32) if timestamp is None else timestamp
        # The first packet of a stream opens a talkspurt.
        self._talkspurt_start = True

    def frame(self, payload: bytes, samples: int) -> RtpPacket:
        """The packet for one frame of ``samples`` samples, then the clock moves on.

        The first packet after a silence carries the marker bit (RFC 3551
        section 4.1: the first packet of a talkspurt).
        """
        packet = self.emit(payload, timestamp=self.timestamp, marker=self._talkspurt_start)
        self._talkspurt_start = False
        self.skip(samples, talkspurt_ends=False)
        return packet

    def skip(self, samples: int, *, talkspurt_ends: bool = True) -> None:
        """Let ``samples`` of media time pass; by default the next frame starts a talkspurt."""
        if samples < 0:
            raise ValueError("media time does not run backwards")
        self.timestamp = (self.timestamp + samples) % TIMESTAMP_MOD
        if talkspurt_ends:
            self._talkspurt_start = True

    def emit(
        self,
        payload: bytes,
        *,
        timestamp: int,
        marker: bool = False,
        payload_type: int | None = None,
    ) -> RtpPacket:
        """A packet with the next sequence number and the given timestamp; the clock stays.

        For payloads with their own timing, such as telephone events, which
        keep one timestamp across many packets (RFC 4733 section 2.5.1.2).
        """
        packet = RtpPacket(
            payload_type=self.payload_type if payload_type is None else payload_type,
            sequence=self.sequence,
            timestamp=timestamp % TIMESTAMP_MOD,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )
        self.sequence = (self.sequence + 1) % SEQUENCE_MOD
        return packet


@dataclass(frozen=True, slots=True)
class ReceptionReport:
    """What an RTCP reception report block says about one source (RFC 3550 section 6.4.1)."""

    ssrc: int
    extended_highest_sequence: int
    expected: int
    received: int
    #: Cumulative loss (expected - received). Duplicates caught in the
    #: reordering window are not counted as received, so they cannot hide a
    #: loss; older ones can, which is why RFC 3550 lets this go negative.
    lost: int
    #: Loss since the previous report, as a fixed-point fraction of 256 (A.3).
    fraction_lost: int
    #: Interarrival jitter in timestamp units (A.8).
    jitter: float
    duplicates: int
    reordered: int


class RtpReceiverStats:
    """Sequence and timing statistics for one source (RFC 3550 Appendix A.1, A.3, A.8).

    Feed every packet of the stream with its arrival time in seconds to
    :meth:`update`; call :meth:`report` when a report is due. A source is
    valid once ``min_sequential`` packets arrive in sequence; a jump of more
    than ``max_dropout`` is taken as a restart only when the next packet
    follows it. Packets from another SSRC are refused.
    """

    def __init__(
        self,
        clock_rate: int,
        *,
        max_dropout: int = 3000,
        max_misorder: int = 100,
        min_sequential: int = 2,
    ) -> None:
        self.clock_rate = clock_rate
        self.max_dropout = max_dropout
        self.max_misorder = max_misorder
        self.min_sequential = min_sequential
        self.ssrc: int | None = None
        self.base_sequence = 0
        self.max_sequence = 0
        self.cycles = 0
        self.received = 0
        self.duplicates = 0
        self.reordered = 0
        self.jitter = 0.0
        self._probation = min_sequential
        self._bad_sequence = SEQUENCE_MOD + 1
        self._expected_prior = 0
        self._received_prior = 0
        self._transit: float | None = None
        # Bit i set: extended sequence number (highest - i) has arrived.
        self._seen = 0

    @property
    def extended_highest(self) -> int:
        return self.cycles + self.max_sequence

    @property
    def expected(self) -> int:
        return self.extended_highest - self.base_sequence + 1 if self.received else 0

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def update(self, packet: RtpPacket, arrival: float) -> bool:
        """Account for one packet; ``False`` if it does not count (probation, restart, SSRC)."""
        if self.ssrc is None:
            self.ssrc = packet.ssrc
            self.max_sequence = (packet.sequence - 1) % SEQUENCE_MOD
        elif packet.ssrc != self.ssrc:
            return False
        sequence = packet.sequence
        delta = (sequence - self.max_sequence) % SEQUENCE_MOD
        if self._probation:
            # A.1: a source is valid only after min_sequential packets in order.
            if delta == 1:
                self._probation -= 1
                self.max_sequence = sequence
                if self._probation == 0:
                    self._restart(sequence)
                    self._account_timing(packet, arrival)
                    return True
            else:
                self._probation = self.min_sequential - 1
                self.max_sequence = sequence
            return False
        if 0 < delta < self.max_dropout:
            if sequence < self.max_sequence:
                self.cycles += SEQUENCE_MOD
            self.max_sequence = sequence
            self._seen = ((self._seen << delta) | 1) & self._window_mask
        elif delta == 0 or delta > SEQUENCE_MOD - self.max_misorder:
            # Behind (or at) the highest: a duplicate or a packet out of order.
            behind = (SEQUENCE_MOD - delta) % SEQUENCE_MOD
            if behind < self.max_misorder and self._seen >> behind & 1:
                self.duplicates += 1
                return False
            self.reordered += 1
            self._seen |= 1 << behind
        else:
            # A very large jump: a restart if the next packet follows it (A.1).
            if sequence == self._bad_sequence:
                self._restart(sequence)
                self._account_timing(packet, arrival)
                return True
            self._bad_sequence = (sequence + 1) % SEQUENCE_MOD
            return False
        self.received += 1
        self._account_timing(packet, arrival)
        return True

    def report(self) -> ReceptionReport:
        """The report block now; starts the next interval of ``fraction_lost`` (A.3)."""
        expected = self.expected
        interval_expected = expected - self._expected_prior
        interval_lost = interval_expected - (self.received - self._received_prior)
        self._expected_prior = expected
        self._received_prior = self.received
        fraction = 0
        if interval_expected > 0 and interval_lost > 0:
            fraction = min((interval_lost << 8) // interval_expected, 255)
        return ReceptionReport(
            ssrc=self.ssrc or 0,
            extended_highest_sequence=self.extended_highest,
            expected=expected,
            received=self.received,
            lost=self.lost,
            fraction_lost=fraction,
            jitter=self.jitter,
            duplicates=self.duplicates,
            reordered=self.reordered,
        )

    @property
    def _window_mask(self) -> int:
        return (1 << self.max_misorder) - 1

    def _restart(self, sequence: int) -> None:
        # A.1 init_seq(): the counts start over from this packet.
        self.base_sequence = sequence
        self.max_sequence = sequence
        self._bad_sequence = SEQUENCE_MOD + 1
        self.cycles = 0
        self.received = 1
        self._expected_prior = 0
        self._received_prior = 0
        self._seen = 1

    def _account_timing(self, packet: RtpPacket, arrival: float) -> None:
        # A.8: J += (|D| - J) / 16, D being the change in transit time,
        # all in timestamp units; the difference is taken modulo 2**32 so a
        # timestamp wrap is not mistaken for a jump.
        transit = arrival * self.clock_rate - packet.timestamp
        if self._transit is not None:
            change = (transit - self._transit + TIMESTAMP_MOD / 2) % TIMESTAMP_MOD
            self.jitter += (abs(change - TIMESTAMP_MOD / 2) - self.jitter) / 16
        self._transit = transit
