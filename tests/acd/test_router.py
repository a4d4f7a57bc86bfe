"""The router without sockets: every rule, strategy and race, with the in-process store."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from callcenter.acd import events as ev
from callcenter.acd.dispatch import run, run_now
from callcenter.acd.lifecycle import ContactStatus, IllegalTransition
from callcenter.acd.router import QueueConfigured, Router
from callcenter.acd.rules import QueueRules, RouterSettings, Widening
from callcenter.state.memory import MemoryLiveState

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


class Desk:
    """A router, its store and a clock, driven like the adapter drives them."""

    def __init__(self, *queues: QueueRules, settings: RouterSettings | None = None) -> None:
        self.router = Router(queues, settings, random.Random(7))
        self.store = MemoryLiveState()
        self.now = T0
        self.log: list[ev.Effect] = []

    async def send(self, event: Any) -> list[ev.Effect]:
        effects = await run(self.router, self.store, event, self.now)
        self.log.extend(effects)
        return effects

    async def wait(self, seconds: float) -> list[ev.Effect]:
        """Let time pass, firing every deadline on the way, as the adapter's timer does."""
        end = self.now + dt.timedelta(seconds=seconds)
        out: list[ev.Effect] = []
        while (deadline := self.router.next_deadline()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            out += await self.send(ev.Tick())
        self.now = end
        return out

    async def agent(
        self, name: str, skills: dict[str, int] | None = None, chats: int = 0, order: int = 0
    ) -> list[ev.Effect]:
        capacity = {"voice": 1, **({"chat": chats} if chats else {})}
        await self.send(ev.AgentJoined(name, skills or {}, capacity, order))
        return await self.send(ev.AgentPresenceChanged(name, "available"))

    async def call(self, cid: str, queue: str = "q", **kw: Any) -> list[ev.Effect]:
        return await self.send(ev.ContactArrived(cid, queue, kw.pop("channel", "voice"), **kw))


def offers(effects: list[ev.Effect]) -> list[tuple[str, str]]:
    return [(e.contact_id, e.agent_id) for e in effects if isinstance(e, ev.Offer)]


def withdrawn(effects: list[ev.Effect]) -> list[tuple[str, str, str]]:
    return [(e.contact_id, e.agent_id, e.reason) for e in effects if isinstance(e, ev.Withdraw)]


async def test_longest_idle_agent_gets_the_call() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a")
    desk.now += dt.timedelta(seconds=5)
    await desk.agent("b")
    assert offers(await desk.call("c1")) == [("c1", "a")]
    assert offers(await desk.call("c2")) == [("c2", "b")]
    assert await desk.store.load("a") == {"voice": 1}


async def test_skills_and_proficiency_choose_the_agent() -> None:
    desk = Desk(QueueRules("billing", skills={"billing": 3}))
    await desk.agent("novice", {"billing": 2})
    await desk.agent("none", {})
    assert offers(await desk.call("c1", "billing")) == []
    await desk.agent("expert", {"billing": 4})
    assert offers(desk.log) == [("c1", "expert")]
    # Extra skills a contact needs (a language) narrow the pool further.
    await desk.agent("zh", {"billing": 5, "mandarin": 3})
    effects = await desk.call("c2", "billing", skills={"mandarin": 2})
    assert offers(effects) == [("c2", "zh")]


async def test_key_customer_overtakes_but_nobody_starves() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a")
    await desk.send(ev.AgentPresenceChanged("a", "away", "lunch"))
    await desk.call("normal", tier="normal")
    desk.now += dt.timedelta(seconds=10)
    await desk.call("key", tier="key")
    await desk.call("small-old", tier="small", waiting_since=T0 - dt.timedelta(seconds=400))
    effects = await desk.send(ev.AgentPresenceChanged("a", "available"))
    # small-old has waited 410 s (score 410); key 0 s + 150; normal 10 s + 30.
    assert offers(effects) == [("small-old", "a")]
    await desk.send(ev.OfferAccepted("small-old", "a"))
    await desk.send(ev.ContactLeft("small-old"))
    effects = await desk.wait(30)  # wrap-up ends, the agent takes the next
    assert offers(effects) == [("key", "a")]


async def test_agent_serving_two_queues_takes_the_highest_score_across_them() -> None:
    desk = Desk(QueueRules("sales"), QueueRules("vip", priority=300))
    await desk.call("s1", "sales")
    desk.now += dt.timedelta(seconds=60)
    await desk.call("v1", "vip")
    assert offers(await desk.agent("a")) == [("v1", "a")]


async def test_chat_capacity_and_exclusive_voice() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a", chats=2)
    assert offers(await desk.call("chat1", channel="chat")) == [("chat1", "a")]
    assert offers(await desk.call("chat2", channel="chat")) == [("chat2", "a")]
    assert offers(await desk.call("chat3", channel="chat")) == []
    assert offers(await desk.call("v1")) == []  # a call never rides beside chats
    await desk.send(ev.OfferAccepted("chat1", "a"))
    await desk.send(ev.OfferAccepted("chat2", "a"))
    await desk.send(ev.ContactLeft("chat1"))
    effects = await desk.wait(31)
    # chat2 still runs, so the free slot takes chat3 and the call keeps waiting.
    assert offers(effects) == [("chat3", "a")]
    assert await desk.store.load("a") == {"chat": 2}
    await desk.send(ev.OfferAccepted("chat3", "a"))
    for chat in ("chat2", "chat3"):
        await desk.send(ev.ContactLeft(chat))
        await desk.send(ev.WrapupDone(chat, "a"))
    assert offers(desk.log)[-1] == ("v1", "a")
    assert await desk.store.load("a") == {"voice": 1}


async def test_unanswered_offer_goes_back_to_the_head_and_the_agent_goes_away() -> None:
    desk = Desk(QueueRules("q", offer_timeout_seconds=15))
    await desk.agent("a")
    desk.now += dt.timedelta(seconds=1)
    await desk.agent("b")
    await desk.send(ev.AgentPresenceChanged("b", "away", "break"))
    await desk.call("c1")
    desk.now += dt.timedelta(seconds=1)
    await desk.call("c2")
    effects = await desk.wait(15)
    assert withdrawn(effects) == [("c1", "a", "timeout")]
    assert any(isinstance(e, ev.PresenceSet) and e.reason == "missed" for e in effects)
    assert desk.router.agent_presence("a") == ("away", "missed")
    # b comes back: c1 is still first in line, ahead of c2.
    assert offers(await desk.send(ev.AgentPresenceChanged("b", "available"))) == [("c1", "b")]
    assert await desk.store.load("a") == {}


async def test_rejected_offer_goes_to_the_next_agent() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a")
    desk.now += dt.timedelta(seconds=1)
    await desk.agent("b")
    await desk.call("c1")
    effects = await desk.send(ev.OfferRejected("c1", "a"))
    assert withdrawn(effects) == [("c1", "a", "rejected")]
    assert offers(effects) == [("c1", "b")]
    # a stays available and is not offered c1 again while b holds it.
    assert desk.router.agent_presence("a") == ("available", "")
    effects = await desk.send(ev.OfferRejected("c1", "b"))
    # Nobody else: the agents who refused get it again, longest idle first.
    assert offers(effects) == [("c1", "a")]


async def test_wrapup_holds_the_agent_until_done() -> None:
    desk = Desk(QueueRules("q", wrapup_seconds=20))
    await desk.agent("a")
    await desk.call("c1")
    await desk.send(ev.OfferAccepted("c1", "a"))
    effects = await desk.send(ev.ContactLeft("c1"))
    assert [type(e) for e in effects if not isinstance(e, ev.QueueLog)] == [ev.StartWrapup]
    assert offers(await desk.call("c2")) == []
    effects = await desk.send(ev.WrapupDone("c1", "a"))
    assert offers(effects) == [("c2", "a")]
    assert [e.outcome for e in effects if isinstance(e, ev.ContactEnded)] == ["done"]
    await desk.send(ev.OfferAccepted("c2", "a"))
    await desk.send(ev.ContactLeft("c2"))
    effects = await desk.wait(20)  # the wrap-up deadline ends it too
    assert [e.outcome for e in effects if isinstance(e, ev.ContactEnded)] == ["done"]
    assert await desk.store.load("a") == {}


async def test_abandon_while_queued_or_ringing() -> None:
    desk = Desk(QueueRules("q"))
    await desk.call("c1")
    effects = await desk.send(ev.ContactLeft("c1"))
    assert [e.outcome for e in effects if isinstance(e, ev.ContactEnded)] == ["abandoned"]
    assert desk.router.waiting("q") == 0
    await desk.agent("a")
    await desk.call("c2")
    effects = await desk.send(ev.ContactLeft("c2"))
    assert withdrawn(effects) == [("c2", "a", "abandoned")]
    assert await desk.store.load("a") == {}
    late = await desk.send(ev.OfferAccepted("c2", "a"))
    assert withdrawn(late) == [("c2", "a", "expired")]


async def test_ring_all_first_accept_wins() -> None:
    desk = Desk(QueueRules("q", strategy="ring_all"))
    for name in ("a", "b", "c"):
        await desk.agent(name)
    effects = await desk.call("c1")
    assert sorted(offers(effects)) == [("c1", "a"), ("c1", "b"), ("c1", "c")]
    effects = await desk.send(ev.OfferAccepted("c1", "b"))
    assert sorted(withdrawn(effects)) == [("c1", "a", "taken"), ("c1", "c", "taken")]
    assert [await desk.store.load(n) for n in ("a", "b", "c")] == [{}, {"voice": 1}, {}]
    assert withdrawn(await desk.send(ev.OfferAccepted("c1", "a"))) == [("c1", "a", "expired")]


async def test_limits_overflow_to_another_queue_keeping_the_place() -> None:
    desk = Desk(
        QueueRules("q", max_wait_seconds=60, overflow_queue="backup"),
        QueueRules("backup"),
        QueueRules("small", max_waiting=1),
    )
    await desk.call("c1")
    desk.now += dt.timedelta(seconds=30)
    await desk.call("b1", "backup")
    effects = await desk.wait(31)
    assert any(isinstance(e, ev.QueueLog) and e.event == "overflowed" for e in effects)
    # In backup, c1 (waiting 61 s) is ahead of b1 (31 s).
    assert offers(await desk.agent("a")) == [("c1", "a")]
    await desk.call("s1", "small")
    effects = await desk.call("s2", "small")
    assert [(e.contact_id, e.outcome) for e in effects if isinstance(e, ev.ContactEnded)] == [
        ("s2", "overflowed")
    ]


async def test_pool_widens_as_the_wait_grows() -> None:
    desk = Desk(QueueRules("q", skills={"tech": 4}, widening=(Widening(30, 2),)))
    await desk.agent("junior", {"tech": 2})
    assert offers(await desk.call("c1")) == []
    assert offers(await desk.wait(29)) == []
    assert offers(await desk.wait(2)) == [("c1", "junior")]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("round_robin", ["a", "b", "c", "a"]),
        ("linear", ["c", "c", "c", "c"]),
        ("fewest_contacts", ["a", "b", "c", "a"]),
    ],
)
async def test_strategies(strategy: str, expected: list[str]) -> None:
    desk = Desk(QueueRules("q", strategy=strategy, wrapup_seconds=0))
    for order, name in ((3, "a"), (2, "b"), (1, "c")):
        await desk.agent(name, order=order)
    got = []
    for n in range(4):
        effects = await desk.call(f"c{n}")
        ((_, agent),) = offers(effects)
        got.append(agent)
        await desk.send(ev.OfferAccepted(f"c{n}", agent))
        desk.now += dt.timedelta(seconds=1)
        await desk.send(ev.ContactLeft(f"c{n}"))
    assert got == expected


