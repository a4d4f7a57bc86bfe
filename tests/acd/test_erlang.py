"""Erlang C: the published worked example, exact references, limits and bad input."""

from __future__ import annotations

import json
import math
import subprocess
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.acd.erlang import (
    ErlangReport,
    agents_required,
    asa_seconds,
    erlang_b,
    erlang_c,
    erlang_report,
    occupancy,
    service_level,
    traffic_erlangs,
)
from tests.conftest import run_callcenter

# The textbook example: 200 calls an hour, 3 minutes each, answer within 20 s.
CALLS, AHT, TARGET = 200.0, 180.0, 20.0
TRAFFIC = 10.0


def exact_b(agents: int, traffic: Fraction) -> Fraction:
    """Erlang B straight from its definition, in exact rationals."""
    term = Fraction(1)
    total = Fraction(1)
    for k in range(1, agents + 1):
        term = term * traffic / k
        total += term
    return term / total


def exact_c(agents: int, traffic: int) -> Fraction:
    """Erlang C from its definition, over the common denominator N! so only integers grow."""
    top = traffic**agents * agents
    waiting_free = 0
    ratio = 1  # N! / k!, from k = N - 1 downwards
    for k in range(agents - 1, -1, -1):
        ratio *= k + 1
        waiting_free += traffic**k * ratio
    return Fraction(top, (agents - traffic) * waiting_free + top)


def test_traffic_of_the_example() -> None:
    assert traffic_erlangs(CALLS, AHT) == pytest.approx(TRAFFIC)


@pytest.mark.parametrize(
    ("agents", "published"),
    [(11, 0.390), (12, 0.640), (13, 0.796), (14, 0.888)],
)
def test_service_level_of_the_example(agents: int, published: float) -> None:
    assert round(service_level(agents, TRAFFIC, AHT, TARGET), 3) == published


def test_fourteen_agents_of_the_example() -> None:
    assert round(erlang_c(14, TRAFFIC), 4) == 0.1741
    assert round(asa_seconds(14, TRAFFIC, AHT), 2) == 7.84
    assert occupancy(14, TRAFFIC) == pytest.approx(10 / 14)


def test_agents_required_for_80_in_20() -> None:
    assert agents_required(TRAFFIC, AHT, TARGET, 0.8) == 14
    # Just under what 13 agents give, 13 is enough.
    assert agents_required(TRAFFIC, AHT, TARGET, 0.795) == 13


def test_report_of_the_example() -> None:
    report = erlang_report(CALLS, AHT, 14, TARGET)
    assert isinstance(report, ErlangReport)
    assert report.traffic_erlangs == pytest.approx(TRAFFIC)
    assert report.agents == 14
    assert report.p_wait == erlang_c(14, report.traffic_erlangs)
    assert report.service_level == service_level(14, report.traffic_erlangs, AHT, TARGET)
    assert report.asa_seconds == asa_seconds(14, report.traffic_erlangs, AHT)
    assert report.occupancy == occupancy(14, report.traffic_erlangs)


@pytest.mark.parametrize(("agents", "traffic"), [(1, 1), (5, 2), (14, 10), (60, 50), (30, 7)])
def test_erlang_b_and_c_match_exact_arithmetic(agents: int, traffic: int) -> None:
    assert erlang_b(agents, traffic) == pytest.approx(
        float(exact_b(agents, Fraction(traffic))), rel=1e-12
    )
    if agents > traffic:
        assert erlang_c(agents, traffic) == pytest.approx(
            float(exact_c(agents, traffic)), rel=1e-12
        )


def test_fractional_traffic_matches_exact_arithmetic() -> None:
    traffic = Fraction(37, 4)
    b = exact_b(12, traffic)
    c = 12 * b / (12 - traffic * (1 - b))
    assert erlang_c(12, float(traffic)) == pytest.approx(float(c), rel=1e-12)


def test_huge_traffic_stays_finite_and_exact() -> None:
    # The textbook formula cannot even be evaluated in floats here.
    with pytest.raises(OverflowError):
        _ = 1000.0**1100

    c = erlang_c(1100, 1000)
    assert 0 < c < 1
    assert c == pytest.approx(float(exact_c(1100, 1000)), rel=1e-9)
    sl = service_level(1100, 1000, AHT, TARGET)
    asa = asa_seconds(1100, 1000, AHT)
    assert math.isfinite(asa)
    assert sl == pytest.approx(1 - c * math.exp(-100 * TARGET / AHT), rel=1e-12)
    assert asa == pytest.approx(c * AHT / 100, rel=1e-12)


def test_huge_traffic_staffing() -> None:
    needed = agents_required(1000.0, AHT, TARGET, 0.8)
    assert needed > 1000
    assert service_level(needed, 1000.0, AHT, TARGET) >= 0.8
    assert service_level(needed - 1, 1000.0, AHT, TARGET) < 0.8


def test_many_agents_for_little_traffic() -> None:
    # B underflows towards zero; that must read as "nobody waits", not NaN.
    assert erlang_c(5000, 1.0) == 0.0
    assert service_level(5000, 1.0, AHT, TARGET) == 1.0
    assert asa_seconds(5000, 1.0, AHT) == 0.0


@pytest.mark.parametrize("agents", [1, 9, 10])
def test_unstable_queue(agents: int) -> None:
    assert erlang_c(agents, TRAFFIC) == 1.0
    assert service_level(agents, TRAFFIC, AHT, TARGET) == 0.0
    assert asa_seconds(agents, TRAFFIC, AHT) == math.inf
    assert occupancy(agents, TRAFFIC) == 1.0
    report = erlang_report(CALLS, AHT, agents, TARGET)
    assert (report.p_wait, report.service_level, report.asa_seconds) == (1.0, 0.0, math.inf)


