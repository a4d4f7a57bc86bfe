"""Benchmark of the ACD router: routing decisions in a busy steady state.

Project path: a :class:`Router` with 20 queues (a topic skill and a language
skill each, with minimum proficiency levels, some widening with the wait) and
2,000 agents with random mixed skills, driven through ``dispatch.run_now`` with
the in-process live-state store exactly as the routing engine drives it. The
queues are filled to 10,000 waiting contacts (voice and chat, mixed customer
tiers) and kept there: agents ring, accept (or reject, or let the offer time
out and come back later), talk, wrap up (by the queue's timer, or earlier by
hand) and take the next contact; customers abandon; agents take breaks; every
contact that leaves the queue is replaced by a new arrival in the same queue.
Time is virtual: the clock jumps to the next thing that happens, and the
router's own deadlines are fired with ``Tick`` as the engine's timer does.

A decision is one ``Offer`` effect. The rate is decisions per second of time
spent in the router and the store (every ``dispatch.run_now`` and
``next_deadline`` call of the measured phase), not in the simulated floor
around them; the latency is the p99 of the ``dispatch.run_now`` calls that
produced at least one offer.

Ceiling: a bare ``heapq`` push and pop per decision, on a heap as large as the
waiting line, with entries shaped like the router's. It is the least a
decision taken from a priority queue can cost in Python.

Run from the project root::

    .venv/bin/python bench/acd.py [--decisions N] [--seed S] [--quick]

The last line printed is one JSON object with the figures. The exit status is
non-zero when the router and the store disagree about any agent's load at
the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import heapq
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, auto

from callcenter.acd import events as ev
from callcenter.acd.dispatch import run_now
from callcenter.acd.router import Router
from callcenter.acd.rules import QueueRules, RouterSettings, Widening
from callcenter.state.memory import MemoryLiveState

DEFAULT_DECISIONS = 100_000
QUICK_DECISIONS = 10_000
DEFAULT_AGENTS = 2_000
DEFAULT_WAITING = 10_000
#: Decisions taken after the line is full and before the clock starts, so
#: every agent has been through a few contacts and the timers are mixed.
WARMUP_DECISIONS = 10_000
T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)

TOPICS = ("billing", "technical", "sales", "retention", "complaints")
LANGUAGES = ("english", "mandarin", "cantonese", "spanish")
#: Share of agents speaking each language; everyone speaks at least one.
LANGUAGE_SHARE = {"english": 0.8, "mandarin": 0.35, "cantonese": 0.15, "spanish": 0.2}
CHAT_SHARE = 0.25
CHAT_AGENT_SHARE = 0.4
#: Fewest agents (and chat-capable agents) a queue must have at its first step.
MIN_AGENTS_PER_QUEUE = 30
MIN_CHAT_AGENTS_PER_QUEUE = 10

TIERS: tuple[str | None, ...] = ("key", "normal", "small", None)
TIER_WEIGHTS = (10, 60, 20, 10)
IVR_PRIORITY_SHARE = 0.05
#: Contacts that need a second language on top of their queue's.
EXTRA_SKILL_SHARE = 0.03
ABANDON_SHARE = 0.08
REJECT_SHARE = 0.02
NO_ANSWER_SHARE = 0.005
#: Agents who close wrap-up by hand before the queue's timer does.
EARLY_WRAPUP_SHARE = 0.5
#: Mean delay before a contact that left the line is replaced (seconds).
ARRIVAL_GAP_SECONDS = 5.0
#: The initial line arrives over this many seconds.
FILL_SECONDS = 300.0


class VerificationFailed(Exception):
    """The router and the store disagree at the end of the run."""


# -- the centre -----------------------------------------------------------------


def make_queues(rng: random.Random) -> list[QueueRules]:
    """Twenty queues: every topic in every language."""
    strategies = ["longest_idle"] * 14 + ["fewest_contacts"] * 2 + ["least_talk_time"] * 2
    strategies += ["round_robin", "random"]
    rng.shuffle(strategies)
    pairs = [(language, topic) for language in LANGUAGES for topic in TOPICS]
    queues = []
    for i, (language, topic) in enumerate(pairs):
        widening: tuple[Widening, ...] = ()
        if i % 2 == 0:
            widening = (Widening(120.0, 1), Widening(600.0, 2))
        queues.append(
            QueueRules(
                name=f"{topic}_{language}",
                skills={topic: rng.randint(2, 4), language: rng.randint(1, 3)},
                strategy=strategies[i],
                priority={"complaints": 2, "retention": 1}.get(topic, 0),
                wrapup_seconds=rng.choice((0.0, 10.0, 20.0, 30.0)),
                widening=widening,
            )
        )
    return queues


@dataclass(slots=True)
class AgentProfile:
    agent_id: str
    skills: dict[str, int]
    capacity: dict[str, int]
    order: int


def qualifies(agent: AgentProfile, queue: QueueRules) -> bool:
    return all(agent.skills.get(s, 0) >= level for s, level in queue.skills.items())


def make_agents(rng: random.Random, count: int, queues: Sequence[QueueRules]) -> list[AgentProfile]:
    agents = []
    for i in range(count):
        skills = {lang: rng.randint(1, 5) for lang, p in LANGUAGE_SHARE.items() if rng.random() < p}
        if not skills:
            skills[rng.choice(LANGUAGES)] = rng.randint(1, 5)
        for topic in rng.sample(TOPICS, rng.randint(1, 4)):
            skills[topic] = rng.randint(1, 5)
        capacity = {"voice": 1}
        if rng.random() < CHAT_AGENT_SHARE:
            capacity["chat"] = rng.randint(2, 3)
        agents.append(AgentProfile(f"agent-{i:04d}", skills, capacity, i))
    # A thin random draw can leave a queue (a rare language with a demanding
    # topic) with hardly anyone; train agents until every queue is staffed.
    for queue in queues:
        for needs_chat, wanted in (
            (False, MIN_AGENTS_PER_QUEUE),
            (True, MIN_CHAT_AGENTS_PER_QUEUE),
        ):
            pool = [a for a in agents if not needs_chat or "chat" in a.capacity]
            staffed = sum(1 for a in pool if qualifies(a, queue))
            while staffed < wanted:
                agent = rng.choice(pool)
                if qualifies(agent, queue):
                    continue
                for skill, level in queue.skills.items():
                    agent.skills[skill] = max(agent.skills.get(skill, 0), rng.randint(level, 5))
                staffed += 1
    return agents


# -- the simulated floor ------------------------------------------------------------


class Stage(Enum):
    WAITING = auto()
    RINGING = auto()
    TALKING = auto()
    WRAPUP = auto()


class Act(Enum):
    ARRIVE = auto()
    ACCEPT = auto()
    REJECT = auto()
    HANG_UP = auto()
    ABANDON = auto()
    WRAPUP_DONE = auto()
    BREAK = auto()
    BACK = auto()


@dataclass(slots=True)
class SimContact:
    queue: str
    channel: str
    stage: Stage = Stage.WAITING
    agent: str = ""


@dataclass(slots=True)
class Tally:
    """What happened on the floor; reset when the measured phase starts."""

    events: int = 0
    offers: int = 0
    offer_calls: int = 0
    arrivals: int = 0
    accepted: int = 0
    rejected: int = 0
    timed_out: int = 0
    abandoned: int = 0
    done: int = 0
    ticks: int = 0
    router_ns: int = 0
    deadline_ns: int = 0
    offer_call_ns: list[int] = field(default_factory=list)
    #: Event kind (with "+offer" when the call made one) -> [calls, ns].
    kinds: dict[str, list[int]] = field(default_factory=dict)


class Floor:
    """Customers and agents around the router: turns time into events, effects into plans."""

    def __init__(
        self,
        rng: random.Random,
        queues: Sequence[QueueRules],
        agents: Sequence[AgentProfile],
        waiting: int,
    ) -> None:
        self.rng = rng
        self.rules = {q.name: q for q in queues}
        self.plan: list[tuple[dt.datetime, int, Act, str, str]] = []
        self.seq = 0
        self.contacts: dict[str, SimContact] = {}
        self.next_contact = 0
        #: (queue, channel) -> contacts the line should hold there.
        self.target: dict[tuple[str, str], int] = {}
        self.waiting: dict[tuple[str, str], int] = {}
        self.coming: dict[tuple[str, str], int] = {}
        #: Agents away, with the reason (a break, a missed offer).
        self.away: dict[str, str] = {}
        #: Contacts each agent is talking to or wrapping up.
        self.busy: dict[str, int] = {}
        self.break_due: set[str] = set()
        weights = [rng.uniform(0.5, 2.0) for _ in queues]
        total = sum(weights)
        for queue, weight in zip(queues, weights, strict=True):
            share = round(waiting * weight / total)
            chats = round(share * CHAT_SHARE)
            self.target[(queue.name, "voice")] = share - chats
            self.target[(queue.name, "chat")] = chats
        for key in self.target:
            self.waiting[key] = 0
            self.coming[key] = 0
        for agent in agents:
            self.schedule(T0 + self.seconds(rng.uniform(600, 5_400)), Act.BREAK, "", agent.agent_id)

    @staticmethod
    def seconds(value: float) -> dt.timedelta:
        return dt.timedelta(seconds=value)

    def schedule(self, at: dt.datetime, act: Act, contact_id: str, agent_id: str) -> None:
        self.seq += 1
        heapq.heappush(self.plan, (at, self.seq, act, contact_id, agent_id))

    def fill(self) -> None:
        """Plan the arrivals of the whole line over the first minutes."""
        for key, count in self.target.items():
            for _ in range(count):
                self.plan_arrival(key, T0 + self.seconds(self.rng.uniform(0, FILL_SECONDS)))

    def plan_arrival(self, key: tuple[str, str], at: dt.datetime) -> None:
        self.next_contact += 1
        contact_id = f"c{self.next_contact:07d}"
        self.contacts[contact_id] = SimContact(key[0], key[1])
        self.coming[key] += 1
        self.schedule(at, Act.ARRIVE, contact_id, "")

    def top_up(self, key: tuple[str, str], now: dt.datetime) -> None:
        while self.waiting[key] + self.coming[key] < self.target[key]:
            gap = self.rng.expovariate(1 / ARRIVAL_GAP_SECONDS)
            self.plan_arrival(key, now + self.seconds(gap))

    def line(self) -> int:
        return sum(self.waiting.values())

    def event(
        self, act: Act, contact_id: str, agent_id: str, now: dt.datetime, tally: Tally
    ) -> ev.Event | None:
        """The router event for a planned act, or None when events overtook the plan."""
        contact = self.contacts.get(contact_id)
        rng = self.rng
        if act is Act.ARRIVE:
            assert contact is not None
            key = (contact.queue, contact.channel)
            self.coming[key] -= 1
            self.waiting[key] += 1
            tally.arrivals += 1
            if rng.random() < ABANDON_SHARE:
                patience = rng.uniform(30, 1_800)
                self.schedule(now + self.seconds(patience), Act.ABANDON, contact_id, "")
            extra: dict[str, int] = {}
            if rng.random() < EXTRA_SKILL_SHARE:
                extra[rng.choice(LANGUAGES)] = rng.randint(1, 2)
            return ev.ContactArrived(
                contact_id,
                contact.queue,
                contact.channel,
                tier=rng.choices(TIERS, TIER_WEIGHTS)[0],
                ivr_priority=1 if rng.random() < IVR_PRIORITY_SHARE else 0,
                skills=extra,
            )
        if act is Act.BREAK:
            if agent_id in self.away:
                # Sent away for a missed offer just now: the break waits a little.
                self.schedule(now + self.seconds(300), Act.BREAK, "", agent_id)
                return None
            if self.busy.get(agent_id):
                # As with "not ready after this call": the break starts when the
                # agent's contacts are over.
                self.break_due.add(agent_id)
                return None
            self.away[agent_id] = "break"
            self.schedule(now + self.seconds(rng.uniform(300, 900)), Act.BACK, "", agent_id)
            return ev.AgentPresenceChanged(agent_id, "away", "break")
        if act is Act.BACK:
            if self.away.pop(agent_id, None) == "break":
                later = now + self.seconds(rng.uniform(1_800, 5_400))
                self.schedule(later, Act.BREAK, "", agent_id)
            return ev.AgentPresenceChanged(agent_id, "available")
        if contact is None:
            return None
        ringing = contact.stage is Stage.RINGING and contact.agent == agent_id
        if act is Act.ACCEPT and ringing:
            return ev.OfferAccepted(contact_id, agent_id)
        if act is Act.REJECT and ringing:
            return ev.OfferRejected(contact_id, agent_id)
        if act is Act.HANG_UP and contact.stage is Stage.TALKING:
            return ev.ContactLeft(contact_id)
        if act is Act.ABANDON and contact.stage in (Stage.WAITING, Stage.RINGING):
            return ev.ContactLeft(contact_id)
        if act is Act.WRAPUP_DONE and contact.stage is Stage.WRAPUP:
            return ev.WrapupDone(contact_id, agent_id)
        return None

    def apply(self, effects: list[ev.Effect], now: dt.datetime, tally: Tally) -> int:
        """Plan what agents and customers do next; returns the offers among ``effects``."""
        rng = self.rng
        offers = 0
        for effect in effects:
            if isinstance(effect, ev.Offer):
                offers += 1
                contact = self.contacts[effect.contact_id]
                key = (contact.queue, contact.channel)
                self.waiting[key] -= 1
                contact.stage, contact.agent = Stage.RINGING, effect.agent_id
                ring = now + self.seconds(rng.uniform(2, 10))
                draw = rng.random()
                if draw < REJECT_SHARE:
                    self.schedule(ring, Act.REJECT, effect.contact_id, effect.agent_id)
                elif draw >= REJECT_SHARE + NO_ANSWER_SHARE:
                    self.schedule(ring, Act.ACCEPT, effect.contact_id, effect.agent_id)
                self.top_up(key, now)
            elif isinstance(effect, ev.Withdraw):
                withdrawn = self.contacts.get(effect.contact_id)
                if withdrawn is None or withdrawn.stage is not Stage.RINGING:
                    continue
                if withdrawn.agent != effect.agent_id:
                    continue
                if effect.reason == "timeout":
                    tally.timed_out += 1
                if effect.reason in ("rejected", "timeout", "agent_left"):
                    # The router puts the contact back at its place in the line.
                    withdrawn.stage, withdrawn.agent = Stage.WAITING, ""
                    self.waiting[(withdrawn.queue, withdrawn.channel)] += 1
            elif isinstance(effect, ev.Connect):
                contact = self.contacts[effect.contact_id]
                contact.stage = Stage.TALKING
                self.busy[effect.agent_id] = self.busy.get(effect.agent_id, 0) + 1
                tally.accepted += 1
                # Medians: two and a half minutes for a call, five and a half for a chat.
                if contact.channel == "voice":
                    talk = rng.lognormvariate(5.0, 0.5)
                else:
                    talk = rng.lognormvariate(5.8, 0.4)
                self.schedule(now + self.seconds(talk), Act.HANG_UP, effect.contact_id, "")
            elif isinstance(effect, ev.StartWrapup):
                self.contacts[effect.contact_id].stage = Stage.WRAPUP
                if rng.random() < EARLY_WRAPUP_SHARE:
                    wrapup = self.rules[self.contacts[effect.contact_id].queue].wrapup_seconds
                    at = now + self.seconds(wrapup * rng.uniform(0.2, 0.9))
                    self.schedule(at, Act.WRAPUP_DONE, effect.contact_id, effect.agent_id)
            elif isinstance(effect, ev.Finish):
                self.busy[effect.agent_id] -= 1
                if not self.busy[effect.agent_id] and effect.agent_id in self.break_due:
                    self.break_due.discard(effect.agent_id)
                    self.schedule(now, Act.BREAK, "", effect.agent_id)
            elif isinstance(effect, ev.ContactEnded):
                contact = self.contacts.pop(effect.contact_id)
                key = (contact.queue, contact.channel)
                if effect.outcome == "done":
                    tally.done += 1
                else:
                    tally.abandoned += 1
                    if contact.stage is Stage.WAITING:
                        self.waiting[key] -= 1
                    self.top_up(key, now)
            elif isinstance(effect, ev.PresenceSet) and effect.presence == "away":
                # Away after a missed offer: the agent notices and comes back.
                self.away[effect.agent_id] = effect.reason
                back = now + self.seconds(rng.uniform(20, 120))
                self.schedule(back, Act.BACK, "", effect.agent_id)
            elif isinstance(effect, ev.QueueLog) and effect.event == "rejected":
                tally.rejected += 1
        return offers


# -- the run ---------------------------------------------------------------------


@dataclass(slots=True)
class Setup:
    router: Router
    store: MemoryLiveState
    floor: Floor
    queues: list[QueueRules]
    agents: list[AgentProfile]


async def build(seed: int, agent_count: int, waiting: int) -> Setup:
    rng = random.Random(seed)
    queues = make_queues(rng)
    agents = make_agents(rng, agent_count, queues)
    router = Router(queues, RouterSettings(), random.Random(seed + 1))
    store = MemoryLiveState()
    floor = Floor(rng, queues, agents, waiting)
    for agent in agents:
        joined = ev.AgentJoined(agent.agent_id, agent.skills, agent.capacity, agent.order)
        run_now(router, store, joined, T0)
        run_now(router, store, ev.AgentPresenceChanged(agent.agent_id, "available"), T0)
    floor.fill()
    return Setup(router, store, floor, queues, agents)


async def drive(
    setup: Setup,
    decisions: int,
    tally: Tally,
    now: dt.datetime,
    until: dt.datetime | None = None,
) -> dt.datetime:
    """Run the floor until ``decisions`` offers were made or ``until``; returns the time reached."""
    router, store, floor = setup.router, setup.store, setup.floor
    clock = time.perf_counter_ns
    plan = floor.plan
    while tally.offers < decisions and (until is None or now < until):
        began = clock()
        deadline = router.next_deadline()
        spent = clock() - began
        tally.router_ns += spent
        tally.deadline_ns += spent
        event: ev.Event | None
        if deadline is not None and (not plan or deadline <= plan[0][0]):
            now = max(now, deadline)
            event = ev.Tick()
            tally.ticks += 1
        else:
            at, _, act, contact_id, agent_id = heapq.heappop(plan)
            now = at
            event = floor.event(act, contact_id, agent_id, now, tally)
            if event is None:
                continue
        began = clock()
        effects = run_now(router, store, event, now)
        spent = clock() - began
        tally.router_ns += spent
        tally.events += 1
        offers = floor.apply(effects, now, tally)
        kind = type(event).__name__
        if offers:
            tally.offers += offers
            tally.offer_calls += 1
            tally.offer_call_ns.append(spent)
            kind += "+offer"
        cost = tally.kinds.setdefault(kind, [0, 0])
        cost[0] += 1
        cost[1] += spent
    return now


class GcWatch:
    """Collections and their pauses while installed (a pause lands in whatever call it hits)."""

    def __init__(self) -> None:
        self.by_generation = [0, 0, 0]
        self.pause_ns = 0
        self.longest_ns = 0
        self._began = 0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter_ns()
            return
        pause = time.perf_counter_ns() - self._began
        self.by_generation[info["generation"]] += 1
        self.pause_ns += pause
        self.longest_ns = max(self.longest_ns, pause)


def ceiling(count: int, size: int, seed: int) -> float:
    """Seconds for ``count`` bare heap push/pop pairs on a heap of ``size`` entries."""
    rng = random.Random(seed)
    start = T0.timestamp()
    heap = [(start + rng.uniform(0, 900), i, f"c{i:07d}") for i in range(size)]
    heapq.heapify(heap)
    entries = [(start + 900 + i * 0.1, size + i, f"c{size + i:07d}") for i in range(count)]
    push, pop = heapq.heappush, heapq.heappop
    began = time.perf_counter_ns()
    for entry in entries:
        push(heap, entry)
        pop(heap)
    return (time.perf_counter_ns() - began) / 1e9


def percentile(values: Sequence[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def verify(setup: Setup) -> None:
    for agent in setup.agents:
        ours = setup.router.agent_load(agent.agent_id)
        theirs = await setup.store.load(agent.agent_id)
        if ours != theirs:
            raise VerificationFailed(f"{agent.agent_id}: router holds {ours}, store {theirs}")


async def bench(decisions: int, seed: int, agent_count: int, waiting: int) -> dict[str, object]:
    setup = await build(seed, agent_count, waiting)
    floor = setup.floor
    warm = Tally()
    # The line is full once the fill arrivals are in; warm up past that.
    now = await drive(setup, sys.maxsize, warm, T0, until=T0 + Floor.seconds(FILL_SECONDS))
    now = await drive(setup, warm.offers + WARMUP_DECISIONS, warm, now)
    line_at_start = floor.line()
    started_at = now

    tally = Tally()
    with GcWatch() as collections:
        cpu_began = time.process_time()
        wall_began = time.perf_counter_ns()
        now = await drive(setup, decisions, tally, now)
        wall = (time.perf_counter_ns() - wall_began) / 1e9
        cpu = time.process_time() - cpu_began
    line_at_end = floor.line()
    await verify(setup)

    ceiling_s = ceiling(tally.offers, waiting, seed)
    router_s = tally.router_ns / 1e9
    rate = tally.offers / router_s
    ceiling_rate = tally.offers / ceiling_s
    p50 = percentile(tally.offer_call_ns, 0.50) / 1e6
    p99 = percentile(tally.offer_call_ns, 0.99) / 1e6
    worst = max(tally.offer_call_ns) / 1e6
    offer_path_rate = tally.offers / (sum(tally.offer_call_ns) / 1e9)
    virtual = (now - started_at).total_seconds()
    staffed = [sum(1 for a in setup.agents if qualifies(a, q)) for q in setup.queues]

    print(
        f"ACD router: {agent_count} agents, {len(setup.queues)} queues"
        f" ({min(staffed)}-{max(staffed)} agents each), ~{waiting} waiting, seed {seed}"
    )
    print(
        f"  measured     : {tally.offers} decisions in {tally.events} events"
        f" ({tally.ticks} timer ticks), {virtual / 3600:.1f} h of virtual time"
    )
    print(
        f"  floor        : {tally.arrivals} arrived, {tally.accepted} accepted,"
        f" {tally.rejected} rejected, {tally.timed_out} unanswered,"
        f" {tally.abandoned} abandoned, {tally.done} done;"
        f" waiting {line_at_start} at start, {line_at_end} at end"
    )
    print(
        f"  router       : {rate:10.0f} decisions/s  ({router_s:.2f} s in dispatch.run_now and"
        f" next_deadline, of which next_deadline {tally.deadline_ns / 1e9:.2f} s)"
    )
    print(
        f"  with floor   : {tally.offers / wall:10.0f} decisions/s  ({wall:.2f} s wall clock,"
        f" the process had the CPU {100 * cpu / wall:.0f}% of it)"
    )
    print(
        f"  offer calls  : {tally.offer_calls}; p50 {p50:.3f} ms, p99 {p99:.3f} ms,"
        f" max {worst:.3f} ms; {offer_path_rate:.0f} decisions/s counting their time only"
    )
    gens = "/".join(str(n) for n in collections.by_generation)
    gc_ms, gc_longest_ms = collections.pause_ns / 1e6, collections.longest_ns / 1e6
    print(
        f"  gc           : {gens} collections (generation 0/1/2),"
        f" {gc_ms:.1f} ms in all, longest {gc_longest_ms:.1f} ms"
    )
    print("  router time by event (mean per call, share):")
    for kind, (calls, spent_ns) in sorted(tally.kinds.items(), key=lambda kv: -kv[1][1]):
        share = 100 * spent_ns / tally.router_ns
        print(f"    {kind:28} {calls:8} calls {spent_ns / calls / 1e3:8.1f} us {share:5.1f}%")
    share = 100 * tally.deadline_ns / tally.router_ns
    print(f"    {'next_deadline()':28} {'':8}       {'':8}    {share:5.1f}%")
    print(f"  ceiling      : {ceiling_rate:10.0f} push/pop per s  ({ceiling_s:.3f} s, heapq)")
    print(f"  ratio        : {rate / ceiling_rate:.4f}  (router / ceiling)")
    return {
        "decisions_per_s": round(rate, 1),
        "p99_ms": round(p99, 4),
        "ceiling_per_s": round(ceiling_rate, 1),
        "ratio": round(rate / ceiling_rate, 5),
        "p50_ms": round(p50, 4),
        "max_ms": round(worst, 3),
        "offer_path_per_s": round(offer_path_rate, 1),
        "wall_decisions_per_s": round(tally.offers / wall, 1),
        "cpu_share": round(cpu / wall, 3),
        "gc_pause_ms": round(gc_ms, 2),
        "decisions": tally.offers,
        "offer_calls": tally.offer_calls,
        "events": tally.events,
        "router_s": round(router_s, 3),
        "wall_s": round(wall, 3),
        "agents": agent_count,
        "queues": len(setup.queues),
        "waiting": line_at_start,
        "waiting_end": line_at_end,
        "seed": seed,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--decisions", type=int, help=f"offers to measure (default {DEFAULT_DECISIONS})"
    )
    parser.add_argument("--quick", action="store_true", help=f"a short run of {QUICK_DECISIONS}")
    parser.add_argument("--seed", type=int, default=1, help="seed of the centre and the floor")
    parser.add_argument("--agents", type=int, default=DEFAULT_AGENTS)
    parser.add_argument("--waiting", type=int, default=DEFAULT_WAITING, help="length of the line")
    args = parser.parse_args(argv)
    if args.decisions is not None:
        decisions = args.decisions
    else:
        decisions = QUICK_DECISIONS if args.quick else DEFAULT_DECISIONS
    if decisions < 1 or args.agents < 1 or args.waiting < 1:
        parser.error("--decisions, --agents and --waiting must be at least 1")
    try:
        figures = asyncio.run(bench(decisions, args.seed, args.agents, args.waiting))
    except VerificationFailed as exc:
        print(f"verification failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