async def test_least_talk_time() -> None:
    desk = Desk(QueueRules("q", strategy="least_talk_time", wrapup_seconds=0))
    await desk.agent("a")
    await desk.agent("b")
    await desk.call("long")
    ((_, first),) = offers(desk.log)
    await desk.send(ev.OfferAccepted("long", first))
    desk.now += dt.timedelta(seconds=300)
    await desk.send(ev.ContactLeft("long"))
    await desk.call("next")
    other = "b" if first == "a" else "a"
    assert offers(desk.log)[-1] == ("next", other)


async def test_lost_race_routes_again() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a")
    desk.now += dt.timedelta(seconds=1)
    await desk.agent("b")
    # Another node took a's only slot in the shared store.
    await desk.store.reserve(ev.Reserve("elsewhere", "a", "voice", 1, 0))
    assert offers(await desk.call("c1")) == [("c1", "b")]


async def test_contact_refused_by_the_store_waits_for_the_next_free_agent() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a")
    await desk.store.reserve(ev.Reserve("elsewhere", "a", "voice", 1, 0))
    assert offers(await desk.call("c1")) == []
    assert desk.router.contact_status("c1") is ContactStatus.QUEUED
    # The agent who frees up finds it by looking at the queue's head.
    assert offers(await desk.agent("b")) == [("c1", "b")]


