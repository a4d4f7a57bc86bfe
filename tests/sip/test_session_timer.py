"""Session timers (RFC 4028), the server's side: what an INVITE or UPDATE is answered with."""

from __future__ import annotations

import pytest

from callcenter.sip.message import ParseError, Request, parse_datagram
from callcenter.sip.session_timer import (
    give_up_after,
    negotiate,
    parse_min_se,
    parse_session_expires,
)


def invite(*headers: str) -> Request:
    text = (
        "INVITE sip:100@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKst1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:100@127.0.0.1>\r\n"
        "Call-ID: st-1\r\n"
        "CSeq: 1 INVITE\r\n" + "".join(f"{h}\r\n" for h in headers) + "Content-Length: 0\r\n\r\n"
    )
    parsed = parse_datagram(text.encode())
    assert isinstance(parsed, Request)
    return parsed


def test_a_caller_that_supports_timers_refreshes_at_the_interval_it_asked_for() -> None:
    done = negotiate(
        invite("Supported: timer, 100rel", "Session-Expires: 600;refresher=uac"),
        wanted=1800,
        min_se=90,
    )
    assert done.too_small is None and done.interval == 600
    assert dict(done.headers) == {"Session-Expires": "600;refresher=uac", "Require": "timer"}


def test_our_interval_when_the_caller_asks_for_more_or_for_none() -> None:
    longer = negotiate(invite("k: timer", "x: 7200"), wanted=1800, min_se=90)
    assert longer.interval == 1800  # compact forms: Supported, Session-Expires
    unasked = negotiate(invite("Supported: timer"), wanted=1800, min_se=90)
    assert unasked.interval == 1800
    assert ("Session-Expires", "1800;refresher=uac") in unasked.headers


def test_never_below_the_callers_min_se() -> None:
    done = negotiate(
        invite("Supported: timer", "Session-Expires: 4000", "Min-SE: 3000"),
        wanted=1800,
        min_se=90,
    )
    assert done.interval == 3000


def test_too_small_an_interval_is_refused_with_our_min_se() -> None:
    done = negotiate(invite("Supported: timer", "Session-Expires: 60"), wanted=1800, min_se=90)
    assert done.too_small == 90 and not done.headers
    # Also from a caller that does not support the extension (a proxy asked).
    assert negotiate(invite("Session-Expires: 30"), wanted=1800, min_se=90).too_small == 90


@pytest.mark.parametrize(
    "headers",
    [
        (),  # nobody asked
        ("Session-Expires: 1800",),  # a proxy asked, the caller cannot refresh
        ("Supported: timer", "Session-Expires: 1800;refresher=uas"),  # asks us to refresh
    ],
)
def test_no_timer_where_the_caller_will_not_refresh(headers: tuple[str, ...]) -> None:
    done = negotiate(invite(*headers), wanted=1800, min_se=90)
    assert done.too_small is None and done.interval is None and done.headers == ()


@pytest.mark.parametrize(
    "value", ["", "abc", "0", "-5", "99999999999", "1800;refresher=both", "18 00"]
)
def test_malformed_session_expires_is_a_400(value: str) -> None:
    with pytest.raises(ParseError):
        parse_session_expires(value)
    with pytest.raises(ParseError):
        negotiate(invite("Supported: timer", f"Session-Expires: {value}"), wanted=1800, min_se=90)


def test_values_and_parameters() -> None:
    assert parse_session_expires("1800 ; REFRESHER=UAC ;x=1").refresher == "uac"
    assert parse_session_expires("90").refresher is None
    assert parse_min_se("120;foo=bar") == 120
    with pytest.raises(ParseError):
        parse_min_se("soon")


def test_the_side_not_refreshing_gives_up_before_the_session_expires() -> None:
    assert give_up_after(1800) == 1800 - 32  # 32 s before
    assert give_up_after(90) == 60  # a third of it, when that is less
    assert give_up_after(3) == 2