def test_just_above_traffic_is_stable() -> None:
    c = erlang_c(10, 9.999)
    assert 0.99 < c < 1
    assert asa_seconds(10, 9.999, AHT) > 100_000


def test_zero_target_is_the_share_answered_at_once() -> None:
    assert service_level(14, TRAFFIC, AHT, 0) == pytest.approx(1 - erlang_c(14, TRAFFIC))


def test_goal_out_of_reach_of_max_agents() -> None:
    with pytest.raises(ValueError, match="max_agents=12"):
        agents_required(TRAFFIC, AHT, TARGET, 0.8, max_agents=12)
    assert agents_required(TRAFFIC, AHT, TARGET, 0.8, max_agents=14) == 14


BAD_NUMBERS = [0.0, -1.0, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_bad_rates_and_times(bad: float) -> None:
    with pytest.raises(ValueError, match="calls_per_hour"):
        traffic_erlangs(bad, AHT)
    with pytest.raises(ValueError, match="aht_seconds"):
        traffic_erlangs(CALLS, bad)
    with pytest.raises(ValueError, match="traffic"):
        erlang_b(14, bad)
    with pytest.raises(ValueError, match="traffic"):
        erlang_c(14, bad)
    with pytest.raises(ValueError, match="traffic"):
        occupancy(14, bad)
    with pytest.raises(ValueError, match="aht_seconds"):
        service_level(14, TRAFFIC, bad, TARGET)
    with pytest.raises(ValueError, match="aht_seconds"):
        asa_seconds(14, TRAFFIC, bad)
    with pytest.raises(ValueError, match="traffic"):
        agents_required(bad, AHT, TARGET, 0.8)


@pytest.mark.parametrize("bad", [-1.0, -0.001, math.nan, math.inf])
def test_bad_targets(bad: float) -> None:
    with pytest.raises(ValueError, match="target_seconds"):
        service_level(14, TRAFFIC, AHT, bad)
    with pytest.raises(ValueError, match="target_seconds"):
        agents_required(TRAFFIC, AHT, bad, 0.8)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_agent_counts(bad: int) -> None:
    for call in (
        lambda: erlang_b(bad, TRAFFIC),
        lambda: erlang_c(bad, TRAFFIC),
        lambda: service_level(bad, TRAFFIC, AHT, TARGET),
        lambda: asa_seconds(bad, TRAFFIC, AHT),
        lambda: occupancy(bad, TRAFFIC),
        lambda: erlang_report(CALLS, AHT, bad, TARGET),
        lambda: agents_required(TRAFFIC, AHT, TARGET, 0.8, max_agents=bad),
    ):
        with pytest.raises(ValueError, match="whole number"):
            call()


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_bad_goals(bad: float) -> None:
    with pytest.raises(ValueError, match="sl_goal"):
        agents_required(TRAFFIC, AHT, TARGET, bad)


traffics = st.floats(min_value=0.01, max_value=500, allow_nan=False)
ahts = st.floats(min_value=1, max_value=3600, allow_nan=False)
targets = st.floats(min_value=0, max_value=600, allow_nan=False)


@given(traffic=traffics, aht=ahts, target=targets, agents=st.integers(1, 700))
def test_more_agents_never_serve_worse(
    traffic: float, aht: float, target: float, agents: int
) -> None:
    fewer = service_level(agents, traffic, aht, target)
    more = service_level(agents + 1, traffic, aht, target)
    assert 0.0 <= fewer <= more <= 1.0
    assert erlang_c(agents + 1, traffic) <= erlang_c(agents, traffic)
    assert asa_seconds(agents + 1, traffic, aht) <= asa_seconds(agents, traffic, aht)


@given(
    traffic=traffics,
    aht=ahts,
    target=targets,
    goal=st.floats(min_value=0.01, max_value=0.99),
)
def test_agents_required_is_the_smallest_that_meets_the_goal(
    traffic: float, aht: float, target: float, goal: float
) -> None:
    needed = agents_required(traffic, aht, target, goal)
    assert service_level(needed, traffic, aht, target) >= goal
    if needed > 1:
        assert service_level(needed - 1, traffic, aht, target) < goal


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_callcenter("erlang", *args)


def test_the_command() -> None:
    example = ("--calls-per-hour", "200", "--aht", "180", "--target", "20")

    fixed = run_cli(*example, "--agents", "14")
    assert fixed.returncode == 0, fixed.stderr
    figures = json.loads(fixed.stdout)
    assert set(figures) == {
        "traffic_erlangs",
        "agents",
        "p_wait",
        "service_level",
        "asa_seconds",
        "occupancy",
    }
    assert figures["agents"] == 14
    assert figures["traffic_erlangs"] == pytest.approx(10.0)
    assert round(figures["p_wait"], 4) == 0.1741
    assert round(figures["service_level"], 3) == 0.888
    assert round(figures["asa_seconds"], 2) == 7.84

    sized = run_cli(*example, "--sl-goal", "0.8")
    assert sized.returncode == 0, sized.stderr
    assert json.loads(sized.stdout) == {"agents_required": 14, **figures}

    unstable = run_cli(*example, "--agents", "10")
    assert unstable.returncode == 0, unstable.stderr
    assert "Infinity" not in unstable.stdout
    assert json.loads(unstable.stdout)["asa_seconds"] is None

    for bad in (("--agents", "0"), ("--sl-goal", "1.2"), ("--agents", "ten"), ()):
        refused = run_cli(*example, *bad)
        assert refused.returncode == 2, bad
        assert refused.stdout == ""
        assert "error:" in refused.stderr
    nan = run_cli("--calls-per-hour", "nan", "--aht", "180", "--target", "20", "--agents", "3")
    assert nan.returncode == 2
    assert "calls_per_hour" in nan.stderr
