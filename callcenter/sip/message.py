"""SIP messages (RFC 3261 7, 18.3, 20): the model, a parser with size limits, the serializer.

:class:`Request` and :class:`Response` are frozen values. Their header fields
stay in the order received, as ``(name, value)`` pairs with compact forms
expanded and folded lines joined; lookups ignore case. Content-Length is not
kept among them: it is the length of ``body``, and :meth:`Request.encode`
always writes it (18.3 makes it mandatory on streams).

Bytes come in through :func:`parse_datagram` (UDP: one datagram, one message)
or a :class:`StreamParser` (TCP: framed by Content-Length). Anything a peer
sends that cannot be used raises :class:`ParseError` and nothing else; when the
bad message was a request, :func:`error_response` builds the answer to send.
Header values parse on demand into :class:`Via`, :class:`NameAddr` and
:class:`CSeq`; a parsed message is known to have well-formed ones.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import NoReturn, Self, TypeVar

from callcenter.sip.uri import (
    Params,
    SipUri,
    Uri,
    UriError,
    format_params,
    parse_hostport,
    parse_uri,
)

#: Branch prefix of RFC 3261 transactions (8.1.1.7).
MAGIC_COOKIE = "z9hG4bK"
MAX_UINT32 = 2**32 - 1

T = TypeVar("T")
Headers = tuple[tuple[str, str], ...]

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VERSION = re.compile(r"SIP/([0-9]{1,3})\.([0-9]{1,3})", re.IGNORECASE)
_STATUS = re.compile(r"[1-6][0-9]{2}")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
_SINGLE = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Type", "Expires")

REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What the parser accepts from a peer.

    These are security limits: they bound the memory and time one message
    can cost. Past them the message is refused with 413 (body, RFC 3261
    21.4.11), 414 (Request-Line, 21.4.12) or 513 (whole message, 21.5.14).
    """

    #: A whole message, head and body (a UDP datagram holds 65,535 bytes at most).
    max_message_bytes: int = 65_535
    #: Header fields in one message.
    max_header_count: int = 256
    #: Characters in the start line or in one header field after unfolding.
    max_line_length: int = 8_192
    #: The body (SDP, or a multipart carrying it).
    max_body_bytes: int = 32_768


DEFAULT_LIMITS = Limits()


class ParseError(ValueError):
    """A message, or a header value, that cannot be used.

    ``reason`` is short and safe to send to the peer (as the reason phrase);
    ``status`` is the response that fits (400, 413, 414, 505, 513). When the
    refused message was a request, ``headers`` and ``method`` hold what was
    read of it, for :func:`error_response`.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers: Headers | None = None
        self.method: str | None = None


# Compact forms: RFC 3261 7.3.3 and the extensions that registered one.
_COMPACT = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        *_COMPACT.values(),
        *("Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow"),
        *("Authentication-Info", "Authorization", "Call-Info", "CSeq", "Date"),
        *("Error-Info", "Expires", "In-Reply-To", "Max-Forwards", "Min-Expires"),
        *("MIME-Version", "Organization", "P-Asserted-Identity", "Path", "Priority"),
        *("Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason"),
        *("Record-Route", "Replaces", "Reply-To", "Require", "Retry-After", "Route", "RSeq"),
        *("Server", "Service-Route", "Subscription-State", "Timestamp", "Unsupported"),
        *("User-Agent", "Warning", "WWW-Authenticate"),
    )
}
_CALL_ID_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID = re.compile(f"{_CALL_ID_WORD}(@{_CALL_ID_WORD})?")
_PARAM_VALUE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]:]*")
_VIA = re.compile(r"([^ \t/]+)[ \t]*/[ \t]*([^ \t/]+)[ \t]*/[ \t]*([^ \t/]+)[ \t]+(.+)")
_CSEQ = re.compile(r"([0-9]{1,10})[ \t]+(" + _TOKEN.pattern + ")")
_MEDIA_TYPE = re.compile(f"({_TOKEN.pattern})[ \t]*/[ \t]*({_TOKEN.pattern})")


def canonical_name(name: str) -> str:
    """The full, conventionally spelled name of a header field (compact forms expanded)."""
    lowered = name.lower()
    if len(lowered) == 1:
        return _COMPACT.get(lowered, name)
    return _CANONICAL.get(lowered, name)


def header_key(name: str) -> str:
    return canonical_name(name).lower()


def _split(text: str, separator: str, angles: bool) -> list[str]:
    """Split on ``separator`` outside quoted strings (and, if asked, outside ``<...>``)."""
    items: list[str] = []
    start = 0
    quoted = escaped = inside = False
    for index, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif angles and char in "<>":
            inside = char == "<"
        elif char == separator and not inside:
            items.append(text[start:index])
            start = index + 1
    items.append(text[start:])
    return items


def split_commas(value: str) -> list[str]:
    """The elements of a comma-separated header value (RFC 3261 7.3.1).

    Commas inside quoted strings and ``<...>`` do not split; empty elements
    are dropped.
    """
    return [item for item in (part.strip(" \t") for part in _split(value, ",", True)) if item]


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The content of the quoted string at ``start``, unescaped, and the index after it."""
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
        elif char == '"':
            return "".join(out), index + 1
        else:
            out.append(char)
            index += 1
    raise ParseError("Unterminated quoted string")


