"""SIP, SIPS and TEL URIs: parse, serialize and compare (RFC 3261 19.1, RFC 3966).

Parsed URIs keep what the peer wrote (escapes, case of the user part and
host) so that serializing gives the same text back; comparison follows the
rules of RFC 3261 19.1.4 instead. Parameter names are case-insensitive and
kept in lower case.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import ClassVar

Params = tuple[tuple[str, str | None], ...]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# user = unreserved / escaped / user-unreserved (RFC 3261 25.1)
_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,;?/]+")
_PASSWORD = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,]*")
# Underscores are not in the grammar, but appear in real host names.
_HOSTNAME = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
_PARAM = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]+")
_HEADER_PART = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/?:+$]*")
_TEL_NUMBER = re.compile(r"\+?[0-9A-Fa-f*#\-.()]+")
_VISUAL_SEPARATORS = re.compile(r"[\-.()]")
_ESCAPED = re.compile(r"%([0-9A-Fa-f]{2})")
_OPAQUE = re.compile(r"[\x21-\x7e]+")
# RFC 3261 19.1.4: these parameters must agree whenever either URI has them.
_MUST_MATCH = frozenset({"user", "ttl", "method", "maddr", "transport"})


class UriError(ValueError):
    """A URI that cannot be parsed; ``reason`` is short and safe to show a peer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes; a ``%`` not followed by two hex digits stays as it is."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def format_params(params: Params) -> str:
    """``;name=value`` pairs as written in URIs and header fields."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def _lookup(params: Params, name: str) -> tuple[bool, str | None]:
    name = name.lower()
    for key, value in params:
        if key == name:
            return True, value
    return False, None


def _with(params: Params, name: str, value: str | None) -> Params:
    name = name.lower()
    kept = tuple((k, v) for k, v in params if k != name)
    return (*kept, (name, value))


def parse_host(text: str) -> str:
    """Check a host (name, IPv4 address or bracketed IPv6 reference) and return it."""
    if text.startswith("["):
        if not text.endswith("]"):
            raise UriError("Malformed host")
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise UriError("Malformed host") from None
        return text
    if not _HOSTNAME.fullmatch(text):
        raise UriError("Malformed host")
    return text


def parse_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (RFC 3261 25.1 hostport) and check both parts."""
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise UriError("Malformed host")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_raw = text.partition(":")
        port_text = port_text_raw if colon else None
    port = None
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
            raise UriError("Malformed port")
        port = int(port_text)
    return parse_host(host), port


def _parse_params(text: str) -> Params:
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not _PARAM.fullmatch(name) or (eq and value and not _PARAM.fullmatch(value)):
            raise UriError("Malformed URI parameter")
        params.append((name.lower(), value if eq else None))
    return tuple(params)


def _parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not name or not eq or not _HEADER_PART.fullmatch(name + value):
            raise UriError("Malformed URI header")
        headers.append((name, value))
    return tuple(headers)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 19.1.1)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            password = "" if self.password is None else f":{self.password}"
            userinfo = f"{self.user}{password}@"
        port = "" if self.port is None else f":{self.port}"
        headers = "&".join(f"{n}={v}" for n, v in self.headers)
        query = f"?{headers}" if headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}{query}"

    def has_param(self, name: str) -> bool:
        return _lookup(self.params, name)[0]

    def param(self, name: str) -> str | None:
        """The value of parameter ``name``; ``None`` when absent or given without a value."""
        return _lookup(self.params, name)[1]

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return _replace_params(self, _with(self.params, name, value))

    def without_param(self, name: str) -> SipUri:
        name = name.lower()
        return _replace_params(self, tuple((k, v) for k, v in self.params if k != name))

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return None if value is None else value.lower()

    @property
    def lr(self) -> bool:
        """Loose routing (RFC 3261 16.12.1.1): the proxy named by this URI keeps the Route."""
        return self.has_param("lr")

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def equivalent(self, other: object) -> bool:
        """Whether two SIP URIs are equal by the rules of RFC 3261 19.1.4."""
        if not isinstance(other, SipUri) or self.scheme != other.scheme:
            return False
        if _unescaped(self.user) != _unescaped(other.user):
            return False
        if _unescaped(self.password) != _unescaped(other.password) or self.port != other.port:
            return False
        if _host_key(self.host) != _host_key(other.host):
            return False
        mine, theirs = dict(self.params), dict(other.params)
        for name in mine.keys() | theirs.keys():
            if name in mine and name in theirs:
                if unescape(mine[name] or "").lower() != unescape(theirs[name] or "").lower():
                    return False
            elif name in _MUST_MATCH:
                return False
        return _header_key(self.headers) == _header_key(other.headers)


