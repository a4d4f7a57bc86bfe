"""One queue in virtual time, driven through the real router, held against Erlang C.

The model: contacts arrive at random (Poisson, ``calls_per_hour``); each holds
its agent for an exponentially distributed handle time of mean
``aht_seconds``; when ``patience_seconds`` is given, a caller still waiting
after an exponentially distributed patience of that mean hangs up. ``agents``
identical agents serve one queue (one voice channel, no skills, longest idle
first), take every offer at the instant it rings and need no wrap-up (unless
a :class:`Scenario` asks for it). Without patience and wrap-up this is the
M/M/N queue of :mod:`callcenter.acd.erlang`, so what the router achieves can
be compared with Erlang C.

Nothing is modelled in place of the router: every event goes through
:func:`callcenter.acd.dispatch.run_now` with the in-process live-state store,
as the routing engine drives it, and the router's own deadlines are fired
with :class:`~callcenter.acd.events.Tick` as the engine's timer does. Time is
virtual and kept in whole microseconds (the resolution of the router's
datetimes): the clock jumps from one event to the next, nothing sleeps and
the wall clock is never read, so a seed fixes every figure.

Figures follow the definitions of :mod:`callcenter.acd.stats`, over the
contacts that arrive after the warm-up:

- ``service_level`` = answered within the target / answered;
- ``service_level_all`` = answered within the target / all contacts, abandons
  included;
- ``asa_seconds`` = mean wait of the answered contacts;
- ``p_wait`` = share of the contacts not answered at the instant they arrived;
- ``abandon_rate`` = abandoned / (answered + abandoned).

Confidence intervals are by batch means (A. M. Law, *Simulation Modeling and
Analysis*, the chapter on output analysis of a single system): the measured
contacts are cut, in arrival order, into consecutive batches long enough to
be nearly independent of one another. Each figure is a ratio, so its interval
is the ratio estimator's over the batch totals (with batches of equal size it
is the plain mean of the batch figures) with Student's t quantile for
``batches - 1`` degrees of freedom. The warm-up contacts are left out because
the run starts from an empty floor, which is not the steady state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import heapq
import itertools
import math
import random
from array import array
from dataclasses import dataclass
from statistics import NormalDist

from callcenter.acd import dispatch
from callcenter.acd import events as ev
from callcenter.acd.erlang import erlang_report
from callcenter.acd.router import Router
from callcenter.acd.rules import QueueRules
from callcenter.state.memory import MemoryLiveState

#: Fewest batches whose means still give a trustworthy t interval.
MIN_BATCHES = 20
DEFAULT_BATCHES = 30
#: Fewest measured contacts in a batch; a limit that keeps batch figures defined.
MIN_BATCH_CONTACTS = 10
#: Share of the contacts left out as warm-up when ``warmup`` is not given.
DEFAULT_WARMUP_SHARE = 0.05
#: Longest run one request may ask for: a limit on work and memory (some 24
#: bytes a contact), far above what the comparison with Erlang C needs.
MAX_CONTACTS = 10_000_000
#: Events handled between two returns to the event loop: enough that the
#: return costs nothing, few enough that no step holds the loop for long.
EVENTS_PER_STEP = 200
#: Offers are answered at once in this model; the router's timeout only has to
#: be positive, and any offer that still times out shows a router fault.
OFFER_TIMEOUT_SECONDS = 20.0
SERVICE_LEVEL_DEFINITION = "answered within target / answered"

QUEUE = "simulated"
CHANNEL = "voice"
#: Virtual time zero; any aware UTC instant does.
EPOCH = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)

_MICRO = 1_000_000
_ONE_MICRO = dt.timedelta(microseconds=1)
_UNANSWERED = -1
_ABANDONED = -2
# Event kinds; events at one instant run in the order they were scheduled.
_ARRIVAL, _HANG_UP, _PATIENCE, _TICK = range(4)


class SimulationStuck(RuntimeError):
    """The events ran out with contacts never answered nor abandoned (a router fault)."""


def _whole(name: str, value: int, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a whole number of at least {least}, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Scenario:
    """What to simulate; built from user input, so every field is checked.

    ``warmup`` is a number of contacts (the first ones to arrive) left out of
    every figure; ``None`` leaves out :data:`DEFAULT_WARMUP_SHARE` of them.
    ``wrapup_seconds`` leaves the Erlang C model: the agent stays busy that
    long after each contact, until the router's own wrap-up timer ends it.
    """

    calls_per_hour: float
    aht_seconds: float
    agents: int
    target_seconds: float
    contacts: int
    seed: int
    patience_seconds: float | None = None
    warmup: int | None = None
    batches: int = DEFAULT_BATCHES
    wrapup_seconds: float = 0.0

    def __post_init__(self) -> None:
        # erlang_report checks rate, handle time, agents and target, naming the bad one.
        traffic = erlang_report(
            self.calls_per_hour, self.aht_seconds, self.agents, self.target_seconds
        ).traffic_erlangs
        _whole("contacts", self.contacts, 1)
        if self.contacts > MAX_CONTACTS:
            raise ValueError(f"contacts must be at most {MAX_CONTACTS}, not {self.contacts}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be a whole number, not {self.seed!r}")
        patience = self.patience_seconds
        if patience is not None and not (math.isfinite(patience) and patience > 0):
            raise ValueError(f"patience must be a positive finite number, not {patience!r}")
        wrapup = self.wrapup_seconds
        if not (math.isfinite(wrapup) and wrapup >= 0):
            raise ValueError(f"wrapup must be a finite number of zero or more, not {wrapup!r}")
        _whole("batches", self.batches, MIN_BATCHES)
        warmup = self.warmup_contacts
        _whole("warmup", warmup, 0)
        measured = self.contacts - warmup
        if measured < self.batches * MIN_BATCH_CONTACTS:
            raise ValueError(
                f"{measured} contacts after a warm-up of {warmup} are too few for "
                f"{self.batches} batches of at least {MIN_BATCH_CONTACTS}"
            )
        busy = traffic * (self.aht_seconds + wrapup) / self.aht_seconds
        if patience is None and self.agents <= busy:
            # Without abandons the line then grows for ever: there is no
            # steady state to measure, and Erlang C has no figures either.
            raise ValueError(
                f"{self.agents} agents cannot keep up with {busy:g} Erlangs "
                "when nobody hangs up: the queue has no steady state"
            )

    @property
    def warmup_contacts(self) -> int:
        if self.warmup is None:
            return int(self.contacts * DEFAULT_WARMUP_SHARE)
        return self.warmup


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """Measured figures beside Erlang C's for the same inputs (see the module docstring)."""

    contacts: int
    seed: int
    agents: int
    calls_per_hour: float
    aht_seconds: float
    target_seconds: float
    patience_seconds: float | None
    wrapup_seconds: float
    warmup: int
    batches: int
    #: Contacts after the warm-up: the ones every figure counts.
    measured: int
    answered: int
    abandoned: int
    service_level_definition: str
    service_level: float | None
    service_level_ci95: tuple[float, float] | None
    service_level_all: float
    asa_seconds: float | None
    asa_seconds_ci95: tuple[float, float] | None
    p_wait: float
    p_wait_ci95: tuple[float, float]
    abandon_rate: float
    #: Erlang C knows neither abandons nor wrap-up: these are the figures without them.
    erlang_service_level: float
    erlang_p_wait: float
    erlang_asa_seconds: float
    #: Offers that timed out; the model answers every offer at once, so any is a fault.
    offer_timeouts: int
    simulated_hours: float

    def as_json(self) -> dict[str, object]:
        """The report as JSON-ready values (an unstable queue's endless ASA as ``None``)."""
        figures: dict[str, object] = dataclasses.asdict(self)
        if math.isinf(self.erlang_asa_seconds):
            figures["erlang_asa_seconds"] = None
        return figures


