"""Wall-clock UTC time and its wire form (ISO 8601)."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def to_iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def from_iso(value: str | None) -> dt.datetime | None:
    """Parse an ISO 8601 time; a time without an offset is refused, not guessed."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return parsed.astimezone(dt.UTC)
