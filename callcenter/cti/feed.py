"""An event feed with sequence numbers and an epoch (pure: no sockets, no clock).

Every event a console may see is published on a feed and gets the next
sequence number. The feed's epoch is a random id made when the feed starts,
so a console can tell a restarted feed (numbers begin again) from a gap. A
console that reconnects sends the epoch and the last number it saw and gets
every later event it may see; if the epoch changed, or the events it missed
have left the bounded replay window, it is told to take a fresh snapshot.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FeedEvent:
    seq: int
    kind: str
    at: dt.datetime
    #: Who may see it: user ids, or roles such as "supervisor"; empty = everyone.
    audience: frozenset[str]
    data: Mapping[str, Any] = field(default_factory=dict)

    def wire(self, epoch: str) -> dict[str, Any]:
        """The JSON form sent to consoles."""
        return {
            "type": self.kind,
            "epoch": epoch,
            "seq": self.seq,
            "at": self.at.isoformat(),
            **self.data,
        }


@dataclass(frozen=True, slots=True)
class Replay:
    """The events after the console's last number that it may see, in order."""

    events: tuple[FeedEvent, ...]


@dataclass(frozen=True, slots=True)
class Resync:
    """The console must take a fresh snapshot: ``reason`` is "epoch" or "gap"."""

    reason: str


class Feed:
    def __init__(self, replay_window: int = 10_000, epoch: str | None = None) -> None:
        if replay_window < 1:
            raise ValueError("replay_window must be at least 1")
        self.epoch = epoch or uuid.uuid4().hex
        self.seq = 0
        self._window: deque[FeedEvent] = deque(maxlen=replay_window)

    def publish(
        self,
        kind: str,
        at: dt.datetime,
        data: Mapping[str, Any] | None = None,
        audience: frozenset[str] = frozenset(),
    ) -> FeedEvent:
        self.seq += 1
        event = FeedEvent(self.seq, kind, at, audience, dict(data or {}))
        self._window.append(event)
        return event

    def since(
        self, epoch: str, last_seq: int, may_see: Callable[[FeedEvent], bool]
    ) -> Replay | Resync:
        """What a console that saw up to ``last_seq`` of ``epoch`` has missed."""
        if epoch != self.epoch or last_seq > self.seq:
            return Resync("epoch")
        oldest = self._window[0].seq if self._window else self.seq + 1
        if last_seq < oldest - 1:
            return Resync("gap")
        return Replay(tuple(e for e in self._window if e.seq > last_seq and may_see(e)))


def visible_to(user_id: str, roles: frozenset[str]) -> Callable[[FeedEvent], bool]:
    """The filter for one console: events for everyone, for this user, or for a role it has."""
    mine = roles | {user_id}
    return lambda event: not event.audience or bool(event.audience & mine)
