"""Digest authentication for SIP (RFC 3261 22.4, RFC 7616, RFC 8760).

Server side, an :class:`Authenticator` for one realm issues challenges
(:meth:`Authenticator.challenges`, sent in WWW-Authenticate with a 401 by a
registrar or UAS, or in Proxy-Authenticate with a 407 by a proxy) and checks
the credentials that come back (:meth:`Authenticator.check`) against the HA1
stored for the user. Nonces are stateless: each carries its issue time and an
HMAC under the server's secret, so any node sharing the secret can verify one
without having stored it, and can tell an expired one (answered with
``stale=true``) from a forged one.

Client side, for outbound trunks: :func:`choose_challenge` picks the
strongest challenge offered and :func:`authorize` computes the Authorization
(or Proxy-Authorization) value for a request.

HA1 hashing is :func:`callcenter.credentials.sip_ha1`, the function that fills
the user's ``sip_ha1_md5`` and ``sip_ha1_sha256`` columns.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from callcenter.credentials import same, sip_ha1
from callcenter.sip.message import ParseError, split_commas, unquote

#: Supported algorithms, strongest first: the order challenges are offered in
#: and the order a client prefers (RFC 8760 2.4, RFC 7616 3.7).
ALGORITHMS = ("SHA-256", "MD5")
_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_NC = re.compile(r"[0-9A-Fa-f]{8}")
_HEX = re.compile(r"[0-9a-f]+")
#: Seconds a nonce may seem to come from the future (clocks of nodes sharing a secret).
_CLOCK_SKEW = 60.0
_STAMP = struct.Struct(">Q")
_SALT_BYTES = 8
_MAC_BYTES = 16


class DigestError(ValueError):
    """A header that cannot be used; ``reason`` is safe to show the peer.

    A server answers it like missing credentials: with a fresh challenge.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _algorithm(name: str | None) -> str:
    """The canonical spelling; an absent algorithm means MD5 (RFC 7616 3.3)."""
    if name is None:
        return "MD5"
    canonical = name.upper()
    if canonical not in _HASHES:
        raise DigestError("Unsupported algorithm")
    return canonical


