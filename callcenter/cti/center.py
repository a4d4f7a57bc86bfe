"""The live contact center: routing, chats and consoles wired together.

:class:`ContactCenter` owns the routing engine and the event feed. Contacts
enter through :meth:`arrive` with the screen pop already built (it also gives
the customer's tier, which the router needs for priority). The router's
effects become feed events for the agent and supervisor consoles and
messages for chat customers, and every contact that ends is recorded: a
handled one as an interaction with its ticket, an abandoned one as an
interaction only.

Transports (websocket handlers) register :class:`Outbox` objects; pushing to
one never blocks, so routing is never held up by a slow console.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import logging
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select

from callcenter.acd import erlang
from callcenter.acd import events as ev
from callcenter.acd.engine import RoutingEngine
from callcenter.acd.lifecycle import IllegalTransition
from callcenter.acd.priority import PriorityRules
from callcenter.acd.router import QueueConfigured, Router
from callcenter.acd.rules import QueueRules, RouterSettings
from callcenter.acd.stats import IntervalTotals, QueueStats, interval_start
from callcenter.clock import to_iso, utcnow
from callcenter.config import RoutingSettings
from callcenter.cti.feed import Feed, FeedEvent, Replay, Resync, visible_to
from callcenter.cti.webhooks import WebhookQueue
from callcenter.services import Services
from callcenter.state.memory import MemoryLiveState
from callcenter.store import records
from callcenter.store.models import Queue, QueueSkill, Skill, Ticket, User, UserSkill
from callcenter.store.tickets import new_ticket

log = logging.getLogger(__name__)

SUPERVISORS = "supervisor"
#: Waiting contacts a queue's wallboard figures list, oldest first: enough to
#: pick one to move, while every queue event kept in the feed stays small.
WAITING_SHOWN = 20
#: Delay before the queues' agent counts are redone after agents change: a
#: burst of changes is counted once (each count walks every agent per queue).
RECOUNT_SECONDS = 0.5
#: The queue of contacts meant for one agent: a call transferred to an agent,
#: or an agent's consultation call. It asks no skill of its own; each of its
#: contacts asks for the agent's personal skill, which only that agent has, so
#: the router keeps the agent's capacity and presence rules for these calls too.
DIRECT_QUEUE = "direct"
#: Seconds an agent's phone rings for a transfer or consultation before it is
#: given up, and the direct queue's wrap-up time.
DIRECT_RING_SECONDS = 30.0
DIRECT_WRAPUP_SECONDS = 30.0
#: Longest a call waits for its one agent (who let it ring out, say): then it
#: overflows, and the caller's flow goes on as after any queue's overflow.
DIRECT_MAX_WAIT_SECONDS = 120.0


def personal_skill(agent: str) -> str:
    """The skill only ``agent`` has: what a contact for that agent alone asks for."""
    return f"agent:{agent}"


class Outbox(Protocol):
    def push(self, message: dict[str, Any]) -> None: ...


class ContactError(ValueError):
    """A console asked for something about a contact it may not touch; ``code`` says what."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Contact:
    """What the live side keeps of a contact until it is recorded."""

    contact_id: str
    channel: str
    queue: str
    pop: dict[str, Any]
    remote_identity: str
    arrived_at: dt.datetime
    customer_name: str
    customer_id: int | None
    collected: dict[str, Any] = field(default_factory=dict)
    offered_at: dt.datetime | None = None
    answered_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    agent_id: str | None = None
    offered_to: set[str] = field(default_factory=set)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    #: The customer's side of a chat (None for calls, or while disconnected).
    customer: Outbox | None = None
    wrapup: dict[str, Any] | None = None
    recorded: bool = False
    #: A call's recording (WAV, caller left and agent right) and IVR steps.
    recording_path: str | None = None
    ivr_path: list[str] = field(default_factory=list)
    csat_score: int | None = None
    #: SHA-256 of the chat's resume token.
    resume_hash: str = ""
    #: Fires when a disconnected chat customer has not come back in time.
    grace: asyncio.TimerHandle | None = None
    #: The number to call back, once the caller asked for it (the contact keeps
    #: its place in line, and the agent it is offered to calls that number).
    callback_number: str = ""


