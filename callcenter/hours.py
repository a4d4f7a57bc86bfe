"""Business hours and holidays (pure: ``now`` is passed in).

Opening hours are given per weekday in the site's time zone; a holiday closes
the whole day. IVR branches ask :meth:`BusinessCalendar.is_open`, SLA clocks
that count only working time use :meth:`BusinessCalendar.add_working_time`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Longest search for the next opening (a calendar with no hours never opens).
_MAX_DAYS = 800


@dataclass(frozen=True)
class BusinessCalendar:
    time_zone: str
    #: weekday (0 = Monday) -> sorted, non-overlapping (opens, closes) spans.
    hours: dict[int, tuple[tuple[dt.time, dt.time], ...]] = field(default_factory=dict)
    holidays: frozenset[dt.date] = frozenset()

    @classmethod
    def build(
        cls,
        time_zone: str,
        spans: Iterable[tuple[int, dt.time, dt.time]],
        holidays: Iterable[dt.date] = (),
    ) -> BusinessCalendar:
        by_day: dict[int, list[tuple[dt.time, dt.time]]] = {}
        for weekday, opens, closes in spans:
            if not 0 <= weekday <= 6 or closes <= opens:
                raise ValueError(f"bad span {weekday} {opens}-{closes}")
            by_day.setdefault(weekday, []).append((opens, closes))
        hours = {}
        for weekday, day_spans in by_day.items():
            day_spans.sort()
            for (_, end), (start, _) in itertools.pairwise(day_spans):
                if start < end:
                    raise ValueError(f"overlapping spans on weekday {weekday}")
            hours[weekday] = tuple(day_spans)
        return cls(time_zone, hours, frozenset(holidays))

    @property
    def _zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def _spans_on(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        if day in self.holidays:
            return []
        zone = self._zone
        return [
            (dt.datetime.combine(day, opens, zone), dt.datetime.combine(day, closes, zone))
            for opens, closes in self.hours.get(day.weekday(), ())
        ]

    def is_open(self, now: dt.datetime) -> bool:
        local = now.astimezone(self._zone)
        return any(start <= local < end for start, end in self._spans_on(local.date()))

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """``now`` if open, else the start of the next opening; ``None`` if it never opens."""
        local = now.astimezone(self._zone)
        for offset in range(_MAX_DAYS):
            for start, end in self._spans_on(local.date() + dt.timedelta(days=offset)):
                if local < end:
                    return max(start, local).astimezone(dt.UTC)
        return None

    def add_working_time(self, start: dt.datetime, amount: dt.timedelta) -> dt.datetime | None:
        """The moment ``amount`` of open time after ``start``; ``None`` if never reached."""
        left = amount
        local = start.astimezone(self._zone)
        for offset in range(_MAX_DAYS):
            for span_start, span_end in self._spans_on(local.date() + dt.timedelta(days=offset)):
                begin = max(span_start, local)
                if begin >= span_end:
                    continue
                if begin + left <= span_end:
                    return (begin + left).astimezone(dt.UTC)
                left -= span_end - begin
        return None
