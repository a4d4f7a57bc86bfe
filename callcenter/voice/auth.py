"""Digest authentication of agents' phones (RFC 3261 22, RFC 8760) against stored HA1.

REGISTERs, and INVITEs that do not come from a trunk, must carry credentials
of an active user's extension. The stored HA1 hashes (MD5 and SHA-256) are
looked up per request; the password itself is never stored. An address
that keeps failing is locked out for a while, with a log line each time, so a
password-guessing client gets slower answers and the operator hears of it.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from callcenter.config import SipSettings
from callcenter.services import Services
from callcenter.sip.digest import Authenticator, DigestError, Verdict, find_credentials
from callcenter.sip.endpoint import ServerRequest
from callcenter.store.models import User
from callcenter.web.throttle import LoginThrottle

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Agent:
    """Who a request was authenticated as."""

    user_id: int
    extension: str


class SipAuth:
    def __init__(self, services: Services, settings: SipSettings) -> None:
        self.services = services
        secret = settings.nonce_secret.encode() or secrets.token_bytes(32)
        self.digest = Authenticator(
            settings.realm,
            secret.ljust(16, b"\0"),
            nonce_lifetime=settings.nonce_lifetime_seconds,
            algorithms=tuple(settings.digest_algorithms),
        )
        self.throttle = LoginThrottle(
            settings.auth_max_failures,
            settings.auth_window_seconds,
            settings.auth_lockout_seconds,
        )
        self.trunks = [ipaddress.ip_network(t, strict=False) for t in settings.trunks]

    def from_trunk(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trunks)

    async def authenticate(self, server: ServerRequest, *, proxy: bool = False) -> Agent | None:
        """The agent ``server.request`` is from, or ``None`` once it has been answered.

        Answers 401 (407 with ``proxy``, as for INVITE, 22.3) with fresh
        challenges when credentials are missing, wrong or stale, and 403 while
        the source address is locked out.
        """
        request = server.request
        now = time.time()
        key = f"sip:{server.peer.host}"
        if (wait := self.throttle.retry_after([key], now)) is not None:
            log.warning("SIP auth from %s refused: locked out for %.0f s", server.peer.host, wait)
            server.reply(403, "Too many failed attempts")
            return None
        header = "Proxy-Authorization" if proxy else "Authorization"
        try:
            credentials = find_credentials(request.header_values(header), self.digest.realm)
        except DigestError:
            # Unreadable credentials count as none: a fresh challenge, nothing else.
            credentials = None
        if credentials is None:
            self._challenge(server, proxy, stale=False)
            return None
        user = await self._user(credentials.username)
        ha1 = None
        if user is not None:
            ha1 = user.sip_ha1_sha256 if credentials.algorithm == "SHA-256" else user.sip_ha1_md5
        verdict = self.digest.check(
            credentials, method=request.method, ha1=ha1, now=now, body=request.body
        )
        if verdict is Verdict.OK and user is not None and user.sip_extension is not None:
            self.throttle.succeeded([key])
            return Agent(user.id, user.sip_extension)
        if verdict is Verdict.STALE:
            self._challenge(server, proxy, stale=True)
            return None
        self.throttle.failed([key], now)
        log.warning(
            "SIP auth failed for %r from %s (%s)",
            credentials.username,
            server.peer.host,
            verdict.value,
        )
        self._challenge(server, proxy, stale=False)
        return None

    def _challenge(self, server: ServerRequest, proxy: bool, *, stale: bool) -> None:
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        headers = tuple((name, str(c)) for c in self.digest.challenges(time.time(), stale=stale))
        server.reply(407 if proxy else 401, headers=headers)

    async def _user(self, extension: str) -> User | None:
        async with self.services.sessions() as db:
            found = await db.execute(
                select(User).where(User.sip_extension == extension, User.active.is_(True))
            )
            return found.scalars().first()
