"""The one 20 ms clock for all audio the server generates (prompts, hold music, mixes).

Every player and mixer of the process subscribes to one :class:`MediaClock`;
it keeps a single timer, so a thousand calls cost one wake-up every 20 ms,
not a thousand. Tick ``n`` is due at ``origin + n * period``: each timer is
set with ``loop.call_at`` on that absolute deadline, so lateness in one tick
does not push the next ones back and the clock does not drift (as a loop of
``sleep(0.02)`` would, by its overhead every round).

A tick that runs late is still run; the next one, if already due, follows
at once. When the loop has stalled for more than ``max_behind`` ticks (a
long garbage collection, a blocking call), the missed ticks are skipped and
counted instead: sending them all in one burst would only overflow the
peers' jitter buffers. The port sending the audio then moves its
timestamps on by the pause, so the peer's playout stays in step.

The clock measures how late each tick runs (``max_lateness`` and a p99 from
a histogram with 0.1 ms bins), which the benchmarks report.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: One frame of generated audio: 20 ms, 160 samples at 8 kHz.
FRAME_SECONDS = 0.020
#: Ticks the clock may be behind and still run each of them.
DEFAULT_MAX_BEHIND = 3
#: Lateness histogram: bin width and bin count (late ticks past the last
#: bin land in it).
LATENESS_BIN = 0.0001
LATENESS_BINS = 1000

TickCallback = Callable[[int], None]


class MediaClock:
    """Calls each subscriber once a tick with the tick number, while it has subscribers.

    :meth:`subscribe` starts the clock (the first tick is one period later)
    and the last :meth:`unsubscribe` stops it; tick numbers keep counting up
    across stops. Subscribers run in the event loop, in the order they
    joined, and must return quickly: every call's audio waits on them. One
    that raises is logged and stays subscribed.
    """

    def __init__(
        self, *, period: float = FRAME_SECONDS, max_behind: int = DEFAULT_MAX_BEHIND
    ) -> None:
        if period <= 0 or max_behind < 0:
            raise ValueError("the period must be positive and max_behind not negative")
        self.period = period
        self.max_behind = max_behind
        #: Number of the tick that ran last (``-1`` before the first).
        self.tick = -1
        #: Ticks run and ticks skipped after stalls, since the clock was made.
        self.ticks = 0
        self.skipped = 0
        self.max_lateness = 0.0
        self._histogram = [0] * (LATENESS_BINS + 1)
        self._subscribers: dict[TickCallback, None] = {}
        self._origin = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def deadline(self, tick: int) -> float:
        """When tick number ``tick`` is due, in ``loop.time()`` seconds (for the current run)."""
        return self._origin + tick * self.period

    def subscribe(self, callback: TickCallback) -> None:
        """Call ``callback(tick)`` every tick from the next one on; starts the clock if stopped."""
        self._subscribers[callback] = None
        if self._handle is None:
            loop = self._loop = asyncio.get_running_loop()
            upcoming = self.tick + 1
            self._origin = loop.time() + self.period - upcoming * self.period
            self._handle = loop.call_at(self.deadline(upcoming), self._fire)

    def unsubscribe(self, callback: TickCallback) -> None:
        """Stop calling ``callback`` (harmless if not subscribed); the last one stops the clock."""
        self._subscribers.pop(callback, None)
        if not self._subscribers:
            self._stop()

    def close(self) -> None:
        """Drop every subscriber and stop."""
        self._subscribers.clear()
        self._stop()

    def _stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        current = self._handle
        tick = self.tick + 1
        lateness = loop.time() - self.deadline(tick)
        self._measure(lateness)
        behind = int(lateness / self.period)
        if behind > self.max_behind:
            tick += behind
            self.skipped += behind
        self.tick = tick
        self.ticks += 1
        for callback in tuple(self._subscribers):
            if callback not in self._subscribers:
                continue  # left during this tick
            try:
                callback(tick)
            except Exception:
                logger.exception("media clock subscriber %r failed", callback)
        # A subscriber may have stopped the clock, or stopped and restarted
        # it with a timer of its own; then this one must not go on.
        if self._subscribers and self._handle is current:
            self._handle = loop.call_at(self.deadline(tick + 1), self._fire)

    # -- lateness ----------------------------------------------------------

    def _measure(self, lateness: float) -> None:
        lateness = max(lateness, 0.0)
        self.max_lateness = max(self.max_lateness, lateness)
        self._histogram[min(int(lateness / LATENESS_BIN), LATENESS_BINS)] += 1

    def lateness_percentile(self, fraction: float) -> float:
        """The lateness ``fraction`` of ticks stayed within (seconds, to the bin's upper edge)."""
        if not 0 < fraction <= 1:
            raise ValueError("the fraction is in (0, 1]")
        total = sum(self._histogram)
        if not total:
            return 0.0
        wanted = fraction * total
        seen = 0
        for index, count in enumerate(self._histogram):
            seen += count
            if seen >= wanted:
                return min((index + 1) * LATENESS_BIN, self.max_lateness)
        return self.max_lateness

    @property
    def p99_lateness(self) -> float:
        return self.lateness_percentile(0.99)

    def reset_measurements(self) -> None:
        """Start the lateness figures over (say, after a benchmark's warm-up)."""
        self.max_lateness = 0.0
        self._histogram = [0] * (LATENESS_BINS + 1)
