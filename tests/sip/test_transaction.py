"""RFC 3261 transactions (with RFC 6026) without sockets: every state, timer and retransmission."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from callcenter.sip.transaction import (
    Deliver,
    IllegalTransition,
    InviteClient,
    InviteServer,
    NonInviteClient,
    NonInviteServer,
    Send,
    State,
    TimedOut,
    Timers,
    TransactionError,
    TransportFailed,
)

T = Timers(t1=0.5, t2=4.0, t4=5.0)


@dataclass(frozen=True)
class Req:
    method: str


@dataclass(frozen=True)
class Resp:
    status: int


INVITE, ACK, BYE = Req("INVITE"), Req("ACK"), Req("BYE")


def ack_for(response: Resp) -> Req:
    return Req("ACK")


def sends(effects: list[object]) -> list[object]:
    return [e.message for e in effects if isinstance(e, Send)]


def run_until(tx: InviteClient | NonInviteClient | InviteServer | NonInviteServer, end: float):
    """Fire every deadline up to ``end``; returns (time, effects) of each firing."""
    fired = []
    while (at := tx.next_deadline()) is not None and at <= end:
        fired.append((at, tx.fire(at)))
    return fired


# -- INVITE client ------------------------------------------------------------


def test_invite_client_retransmits_with_doubling_then_times_out() -> None:
    tx = InviteClient(INVITE, reliable=False, timers=T, make_ack=ack_for)
    assert tx.start(0.0) == [Send(INVITE)]
    fired = run_until(tx, 40.0)
    resends = [at for at, effects in fired if sends(effects) == [INVITE]]
    # Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (doubling), until timer B at 64*T1.
    assert resends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert fired[-1] == (32.0, [TimedOut("B")])
    assert tx.state is State.TERMINATED and tx.next_deadline() is None


def test_invite_client_over_tcp_never_retransmits() -> None:
    tx = InviteClient(INVITE, reliable=True, timers=T, make_ack=ack_for)
    tx.start(0.0)
    fired = run_until(tx, 40.0)
    assert fired == [(32.0, [TimedOut("B")])]


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    tx = InviteClient(INVITE, reliable=False, timers=T, make_ack=ack_for)
    tx.start(0.0)
    assert tx.receive(Resp(180), 0.2) == [Deliver(Resp(180))]
    assert tx.state is State.PROCEEDING
    assert tx.next_deadline() is None  # ringing may last as long as the TU allows


def test_2xx_goes_to_the_tu_and_retransmissions_too_while_accepted() -> None:
    tx = InviteClient(INVITE, reliable=False, timers=T, make_ack=ack_for)
    tx.start(0.0)
    tx.receive(Resp(180), 0.1)
    assert tx.receive(Resp(200), 2.0) == [Deliver(Resp(200))]
    assert tx.state is State.ACCEPTED
    # RFC 6026: a retransmitted 2xx reaches the TU, which ACKs it again.
    assert tx.receive(Resp(200), 2.5) == [Deliver(Resp(200))]
    assert run_until(tx, 100.0) == [(34.0, [])]  # timer M
    assert tx.state is State.TERMINATED


def test_error_response_is_acked_by_the_transaction_and_absorbed_after() -> None:
    tx = InviteClient(INVITE, reliable=False, timers=T, make_ack=ack_for)
    tx.start(0.0)
    effects = tx.receive(Resp(486), 0.3)
    assert effects == [Send(ACK), Deliver(Resp(486))]
    assert tx.state is State.COMPLETED
    # The 486 again (our ACK was lost): ACK again, the TU hears nothing more.
    assert tx.receive(Resp(486), 0.8) == [Send(ACK)]
    assert run_until(tx, 100.0) == [(32.3, [])]  # timer D, at least 32 s
    assert tx.state is State.TERMINATED


def test_error_response_over_tcp_terminates_at_once() -> None:
    tx = InviteClient(INVITE, reliable=True, timers=T, make_ack=ack_for)
    tx.start(0.0)
    assert tx.receive(Resp(603), 1.0) == [Send(ACK), Deliver(Resp(603))]
    assert tx.state is State.TERMINATED


# -- non-INVITE client ------------------------------------------------------------


def test_non_invite_client_retransmits_up_to_t2_then_times_out() -> None:
    tx = NonInviteClient(BYE, reliable=False, timers=T)
    tx.start(0.0)
    fired = run_until(tx, 40.0)
    resends = [at for at, effects in fired if sends(effects)]
    # Timer E: 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s, until F at 32 s.
    assert resends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1] == (32.0, [TimedOut("F")])


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    tx = NonInviteClient(BYE, reliable=False, timers=T)
    tx.start(0.0)
    run_until(tx, 0.6)  # one resend at 0.5, next due at 1.5
    assert tx.receive(Resp(100), 0.7) == [Deliver(Resp(100))]
    fired = run_until(tx, 10.0)
    assert [at for at, effects in fired if sends(effects)] == [1.5, 5.5, 9.5]


def test_non_invite_final_then_timer_k() -> None:
    tx = NonInviteClient(BYE, reliable=False, timers=T)
    tx.start(0.0)
    assert tx.receive(Resp(200), 0.2) == [Deliver(Resp(200))]
    assert tx.receive(Resp(200), 0.3) == []  # retransmission absorbed
    assert run_until(tx, 10.0) == [(5.2, [])]
    assert tx.state is State.TERMINATED
    reliable = NonInviteClient(BYE, reliable=True, timers=T)
    reliable.start(0.0)
    reliable.receive(Resp(481), 0.1)
    assert reliable.state is State.TERMINATED


# -- INVITE server ----------------------------------------------------------------


def test_invite_server_answers_retransmissions_with_the_last_response() -> None:
    tx = InviteServer(INVITE, reliable=False, timers=T)
    assert tx.start(0.0) == [Deliver(INVITE)]
    assert tx.receive(INVITE, 0.1) == []  # nothing sent yet
    assert tx.respond(Resp(100), 0.1) == [Send(Resp(100))]
    tx.respond(Resp(180), 0.2)
    assert tx.receive(INVITE, 0.6) == [Send(Resp(180))]


def test_invite_server_2xx_is_accepted_and_the_tu_retransmits() -> None:
    tx = InviteServer(INVITE, reliable=False, timers=T)
    tx.start(0.0)
    assert tx.respond(Resp(200), 1.0) == [Send(Resp(200))]
    assert tx.state is State.ACCEPTED
    assert tx.receive(INVITE, 1.2) == []  # absorbed: the TU's 2xx timer resends
    assert tx.respond(Resp(200), 1.5) == [Send(Resp(200))]
    assert tx.receive(ACK, 1.6) == [Deliver(ACK)]
    assert run_until(tx, 100.0) == [(33.0, [])]  # timer L
    assert tx.state is State.TERMINATED


def test_invite_server_error_retransmits_until_ack_then_confirmed() -> None:
    tx = InviteServer(INVITE, reliable=False, timers=T)
    tx.start(0.0)
    tx.respond(Resp(486), 0.0)
    fired = run_until(tx, 10.0)
    # Timer G: 0.5, 1.5, 3.5, 7.5 (doubling up to T2 = 4 s).
    assert [at for at, effects in fired if sends(effects) == [Resp(486)]] == [0.5, 1.5, 3.5, 7.5]
    assert tx.receive(INVITE, 10.0) == [Send(Resp(486))]
    assert tx.receive(ACK, 10.1) == []
    assert tx.state is State.CONFIRMED
    assert run_until(tx, 100.0) == [(15.1, [])]  # timer I = T4
    assert tx.state is State.TERMINATED


def test_invite_server_error_never_acked_times_out_with_h() -> None:
    tx = InviteServer(INVITE, reliable=True, timers=T)
    tx.start(0.0)
    tx.respond(Resp(480), 0.0)
    assert run_until(tx, 100.0) == [(32.0, [TimedOut("H")])]  # no G over TCP


def test_invite_server_refuses_a_second_final_response() -> None:
    tx = InviteServer(INVITE, reliable=False, timers=T)
    tx.start(0.0)
    tx.respond(Resp(486), 0.0)
    with pytest.raises(TransactionError):
        tx.respond(Resp(200), 0.1)
    assert tx.state is State.COMPLETED


# -- non-INVITE server -------------------------------------------------------------


def test_non_invite_server_resends_last_response_then_timer_j() -> None:
    tx = NonInviteServer(BYE, reliable=False, timers=T)
    assert tx.start(0.0) == [Deliver(BYE)]
    assert tx.receive(BYE, 0.1) == []  # Trying: absorbed
    tx.respond(Resp(200), 0.2)
    assert tx.receive(BYE, 0.7) == [Send(Resp(200))]
    assert run_until(tx, 100.0) == [(32.2, [])]
    assert tx.state is State.TERMINATED
    with pytest.raises(TransactionError):
        tx.respond(Resp(200), 40.0)


def test_non_invite_server_over_tcp_terminates_on_the_final() -> None:
    tx = NonInviteServer(BYE, reliable=True, timers=T)
    tx.start(0.0)
    tx.respond(Resp(100), 0.0)
    assert tx.state is State.PROCEEDING
    tx.respond(Resp(200), 0.1)
    assert tx.state is State.TERMINATED


# -- transport errors and the tables -------------------------------------------------


def test_transport_error_terminates_and_tells_the_tu() -> None:
    tx = NonInviteClient(BYE, reliable=True, timers=T)
    tx.start(0.0)
    assert tx.transport_error() == [TransportFailed()]
    assert tx.state is State.TERMINATED and tx.next_deadline() is None
    assert tx.transport_error() == []


def test_an_illegal_move_raises_and_changes_nothing() -> None:
    tx = NonInviteServer(BYE, reliable=False, timers=T)
    tx.start(0.0)
    with pytest.raises(IllegalTransition):
        tx._move(State.CONFIRMED)
    assert tx.state is State.TRYING
