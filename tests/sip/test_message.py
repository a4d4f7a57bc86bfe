"""SIP messages: parsing real phones' traffic and RFC 4475 torture cases, limits, framing,
responses built by RFC 3261 8.2.6, and property tests that nothing but ParseError escapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from callcenter.sip import sdp
from callcenter.sip.message import (
    MAGIC_COOKIE,
    CSeq,
    Limits,
    NameAddr,
    ParseError,
    Request,
    Response,
    StreamParser,
    Via,
    error_response,
    is_keepalive,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_datagram,
    split_commas,
    unquote,
)
from callcenter.sip.uri import AbsoluteUri, SipUri, TelUri

MESSAGES = Path(__file__).parent / "messages"
FIXTURES = sorted(p.name for p in MESSAGES.glob("*.sip"))
TORTURE = sorted(p.name for p in (MESSAGES / "torture").glob("*.sip"))


def load(name: str) -> bytes:
    """A fixture with CRLF line ends whatever a checkout did to them."""
    return (MESSAGES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def parse(name: str) -> Request | Response:
    return parse_datagram(load(name))


def request(name: str) -> Request:
    message = parse(name)
    assert isinstance(message, Request)
    return message


# --- recorded traffic -----------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_parses_and_round_trips(name: str) -> None:
    message = parse(name)
    again = parse_datagram(message.encode())
    assert again == message
    assert message.vias and message.cseq and message.call_id
    if isinstance(message, Request):
        assert message.cseq.method == message.method


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_frames_on_a_stream_fed_byte_by_byte(name: str) -> None:
    data = load(name)
    parser = StreamParser()
    found = []
    for index in range(len(data)):
        parser.feed(data[index : index + 1])
        found += list(parser.messages())
    assert found == [parse_datagram(data)]


def test_zoiper_invite() -> None:
    invite = request("zoiper_invite.sip")
    assert invite.method == "INVITE"
    assert invite.uri == SipUri("pbx.example.net", "5000", params=(("transport", "UDP"),))
    via = invite.top_via
    assert (via.transport, via.host, via.port) == ("UDP", "10.0.7.41", 49254)
    assert via.branch == "z9hG4bK-524287-1---7f3e1a2b0c9d8e6f"
    assert via.rport_requested and via.rport is None
    assert invite.from_addr.display_name == "Front Desk"
    assert invite.from_addr.tag == "4a8c21d7"
    assert invite.to_addr.tag is None
    assert invite.cseq == CSeq(1, "INVITE")
    assert invite.max_forwards == 70
    assert invite.content_type == "application/sdp"
    assert invite.contacts[0].uri == SipUri(
        "10.0.7.41", "1002", port=49254, params=(("transport", "UDP"),)
    )
    assert "REFER" in invite.list_values("allow")
    assert sdp.parse(invite.body).media[0].port == 8000


def test_registers_from_linphone_and_polycom() -> None:
    linphone = request("linphone_register.sip")
    assert linphone.expires == 3600
    (contact,) = linphone.contacts
    assert contact.expires == 3600
    assert contact.param("+sip.instance") == '"<urn:uuid:0a6a7c5e-59e4-4b5e-9a43-0c0c3f4a1c11>"'
    assert linphone.header_values("Accept") == [
        "application/sdp",
        "text/plain",
        "application/vnd.gsma.rcs-ft-http+xml",
    ]
    polycom = request("polycom_register_tcp.sip")
    assert polycom.top_via.transport == "TCP"
    (contact,) = polycom.contacts
    assert contact.param("reg-id") == "1"
    assert "PRACK" in unquote(contact.param("methods") or "")
    assert not polycom.contact_star


def test_compact_forms_and_folded_lines() -> None:
    invite = request("compact_folded_invite.sip")
    names = [name for name, _ in invite.headers]
    assert names[:6] == ["Via", "Via", "From", "To", "Call-ID", "CSeq"]
    assert "Supported" in names and "Contact" in names and "Content-Type" in names
    assert "Content-Length" not in names
    assert [v.branch for v in invite.vias] == ["z9hG4bKcmp81a", "z9hG4bKcmp81b"]
    assert invite.vias[1].received == "10.1.1.9"
    assert invite.header("subject") == "after-hours call back please"
    assert invite.header("s") == invite.header("Subject")
    assert invite.header("I") == "5e7a10c4-lobby@10.1.1.9"
    assert invite.list_values("k") == ["timer", "replaces"]
    assert invite.contacts[0].expires == 60


def test_responses() -> None:
    trying = parse("response_100_trying.sip")
    assert isinstance(trying, Response)
    assert (trying.status, trying.reason) == (100, "Trying")
    assert trying.top_via.rport == 49254 and trying.top_via.received == "198.51.100.23"
    ok = parse("response_200_invite.sip")
    assert isinstance(ok, Response) and ok.status == 200
    assert ok.record_routes[0].uri == SipUri("203.0.113.5", params=(("lr", None),))
    assert ok.to_addr.tag == "1190238471"
    challenge = parse("response_401_register.sip")
    assert len(challenge.header_values("www-authenticate")) == 2


def test_hold_reinvite_is_in_dialog() -> None:
    reinvite = request("yealink_reinvite_hold.sip")
    assert reinvite.to_addr.tag == "as5f1b0c2e"
    assert reinvite.routes[0].uri == SipUri("203.0.113.5", params=(("lr", None),))
    assert reinvite.top_via.port == 5062 and not reinvite.top_via.rport_requested


# --- RFC 4475 -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TORTURE)
def test_torture_case(name: str) -> None:
    data = (MESSAGES / "torture" / name).read_bytes()
    expect = name.split("-", 1)[0]
    if expect == "valid":
        message = parse_datagram(data)
        assert parse_datagram(message.encode()) == message
    elif expect == "compat":
        with pytest.raises(ParseError, match="Missing Max-Forwards"):
            parse_datagram(data)
        assert parse_datagram(data, require_max_forwards=False).method == "INVITE"  # type: ignore[union-attr]
    else:
        with pytest.raises(ParseError) as raised:
            parse_datagram(data)
        assert raised.value.status == int(expect)


def torture(name: str) -> bytes:
    return (MESSAGES / "torture" / name).read_bytes()


def test_tortuous_invite_reads_right() -> None:
    invite = parse_datagram(torture("valid-wsinv.sip"))
    assert isinstance(invite, Request)
    assert invite.uri == SipUri("tortuous.example.com", "agent.9", params=(("oddparam", None),))
    assert invite.max_forwards == 69
    assert invite.cseq == CSeq(11, "INVITE")
    assert invite.to_addr.tag == "4417bb2c"
    assert invite.from_addr.display_name == 'R. Q. Tester \\"'
    assert invite.from_addr.tag == "a8s7d6f"
    assert [v.branch for v in invite.vias] == ["z9hG4bKtort1", "z9hG4bKtort2", "z9hG4bKtort3"]
    assert invite.vias[1] == Via("TCP", "relay.example.com", None, (("branch", "z9hG4bKtort2"),))
    (contact,) = invite.contacts
    assert contact.display_name == 'Display "with" quotes'
    assert contact.params == (("custom", "thing"), ("bareparam", None), ("q", "0.5"))
    assert invite.header("ExperimentalHeader") == "experimental value spread over two lines"
    assert invite.header("Subject") == ""
    assert invite.header("OddValueHeader") == ";;,,;;,;"
    assert sdp.parse(invite.body).media[0].port == 40000


def test_wide_characters_survive() -> None:
    message = parse_datagram(torture("valid-intmeth.sip"))
    assert isinstance(message, Request)
    assert message.method == "!strange-Method0123456789_*+`.%indeed'~"
    assert message.to_addr.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert message.from_addr.display_name == "token1~` token2'+_ token3*%!.-"
    assert message.from_addr.param("fromparam''~+*_!.-%") == '"работающий"'
    assert message.header("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_escapes_and_unknown_schemes() -> None:
    esc = parse_datagram(torture("valid-esc01.sip"))
    assert isinstance(esc, Request) and isinstance(esc.uri, SipUri)
    assert esc.uri.user == "sips%3Aagent%40example.com"
    assert esc.to_addr.uri.equivalent(SipUri("example.com", "agent"))
    unknown = parse_datagram(torture("valid-unkscm.sip"))
    assert isinstance(unknown, Request)
    assert unknown.uri == AbsoluteUri("nobodyknowsthisscheme", "totallyopaquecontent")
    novel = parse_datagram(torture("valid-unksm2.sip"))
    assert novel.to_addr.uri == AbsoluteUri("isbn", "2983792873")
    esc02 = parse_datagram(torture("valid-esc02.sip"))
    # "C%6Fntact" is another header, not Contact.
    assert len(esc02.contacts) == 2


def test_extra_bytes_after_content_length_are_ignored_on_udp() -> None:
    message = parse_datagram(torture("valid-dblreq.sip"))
    assert isinstance(message, Request) and message.method == "REGISTER"
    assert message.body == b""


def test_bad_version_is_answered_with_505() -> None:
    with pytest.raises(ParseError) as raised:
        parse_datagram(torture("505-badvers.sip"))
    answer = error_response(raised.value)
    assert answer is not None
    assert (answer.status, answer.reason) == (505, "Version Not Supported")
    assert answer.header("Call-ID") == "badvers.31417@c.example.com"


def test_missing_headers_are_named() -> None:
    with pytest.raises(ParseError, match="Missing From"):
        parse_datagram(torture("400-insuf.sip"))
    with pytest.raises(ParseError, match="Multiple Content-Length"):
        parse_datagram(torture("400-mcl01.sip"))
    with pytest.raises(ParseError, match="CSeq method does not match"):
        parse_datagram(torture("400-mismatch01.sip"))


# --- validation ---------------------------------------------------------------------------

BASE = (
    "OPTIONS sip:pbx.example.net SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.61:5060;branch=z9hG4bKbase\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:pbx.example.net>\r\n"
    "From: <sip:agent@pbx.example.net>;tag=f1\r\n"
    "Call-ID: base-1\r\n"
    "CSeq: 7 OPTIONS\r\n"
)


def with_headers(*lines: str, drop: str = "", body: bytes = b"") -> bytes:
    head = "".join(
        line + "\r\n" for line in BASE.split("\r\n") if line and not line.startswith(drop or "\0")
    )
    return (head + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode() + body


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (with_headers(drop="Call-ID"), "Missing Call-ID"),
        (with_headers(drop="Via"), "Missing Via"),
        (with_headers(drop="Max-Forwards"), "Missing Max-Forwards"),
        (with_headers(drop="CSeq"), "Missing CSeq"),
        (with_headers("Max-Forwards: 256"), "Multiple Max-Forwards header fields"),
        (with_headers("Max-Forwards: 256", drop="Max-Forwards"), "Malformed Max-Forwards"),
        (with_headers("Expires: 4294967296"), "Malformed Expires"),
        (with_headers("Contact: <sip:a@b>;expires=x"), "Malformed Contact"),
        (with_headers("Contact: <sip:a@b>, *x"), "Malformed Contact"),
        (with_headers("Route: sip:a@b, <sip:c"), "Malformed Route"),
        (with_headers("Content-Type: sdp"), "Malformed Content-Type"),
        (with_headers("Content-Length: 5"), "Content-Length larger than message"),
        (with_headers("Content-Length: 1 2"), "Malformed Content-Length"),
        (with_headers("Call-ID: base-2"), "Multiple Call-ID header fields"),
        (with_headers("Via: SIP/2.0/UDP [::1;branch=x"), "Malformed Via"),
        (with_headers("Via: SIP/2.0/UDP host;ttl=256"), "Malformed Via"),
        (with_headers("Via: SIP/2.0/UDP host;rport=70000"), "Malformed Via"),
        (with_headers("Via: SIP/2.0 host"), "Malformed Via"),
        (with_headers("Warning: abc"), "Malformed Warning"),
        (with_headers("Bad Name: value"), "Malformed header field"),
        (with_headers("NoColon"), "Malformed header field"),
        (with_headers("X: a\rb"), "Malformed header field"),
        (b" continued\r\n" + with_headers(), "Malformed header field"),
        (b"OPTIONS sip:x SIP/2.0\r\n folded-first: x\r\n\r\n", "Malformed header field"),
        (b"OPTIONS sip:x SIP/2.0\r\n", "Incomplete message"),
        (b"OPT(ONS sip:x SIP/2.0\r\n\r\n", "Malformed method"),
        (b"OPTIONS sip:x HTTP/1.1\r\n\r\n", "Malformed SIP version"),
        (b"OPTIONS sip:x SIP/2.0\rX\r\n\r\n", "Malformed start line"),
        (b"SIP/2.0 099 Low\r\n\r\n", "Malformed status code"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "Malformed status code"),
        (b"\r\n\r\n", "Incomplete message"),
        (b"", "Incomplete message"),
    ],
)
def test_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_datagram(data)
    assert raised.value.reason == reason
    assert raised.value.status == 400


def test_lenient_where_peers_differ() -> None:
    # Bare LF line ends, a lower-case version, leading CRLFs, no Content-Length on UDP.
    data = b"\r\n\r\n" + with_headers(body=b"hello").replace(b"\r\n", b"\n").replace(
        b"SIP/2.0\n", b"sip/2.0\n", 1
    )
    message = parse_datagram(data)
    assert isinstance(message, Request) and message.body == b"hello"
    assert message.header("call-id") == "base-1"
    response = parse_datagram(
        b"SIP/2.0 200\r\n" + with_headers().split(b"\r\n", 1)[1].replace(b"7 OPTIONS", b"7 OPTIONS")
    )
    assert isinstance(response, Response) and response.reason == ""


def test_request_uri_rules() -> None:
    assert parse_datagram(with_headers()).uri == SipUri("pbx.example.net")  # type: ignore[union-attr]
    tel = parse_datagram(
        with_headers().replace(b"sip:pbx.example.net SIP", b"tel:+15551234567 SIP", 1)
    )
    assert isinstance(tel, Request) and tel.uri == TelUri("+15551234567")
    with pytest.raises(ParseError, match="Malformed Request-URI"):
        parse_datagram(
            with_headers().replace(b"sip:pbx.example.net SIP", b"sip:pbx.example.net?a=b SIP", 1)
        )


# --- limits -------------------------------------------------------------------------------


def test_limits() -> None:
    small = Limits(
        max_message_bytes=2000, max_header_count=12, max_line_length=100, max_body_bytes=10
    )
    assert parse_datagram(with_headers(body=b"x" * 10), small)
    cases = [
        (with_headers(body=b"x" * 11), 413, "Message body too large"),
        (with_headers(body=b"x" * 2000), 513, "Message too large"),
        (with_headers(*(f"X-{i}: {i}" for i in range(7))), 513, "Too many header fields"),
        (with_headers("X-Long: " + "a" * 101), 513, "Header field too long"),
        (with_headers("X-Long: " + "a" * 60, " " + "b" * 60), 513, "Header field too long"),
        (
            with_headers().replace(b"sip:pbx", b"sip:" + b"p" * 100 + b".pbx", 1),
            414,
            "Start line too long",
        ),
    ]
    for data, status, reason in cases:
        with pytest.raises(ParseError) as raised:
            parse_datagram(data, small)
        assert (raised.value.status, raised.value.reason) == (status, reason)


def test_limit_errors_are_answerable() -> None:
    with pytest.raises(ParseError) as raised:
        parse_datagram(with_headers(body=b"x" * 11), Limits(max_body_bytes=10))
    answer = error_response(raised.value)
    assert answer is not None and answer.status == 413


# --- TCP framing ----------------------------------------------------------------------------


def test_stream_frames_several_messages_and_answers_pings() -> None:
    one, two = load("sipp_invite.sip"), load("sipp_bye.sip")
    parser = StreamParser()
    parser.feed(b"\r\n\r\n" + one + b"\r\n\r\n" + two[:10])
    assert list(parser.messages()) == [parse_datagram(one)]
    assert parser.take_pings() == 2
    parser.feed(two[10:] + b"\r\n")
    assert list(parser.messages()) == [parse_datagram(two)]
    assert parser.take_pings() == 0
    parser.feed(b"\r\n")
    assert list(parser.messages()) == []
    assert parser.take_pings() == 1
    assert parser.take_pings() == 0


def test_stream_needs_content_length() -> None:
    parser = StreamParser()
    parser.feed(with_headers())
    with pytest.raises(ParseError, match="Missing Content-Length") as raised:
        parser.next_message()
    assert parser.broken
    answer = error_response(raised.value)
    assert answer is not None and answer.status == 400
    parser.feed(load("sipp_bye.sip"))
    with pytest.raises(ParseError):
        parser.next_message()


def test_stream_continues_after_a_bad_but_framed_message() -> None:
    bad = with_headers("Content-Length: 0", drop="Call-ID")
    good = load("sipp_bye.sip")
    parser = StreamParser()
    parser.feed(bad + good)
    with pytest.raises(ParseError, match="Missing Call-ID") as raised:
        list(parser.messages())
    assert not parser.broken
    answer = error_response(raised.value)
    assert answer is not None and answer.header("Call-ID") is None
    assert answer.to_addr.tag is not None
    assert list(parser.messages()) == [parse_datagram(good)]


def test_stream_limits_break_the_connection() -> None:
    limits = Limits(max_message_bytes=500, max_body_bytes=100)
    endless = StreamParser(limits)
    endless.feed(b"INVITE sip:x SIP/2.0\r\nX: " + b"a" * 600)
    with pytest.raises(ParseError) as raised:
        endless.next_message()
    assert raised.value.status == 513 and endless.broken
    big_body = StreamParser(limits)
    big_body.feed(with_headers("Content-Length: 101"))
    with pytest.raises(ParseError) as raised:
        big_body.next_message()
    assert raised.value.status == 413 and big_body.broken
    total = StreamParser(limits)
    total.feed(with_headers("Content-Length: 100", "X-Pad: " + "p" * 200))
    with pytest.raises(ParseError, match="Message too large"):
        total.next_message()
    garbage = StreamParser(limits)
    garbage.feed(b"\x00\x01\r\n\r\n")
    with pytest.raises(ParseError, match="Missing Content-Length"):
        garbage.next_message()
    assert garbage.broken


def test_wildcard_contact_is_seen_with_any_other_contact() -> None:
    star = parse_datagram(with_headers("Contact: *", "Expires: 0"))
    assert star.contact_star and star.contacts == []
    mixed = parse_datagram(with_headers("Contact: *, <sip:a@b>"))
    assert mixed.contact_star and [str(c) for c in mixed.contacts] == ["<sip:a@b>"]


def test_keepalives() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n")
    assert not is_keepalive(b"") and not is_keepalive(b"\r\nOPTIONS")


# --- responses ----------------------------------------------------------------------------


def test_make_response_copies_what_8_2_6_says() -> None:
    invite = request("compact_folded_invite.sip").with_header_first(
        "Record-Route", "<sip:edge.example.net;lr>"
    )
    invite = invite.with_header("Timestamp", "54")
    ringing = make_response(invite, 180, to_tag="srv1")
    assert ringing.reason == "Ringing"
    assert [n for n, _ in ringing.headers] == [
        "Record-Route",
        "Via",
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
    ]
    assert ringing.header_values("Via") == invite.header_values("Via")
    assert ringing.to_addr.tag == "srv1"
    assert ringing.header("To") == "<sip:5000@pbx.example.net>;tag=srv1"
    trying = make_response(invite, 100, to_tag="srv1")
    assert trying.to_addr.tag is None
    assert trying.header("Timestamp") == "54"
    assert trying.header("Record-Route") is None
    busy = make_response(invite, 486, to_tag="srv1")
    assert busy.header("Record-Route") is None and busy.reason == "Busy Here"
    ok = make_response(
        invite,
        200,
        "Fine",
        to_tag="srv1",
        headers=[("Contact", "<sip:cc@203.0.113.5>"), ("Content-Type", "application/sdp")],
        body=b"v=0\r\n",
    )
    assert ok.reason == "Fine" and ok.header("Record-Route") == "<sip:edge.example.net;lr>"
    assert ok.encode().endswith(b"Content-Length: 5\r\n\r\nv=0\r\n")
    assert parse_datagram(ok.encode()) == ok


def test_make_response_keeps_an_existing_to_tag_and_skips_record_route_outside_dialogs() -> None:
    reinvite = request("yealink_reinvite_hold.sip")
    ok = make_response(reinvite, 200, to_tag="other")
    assert ok.header("To") == reinvite.header("To")
    register = request("linphone_register.sip").with_header_first("Record-Route", "<sip:edge;lr>")
    assert make_response(register, 200, to_tag="t").header("Record-Route") is None
    assert make_response(register, 299).reason == ""
    with pytest.raises(ValueError, match="status"):
        make_response(register, 700)


def test_error_response_needs_a_via_and_never_answers_ack() -> None:
    with pytest.raises(ParseError) as raised:
        parse_datagram(with_headers(drop="Via"))
    assert error_response(raised.value) is None
    ack = (
        with_headers(drop="Call-ID")
        .replace(b"OPTIONS sip", b"ACK sip", 1)
        .replace(b"7 OPTIONS", b"7 ACK")
    )
    with pytest.raises(ParseError) as raised:
        parse_datagram(ack)
    assert error_response(raised.value) is None
    with pytest.raises(ParseError) as raised:
        parse_datagram(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n")
    assert error_response(raised.value) is None
    with pytest.raises(ParseError) as raised:
        parse_datagram(torture("400-quotbal.sip"))
    answer = error_response(raised.value)
    assert answer is not None and answer.reason == "Malformed To"
    assert answer.header("To") == '"Mr. J. Agent <sip:j.agent@example.com>'


# --- building and editing ---------------------------------------------------------------------


def test_built_request_encodes_with_content_length() -> None:
    message = Request(
        "OPTIONS",
        SipUri("pbx.example.net"),
        (
            ("v", f"SIP/2.0/UDP 192.0.2.1;branch={new_branch()}"),
            ("Content-Length", "999"),
            ("f", f"<sip:a@b>;tag={new_tag()}"),
        ),
    )
    data = message.encode()
    assert bytes(message) == data
    assert data.count(b"Content-Length") == 1 and data.endswith(b"Content-Length: 0\r\n\r\n")
    assert message.header("Via") == message.header("v") and message.header("From")


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Evil", "a\r\nVia: forged"), ("X-Evil", "a\nb"), ("Bad Name", "x"), ("", "x")],
)
def test_encode_refuses_header_injection(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        Request("OPTIONS", SipUri("x"), ((name, value),)).encode()
    with pytest.raises(ValueError, match="cannot be sent"):
        Response(200, "OK\r\nX: y").encode()


def test_header_editing() -> None:
    bye = request("sipp_bye.sip")
    assert bye.with_header("max-forwards", "69").header_values("Max-Forwards") == ["69"]
    assert bye.with_header("X-New", "1").headers[-1] == ("X-New", "1")
    top = bye.with_header_first("Via", "SIP/2.0/TCP 203.0.113.5;branch=z9hG4bKtop")
    assert [v.host for v in top.vias] == ["203.0.113.5", "127.0.0.1"]
    assert bye.with_header_first("Route", "<sip:r;lr>").headers[0] == ("Route", "<sip:r;lr>")
    assert bye.without_header("subject").header("Subject") is None
    received = top.with_top_via(
        top.top_via.with_param("received", "198.51.100.1").with_param("rport", "5071")
    )
    assert received.top_via.received == "198.51.100.1" and received.top_via.rport == 5071
    assert received.vias[1] == top.vias[1]
    packed = bye.with_header("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")
    moved = packed.with_top_via(Via("UDP", "a", 5060, (("branch", "z9hG4bK1"),)))
    assert (
        moved.header("Via") == "SIP/2.0/UDP a:5060;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"
    )
    with pytest.raises(ParseError, match="Missing Via"):
        bye.without_header("Via").with_top_via(Via("UDP", "a"))
    with pytest.raises(ParseError, match="Missing Via"):
        _ = bye.without_header("Via").top_via
    with pytest.raises(ParseError, match="Missing Call-ID"):
        _ = bye.without_header("Call-ID").call_id


def test_header_value_types() -> None:
    params = ";branch=z9hG4bKx;rport=5070;received=2001:db8::9;maddr=239.1.1.1;ttl=16"
    via = Via.parse("SIP/2.0/udp [2001:db8::9]:5070" + params)
    assert (via.transport, via.host, via.port, via.rport, via.ttl) == (
        "UDP",
        "[2001:db8::9]",
        5070,
        5070,
        16,
    )
    assert via.received == "2001:db8::9" and via.maddr == "239.1.1.1"
    assert str(via) == "SIP/2.0/UDP [2001:db8::9]:5070" + params
    addr = NameAddr.parse('  "Doe, \\"J\\"" <sip:j@example.com;transport=tcp> ;tag=9 ;expires=30')
    assert addr.display_name == 'Doe, "J"' and addr.tag == "9" and addr.expires == 30
    assert str(addr) == '"Doe, \\"J\\"" <sip:j@example.com;transport=tcp>;tag=9;expires=30'
    assert NameAddr.parse(str(addr)) == addr
    bare = NameAddr.parse("sip:j@example.com;tag=9")
    assert bare.uri == SipUri("example.com", "j") and bare.tag == "9" and bare.display_name is None
    assert str(bare.with_param("tag", "10")) == "<sip:j@example.com>;tag=10"
    assert NameAddr.parse("Many Words  Here <sip:x@y>").display_name == "Many Words Here"
    assert CSeq.parse("4294967295 BYE") == CSeq(2**32 - 1, "BYE")
    assert str(CSeq(5, "ACK")) == "5 ACK"
    for bad in ("4294967296 BYE", "1", "x BYE", "1 B Y E"):
        with pytest.raises(ParseError):
            CSeq.parse(bad)
    for bad in (
        '"unterminated <sip:x@y>',
        "<sip:x@y",
        "<sip:x@y> junk",
        "sip:x@y?h=v",
        '"a" sip:x@y',
        "<>",
    ):
        with pytest.raises(ParseError):
            NameAddr.parse(bad)


def test_split_commas_respects_quotes_and_brackets() -> None:
    value = '"Doe, John" <sip:a@b;x=1,2>, <sip:c@d>;q=0.5 ,, "q\\",uote" <sip:e@f>'
    assert split_commas(value) == [
        '"Doe, John" <sip:a@b;x=1,2>',
        "<sip:c@d>;q=0.5",
        '"q\\",uote" <sip:e@f>',
    ]
    assert split_commas("") == []
    assert unquote('"a\\"b"') == 'a"b'
    with pytest.raises(ParseError):
        unquote('"a" b')


def test_identifiers_are_fresh_and_well_formed() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100 and all(b.startswith(MAGIC_COOKIE) for b in branches)
    assert len({new_tag() for _ in range(100)}) == 100
    assert new_call_id("pbx.example.net").endswith("@pbx.example.net")
    for value in (new_branch(), new_tag(), new_call_id(), new_call_id("[::1]")):
        data = with_headers(f"Call-ID: {value}", drop="Call-ID")
        assert parse_datagram(data).call_id == value


# --- properties -----------------------------------------------------------------------------

SEEDS = [load(name) for name in FIXTURES] + [
    (MESSAGES / "torture" / name).read_bytes() for name in TORTURE
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A recorded message with bytes or whole lines changed, dropped or repeated."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "line", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b" ",
                        b";",
                        b",",
                        b'"',
                        b"<",
                        b">",
                        b":",
                        b"\r\n ",
                        b"%",
                        b"\x00",
                        b"\xff",
                        b"=",
                        b"@",
                    ]
                )
            )
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        else:
            lines = bytes(data).split(b"\r\n")
            index = draw(st.integers(0, len(lines) - 1))
            if kind == "line":
                del lines[index]
            else:
                lines.insert(index, lines[index])
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_raise_only_parse_error_and_round_trip(data: bytes) -> None:
    try:
        message = parse_datagram(data)
    except ParseError as error:
        assert error.reason and 400 <= error.status <= 599
        error_response(error)
        return
    assert parse_datagram(message.encode()) == message


@settings(max_examples=300)
@given(st.binary(max_size=600))
@example(b"INVITE sip:a@b SIP/2.0\r\n\r\n")
@example(b"SIP/2.0 200 OK\r\n\r\n")
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    for prefix in (b"", b"INVITE sip:a@b SIP/2.0\r\nVia: ", b"SIP/2.0 200 OK\r\nTo: "):
        try:
            parse_datagram(prefix + data)
        except ParseError:
            pass


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SEEDS[: len(FIXTURES)]), min_size=1, max_size=4), st.data())
def test_stream_gives_the_same_messages_however_bytes_are_split(
    messages: list[bytes], data: st.DataObject
) -> None:
    stream = b"\r\n\r\n".join(messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = StreamParser()
    found: list[Request | Response] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        parser.feed(stream[start:end])
        found += list(parser.messages())
    assert found == [parse_datagram(m) for m in messages]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.data())
def test_stream_raises_only_parse_error(stream: bytes, data: st.DataObject) -> None:
    parser = StreamParser(Limits(max_message_bytes=4096, max_body_bytes=1024))
    cut = data.draw(st.integers(0, len(stream)))
    for chunk in (stream[:cut], stream[cut:], stream):
        parser.feed(chunk)
        for _ in range(5):
            try:
                if parser.next_message() is None:
                    break
            except ParseError:
                if parser.broken:
                    return
