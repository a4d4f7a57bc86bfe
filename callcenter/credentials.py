"""Password hashes for logins and digest HA1 hashes for SIP extensions."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
#: A hash of a random string, verified against when the account does not exist,
#: so that a login for an unknown user costs as much as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def hash_password_off_loop(password: str) -> str:
    """Hash in a worker thread: argon2 takes tens of milliseconds by design."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password_off_loop(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password``; spends the same time whether or not a hash exists."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why ``password`` is unacceptable, or ``None``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must have at most {MAX_PASSWORD_LENGTH} characters"
    return None


def sip_ha1(username: str, realm: str, secret: str) -> tuple[str, str]:
    """HA1 = H(username:realm:secret) with MD5 and SHA-256 (RFC 2617, RFC 7616 s3.4.2)."""
    a1 = f"{username}:{realm}:{secret}".encode()
    return hashlib.md5(a1, usedforsecurity=False).hexdigest(), hashlib.sha256(a1).hexdigest()


def token_digest(token: str) -> str:
    """What is stored of a session or API token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
