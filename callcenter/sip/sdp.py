"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for audio calls.

:func:`parse` reads a session description within size limits and raises
:class:`SdpError`, and nothing else, on anything it cannot use. Attributes are
kept in order as written, so a parsed description serializes back as it came;
properties such as :attr:`Media.codecs` and :attr:`Media.direction` read them.

:func:`answer` answers an offer for the media layer, which relays one audio
stream per call: it accepts the first usable ``m=audio`` line with the first
offered codec we support (plus telephone-event, RFC 4733, with the offer's
payload type), mirrors hold, and rejects every other stream with port 0.
:func:`offer` builds our own offer for calls the server places.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

Attribute = tuple[str, str | None]
Lines = tuple[tuple[str, str], ...]

_LINE = re.compile(r"([a-z])=(.*)")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_RTPMAP = re.compile(r"([0-9]{1,3}) ([^/ ]+)/([0-9]{1,6})(?:/([0-9]{1,3}))?")
_FMTP = re.compile(r"([0-9]{1,3}) (.+)")
_PTIME = re.compile(r"[0-9]{1,5}(\.[0-9]+)?")
_DIGITS = re.compile(r"[0-9]{1,20}")
_SESSION_LINES = frozenset("osiuepcbtrzka")
_MEDIA_LINES = frozenset("icbka")
# Serialization order of RFC 4566 5 for the lines kept as they came.
_RANK = {kind: rank for rank, kind in enumerate("iuepcbtrzk")}
_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
_EVENT_NAMES = frozenset({"telephone-event", "cn"})
# Compared with, never bound to.
_NULL_ADDRESSES = frozenset({"0.0.0.0", "::"})  # noqa: S104


class SdpError(ValueError):
    """A description that cannot be used; ``reason`` is safe to send (in a 488's Warning)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Direction(StrEnum):
    """Media direction attributes (RFC 4566 6, RFC 3264 5.1), from the sender's side."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, *, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def mirrored(self) -> Direction:
        """The direction an answerer takes to match this offer (RFC 3264 6.1)."""
        return Direction.of(sends=self.receives, receives=self.sends)


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format: encoding name, clock rate, payload type (RFC 3551)."""

    name: str
    clock_rate: int
    payload_type: int
    channels: int = 1
    fmtp: str | None = None

    def same_format(self, other: Codec) -> bool:
        """Same encoding whatever the payload type number (names are case-insensitive)."""
        return (self.name.lower(), self.clock_rate, self.channels) == (
            other.name.lower(),
            other.clock_rate,
            other.channels,
        )

    @property
    def rtpmap(self) -> str:
        channels = "" if self.channels == 1 else f"/{self.channels}"
        return f"{self.payload_type} {self.name}/{self.clock_rate}{channels}"


PCMU = Codec("PCMU", 8000, 0)
PCMA = Codec("PCMA", 8000, 8)
#: DTMF events 0-15 (RFC 4733 7.1.1); the payload type is the offerer's when answering.
TELEPHONE_EVENT = Codec("telephone-event", 8000, 101, fmtp="0-15")
#: Static payload types that may come without an rtpmap (RFC 3551 6).
STATIC_PAYLOAD_TYPES = {
    0: PCMU,
    3: Codec("GSM", 8000, 3),
    4: Codec("G723", 8000, 4),
    8: PCMA,
    9: Codec("G722", 8000, 9),
    13: Codec("CN", 8000, 13),
    18: Codec("G729", 8000, 18),
}


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line (RFC 4566 5.2); ``version`` goes up with each new offer or answer."""

    username: str
    session_id: str
    version: int
    address: str
    address_type: str = "IP4"
    net_type: str = "IN"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.net_type} {self.address_type} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line (RFC 4566 5.7)."""

    address: str
    address_type: str = "IP4"
    net_type: str = "IN"

    def __str__(self) -> str:
        return f"{self.net_type} {self.address_type} {self.address}"

    @property
    def is_null(self) -> bool:
        """0.0.0.0: the RFC 2543 way to put a call on hold (RFC 3264 8.4)."""
        return self.address.split("/")[0] in _NULL_ADDRESSES


def _attribute(attributes: Iterable[Attribute], name: str) -> list[str | None]:
    return [value for key, value in attributes if key == name]


def _direction(attributes: Iterable[Attribute]) -> Direction | None:
    found = [Direction(key) for key, _ in attributes if key in _DIRECTIONS]
    return found[-1] if found else None


@dataclass(frozen=True, slots=True)
class Media:
    """One ``m=`` section with its ``c=``, attributes and other lines."""

    kind: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    port_count: int | None = None
    lines: Lines = ()

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name``; ``None`` if absent or a flag."""
        values = _attribute(self.attributes, name)
        return values[0] if values else None

    @property
    def rejected(self) -> bool:
        return self.port == 0

    @property
    def is_rtp(self) -> bool:
        return self.protocol.upper().startswith("RTP/")

    @property
    def direction(self) -> Direction | None:
        """This section's own direction attribute, if any."""
        return _direction(self.attributes)

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        return None if value is None else int(float(value))

    @property
    def codecs(self) -> tuple[Codec, ...]:
        """The RTP payload formats in offer order (unknown dynamic ones left out)."""
        if not self.is_rtp:
            return ()
        maps: dict[int, Codec] = {}
        for value in _attribute(self.attributes, "rtpmap"):
            match = _RTPMAP.fullmatch(value or "")
            if match is not None:
                pt, name, rate, channels = match.groups()
                maps[int(pt)] = Codec(name, int(rate), int(pt), int(channels or 1))
        fmtps: dict[int, str] = {}
        for value in _attribute(self.attributes, "fmtp"):
            match = _FMTP.fullmatch(value or "")
            if match is not None:
                fmtps.setdefault(int(match.group(1)), match.group(2))
        out = []
        for fmt in self.formats:
            codec = maps.get(int(fmt)) or STATIC_PAYLOAD_TYPES.get(int(fmt))
            if codec is not None:
                out.append(
                    Codec(
                        codec.name, codec.clock_rate, int(fmt), codec.channels, fmtps.get(int(fmt))
                    )
                )
        return tuple(out)

    @property
    def voice_codec(self) -> Codec | None:
        """The first codec carrying audio (not telephone-event or comfort noise)."""
        return next((c for c in self.codecs if c.name.lower() not in _EVENT_NAMES), None)

    @property
    def event_codec(self) -> Codec | None:
        return next((c for c in self.codecs if c.name.lower() == "telephone-event"), None)