def unquote(text: str) -> str:
    """The content of the quoted string that makes up all of ``text``, escapes undone."""
    if not text.startswith('"') or _quoted(text, 0)[1] != len(text):
        raise ParseError("Malformed quoted string")
    return _quoted(text, 0)[0]


def parse_params(text: str) -> Params:
    """``name[=value]`` pairs separated by ``;`` (generic-param, RFC 3261 25.1).

    Names are returned in lower case; quoted values keep their quotes.
    """
    params: list[tuple[str, str | None]] = []
    for item in _split(text, ";", False):
        name, eq, value = item.partition("=")
        name, value = name.strip(" \t").lower(), value.strip(" \t")
        if not _TOKEN.fullmatch(name):
            raise ParseError("Malformed parameter")
        if value.startswith('"'):
            if _quoted(value, 0)[1] != len(value):
                raise ParseError("Malformed parameter")
        elif not _PARAM_VALUE.fullmatch(value):
            raise ParseError("Malformed parameter")
        params.append((name, value if eq else None))
    return tuple(params)


def _trailing_params(text: str) -> Params:
    text = text.strip(" \t")
    if not text:
        return ()
    if not text.startswith(";"):
        raise ParseError("Malformed parameter")
    return parse_params(text[1:])


def _param(params: Params, name: str) -> str | None:
    return next((v for n, v in params if n == name), None)


def _with_param(params: Params, name: str, value: str | None) -> Params:
    name = name.lower()
    return (*((n, v) for n, v in params if n != name), (name, value))


def parse_number(text: str, maximum: int | None = None) -> int:
    """A non-negative decimal number no larger than ``maximum`` (4475 3.1.2.4 overlarge values)."""
    text = text.strip(" \t")
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise ParseError("Malformed number")
    number = int(text)
    if maximum is not None and number > maximum:
        raise ParseError("Malformed number")
    return number


def parse_call_id(value: str) -> str:
    if not _CALL_ID.fullmatch(value):
        raise ParseError("Malformed Call-ID")
    return value


