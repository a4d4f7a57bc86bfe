"""Erlang C staffing figures (pure functions, no I/O).

The model is the M/M/N queue: calls arrive at random (Poisson) at rate
``λ``, each holds an agent for an exponentially distributed time of mean
``AHT``, ``N`` identical agents serve one queue in arrival order and nobody
hangs up while waiting. The offered traffic is ``A = λ · AHT`` Erlangs.

The formulas are the classical ones, due to A. K. Erlang (his 1917 paper on
waiting times in automatic telephone exchanges) and given in every queueing
text, for instance L. Kleinrock, *Queueing Systems, Volume 1: Theory* (1975)
and R. B. Cooper, *Introduction to Queueing Theory* (1981). Their use for
call-center staffing, including the service-level formula below, is surveyed
by N. Gans, G. Koole and A. Mandelbaum, "Telephone call centers: tutorial,
review, and research prospects", *Manufacturing & Service Operations
Management* 5(2), 2003.

- Erlang B, the blocking probability of ``N`` servers with no queue:
  ``B(N, A) = (A^N / N!) / Σ_{k=0..N} A^k / k!``.
- Erlang C, the probability that a call waits:
  ``C(N, A) = N · B / (N - A · (1 - B))`` for ``N > A``.
- Service level, the share of calls answered within ``T`` seconds:
  ``SL = 1 - C · exp(-(N - A) · T / AHT)``.
- Average speed of answer: ``ASA = C · AHT / (N - A)``.
- Occupancy: ``A / N``.

``A^N`` and ``N!`` overflow a float long before a large center's figures are
reached (``1000.0 ** 1100`` already does), so Erlang B is computed by the
recurrence ``B(0) = 1``, ``B(n) = A · B(n-1) / (n + A · B(n-1))``, whose
terms all stay in [0, 1], and Erlang C is derived from it.

With ``N <= A`` calls arrive faster than the agents can answer them: the
queue grows without bound, every call waits (``C = 1``), no call is answered
within any target (``SL = 0``) and the average wait is infinite.

Every function checks its inputs and raises :class:`ValueError` naming the
bad one; callers at a boundary (CLI, API) can show that message as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Default ceiling of :func:`agents_required`'s search; a limit on the work
#: one request may cause, far above any single queue's staffing.
MAX_AGENTS = 100_000

_SECONDS_PER_HOUR = 3600.0


def _positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, not {value!r}")
    return float(value)


def _not_negative(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of zero or more, not {value!r}")
    return float(value)


def _whole_positive(name: str, value: int) -> int:
    # bool is an int subclass; True agents is a mistake, not one agent.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    return value


def _goal(value: float) -> float:
    if not (math.isfinite(value) and 0 < value < 1):
        raise ValueError(f"sl_goal must be a fraction strictly between 0 and 1, not {value!r}")
    return float(value)


def _next_b(n: int, traffic: float, previous: float) -> float:
    carried = traffic * previous
    return carried / (n + carried)


def _c_from_b(agents: int, traffic: float, b: float) -> float:
    if agents <= traffic:
        return 1.0
    return agents * b / (agents - traffic * (1.0 - b))


def _service_level(agents: int, traffic: float, c: float, aht: float, target: float) -> float:
    if agents <= traffic:
        return 0.0
    return 1.0 - c * math.exp(-(agents - traffic) * target / aht)


def traffic_erlangs(calls_per_hour: float, aht_seconds: float) -> float:
    """Offered traffic in Erlangs: ``calls_per_hour · aht_seconds / 3600``.

    One Erlang is one agent kept busy all the time.
    """
    rate = _positive("calls_per_hour", calls_per_hour)
    aht = _positive("aht_seconds", aht_seconds)
    return _positive("traffic", rate * aht / _SECONDS_PER_HOUR)


def erlang_b(agents: int, traffic: float) -> float:
    """Probability that a call finds all ``agents`` busy when there is no queue."""
    n_agents = _whole_positive("agents", agents)
    a = _positive("traffic", traffic)
    b = 1.0
    for n in range(1, n_agents + 1):
        b = _next_b(n, a, b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a call has to wait (``1.0`` when ``agents <= traffic``)."""
    n_agents = _whole_positive("agents", agents)
    a = _positive("traffic", traffic)
    if n_agents <= a:
        return 1.0
    return _c_from_b(n_agents, a, erlang_b(n_agents, a))


