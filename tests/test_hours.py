from __future__ import annotations

import datetime as dt

import pytest

from callcenter.hours import BusinessCalendar

T = dt.time
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
CAL = BusinessCalendar.build(
    "Asia/Shanghai",
    [(d, T(9), T(12)) for d in range(5)] + [(d, T(13), T(18)) for d in range(5)],
    holidays=[dt.date(2027, 2, 8)],
)


def at(day: int, hour: int, minute: int = 0, month: int = 2) -> dt.datetime:
    return dt.datetime(2027, month, day, hour, minute, tzinfo=SHANGHAI)


def test_is_open_in_local_time() -> None:
    assert CAL.is_open(at(9, 9))  # Tuesday 09:00
    assert not CAL.is_open(at(9, 12, 30))  # lunch
    assert not CAL.is_open(at(9, 18))  # closing time is closed
    assert not CAL.is_open(at(8, 10))  # holiday (Monday)
    assert not CAL.is_open(at(13, 10))  # Saturday
    assert CAL.is_open(at(9, 9).astimezone(dt.UTC))  # same instant given in UTC


def test_next_open() -> None:
    assert CAL.next_open(at(9, 10)) == at(9, 10)
    assert CAL.next_open(at(9, 12, 30)) == at(9, 13)
    assert CAL.next_open(at(12, 18, 5)) == at(15, 9)  # Friday evening -> Monday
    assert CAL.next_open(at(7, 20)) == at(9, 9)  # Sunday evening, Monday a holiday
    assert BusinessCalendar.build("UTC", []).next_open(at(9, 9)) is None


def test_add_working_time_skips_nights_lunch_and_holidays() -> None:
    assert CAL.add_working_time(at(9, 11), dt.timedelta(hours=2)) == at(9, 14)
    assert CAL.add_working_time(at(12, 17), dt.timedelta(hours=2)) == at(15, 10)
    assert CAL.add_working_time(at(5, 17), dt.timedelta(hours=8)) == at(9, 17)
    assert CAL.add_working_time(at(9, 20), dt.timedelta(0)) == at(10, 9)


def test_bad_spans() -> None:
    with pytest.raises(ValueError, match="bad span"):
        BusinessCalendar.build("UTC", [(0, T(18), T(9))])
    with pytest.raises(ValueError, match="overlapping"):
        BusinessCalendar.build("UTC", [(0, T(9), T(12)), (0, T(11), T(13))])