def _h(algorithm: str, data: bytes) -> str:
    return hashlib.new(_HASHES[algorithm], data, usedforsecurity=False).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username:realm:password) as hex, as stored for users (RFC 7616 3.4.2)."""
    md5, sha256 = sip_ha1(username, realm, password)
    return sha256 if _algorithm(algorithm) == "SHA-256" else md5


# authorize() takes a stored HA1 as a parameter of the same name.
_ha1 = ha1


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 3.4.1.

    Without ``qop`` it is the RFC 2069 form that RFC 2617 3.2.2.1 keeps for compatibility.
    """
    algorithm = _algorithm(algorithm)
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + _h(algorithm, body)
    ha2 = _h(algorithm, a2.encode())
    key = ha1.lower()
    if qop is None:
        return _h(algorithm, f"{key}:{nonce}:{ha2}".encode())
    return _h(algorithm, f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _auth_params(value: str, max_length: int) -> dict[str, str]:
    """The parameters of a ``Digest`` challenge or credentials value (RFC 3261 25.1)."""
    if len(value) > max_length:
        raise DigestError("Authentication header too long")
    match = re.match(r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+", value)
    if match is None or match.group(1).lower() != "digest":
        raise DigestError("Unsupported authentication scheme")
    params: dict[str, str] = {}
    for item in split_commas(value[match.end() :]):
        name, eq, raw = item.partition("=")
        name, raw = name.strip(" \t").lower(), raw.strip(" \t")
        if not eq or not _TOKEN.fullmatch(name) or name in params:
            raise DigestError("Malformed authentication header")
        if raw.startswith('"'):
            try:
                params[name] = unquote(raw)
            except ParseError:
                raise DigestError("Malformed authentication header") from None
        elif _TOKEN.fullmatch(raw):
            params[name] = raw
        else:
            raise DigestError("Malformed authentication header")
    return params


def _required(params: dict[str, str], name: str) -> str:
    if name not in params:
        raise DigestError(f"Missing {name}")
    return params[name]


@dataclass(frozen=True, slots=True)
class Challenge:
    """A ``Digest`` challenge (RFC 7616 3.3); ``str()`` is the header value."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ("auth",)
    opaque: str | None = None
    stale: bool = False

    def __str__(self) -> str:
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)

    @classmethod
    def parse(cls, value: str, *, max_length: int = 4096) -> Challenge:
        """Read a WWW-Authenticate or Proxy-Authenticate value.

        ``max_length`` is a security limit.
        """
        params = _auth_params(value, max_length)
        qop = tuple(q.strip(" \t").lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=_required(params, "realm"),
            nonce=_required(params, "nonce"),
            algorithm=params.get("algorithm", "MD5").upper(),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    """``Digest`` credentials (RFC 7616 3.4); ``str()`` is the Authorization value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    def __str__(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm}",
        ]
        if self.qop is not None:
            parts += [f"qop={self.qop}", f"nc={self.nc}", f"cnonce={_quote(self.cnonce or '')}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        return "Digest " + ", ".join(parts)

    @classmethod
    def parse(cls, value: str, *, max_length: int = 4096) -> Credentials:
        """Read an Authorization or Proxy-Authorization value.

        ``max_length`` is a security limit.
        """
        params = _auth_params(value, max_length)
        algorithm = _algorithm(params.get("algorithm"))
        response = _required(params, "response").lower()
        if len(response) != len(_h(algorithm, b"")) or not _HEX.fullmatch(response):
            raise DigestError("Malformed response")
        qop = params.get("qop")
        nc = cnonce = None
        if qop is not None:
            qop = qop.lower()
            if qop not in ("auth", "auth-int"):
                raise DigestError("Unsupported qop")
            nc, cnonce = _required(params, "nc"), _required(params, "cnonce")
            if not _NC.fullmatch(nc):
                raise DigestError("Malformed nc")
        return cls(
            username=_required(params, "username"),
            realm=_required(params, "realm"),
            nonce=_required(params, "nonce"),
            uri=_required(params, "uri"),
            response=response,
            algorithm=algorithm,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            opaque=params.get("opaque"),
        )


def find_credentials(values: Iterable[str], realm: str) -> Credentials | None:
    """The credentials for ``realm`` among a request's Authorization values (RFC 3261 22.3).

    Values for other realms are skipped; if none is for ``realm`` and one
    could not be read, its :class:`DigestError` is raised.
    """
    error: DigestError | None = None
    for value in values:
        try:
            credentials = Credentials.parse(value)
        except DigestError as problem:
            error = error or problem
            continue
        if credentials.realm == realm:
            return credentials
    if error is not None:
        raise error
    return None


def verify_response(credentials: Credentials, *, method: str, ha1: str, body: bytes = b"") -> bool:
    """Whether the response matches ``ha1``, compared in constant time."""
    expected = compute_response(
        algorithm=credentials.algorithm,
        ha1=ha1,
        nonce=credentials.nonce,
        method=method,
        uri=credentials.uri,
        qop=credentials.qop,
        nc=credentials.nc,
        cnonce=credentials.cnonce,
        body=body,
    )
    return same(expected, credentials.response)


class Verdict(Enum):
    #: Authenticated.
    OK = "ok"
    #: The password was right but the nonce expired: challenge with ``stale=true``.
    STALE = "stale"
    #: Wrong credentials, unknown user, or a nonce that is not ours: challenge again.
    FAILED = "failed"
    #: A nonce count already used with this nonce (RFC 7616 3.4): treat as failed.
    REPLAYED = "replayed"


class NonceCounts:
    """The highest nonce count seen per nonce, for replay detection (RFC 7616 3.3, ``nc``).

    ``max_nonces`` is a security limit on memory; the least recently used
    nonces are forgotten first, and nonce expiry bounds what a forgotten one
    could let through.
    """

    def __init__(self, max_nonces: int = 10_000) -> None:
        self.max_nonces = max_nonces
        self._seen: OrderedDict[str, int] = OrderedDict()

    def accept(self, nonce: str, count: int) -> bool:
        """Record ``count`` for ``nonce``; false if it does not exceed the last one."""
        if count <= self._seen.get(nonce, 0):
            return False
        self._seen[nonce] = count
        self._seen.move_to_end(nonce)
        while len(self._seen) > self.max_nonces:
            self._seen.popitem(last=False)
        return True


class Authenticator:
    """Server-side digest authentication for one realm.

    ``secret`` keys the nonce HMAC; nodes sharing it accept each other's
    nonces. ``now`` is wall-clock seconds (``time.time()``), so that nonces
    outlive a restart. Retransmissions must be absorbed by the transaction
    layer first: a retransmitted request repeats its nonce count.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        nonce_lifetime: float = 300.0,
        algorithms: tuple[str, ...] = ALGORITHMS,
        max_tracked_nonces: int = 10_000,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret needs at least 16 bytes")
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self.algorithms = tuple(_algorithm(a) for a in algorithms)
        self._secret = secret
        self._counts = NonceCounts(max_tracked_nonces)

    def new_nonce(self, now: float) -> str:
        """base64(time + salt + HMAC(secret, time + salt + realm)); the salt keeps nonces unique."""
        raw = _STAMP.pack(max(0, int(now))) + secrets.token_bytes(_SALT_BYTES)
        return base64.urlsafe_b64encode(raw + self._mac(raw)).decode().rstrip("=")

    def _mac(self, raw: bytes) -> bytes:
        return hmac.new(self._secret, raw + self.realm.encode(), "sha256").digest()[:_MAC_BYTES]

    def nonce_age(self, nonce: str, now: float) -> float | None:
        """Seconds since ``nonce`` was issued, or ``None`` if it is not one of ours."""
        size = _STAMP.size + _SALT_BYTES + _MAC_BYTES
        if len(nonce) != (size * 4 + 2) // 3 or not nonce.isascii():
            return None
        try:
            data = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return None
        raw, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
        if len(data) != size or not hmac.compare_digest(mac, self._mac(raw)):
            return None
        age = now - _STAMP.unpack(raw[: _STAMP.size])[0]
        return None if age < -_CLOCK_SKEW else max(0.0, age)

    def challenges(self, now: float, *, stale: bool = False) -> list[Challenge]:
        """One challenge per algorithm, strongest first (RFC 8760 2.4): one header field each."""
        nonce = self.new_nonce(now)
        return [Challenge(self.realm, nonce, a, ("auth",), stale=stale) for a in self.algorithms]

    def check(
        self,
        credentials: Credentials,
        *,
        method: str,
        ha1: str | None,
        now: float,
        body: bytes = b"",
    ) -> Verdict:
        """Judge ``credentials`` for a request with ``method``.

        ``ha1`` is the stored hash for ``credentials.username`` and
        ``credentials.algorithm``, or ``None`` if there is no such user (the
        work done is the same, so timing does not tell). The no-qop form of
        RFC 2617 is accepted for MD5 only; SHA-256 needs qop (RFC 7616 3.4).
        """
        usable = (
            credentials.realm == self.realm
            and credentials.algorithm in self.algorithms
            and (
                credentials.qop == "auth"
                or (credentials.qop is None and credentials.algorithm == "MD5")
            )
        )
        age = self.nonce_age(credentials.nonce, now)
        key = ha1 if ha1 is not None else "0" * len(_h(credentials.algorithm, b""))
        matches = verify_response(credentials, method=method, ha1=key, body=body)
        if not (usable and matches and ha1 is not None and age is not None):
            return Verdict.FAILED
        if age > self.nonce_lifetime:
            return Verdict.STALE
        if credentials.nc is not None and not self._counts.accept(
            credentials.nonce, int(credentials.nc, 16)
        ):
            return Verdict.REPLAYED
        return Verdict.OK


def choose_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge a client should answer: the strongest algorithm it supports (RFC 8760 2.4)."""
    usable = [
        c
        for c in challenges
        if c.algorithm in _HASHES and (not c.qop or {"auth", "auth-int"} & set(c.qop))
    ]
    return min(usable, key=lambda c: ALGORITHMS.index(c.algorithm), default=None)


def authorize(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str | None = None,
    ha1: str | None = None,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> Credentials:
    """Credentials answering ``challenge`` for a request; give ``password`` or ``ha1``.

    ``uri`` is the Request-URI as sent (RFC 3261 22.4). Reusing a nonce for
    later requests needs ``nc`` counted up by the caller.
    """
    if (password is None) == (ha1 is None):
        raise ValueError("give either password or ha1")
    algorithm = _algorithm(challenge.algorithm)
    key = ha1 if ha1 is not None else _ha1(username, challenge.realm, password or "", algorithm)
    if not challenge.qop:
        qop = None
    elif "auth" in challenge.qop:
        qop = "auth"
    elif "auth-int" in challenge.qop:
        qop = "auth-int"
    else:
        raise DigestError("Unsupported qop")
    count = f"{nc:08x}" if qop else None
    client_nonce = (cnonce or secrets.token_hex(8)) if qop else None
    response = compute_response(
        algorithm=algorithm,
        ha1=key,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=count,
        cnonce=client_nonce,
        body=body,
    )
    return Credentials(
        username,
        challenge.realm,
        challenge.nonce,
        uri,
        response,
        algorithm,
        qop,
        count,
        client_nonce,
        challenge.opaque,
    )
