"""The ticket lifecycle as one transition table.

``new -> open | pending | resolved``, ``open <-> pending``, either to
``resolved``, ``resolved -> closed`` or back to ``open`` (reopened). A closed
ticket stays closed: a new contact about it opens a new ticket linked to the
same customer. An illegal move raises :class:`IllegalTransition` and changes
nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


S = TicketStatus

TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.NEW: frozenset({S.OPEN, S.PENDING, S.RESOLVED}),
    S.OPEN: frozenset({S.PENDING, S.RESOLVED}),
    S.PENDING: frozenset({S.OPEN, S.RESOLVED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}


class IllegalTransition(ValueError):
    """The move is not in :data:`TRANSITIONS`, or a rule of the category forbids it."""

    def __init__(self, current: str, target: str, reason: str = "") -> None:
        allowed = ", ".join(sorted(TRANSITIONS.get(TicketStatus(current), ())))
        message = reason or (
            f"a {current} ticket cannot become {target}"
            + (f" (allowed: {allowed})" if allowed else " (it is final)")
        )
        super().__init__(message)
        self.current = current
        self.target = target


@dataclass(frozen=True, slots=True)
class TicketState:
    """What the lifecycle needs to know of a ticket."""

    status: str
    category: str
    first_responded_at: dt.datetime | None


def transition(
    ticket: TicketState, target: str, now: dt.datetime, resolution: str = ""
) -> dict[str, Any]:
    """Return the field changes that move ``ticket`` to ``target`` at ``now``.

    Complaints (投诉) are tracked to resolution: resolving one needs a
    written ``resolution``. Raises :class:`IllegalTransition`.
    """
    try:
        current, wanted = TicketStatus(ticket.status), TicketStatus(target)
    except ValueError:
        raise IllegalTransition(ticket.status, target, f"unknown status {target!r}") from None
    if wanted not in TRANSITIONS[current]:
        raise IllegalTransition(current, wanted)
    changes: dict[str, Any] = {"status": wanted.value}
    if wanted is S.RESOLVED:
        if ticket.category == "complaint" and not resolution.strip():
            raise IllegalTransition(
                current, wanted, "a complaint is resolved only with a written resolution"
            )
        changes["resolved_at"] = now
        if resolution:
            changes["resolution"] = resolution
    elif wanted is S.CLOSED:
        changes["closed_at"] = now
    elif current is S.RESOLVED and wanted is S.OPEN:
        changes["resolved_at"] = None
    if ticket.first_responded_at is None and current is S.NEW:
        changes["first_responded_at"] = now
    return changes
