"""RFC 3261 section 17 transactions, with the RFC 6026 "Accepted" states.

Four state machines, each a plain object: the transaction layer feeds it what
arrived (:meth:`receive`), what the transaction user wants to send
(:meth:`respond` on server transactions), timer expiries (:meth:`fire`, when
:meth:`next_deadline` has passed) and transport failures; each call returns
the effects to carry out, in order:

- :class:`Send`: put this message on the wire to the transaction's peer;
- :class:`Deliver`: hand this message to the transaction user (the UA core);
- :class:`TimedOut`: the request got no final response in time (timer B or F),
  or a final response to an INVITE was never acknowledged (timer H);
- :class:`TransportFailed`: the transport reported an error (17.1.4, 17.2.4).

After any call, :attr:`state` may be :attr:`State.TERMINATED`: the layer then
forgets the transaction. Messages are opaque here: a request needs a
``method``, a response a ``status``; building an ACK for a non-2xx final
response (17.1.1.3) is passed in, since only the message module knows how.

Timers follow 17.1 and 17.2 with T1, T2 and T4 from :class:`Timers`; on a
reliable transport (TCP) the retransmission timers (A, E, G) never run and the
wait timers (D, I, J, K) are zero, as the RFC says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol


class _Request(Protocol):
    @property
    def method(self) -> str: ...


class _Response(Protocol):
    @property
    def status(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Timers:
    """RFC 3261 timer values in seconds (17.1.1.1, table 4 in appendix A)."""

    #: Round-trip time estimate; retransmissions start at T1 and double.
    t1: float = 0.5
    #: The longest retransmission interval for non-INVITE requests and responses.
    t2: float = 4.0
    #: The longest a message stays in the network.
    t4: float = 5.0

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J, L and M."""
        return 64 * self.t1


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


S = State

