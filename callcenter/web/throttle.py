"""Login throttling per account and per address (pure: ``now`` is passed in).

After ``max_failures`` failures within ``window`` seconds a key is locked for
``lockout`` seconds, doubling with each further failure up to an hour. The
same answer is given whether or not the account exists.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MAX_LOCKOUT = 3600.0


@dataclass
class _Key:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    strikes: int = 0


class LoginThrottle:
    def __init__(
        self, max_failures: int, window: float, lockout: float, max_keys: int = 100_000
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        #: Bound on remembered keys (a security limit against memory exhaustion).
        self.max_keys = max_keys
        self._keys: dict[str, _Key] = {}

    def retry_after(self, keys: list[str], now: float) -> float | None:
        """Seconds until a login for these keys may be tried again, or ``None``."""
        waits = [k.locked_until - now for name in keys if (k := self._keys.get(name))]
        longest = max((w for w in waits if w > 0), default=None)
        return longest

    def failed(self, keys: list[str], now: float) -> None:
        for name in keys:
            key = self._keys.get(name)
            if key is None:
                if len(self._keys) >= self.max_keys:
                    self._expire(now)
                key = self._keys[name] = _Key()
            while key.failures and key.failures[0] <= now - self.window:
                key.failures.popleft()
            key.failures.append(now)
            if len(key.failures) >= self.max_failures:
                key.strikes += 1
                key.locked_until = now + min(self.lockout * 2 ** (key.strikes - 1), MAX_LOCKOUT)

    def succeeded(self, keys: list[str]) -> None:
        for name in keys:
            self._keys.pop(name, None)

    def _expire(self, now: float) -> None:
        stale = [
            name
            for name, key in self._keys.items()
            if key.locked_until < now and (not key.failures or key.failures[-1] < now - self.window)
        ]
        for name in stale:
            del self._keys[name]
        while len(self._keys) >= self.max_keys:
            self._keys.pop(next(iter(self._keys)))


class RateLimiter:
    """At most ``limit`` events per key within ``window`` seconds (pure: ``now`` passed in)."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        #: Bound on remembered keys (a security limit against memory exhaustion).
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        """Count one event for ``key``; False (and not counted) when over the limit."""
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self.max_keys:
                self._events.pop(next(iter(self._events)))
            events = self._events[key] = deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True