def t_quantile_975(degrees: int) -> float:
    """Student's t quantile at 0.975 (a two-sided 95% interval) for ``degrees`` >= 1.

    By the asymptotic expansion in the normal quantile (Abramowitz and Stegun,
    *Handbook of Mathematical Functions*, 26.7.5): within 1e-5 of the exact
    value from 10 degrees of freedom and within 1e-6 from 19, the fewest that
    :data:`MIN_BATCHES` allows; below 10 it drifts (3e-4 short at 5).
    """
    nu = float(_whole("degrees", degrees, 1))
    x = NormalDist().inv_cdf(0.975)
    g1 = (x**3 + x) / 4
    g2 = (5 * x**5 + 16 * x**3 + 3 * x) / 96
    g3 = (3 * x**7 + 19 * x**5 + 17 * x**3 - 15 * x) / 384
    g4 = (79 * x**9 + 776 * x**7 + 1482 * x**5 - 1920 * x**3 - 945 * x) / 92160
    return x + g1 / nu + g2 / nu**2 + g3 / nu**3 + g4 / nu**4


def ratio_ci95(parts: list[float], wholes: list[float]) -> tuple[float, tuple[float, float]] | None:
    """sum(parts) / sum(wholes) with its 95% batch-means interval (one entry a batch).

    The interval is the ratio estimator's: the batch residuals
    ``part - ratio * whole`` give the variance, so batches of unequal size
    (some contacts abandoned) weigh as they should. ``None`` if the wholes are 0.
    """
    total = sum(wholes)
    if not total:
        return None
    ratio = sum(parts) / total
    n = len(parts)
    spread = sum((p - ratio * w) ** 2 for p, w in zip(parts, wholes, strict=True)) / (n - 1)
    half = t_quantile_975(n - 1) * math.sqrt(spread / n) / (total / n)
    return ratio, (ratio - half, ratio + half)