def _replace_params(uri: SipUri, params: Params) -> SipUri:
    return SipUri(uri.host, uri.user, uri.password, uri.port, params, uri.headers, uri.scheme)


def _unescaped(text: str | None) -> str | None:
    return None if text is None else unescape(text)


def _host_key(host: str) -> str:
    if host.startswith("["):
        return str(ipaddress.IPv6Address(host[1:-1]))
    return host.lower().rstrip(".")


def _header_key(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {unescape(n).lower(): unescape(v) for n, v in headers}


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): a global (``+``) or local number and its parameters."""

    number: str
    params: Params = ()
    scheme: ClassVar[str] = "tel"

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        return _lookup(self.params, name)[1]

    def equivalent(self, other: object) -> bool:
        """RFC 3966 4: numbers compare without visual separators, parameters in any order."""
        if not isinstance(other, TelUri):
            return False
        mine = {n: (v or "").lower() for n, v in self.params}
        theirs = {n: (v or "").lower() for n, v in other.params}
        return _digits(self.number) == _digits(other.number) and mine == theirs


def _digits(number: str) -> str:
    return _VISUAL_SEPARATORS.sub("", number).lower()


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of any other scheme, kept opaque (RFC 3261 19.1 allows them in most places)."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    def equivalent(self, other: object) -> bool:
        return isinstance(other, AbsoluteUri) and (self.scheme, self.rest) == (
            other.scheme,
            other.rest,
        )


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse any URI a SIP message may carry; raises :class:`UriError`.

    Unknown schemes are accepted as :class:`AbsoluteUri`: the transaction
    user answers a Request-URI it cannot serve with 416 (RFC 3261 8.2.2.1).
    """
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme) or not rest:
        raise UriError("Malformed URI")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not _TEL_NUMBER.fullmatch(number):
            raise UriError("Malformed telephone number")
        return TelUri(number, _parse_params(params) if params else ())
    if not _OPAQUE.fullmatch(rest):
        raise UriError("Malformed URI")
    return AbsoluteUri(scheme, rest)


def parse_sip_uri(text: str) -> SipUri:
    """Parse a URI that must be ``sip:`` or ``sips:``; raises :class:`UriError`."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise UriError("Not a SIP URI")
    return uri


def _parse_sip(scheme: str, rest: str) -> SipUri:
    # The user part may hold ";" and "?" (RFC 3261 19.1.1), so "@" is found first.
    user = password = None
    userinfo, at, hostpart = rest.partition("@")
    if not at:
        hostpart = rest
    else:
        user, colon, password_text = userinfo.partition(":")
        if not _USER.fullmatch(user):
            raise UriError("Malformed user part")
        if colon:
            if not _PASSWORD.fullmatch(password_text):
                raise UriError("Malformed password")
            password = password_text
    hostparams, question, header_text = hostpart.partition("?")
    hostport, semicolon, param_text = hostparams.partition(";")
    host, port = parse_hostport(hostport)
    params = _parse_params(param_text) if semicolon else ()
    headers = _parse_headers(header_text) if question else ()
    return SipUri(host, user, password, port, params, headers, scheme)
