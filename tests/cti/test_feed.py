from __future__ import annotations

import datetime as dt

import pytest

from callcenter.cti.feed import Feed, Replay, Resync, visible_to

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def test_reconnecting_console_gets_exactly_what_it_missed() -> None:
    feed = Feed(replay_window=100)
    agent = visible_to("1001", frozenset({"agent"}))
    feed.publish("queue", T0, {"waiting": 1})
    feed.publish("offer", T0, {"contact": "c1"}, frozenset({"1001"}))
    seen = feed.seq
    feed.publish("offer", T0, {"contact": "c2"}, frozenset({"1002"}))
    feed.publish("message", T0, {"text": "hello"}, frozenset({"1001"}))
    feed.publish("wallboard", T0, {}, frozenset({"supervisor"}))
    replay = feed.since(feed.epoch, seen, agent)
    assert isinstance(replay, Replay)
    assert [(e.seq, e.kind) for e in replay.events] == [(4, "message")]
    assert replay.events[0].wire(feed.epoch)["seq"] == 4
    boss = feed.since(feed.epoch, seen, visible_to("9", frozenset({"supervisor"})))
    assert isinstance(boss, Replay) and [e.kind for e in boss.events] == ["wallboard"]
    assert feed.since(feed.epoch, feed.seq, agent) == Replay(())


def test_restarted_feed_or_old_gap_asks_for_a_snapshot() -> None:
    feed = Feed(replay_window=3)
    everyone = visible_to("1", frozenset())
    for n in range(5):
        feed.publish("tick", T0, {"n": n})
    assert feed.since("another-epoch", 5, everyone) == Resync("epoch")
    assert feed.since(feed.epoch, 99, everyone) == Resync("epoch")
    assert feed.since(feed.epoch, 1, everyone) == Resync("gap")
    replay = feed.since(feed.epoch, 2, everyone)
    assert isinstance(replay, Replay) and [e.seq for e in replay.events] == [3, 4, 5]
    assert Feed().epoch != Feed().epoch
    with pytest.raises(ValueError):
        Feed(replay_window=0)
