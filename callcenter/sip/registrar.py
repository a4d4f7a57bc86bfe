"""The registrar's bindings: where each agent extension can be reached (RFC 3261 10.3).

Pure bookkeeping with ``now`` passed in: the UA core authenticates a REGISTER
(digest, see :mod:`callcenter.sip.digest`), extracts its contacts and
expiries, and asks :meth:`Registrar.update` what to answer. Each binding keeps
the address the REGISTER really came from (``source``), so requests to the
extension go back through the same NAT binding or TCP connection (RFC 5626
in spirit, and RFC 3581 for UDP), whatever private address the phone put in
its Contact.

An extension with no live binding cannot ring: the voice layer asks
:meth:`Registrar.reachable` before making an agent routable for calls, and
:meth:`Registrar.expire` says whose last binding just lapsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RegistrarLimits:
    """Limits on registrations; the floor and ceiling of expiries are policy, in seconds."""

    #: Shortest registration accepted; shorter ones get 423 with Min-Expires (10.3 step 7).
    min_expires: int = 60
    #: Longest registration granted; longer requests are shortened to it.
    max_expires: int = 3600
    #: Expiry when the REGISTER names none (10.2.1.1 suggests one hour).
    default_expires: int = 3600
    #: Contacts one extension may register at once (desk phone, softphone, ...);
    #: a security limit against a client filling memory.
    max_bindings: int = 5


@dataclass(frozen=True, slots=True)
class Binding:
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    #: (transport, host, port) the REGISTER came from.
    source: tuple[str, str, int]
    #: Order of registration, so the newest binding is tried first.
    registered_at: float

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """One Contact of a REGISTER: its URI and its own ``expires`` parameter, if any."""

    contact: str
    expires: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to answer: 200 with the bindings now held, or an error status."""

    status: int
    reason: str
    bindings: tuple[Binding, ...] = ()
    #: For 423: the Min-Expires header value.
    min_expires: int | None = None


@dataclass
class Registrar:
    limits: RegistrarLimits = field(default_factory=RegistrarLimits)
    _bindings: dict[str, dict[str, Binding]] = field(default_factory=dict)

    def update(
        self,
        aor: str,
        contacts: list[ContactRequest],
        *,
        wildcard: bool,
        header_expires: int | None,
        call_id: str,
        cseq: int,
        source: tuple[str, str, int],
        now: float,
    ) -> Outcome:
        """Apply a REGISTER for ``aor`` (10.3 steps 6-8); nothing changes on an error."""
        current = {c: b for c, b in self._bindings.get(aor, {}).items() if b.expires_at > now}
        if wildcard:
            # "Contact: *" removes every binding, and only with Expires: 0 (10.2.2).
            if contacts or header_expires != 0:
                return Outcome(400, "Wildcard Contact needs Expires: 0 and no other Contact")
            if any(b.call_id == call_id and cseq <= b.cseq for b in current.values()):
                return Outcome(500, "Out of order REGISTER")
            self._bindings.pop(aor, None)
            return Outcome(200, "OK")
        updated = dict(current)
        for request in contacts:
            expires = request.expires if request.expires is not None else header_expires
            if expires is None:
                expires = self.limits.default_expires
            if 0 < expires < self.limits.min_expires:
                return Outcome(423, "Interval Too Brief", min_expires=self.limits.min_expires)
            expires = min(expires, self.limits.max_expires)
            existing = updated.get(request.contact)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                return Outcome(500, "Out of order REGISTER")
            if expires == 0:
                updated.pop(request.contact, None)
                continue
            updated[request.contact] = Binding(
                request.contact, now + expires, call_id, cseq, source, now
            )
        if len(updated) > self.limits.max_bindings:
            return Outcome(403, "Too many registrations for this extension")
        if updated:
            self._bindings[aor] = updated
        else:
            self._bindings.pop(aor, None)
        return Outcome(200, "OK", self.lookup(aor, now))

    def lookup(self, aor: str, now: float) -> tuple[Binding, ...]:
        """Live bindings of ``aor``, the most recently registered first."""
        live = [b for b in self._bindings.get(aor, {}).values() if b.expires_at > now]
        return tuple(sorted(live, key=lambda b: -b.registered_at))

    def reachable(self, aor: str, now: float) -> bool:
        return bool(self.lookup(aor, now))

    def next_expiry(self) -> float | None:
        """When :meth:`expire` next has something to do."""
        return min(
            (b.expires_at for held in self._bindings.values() for b in held.values()),
            default=None,
        )

    def expire(self, now: float) -> list[str]:
        """Drop lapsed bindings; returns the AORs left with none."""
        gone = []
        for aor in list(self._bindings):
            held = {c: b for c, b in self._bindings[aor].items() if b.expires_at > now}
            if held:
                self._bindings[aor] = held
            else:
                del self._bindings[aor]
                gone.append(aor)
        return gone
