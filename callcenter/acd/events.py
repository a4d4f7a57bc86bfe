"""What goes into the router and what comes out of it.

Inputs are facts (an agent logged in, a contact arrived, an offer was
accepted, the store answered a reservation); outputs are effects the adapter
carries out (reserve in the live-state store, ring the agent's phone or show
the offer, withdraw an offer, start wrap-up, log to the queue log). Times are
aware UTC datetimes.

Inputs are frozen dataclasses. Effects, and the store's answer
:class:`ReserveResult`, are made by the router at every decision, some ten of
them each time, so they are plain dataclasses with slots: a frozen one sets
each field through ``object.__setattr__``, which cost a sixth of a routing
decision. Nobody changes an effect after the router made it; treat them as
read-only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# -- inputs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentJoined:
    """An agent logged in (or its profile changed): skills, capacities, order."""

    agent_id: str
    skills: dict[str, int]
    #: Contacts the agent may hold at once, per channel (e.g. voice 1, chat 3).
    capacity: dict[str, int]
    #: Position for the linear strategy (lower first).
    order: int = 0


@dataclass(frozen=True, slots=True)
class AgentPresenceChanged:
    agent_id: str
    presence: str  # "available", "away", "offline"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ContactArrived:
    contact_id: str
    queue: str
    channel: str
    #: Customer tier when the identity is verified (key / normal / small), else None.
    tier: str | None = None
    #: Extra priority levels the IVR set.
    ivr_priority: int = 0
    #: Skills this contact needs beyond its queue's (e.g. a language).
    skills: dict[str, int] = field(default_factory=dict)
    #: When the customer started waiting; kept when a contact moves between queues.
    waiting_since: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ContactLeft:
    """The customer hung up or closed the chat."""

    contact_id: str


@dataclass(frozen=True, slots=True)
class OfferAccepted:
    contact_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferRejected:
    contact_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class WrapupDone:
    contact_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class CallbackRequested:
    """The caller asked to be called back; the contact keeps its place in line."""

    contact_id: str
    number: str


@dataclass(frozen=True, slots=True)
class ContactMoved:
    """A supervisor moved a waiting contact to another queue."""

    contact_id: str
    queue: str


@dataclass(slots=True)
class ReserveResult:
    """The live-state store's answer to :class:`Reserve`."""

    contact_id: str
    agent_id: str
    ok: bool


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: deadlines up to ``now`` fire."""


Event = (
    AgentJoined
    | AgentPresenceChanged
    | ContactArrived
    | ContactLeft
    | OfferAccepted
    | OfferRejected
    | WrapupDone
    | CallbackRequested
    | ContactMoved
    | ReserveResult
    | Tick
)

# -- effects ------------------------------------------------------------------


@dataclass(slots=True)
class Reserve:
    """Ask the live-state store to reserve the contact and a slot of the agent.

    The store applies it as a compare-and-set on ``contact_version`` and the
    agent's load against ``capacity``; feed its answer back as
    :class:`ReserveResult`.
    """

    contact_id: str
    agent_id: str
    channel: str
    capacity: int
    contact_version: int
    #: Ring-all: the contact may be reserved by several agents until one accepts.
    shared: bool = False


@dataclass(slots=True)
class Offer:
    """Show the offer to the agent (ring the phone); it expires at ``deadline``."""

    contact_id: str
    agent_id: str
    queue: str
    channel: str
    deadline: dt.datetime


@dataclass(slots=True)
class Withdraw:
    """An offer ended without this agent: tell the console, free the store slot."""

    contact_id: str
    agent_id: str
    reason: str  # "rejected", "timeout", "taken", "abandoned"


@dataclass(slots=True)
class Connect:
    """The agent accepted: commit the reservation, bridge the call or open the chat."""

    contact_id: str
    agent_id: str


@dataclass(slots=True)
class StartWrapup:
    contact_id: str
    agent_id: str
    deadline: dt.datetime


@dataclass(slots=True)
class Finish:
    """The contact is over for the agent: free the store slot."""

    contact_id: str
    agent_id: str


@dataclass(slots=True)
class ContactEnded:
    """The contact left routing for good."""

    contact_id: str
    outcome: str  # "done", "abandoned", "overflowed", "timed_out", "rejected_full"
    target: str = ""  # overflow queue or limit target


@dataclass(slots=True)
class PresenceSet:
    """The router changed an agent's presence (e.g. away "missed" after a timeout)."""

    agent_id: str
    presence: str
    reason: str


@dataclass(slots=True)
class QueueLog:
    """One line of the queue log: enough to rebuild any report."""

    at: dt.datetime
    contact_id: str
    queue: str
    agent_id: str
    event: str
    data: dict[str, str | int | float] = field(default_factory=dict)


Effect = (
    Reserve
    | Offer
    | Withdraw
    | Connect
    | StartWrapup
    | Finish
    | ContactEnded
    | PresenceSet
    | QueueLog
)
