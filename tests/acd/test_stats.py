"""Queue figures computed from the router's own queue-log lines."""

from __future__ import annotations

import datetime as dt

import pytest

from callcenter.acd import events as ev
from callcenter.acd.rules import QueueRules
from callcenter.acd.stats import IntervalTotals, QueueStats, interval_start
from tests.acd.test_router import T0, Desk


async def test_service_level_asa_aht_and_abandons() -> None:
    desk = Desk(QueueRules("q", wrapup_seconds=10))
    stats = QueueStats({"q": 20}, window_seconds=3600, short_abandon_seconds=5)
    await desk.agent("a")
    await desk.send(ev.AgentPresenceChanged("a", "away", "meeting"))
    await desk.call("fast")
    desk.now += dt.timedelta(seconds=2)
    await desk.call("instant-hangup")
    await desk.call("slow")
    await desk.call("gave-up")
    desk.now += dt.timedelta(seconds=1)
    await desk.send(ev.ContactLeft("instant-hangup"))  # 1 s: a short abandon
    desk.now += dt.timedelta(seconds=7)
    await desk.send(ev.ContactLeft("gave-up"))  # 8 s, within the 20 s threshold
    await desk.send(ev.AgentPresenceChanged("a", "available"))  # t = 10 s
    await desk.send(ev.OfferAccepted("fast", "a"))  # waited 10 s
    desk.now += dt.timedelta(seconds=60)
    await desk.send(ev.ContactLeft("fast"))  # talk 60 s
    await desk.wait(10)  # wrap-up 10 s: handle 70 s; then slow is offered
    desk.now += dt.timedelta(seconds=5)
    await desk.send(ev.OfferAccepted("slow", "a"))  # waited 83 s
    for line in desk.log:
        if isinstance(line, ev.QueueLog):
            stats.feed(line)
    figures = stats.figures("q", desk.now)
    assert (figures.answered, figures.abandoned, figures.waiting) == (2, 1, 0)
    assert figures.service_level == pytest.approx(1 / 2)
    assert figures.service_level_abandons == pytest.approx(2 / 3)
    assert figures.asa_seconds == pytest.approx((10 + 83) / 2)
    assert figures.aht_seconds == pytest.approx(70)
    assert figures.abandon_rate == pytest.approx(1 / 3)
    # An hour later the window has moved past all of it.
    later = stats.figures("q", desk.now + dt.timedelta(hours=2))
    assert later.answered == 0 and later.service_level is None


async def test_longest_wait_and_interval_totals() -> None:
    desk = Desk(QueueRules("q"))
    stats = QueueStats({"q": 20})
    totals = IntervalTotals({"q": 20})
    await desk.call("c1")
    desk.now += dt.timedelta(minutes=14, seconds=50)
    await desk.call("c2")
    for line in desk.log:
        if isinstance(line, ev.QueueLog):
            stats.feed(line)
            totals.feed(line)
    figures = stats.figures("q", desk.now + dt.timedelta(seconds=10))
    assert figures.waiting == 2
    assert figures.longest_wait_seconds == pytest.approx(900)
    assert totals.rows[("q", T0)].offered == 2
    assert interval_start(T0 + dt.timedelta(minutes=29)) == T0 + dt.timedelta(minutes=15)