class VoiceCalls(Protocol):
    def routed(self, effect: ev.Offer | ev.Withdraw | ev.Connect | ev.ContactEnded) -> None:
        """Ring, stop ringing, bridge or hang up; must not block."""

    async def control(self, contact_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Carry out a call control from the agent's console; returns the call's state."""


@dataclass
class _Console:
    outbox: Outbox
    user_id: str
    roles: frozenset[str]


@dataclass
class _AgentBoard:
    """What the wallboard shows of an agent beyond the router's own state."""

    state: str = ""
    since: dt.datetime | None = None
    #: (contact id, status) of what the agent holds, as last shown.
    holding: tuple[tuple[str, str], ...] = ()
    #: Contacts finished on ``day`` (the site's local date).
    day: dt.date | None = None
    handled: int = 0


def router_settings(routing: RoutingSettings) -> RouterSettings:
    return RouterSettings(
        priority=PriorityRules(
            tier_bonus={
                "key": routing.tier_bonus_key,
                "normal": routing.tier_bonus_normal,
                "small": routing.tier_bonus_small,
            },
            queue_bonus_per_level=routing.queue_bonus_per_level,
            ivr_bonus_per_level=routing.ivr_bonus_per_level,
        ),
        missed_offer_presence=routing.missed_offer_presence,
        missed_offer_reason=routing.missed_offer_reason,
        voice_is_exclusive=routing.voice_is_exclusive,
    )


class ContactCenter:
    def __init__(self, services: Services, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.services = services
        self.clock = clock
        self.feed = Feed(services.settings.cti.replay_window)
        self.router = Router(settings=router_settings(services.settings.routing))
        self.store = MemoryLiveState()
        self.engine = RoutingEngine(self.router, self.store, services.recorder, clock)
        self.engine.listeners.append(self._on_effect)
        self.stats = QueueStats({})
        self.intervals = IntervalTotals(self.stats.thresholds)
        self._flusher: asyncio.Task[None] | None = None
        self.contacts: dict[str, Contact] = {}
        self.queues: dict[str, QueueRules] = {}
        #: Consoles by user id and by role, so an event reaches its audience
        #: without a walk over every console.
        self._by_key: dict[str, list[_Console]] = {}
        self._everyone: list[_Console] = []
        self._agents_joined: set[str] = set()
        self._agent_names: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._grace: dict[str, asyncio.TimerHandle] = {}
        #: Agent -> (skills, chat capacity) as last joined.
        self._profiles: dict[str, tuple[dict[str, int], int]] = {}
        #: Agents whose phone has a live registration.
        self._voice_reachable: set[str] = set()
        #: With telephony on, only agents with a registered phone take calls.
        self.voice_needs_phone = False
        #: The voice layer, told of what the router does with calls.
        self.voice_calls: VoiceCalls | None = None
        self._boards: dict[str, _AgentBoard] = {}
        #: Queue -> service-level goal as a fraction (the queue's sl_target_percent).
        self._sl_goals: dict[str, float] = {}
        #: Queue -> agents by state as last published, and whether a recount is due.
        self._counted: dict[str, dict[str, int]] = {}
        self._recount_due = False
        #: Console outbox id -> (ticket id, user id, user's name, outbox): who has
        #: which ticket open, so two agents do not work one ticket unawares.
        self._viewing: dict[int, tuple[str, str, str, Outbox]] = {}
        self.webhooks = WebhookQueue(services.recorder)

    # -- life ----------------------------------------------------------------

    async def start(self) -> None:
        self.engine.start()
        self.webhooks.start()
        await self.webhooks.load(self.services.sessions)
        await self.load_queues()
        self._flusher = asyncio.create_task(self._flush_loop(), name="interval-flush")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for handle in self._grace.values():
            handle.cancel()
        for contact in self.contacts.values():
            if contact.grace is not None:
                contact.grace.cancel()
        await self.engine.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush_intervals()
        await self.webhooks.stop()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.services.settings.cti.interval_flush_seconds)
            await self.flush_intervals()

    async def flush_intervals(self) -> None:
        """Save the interval totals that changed since the last flush; finished
        intervals are then forgotten here (the database has them)."""
        now = self.clock()
        current = interval_start(now)
        for key, row in list(self.intervals.rows.items()):
            await self.services.recorder.record(
                records.QUEUE_INTERVAL,
                {
                    "queue": row.queue,
                    "start": to_iso(row.start),
                    "offered": row.offered,
                    "answered": row.answered,
                    "answered_in_threshold": row.answered_in_threshold,
                    "abandoned": row.abandoned,
                    "wait_seconds": row.wait_seconds,
                    "handle_seconds": row.handle_seconds,
                    "handled": row.handled,
                },
            )
            if row.start < current:
                del self.intervals.rows[key]

    async def load_queues(self) -> None:
        """(Re)read the queues from the database into the router."""
        async with self.services.sessions() as db:
            queues = list((await db.execute(select(Queue))).scalars())
            rows = await db.execute(
                select(QueueSkill.queue_id, Skill.name, QueueSkill.min_proficiency).join(
                    Skill, Skill.id == QueueSkill.skill_id
                )
            )
            skills: dict[int, dict[str, int]] = {}
            for queue_id, name, level in rows:
                skills.setdefault(queue_id, {})[name] = level
        names = {q.id: q.name for q in queues}
        for q in queues:
            rules = QueueRules(
                name=q.name,
                skills=skills.get(q.id, {}),
                strategy=q.strategy,
                priority=q.priority,
                wrapup_seconds=q.wrapup_seconds,
                offer_timeout_seconds=q.offer_timeout_seconds,
                max_waiting=q.max_waiting,
                max_wait_seconds=q.max_wait_seconds,
                overflow_queue=names.get(q.overflow_queue_id or -1, ""),
            )
            self.queues[q.name] = rules
            self.stats.thresholds[q.name] = q.sl_threshold_seconds
            self._sl_goals[q.name] = q.sl_target_percent / 100
            await self.engine.submit(QueueConfigured(rules))
        # Transfers to an agent go ahead of the agent's other queues.
        direct = QueueRules(
            name=DIRECT_QUEUE,
            priority=10,
            wrapup_seconds=DIRECT_WRAPUP_SECONDS,
            offer_timeout_seconds=DIRECT_RING_SECONDS,
            max_wait_seconds=DIRECT_MAX_WAIT_SECONDS,
        )
        self.queues[DIRECT_QUEUE] = direct
        self.stats.thresholds.setdefault(DIRECT_QUEUE, 20)
        await self.engine.submit(QueueConfigured(direct))

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, kept until it ends (awaited at stop)."""
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- consoles ------------------------------------------------------------

    def attach(self, outbox: Outbox, user_id: str, roles: frozenset[str]) -> None:
        console = _Console(outbox, user_id, roles)
        self._everyone.append(console)
        for key in roles | {user_id}:
            self._by_key.setdefault(key, []).append(console)
        handle = self._grace.pop(user_id, None)
        if handle is not None:
            handle.cancel()

    def detach(self, outbox: Outbox, user_id: str) -> None:
        self.view_ticket(outbox, user_id, "", "")
        self._everyone = [c for c in self._everyone if c.outbox is not outbox]
        for key in list(self._by_key):
            kept = [c for c in self._by_key[key] if c.outbox is not outbox]
            if kept:
                self._by_key[key] = kept
            else:
                del self._by_key[key]
        if user_id in self._agents_joined and user_id not in self._by_key:
            grace = self.services.settings.cti.agent_grace_seconds
            loop = asyncio.get_running_loop()
            self._grace[user_id] = loop.call_later(
                grace, lambda: self.spawn(self._console_gone(user_id))
            )

    async def _console_gone(self, user_id: str) -> None:
        """No console came back within the grace period: the agent goes offline."""
        self._grace.pop(user_id, None)
        if user_id in self._by_key:
            return
        if self.router.agent_presence(user_id)[0] != "offline":
            await self.set_presence(user_id, "offline", "disconnected")

    def catch_up(
        self, user_id: str, roles: frozenset[str], epoch: str | None, seq: int | None
    ) -> Replay | Resync:
        if epoch is None or seq is None:
            return Resync("epoch")
        return self.feed.since(epoch, seq, visible_to(user_id, roles))

    def _publish(self, kind: str, data: dict[str, Any], audience: frozenset[str]) -> FeedEvent:
        event = self.feed.publish(kind, self.clock(), data, audience)
        self.webhooks.offer(event, self.feed.epoch)
        wire = event.wire(self.feed.epoch)
        if not audience:
            targets: list[_Console] = self._everyone
        else:
            seen: set[int] = set()
            targets = []
            for key in audience:
                for console in self._by_key.get(key, ()):
                    if id(console) not in seen:
                        seen.add(id(console))
                        targets.append(console)
        for console in targets:
            console.outbox.push(wire)
        return event

    # -- agents ----------------------------------------------------------------

    async def join_agent(self, user_id: int) -> None:
        """Make the agent known to the router with its skills and capacities."""
        async with self.services.sessions() as db:
            user = await db.get(User, user_id)
            if user is None:
                raise ContactError("unknown_agent", "no such user")
            rows = await db.execute(
                select(Skill.name, UserSkill.proficiency)
                .join(Skill, Skill.id == UserSkill.skill_id)
                .where(UserSkill.user_id == user_id)
            )
            skills = {name: level for name, level in rows}
        agent = str(user_id)
        self._agent_names[agent] = user.display_name
        self._agents_joined.add(agent)
        self._profiles[agent] = (skills, user.chat_capacity)
        await self._submit_profile(agent)

    async def set_voice_reachable(self, user_id: int, reachable: bool) -> None:
        """The agent's phone registered, or its last registration lapsed.

        Calls ring the agent's phone, so an agent without a live registration
        gets no voice capacity and the router offers it no call.
        """
        agent = str(user_id)
        if reachable:
            self._voice_reachable.add(agent)
        else:
            self._voice_reachable.discard(agent)
        if agent in self._profiles:
            await self._submit_profile(agent)

    async def _submit_profile(self, agent: str) -> None:
        skills, chats = self._profiles[agent]
        voice = 1 if agent in self._voice_reachable or not self.voice_needs_phone else 0
        skills = {**skills, personal_skill(agent): 1}
        await self.engine.submit(ev.AgentJoined(agent, skills, {"voice": voice, "chat": chats}))

    def free_for_call(self, agent: str) -> bool:
        """Whether ``agent`` could take a call now: joined, phone registered when
        calls need one, available, and holding no contact."""
        if agent not in self._agents_joined:
            return False
        if self.voice_needs_phone and agent not in self._voice_reachable:
            return False
        try:
            presence, _ = self.router.agent_presence(agent)
            load = self.router.agent_load(agent)
        except KeyError:
            return False
        return presence == "available" and not any(load.values())

    async def set_presence(self, agent: str, presence: str, reason: str = "") -> None:
        if presence not in ("available", "away", "offline"):
            raise ContactError("invalid_presence", "presence is available, away or offline")
        try:
            await self.engine.submit(ev.AgentPresenceChanged(agent, presence, reason[:64]))
        except IllegalTransition as exc:
            raise ContactError("illegal_transition", str(exc)) from None
        self._publish_agent(agent)

    def _publish_agent(self, agent: str) -> None:
        presence, reason = self.router.agent_presence(agent)
        data = {"agent_id": agent, "presence": presence, "reason": reason}
        self._publish("presence", data, frozenset({agent}))
        self._publish("agent", self._agent_figures(agent, self.clock()), frozenset({SUPERVISORS}))
        self._recount_soon()

    def _agent_figures(self, agent: str, now: dt.datetime) -> dict[str, Any]:
        """An agent as the wallboard shows it; notes the time its state changed."""
        presence, reason = self.router.agent_presence(agent)
        load = self.router.agent_load(agent)
        contacts: list[dict[str, Any]] = []
        # Most agents hold nothing: they need no walk over the live contacts.
        if load:
            for c in self.contacts.values():
                if c.agent_id != agent and agent not in c.offered_to:
                    continue
                status = self._router_status(c.contact_id)
                if status not in ("offered", "connected", "wrapup"):
                    continue
                since = {"offered": c.offered_at, "connected": c.answered_at}.get(
                    status, c.ended_at
                )
                contacts.append(
                    {
                        "contact_id": c.contact_id,
                        "channel": c.channel,
                        "queue": c.queue,
                        "state": status,
                        "since": to_iso(since),
                    }
                )
        held = {c["state"] for c in contacts}
        # An agent talking on one chat and ringing for another shows as busy.
        if "connected" in held:
            state = "busy"
        elif "offered" in held:
            state = "ringing"
        elif "wrapup" in held:
            state = "wrapup"
        else:
            state = presence
        board = self._boards.setdefault(agent, _AgentBoard())
        if board.state != state:
            board.state, board.since = state, now
        board.holding = tuple((c["contact_id"], c["state"]) for c in contacts)
        return {
            "agent_id": agent,
            "name": self._agent_names.get(agent, agent),
            "presence": presence,
            "reason": reason,
            "load": load,
            "state": state,
            "state_since": to_iso(board.since),
            "contacts": contacts,
            "handled_today": board.handled if board.day == self._site_day(now) else 0,
        }

    def _publish_board(self, agent: str, now: dt.datetime) -> None:
        """Tell the wallboards about an agent who started or stopped ringing or wrapping up.

        No presence changed, so only the supervisors hear of it, and only if
        what they see of the agent did change (one step may touch it twice).
        """
        board = self._boards.get(agent)
        before = (board.state, board.holding) if board else None
        figures = self._agent_figures(agent, now)
        after = self._boards[agent]
        if (after.state, after.holding) != before:
            self._publish("agent", figures, frozenset({SUPERVISORS}))
            self._recount_soon()

    def _publish_queue(self, name: str, now: dt.datetime) -> None:
        figures = self._queue_figures(name, now)
        self._counted[name] = figures["agents"]
        self._publish("queue", figures, frozenset({SUPERVISORS}))

    def _recount_soon(self) -> None:
        """An agent changed: every queue it serves counts its agents anew, shortly."""
        if not self._recount_due:
            self._recount_due = True
            self.spawn(self._recount())

    async def _recount(self) -> None:
        await asyncio.sleep(RECOUNT_SECONDS)
        self._recount_due = False
        now = self.clock()
        for name in sorted(self.queues):
            if self.router.agent_states(name) != self._counted.get(name):
                self._publish_queue(name, now)

    def _router_status(self, contact_id: str) -> str:
        """The router's status of a contact; "" once it has left routing (or not yet come)."""
        try:
            return str(self.router.contact_status(contact_id))
        except KeyError:
            return ""

    def _site_day(self, now: dt.datetime) -> dt.date:
        return now.astimezone(zoneinfo.ZoneInfo(self.services.settings.site.time_zone)).date()

    def agent_snapshot(self, agent: str) -> dict[str, Any]:
        presence, reason = (
            self.router.agent_presence(agent) if agent in self._agents_joined else ("offline", "")
        )
        mine = [c for c in self.contacts.values() if c.agent_id == agent or agent in c.offered_to]
        return {
            "presence": presence,
            "reason": reason,
            "contacts": [
                {
                    "contact_id": c.contact_id,
                    "channel": c.channel,
                    "queue": c.queue,
                    "state": (
                        "offered"
                        if c.agent_id != agent
                        else "wrapup"
                        if c.ended_at is not None
                        else "connected"
                    ),
                    "pop": c.pop,
                    "transcript": list(c.transcript),
                }
                for c in mine
            ],
        }

    def supervisor_snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            # The wallboard's clock for the ``since`` times, whatever the browser's says.
            "at": to_iso(now),
            "queues": [self._queue_figures(name, now) for name in sorted(self.queues)],
            "agents": [self._agent_figures(a, now) for a in sorted(self._agents_joined)],
        }

    def position(self, queue: str, contact_id: str) -> int:
        """A waiting contact's place in line (see :meth:`QueueStats.position`)."""
        return self.stats.position(queue, contact_id)

    def queue_figures(self, name: str) -> dict[str, Any]:
        """A queue's live figures as the wallboard shows them."""
        return self._queue_figures(name, self.clock())

    def _queue_figures(self, name: str, now: dt.datetime) -> dict[str, Any]:
        figures = self.stats.figures(name, now)
        agents = self.router.agent_states(name)
        working = agents["busy"] + agents["wrapup"]
        staffed = working + agents["available"]
        threshold = self.stats.thresholds.get(name, self.stats.default_threshold)
        goal = self._sl_goals.get(name)
        window_hours = self.stats.window.total_seconds() / 3600
        arrivals = (figures.answered + figures.abandoned) / window_hours
        needed = None
        if arrivals and figures.aht_seconds and goal is not None:
            aht = figures.aht_seconds
            try:
                needed = erlang.agents_required(
                    erlang.traffic_erlangs(arrivals, aht), aht, threshold, goal
                )
            except ValueError:
                needed = None  # a goal of 100 %, which no staffing promises
        waiting = heapq.nsmallest(
            WAITING_SHOWN,
            (
                c
                for c in self.contacts.values()
                if c.queue == name
                and c.agent_id is None
                and self._router_status(c.contact_id) in ("queued", "offered")
            ),
            key=lambda c: c.arrived_at,
        )
        return {
            "queue": name,
            "waiting": figures.waiting,
            "longest_wait_seconds": round(figures.longest_wait_seconds, 1),
            "service_level": figures.service_level,
            "service_level_abandons": figures.service_level_abandons,
            "asa_seconds": figures.asa_seconds,
            "aht_seconds": figures.aht_seconds,
            "abandon_rate": figures.abandon_rate,
            "answered": figures.answered,
            "abandoned": figures.abandoned,
            "agents": agents,
            # Share of the agents at work now who are handling contacts.
            "occupancy": working / staffed if staffed else None,
            "sl_goal": goal,
            "sl_threshold_seconds": threshold,
            "arrivals_per_hour": round(arrivals, 1),
            "agents_staffed": staffed,
            "agents_needed": needed,
            "waiting_contacts": [
                {
                    "contact_id": c.contact_id,
                    "channel": c.channel,
                    "customer_name": c.customer_name or c.remote_identity,
                    "waiting_since": to_iso(c.arrived_at),
                    "state": "offered" if c.offered_to else "queued",
                }
                for c in waiting
            ],
        }

    # -- contacts --------------------------------------------------------------

    async def arrive(
        self,
        contact: Contact,
        tier: str | None,
        first_message: str = "",
        *,
        skills: dict[str, int] | None = None,
    ) -> None:
        """Queue ``contact``; a chat's opening message is recorded before any offer shows it.

        ``skills`` are asked of the agent beyond the queue's own (an agent's
        personal skill, for a contact meant for that agent).
        """
        if contact.queue not in self.queues:
            raise ContactError("unknown_queue", f"no queue {contact.queue}")
        self.contacts[contact.contact_id] = contact
        if first_message:
            self._message(contact, "customer", None, first_message)
        await self.engine.submit(
            ev.ContactArrived(
                contact.contact_id,
                contact.queue,
                contact.channel,
                tier=tier,
                skills=skills or {},
                waiting_since=contact.arrived_at,
            )
        )

    def _mine(self, agent: str, contact_id: str, connected: bool = True) -> Contact:
        contact = self.contacts.get(contact_id)
        if contact is None or (
            contact.agent_id != agent if connected else agent not in contact.offered_to
        ):
            raise ContactError("not_your_contact", "no such contact of yours")
        return contact

    async def accept(self, agent: str, contact_id: str) -> None:
        self._mine(agent, contact_id, connected=False)
        await self.engine.submit(ev.OfferAccepted(contact_id, agent))

    async def reject(self, agent: str, contact_id: str) -> None:
        self._mine(agent, contact_id, connected=False)
        await self.engine.submit(ev.OfferRejected(contact_id, agent))

    async def customer_message(self, contact_id: str, text: str) -> None:
        contact = self.contacts[contact_id]
        self._message(contact, "customer", None, text)

    async def agent_message(self, agent: str, contact_id: str, text: str) -> None:
        contact = self._mine(agent, contact_id)
        if contact.ended_at is not None:
            raise ContactError("contact_ended", "the customer has left")
        self._message(contact, "agent", agent, text)

    def _message(self, contact: Contact, sender: str, agent: str | None, text: str) -> None:
        now = self.clock()
        entry = {"from": sender, "text": text, "at": to_iso(now)}
        contact.transcript.append(entry)
        # Stored as it arrives: the spool keeps it through a database outage.
        self.spawn(
            self.services.recorder.record(
                records.CHAT_MESSAGE,
                {
                    "id": str(uuid.uuid4()),
                    "contact_id": contact.contact_id,
                    "sender": sender,
                    "agent_id": int(agent) if agent else None,
                    "body": text,
                    "at": to_iso(now),
                },
            )
        )
        if sender == "agent" and contact.customer is not None:
            contact.customer.push({"type": "message", **entry})
        if contact.agent_id is not None:
            self._publish(
                "message",
                {"contact_id": contact.contact_id, **entry},
                frozenset({contact.agent_id}),
            )

    def typing(self, contact_id: str, sender: str, agent: str | None = None) -> None:
        contact = self.contacts.get(contact_id)
        if contact is None:
            return
        if sender == "agent":
            if contact.agent_id != agent:
                raise ContactError("not_your_contact", "no such contact of yours")
            if contact.customer is not None:
                contact.customer.push({"type": "typing", "from": "agent"})
        elif contact.agent_id is not None:
            # Not kept in the feed's replay: a typing hint is stale a moment later.
            for console in self._by_key.get(contact.agent_id, ()):
                if console.user_id == contact.agent_id:
                    console.outbox.push(
                        {"type": "typing", "contact_id": contact_id, "from": "customer"}
                    )

    def view_ticket(self, outbox: Outbox, user_id: str, name: str, ticket_id: str) -> None:
        """A console opened ``ticket_id`` (or closed its ticket, with ""); tell its viewers.

        Like typing hints, viewers are not kept in the feed: after a reconnect
        the console says again what it has open.
        """
        before = self._viewing.pop(id(outbox), None)
        if ticket_id:
            self._viewing[id(outbox)] = (ticket_id, user_id, name, outbox)
        for ticket in {before[0] if before else "", ticket_id} - {""}:
            watchers = [v for v in self._viewing.values() if v[0] == ticket]
            for _, viewer, _, console in watchers:
                others = sorted({n for _, u, n, _ in watchers if u != viewer})
                console.push({"type": "viewers", "ticket_id": ticket, "users": others})

    def agent_name(self, agent: str | None) -> str:
        """The name customers see for an agent ("" for none)."""
        return self._agent_names.get(agent, "") if agent else ""

    def is_joined(self, agent: str) -> bool:
        return agent in self._agents_joined

    def joined_agents(self) -> list[str]:
        return list(self._agents_joined)

    async def move(self, contact_id: str, queue: str) -> None:
        """A supervisor moves a waiting contact to another queue."""
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise ContactError("unknown_contact", "no such contact")
        if queue not in self.queues:
            raise ContactError("unknown_queue", f"no queue {queue}")
        await self.engine.submit(ev.ContactMoved(contact_id, queue))
        contact.queue = queue

    async def request_callback(self, contact_id: str, number: str) -> None:
        """The waiting caller asked to be called back on ``number``: the contact keeps
        its place in line though the caller hangs up."""
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise ContactError("unknown_contact", "no such contact")
        contact.callback_number = number
        contact.collected["callback_number"] = number
        contact.pop.setdefault("collected", {})["callback_number"] = number
        try:
            await self.engine.submit(ev.CallbackRequested(contact_id, number))
        except IllegalTransition as exc:
            raise ContactError("illegal_transition", str(exc)) from None

    async def leave(self, contact_id: str) -> None:
        """The customer left (hung up, closed the chat, or never came back)."""
        if contact_id in self.contacts:
            await self.engine.submit(ev.ContactLeft(contact_id))

    async def call_control(
        self, agent: str, contact_id: str, action: str, body: dict[str, Any]
    ) -> None:
        """Hold, mute, hang up, send digits or transfer the agent's call, from the console."""
        contact = self._mine(agent, contact_id)
        if contact.channel != "voice" or self.voice_calls is None:
            raise ContactError("not_a_call", "this contact is not a call")
        state = await self.voice_calls.control(contact_id, action, body)
        if state:
            self.call_state(agent, contact_id, state)

    def call_state(self, agent: str, contact_id: str, state: dict[str, Any]) -> None:
        """Tell the agent's consoles how its call is (held, muted, a consultation)."""
        # Through the feed, so a console that reconnects sees the call as it is.
        self._publish("call_state", {"contact_id": contact_id, **state}, frozenset({agent}))

    async def end_by_agent(self, agent: str, contact_id: str) -> None:
        contact = self._mine(agent, contact_id)
        if contact.customer is not None:
            contact.customer.push({"type": "ended", "reason": "agent_ended"})
        await self.engine.submit(ev.ContactLeft(contact_id))

    async def wrap_up(self, agent: str, contact_id: str, details: dict[str, Any]) -> None:
        contact = self._mine(agent, contact_id)
        if contact.ended_at is None:
            raise ContactError("still_connected", "end the contact before wrapping it up")
        contact.wrapup = details
        await self.engine.submit(ev.WrapupDone(contact_id, agent))

    # -- effects -----------------------------------------------------------------

    def _on_effect(self, effect: ev.Effect) -> None:
        now = self.clock()
        if self.voice_calls is not None and isinstance(
            effect, ev.Offer | ev.Withdraw | ev.Connect | ev.ContactEnded
        ):
            # For a call the offer is the ringing of the agent's phone: the
            # voice layer rings, stops ringing, bridges and hangs up.
            routed = self.contacts.get(effect.contact_id)
            if routed is not None and routed.channel == "voice":
                self.voice_calls.routed(effect)
        match effect:
            case ev.Offer():
                contact = self.contacts.get(effect.contact_id)
                if contact is None:
                    return
                contact.offered_to.add(effect.agent_id)
                contact.offered_at = contact.offered_at or now
                self._publish(
                    "offer",
                    {
                        "contact_id": effect.contact_id,
                        "channel": effect.channel,
                        "queue": effect.queue,
                        "deadline": to_iso(effect.deadline),
                        "pop": contact.pop,
                        "transcript": list(contact.transcript),
                    },
                    frozenset({effect.agent_id}),
                )
                self._publish_board(effect.agent_id, now)
            case ev.Withdraw():
                contact = self.contacts.get(effect.contact_id)
                if contact is not None:
                    contact.offered_to.discard(effect.agent_id)
                self._publish(
                    "offer_withdrawn",
                    {"contact_id": effect.contact_id, "reason": effect.reason},
                    frozenset({effect.agent_id}),
                )
                self._publish_board(effect.agent_id, now)
            case ev.Connect():
                contact = self.contacts.get(effect.contact_id)
                if contact is None:
                    return
                contact.agent_id = effect.agent_id
                contact.answered_at = now
                contact.offered_to = set()
                self._publish(
                    "connected",
                    {"contact_id": effect.contact_id, "transcript": list(contact.transcript)},
                    frozenset({effect.agent_id}),
                )
                if contact.customer is not None:
                    contact.customer.push(
                        {
                            "type": "agent_joined",
                            "agent_name": self._agent_names.get(effect.agent_id, ""),
                        }
                    )
                self._publish_agent(effect.agent_id)
            case ev.StartWrapup():
                contact = self.contacts.get(effect.contact_id)
                if contact is not None:
                    contact.ended_at = contact.ended_at or now
                    if contact.customer is not None:
                        contact.customer.push({"type": "ended", "reason": "ended"})
                self._publish(
                    "wrapup",
                    {"contact_id": effect.contact_id, "deadline": to_iso(effect.deadline)},
                    frozenset({effect.agent_id}),
                )
                self._publish_board(effect.agent_id, now)
            case ev.Finish():
                board = self._boards.setdefault(effect.agent_id, _AgentBoard())
                day = self._site_day(now)
                board.handled = board.handled + 1 if board.day == day else 1
                board.day = day
                self._publish_agent(effect.agent_id)
            case ev.ContactEnded():
                contact = self.contacts.pop(effect.contact_id, None)
                if contact is None:
                    return
                contact.ended_at = contact.ended_at or now
                if contact.customer is not None and effect.outcome != "done":
                    contact.customer.push({"type": "ended", "reason": effect.outcome})
                audience = (
                    frozenset({contact.agent_id}) if contact.agent_id else frozenset({SUPERVISORS})
                )
                self._publish(
                    "contact_ended",
                    {"contact_id": effect.contact_id, "outcome": effect.outcome},
                    audience,
                )
                self.spawn(self._record(contact, effect.outcome))
            case ev.PresenceSet():
                self._publish_agent(effect.agent_id)
            case ev.QueueLog():
                self.stats.feed(effect)
                self.intervals.feed(effect)
                target = str(effect.data.get("target", ""))
                contact = self.contacts.get(effect.contact_id)
                if target in self.queues and contact is not None:
                    # Moved or overflowed: it waits in the target queue from now on.
                    contact.queue = target
                for queue in dict.fromkeys((effect.queue, target)):
                    if queue in self.queues:
                        self._publish_queue(queue, now)

    async def _record(self, contact: Contact, outcome: str) -> None:
        """Every contact that ends becomes an interaction; a handled one also a ticket."""
        if contact.recorded:
            return
        contact.recorded = True
        await self._record_contact(contact, outcome)
        if contact.csat_score is not None:
            # A survey answered before the contact was written: now its ticket gets it too.
            await self.services.recorder.record(
                records.INTERACTION_SCORED,
                {"id": contact.contact_id, "csat_score": contact.csat_score},
            )

    async def _record_contact(self, contact: Contact, outcome: str) -> None:
        wrapup = contact.wrapup or {}
        agent = int(contact.agent_id) if contact.agent_id else None
        queue_id = None
        async with self.services.sessions() as db:
            queue_id = (
                await db.execute(select(Queue.id).where(Queue.name == contact.queue))
            ).scalar_one_or_none()
        interaction = {
            "id": contact.contact_id,
            "channel": contact.channel,
            "direction": "inbound",
            "customer_id": contact.customer_id,
            "queue_id": queue_id,
            "agent_id": agent,
            "remote_identity": contact.remote_identity[:254],
            "arrived_at": to_iso(contact.arrived_at),
            "queued_at": to_iso(contact.arrived_at),
            "offered_at": to_iso(contact.offered_at),
            "answered_at": to_iso(contact.answered_at),
            "ended_at": to_iso(contact.ended_at or self.clock()),
            "collected": contact.collected,
            "disposition_code": wrapup.get("disposition"),
            "notes": wrapup.get("notes", ""),
            "transcript": [f"{m['at']} {m['from']}: {m['text']}" for m in contact.transcript],
            "end_reason": outcome,
            "ivr_path": contact.ivr_path,
            "recording_path": contact.recording_path,
            "csat_score": contact.csat_score,
        }
        data: dict[str, Any] = {"interaction": interaction}
        if outcome == "done":
            existing = (
                await self._open_ticket(contact)
                if self.services.settings.cti.append_to_open_ticket
                else None
            )
            if existing is None:
                fields = dict(wrapup.get("ticket") or {})
                status = fields.pop("status", "new")
                fields.setdefault("subject", self._subject(contact))
                fields["customer_id"] = contact.customer_id
                ticket = new_ticket(fields, agent, self.clock(), self.services.settings.tickets)
                data["ticket"] = ticket
                await self.services.recorder.record(records.INTERACTION_RECORDED, data)
                if status != "new":
                    await self.services.recorder.record(
                        records.TICKET_TRANSITIONED,
                        {
                            "id": ticket["id"],
                            "actor_id": agent,
                            "to": status,
                            "resolution": wrapup.get("notes", ""),
                            "at": to_iso(self.clock()),
                        },
                    )
                return
            await self.services.recorder.record(records.INTERACTION_RECORDED, data)
            await self.services.recorder.record(
                records.TICKET_LINKED,
                {
                    "ticket_id": existing,
                    "interaction_id": contact.contact_id,
                    "actor_id": agent,
                    "at": to_iso(self.clock()),
                },
            )
            return
        await self.services.recorder.record(records.INTERACTION_RECORDED, data)

    def _subject(self, contact: Contact) -> str:
        kind = "Chat with" if contact.channel == "chat" else "Call from"
        return f"{kind} {contact.customer_name or contact.remote_identity or 'customer'}"[:300]

    async def _open_ticket(self, contact: Contact) -> str | None:
        if contact.customer_id is None:
            return None
        async with self.services.sessions() as db:
            found = await db.execute(
                select(Ticket.id)
                .where(
                    Ticket.customer_id == contact.customer_id,
                    Ticket.status.in_(("new", "open", "pending")),
                )
                .order_by(Ticket.updated_at.desc())
                .limit(1)
            )
            return found.scalar_one_or_none()