def parse_content_type(value: str) -> str:
    """The media type of a Content-Type value, in lower case (RFC 3261 20.15)."""
    media, _, params = value.partition(";")
    match = _MEDIA_TYPE.fullmatch(media.strip(" \t"))
    if match is None:
        raise ParseError("Malformed Content-Type")
    if params:
        parse_params(params)
    return f"{match.group(1)}/{match.group(2)}".lower()


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 20.42, 18.2.1; ``rport`` from RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, value: str) -> Via:
        head, semicolon, rest = value.partition(";")
        match = _VIA.fullmatch(head.strip(" \t"))
        if match is None:
            raise ParseError("Malformed Via")
        name, version, transport, sent_by = match.groups()
        sent_by = re.sub(r"[ \t]*:[ \t]*", ":", sent_by.strip(" \t"))
        try:
            host, port = parse_hostport(sent_by)
        except UriError:
            raise ParseError("Malformed Via") from None
        if not all(_TOKEN.fullmatch(part) for part in (name, version, transport)):
            raise ParseError("Malformed Via")
        via = cls(transport.upper(), host, port, parse_params(rest) if semicolon else ())
        via = replace(via, protocol=f"{name.upper()}/{version}")
        if via.ttl is not None and via.ttl > 255:
            raise ParseError("Malformed Via")
        _ = via.rport  # a port out of range is refused
        return via

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def param(self, name: str) -> str | None:
        return _param(self.params, name.lower())

    def has_param(self, name: str) -> bool:
        return any(n == name.lower() for n, _ in self.params)

    def with_param(self, name: str, value: str | None = None) -> Via:
        return replace(self, params=_with_param(self.params, name, value))

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def received(self) -> str | None:
        return self.param("received")

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.param("ttl")
        return None if value is None else parse_number(value, None)

    @property
    def rport_requested(self) -> bool:
        """The client asked for its source port back (RFC 3581 3)."""
        return self.has_param("rport")

    @property
    def rport(self) -> int | None:
        """The port filled in by the server that received the request (RFC 3581 4)."""
        value = self.param("rport")
        return None if value is None else parse_number(value, 65535)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route...).

    RFC 3261 20.10: a URI holding ``,``, ``;`` or ``?`` must be in ``<>``,
    so in the bare form the first ``;`` starts the header parameters.
    """

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        text = value.strip(" \t")
        display: str | None = None
        rest: str | None = None
        if text.startswith('"'):
            display, end = _quoted(text, 0)
            rest = text[end:].lstrip(" \t")
            if not rest.startswith("<"):
                raise ParseError("Malformed name-addr")
        elif "<" in text:
            lt = text.index("<")
            words = [w for w in re.split(r"[ \t]+", text[:lt]) if w]
            if not all(_TOKEN.fullmatch(word) for word in words):
                raise ParseError("Malformed display name")
            display = " ".join(words) if words else None
            rest = text[lt:]
        if rest is not None:
            gt = rest.find(">")
            if gt < 0:
                raise ParseError("Malformed name-addr")
            uri_text, after = rest[1:gt], rest[gt + 1 :]
        else:
            uri_text, semicolon, after = text.partition(";")
            uri_text, after = uri_text.rstrip(" \t"), semicolon + after
            if "?" in uri_text or "," in uri_text:
                raise ParseError("Malformed name-addr")
        try:
            uri = parse_uri(uri_text)
        except UriError as error:
            raise ParseError(error.reason) from None
        return cls(uri, display, _trailing_params(after))

    def __str__(self) -> str:
        params = format_params(self.params)
        if self.display_name is None:
            return f"<{self.uri}>{params}"
        name = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{name}" <{self.uri}>{params}'

    def param(self, name: str) -> str | None:
        return _param(self.params, name.lower())

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return replace(self, params=_with_param(self.params, name, value))

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    @property
    def expires(self) -> int | None:
        """A Contact's own expiry in seconds (RFC 3261 20.10, 10.2.1.1)."""
        value = self.param("expires")
        return None if value is None else parse_number(value, MAX_UINT32)


@dataclass(frozen=True, slots=True)
class CSeq:
    """Sequence number and method (RFC 3261 20.16; below 2**32 by 8.1.1.5)."""

    number: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        match = _CSEQ.fullmatch(value.strip(" \t"))
        if match is None or int(match.group(1)) > MAX_UINT32:
            raise ParseError("Malformed CSeq")
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


