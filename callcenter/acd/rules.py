"""Queue rules and router settings (plain data, validated where they are built)."""

from __future__ import annotations

from dataclasses import dataclass, field

from callcenter.acd.priority import PriorityRules

STRATEGIES = (
    "longest_idle",
    "round_robin",
    "fewest_contacts",
    "least_talk_time",
    "linear",
    "random",
    "ring_all",
)


@dataclass(frozen=True, slots=True)
class Widening:
    """After ``after_seconds`` of waiting, accept agents ``lower_by`` levels less skilled."""

    after_seconds: float
    lower_by: int


@dataclass(frozen=True, slots=True)
class QueueRules:
    name: str
    #: Required skills with their minimum proficiency (1-5).
    skills: dict[str, int] = field(default_factory=dict)
    strategy: str = "longest_idle"
    priority: int = 0
    wrapup_seconds: float = 30.0
    offer_timeout_seconds: float = 20.0
    #: Longest the queue may grow; a contact beyond it overflows at once.
    max_waiting: int | None = None
    #: Longest a contact waits before it overflows.
    max_wait_seconds: float | None = None
    #: Where overflowing contacts go: another queue's name, or empty for
    #: ``ContactEnded(outcome="overflowed")`` that the adapter turns into voicemail
    #: or a callback.
    overflow_queue: str = ""
    widening: tuple[Widening, ...] = ()

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"queue {self.name}: unknown strategy {self.strategy!r}")
        steps = [w.after_seconds for w in self.widening]
        if steps != sorted(steps):
            raise ValueError(f"queue {self.name}: widening steps must grow with time")


@dataclass(frozen=True, slots=True)
class RouterSettings:
    priority: PriorityRules = field(default_factory=PriorityRules)
    #: What an agent becomes after letting an offer time out ("away" or keep "available").
    missed_offer_presence: str = "away"
    missed_offer_reason: str = "missed"
    #: A call takes the agent whole: no chats beside a call, no call beside chats.
    voice_is_exclusive: bool = True