@dataclass(frozen=True, slots=True)
class SessionDescription:
    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    times: tuple[str, ...] = ("0 0",)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[Media, ...] = ()
    lines: Lines = ()

    @property
    def direction(self) -> Direction | None:
        return _direction(self.attributes)

    def direction_of(self, media: Media) -> Direction:
        """A stream's direction: its own, else the session's, else sendrecv (RFC 3264 5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def connection_of(self, media: Media) -> Connection | None:
        return media.connection or self.connection

    def on_hold(self, media: Media) -> bool:
        """Whether the sender of this description holds the stream (RFC 3264 8.4)."""
        connection = self.connection_of(media)
        held = self.direction_of(media) in (Direction.SENDONLY, Direction.INACTIVE)
        return held or (connection is not None and connection.is_null)

    def encode(self) -> bytes:
        return str(self).encode()

    def __str__(self) -> str:
        out = ["v=0", f"o={self.origin}", f"s={self.name}"]
        _emit(out, self.lines, self.connection, self.times, self.attributes)
        for media in self.media:
            count = "" if media.port_count is None else f"/{media.port_count}"
            formats = " ".join(media.formats)
            out.append(f"m={media.kind} {media.port}{count} {media.protocol} {formats}")
            _emit(out, media.lines, media.connection, (), media.attributes)
        return "\r\n".join(out) + "\r\n"


def _emit(
    out: list[str],
    lines: Lines,
    connection: Connection | None,
    times: tuple[str, ...],
    attributes: tuple[Attribute, ...],
) -> None:
    out += [f"{k}={v}" for k, v in lines if _RANK[k] < _RANK["c"]]
    if connection is not None:
        out.append(f"c={connection}")
    out += [f"{k}={v}" for k, v in lines if _RANK[k] == _RANK["b"]]
    out += [f"t={t}" for t in times]
    out += [f"{k}={v}" for k, v in lines if _RANK[k] > _RANK["t"]]
    out += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in attributes]


def parse(data: bytes | str, *, max_bytes: int = 16_384, max_media: int = 16) -> SessionDescription:
    """Read a session description; ``max_bytes`` and ``max_media`` are security limits.

    Lines end in CRLF or LF (RFC 4566 5). A type letter this parser does not
    know makes the whole description unusable, as RFC 4566 5 requires.
    """
    if len(data) > max_bytes:
        raise SdpError("Session description too large")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("Malformed session description") from None
    lines = [line.removesuffix("\r") for line in data.split("\n")]
    lines = [line for line in lines if line]
    if not lines or lines[0] != "v=0":
        raise SdpError("Session description must start with v=0")
    session = _Section()
    media: list[_Section] = []
    for line in lines[1:]:
        match = _LINE.fullmatch(line)
        if match is None or "\r" in line:
            raise SdpError("Malformed line")
        kind, value = match.groups()
        if kind == "m":
            if len(media) >= max_media:
                raise SdpError("Too many media streams")
            media.append(_Section(media=_media_line(value)))
        elif kind in (_MEDIA_LINES if media else _SESSION_LINES):
            (media[-1] if media else session).add(kind, value)
        else:
            raise SdpError(f"Unexpected {kind}= line")
    if session.origin is None or session.name is None or not session.times:
        raise SdpError("Missing o=, s= or t= line")
    return SessionDescription(
        origin=session.origin,
        name=session.name,
        connection=session.connection,
        times=tuple(session.times),
        attributes=tuple(session.attributes),
        media=tuple(section.build() for section in media),
        lines=tuple(sorted(session.lines, key=lambda kv: _RANK[kv[0]])),
    )


class _Section:
    """Lines of the session or of one media section while parsing."""

    def __init__(self, media: Media | None = None) -> None:
        self.media = media
        self.origin: Origin | None = None
        self.name: str | None = None
        self.connection: Connection | None = None
        self.times: list[str] = []
        self.attributes: list[Attribute] = []
        self.lines: list[tuple[str, str]] = []

    def add(self, kind: str, value: str) -> None:
        if kind == "o" and self.origin is None:
            self.origin = _origin(value)
        elif kind == "s" and self.name is None:
            self.name = value
        elif kind == "c" and self.connection is None:
            self.connection = _connection(value)
        elif kind == "t":
            if not re.fullmatch(r"[0-9]{1,20} [0-9]{1,20}", value):
                raise SdpError("Malformed t= line")
            self.times.append(value)
        elif kind == "a":
            self.attributes.append(_attribute_line(value, self.media))
        elif kind in "iuepbrzk":
            self.lines.append((kind, value))
        else:
            raise SdpError(f"Repeated {kind}= line")

    def build(self) -> Media:
        assert self.media is not None
        m = self.media
        lines = tuple(sorted(self.lines, key=lambda kv: _RANK[kv[0]]))
        attrs = tuple(self.attributes)
        return Media(
            m.kind, m.port, m.protocol, m.formats, self.connection, attrs, m.port_count, lines
        )


def _origin(value: str) -> Origin:
    fields = value.split(" ")
    if len(fields) != 6 or not _DIGITS.fullmatch(fields[1]) or not _DIGITS.fullmatch(fields[2]):
        raise SdpError("Malformed o= line")
    return Origin(fields[0], fields[1], int(fields[2]), fields[5], fields[4], fields[3])


def _connection(value: str) -> Connection:
    fields = value.split(" ")
    if len(fields) != 3 or not all(fields):
        raise SdpError("Malformed c= line")
    return Connection(fields[2], fields[1], fields[0])


def _media_line(value: str) -> Media:
    fields = value.split(" ")
    if len(fields) < 4 or not all(fields):
        raise SdpError("Malformed m= line")
    kind, port_text, protocol, *formats = fields
    port, slash, count = port_text.partition("/")
    if not port.isdigit() or int(port) > 65535 or (slash and not count.isdigit()):
        raise SdpError("Malformed m= line")
    if not _TOKEN.fullmatch(kind) or not all(_TOKEN.fullmatch(f) for f in formats):
        raise SdpError("Malformed m= line")
    if protocol.upper().startswith("RTP/") and not all(
        f.isdigit() and int(f) < 128 for f in formats
    ):
        raise SdpError("Malformed m= line")
    port_count = int(count[:6]) if slash else None
    return Media(kind, int(port), protocol, tuple(formats), port_count=port_count)


def _attribute_line(value: str, media: Media | None) -> Attribute:
    name, colon, content = value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise SdpError("Malformed a= line")
    rtp = media is not None and media.is_rtp
    if name == "rtpmap" and rtp:
        match = _RTPMAP.fullmatch(content)
        if match is None or int(match.group(1)) > 127 or int(match.group(3)) == 0:
            raise SdpError("Malformed rtpmap")
    elif name == "fmtp" and rtp and not _FMTP.fullmatch(content):
        raise SdpError("Malformed fmtp")
    elif name == "ptime" and (not _PTIME.fullmatch(content) or float(content) < 1):
        raise SdpError("Malformed ptime")
    return (name, content if colon else None)


def _new_session_id() -> str:
    return str(secrets.randbelow(10**12))


def _audio(codecs: Sequence[Codec], port: int, direction: Direction, ptime: int) -> Media:
    attributes: list[Attribute] = []
    for codec in codecs:
        attributes.append(("rtpmap", codec.rtpmap))
        if codec.fmtp is not None:
            attributes.append(("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    attributes += [("ptime", str(ptime)), (direction.value, None)]
    formats = tuple(str(codec.payload_type) for codec in codecs)
    return Media("audio", port, "RTP/AVP", formats, attributes=tuple(attributes))


def _session(
    address: str, media: tuple[Media, ...], session_id: str | None, version: int
) -> SessionDescription:
    try:
        address_type = "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    except ValueError:
        address_type = "IP4"  # a host name (RFC 4566 5.7 allows one)
    origin = Origin("-", session_id or _new_session_id(), version, address, address_type)
    return SessionDescription(origin, "-", Connection(address, address_type), media=media)


def offer(
    codecs: Sequence[Codec],
    our_address: str,
    our_port: int,
    direction: Direction = Direction.SENDRECV,
    *,
    ptime: int = 20,
    session_id: str | None = None,
    version: int = 0,
) -> SessionDescription:
    """Our offer of one audio stream with ``codecs`` in order of preference (RFC 3264 5)."""
    return _session(our_address, (_audio(codecs, our_port, direction, ptime),), session_id, version)


def answer(
    offer: SessionDescription,
    supported_codecs: Sequence[Codec],
    our_address: str,
    our_port: int,
    direction: Direction = Direction.SENDRECV,
    *,
    ptimes: tuple[int, ...] = (10, 20, 30),
    default_ptime: int = 20,
    session_id: str | None = None,
    version: int = 0,
) -> SessionDescription:
    """Answer ``offer`` (RFC 3264 6): one m-line per offered one, in the same order.

    The first ``m=audio`` RTP/AVP stream that offers a codec in
    ``supported_codecs`` is accepted with that codec, keeping the offer's
    payload types (6.1), and with telephone-event if both sides have it.
    Every other stream is rejected with port 0. The answer's direction is
    the offer's mirrored, narrowed by ``direction``; an offer with
    ``c=0.0.0.0`` counts as sendonly (RFC 3264 8.4). A ``ptime`` offered in
    ``ptimes`` is echoed, otherwise ``default_ptime`` is used.
    """
    voice = [c for c in supported_codecs if c.name.lower() not in _EVENT_NAMES]
    events = [c for c in supported_codecs if c.name.lower() == "telephone-event"]
    accepted = False
    streams: list[Media] = []
    for media in offer.media:
        usable = (
            media.kind == "audio" and not media.rejected and media.protocol.upper() == "RTP/AVP"
        )
        codecs = _choose(media, voice, events) if usable and not accepted else []
        if not codecs:
            streams.append(Media(media.kind, 0, media.protocol, media.formats))
            continue
        accepted = True
        theirs = offer.direction_of(media)
        connection = offer.connection_of(media)
        if connection is not None and connection.is_null and theirs is Direction.SENDRECV:
            theirs = Direction.SENDONLY
        mirrored = theirs.mirrored()
        ours = Direction.of(
            sends=mirrored.sends and direction.sends,
            receives=mirrored.receives and direction.receives,
        )
        ptime = media.ptime if media.ptime in ptimes else default_ptime
        streams.append(_audio(codecs, our_port, ours, ptime or default_ptime))
    return _session(our_address, tuple(streams), session_id, version)


def _choose(media: Media, voice: list[Codec], events: list[Codec]) -> list[Codec]:
    """The offered voice codec we take first, and telephone-event at the same rate if any."""
    offered = media.codecs
    for codec in offered:
        ours = next((v for v in voice if v.same_format(codec)), None)
        if ours is None:
            continue
        chosen = [
            Codec(codec.name, codec.clock_rate, codec.payload_type, codec.channels, ours.fmtp)
        ]
        event = next(
            (
                c
                for c in offered
                if c.name.lower() == "telephone-event" and c.clock_rate == codec.clock_rate
            ),
            None,
        )
        if event is not None and events:
            chosen.append(
                Codec(event.name, event.clock_rate, event.payload_type, fmtp=events[0].fmtp)
            )
        return chosen
    return []