class _Floor:
    """The simulated floor around one router: callers, agents and the event heap."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        seeds = random.Random(scenario.seed)
        # One stream per kind of draw, each drawn in arrival order: the same
        # seed then brings the same callers (arrival, handle time, patience)
        # whatever the staffing, so runs that differ only in it are compared
        # on common random numbers.
        self._arrival_rng = random.Random(seeds.getrandbits(64))
        self._handle_rng = random.Random(seeds.getrandbits(64))
        self._patience_rng = random.Random(seeds.getrandbits(64))
        rules = QueueRules(
            QUEUE,
            wrapup_seconds=scenario.wrapup_seconds,
            offer_timeout_seconds=OFFER_TIMEOUT_SECONDS,
        )
        self.router = Router([rules], rng=random.Random(seeds.getrandbits(64)))
        self.store = MemoryLiveState()
        count = scenario.contacts
        # Machine integers: a long run keeps three numbers a contact.
        self.arrived = array("q", bytes(8 * count))
        #: Wait in microseconds once answered, else _UNANSWERED or _ABANDONED.
        self.waits = array("q", [_UNANSWERED]) * count
        self._handle = array("q", bytes(8 * count))
        self._heap: list[tuple[int, int, int, int]] = []
        self._seq = itertools.count()
        self._tick_at: int | None = None
        self._next_arrival = 0.0
        self.offer_timeouts = 0
        self.clock = 0

    def _push(self, at: int, kind: int, index: int) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, index))

    def _schedule_arrival(self, index: int) -> None:
        rate = self.scenario.calls_per_hour / 3600.0
        # Accumulate in float seconds and round each instant, so rounding
        # errors do not pile up over a long run.
        self._next_arrival += self._arrival_rng.expovariate(rate)
        self._push(round(self._next_arrival * _MICRO), _ARRIVAL, index)

    async def _send(self, event: ev.Event, at: int) -> None:
        """Hand ``event`` to the router at ``at`` and play out all it sets off then.

        Afterwards the router's next deadline, if any, has a tick on the heap.
        """
        now = EPOCH + at * _ONE_MICRO
        effects = dispatch.run_now(self.router, self.store, event, now)
        while effects:
            accepts: list[ev.OfferAccepted] = []
            for effect in effects:
                if isinstance(effect, ev.Offer):
                    accepts.append(ev.OfferAccepted(effect.contact_id, effect.agent_id))
                elif isinstance(effect, ev.Connect):
                    index = int(effect.contact_id)
                    self.waits[index] = at - self.arrived[index]
                    self._push(at + self._handle[index], _HANG_UP, index)
                elif isinstance(effect, ev.ContactEnded):
                    if effect.outcome == "abandoned":
                        self.waits[int(effect.contact_id)] = _ABANDONED
                elif isinstance(effect, ev.Withdraw) and effect.reason == "timeout":
                    self.offer_timeouts += 1
            # The agents pick up at the instant the phone rings.
            effects = []
            for accept in accepts:
                effects += dispatch.run_now(self.router, self.store, accept, now)
        deadline = self.router.next_deadline()
        if deadline is not None:
            due = max(at, (deadline - EPOCH) // _ONE_MICRO)
            if self._tick_at is None or due < self._tick_at:
                self._tick_at = due
                self._push(due, _TICK, -1)

    async def run(self) -> None:
        scenario = self.scenario
        for n in range(scenario.agents):
            await self._send(ev.AgentJoined(f"agent{n}", {}, {CHANNEL: 1}), 0)
            await self._send(ev.AgentPresenceChanged(f"agent{n}", "available"), 0)
        aht = scenario.aht_seconds
        patience = scenario.patience_seconds
        heap = self._heap
        self._schedule_arrival(0)
        handled = 0
        while heap:
            handled += 1
            if handled % EVENTS_PER_STEP == 0:
                await asyncio.sleep(0)
            at, _, kind, index = heapq.heappop(heap)
            self.clock = at
            if kind == _ARRIVAL:
                self.arrived[index] = at
                self._handle[index] = round(self._handle_rng.expovariate(1.0 / aht) * _MICRO)
                if patience is not None:
                    wait = round(self._patience_rng.expovariate(1.0 / patience) * _MICRO)
                    self._push(at + wait, _PATIENCE, index)
                if index + 1 < scenario.contacts:
                    self._schedule_arrival(index + 1)
                await self._send(ev.ContactArrived(str(index), QUEUE, CHANNEL), at)
            elif kind == _HANG_UP:
                await self._send(ev.ContactLeft(str(index)), at)
            elif kind == _PATIENCE:
                if self.waits[index] == _UNANSWERED:
                    await self._send(ev.ContactLeft(str(index)), at)
            elif at == self._tick_at:
                # A tick an earlier deadline took the place of passes unused.
                self._tick_at = None
                await self._send(ev.Tick(), at)
        stuck = self.waits.count(_UNANSWERED)
        if stuck:
            raise SimulationStuck(f"{stuck} contacts were never answered nor abandoned")

    def report(self) -> SimulationReport:
        s = self.scenario
        warmup = s.warmup_contacts
        measured = s.contacts - warmup
        target = round(s.target_seconds * _MICRO)
        offered = [0.0] * s.batches
        answered = [0.0] * s.batches
        within = [0.0] * s.batches
        waited = [0.0] * s.batches
        wait_sum = [0.0] * s.batches
        for n, wait in enumerate(self.waits[warmup:]):
            batch = n * s.batches // measured
            offered[batch] += 1
            if wait == _ABANDONED:
                waited[batch] += 1
                continue
            answered[batch] += 1
            wait_sum[batch] += wait / _MICRO
            if wait > 0:
                waited[batch] += 1
            if wait <= target:
                within[batch] += 1
        total_answered = int(sum(answered))
        abandoned = measured - total_answered
        sl = ratio_ci95(within, answered)
        asa = ratio_ci95(wait_sum, answered)
        p_wait = ratio_ci95(waited, offered)
        assert p_wait is not None  # every batch has contacts
        erlang = erlang_report(s.calls_per_hour, s.aht_seconds, s.agents, s.target_seconds)
        return SimulationReport(
            contacts=s.contacts,
            seed=s.seed,
            agents=s.agents,
            calls_per_hour=s.calls_per_hour,
            aht_seconds=s.aht_seconds,
            target_seconds=s.target_seconds,
            patience_seconds=s.patience_seconds,
            wrapup_seconds=s.wrapup_seconds,
            warmup=warmup,
            batches=s.batches,
            measured=measured,
            answered=total_answered,
            abandoned=abandoned,
            service_level_definition=SERVICE_LEVEL_DEFINITION,
            service_level=sl[0] if sl else None,
            service_level_ci95=sl[1] if sl else None,
            service_level_all=sum(within) / measured,
            asa_seconds=asa[0] if asa else None,
            asa_seconds_ci95=asa[1] if asa else None,
            p_wait=p_wait[0],
            p_wait_ci95=p_wait[1],
            abandon_rate=abandoned / measured,
            erlang_service_level=erlang.service_level,
            erlang_p_wait=erlang.p_wait,
            erlang_asa_seconds=erlang.asa_seconds,
            offer_timeouts=self.offer_timeouts,
            simulated_hours=self.clock / _MICRO / 3600.0,
        )


async def run(scenario: Scenario) -> SimulationReport:
    """Simulate ``scenario`` to its end and measure it.

    Nothing here waits for I/O; the run returns to its event loop every
    :data:`EVENTS_PER_STEP` events so that other tasks on the loop (a server's,
    a test's) are not held up for the seconds a long run takes.
    """
    floor = _Floor(scenario)
    await floor.run()
    return floor.report()
