"""How a queue chooses among the agents who could take a contact.

Each strategy is a sort key over candidates (lower first); ties go to the
more skilled agent, then the agent id, so choices are reproducible.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    agent_id: str
    idle_since: dt.datetime
    handled: int
    talk_seconds: float
    order: int
    #: Sum of the agent's proficiency in the skills the contact needs.
    proficiency: int
    #: Contacts of the contact's channel the agent holds now (several chats).
    load: int = 0


Key = Callable[[Candidate], tuple[object, ...]]

KEYS: dict[str, Key] = {
    # For chats an agent with fewer conversations comes first, else the first
    # agent picked would fill up before anyone else got one.
    "longest_idle": lambda c: (c.load, c.idle_since, -c.proficiency, c.agent_id),
    "fewest_contacts": lambda c: (c.handled, c.idle_since, c.agent_id),
    "least_talk_time": lambda c: (c.talk_seconds, c.idle_since, c.agent_id),
    "linear": lambda c: (c.order, c.agent_id),
}


def choose(
    strategy: str,
    candidates: Sequence[Candidate],
    rng: random.Random,
    last_agent: str | None,
) -> Candidate | None:
    """The agent to offer to (for ring-all, see :func:`ring_all`)."""
    if not candidates:
        return None
    if strategy == "random":
        return rng.choice(sorted(candidates, key=lambda c: c.agent_id))
    if strategy == "round_robin":
        # The next agent after the one who got the previous contact, in id order.
        ordered = sorted(candidates, key=lambda c: c.agent_id)
        if last_agent is None:
            return ordered[0]
        return next((c for c in ordered if c.agent_id > last_agent), ordered[0])
    return min(candidates, key=KEYS.get(strategy, KEYS["longest_idle"]))
