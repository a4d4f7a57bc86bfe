"""The contact lifecycle and agent presence as transition tables.

A contact (a call, a chat, a queued callback) goes
``arrived -> queued -> offered -> connected -> wrapup -> done``; it can leave
the queue as ``abandoned`` (the customer left), ``overflowed`` (moved on to
another queue or target by a limit) or be ``timed_out``. An offer that is
refused or not answered takes the contact back to ``queued``.

An agent's presence (offline, available, away with a reason) is separate from
the contacts the agent holds: routability is derived from both. An illegal
move raises :class:`IllegalTransition` and changes nothing.
"""

from __future__ import annotations

from enum import StrEnum


class IllegalTransition(ValueError):
    def __init__(self, what: str, current: str, target: str) -> None:
        super().__init__(f"a {what} cannot go from {current} to {target}")
        self.current = current
        self.target = target


class ContactStatus(StrEnum):
    ARRIVED = "arrived"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    WRAPUP = "wrapup"
    DONE = "done"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"
    TIMED_OUT = "timed_out"


C = ContactStatus

CONTACT_TRANSITIONS: dict[ContactStatus, frozenset[ContactStatus]] = {
    C.ARRIVED: frozenset({C.QUEUED, C.OVERFLOWED, C.ABANDONED}),
    C.QUEUED: frozenset({C.OFFERED, C.ABANDONED, C.OVERFLOWED, C.TIMED_OUT, C.QUEUED}),
    C.OFFERED: frozenset({C.CONNECTED, C.QUEUED, C.ABANDONED}),
    C.CONNECTED: frozenset({C.WRAPUP, C.DONE}),
    C.WRAPUP: frozenset({C.DONE}),
    C.DONE: frozenset(),
    C.ABANDONED: frozenset(),
    C.OVERFLOWED: frozenset(),
    C.TIMED_OUT: frozenset(),
}

#: States in which the contact is over for the router.
FINAL = frozenset({C.DONE, C.ABANDONED, C.OVERFLOWED, C.TIMED_OUT})


def check_contact(current: ContactStatus, target: ContactStatus) -> ContactStatus:
    if target not in CONTACT_TRANSITIONS[current]:
        raise IllegalTransition("contact", current, target)
    return target


class Presence(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    AWAY = "away"


P = Presence

PRESENCE_TRANSITIONS: dict[Presence, frozenset[Presence]] = {
    P.OFFLINE: frozenset({P.AVAILABLE, P.AWAY}),
    P.AVAILABLE: frozenset({P.AWAY, P.OFFLINE}),
    P.AWAY: frozenset({P.AVAILABLE, P.OFFLINE, P.AWAY}),
}


def check_presence(current: Presence, target: Presence) -> Presence:
    if target not in PRESENCE_TRANSITIONS[current]:
        raise IllegalTransition("agent", current, target)
    return target
