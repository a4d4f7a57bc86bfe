"""Digest authentication: RFC 2617 and RFC 7616 examples, stateless nonces, both sides."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.credentials import sip_ha1
from callcenter.sip.digest import (
    Authenticator,
    Challenge,
    Credentials,
    DigestError,
    NonceCounts,
    Verdict,
    authorize,
    choose_challenge,
    compute_response,
    find_credentials,
    ha1,
    verify_response,
)
from callcenter.sip.message import Request, parse_datagram

MESSAGES = Path(__file__).parent / "messages"
NOW = 1_700_000_000.0
SECRET = b"test-nonce-secret-0123456789"

# RFC 7616 3.9.1 (HTTP, but the computation is the same for SIP).
RFC7616 = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
}
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


def load(name: str) -> bytes:
    return (MESSAGES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_ha1_is_the_stored_hash() -> None:
    md5, sha256 = sip_ha1("1001", "callcenter", "agent-secret")
    assert ha1("1001", "callcenter", "agent-secret") == md5
    assert ha1("1001", "callcenter", "agent-secret", "md5") == md5
    assert ha1("1001", "callcenter", "agent-secret", "SHA-256") == sha256
    with pytest.raises(DigestError, match="Unsupported algorithm"):
        ha1("1001", "callcenter", "agent-secret", "SHA-512-256")


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc_7616_example(algorithm: str) -> None:
    key = ha1(RFC7616["username"], RFC7616["realm"], RFC7616["password"], algorithm)
    response = compute_response(
        algorithm=algorithm,
        ha1=key,
        nonce=RFC7616["nonce"],
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=RFC7616["cnonce"],
    )
    assert response == RFC7616_RESPONSES[algorithm]
    header = (
        f'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC7616["nonce"]}", nc=00000001, '
        f'cnonce="{RFC7616["cnonce"]}", qop=auth, response="{response}", '
        f'opaque="{RFC7616["opaque"]}"'
    )
    credentials = Credentials.parse(header)
    assert credentials.opaque == RFC7616["opaque"]
    assert verify_response(credentials, method="GET", ha1=key)
    assert not verify_response(credentials, method="POST", ha1=key)


def test_rfc_2617_example() -> None:
    header = (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
        'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    credentials = Credentials.parse(header)
    assert credentials.algorithm == "MD5"
    key = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert verify_response(credentials, method="GET", ha1=key)
    assert not verify_response(credentials, method="GET", ha1=ha1("Mufasa", "x", "y"))


def test_legacy_no_qop_form() -> None:
    # RFC 2069: response = H(HA1:nonce:H(method:uri)).
    key = ha1("bob", "biloxi.example.com", "zanzibar")
    expected = compute_response(
        algorithm="MD5", ha1=key, nonce="abc", method="INVITE", uri="sip:bob@biloxi.example.com"
    )
    ha2 = hashlib.md5(b"INVITE:sip:bob@biloxi.example.com", usedforsecurity=False).hexdigest()
    assert expected == hashlib.md5(f"{key}:abc:{ha2}".encode(), usedforsecurity=False).hexdigest()


def test_auth_int_hashes_the_body() -> None:
    common = {
        "algorithm": "SHA-256",
        "ha1": "ab" * 32,
        "nonce": "n",
        "method": "INVITE",
        "uri": "sip:x",
        "qop": "auth-int",
        "nc": "00000001",
        "cnonce": "c",
    }
    assert compute_response(**common, body=b"a") != compute_response(**common, body=b"b")


def test_credentials_parsing() -> None:
    value = (
        'digest USERNAME="agent \\"seven\\"",Realm="callcenter" , nonce=abc123, '
        'uri="sip:pbx.example.net", response="0123456789ABCDEF0123456789abcdef", '
        "algorithm=md5, QOP=Auth, nc=0000000A, cnonce=xyz"
    )
    credentials = Credentials.parse(value)
    assert credentials.username == 'agent "seven"'
    assert credentials.realm == "callcenter" and credentials.nonce == "abc123"
    assert credentials.response == "0123456789abcdef0123456789abcdef"
    assert (credentials.algorithm, credentials.qop, credentials.nc) == ("MD5", "auth", "0000000A")
    assert Credentials.parse(str(credentials)) == credentials


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Unsupported authentication scheme"),
        ("Digest", "Unsupported authentication scheme"),
        ('Digest realm="r", nonce="n", uri="u", response="' + "0" * 32 + '"', "Missing username"),
        ('Digest username="u", username="v"', "Malformed authentication header"),
        ('Digest username="u, realm="r"', "Malformed authentication header"),
        ("Digest username=a b", "Malformed authentication header"),
        ("Digest username", "Malformed authentication header"),
        ("Digest =x", "Malformed authentication header"),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", response="xyz"',
            "Malformed response",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", algorithm=SHA-256, response="'
            + "0" * 32
            + '"',
            "Malformed response",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", algorithm=SHA-512-256, '
            'response="' + "0" * 64 + '"',
            "Unsupported algorithm",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", qop=auth, response="'
            + "0" * 32
            + '"',
            "Missing nc",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", qop=auth, nc=1, cnonce=c, '
            'response="' + "0" * 32 + '"',
            "Malformed nc",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", qop=other, response="'
            + "0" * 32
            + '"',
            "Unsupported qop",
        ),
        ("Digest " + "a=b, " * 2000, "Authentication header too long"),
    ],
)
def test_bad_credentials_are_refused(value: str, reason: str) -> None:
    with pytest.raises(DigestError) as raised:
        Credentials.parse(value)
    assert raised.value.reason == reason


@given(st.text(max_size=300))
def test_any_header_value_raises_only_digest_error(value: str) -> None:
    for parse in (Credentials.parse, Challenge.parse):
        try:
            parse("Digest " + value)
        except DigestError:
            pass


def test_challenge_serialization_and_parsing() -> None:
    challenge = Challenge('call"center', "n0nce", "SHA-256", ("auth",), opaque="op", stale=True)
    value = str(challenge)
    assert value == (
        'Digest realm="call\\"center", nonce="n0nce", opaque="op", algorithm=SHA-256, '
        'qop="auth", stale=true'
    )
    assert Challenge.parse(value) == challenge
    legacy = Challenge.parse('Digest realm="r", nonce="n"')
    assert (legacy.algorithm, legacy.qop, legacy.stale) == ("MD5", (), False)
    with pytest.raises(DigestError, match="Missing nonce"):
        Challenge.parse('Digest realm="r"')


def authenticator(**options: object) -> Authenticator:
    return Authenticator("callcenter", SECRET, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_challenge_answer_check(algorithm: str) -> None:
    server = authenticator()
    challenges = server.challenges(NOW)
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert len({c.nonce for c in challenges}) == 1
    offered = [c for c in challenges if c.algorithm == algorithm]
    credentials = authorize(
        offered[0],
        method="REGISTER",
        uri="sip:pbx.example.net",
        username="1001",
        password="pw-1001",
    )
    parsed = Credentials.parse(str(credentials))
    assert parsed == credentials
    stored = ha1("1001", "callcenter", "pw-1001", algorithm)
    assert server.check(parsed, method="REGISTER", ha1=stored, now=NOW + 1) is Verdict.OK
    # The same nonce count again is a replay; the next one is fine.
    assert server.check(parsed, method="REGISTER", ha1=stored, now=NOW + 2) is Verdict.REPLAYED
    second = authorize(
        offered[0], method="INVITE", uri="sip:5000@pbx", username="1001", ha1=stored, nc=2
    )
    assert server.check(second, method="INVITE", ha1=stored, now=NOW + 3) is Verdict.OK


def test_failures() -> None:
    server = authenticator()
    (sha, md5) = server.challenges(NOW)
    stored = ha1("1001", "callcenter", "pw-1001", "SHA-256")
    good = authorize(sha, method="REGISTER", uri="sip:pbx", username="1001", password="pw-1001")
    wrong = authorize(sha, method="REGISTER", uri="sip:pbx", username="1001", password="guess")
    assert server.check(wrong, method="REGISTER", ha1=stored, now=NOW) is Verdict.FAILED
    assert server.check(good, method="REGISTER", ha1=None, now=NOW) is Verdict.FAILED
    assert server.check(good, method="INVITE", ha1=stored, now=NOW) is Verdict.FAILED
    # A nonce from another server, from another realm, forged or from the future.
    other = Authenticator("callcenter", b"another-secret-0123456789").challenges(NOW)[0]
    foreign = authorize(
        other, method="REGISTER", uri="sip:pbx", username="1001", password="pw-1001"
    )
    assert server.check(foreign, method="REGISTER", ha1=stored, now=NOW) is Verdict.FAILED
    realm = Authenticator("elsewhere", SECRET).challenges(NOW)[0]
    moved = authorize(realm, method="REGISTER", uri="sip:pbx", username="1001", password="pw-1001")
    assert server.check(moved, method="REGISTER", ha1=stored, now=NOW) is Verdict.FAILED
    for nonce in ("", "short", sha.nonce[:-1] + ("A" if sha.nonce[-1] != "A" else "B"), "é" * 43):
        forged = Challenge("callcenter", nonce, "SHA-256")
        attempt = authorize(
            forged, method="REGISTER", uri="sip:pbx", username="1001", password="pw-1001"
        )
        assert server.check(attempt, method="REGISTER", ha1=stored, now=NOW) is Verdict.FAILED
    future = authorize(
        server.challenges(NOW + 3600)[0],
        method="REGISTER",
        uri="sip:pbx",
        username="1001",
        password="pw-1001",
    )
    assert server.check(future, method="REGISTER", ha1=stored, now=NOW) is Verdict.FAILED
    # SHA-256 needs qop; MD5 without it is the RFC 2617 compatible form.
    no_qop = Challenge(sha.realm, sha.nonce, "SHA-256", ())
    bare = authorize(no_qop, method="REGISTER", uri="sip:pbx", username="1001", password="pw-1001")
    assert bare.qop is None
    assert server.check(bare, method="REGISTER", ha1=stored, now=NOW) is Verdict.FAILED
    legacy = authorize(
        Challenge(md5.realm, md5.nonce, "MD5", ()),
        method="REGISTER",
        uri="sip:pbx",
        username="1001",
        password="pw-1001",
    )
    md5_stored = ha1("1001", "callcenter", "pw-1001")
    assert server.check(legacy, method="REGISTER", ha1=md5_stored, now=NOW) is Verdict.OK
    # An algorithm this server does not offer.
    sha_only = authenticator(algorithms=("SHA-256",))
    answer = authorize(md5, method="REGISTER", uri="sip:pbx", username="1001", password="pw-1001")
    assert sha_only.check(answer, method="REGISTER", ha1=md5_stored, now=NOW) is Verdict.FAILED


def test_expired_nonce_is_stale_only_with_the_right_password() -> None:
    server = authenticator(nonce_lifetime=60)
    challenge = server.challenges(NOW)[0]
    stored = ha1("1001", "callcenter", "pw", "SHA-256")
    good = authorize(challenge, method="REGISTER", uri="sip:pbx", username="1001", password="pw")
    bad = authorize(challenge, method="REGISTER", uri="sip:pbx", username="1001", password="no")
    assert server.nonce_age(challenge.nonce, NOW + 61) == pytest.approx(61)
    assert server.check(good, method="REGISTER", ha1=stored, now=NOW + 61) is Verdict.STALE
    assert server.check(bad, method="REGISTER", ha1=stored, now=NOW + 61) is Verdict.FAILED
    assert server.challenges(NOW + 61, stale=True)[0].stale


def test_nonces_are_unique_and_shared_by_nodes_with_the_secret() -> None:
    server = authenticator()
    nonces = {server.new_nonce(NOW) for _ in range(50)}
    assert len(nonces) == 50
    twin = authenticator()
    assert all(twin.nonce_age(n, NOW) == 0 for n in nonces)
    with pytest.raises(ValueError, match="16 bytes"):
        Authenticator("callcenter", b"short")


def test_nonce_counts_are_bounded() -> None:
    counts = NonceCounts(max_nonces=2)
    assert counts.accept("a", 1) and counts.accept("b", 1)
    assert not counts.accept("a", 1)
    assert counts.accept("a", 3) and counts.accept("c", 1)
    # "b" was the least recently used and is forgotten.
    assert counts.accept("b", 1)
    assert not counts.accept("c", 1)


def test_recorded_register_verifies() -> None:
    register = parse_datagram(load("linphone_register_digest.sip"))
    assert isinstance(register, Request)
    credentials = find_credentials(register.header_values("Authorization"), "callcenter")
    assert credentials is not None
    assert (credentials.username, credentials.algorithm, credentials.opaque) == (
        "1001",
        "SHA-256",
        "",
    )
    server = Authenticator("callcenter", b"fixture-nonce-secret-0001")
    stored = ha1("1001", "callcenter", "agent-1001-secret", "SHA-256")
    assert server.check(credentials, method="REGISTER", ha1=stored, now=1_700_000_030) is Verdict.OK
    assert (
        server.check(credentials, method="REGISTER", ha1=stored, now=1_700_000_031)
        is Verdict.REPLAYED
    )


def test_find_credentials() -> None:
    ours = str(Credentials("u", "callcenter", "n", "sip:x", "0" * 32))
    theirs = str(Credentials("u", "proxy.example.net", "n", "sip:x", "0" * 32))
    assert find_credentials([theirs, ours], "callcenter") == Credentials.parse(ours)
    assert find_credentials([theirs], "callcenter") is None
    assert find_credentials([], "callcenter") is None
    assert find_credentials(["Basic xyz", ours], "callcenter") == Credentials.parse(ours)
    with pytest.raises(DigestError):
        find_credentials(["Basic xyz", theirs], "callcenter")


def test_recorded_challenge_is_answered_with_the_strongest_algorithm() -> None:
    challenged = parse_datagram(load("response_401_register.sip"))
    offered = [Challenge.parse(v) for v in challenged.header_values("WWW-Authenticate")]
    assert choose_challenge(reversed(offered)) == offered[0]
    assert choose_challenge([Challenge("r", "n", "SHA-512-256"), offered[1]]) == offered[1]
    assert choose_challenge([Challenge("r", "n", "SHA-512-256")]) is None
    assert choose_challenge([Challenge("r", "n", "MD5", ("auth-conf",))]) is None


def test_authorize() -> None:
    challenge = Challenge("trunk.example.net", "abc", "MD5", ("auth-int", "auth"), opaque="o")
    credentials = authorize(
        challenge,
        method="INVITE",
        uri="sip:+15551234567@trunk.example.net",
        username="acct",
        password="pw",
        cnonce="cn",
        nc=7,
    )
    assert (credentials.qop, credentials.nc, credentials.cnonce, credentials.opaque) == (
        "auth",
        "00000007",
        "cn",
        "o",
    )
    auth_int = authorize(
        Challenge("r", "n", "MD5", ("auth-int",)),
        method="INVITE",
        uri="sip:x",
        username="u",
        password="p",
        body=b"v=0",
    )
    assert auth_int.qop == "auth-int"
    with pytest.raises(ValueError, match="password or ha1"):
        authorize(challenge, method="INVITE", uri="sip:x", username="u")
    with pytest.raises(ValueError, match="password or ha1"):
        authorize(challenge, method="INVITE", uri="sip:x", username="u", password="p", ha1="0" * 32)
    with pytest.raises(DigestError, match="Unsupported qop"):
        authorize(
            Challenge("r", "n", "MD5", ("auth-conf",)),
            method="INVITE",
            uri="sip:x",
            username="u",
            password="p",
        )
    with pytest.raises(DigestError, match="Unsupported algorithm"):
        authorize(
            Challenge("r", "n", "SHA-512-256"),
            method="INVITE",
            uri="sip:x",
            username="u",
            password="p",
        )
