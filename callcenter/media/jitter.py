"""A jitter buffer: packets in as they arrive, one frame out per 20 ms tick.

Bridged calls relay packets as they come; only audio the server must
re-clock (mixing a conference, whisper or barge) goes through this buffer.
It holds a few frames, plays them in sequence order on the caller's clock,
and answers every tick: with the next frame, or with a :class:`Gap` to be
concealed (by silence) when that frame is missing. Packets are ordered by
RTP sequence number, one frame each, across the 16-bit wrap.

Playout starts when ``depth`` frames are buffered, or when the first has
waited that long; when the buffer runs dry it starts over the same way, which
is how a new talkspurt gets its cushion back. With ``adaptive=True`` the
depth follows the interarrival jitter (RFC 3550 Appendix A.8) between
``min_depth`` and ``max_depth``. The buffer never holds more than
``capacity`` packets, and lets its latency grow to no more than twice the
depth before it drops the oldest frames to catch up. A sequence number more
than ``max_dropout`` ahead or ``max_misorder`` behind is a stray, or, when
the next packet follows it, a sender that restarted its numbering (the rule
of RFC 3550 Appendix A.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from callcenter.media.rtp import SEQUENCE_MOD, TIMESTAMP_MOD


@dataclass(frozen=True, slots=True)
class Frame:
    """The next frame to play."""

    sequence: int
    timestamp: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Gap:
    """Nothing to play this tick: the frame ``sequence`` is missing, or the
    buffer is (re)filling (``sequence`` is ``None``). Play silence."""

    sequence: int | None = None


class JitterBuffer:
    """Reorders one stream's packets and releases one frame a tick.

    Call :meth:`push` for every packet as it arrives and :meth:`pop` once per
    frame interval; times are seconds on one monotonic clock.
    """

    def __init__(
        self,
        *,
        frame_ms: int = 20,
        clock_rate: int = 8000,
        depth: int = 3,
        adaptive: bool = False,
        min_depth: int = 1,
        max_depth: int = 10,
        jitter_factor: float = 4.0,
        capacity: int = 64,
        max_dropout: int = 3000,
        max_misorder: int = 100,
    ) -> None:
        if not 1 <= min_depth <= depth <= max_depth < capacity:
            raise ValueError("need 1 <= min_depth <= depth <= max_depth < capacity")
        self.frame_seconds = frame_ms / 1000
        self.clock_rate = clock_rate
        self.depth = depth
        self.adaptive = adaptive
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.jitter_factor = jitter_factor
        self.capacity = capacity
        self.max_dropout = max_dropout
        self.max_misorder = max_misorder
        #: Interarrival jitter in seconds (RFC 3550 A.8).
        self.jitter = 0.0
        self.late = 0
        self.duplicates = 0
        self.dropped = 0
        self.concealed = 0
        self._frames: dict[int, Frame] = {}
        self._highest: int | None = None  # extended sequence numbers from here on
        self._next: int | None = None  # None while (re)filling
        self._played: int | None = None
        self._filling_since: float | None = None
        self._transit: float | None = None
        self._restart_at: int | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, sequence: int, timestamp: int, payload: bytes, arrival: float) -> bool:
        """Buffer one packet; ``False`` if it is late or a duplicate and is dropped."""
        if not 0 <= sequence < SEQUENCE_MOD or not 0 <= timestamp < TIMESTAMP_MOD:
            return False
        extended = self._extend(sequence)
        anchor = self._played if self._played is not None else self._highest
        if anchor is not None and not -self.max_misorder <= extended - anchor <= self.max_dropout:
            # A jump no reordering explains: believe it once the next packet follows.
            if sequence != self._restart_at:
                self._restart_at = (sequence + 1) % SEQUENCE_MOD
                self.late += 1
                return False
            self._restart()
            extended = sequence
        elif self._played is not None and extended <= self._played:
            self.late += 1
            return False
        if extended in self._frames:
            self.duplicates += 1
            return False
        self._frames[extended] = Frame(sequence, timestamp, payload)
        if self._highest is None or extended > self._highest:
            self._highest = extended
        if self._filling_since is None:
            self._filling_since = arrival
        while len(self._frames) > self.capacity:
            self._drop_oldest()
        self._measure_jitter(timestamp, arrival)
        return True

    def pop(self, now: float) -> Frame | Gap:
        """The frame for this tick, or a :class:`Gap` to conceal."""
        if self._next is None and not self._start(now):
            return Gap()
        assert self._next is not None
        sequence = self._next
        self._next += 1
        self._played = sequence
        frame = self._frames.pop(sequence, None)
        if not self._frames:
            # Ran dry: refill before playing again (a talkspurt ended, or the
            # network stalled).
            self._next = None
            self._filling_since = None
        elif len(self._frames) > 2 * self.target:
            # Latency has built up (a burst, or the sender's clock is fast).
            self._drop_oldest()
        if frame is None:
            self.concealed += 1
            return Gap(sequence % SEQUENCE_MOD)
        return frame

    @property
    def target(self) -> int:
        """Frames to hold before playing: ``depth``, or what the jitter calls for."""
        if not self.adaptive:
            return self.depth
        wanted = math.ceil(self.jitter_factor * self.jitter / self.frame_seconds)
        return max(self.min_depth, min(self.max_depth, wanted))

    def _start(self, now: float) -> bool:
        if not self._frames or self._filling_since is None:
            return False
        target = self.target
        waited = now - self._filling_since
        if len(self._frames) < target and waited < target * self.frame_seconds:
            return False
        self._next = min(self._frames)
        return True

    def _extend(self, sequence: int) -> int:
        if self._highest is None:
            return sequence
        delta = (sequence - self._highest + SEQUENCE_MOD // 2) % SEQUENCE_MOD - SEQUENCE_MOD // 2
        return self._highest + delta

    def _drop_oldest(self) -> None:
        oldest = min(self._frames)
        del self._frames[oldest]
        self.dropped += 1
        self._played = oldest if self._played is None else max(self._played, oldest)
        if self._next is not None and self._next <= oldest:
            self._next = oldest + 1

    def _restart(self) -> None:
        self._frames.clear()
        self._highest = self._next = self._played = self._filling_since = None
        self._transit = None
        self._restart_at = None

    def _measure_jitter(self, timestamp: int, arrival: float) -> None:
        # RFC 3550 A.8, in seconds; the modulo keeps a timestamp wrap from
        # looking like a jump.
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            change = (transit - self._transit + TIMESTAMP_MOD / 2) % TIMESTAMP_MOD
            change = abs(change - TIMESTAMP_MOD / 2) / self.clock_rate
            self.jitter += (change - self.jitter) / 16
        self._transit = transit
