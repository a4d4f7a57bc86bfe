"""SIP, SIPS and TEL URIs: parsing, serializing, RFC 3261 19.1.4 comparison."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.sip.uri import (
    AbsoluteUri,
    SipUri,
    TelUri,
    UriError,
    parse_hostport,
    parse_sip_uri,
    parse_uri,
    unescape,
)


def test_every_component_of_a_sip_uri() -> None:
    uri = parse_uri(
        "sips:alice:secret@atlanta.example.com:5061;transport=tls;lr;maddr=239.1.1.1?subject=x&priority=urgent"
    )
    assert uri == SipUri(
        host="atlanta.example.com",
        user="alice",
        password="secret",
        port=5061,
        params=(("transport", "tls"), ("lr", None), ("maddr", "239.1.1.1")),
        headers=(("subject", "x"), ("priority", "urgent")),
        scheme="sips",
    )
    assert uri.transport == "tls"
    assert uri.lr
    assert uri.maddr == "239.1.1.1"
    assert uri.host_port == "atlanta.example.com:5061"


@pytest.mark.parametrize(
    "text",
    [
        "sip:pbx.example.net",
        "sip:1001@192.168.10.23;transport=udp",
        "sip:1001@[2001:db8::10]:5070;transport=tcp",
        "sips:agent@example.com;user=phone?Replaces=abc%40host%3Bto-tag%3D1",
        "sip:+15551234567@gw.example.net;user=phone",
        "sip:agent;par=u%40example.net@example.com",
        "sip:host.example.com.",
        "tel:+1-201-555-0123;phone-context=example.com",
        "tel:7042;phone-context=example.com",
        "urn:service:sos",
        "http://www.example.com/a?b=c",
    ],
)
def test_serializing_gives_the_text_back(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_scheme_and_parameter_names_are_case_insensitive() -> None:
    uri = parse_sip_uri("SIP:Agent@Example.COM;Transport=TCP;LR")
    assert uri.scheme == "sip"
    assert uri.params == (("transport", "TCP"), ("lr", None))
    assert uri.transport == "tcp"
    # What the peer wrote is kept for the user part and host.
    assert (uri.user, uri.host) == ("Agent", "Example.COM")


def test_user_part_may_hold_semicolons_question_marks_and_a_password() -> None:
    # RFC 4475 3.1.1.2: the user part is everything up to "@".
    uri = parse_sip_uri(
        "sip:1_odd.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d@example.com"
    )
    assert uri.user == "1_odd.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d"
    assert uri.host == "example.com"


def test_ipv6_references() -> None:
    assert parse_hostport("[2001:db8::1]:5060") == ("[2001:db8::1]", 5060)
    assert parse_hostport("[::1]") == ("[::1]", None)
    assert parse_sip_uri("sip:[::1]").host == "[::1]"


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;Phone-Context=example.com")
    assert isinstance(uri, TelUri)
    assert uri.number == "+1-201-555-0123"
    assert uri.param("phone-context") == "example.com"
    assert uri.scheme == "tel"


def test_unknown_schemes_are_kept_opaque() -> None:
    uri = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
    assert uri == AbsoluteUri("nobodyknowsthisscheme", "totallyopaquecontent")
    with pytest.raises(UriError, match="Not a SIP URI"):
        parse_sip_uri("tel:+15551234567")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "sip",
        ":host",
        "<sip:agent@example.com>",
        "sip:agent@example.com>",
        "sip:@example.com",
        "sip:agent@",
        "sip:a b@example.com",
        "sip:agent@example.com; lr",
        "sip:agent@exa mple.com",
        "sip:agent@example.com:",
        "sip:agent@example.com:65536",
        "sip:agent@example.com:50a",
        "sip:agent@[2001:db8::1",
        "sip:agent@[not-an-address]",
        "sip:agent@[::1]x",
        "sip:agent@example.com;=value",
        "sip:agent@example.com;a=b c",
        "sip:agent@example.com?noequals",
        "sip:agent@example.com?a=<b>",
        'sip:ag"ent@example.com',
        "sip:agent:pa@ss@example.com",
        "tel:",
        "tel:12 34",
        "tel:+1;=x",
        "http://exa mple.com",
        "1sip:agent@example.com",
    ],
)
def test_malformed_uris_are_refused(text: str) -> None:
    with pytest.raises(UriError):
        parse_uri(text)


def test_param_editing() -> None:
    uri = parse_sip_uri("sip:agent@example.com;transport=udp")
    assert str(uri.with_param("lr")) == "sip:agent@example.com;transport=udp;lr"
    assert str(uri.with_param("Transport", "tcp")) == "sip:agent@example.com;transport=tcp"
    assert str(uri.without_param("transport")) == "sip:agent@example.com"
    assert uri.has_param("TRANSPORT") and not uri.has_param("lr")
    assert uri.param("missing") is None


def test_unescape_leaves_broken_escapes_alone() -> None:
    assert unescape("%61gent%40x") == "agent@x"
    assert unescape("%Z%45") == "%ZE"


# RFC 3261 19.1.4 lists these pairs.
EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    ("sip:agent@[2001:db8:0::1]", "sip:agent@[2001:DB8::1]"),
]
DIFFERENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
    ("sip:bob:one@biloxi.com", "sip:bob:two@biloxi.com"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equivalent_uris(a: str, b: str) -> None:
    assert parse_uri(a).equivalent(parse_uri(b))
    assert parse_uri(b).equivalent(parse_uri(a))


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_uris(a: str, b: str) -> None:
    assert not parse_uri(a).equivalent(parse_uri(b))
    assert not parse_uri(b).equivalent(parse_uri(a))


def test_tel_and_opaque_equivalence() -> None:
    assert parse_uri("tel:+1-201-555-0123").equivalent(parse_uri("tel:+1.201.555.0123"))
    assert not parse_uri("tel:+12015550123").equivalent(parse_uri("tel:+12015550124"))
    assert not parse_uri("tel:+12015550123").equivalent(parse_uri("sip:+12015550123@x"))
    assert parse_uri("urn:service:sos").equivalent(parse_uri("URN:service:sos"))
    assert not parse_uri("urn:service:sos").equivalent(parse_uri("urn:service:police"))


_label = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)
_host = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
_word = st.from_regex(r"[A-Za-z0-9\-_.!~*'()%&=+$,]{1,12}", fullmatch=True)
_param = st.tuples(
    st.from_regex(r"[a-z0-9\-_.!~*'()]{1,8}", fullmatch=True),
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]{0,8}", fullmatch=True)),
)
_sip_uris = st.builds(
    SipUri,
    host=_host,
    user=st.one_of(st.none(), _word),
    password=st.none(),
    port=st.one_of(st.none(), st.integers(0, 65535)),
    params=st.lists(_param, max_size=4).map(tuple),
    headers=st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z0-9\-_.!~*'()]{1,8}", fullmatch=True),
            st.from_regex(r"[A-Za-z0-9\-_.!~*'()/?:+$]{0,8}", fullmatch=True),
        ),
        max_size=2,
    ).map(tuple),
    scheme=st.sampled_from(["sip", "sips"]),
)


@given(_sip_uris)
def test_parse_of_serialized_uri_round_trips(uri: SipUri) -> None:
    parsed = parse_uri(str(uri))
    assert parsed == uri
    assert parsed.equivalent(uri)


@given(st.text(max_size=200))
def test_any_text_either_parses_or_raises_uri_error(text: str) -> None:
    try:
        uri = parse_uri(text)
    except UriError:
        return
    assert parse_uri(str(uri)) == uri
