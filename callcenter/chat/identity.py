"""Identity tokens with which the company's own site vouches for a logged-in customer.

A token is ``base64url(payload) "." base64url(HMAC-SHA256(secret, payload))``
where the payload is JSON with ``sub`` (the account number), ``name``,
optionally ``email`` and ``phone``, and ``exp`` (Unix seconds). Only a token
that verifies and has not expired makes a chat identity verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

#: Longest token accepted (a security limit).
MAX_TOKEN_LENGTH = 2048


class BadIdentityToken(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class VouchedIdentity:
    account: str
    name: str
    email: str | None
    phone: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def sign(secret: str, payload: dict[str, object]) -> str:
    """Make a token (the company's site does this; tests and tools use it too)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def verify(secret: str, token: str, now: float) -> VouchedIdentity:
    """The identity in ``token``, or :class:`BadIdentityToken` saying why not."""
    if not secret:
        raise BadIdentityToken("verified identities are not enabled")
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise BadIdentityToken("malformed token")
    body_text, mac_text = token.split(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise BadIdentityToken("malformed token") from None
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise BadIdentityToken("the token's signature does not match")
    try:
        claims = json.loads(body)
        exp = float(claims["exp"])
        account = str(claims["sub"])[:64]
        name = str(claims.get("name", ""))[:200]
    except (ValueError, KeyError, TypeError):
        raise BadIdentityToken("malformed token") from None
    if exp < now:
        raise BadIdentityToken("the token has expired")
    email = claims.get("email")
    phone = claims.get("phone")
    return VouchedIdentity(
        account,
        name,
        str(email)[:254] if email else None,
        str(phone)[:40] if phone else None,
    )