#: Each kind's transitions (figures 5-8 of RFC 3261 and 5-8 of RFC 6026).
TRANSITIONS: dict[str, dict[State, frozenset[State]]] = {
    "invite_client": {
        S.CALLING: frozenset({S.PROCEEDING, S.ACCEPTED, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.ACCEPTED, S.COMPLETED, S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    },
    "non_invite_client": {
        S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    },
    "invite_server": {
        S.PROCEEDING: frozenset({S.ACCEPTED, S.COMPLETED, S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
        S.COMPLETED: frozenset({S.CONFIRMED, S.TERMINATED}),
        S.CONFIRMED: frozenset({S.TERMINATED}),
    },
    "non_invite_server": {
        S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    },
}


class IllegalTransition(RuntimeError):
    """A move the kind's table has no entry for; nothing was changed."""


class TransactionError(ValueError):
    """The transaction user asked for something the RFC forbids (e.g. a second final)."""


@dataclass(frozen=True, slots=True)
class Send:
    message: Any


@dataclass(frozen=True, slots=True)
class Deliver:
    message: Any


@dataclass(frozen=True, slots=True)
class TimedOut:
    timer: str


@dataclass(frozen=True, slots=True)
class TransportFailed:
    pass


Effect = Send | Deliver | TimedOut | TransportFailed


class _Transaction:
    kind = ""

    def __init__(self, request: Any, reliable: bool, timers: Timers, state: State) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = state
        #: Timer name -> absolute deadline (seconds, the caller's clock).
        self._deadlines: dict[str, float] = {}
        #: Current retransmission interval of the running A, E or G timer.
        self._interval = timers.t1

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def fire(self, now: float) -> list[Effect]:
        """Run every timer due at ``now``, earliest first."""
        out: list[Effect] = []
        while self.state is not S.TERMINATED:
            due = [(at, name) for name, at in self._deadlines.items() if at <= now]
            if not due:
                break
            _, name = min(due)
            at = self._deadlines.pop(name)
            self._expired(name, at, out)
        return out

    def transport_error(self) -> list[Effect]:
        """17.1.4 / 17.2.4: the transport could not send; the TU is told."""
        if self.state is S.TERMINATED:
            return []
        self._move(S.TERMINATED)
        return [TransportFailed()]

    def _move(self, target: State) -> None:
        if target not in TRANSITIONS[self.kind].get(self.state, frozenset()):
            raise IllegalTransition(f"{self.kind}: {self.state.value} -> {target.value}")
        self.state = target
        if target is S.TERMINATED:
            self._deadlines.clear()

    def _start(self, name: str, now: float, after: float) -> None:
        self._deadlines[name] = now + after

    def _wait(self, name: str, now: float, unreliable_wait: float) -> None:
        """A wait timer (D, I, J, K): zero on reliable transports, so terminate now."""
        if self.reliable:
            self._move(S.TERMINATED)
        else:
            self._start(name, now, unreliable_wait)

    def _expired(self, name: str, at: float, out: list[Effect]) -> None:
        raise NotImplementedError


class InviteClient(_Transaction):
    """17.1.1 with RFC 6026 7.2: Calling, Proceeding, Accepted, Completed."""

    kind = "invite_client"

    def __init__(
        self,
        request: _Request,
        reliable: bool,
        timers: Timers,
        make_ack: Callable[[Any], Any],
    ) -> None:
        super().__init__(request, reliable, timers, S.CALLING)
        self._make_ack = make_ack
        self._ack: Any = None

    def start(self, now: float) -> list[Effect]:
        if not self.reliable:
            self._start("A", now, self.timers.t1)
        self._start("B", now, self.timers.timeout)
        return [Send(self.request)]

    def receive(self, response: _Response, now: float) -> list[Effect]:
        status = response.status
        if self.state in (S.CALLING, S.PROCEEDING):
            self._deadlines.pop("A", None)
            if status < 200:
                if self.state is S.CALLING:
                    self._move(S.PROCEEDING)
                    self._deadlines.pop("B", None)
                return [Deliver(response)]
            if status < 300:
                # The ACK for a 2xx is the TU's, sent end to end (13.2.2.4);
                # retransmitted 2xx keep reaching it while Accepted (RFC 6026).
                self._move(S.ACCEPTED)
                self._deadlines.pop("B", None)
                self._start("M", now, self.timers.timeout)
                return [Deliver(response)]
            self._move(S.COMPLETED)
            self._deadlines.pop("B", None)
            self._ack = self._make_ack(response)
            out: list[Effect] = [Send(self._ack), Deliver(response)]
            self._wait("D", now, max(32.0, self.timers.timeout))
            return out
        if self.state is S.ACCEPTED and 200 <= status < 300:
            return [Deliver(response)]
        if self.state is S.COMPLETED and status >= 300:
            return [Send(self._ack)]  # the ACK was lost: send it again
        return []

    def _expired(self, name: str, at: float, out: list[Effect]) -> None:
        if name == "A" and self.state is S.CALLING:
            self._interval *= 2  # 17.1.1.2: doubles, with no cap
            self._start("A", at, self._interval)
            out.append(Send(self.request))
        elif name == "B" and self.state is S.CALLING:
            self._move(S.TERMINATED)
            out.append(TimedOut("B"))
        elif name in ("D", "M"):
            self._move(S.TERMINATED)


class NonInviteClient(_Transaction):
    """17.1.2: Trying, Proceeding, Completed."""

    kind = "non_invite_client"

    def __init__(self, request: _Request, reliable: bool, timers: Timers) -> None:
        super().__init__(request, reliable, timers, S.TRYING)

    def start(self, now: float) -> list[Effect]:
        if not self.reliable:
            self._start("E", now, self.timers.t1)
        self._start("F", now, self.timers.timeout)
        return [Send(self.request)]

    def receive(self, response: _Response, now: float) -> list[Effect]:
        if self.state not in (S.TRYING, S.PROCEEDING):
            return []  # Completed absorbs retransmitted responses
        if response.status < 200:
            if self.state is S.TRYING:
                self._move(S.PROCEEDING)
            return [Deliver(response)]
        self._move(S.COMPLETED)
        self._deadlines.pop("E", None)
        self._deadlines.pop("F", None)
        self._wait("K", now, self.timers.t4)
        return [Deliver(response)]

    def _expired(self, name: str, at: float, out: list[Effect]) -> None:
        if name == "E" and self.state in (S.TRYING, S.PROCEEDING):
            # 17.1.2.2: doubling up to T2 while Trying, every T2 once Proceeding.
            if self.state is S.TRYING:
                self._interval = min(2 * self._interval, self.timers.t2)
            else:
                self._interval = self.timers.t2
            self._start("E", at, self._interval)
            out.append(Send(self.request))
        elif name == "F" and self.state in (S.TRYING, S.PROCEEDING):
            self._move(S.TERMINATED)
            out.append(TimedOut("F"))
        elif name == "K":
            self._move(S.TERMINATED)


class InviteServer(_Transaction):
    """17.2.1 with RFC 6026 7.1: Proceeding, Accepted, Completed, Confirmed.

    The UA core should send a provisional response at once (a 100 Trying at
    least) so that the caller's timer A stops.
    """

    kind = "invite_server"

    def __init__(self, request: _Request, reliable: bool, timers: Timers) -> None:
        super().__init__(request, reliable, timers, S.PROCEEDING)
        self._last: Any = None

    def start(self, now: float) -> list[Effect]:
        return [Deliver(self.request)]

    def receive(self, request: _Request, now: float) -> list[Effect]:
        """A retransmitted INVITE, or the ACK for a non-2xx final response."""
        if request.method == "ACK":
            if self.state is S.COMPLETED:
                self._move(S.CONFIRMED)
                self._deadlines.pop("G", None)
                self._deadlines.pop("H", None)
                self._wait("I", now, self.timers.t4)
            elif self.state is S.ACCEPTED:
                return [Deliver(request)]
            return []
        if self.state in (S.PROCEEDING, S.COMPLETED) and self._last is not None:
            return [Send(self._last)]
        return []  # Accepted: the TU retransmits its 2xx itself

    def respond(self, response: _Response, now: float) -> list[Effect]:
        status = response.status
        if self.state is S.ACCEPTED and 200 <= status < 300:
            return [Send(response)]  # a 2xx retransmitted by the TU (RFC 6026 8.5)
        if self.state is not S.PROCEEDING:
            raise TransactionError(f"no response can be sent in state {self.state.value}")
        self._last = response
        if status < 200:
            return [Send(response)]
        if status < 300:
            self._move(S.ACCEPTED)
            self._start("L", now, self.timers.timeout)
            return [Send(response)]
        self._move(S.COMPLETED)
        if not self.reliable:
            self._start("G", now, self.timers.t1)
        self._start("H", now, self.timers.timeout)
        return [Send(response)]

    def _expired(self, name: str, at: float, out: list[Effect]) -> None:
        if name == "G" and self.state is S.COMPLETED:
            self._interval = min(2 * self._interval, self.timers.t2)
            self._start("G", at, self._interval)
            out.append(Send(self._last))
        elif name == "H" and self.state is S.COMPLETED:
            self._move(S.TERMINATED)
            out.append(TimedOut("H"))
        elif name in ("I", "L"):
            self._move(S.TERMINATED)


class NonInviteServer(_Transaction):
    """17.2.2: Trying, Proceeding, Completed."""

    kind = "non_invite_server"

    def __init__(self, request: _Request, reliable: bool, timers: Timers) -> None:
        super().__init__(request, reliable, timers, S.TRYING)
        self._last: Any = None

    def start(self, now: float) -> list[Effect]:
        return [Deliver(self.request)]

    def receive(self, request: _Request, now: float) -> list[Effect]:
        """A retransmission of the request: answered with the last response."""
        if self._last is not None and self.state in (S.PROCEEDING, S.COMPLETED):
            return [Send(self._last)]
        return []

    def respond(self, response: _Response, now: float) -> list[Effect]:
        if self.state not in (S.TRYING, S.PROCEEDING):
            raise TransactionError(f"no response can be sent in state {self.state.value}")
        self._last = response
        if response.status < 200:
            if self.state is S.TRYING:
                self._move(S.PROCEEDING)
            return [Send(response)]
        self._move(S.COMPLETED)
        self._wait("J", now, self.timers.timeout)
        return [Send(response)]

    def _expired(self, name: str, at: float, out: list[Effect]) -> None:
        if name == "J":
            self._move(S.TERMINATED)


ClientTransaction = InviteClient | NonInviteClient
ServerTransaction = InviteServer | NonInviteServer
