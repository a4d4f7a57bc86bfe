"""The router in virtual time against Erlang C, the statistics behind it, and the command."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from typing import Any

import pytest

from callcenter.acd import simulate
from callcenter.acd.simulate import Scenario, SimulationReport, ratio_ci95, t_quantile_975
from tests.conftest import run_callcenter

# The textbook example of tests/acd/test_erlang.py: 10 Erlangs, answer within 20 s.
CALLS, AHT, TARGET = 200.0, 180.0, 20.0


def scenario(agents: int, contacts: int, seed: int = 2026, **kw: Any) -> Scenario:
    return Scenario(CALLS, AHT, agents, TARGET, contacts, seed, **kw)


def within(erlang: float, measured: float, ci: tuple[float, float] | None, widen: float) -> bool:
    assert ci is not None
    return abs(measured - erlang) <= widen * (ci[1] - ci[0]) / 2


# The batch-means interval narrows as one over the square root of the run and
# is widest where the service level is lowest: at 13 agents 200,000 contacts
# (the floor) give an interval 1.8 to 2.6 points wide depending on the
# seed, so that staffing runs 500,000 (1.2 to 1.7 points over 12 seeds). Over
# 100 seeds a staffing at 50,000 contacts the interval held Erlang's value 95
# times at each: the intervals are honest, and this seed is not a lucky one.
@pytest.mark.parametrize(
    ("agents", "contacts", "erlang_sl"), [(13, 500_000, 0.796), (14, 250_000, 0.888)]
)
async def test_long_run_agrees_with_erlang_c(agents: int, contacts: int, erlang_sl: float) -> None:
    report = await simulate.run(scenario(agents, contacts))

    assert report.offer_timeouts == 0
    assert report.answered == report.measured == contacts - report.warmup
    assert report.abandoned == 0
    assert round(report.erlang_service_level, 3) == erlang_sl
    assert report.service_level == report.service_level_all
    assert report.service_level_ci95 is not None
    low, high = report.service_level_ci95
    assert low <= report.erlang_service_level <= high, report
    assert high - low <= 0.02, report
    # The issue asks only that the 95% interval of the service level hold
    # Erlang's value. P(wait) and ASA are held to 1.5 times their 95%
    # half-width, about three standard errors (t beyond 2.9 with 29 degrees of
    # freedom: 0.7% of seeds for a correct router; 2 misses in the 400 checks
    # of the seeds above). At these lengths that still catches a fault
    # moving P(wait) by 0.012 or ASA by 10-15%. The intervals themselves must
    # be narrow, so a broken variance estimate cannot widen the tolerance.
    assert report.asa_seconds is not None and report.asa_seconds_ci95 is not None
    assert within(report.erlang_p_wait, report.p_wait, report.p_wait_ci95, 1.5), report
    assert within(report.erlang_asa_seconds, report.asa_seconds, report.asa_seconds_ci95, 1.5)
    assert report.p_wait_ci95[1] - report.p_wait_ci95[0] <= 0.025
    asa_low, asa_high = report.asa_seconds_ci95
    assert asa_high - asa_low <= 0.3 * report.erlang_asa_seconds


async def test_callers_who_hang_up_lift_the_service_level_of_the_rest() -> None:
    # Same seed, so the same callers with the same handle times: only patience differs.
    patient = await simulate.run(scenario(13, 30_000))
    impatient = await simulate.run(scenario(13, 30_000, patience_seconds=60.0))

    assert patient.abandon_rate == 0
    assert impatient.abandon_rate > 0
    assert impatient.abandoned == impatient.measured - impatient.answered > 0
    assert impatient.offer_timeouts == 0
    assert impatient.service_level is not None and patient.service_level is not None
    assert impatient.service_level > patient.service_level
    assert impatient.asa_seconds is not None and patient.asa_seconds is not None
    assert impatient.asa_seconds < patient.asa_seconds
    # Counted over everyone who called, a caller who gave up was not served in time.
    assert impatient.service_level_all < impatient.service_level
    # Erlang C knows no abandons: its figures stay those of the patient floor.
    assert impatient.erlang_service_level == patient.erlang_service_level


async def test_wrap_up_is_ended_by_the_routers_own_timer() -> None:
    # Nothing on the floor ends a wrap-up: only a Tick at the router's deadline
    # frees the agent, so a floor that missed a deadline would never finish.
    plain = await simulate.run(scenario(14, 20_000))
    wrapping = await simulate.run(scenario(14, 20_000, wrapup_seconds=15.0))

    assert wrapping.answered == wrapping.measured
    assert wrapping.offer_timeouts == 0
    assert wrapping.wrapup_seconds == 15.0
    assert wrapping.service_level is not None and plain.service_level is not None
    assert wrapping.service_level < plain.service_level - 0.05


async def test_a_seed_fixes_every_figure() -> None:
    first = await simulate.run(scenario(13, 2_000, seed=9, patience_seconds=60.0))
    again = await simulate.run(scenario(13, 2_000, seed=9, patience_seconds=60.0))
    other = await simulate.run(scenario(13, 2_000, seed=10, patience_seconds=60.0))
    assert first == again
    assert first.service_level_ci95 != other.service_level_ci95


async def test_a_long_run_gives_its_event_loop_back() -> None:
    turns = 0
    finished = False

    async def neighbour() -> None:
        nonlocal turns
        while not finished:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(neighbour())
    try:
        await simulate.run(scenario(13, 5_000))
    finally:
        finished = True
        await task
    # 5,000 contacts are 10,000 events on the floor: an arrival and a hang-up each.
    assert turns >= 10_000 // simulate.EVENTS_PER_STEP


def test_unstable_queue_without_patience_is_refused_and_with_patience_is_not() -> None:
    with pytest.raises(ValueError, match="no steady state"):
        scenario(10, 10_000)
    scenario(10, 10_000, patience_seconds=60.0)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"agents": 0}, "agents"),
        ({"calls_per_hour": float("nan")}, "calls_per_hour"),
        ({"aht_seconds": -1.0}, "aht_seconds"),
        ({"target_seconds": float("inf")}, "target_seconds"),
        ({"contacts": 0}, "contacts"),
        ({"contacts": simulate.MAX_CONTACTS + 1}, "contacts"),
        ({"seed": 1.5}, "seed"),
        ({"patience_seconds": 0.0}, "patience"),
        ({"warmup": -1}, "warmup"),
        ({"warmup": 9_900}, "too few"),
        ({"batches": simulate.MIN_BATCHES - 1}, "batches"),
        ({"wrapup_seconds": -1.0}, "wrapup"),
        ({"wrapup_seconds": 20.0, "agents": 11}, "no steady state"),
    ],
)
def test_bad_scenarios_name_the_bad_input(change: dict[str, object], named: str) -> None:
    fields: dict[str, object] = {
        "calls_per_hour": CALLS,
        "aht_seconds": AHT,
        "agents": 14,
        "target_seconds": TARGET,
        "contacts": 10_000,
        "seed": 1,
        **change,
    }
    with pytest.raises(ValueError, match=named):
        Scenario(**fields)  # type: ignore[arg-type]


def test_t_quantiles_match_the_tables() -> None:
    for degrees, table in ((19, 2.093), (29, 2.045), (60, 2.000), (10**9, 1.960)):
        assert round(t_quantile_975(degrees), 3) == table


def test_batch_means_of_equal_batches_and_of_unequal_ones() -> None:
    found = ratio_ci95([1.0, 2.0, 3.0], [4.0, 4.0, 4.0])
    assert found is not None
    ratio, (low, high) = found
    # Equal batches: the mean of 1/4, 2/4, 3/4 with its t interval, s = 1/4.
    assert ratio == pytest.approx(0.5)
    assert high - ratio == pytest.approx(t_quantile_975(2) * 0.25 / 3**0.5)
    assert ratio - low == pytest.approx(high - ratio)
    # Batches with the same share have no spread, whatever their sizes.
    found = ratio_ci95([1.0, 3.0, 5.0], [2.0, 6.0, 10.0])
    assert found is not None
    assert found[1] == pytest.approx((0.5, 0.5))
    assert ratio_ci95([0.0, 0.0], [0.0, 0.0]) is None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_callcenter("simulate", *args)


def test_the_command() -> None:
    example = ("--calls-per-hour", "200", "--aht", "180", "--target", "20")
    small = (*example, "--agents", "14", "--contacts", "3000", "--seed", "5")

    done = run_cli(*small, "--patience", "60", "--warmup", "500")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert set(figures) == {f.name for f in dataclasses.fields(SimulationReport)}
    assert figures["contacts"] == 3000
    assert figures["seed"] == 5
    assert figures["warmup"] == 500
    assert figures["service_level_definition"] == "answered within target / answered"
    assert len(figures["service_level_ci95"]) == 2
    assert round(figures["erlang_service_level"], 3) == 0.888
    expected = asyncio.run(
        simulate.run(scenario(14, 3000, seed=5, patience_seconds=60.0, warmup=500))
    )
    assert figures == json.loads(json.dumps(expected.as_json()))

    for bad in (
        ("--agents", "0"),
        ("--contacts", "ten"),
        ("--patience", "-5"),
        ("--warmup", "3000"),
        ("--agents", "10"),  # 10 Erlangs, nobody hangs up: no steady state
    ):
        refused = run_cli(*example, "--contacts", "3000", "--seed", "5", "--agents", "14", *bad)
        assert refused.returncode == 2, bad
        assert refused.stdout == ""
        assert "error:" in refused.stderr
    missing = run_cli(*example, "--agents", "14", "--contacts", "3000")
    assert missing.returncode == 2
    assert "--seed" in missing.stderr
