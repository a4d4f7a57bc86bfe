"""The priority score of a waiting contact, in seconds.

    score = seconds waited
          + queue_bonus_per_level * queue priority
          + tier bonus of the customer (key / normal / small)
          + ivr_bonus_per_level * priority set by the IVR

The highest score is served first. A key customer starts ``tier_bonus["key"]``
seconds ahead of a normal one, so key customers overtake, yet every score
grows one point a second, so a small customer who has waited long enough is
served before a key customer who has just arrived: nobody starves. An agent
who serves several queues takes the highest score across them; the queue
priority bonus is what makes one queue more urgent than another.

The defaults put a key customer two minutes ahead of a normal one and a
normal one half a minute ahead of a small one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


def _tiers() -> dict[str, float]:
    return {"key": 150.0, "normal": 30.0, "small": 0.0}


@dataclass(frozen=True, slots=True)
class PriorityRules:
    tier_bonus: dict[str, float] = field(default_factory=_tiers)
    queue_bonus_per_level: float = 1.0
    ivr_bonus_per_level: float = 60.0

    def score(
        self,
        *,
        waiting_since: dt.datetime,
        now: dt.datetime,
        queue_priority: int,
        tier: str | None,
        ivr_priority: int,
    ) -> float:
        waited = (now - waiting_since).total_seconds()
        bonus = self.tier_bonus.get(tier or "", self.tier_bonus.get("normal", 0.0))
        return (
            waited
            + self.queue_bonus_per_level * queue_priority
            + bonus
            + self.ivr_bonus_per_level * ivr_priority
        )

    def head_start(self, queue_priority: int, tier: str | None, ivr_priority: int) -> float:
        """The constant part of the score: score = (now - waiting_since) + head_start.

        Ordering waiting contacts by ``waiting_since - head_start`` (earliest
        first) is the same as ordering by score, at every ``now``.
        """
        bonus = self.tier_bonus.get(tier or "", self.tier_bonus.get("normal", 0.0))
        return (
            self.queue_bonus_per_level * queue_priority
            + bonus
            + self.ivr_bonus_per_level * ivr_priority
        )
