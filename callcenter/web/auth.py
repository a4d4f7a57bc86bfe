"""Who is calling: cookie sessions with CSRF tokens, and bearer tokens.

Browsers log in and get an HttpOnly, SameSite=Strict session cookie plus a
CSRF token they must echo in ``X-CSRF-Token`` on every state-changing
request. Integrations send ``Authorization: Bearer <token>``. Sessions
expire after a time-to-live and after being idle; only hashes of session
and API tokens are stored.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy import delete, select, update

from callcenter.clock import utcnow
from callcenter.credentials import new_token, same, token_digest, verify_password_off_loop
from callcenter.store.models import ApiToken, Session, User
from callcenter.store.recorder import is_transient
from callcenter.web.errors import ApiError

if TYPE_CHECKING:
    from callcenter.services import Services

COOKIE = "cc_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: How often a session's last-seen time is written (not on every request).
TOUCH_INTERVAL = dt.timedelta(seconds=60)
#: How long a confirmed API token is trusted without the database.
TOKEN_CACHE_TIME = dt.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: str
    #: ``session`` (cookie) or ``token`` (bearer).
    via: str
    #: Hash of the session or API token that authenticated this call.
    credential: str
    csrf_token: str = ""


class CredentialCache:
    """Sessions and tokens the database confirmed recently.

    Consulted only while the database is unreachable, so that agents keep
    working through an outage; the database stays the authority otherwise,
    and logging out or ending a user's sessions drops the entries at once.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, dt.datetime]] = {}

    def remember(self, principal: Principal, valid_until: dt.datetime) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[principal.credential] = (principal, valid_until)

    def get(self, digest: str, now: dt.datetime) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def forget_user(self, user_id: int) -> None:
        for digest, (principal, _) in list(self._entries.items()):
            if principal.user_id == user_id:
                del self._entries[digest]


def _unauthorized(message: str = "log in first") -> ApiError:
    return ApiError(401, "unauthorized", message)


async def authenticate(request: web.Request, services: Services, method: str) -> Principal:
    """The caller of ``request``, or :class:`ApiError` 401; CSRF is checked here too."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > 200:
            raise _unauthorized("use Authorization: Bearer <token>")
        return await _from_api_token(services, token.strip())
    cookie = request.cookies.get(COOKIE, "")
    if not cookie or len(cookie) > 200:
        raise _unauthorized()
    principal = await session_principal(services, cookie)
    if method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not same(sent, principal.csrf_token):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
    return principal


async def _confirmed(
    services: Services,
    digest: str,
    lookup: Callable[[Services, str], Awaitable[Principal]],
) -> Principal:
    """The database's answer; during an outage, what it confirmed recently."""
    try:
        return await lookup(services, digest)
    except Exception as exc:
        cached = services.credentials.get(digest, utcnow()) if is_transient(exc) else None
        if cached is None:
            raise
        return cached


async def session_principal(services: Services, cookie: str) -> Principal:
    return await _confirmed(services, token_digest(cookie), _session_from_database)


async def _session_from_database(services: Services, digest: str) -> Principal:
    now = utcnow()
    async with services.sessions() as db:
        row = (
            await db.execute(
                select(Session, User)
                .join(User, User.id == Session.user_id)
                .where(Session.token_hash == digest)
            )
        ).first()
        if row is None:
            raise _unauthorized("your session has ended; log in again")
        session, user = row
        idle = dt.timedelta(seconds=services.settings.auth.session_idle_seconds)
        if session.expires_at <= now or session.last_seen_at + idle <= now or not user.active:
            await db.execute(delete(Session).where(Session.token_hash == digest))
            await db.commit()
            raise _unauthorized("your session has ended; log in again")
        if now - session.last_seen_at >= TOUCH_INTERVAL:
            await db.execute(
                update(Session).where(Session.token_hash == digest).values(last_seen_at=now)
            )
            await db.commit()
        principal = Principal(
            user.id, user.username, user.role, "session", digest, session.csrf_token
        )
        valid_until = min(session.expires_at, session.last_seen_at + idle)
        services.credentials.remember(principal, valid_until)
        return principal


async def _from_api_token(services: Services, token: str) -> Principal:
    return await _confirmed(services, token_digest(token), _token_from_database)


async def _token_from_database(services: Services, digest: str) -> Principal:
    async with services.sessions() as db:
        row = (
            await db.execute(
                select(ApiToken, User)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == digest)
            )
        ).first()
    if row is None:
        raise _unauthorized("unknown or revoked token")
    api_token, user = row
    if api_token.revoked or not user.active:
        raise _unauthorized("unknown or revoked token")
    if api_token.expires_at is not None and api_token.expires_at <= utcnow():
        raise _unauthorized("the token has expired")
    principal = Principal(user.id, user.username, user.role, "token", digest)
    # A revoked token may live on for this long, and only during an outage.
    services.credentials.remember(principal, utcnow() + TOKEN_CACHE_TIME)
    return principal


async def login(
    services: Services, username: str, password: str, address: str
) -> tuple[User, str, Session]:
    """Check a password under the throttle; return the user, cookie value and session."""
    throttle = services.throttle
    account_key, address_key = f"user:{username.lower()}", f"addr:{address}"
    keys = [account_key, address_key]
    wait = throttle.retry_after(keys, time.monotonic())
    if wait is not None:
        services.metrics.login_failures.labels("throttled").inc()
        await services.audit(None, username, "login.throttled", f"user:{username}", address)
        error = ApiError(429, "too_many_attempts", "too many failed logins; wait and try again")
        error.headers["Retry-After"] = str(int(wait) + 1)
        raise error
    async with services.sessions() as db:
        user = (
            await db.execute(select(User).where(User.username == username))
        ).scalar_one_or_none()
        ok = await verify_password_off_loop(user.password_hash if user else None, password)
        if user is None or not ok or not user.active:
            throttle.failed(keys, time.monotonic())
            services.metrics.login_failures.labels("bad_credentials").inc()
            await services.audit(None, username, "login.failed", f"user:{username}", address)
            raise _unauthorized("wrong user name or password")
        throttle.succeeded([account_key])
        cookie = new_token()
        now = utcnow()
        session = Session(
            token_hash=token_digest(cookie),
            user_id=user.id,
            csrf_token=new_token(),
            created_at=now,
            expires_at=now + dt.timedelta(seconds=services.settings.auth.session_ttl_seconds),
            last_seen_at=now,
            address=address[:64],
        )
        db.add(session)
        await db.commit()
    await services.audit(user.id, user.username, "login", f"user:{user.id}", address)
    return user, cookie, session


def set_session_cookie(response: web.Response, services: Services, cookie: str) -> None:
    response.set_cookie(
        COOKIE,
        cookie,
        httponly=True,
        samesite="Strict",
        secure=services.settings.auth.secure_cookies,
        path="/",
        max_age=services.settings.auth.session_ttl_seconds,
    )


async def logout(services: Services, principal: Principal) -> None:
    """End the session (or revoke nothing for a token) and close the user's websockets."""
    services.credentials.forget(principal.credential)
    if principal.via == "session":
        async with services.sessions() as db:
            await db.execute(delete(Session).where(Session.token_hash == principal.credential))
            await db.commit()
    await services.sockets.close_user(principal.user_id, "logged out")


async def end_user_sessions(services: Services, user_id: int) -> None:
    """Used when a password changes or an account is disabled."""
    services.credentials.forget_user(user_id)
    async with services.sessions() as db:
        await db.execute(delete(Session).where(Session.user_id == user_id))
        await db.commit()
    await services.sockets.close_user(user_id, "signed out by an administrator")
