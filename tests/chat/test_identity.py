from __future__ import annotations

import pytest

from callcenter.chat.identity import BadIdentityToken, sign, verify

SECRET = "shared-secret"


def test_good_token_vouches() -> None:
    token = sign(SECRET, {"sub": "A-1", "name": "Li Na", "email": "li@example.com", "exp": 2000})
    identity = verify(SECRET, token, now=1000)
    assert (identity.account, identity.name, identity.email) == ("A-1", "Li Na", "li@example.com")


@pytest.mark.parametrize(
    ("token", "secret", "now", "words"),
    [
        (sign(SECRET, {"sub": "A-1", "exp": 10}), SECRET, 11, "expired"),
        (sign("other", {"sub": "A-1", "exp": 2000}), SECRET, 1000, "signature"),
        (sign(SECRET, {"name": "x", "exp": 2000}), SECRET, 1000, "malformed"),
        ("not-a-token", SECRET, 1000, "malformed"),
        ("a.b.c", SECRET, 1000, "malformed"),
        ("%%%.%%%", SECRET, 1000, "malformed"),
        ("x" * 5000 + ".y", SECRET, 1000, "malformed"),
        (sign(SECRET, {"sub": "A-1", "exp": 2000}), "", 1000, "not enabled"),
    ],
)
def test_bad_tokens_are_refused(token: str, secret: str, now: float, words: str) -> None:
    with pytest.raises(BadIdentityToken, match=words):
        verify(secret, token, now)


def test_tampered_payload_is_refused() -> None:
    token = sign(SECRET, {"sub": "A-1", "exp": 2000})
    body, mac = token.split(".")
    forged = sign(SECRET, {"sub": "A-2", "exp": 2000}).split(".")[0]
    with pytest.raises(BadIdentityToken):
        verify(SECRET, f"{forged}.{mac}", 1000)
    assert verify(SECRET, f"{body}.{mac}", 1000).account == "A-1"
