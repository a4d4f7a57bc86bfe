"""Queue statistics computed from the queue log (pure: times come with the lines).

The same :class:`~callcenter.acd.events.QueueLog` lines that go to the
database feed these figures, so live tiles and reports can never disagree.

Definitions (per queue, over a sliding window of ``window_seconds``):

- **service level** = answered within the threshold T / answered.
- **service level with abandons** = (answered within T + abandoned within T)
  / (answered + abandoned), the second variant Asterisk reports (SL2): a
  customer who gave up before T does not count against the queue.
- Abandons shorter than ``short_abandon_seconds`` (misdials, instant
  hang-ups) are left out of both.
- **ASA** = mean wait of the answered contacts.
- **AHT** = mean handle time (talk, which includes hold, plus wrap-up) of the
  contacts that ended in the window.
- **abandonment rate** = abandoned / (answered + abandoned).

:class:`IntervalTotals` sums the same lines per 15-minute interval for
reports.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field

from callcenter.acd.events import QueueLog


@dataclass(frozen=True, slots=True)
class QueueFigures:
    queue: str
    waiting: int
    longest_wait_seconds: float
    answered: int
    abandoned: int
    service_level: float | None
    service_level_abandons: float | None
    asa_seconds: float | None
    aht_seconds: float | None
    abandon_rate: float | None


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass
class _Open:
    queue: str
    enqueued: dt.datetime
    connected: dt.datetime | None = None
    wrapup: dt.datetime | None = None


@dataclass
class _Queue:
    #: (time, waited) of answered contacts in the window.
    answered: deque[tuple[dt.datetime, float]] = field(default_factory=deque)
    #: (time, waited) of abandons in the window (short ones already left out).
    abandoned: deque[tuple[dt.datetime, float]] = field(default_factory=deque)
    #: (time, handle seconds) of contacts that ended in the window.
    handled: deque[tuple[dt.datetime, float]] = field(default_factory=deque)
    waiting: dict[str, dt.datetime] = field(default_factory=dict)


class QueueStats:
    def __init__(
        self,
        thresholds: dict[str, float],
        window_seconds: float = 3600.0,
        short_abandon_seconds: float = 5.0,
        default_threshold: float = 20.0,
    ) -> None:
        self.thresholds = dict(thresholds)
        self.default_threshold = default_threshold
        self.window = dt.timedelta(seconds=window_seconds)
        self.short_abandon = short_abandon_seconds
        self._queues: dict[str, _Queue] = {}
        self._open: dict[str, _Open] = {}

    def _queue(self, name: str) -> _Queue:
        return self._queues.setdefault(name, _Queue())

    def feed(self, line: QueueLog) -> None:
        """Take one queue-log line into account."""
        if not line.contact_id:
            return
        match line.event:
            case "enqueued":
                self._open[line.contact_id] = _Open(line.queue, line.at)
                self._queue(line.queue).waiting[line.contact_id] = line.at
            case "overflowed" | "moved":
                self._queue(line.queue).waiting.pop(line.contact_id, None)
                target = str(line.data.get("target", ""))
                contact = self._open.get(line.contact_id)
                if target and contact is not None:
                    contact.queue = target
                    self._queue(target).waiting[line.contact_id] = contact.enqueued
                else:
                    self._open.pop(line.contact_id, None)
            case "connected":
                queue = self._queue(line.queue)
                queue.waiting.pop(line.contact_id, None)
                waited = float(line.data.get("waited", 0.0))
                queue.answered.append((line.at, waited))
                contact = self._open.get(line.contact_id)
                if contact is not None:
                    contact.connected = line.at
            case "abandoned":
                queue = self._queue(line.queue)
                queue.waiting.pop(line.contact_id, None)
                self._open.pop(line.contact_id, None)
                waited = float(line.data.get("waited", 0.0))
                if waited >= self.short_abandon:
                    queue.abandoned.append((line.at, waited))
            case "wrapup":
                contact = self._open.get(line.contact_id)
                if contact is not None:
                    contact.wrapup = line.at
            case "done":
                contact = self._open.pop(line.contact_id, None)
                if contact is not None and contact.connected is not None:
                    handle = (line.at - contact.connected).total_seconds()
                    self._queue(line.queue).handled.append((line.at, handle))

    def position(self, queue: str, contact_id: str) -> int:
        """1 + the contacts waiting longer in ``queue`` (0 if not waiting there).

        An approximation for announcements: the router serves by score, so a
        key customer who came later may still overtake.
        """
        waiting = self._queue(queue).waiting
        since = waiting.get(contact_id)
        if since is None:
            return 0
        return 1 + sum(1 for other in waiting.values() if other < since)

    def figures(self, queue: str, now: dt.datetime) -> QueueFigures:
        q = self._queue(queue)
        horizon = now - self.window
        for series in (q.answered, q.abandoned, q.handled):
            while series and series[0][0] < horizon:
                series.popleft()
        threshold = self.thresholds.get(queue, self.default_threshold)
        answered = len(q.answered)
        abandoned = len(q.abandoned)
        fast = sum(1 for _, waited in q.answered if waited <= threshold)
        fast_abandons = sum(1 for _, waited in q.abandoned if waited <= threshold)
        waits = [(now - since).total_seconds() for since in q.waiting.values()]
        return QueueFigures(
            queue=queue,
            waiting=len(q.waiting),
            longest_wait_seconds=max(waits, default=0.0),
            answered=answered,
            abandoned=abandoned,
            service_level=_ratio(fast, answered),
            service_level_abandons=_ratio(fast + fast_abandons, answered + abandoned),
            asa_seconds=_ratio(sum(w for _, w in q.answered), answered),
            aht_seconds=_ratio(sum(h for _, h in q.handled), len(q.handled)),
            abandon_rate=_ratio(abandoned, answered + abandoned),
        )


def interval_start(at: dt.datetime) -> dt.datetime:
    """The start of the 15-minute interval holding ``at``."""
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


@dataclass
class IntervalRow:
    queue: str
    start: dt.datetime
    offered: int = 0
    answered: int = 0
    answered_in_threshold: int = 0
    abandoned: int = 0
    wait_seconds: float = 0.0
    handle_seconds: float = 0.0
    handled: int = 0


class IntervalTotals:
    """Sums per queue and 15-minute interval, for reports."""

    def __init__(self, thresholds: dict[str, float], default_threshold: float = 20.0) -> None:
        self.thresholds = thresholds
        self.default_threshold = default_threshold
        self.rows: dict[tuple[str, dt.datetime], IntervalRow] = {}
        self._connected: dict[str, dt.datetime] = {}

    def _row(self, queue: str, at: dt.datetime) -> IntervalRow:
        key = (queue, interval_start(at))
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = IntervalRow(queue, key[1])
        return row

    def feed(self, line: QueueLog) -> None:
        if not line.contact_id:
            return
        if line.event == "enqueued":
            self._row(line.queue, line.at).offered += 1
        elif line.event == "connected":
            row = self._row(line.queue, line.at)
            waited = float(line.data.get("waited", 0.0))
            row.answered += 1
            row.wait_seconds += waited
            if waited <= self.thresholds.get(line.queue, self.default_threshold):
                row.answered_in_threshold += 1
            self._connected[line.contact_id] = line.at
        elif line.event == "abandoned":
            self._row(line.queue, line.at).abandoned += 1
        elif line.event == "done":
            start = self._connected.pop(line.contact_id, None)
            if start is not None:
                row = self._row(line.queue, line.at)
                row.handled += 1
                row.handle_seconds += (line.at - start).total_seconds()