def service_level(agents: int, traffic: float, aht_seconds: float, target_seconds: float) -> float:
    """Share of calls answered within ``target_seconds`` (``0.0`` when unstable).

    A target of zero gives the share answered without waiting, ``1 - C``.
    """
    n_agents = _whole_positive("agents", agents)
    a = _positive("traffic", traffic)
    aht = _positive("aht_seconds", aht_seconds)
    target = _not_negative("target_seconds", target_seconds)
    return _service_level(n_agents, a, erlang_c(n_agents, a), aht, target)


def asa_seconds(agents: int, traffic: float, aht_seconds: float) -> float:
    """Average speed of answer over all calls, waiting or not (``inf`` when unstable)."""
    n_agents = _whole_positive("agents", agents)
    a = _positive("traffic", traffic)
    aht = _positive("aht_seconds", aht_seconds)
    if n_agents <= a:
        return math.inf
    return erlang_c(n_agents, a) * aht / (n_agents - a)


def occupancy(agents: int, traffic: float) -> float:
    """Share of the agents' time spent on calls: ``A / N``, at most ``1.0``."""
    n_agents = _whole_positive("agents", agents)
    a = _positive("traffic", traffic)
    return min(a / n_agents, 1.0)


def agents_required(
    traffic: float,
    aht_seconds: float,
    target_seconds: float,
    sl_goal: float,
    max_agents: int = MAX_AGENTS,
) -> int:
    """Smallest number of agents whose service level is at least ``sl_goal``.

    ``max_agents`` bounds the search (a limit on work, not a staffing rule);
    if no staffing up to it meets the goal, :class:`ValueError` says so.
    """
    a = _positive("traffic", traffic)
    aht = _positive("aht_seconds", aht_seconds)
    target = _not_negative("target_seconds", target_seconds)
    goal = _goal(sl_goal)
    limit = _whole_positive("max_agents", max_agents)
    # One pass of the recurrence serves every candidate N, so the search costs
    # O(N) rather than O(N²) from calling erlang_c for each candidate.
    b = 1.0
    for n in range(1, limit + 1):
        b = _next_b(n, a, b)
        if n > a and _service_level(n, a, _c_from_b(n, a, b), aht, target) >= goal:
            return n
    raise ValueError(
        f"no staffing up to max_agents={limit} answers {goal:.1%} of calls "
        f"within {target:g} s at {a:g} Erlangs"
    )


@dataclass(frozen=True, slots=True)
class ErlangReport:
    """The staffing figures of one queue at one staffing level."""

    traffic_erlangs: float
    agents: int
    #: Probability that a call waits (Erlang C).
    p_wait: float
    #: Share of calls answered within the target.
    service_level: float
    #: Average speed of answer; ``math.inf`` when the queue is unstable.
    asa_seconds: float
    occupancy: float


def erlang_report(
    calls_per_hour: float, aht_seconds: float, agents: int, target_seconds: float
) -> ErlangReport:
    """All figures for ``agents`` agents answering ``calls_per_hour`` calls."""
    traffic = traffic_erlangs(calls_per_hour, aht_seconds)
    return ErlangReport(
        traffic_erlangs=traffic,
        agents=_whole_positive("agents", agents),
        p_wait=erlang_c(agents, traffic),
        service_level=service_level(agents, traffic, aht_seconds, target_seconds),
        asa_seconds=asa_seconds(agents, traffic, aht_seconds),
        occupancy=occupancy(agents, traffic),
    )
