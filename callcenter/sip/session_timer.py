"""Session timers (RFC 4028) for the calls we answer: a call whose BYE was lost ends.

A caller that supports the extension (``Supported: timer``) refreshes the
session with a re-INVITE or an UPDATE before its interval runs out; we, the
side not refreshing, hang up when no refresh came in time. Only the caller
refreshes here: when it asks *us* to (``refresher=uas``), or when a proxy
asked for a timer the caller cannot keep (``Session-Expires`` without
``Supported: timer``), we answer as a server without the extension (no
``Session-Expires`` in the 2xx, section 9), and the RTP inactivity timeout
alone watches the call.

Pure functions over messages: the call layer keeps the time.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.sip.message import ParseError, Request

#: The interval RFC 4028 (section 4) says no Min-SE may go below.
RFC_MIN_SE = 90
#: Largest delta-seconds value (RFC 4028 section 4: 32 bits).
_MAX_DELTA = 2**32 - 1


@dataclass(frozen=True, slots=True)
class SessionExpires:
    seconds: int
    refresher: str | None


def parse_session_expires(value: str) -> SessionExpires:
    """``Session-Expires: 1800;refresher=uac``; raises ParseError (400)."""
    head, *params = (part.strip() for part in value.split(";"))
    seconds = _delta(head, "Session-Expires")
    refresher = None
    for param in params:
        name, _, given = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = given.strip().lower()
            if refresher not in ("uac", "uas"):
                raise ParseError("Bad Session-Expires refresher")
    return SessionExpires(seconds, refresher)


def parse_min_se(value: str) -> int:
    """``Min-SE: 90`` (parameters allowed and ignored); raises ParseError (400)."""
    return _delta(value.split(";")[0].strip(), "Min-SE")


def _delta(text: str, name: str) -> int:
    if not text.isdigit() or len(text) > 10 or not 0 < int(text) <= _MAX_DELTA:
        raise ParseError(f"Bad {name}")
    return int(text)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What to do with an INVITE or UPDATE: refuse it with 422 (``too_small`` gives
    our Min-SE), or answer it with ``headers``, keeping a session ``interval``
    (seconds) that the caller refreshes; ``interval`` None: no session timer."""

    too_small: int | None = None
    interval: int | None = None
    headers: tuple[tuple[str, str], ...] = ()


def negotiate(request: Request, *, wanted: int, min_se: int) -> Negotiated:
    """The UAS's part of RFC 4028 (sections 8 and 9) for an INVITE or a refresh.

    ``wanted`` is the interval we would like (the caller may ask for less,
    down to ``min_se``); raises ParseError for a malformed header field.
    """
    supported = {token.lower() for token in request.list_values("Supported")}
    value = request.header("Session-Expires")
    asked = parse_session_expires(value) if value is not None else None
    floor = min_se
    min_value = request.header("Min-SE")
    if min_value is not None:
        floor = max(floor, parse_min_se(min_value))
    if asked is not None and asked.seconds < min_se:
        return Negotiated(too_small=min_se)
    if "timer" not in supported or (asked is not None and asked.refresher == "uas"):
        return Negotiated()
    # The caller's wish, or ours; never below what either side set as its floor.
    interval = max(min(asked.seconds, wanted) if asked else wanted, floor)
    return Negotiated(
        interval=interval,
        headers=(
            ("Session-Expires", f"{interval};refresher=uac"),
            ("Require", "timer"),
        ),
    )


def give_up_after(interval: int) -> float:
    """Seconds after the last refresh when the side not refreshing hangs up: before
    the session expires, by a third of it or 32 seconds, whichever is less (section 10)."""
    return interval - min(32.0, interval / 3)