async def test_widening_counts_while_an_offer_rings() -> None:
    rules = QueueRules(
        "q", skills={"tech": 4}, widening=(Widening(30, 2),), offer_timeout_seconds=40
    )
    desk = Desk(rules)
    await desk.agent("senior", {"tech": 4})
    await desk.agent("junior", {"tech": 2})
    assert offers(await desk.call("c1")) == [("c1", "senior")]
    # Unanswered past the widening step: back in line, where the junior now qualifies.
    assert offers(await desk.wait(41)) == [("c1", "junior")]


async def test_illegal_moves_change_nothing() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a")
    await desk.send(ev.AgentPresenceChanged("a", "offline"))
    with pytest.raises(IllegalTransition):
        await desk.send(ev.AgentPresenceChanged("a", "offline"))
    assert desk.router.agent_presence("a") == ("offline", "")
    await desk.call("c1")
    with pytest.raises(IllegalTransition):
        await desk.send(ev.ContactArrived("c1", "q", "voice"))
    assert desk.router.contact_status("c1") is ContactStatus.QUEUED
    assert desk.router.waiting("q") == 1


async def test_agent_leaving_mid_offer_releases_it() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a")
    desk.now += dt.timedelta(seconds=1)
    await desk.agent("b")
    await desk.call("c1")
    effects = await desk.send(ev.AgentPresenceChanged("a", "offline"))
    assert withdrawn(effects) == [("c1", "a", "agent_left")]
    assert offers(effects) == [("c1", "b")]


