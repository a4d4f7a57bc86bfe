"""The ACD router: a pure state machine, ``handle(event, now) -> effects``.

It keeps the waiting contacts of every queue ordered by priority score (see
:mod:`callcenter.acd.priority`) and the agents who could take them, and
decides who gets what. It does no I/O: the adapter feeds it events, carries
out the effects, and calls :meth:`Router.handle` with :class:`Tick` when
:meth:`Router.next_deadline` has passed.

Offers are reservations. The router never offers on its own authority: it
emits :class:`Reserve`, the live-state store applies it as a compare-and-set,
and only a successful :class:`ReserveResult` turns into an :class:`Offer`. A
lost race (another node took the agent or the contact) is handled by routing
again. Locally the reserved slot counts as taken from the moment the
reservation is asked for, so the router itself never double-books.

Decisions are triggered from both sides: a contact that arrives (or comes back
after a refused offer) looks for the best free agent by its queue's strategy;
an agent who frees up takes the highest-scoring contact at the head of the
queues it may serve (an agent serving several queues gets the highest score
across them). Only a few entries at the head of each queue are examined, so a
decision costs O(queues x log waiting), not O(waiting).

Both sides are indexed so that neither looks at what it could not take. A
queue keeps one heap per *lane*: channel, extra skills the contacts need, and
widening step reached (a contact moves to the next step's heap when its
widening timer fires). Each agent keeps the list of lanes it may serve, so a
freed agent compares only heads it is allowed to take. Free agents are listed
per queue, channel and the widening step from which they qualify, so an
arriving contact only meets agents it may be offered to.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import random
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from callcenter.acd import events as ev
from callcenter.acd.lifecycle import (
    FINAL,
    ContactStatus,
    IllegalTransition,
    Presence,
    check_contact,
    check_presence,
)
from callcenter.acd.rules import QueueRules, RouterSettings
from callcenter.acd.strategies import Candidate, choose

S = ContactStatus
#: Heap entries examined at the head of a queue when an agent frees up.
HEAD_SCAN = 8
# Enum members read through a class cost more than a module global, and
# these are read at every decision.
_AVAILABLE = Presence.AVAILABLE
_ARRIVED, _QUEUED, _OFFERED, _CONNECTED = S.ARRIVED, S.QUEUED, S.OFFERED, S.CONNECTED
_WRAPUP, _DONE, _ABANDONED, _OVERFLOWED = S.WRAPUP, S.DONE, S.ABANDONED, S.OVERFLOWED
#: Statuses in which a widening timer still counts.
_WIDENING = (S.QUEUED, S.OFFERED)


class UnknownQueue(KeyError):
    pass


class UnknownContact(KeyError):
    pass


class UnknownAgent(KeyError):
    pass


@dataclass(slots=True)
class _Agent:
    agent_id: str
    skills: dict[str, int]
    capacity: dict[str, int]
    order: int
    idle_since: dt.datetime
    presence: Presence = Presence.OFFLINE
    reason: str = ""
    #: Contacts holding one of the agent's slots (reserving, offered, connected,
    #: wrap-up), with their channel.
    holding: dict[str, str] = field(default_factory=dict)
    #: Channel -> contacts in ``holding`` on it (no zero entries).
    load: dict[str, int] = field(default_factory=dict)
    handled: int = 0
    talk_seconds: float = 0.0
    #: Queue -> the widening step from which this agent qualifies (0 = always).
    steps: dict[str, int] = field(default_factory=dict)
    #: (channel, lane number) of every lane the agent may serve, and the
    #: router's lane generation it was built for.
    lanes: list[tuple[str, int]] = field(default_factory=list)
    lanes_built: int = -1
    #: Free channels -> the numbers of ``lanes`` on them, in order.
    lanes_on: dict[tuple[str, ...], tuple[int, ...]] = field(default_factory=dict)
    #: What the free-agent index lists the agent under now: its free channels,
    #: for the queues and steps of this ``steps`` mapping.
    listed_free: tuple[str, ...] = ()
    listed_steps: dict[str, int] = field(default_factory=dict)
    #: Channel -> the free-agent sets of ``listed_steps`` for it: an agent goes
    #: in and out of them at every contact, so the keys are looked up once.
    free_sets: dict[str, list[set[str]]] = field(default_factory=dict)
    #: The channels of ``capacity`` with at least one slot, in its order.
    channels: tuple[str, ...] = ()


@dataclass(slots=True)
class _Contact:
    contact_id: str
    queue: str
    channel: str
    tier: str | None
    ivr_priority: int
    skills: dict[str, int]
    waiting_since: dt.datetime
    status: ContactStatus = _ARRIVED
    version: int = 0
    #: Set on every (re)enqueue, unique across contacts; heap entries with
    #: another number are stale.
    entry: int = 0
    #: Bumped when the contact enters a queue; its queue timers carry it.
    stay: int = 0
    #: Widening steps reached in this stay (advanced by the widening timers).
    step: int = 0
    pending: set[str] = field(default_factory=set)
    offered_to: set[str] = field(default_factory=set)
    rejected_by: set[str] = field(default_factory=set)
    #: Agents the store refused for this contact (taken on another node).
    lost_to: set[str] = field(default_factory=set)
    agent: str | None = None
    answered_at: dt.datetime | None = None
    callback: str | None = None
    #: ``skills`` as a lane needs them (sorted pairs), and ``waiting_since`` as
    #: the heap keys need it; both are fixed for the contact's life.
    needs: tuple[tuple[str, int], ...] = ()
    waiting_ts: float = 0.0
    #: The lane of the contact's latest heap entry.
    lane: int = -1


#: A heap entry: (key, entry number, contact id); key = waiting_since - head
#: start. Only strings and numbers, so the entries stay out of the cyclic
#: garbage collector's sight.
_Entry = tuple[float, int, str]
#: (channel, extra skills the contacts need, widening step reached).
_Lane = tuple[str, tuple[tuple[str, int], ...], int]
#: (due, sequence, kind, contact id, agent id, stamp): see :meth:`Router._timer_valid`.
_Timer = tuple[dt.datetime, int, str, str, str, int]


@dataclass(slots=True)
class _Queue:
    rules: QueueRules
    #: Lane -> its number in the router's lists of heaps. Contacts that need a
    #: language or another extra skill wait in a heap of their own, so agents who
    #: lack it never have to look past them; contacts not yet widened far enough
    #: for an agent likewise.
    lanes: dict[_Lane, int] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)
    #: Agents who may serve the queue (at some widening step).
    agents: set[str] = field(default_factory=set)
    last_agent: str | None = None
    #: The rules' durations as timedeltas, built once: a timedelta made from
    #: float seconds costs more than the addition it serves.
    offer_timeout: dt.timedelta = dt.timedelta(0)
    wrapup: dt.timedelta = dt.timedelta(0)
    max_wait: dt.timedelta | None = None
    widening: tuple[dt.timedelta, ...] = ()
    #: (tier, IVR priority) -> head start under these rules.
    head_starts: dict[tuple[str | None, int], float] = field(default_factory=dict)
    #: Channel -> the router's free-agent sets of this queue by widening step,
    #: looked up once instead of at every arrival.
    free_sets: dict[str, list[set[str]]] = field(default_factory=dict)

    def adopt(self, rules: QueueRules) -> None:
        """Take ``rules`` and what is derived from them."""
        self.rules = rules
        self.offer_timeout = dt.timedelta(seconds=rules.offer_timeout_seconds)
        self.wrapup = dt.timedelta(seconds=rules.wrapup_seconds)
        wait = rules.max_wait_seconds
        self.max_wait = None if wait is None else dt.timedelta(seconds=wait)
        self.widening = tuple(dt.timedelta(seconds=w.after_seconds) for w in rules.widening)
        self.head_starts = {}


@dataclass(frozen=True, slots=True)
class QueueConfigured:
    """Add or change a queue."""

    rules: QueueRules


_Handler = Callable[[Any, dt.datetime, list[ev.Effect]], None]

#: Event type -> the :class:`Router` method that handles it.
_HANDLERS: dict[type, str] = {
    ev.Tick: "_fire_timers",
    ev.ContactArrived: "_arrive",
    ev.ReserveResult: "_reserved",
    ev.OfferAccepted: "_accept",
    ev.OfferRejected: "_reject",
    ev.ContactLeft: "_left",
    ev.WrapupDone: "_on_wrapup_done",
    ev.AgentPresenceChanged: "_presence",
    ev.AgentJoined: "_join",
    ev.CallbackRequested: "_callback",
    ev.ContactMoved: "_move",
    QueueConfigured: "_on_configured",
}


class Router:
    """See the module docstring. Not thread-safe; one adapter task drives it."""

    def __init__(
        self,
        queues: Iterable[QueueRules] = (),
        settings: RouterSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or RouterSettings()
        self._rng = rng or random.Random()
        self._queues: dict[str, _Queue] = {}
        self._agents: dict[str, _Agent] = {}
        self._contacts: dict[str, _Contact] = {}
        #: (queue, channel, step) -> agents who may serve the queue from that
        #: widening step on and have a free slot on the channel.
        self._free: dict[tuple[str, str, int], set[str]] = {}
        #: Lane number -> heap of entries, and the key of its head entry (stale
        #: or not; infinity when empty). Agents compare the heads of many lanes
        #: at every decision: one compact array makes that a short C loop.
        self._heaps: list[list[_Entry]] = []
        self._heads = array("d")
        #: Bumped when a lane or a queue is added; agents' lane lists rebuild.
        self._lane_generation = 0
        self._entries = itertools.count(1)
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        #: Event type -> bound handler; a subclass of an event type is added
        #: on first sight.
        self._handlers: dict[type, _Handler | None] = {
            kind: getattr(self, name) for kind, name in _HANDLERS.items()
        }
        for rules in queues:
            self._configure(rules)

    # -- public surface ----------------------------------------------------

    def handle(self, event: ev.Event | QueueConfigured, now: dt.datetime) -> list[ev.Effect]:
        """Apply ``event`` at ``now``; return the effects to carry out, in order."""
        out: list[ev.Effect] = []
        try:
            handler = self._handlers[type(event)]
        except KeyError:
            handler = self._handlers[type(event)] = self._handler_of(type(event))
        if handler is not None:
            handler(event, now, out)
        return out

    def _handler_of(self, kind: type) -> _Handler | None:
        """The handler of a subclass of an event type; None for anything else."""
        for base in kind.__mro__[1:]:
            name = _HANDLERS.get(base)
            if name is not None:
                handler: _Handler = getattr(self, name)
                return handler
        return None

    def next_deadline(self) -> dt.datetime | None:
        """When the adapter should send the next :class:`Tick` (None: no timer)."""
        timers = self._timers
        valid = self._timer_valid
        while timers:
            if valid(timers[0]):
                return timers[0][0]
            heapq.heappop(timers)
        return None

    def waiting(self, queue: str) -> int:
        return len(self._queue(queue).waiting)

    def contact_status(self, contact_id: str) -> ContactStatus:
        return self._contact(contact_id).status

    def agent_load(self, agent_id: str) -> dict[str, int]:
        return dict(self._agent(agent_id).load)

    def agent_presence(self, agent_id: str) -> tuple[str, str]:
        agent = self._agent(agent_id)
        return agent.presence.value, agent.reason

    def agent_states(self, queue: str) -> dict[str, int]:
        """Agents who may serve ``queue``, counted by what they are doing now.

        ``busy``: holds a contact that is ringing or connected; ``wrapup``: holds
        only contacts in wrap-up; otherwise the agent's presence.
        """
        counts = {"available": 0, "busy": 0, "wrapup": 0, "away": 0, "offline": 0}
        for agent in self._agents.values():
            if queue not in agent.steps:
                continue
            held = [self._contacts.get(c) for c in agent.holding]
            if any(c is not None and c.status is not _WRAPUP for c in held):
                counts["busy"] += 1
            elif held:
                counts["wrapup"] += 1
            else:
                counts[agent.presence.value] += 1
        return counts

    def offers_of(self, contact_id: str) -> frozenset[str]:
        return frozenset(self._contact(contact_id).offered_to)

    def final(self, contact_id: str) -> bool:
        contact = self._contacts.get(contact_id)
        return contact is None or contact.status in FINAL

    # -- lookups -------------------------------------------------------------

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise UnknownQueue(name) from None

    def _contact(self, contact_id: str) -> _Contact:
        try:
            return self._contacts[contact_id]
        except KeyError:
            raise UnknownContact(contact_id) from None

    def _agent(self, agent_id: str) -> _Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownAgent(agent_id) from None

    # -- configuration -------------------------------------------------------

    def _configure(self, rules: QueueRules) -> None:
        queue = self._queues.get(rules.name)
        if queue is None:
            queue = self._queues[rules.name] = _Queue(rules)
        queue.adopt(rules)
        self._lane_generation += 1
        for agent in self._agents.values():
            self._compute_steps(agent)
            self._refresh(agent)

    def _compute_steps(self, agent: _Agent) -> None:
        for queue in self._queues.values():
            queue.agents.discard(agent.agent_id)
        agent.steps = {}
        for name, queue in self._queues.items():
            lowers = [0] + [w.lower_by for w in queue.rules.widening]
            for step, lower in enumerate(lowers):
                if all(
                    agent.skills.get(skill, 0) >= max(1, level - lower)
                    for skill, level in queue.rules.skills.items()
                ):
                    agent.steps[name] = step
                    queue.agents.add(agent.agent_id)
                    break

    # -- agent slots -----------------------------------------------------------

    def _free_channels(self, agent: _Agent) -> tuple[str, ...]:
        """The channels on which ``agent`` may take one more contact now."""
        if agent.presence is not _AVAILABLE:
            return ()
        load = agent.load
        if not load:
            return agent.channels
        capacity = agent.capacity
        if self.settings.voice_is_exclusive:
            # No chats beside a call, no call beside chats. ``load`` has no
            # zero entries: any key is a contact held.
            if "voice" in load:
                return ()
            return tuple(c for c in agent.channels if c != "voice" and load.get(c, 0) < capacity[c])
        return tuple(c for c in agent.channels if load.get(c, 0) < capacity[c])

    def _refresh(self, agent: _Agent) -> None:
        """Bring the free-agent index up to date after ``agent`` changed."""
        free = self._free_channels(agent)
        # ``_compute_steps`` replaces the mapping, so identity tells a change.
        if free == agent.listed_free and agent.steps is agent.listed_steps:
            return
        agent_id = agent.agent_id
        for channel in agent.listed_free:
            for members in agent.free_sets[channel]:
                members.discard(agent_id)
        if agent.steps is not agent.listed_steps:
            agent.free_sets = {}
        for channel in free:
            sets = agent.free_sets.get(channel)
            if sets is None:
                sets = agent.free_sets[channel] = [
                    self._free.setdefault((name, channel, step), set())
                    for name, step in agent.steps.items()
                ]
            for members in sets:
                members.add(agent_id)
        agent.listed_free, agent.listed_steps = free, agent.steps

    def _take_slot(self, agent: _Agent, contact: _Contact) -> None:
        channel = contact.channel
        agent.holding[contact.contact_id] = channel
        load = agent.load
        load[channel] = load.get(channel, 0) + 1
        self._refresh(agent)

    def _release_slot(self, agent: _Agent, contact_id: str, now: dt.datetime) -> None:
        channel = agent.holding.pop(contact_id, None)
        if channel is not None:
            left = agent.load[channel] - 1
            if left:
                agent.load[channel] = left
            else:
                del agent.load[channel]
            if not agent.holding:
                agent.idle_since = now
        self._refresh(agent)

    @staticmethod
    def _serves(agent: _Agent, queue: str, lane: _Lane) -> bool:
        channel, needs, step = lane
        if step < agent.steps.get(queue, math.inf) or channel not in agent.capacity:
            return False
        return all(agent.skills.get(s, 0) >= lvl for s, lvl in needs)

    def _lanes_on(self, agent: _Agent, free: tuple[str, ...]) -> tuple[int, ...]:
        """The numbers of the lanes ``agent`` may take contacts from on ``free`` channels."""
        if agent.lanes_built != self._lane_generation:
            agent.lanes = [
                (lane[0], number)
                for name in agent.steps
                for lane, number in self._queues[name].lanes.items()
                if self._serves(agent, name, lane)
            ]
            agent.lanes_built = self._lane_generation
            agent.lanes_on = {}
        numbers = agent.lanes_on.get(free)
        if numbers is None:
            numbers = tuple(number for channel, number in agent.lanes if channel in free)
            agent.lanes_on[free] = numbers
        return numbers

    def _new_lane(self, queue: str, lane: _Lane) -> int:
        number = len(self._heaps)
        self._heaps.append([])
        self._heads.append(math.inf)
        self._queues[queue].lanes[lane] = number
        # Lanes only ever get added (a heap stays when it empties), so the agents'
        # lists are extended in place rather than rebuilt. A queue may have
        # hundreds of agents: :meth:`_serves` is written out.
        channel, needs, step = lane
        agents, generation = self._agents, self._lane_generation
        for agent_id in self._queues[queue].agents:
            agent = agents[agent_id]
            if (
                agent.lanes_built != generation
                or step < agent.steps[queue]
                or channel not in agent.capacity
            ):
                continue
            skills = agent.skills
            for skill, level in needs:
                if skills.get(skill, 0) < level:
                    break
            else:
                agent.lanes.append((channel, number))
                lanes_on = agent.lanes_on
                for free, numbers in lanes_on.items():
                    if channel in free:
                        lanes_on[free] = (*numbers, number)
        return number

    # -- contacts --------------------------------------------------------------

    def _key(self, contact: _Contact, queue: _Queue) -> float:
        """The heap key: ``waiting_since - head start``, earliest served first."""
        tier, ivr = contact.tier, contact.ivr_priority
        head = queue.head_starts.get((tier, ivr))
        if head is None:
            head = self.settings.priority.head_start(queue.rules.priority, tier, ivr)
            queue.head_starts[(tier, ivr)] = head
        return contact.waiting_ts - head

    def _enqueue(self, contact: _Contact) -> None:
        """Put ``contact`` in its lane's heap; any entry it had before goes stale.

        An entry is live while its number is the contact's, the contact is
        queued and no reservation for it is pending; any other entry may be
        dropped. So whoever leaves a contact queued after a pending reservation
        failed enqueues it again.
        """
        queue = self._queue(contact.queue)
        contact.entry = entry = next(self._entries)
        lane = (contact.channel, contact.needs, contact.step)
        number = queue.lanes.get(lane)
        if number is None:
            number = self._new_lane(contact.queue, lane)
        contact.lane = number
        heap = self._heaps[number]
        heapq.heappush(heap, (self._key(contact, queue), entry, contact.contact_id))
        self._heads[number] = heap[0][0]
        queue.waiting.add(contact.contact_id)

    def _drop_stale(self, number: int) -> None:
        """Drop the stale entries at the head of a lane's heap.

        A stale entry never becomes live again (a contact that is queued anew is
        enqueued anew), so when it goes makes no difference to any decision;
        dropping it early spares the next agent a look.
        """
        heap = self._heaps[number]
        if not heap or self._live(heap[0]) is not None:
            return
        heapq.heappop(heap)
        while heap and self._live(heap[0]) is None:
            heapq.heappop(heap)
        self._heads[number] = heap[0][0] if heap else math.inf

    def _arrive(self, event: ev.ContactArrived, now: dt.datetime, out: list[ev.Effect]) -> None:
        queue = self._queue(event.queue)
        if event.contact_id in self._contacts:
            raise IllegalTransition("contact", "known", "arrived")
        waiting_since = event.waiting_since or now
        contact = _Contact(
            contact_id=event.contact_id,
            queue=event.queue,
            channel=event.channel,
            tier=event.tier,
            ivr_priority=event.ivr_priority,
            skills=dict(event.skills),
            waiting_since=waiting_since,
            needs=tuple(sorted(event.skills.items())),
            waiting_ts=waiting_since.timestamp(),
        )
        self._contacts[contact.contact_id] = contact
        limit = queue.rules.max_waiting
        if limit is not None and len(queue.waiting) >= limit:
            self._overflow(contact, now, out, reason="queue_full")
            return
        contact.status = check_contact(contact.status, _QUEUED)
        self._enqueue(contact)
        out.append(
            ev.QueueLog(
                now,
                contact.contact_id,
                contact.queue,
                "",
                "enqueued",
                {"channel": contact.channel, "tier": contact.tier or ""},
            )
        )
        self._arm_queue_timers(contact, now)
        self._route_contact(contact, now, out)

    def _arm_queue_timers(self, contact: _Contact, now: dt.datetime) -> None:
        contact.stay += 1
        contact.step = 0
        queue = self._queue(contact.queue)
        if queue.max_wait is not None:
            self._timer(now + queue.max_wait, "max_wait", contact.contact_id, "", contact.stay)
        for after in queue.widening:
            self._timer(now + after, "widen", contact.contact_id, "", contact.stay)

    def _overflow(
        self, contact: _Contact, now: dt.datetime, out: list[ev.Effect], reason: str
    ) -> None:
        origin = contact.queue
        self._queue(origin).waiting.discard(contact.contact_id)
        target = self._queue(origin).rules.overflow_queue
        out.append(
            ev.QueueLog(
                now,
                contact.contact_id,
                origin,
                "",
                "overflowed",
                {"reason": reason, "target": target},
            )
        )
        if target and target != origin and target in self._queues:
            # Moving on keeps the customer's place by score: waiting_since stays.
            contact.status = check_contact(contact.status, _QUEUED)
            contact.queue = target
            contact.rejected_by.clear()
            self._arm_queue_timers(contact, now)
            self._enqueue(contact)
            self._route_contact(contact, now, out)
            return
        contact.status = check_contact(contact.status, _OVERFLOWED)
        out.append(ev.ContactEnded(contact.contact_id, "overflowed", target))
        del self._contacts[contact.contact_id]

    # -- deciding ----------------------------------------------------------------

    def _free_sets(self, contact: _Contact) -> list[set[str]]:
        """The free-agent sets of the contact's queue and channel, for steps 0 to its own."""
        queue = self._queues[contact.queue]
        sets = queue.free_sets.get(contact.channel)
        if sets is None:
            sets = queue.free_sets[contact.channel] = []
        while len(sets) <= contact.step:
            key = (contact.queue, contact.channel, len(sets))
            sets.append(self._free.setdefault(key, set()))
        return sets

    def _candidates(self, contact: _Contact) -> list[_Agent]:
        found = []
        agents = self._agents
        contact_id, needs, lost_to = contact.contact_id, contact.needs, contact.lost_to
        sets = self._free_sets(contact)
        for step in range(contact.step + 1):
            members = sets[step]
            if not members:
                continue
            for agent_id in members:
                agent = agents[agent_id]
                if contact_id in agent.holding or agent_id in lost_to:
                    continue
                if needs and any(agent.skills.get(s, 0) < lvl for s, lvl in needs):
                    continue
                found.append(agent)
        rejected_by = contact.rejected_by
        if not rejected_by:
            return found
        fresh = [a for a in found if a.agent_id not in rejected_by]
        # Agents who refused this contact get it again only when nobody else can.
        return fresh or found

    def _candidate(self, agent: _Agent, contact: _Contact) -> Candidate:
        rules = self._queue(contact.queue).rules
        needs = {**rules.skills, **contact.skills}
        return Candidate(
            agent.agent_id,
            agent.idle_since,
            agent.handled,
            agent.talk_seconds,
            agent.order,
            sum(agent.skills.get(s, 0) for s in needs),
            agent.load.get(contact.channel, 0),
        )

    def _route_contact(self, contact: _Contact, now: dt.datetime, out: list[ev.Effect]) -> None:
        if contact.status is not _QUEUED or contact.pending:
            return
        agents = self._candidates(contact)
        if not agents:
            return
        queue = self._queue(contact.queue)
        if queue.rules.strategy == "ring_all":
            for agent in sorted(agents, key=lambda a: a.agent_id):
                self._reserve(contact, agent, out, shared=True)
            return
        chosen = choose(
            queue.rules.strategy,
            [self._candidate(a, contact) for a in agents],
            self._rng,
            queue.last_agent,
        )
        assert chosen is not None
        self._reserve(contact, self._agents[chosen.agent_id], out, shared=False)

    def _route_agent(self, agent: _Agent, now: dt.datetime, out: list[ev.Effect]) -> None:
        """Give a freed agent the best waiting contact it may take, if any."""
        while True:
            free = self._free_channels(agent)
            if not free:
                return
            numbers = self._lanes_on(agent, free)
            while True:
                number = self._lowest_head(numbers)
                if number < 0:
                    return
                best = self._live(self._heaps[number][0])
                if best is not None:
                    break
                self._drop_stale(number)
            if not self._may_take(agent, best):
                # Rare (the agent refused it, or holds it): look past the heads.
                best = self._best_for(agent, numbers)
                if best is None:
                    return
            if self._queue(best.queue).rules.strategy == "ring_all":
                self._route_contact(best, now, out)
            else:
                self._reserve(best, agent, out, shared=False)

    def _lowest_head(self, numbers: tuple[int, ...]) -> int:
        """The lane among ``numbers`` with the lowest head entry (the first on a tie), or -1.

        If that entry is live and the agent may take it, it is the agent's best
        contact: any other lane's contacts come later, stale entries or not.
        """
        if not numbers:
            return -1
        heads = self._heads
        keys = [heads[number] for number in numbers]
        lowest = min(keys)
        return -1 if lowest == math.inf else numbers[keys.index(lowest)]

    def _best_for(self, agent: _Agent, numbers: tuple[int, ...]) -> _Contact | None:
        """The best contact for ``agent`` across its lanes, looking past heads it may not take."""
        best_key = math.inf
        best: _Contact | None = None
        for number in numbers:
            heap = self._heaps[number]
            if not heap:
                continue
            head = heap[0]
            if head[0] >= best_key:
                continue  # stale or not, this lane cannot beat the best so far
            contact = self._live(head)
            if contact is not None and self._may_take(agent, contact):
                best_key, best = head[0], contact  # the common case: the head itself
                continue
            found = self._head_for(agent, number)
            if found is not None and found[0] < best_key:
                best_key, best = found
        return best

    def _live(self, entry: _Entry) -> _Contact | None:
        """The contact of a live heap entry (see :meth:`_enqueue`), else None."""
        contact = self._contacts.get(entry[2])
        if (
            contact is None
            or contact.entry != entry[1]
            or contact.status is not _QUEUED
            or contact.pending
        ):
            return None
        return contact

    @staticmethod
    def _may_take(agent: _Agent, contact: _Contact) -> bool:
        return (
            contact.contact_id not in agent.holding
            and agent.agent_id not in contact.lost_to
            and agent.agent_id not in contact.rejected_by
        )

    def _head_for(self, agent: _Agent, number: int) -> tuple[float, _Contact] | None:
        """The best contact in a lane that ``agent`` may take, looking at its head only."""
        self._drop_stale(number)
        heap = self._heaps[number]
        if not heap:
            return None
        contact = self._live(heap[0])
        assert contact is not None
        if self._may_take(agent, contact):
            return heap[0][0], contact
        # Entries are taken off to look past them and put back after; stale ones
        # met on the way stay off, so the window holds waiting contacts only.
        looked: list[_Entry] = []
        refused: tuple[float, _Contact] | None = None
        found: tuple[float, _Contact] | None = None
        while heap and len(looked) < HEAD_SCAN:
            entry = heapq.heappop(heap)
            contact = self._live(entry)
            if contact is None:
                continue
            looked.append(entry)
            if contact.contact_id in agent.holding or agent.agent_id in contact.lost_to:
                continue
            if agent.agent_id in contact.rejected_by:
                # As on the contact's side: an agent who refused a contact gets
                # it again only when there is nothing else for it.
                refused = refused or (entry[0], contact)
                continue
            found = (entry[0], contact)
            break
        for entry in looked:
            heapq.heappush(heap, entry)
        self._heads[number] = heap[0][0] if heap else math.inf
        return found or refused

    def _reserve(
        self, contact: _Contact, agent: _Agent, out: list[ev.Effect], shared: bool
    ) -> None:
        contact.pending.add(agent.agent_id)
        self._take_slot(agent, contact)
        self._drop_stale(contact.lane)
        out.append(
            ev.Reserve(
                contact.contact_id,
                agent.agent_id,
                contact.channel,
                agent.capacity.get(contact.channel, 0),
                contact.version,
                shared,
            )
        )

    def _reserved(self, event: ev.ReserveResult, now: dt.datetime, out: list[ev.Effect]) -> None:
        contact = self._contacts.get(event.contact_id)
        agent = self._agent(event.agent_id)
        if contact is None or event.agent_id not in contact.pending or contact.status in FINAL:
            # The contact left while the store was answering: give the slot back.
            if event.ok:
                out.append(ev.Withdraw(event.contact_id, event.agent_id, "abandoned"))
            if contact is not None:
                contact.pending.discard(event.agent_id)
                if contact.status in FINAL and not contact.pending:
                    del self._contacts[contact.contact_id]
            self._release_slot(agent, event.contact_id, now)
            self._route_agent(agent, now, out)
            return
        contact.pending.discard(agent.agent_id)
        if not event.ok:
            # Lost a race with another node: the agent is busy there, so this
            # contact looks elsewhere; the agent is routed again at its next change.
            contact.lost_to.add(agent.agent_id)
            self._release_slot(agent, contact.contact_id, now)
            if contact.status is _QUEUED and not contact.pending:
                # Its heap entry may have been dropped while the reservation was pending.
                self._enqueue(contact)
                self._route_contact(contact, now, out)
            return
        queue = self._queue(contact.queue)
        if contact.status is _QUEUED:
            contact.status = check_contact(contact.status, _OFFERED)
            contact.version += 1
            queue.last_agent = agent.agent_id
        contact.offered_to.add(agent.agent_id)
        deadline = now + queue.offer_timeout
        self._timer(deadline, "offer", contact.contact_id, agent.agent_id, contact.version)
        out.append(
            ev.Offer(contact.contact_id, agent.agent_id, contact.queue, contact.channel, deadline)
        )
        out.append(ev.QueueLog(now, contact.contact_id, contact.queue, agent.agent_id, "offered"))

    # -- offers answered -----------------------------------------------------------

    def _accept(self, event: ev.OfferAccepted, now: dt.datetime, out: list[ev.Effect]) -> None:
        contact = self._contacts.get(event.contact_id)
        if contact is not None and contact.agent == event.agent_id:
            return  # accepted twice (a double click, a retry): nothing more to do
        if contact is None or event.agent_id not in contact.offered_to:
            # Too late (timed out, taken by another, or the customer left).
            out.append(ev.Withdraw(event.contact_id, event.agent_id, "expired"))
            return
        contact.status = check_contact(contact.status, _CONNECTED)
        contact.version += 1
        contact.agent = event.agent_id
        contact.answered_at = now
        self._queue(contact.queue).waiting.discard(contact.contact_id)
        out.append(ev.Connect(contact.contact_id, event.agent_id))
        # Ring-all: the first accept wins, the others stop ringing.
        others = (
            sorted(contact.offered_to - {event.agent_id}) if len(contact.offered_to) > 1 else []
        )
        for other in others:
            out.append(ev.Withdraw(contact.contact_id, other, "taken"))
            self._release_slot(self._agents[other], contact.contact_id, now)
        # The offer is over: the agent now holds the contact as connected.
        contact.offered_to = set()
        agent = self._agents[event.agent_id]
        agent.handled += 1
        waited = (now - contact.waiting_since).total_seconds()
        out.append(
            ev.QueueLog(
                now,
                contact.contact_id,
                contact.queue,
                event.agent_id,
                "connected",
                {"waited": round(waited, 3)},
            )
        )
        for other in others:
            self._route_agent(self._agents[other], now, out)

    def _requeue_after_offer(
        self, contact: _Contact, now: dt.datetime, out: list[ev.Effect]
    ) -> None:
        if contact.offered_to or contact.pending or contact.status is not _OFFERED:
            return
        contact.status = check_contact(contact.status, _QUEUED)
        contact.version += 1
        # Same key as before: the contact goes back to its place at the head.
        self._enqueue(contact)
        self._route_contact(contact, now, out)

    def _reject(self, event: ev.OfferRejected, now: dt.datetime, out: list[ev.Effect]) -> None:
        contact = self._contacts.get(event.contact_id)
        if contact is None or event.agent_id not in contact.offered_to:
            out.append(ev.Withdraw(event.contact_id, event.agent_id, "expired"))
            return
        agent = self._agents[event.agent_id]
        contact.offered_to.discard(agent.agent_id)
        contact.rejected_by.add(agent.agent_id)
        out.append(ev.Withdraw(contact.contact_id, agent.agent_id, "rejected"))
        out.append(ev.QueueLog(now, contact.contact_id, contact.queue, agent.agent_id, "rejected"))
        self._release_slot(agent, contact.contact_id, now)
        self._requeue_after_offer(contact, now, out)
        self._route_agent(agent, now, out)

    def _offer_timeout(
        self, contact: _Contact, agent_id: str, now: dt.datetime, out: list[ev.Effect]
    ) -> None:
        agents = [agent_id] if agent_id in contact.offered_to else []
        ring_all = self._queue(contact.queue).rules.strategy == "ring_all"
        if ring_all:
            agents = sorted(contact.offered_to)
        for name in agents:
            agent = self._agents[name]
            contact.offered_to.discard(name)
            contact.rejected_by.add(name)
            out.append(ev.Withdraw(contact.contact_id, name, "timeout"))
            out.append(ev.QueueLog(now, contact.contact_id, contact.queue, name, "timeout"))
            self._release_slot(agent, contact.contact_id, now)
            missed = self.settings.missed_offer_presence
            if not ring_all and missed != agent.presence.value:
                agent.presence = check_presence(agent.presence, Presence(missed))
                agent.reason = self.settings.missed_offer_reason
                self._refresh(agent)
                out.append(ev.PresenceSet(name, agent.presence.value, agent.reason))
        self._requeue_after_offer(contact, now, out)
        for name in agents:
            self._route_agent(self._agents[name], now, out)

    # -- contact ends ----------------------------------------------------------------

    def _left(self, event: ev.ContactLeft, now: dt.datetime, out: list[ev.Effect]) -> None:
        contact = self._contacts.get(event.contact_id)
        if contact is None:
            return
        if contact.status in (_QUEUED, _OFFERED, _ARRIVED):
            if contact.callback is not None and contact.status is _QUEUED:
                return  # the caller hung up after asking to be called back
            waited = (now - contact.waiting_since).total_seconds()
            self._queue(contact.queue).waiting.discard(contact.contact_id)
            freed = sorted(contact.offered_to)
            for name in freed:
                out.append(ev.Withdraw(contact.contact_id, name, "abandoned"))
                self._release_slot(self._agents[name], contact.contact_id, now)
            contact.offered_to.clear()
            contact.status = check_contact(contact.status, _ABANDONED)
            out.append(
                ev.QueueLog(
                    now,
                    contact.contact_id,
                    contact.queue,
                    "",
                    "abandoned",
                    {"waited": round(waited, 3)},
                )
            )
            out.append(ev.ContactEnded(contact.contact_id, "abandoned"))
            if not contact.pending:
                del self._contacts[contact.contact_id]
            self._drop_stale(contact.lane)
            for name in freed:
                self._route_agent(self._agents[name], now, out)
            return
        if contact.status is _CONNECTED:
            assert contact.agent is not None
            agent = self._agents[contact.agent]
            if contact.answered_at is not None:
                agent.talk_seconds += (now - contact.answered_at).total_seconds()
            queue = self._queue(contact.queue)
            if queue.rules.wrapup_seconds > 0:
                contact.status = check_contact(contact.status, _WRAPUP)
                deadline = now + queue.wrapup
                self._timer(deadline, "wrapup", contact.contact_id, agent.agent_id, contact.version)
                out.append(ev.StartWrapup(contact.contact_id, agent.agent_id, deadline))
                out.append(
                    ev.QueueLog(now, contact.contact_id, contact.queue, agent.agent_id, "wrapup")
                )
            else:
                self._finish(contact, agent, now, out)

    def _on_wrapup_done(self, event: ev.WrapupDone, now: dt.datetime, out: list[ev.Effect]) -> None:
        self._wrapup_done(event.contact_id, event.agent_id, now, out)

    def _wrapup_done(
        self, contact_id: str, agent_id: str, now: dt.datetime, out: list[ev.Effect]
    ) -> None:
        contact = self._contacts.get(contact_id)
        if contact is None or contact.agent != agent_id or contact.status is not _WRAPUP:
            return
        self._finish(contact, self._agents[agent_id], now, out)

    def _finish(
        self, contact: _Contact, agent: _Agent, now: dt.datetime, out: list[ev.Effect]
    ) -> None:
        contact.status = check_contact(contact.status, _DONE)
        out.append(ev.Finish(contact.contact_id, agent.agent_id))
        out.append(ev.QueueLog(now, contact.contact_id, contact.queue, agent.agent_id, "done"))
        out.append(ev.ContactEnded(contact.contact_id, "done"))
        del self._contacts[contact.contact_id]
        self._release_slot(agent, contact.contact_id, now)
        self._route_agent(agent, now, out)

    def _callback(
        self, event: ev.CallbackRequested, now: dt.datetime, out: list[ev.Effect]
    ) -> None:
        contact = self._contact(event.contact_id)
        if contact.status not in (_QUEUED, _OFFERED):
            raise IllegalTransition("contact", contact.status, "callback requested")
        contact.callback = event.number
        out.append(ev.QueueLog(now, contact.contact_id, contact.queue, "", "callback_requested"))

    def _move(self, event: ev.ContactMoved, now: dt.datetime, out: list[ev.Effect]) -> None:
        contact = self._contact(event.contact_id)
        self._queue(event.queue)
        if contact.status is not _QUEUED or contact.pending:
            raise IllegalTransition("contact", contact.status, f"moved to {event.queue}")
        self._queue(contact.queue).waiting.discard(contact.contact_id)
        out.append(
            ev.QueueLog(
                now, contact.contact_id, contact.queue, "", "moved", {"target": event.queue}
            )
        )
        contact.queue = event.queue
        contact.rejected_by.clear()
        contact.status = check_contact(contact.status, _QUEUED)
        self._arm_queue_timers(contact, now)
        self._enqueue(contact)
        self._route_contact(contact, now, out)

    # -- agents ----------------------------------------------------------------------

    def _join(self, event: ev.AgentJoined, now: dt.datetime, out: list[ev.Effect]) -> None:
        agent = self._agents.get(event.agent_id)
        if agent is None:
            agent = _Agent(
                event.agent_id,
                dict(event.skills),
                dict(event.capacity),
                event.order,
                idle_since=now,
            )
            self._agents[event.agent_id] = agent
        else:
            agent.skills, agent.capacity = dict(event.skills), dict(event.capacity)
            agent.order = event.order
        agent.channels = tuple(c for c, slots in agent.capacity.items() if slots > 0)
        self._compute_steps(agent)
        agent.lanes_built = -1
        self._refresh(agent)
        self._route_agent(agent, now, out)

    def _presence(
        self, event: ev.AgentPresenceChanged, now: dt.datetime, out: list[ev.Effect]
    ) -> None:
        agent = self._agent(event.agent_id)
        target = Presence(event.presence)
        agent.presence = check_presence(agent.presence, target)
        agent.reason = "" if target is _AVAILABLE else event.reason
        if target is _AVAILABLE and not agent.holding:
            agent.idle_since = now
        self._refresh(agent)
        out.append(
            ev.QueueLog(
                now, "", "", agent.agent_id, f"agent_{target.value}", {"reason": agent.reason}
            )
        )
        if target is not _AVAILABLE:
            # Offers still ringing for an agent who leaves go to someone else.
            for contact_id in [c for c in agent.holding if c in self._contacts]:
                contact = self._contacts[contact_id]
                if agent.agent_id in contact.offered_to:
                    contact.offered_to.discard(agent.agent_id)
                    out.append(ev.Withdraw(contact_id, agent.agent_id, "agent_left"))
                    self._release_slot(agent, contact_id, now)
                    self._requeue_after_offer(contact, now, out)
            return
        self._route_agent(agent, now, out)

    def _on_configured(
        self, event: QueueConfigured, now: dt.datetime, out: list[ev.Effect]
    ) -> None:
        self._configure(event.rules)
        for agent in self._agents.values():
            self._route_agent(agent, now, out)

    # -- timers ----------------------------------------------------------------------

    def _timer(
        self, at: dt.datetime, kind: str, contact_id: str, agent_id: str, stamp: int
    ) -> None:
        heapq.heappush(self._timers, (at, next(self._seq), kind, contact_id, agent_id, stamp))

    def _timer_valid(self, timer: _Timer) -> bool:
        contact = self._contacts.get(timer[3])
        if contact is None:
            return False
        kind = timer[2]
        if kind == "offer":
            return contact.version == timer[5] and timer[4] in contact.offered_to
        if kind == "wrapup":
            return contact.status is _WRAPUP
        if kind == "widen":
            # Widening counts while an offer rings too, should the contact come back.
            return contact.stay == timer[5] and contact.status in _WIDENING
        # max_wait belongs to one stay in one queue.
        return contact.stay == timer[5] and contact.status is _QUEUED

    def _fire_timers(self, event: ev.Tick, now: dt.datetime, out: list[ev.Effect]) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)
            if not self._timer_valid(timer):
                continue
            _, _, kind, contact_id, agent_id, _ = timer
            contact = self._contacts[contact_id]
            if kind == "offer":
                self._offer_timeout(contact, agent_id, now, out)
            elif kind == "wrapup":
                self._wrapup_done(contact_id, contact.agent or "", now, out)
            elif kind == "max_wait":
                if contact.pending:
                    continue
                self._overflow(contact, now, out, reason="max_wait")
            elif kind == "widen":
                contact.step += 1
                if contact.status is _QUEUED:
                    # Into the next step's lane, where more agents look.
                    left = contact.lane
                    self._enqueue(contact)
                    self._drop_stale(left)
                    self._route_contact(contact, now, out)