class _Message:
    """Header access shared by requests and responses."""

    __slots__ = ()
    headers: Headers
    body: bytes

    @property
    def start_line(self) -> str:
        raise NotImplementedError

    def _with_headers(self, headers: Headers) -> Self:
        raise NotImplementedError

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case, compact form allowed)."""
        key = header_key(name)
        return next((v for n, v in self.headers if header_key(n) == key), None)

    def header_values(self, name: str) -> list[str]:
        """Every field named ``name``, in order, as written."""
        key = header_key(name)
        return [v for n, v in self.headers if header_key(n) == key]

    def list_values(self, name: str) -> list[str]:
        """The comma-separated elements of every ``name`` field (Via, Contact, Route...)."""
        return [item for value in self.header_values(name) for item in split_commas(value)]

    def _required(self, name: str, parse: Callable[[str], T]) -> T:
        value = self.header(name)
        if value is None:
            raise ParseError(f"Missing {name}")
        try:
            return parse(value)
        except ParseError:
            raise ParseError(f"Malformed {name}") from None

    def _optional(self, name: str, parse: Callable[[str], T]) -> T | None:
        return None if self.header(name) is None else self._required(name, parse)

    def _each(self, name: str, parse: Callable[[str], T]) -> list[T]:
        try:
            return [parse(item) for item in self.list_values(name)]
        except ParseError:
            raise ParseError(f"Malformed {name}") from None

    @property
    def call_id(self) -> str:
        return self._required("Call-ID", parse_call_id)

    @property
    def cseq(self) -> CSeq:
        return self._required("CSeq", CSeq.parse)

    @property
    def from_addr(self) -> NameAddr:
        return self._required("From", NameAddr.parse)

    @property
    def to_addr(self) -> NameAddr:
        return self._required("To", NameAddr.parse)

    @property
    def vias(self) -> list[Via]:
        return self._each("Via", Via.parse)

    @property
    def top_via(self) -> Via:
        """The first Via value, the one responses are routed by (18.2.2); later ones unread."""
        values = self.list_values("Via")
        if not values:
            raise ParseError("Missing Via")
        try:
            return Via.parse(values[0])
        except ParseError:
            raise ParseError("Malformed Via") from None

    @property
    def contact_star(self) -> bool:
        """``Contact: *``, which removes every binding of a REGISTER (RFC 3261 10.2.2)."""
        return "*" in self.list_values("Contact")

    @property
    def contacts(self) -> list[NameAddr]:
        """The Contact values but ``*``; a registrar refuses ``*`` mixed with others (10.3)."""
        return [c for c in self._each("Contact", _contact) if c is not None]

    @property
    def routes(self) -> list[NameAddr]:
        return self._each("Route", NameAddr.parse)

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._each("Record-Route", NameAddr.parse)

    @property
    def max_forwards(self) -> int | None:
        return self._optional("Max-Forwards", lambda v: parse_number(v, 255))

    @property
    def expires(self) -> int | None:
        return self._optional("Expires", lambda v: parse_number(v, MAX_UINT32))

    @property
    def content_type(self) -> str | None:
        """The media type of the body in lower case, without parameters."""
        return self._optional("Content-Type", parse_content_type)

    def with_header(self, name: str, value: str) -> Self:
        """A copy with one ``name`` field holding ``value``, where the first one was."""
        key = header_key(name)
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self.headers:
            if header_key(n) != key:
                out.append((n, v))
            elif not placed:
                out.append((n, value))
                placed = True
        if not placed:
            out.append((canonical_name(name), value))
        return self._with_headers(tuple(out))

    def with_header_first(self, name: str, value: str) -> Self:
        """A copy with ``value`` before any other ``name`` field (a new top Via or Route)."""
        key = header_key(name)
        index = next((i for i, (n, _) in enumerate(self.headers) if header_key(n) == key), 0)
        new = (canonical_name(name), value)
        return self._with_headers((*self.headers[:index], new, *self.headers[index:]))

    def without_header(self, name: str) -> Self:
        key = header_key(name)
        return self._with_headers(tuple((n, v) for n, v in self.headers if header_key(n) != key))

    def with_top_via(self, via: Via) -> Self:
        """A copy whose topmost Via is ``via`` (to add ``received`` and ``rport``, RFC 3581 4)."""
        for index, (name, value) in enumerate(self.headers):
            if header_key(name) == "via":
                rest = split_commas(value)[1:]
                field = (name, ", ".join([str(via), *rest]))
                return self._with_headers(
                    (*self.headers[:index], field, *self.headers[index + 1 :])
                )
        raise ParseError("Missing Via")

    def encode(self) -> bytes:
        """The message as sent, with Content-Length from the body.

        Raises ``ValueError`` if a header name or value would break the framing.
        """
        lines = [self.start_line]
        for name, value in self.headers:
            if header_key(name) == "content-length":
                continue
            if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
                raise ValueError(f"header field {name!r} cannot be sent")
            lines.append(f"{name}: {value}")
        if "\r" in lines[0] or "\n" in lines[0]:
            raise ValueError("start line cannot be sent")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.encode()


@dataclass(frozen=True, slots=True)
class Request(_Message):
    method: str
    uri: Uri
    headers: Headers = ()
    body: bytes = b""

    @property
    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def _with_headers(self, headers: Headers) -> Self:
        return replace(self, headers=headers)


@dataclass(frozen=True, slots=True)
class Response(_Message):
    status: int
    reason: str = ""
    headers: Headers = ()
    body: bytes = b""

    @property
    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def _with_headers(self, headers: Headers) -> Self:
        return replace(self, headers=headers)


def new_branch() -> str:
    """A fresh Via branch with the RFC 3261 magic cookie (8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_urlsafe(12)


def new_tag() -> str:
    """A From/To tag: random, with far more than the 32 bits 19.3 asks for."""
    return secrets.token_urlsafe(8)


def new_call_id(host: str | None = None) -> str:
    """A globally unique, unguessable Call-ID (8.1.1.4)."""
    value = secrets.token_urlsafe(16)
    return value if host is None else f"{value}@{host}"


def is_keepalive(data: bytes) -> bool:
    """A datagram of bare CRLFs: a keep-alive, to be ignored (RFC 5626 3.5.1)."""
    return bool(data) and not data.strip(b"\r\n")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """The response to ``request`` by RFC 3261 8.2.6.

    Via, From, Call-ID and CSeq are copied; To too, with ``to_tag`` added
    unless it has a tag already or the status is 100 (8.2.6.2). Record-Route
    is copied into 101-299 responses to dialog-creating requests (12.1.1),
    and Timestamp into 100 (8.2.6.1). ``headers`` follow, then ``body``.
    """
    if not 100 <= status <= 699:
        raise ValueError("status must be between 100 and 699")
    fields = _echoed(request.headers, request.method, status, to_tag)
    text = REASONS.get(status, "") if reason is None else reason
    return Response(status, text, (*fields, *headers), body)


def error_response(error: ParseError) -> Response | None:
    """The answer to a request refused by the parser, or ``None`` if none can be sent.

    A response cannot be routed without a Via (18.2.2), and an ACK is never
    answered (17.2.1). The reason phrase is the error's reason.
    """
    fields = error.headers
    if fields is None or error.method == "ACK":
        return None
    vias = [v for n, v in fields if header_key(n) == "via"]
    try:
        Via.parse(split_commas(vias[0])[0])
    except (ParseError, IndexError):
        return None
    return Response(error.status, error.reason, _echoed(fields, "", error.status, new_tag()))


def _echoed(fields: Headers, method: str, status: int, to_tag: str | None) -> Headers:
    out: list[tuple[str, str]] = []
    for name, value in fields:
        key = header_key(name)
        if key in ("via", "from", "call-id", "cseq"):
            out.append((canonical_name(name), value))
        elif key == "to":
            out.append(("To", value if status == 100 or to_tag is None else _tagged(value, to_tag)))
        elif key == "record-route" and 100 < status < 300 and method in _DIALOG_CREATING:
            out.append(("Record-Route", value))
        elif key == "timestamp" and status == 100:
            out.append(("Timestamp", value))
    return tuple(out)


def _tagged(to: str, tag: str) -> str:
    try:
        if NameAddr.parse(to).tag is not None:
            return to
    except ParseError:
        return to
    return f"{to};tag={tag}"


def parse_datagram(
    data: bytes, limits: Limits = DEFAULT_LIMITS, *, require_max_forwards: bool = True
) -> Request | Response:
    """Parse one UDP datagram as one message (RFC 3261 18.3).

    Without Content-Length the body runs to the end of the datagram; with it,
    it must fit in what remains and any bytes after it are ignored.
    ``require_max_forwards=False`` accepts RFC 2543 requests (RFC 4475 3.4.1).
    """
    if len(data) > limits.max_message_bytes:
        raise ParseError("Message too large", 513)
    data = data.lstrip(b"\r\n")
    match = _HEAD_END.search(data)
    if match is None:
        raise ParseError("Incomplete message")
    start, fields = _split_head(data[: match.start()], limits)
    rest = data[match.end() :]
    try:
        length = _content_length(fields)
        if length is not None and length > len(rest):
            raise ParseError("Content-Length larger than message")
        body = rest if length is None else rest[:length]
        if len(body) > limits.max_body_bytes:
            raise ParseError("Message body too large", 413)
        return _build(start, fields, bytes(body), require_max_forwards)
    except ParseError as error:
        raise _about(error, start, fields) from None


class StreamParser:
    """Frames messages on a stream transport (RFC 3261 18.3), for one connection.

    Call :meth:`feed` with the bytes received, then iterate :meth:`messages`
    until it stops. A :class:`ParseError` raised there concerns one message:
    answer it (:func:`error_response`) and iterate again. If :attr:`broken`
    is then true, framing is lost: send the answer, if any, and close the
    connection. Double CRLFs between messages are keep-alive pings (RFC 5626
    3.5.1); :meth:`take_pings` says how many to answer with one CRLF each.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, *, require_max_forwards: bool = True):
        self.limits = limits
        self._require_max_forwards = require_max_forwards
        self._buffer = bytearray()
        self._scanned = 0
        self._crlfs = 0
        self._pings = 0
        self._pending: tuple[str, list[tuple[str, str]], int, int] | None = None
        self._error: ParseError | None = None

    @property
    def broken(self) -> bool:
        return self._error is not None

    def feed(self, data: bytes) -> None:
        if self._error is None:
            self._buffer += data

    def take_pings(self) -> int:
        pings, self._pings = self._pings, 0
        return pings

    def messages(self) -> Iterator[Request | Response]:
        while (message := self.next_message()) is not None:
            yield message

    def next_message(self) -> Request | Response | None:
        """The next complete message, or ``None`` until more bytes arrive."""
        if self._error is not None:
            raise self._error
        if self._pending is None and not self._read_head():
            return None
        assert self._pending is not None
        start, fields, body_start, length = self._pending
        end = body_start + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[body_start:end])
        del self._buffer[:end]
        self._pending = None
        self._scanned = 0
        try:
            return _build(start, fields, body, self._require_max_forwards)
        except ParseError as error:
            raise _about(error, start, fields) from None

    def _read_head(self) -> bool:
        skipped = 0
        while skipped < len(self._buffer) and self._buffer[skipped] in b"\r\n":
            skipped += 1
        if skipped:
            self._crlfs += self._buffer.count(b"\n", 0, skipped)
            self._pings, self._crlfs = self._pings + self._crlfs // 2, self._crlfs % 2
            del self._buffer[:skipped]
        if not self._buffer:
            return False
        self._crlfs = 0
        limit = self.limits.max_message_bytes
        match = _HEAD_END.search(self._buffer, self._scanned)
        if match is None:
            if len(self._buffer) > limit:
                self._fail(ParseError("Message too large", 513))
            self._scanned = max(0, len(self._buffer) - 3)
            return False
        if match.end() > limit:
            self._fail(ParseError("Message too large", 513))
        try:
            start, fields = _split_head(bytes(self._buffer[: match.start()]), self.limits)
        except ParseError as error:
            self._fail(error)
        try:
            length = _content_length(fields)
            if length is None:
                raise ParseError("Missing Content-Length")
            if length > self.limits.max_body_bytes:
                raise ParseError("Message body too large", 413)
            if match.end() + length > limit:
                raise ParseError("Message too large", 513)
        except ParseError as error:
            self._fail(_about(error, start, fields))
        self._pending = (start, fields, match.end(), length)
        return True

    def _fail(self, error: ParseError) -> NoReturn:
        self._error = error
        self._buffer.clear()
        raise error


def _about(error: ParseError, start: str, fields: list[tuple[str, str]]) -> ParseError:
    """Attach what :func:`error_response` needs when the bad message was a request."""
    if start[:4].upper() != "SIP/":
        error.headers = tuple(fields)
        error.method = start.split(" ", 1)[0]
    return error


def _split_head(head: bytes, limits: Limits) -> tuple[str, list[tuple[str, str]]]:
    """Start line and header fields, compact names expanded, folding undone (7.3.1)."""
    lines = head.decode("utf-8", "surrogateescape").split("\n")
    start = lines[0].removesuffix("\r")
    if "\r" in start:
        raise ParseError("Malformed start line")
    # Past a size limit the rest is still read, so that the 414 or 513 can be sent back.
    too_large: ParseError | None = None
    if len(start) > limits.max_line_length:
        too_large = ParseError("Start line too long", 513 if start[:4].upper() == "SIP/" else 414)
    fields: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw.removesuffix("\r")
        if "\r" in line:
            raise ParseError("Malformed header field")
        if line[:1] in (" ", "\t"):
            if not fields:
                raise ParseError("Malformed header field")
            name, value = fields[-1]
            more = line.strip(" \t")
            fields[-1] = (name, f"{value} {more}" if value and more else value or more)
        else:
            name, colon, value = line.partition(":")
            name = name.rstrip(" \t")
            if not colon or not _TOKEN.fullmatch(name):
                raise ParseError("Malformed header field")
            if len(fields) >= limits.max_header_count:
                too_large = too_large or ParseError("Too many header fields", 513)
                break
            fields.append((canonical_name(name), value.strip(" \t")))
        if len(fields[-1][1]) > limits.max_line_length:
            too_large = too_large or ParseError("Header field too long", 513)
    if too_large is not None:
        kept = [(n, v) for n, v in fields if len(v) <= limits.max_line_length]
        raise _about(too_large, start, kept)
    return start, fields


def _content_length(fields: list[tuple[str, str]]) -> int | None:
    values = [v for n, v in fields if n == "Content-Length"]
    if not values:
        return None
    if len(values) > 1:
        raise ParseError("Multiple Content-Length header fields")
    try:
        return parse_number(values[0])
    except ParseError:
        raise ParseError("Malformed Content-Length") from None


def _check_version(text: str) -> None:
    match = _VERSION.fullmatch(text)
    if match is None:
        raise ParseError("Malformed SIP version")
    if (int(match.group(1)), int(match.group(2))) != (2, 0):
        raise ParseError("Version Not Supported", 505)


def _build(
    start: str, fields: list[tuple[str, str]], body: bytes, require_max_forwards: bool
) -> Request | Response:
    headers = tuple(f for f in fields if f[0] != "Content-Length")
    message: Request | Response
    if start[:4].upper() == "SIP/":
        version, _, rest = start.partition(" ")
        code, _, reason = rest.partition(" ")
        _check_version(version)
        if not _STATUS.fullmatch(code):
            raise ParseError("Malformed status code")
        message = Response(int(code), reason, headers, body)
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not all(parts):
            raise ParseError("Malformed Request-Line")
        method, uri_text, version = parts
        if not _TOKEN.fullmatch(method):
            raise ParseError("Malformed method")
        _check_version(version)
        try:
            uri = parse_uri(uri_text)
        except UriError:
            raise ParseError("Malformed Request-URI") from None
        if isinstance(uri, SipUri) and uri.headers:
            # Header components are not allowed in a Request-URI (19.1.1, table 1).
            raise ParseError("Malformed Request-URI")
        message = Request(method, uri, headers, body)
    _validate(message, require_max_forwards)
    return message


def _validate(message: Request | Response, require_max_forwards: bool) -> None:
    """The checks of RFC 3261 8.1.1 and 8.2.2 that need no state, so later layers can trust it."""
    counts = Counter(name for name, _ in message.headers)
    for name in _MANDATORY:
        if not counts[name]:
            raise ParseError(f"Missing {name}")
    is_request = isinstance(message, Request)
    if is_request and require_max_forwards and not counts["Max-Forwards"]:
        raise ParseError("Missing Max-Forwards")
    for name in _SINGLE:
        if counts[name] > 1:
            raise ParseError(f"Multiple {name} header fields")
    # Each property parses its header: reading them is the check.
    _ = message.call_id, message.from_addr, message.to_addr, message.vias
    if isinstance(message, Request) and message.cseq.method != message.method:
        raise ParseError("CSeq method does not match the request")
    _ = message.cseq, message.max_forwards, message.expires, message.content_type
    _ = message.contacts, message.routes, message.record_routes
    message._optional("Retry-After", _retry_after)
    for warning in message.list_values("Warning"):
        if not re.match(r"[0-9]{3} ", warning):
            raise ParseError("Malformed Warning")


def _contact(value: str) -> NameAddr | None:
    if value == "*":
        return None
    contact = NameAddr.parse(value)
    _ = contact.expires  # an expiry out of range is refused (RFC 4475 3.1.2.4)
    return contact


def _retry_after(value: str) -> int:
    """The delta-seconds leading a Retry-After value (RFC 3261 20.33)."""
    match = re.match(r"[0-9]+", value)
    if match is None:
        raise ParseError("Malformed Retry-After")
    return parse_number(match.group(0), MAX_UINT32)