async def test_queue_added_later_routes_waiting_agents() -> None:
    desk = Desk()
    await desk.agent("a", {"tech": 3})
    await desk.send(QueueConfigured(QueueRules("tech", skills={"tech": 2})))
    assert offers(await desk.call("c1", "tech")) == [("c1", "a")]


async def test_callback_keeps_the_place_after_hang_up() -> None:
    desk = Desk(QueueRules("q"))
    await desk.call("c1")
    desk.now += dt.timedelta(seconds=5)
    await desk.call("c2")
    await desk.send(ev.CallbackRequested("c1", "+8613800138000"))
    await desk.send(ev.ContactLeft("c1"))  # the caller hangs up, the callback waits
    assert offers(await desk.agent("a")) == [("c1", "a")]


async def test_going_away_on_a_call_keeps_the_call() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a")
    await desk.call("c1")
    await desk.send(ev.OfferAccepted("c1", "a"))
    assert await desk.send(ev.OfferAccepted("c1", "a")) == []  # a double accept changes nothing
    effects = await desk.send(ev.AgentPresenceChanged("a", "away", "break"))
    assert withdrawn(effects) == []
    assert desk.router.agent_load("a") == await desk.store.load("a") == {"voice": 1}
    await desk.send(ev.AgentPresenceChanged("a", "available"))
    assert offers(await desk.call("c2")) == []  # still on c1


