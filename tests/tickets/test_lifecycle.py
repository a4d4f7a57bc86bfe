"""The ticket lifecycle table, without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from callcenter.config import TicketSettings
from callcenter.tickets.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    TicketState,
    TicketStatus,
    transition,
)
from callcenter.tickets.sla import due_times, effective_priority

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def test_every_pair_follows_the_table() -> None:
    for current in TicketStatus:
        for target in TicketStatus:
            state = TicketState(current.value, "inquiry", None)
            if target in TRANSITIONS[current]:
                assert transition(state, target.value, NOW)["status"] == target.value
            else:
                with pytest.raises(IllegalTransition):
                    transition(state, target.value, NOW)


def test_times_follow_the_moves() -> None:
    fresh = TicketState("new", "inquiry", None)
    assert transition(fresh, "open", NOW) == {"status": "open", "first_responded_at": NOW}
    resolved = transition(TicketState("open", "fault", NOW), "resolved", NOW, "fixed")
    assert resolved == {"status": "resolved", "resolved_at": NOW, "resolution": "fixed"}
    assert transition(TicketState("resolved", "fault", NOW), "open", NOW)["resolved_at"] is None
    assert transition(TicketState("resolved", "fault", NOW), "closed", NOW)["closed_at"] == NOW


def test_complaint_needs_a_resolution() -> None:
    complaint = TicketState("open", "complaint", NOW)
    with pytest.raises(IllegalTransition, match="resolution"):
        transition(complaint, "resolved", NOW, "   ")
    assert transition(complaint, "resolved", NOW, "refunded")["status"] == "resolved"


def test_unknown_status() -> None:
    with pytest.raises(IllegalTransition, match="unknown status"):
        transition(TicketState("new", "inquiry", None), "archived", NOW)


def test_sla_due_times_and_complaint_floor() -> None:
    settings = TicketSettings()
    assert effective_priority("complaint", "low", settings) == "high"
    assert effective_priority("complaint", "urgent", settings) == "urgent"
    assert effective_priority("inquiry", "low", settings) == "low"
    first, resolve = due_times("urgent", NOW, settings)
    assert first == NOW + dt.timedelta(hours=1) and resolve == NOW + dt.timedelta(hours=8)