async def test_contacts_needing_a_skill_do_not_hide_the_ones_behind_them() -> None:
    desk = Desk(QueueRules("q"))
    for n in range(12):
        await desk.call(f"zh{n}", skills={"mandarin": 3})
        desk.now += dt.timedelta(seconds=1)
    await desk.call("plain")
    assert offers(await desk.agent("english-only")) == [("plain", "english-only")]
    assert offers(await desk.agent("zh-speaker", {"mandarin": 4})) == [("zh0", "zh-speaker")]


async def test_agents_counted_by_state_per_queue() -> None:
    desk = Desk(QueueRules("q", wrapup_seconds=30), QueueRules("tech", skills={"tech": 3}))
    for name in ("a", "b", "c", "d"):
        await desk.agent(name)
    await desk.send(ev.AgentPresenceChanged("d", "away", "lunch"))
    await desk.call("c1")
    await desk.call("c2")
    await desk.send(ev.OfferAccepted("c1", "a"))
    await desk.send(ev.ContactLeft("c1"))  # a in wrap-up, b ringing with c2
    assert desk.router.agent_states("q") == {
        "available": 1,
        "busy": 1,
        "wrapup": 1,
        "away": 1,
        "offline": 0,
    }
    assert desk.router.agent_states("tech") == {
        "available": 0,
        "busy": 0,
        "wrapup": 0,
        "away": 0,
        "offline": 0,
    }


async def test_chats_spread_over_agents_before_piling_up() -> None:
    desk = Desk(QueueRules("q"))
    await desk.agent("a", chats=3)
    desk.now += dt.timedelta(seconds=1)
    await desk.agent("b", chats=3)
    got = []
    for n in range(4):
        ((_, agent),) = offers(await desk.call(f"chat{n}", channel="chat"))
        await desk.send(ev.OfferAccepted(f"chat{n}", agent))
        got.append(agent)
    assert got == ["a", "b", "a", "b"]


async def test_run_now_carries_out_the_same_effects_as_run() -> None:
    """The engine's path for an in-process store: the same effects, in the same order."""
    rules = (QueueRules("q", strategy="ring_all", wrapup_seconds=5), QueueRules("solo"))
    waited = Desk(*rules)
    at_once = Desk(*rules)
    script: list[Any] = [
        ev.AgentJoined("a", {}, {"voice": 1, "chat": 2}),
        ev.AgentJoined("b", {}, {"voice": 1}),
        ev.AgentPresenceChanged("a", "available"),
        ev.AgentPresenceChanged("b", "available"),
        ev.ContactArrived("c1", "q", "voice"),
        ev.OfferAccepted("c1", "b"),
        ev.ContactArrived("c2", "solo", "chat"),
        ev.OfferRejected("c2", "a"),
        ev.ContactLeft("c1"),
        ev.WrapupDone("c1", "b"),
        ev.ContactLeft("c2"),
    ]
    # Another node holds one of b's slots: a lost race on both paths.
    await waited.store.reserve(ev.Reserve("elsewhere", "b", "voice", 1, 0))
    at_once.store.reserve_now(ev.Reserve("elsewhere", "b", "voice", 1, 0))
    for event in script:
        assert run_now(at_once.router, at_once.store, event, T0) == await waited.send(event)
    for agent in ("a", "b"):
        assert await at_once.store.load(agent) == await waited.store.load(agent)


async def test_a_subclass_of_an_event_is_handled_as_its_base() -> None:
    class Arrived(ev.ContactArrived):
        pass

    desk = Desk(QueueRules("q"))
    await desk.agent("a")
    assert offers(await desk.send(Arrived("c1", "q", "voice"))) == [("c1", "a")]
    assert await desk.send(object()) == []
