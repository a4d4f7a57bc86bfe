"""Server settings: TOML files with ``CALLCENTER_<SECTION>_<KEY>`` overrides.

Settings describe how this server runs (addresses, limits, paths). Business
data (users, queues, customers) lives in the database instead. Every key is
declared here with its type and bounds, so a wrong key or value stops start-up
with a message naming the key and what was expected.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "CALLCENTER_"
#: Environment variables with this prefix that are not setting overrides.
ENV_RESERVED = frozenset({"CALLCENTER_CONFIG"})


class ConfigError(ValueError):
    """A setting is unknown or has a value of the wrong kind."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"setting {key}: {problem}")
        self.key = key
        self.problem = problem


def _bounds(low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {"low": low, "high": high}


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=_bounds(0, 65535))
    #: Largest request body accepted (a security limit).
    max_body_bytes: int = field(default=1_048_576, metadata=_bounds(1024, 64 * 1_048_576))
    #: Public origin (scheme://host[:port]) the consoles are reached at behind a
    #: proxy; websockets from it are accepted as the server's own.
    public_url: str = ""
    #: Folder of the browser consoles (console, wallboard, widget); empty means
    #: the ``agent_console`` folder shipped beside the package.
    console_directory: str = ""


@dataclass(frozen=True, slots=True)
class SipSettings:
    host: str = "127.0.0.1"
    port: int = field(default=5060, metadata=_bounds(0, 65535))
    #: Address put in Via, Contact and SDP; empty means ``host``.
    advertised_address: str = ""
    #: Digest realm of agent extensions; stored HA1 hashes depend on it.
    realm: str = "callcenter"
    #: Listen for SIP at all (UDP and TCP on ``port``).
    enabled: bool = True
    #: Addresses (IPs or CIDR networks) of trunks whose INVITEs are taken
    #: without authentication; anyone else must be an authenticated agent.
    trunks: list[str] = field(default_factory=list)
    #: Key of the digest nonces; nodes sharing it accept each other's nonces.
    #: Empty: a random key per start (phones simply re-authenticate).
    nonce_secret: str = ""
    #: Receive buffer of the SIP UDP socket (bytes). The system default (about
    #: 200 KB on Linux) overflows under bursts of calls; the kernel caps the
    #: value at net.core.rmem_max.
    udp_receive_buffer_bytes: int = field(default=4_194_304, metadata=_bounds(65_536, 1 << 30))
    #: Digest algorithms offered, one challenge each, in this order. RFC 8760
    #: puts the strongest first; some clients (SIPp among them) only ever
    #: answer the first challenge, so list MD5 first for them.
    digest_algorithms: list[str] = field(default_factory=lambda: ["SHA-256", "MD5"])
    #: How long a digest nonce is good for, in seconds.
    nonce_lifetime_seconds: int = field(default=300, metadata=_bounds(10, 86_400))
    #: Session timers (RFC 4028) on calls we answer: the interval we ask callers
    #: that support them to refresh within, and the shortest we accept (422
    #: below it; RFC 4028 sets 90 s as the floor, lower only for tests).
    session_expires_seconds: int = field(default=1800, metadata=_bounds(1, 86_400))
    min_session_expires_seconds: int = field(default=90, metadata=_bounds(1, 86_400))
    #: RFC 3261 timers T1, T2 and T4, in milliseconds.
    t1_ms: int = field(default=500, metadata=_bounds(10, 10_000))
    t2_ms: int = field(default=4000, metadata=_bounds(10, 60_000))
    t4_ms: int = field(default=5000, metadata=_bounds(10, 60_000))
    #: Registration expiry floor (shorter requests get 423) and ceiling, seconds.
    min_expires: int = field(default=60, metadata=_bounds(1, 86_400))
    max_expires: int = field(default=3600, metadata=_bounds(1, 86_400))
    #: Failed digest attempts from one address within the window before it is
    #: refused for ``auth_lockout_seconds`` (doubling while it keeps trying).
    auth_max_failures: int = field(default=10, metadata=_bounds(1, 10_000))
    auth_window_seconds: int = field(default=60, metadata=_bounds(1, 86_400))
    auth_lockout_seconds: int = field(default=60, metadata=_bounds(1, 86_400))


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """Calls: which number reaches which IVR flow, media, prompts and recordings."""

    #: Dialled number -> IVR flow (the name of a YAML file in ``flows_directory``).
    numbers: dict[str, str] = field(default_factory=dict)
    #: Folder of the IVR flows; empty means the ``ivr_flows`` folder shipped
    #: beside the package.
    flows_directory: str = ""
    #: Folder of audio files flows play (``play`` steps, music on hold): WAV,
    #: 8 kHz, mono, 16-bit. Empty means ``sounds`` inside ``flows_directory``.
    sounds_directory: str = ""
    #: Address RTP is bound to and announced in SDP; empty means ``sip.host``
    #: (or ``sip.advertised_address`` in SDP).
    media_address: str = ""
    #: Even RTP ports are taken from this range, one per call leg.
    rtp_first_port: int = field(default=20000, metadata=_bounds(1024, 65534))
    rtp_last_port: int = field(default=29999, metadata=_bounds(1025, 65535))
    #: A call with no RTP from the caller this long is taken for dead (its BYE
    #: was lost) and cleared.
    rtp_timeout_seconds: int = field(default=60, metadata=_bounds(5, 3600))
    #: Where calls are recorded (one WAV each) and TTS prompts cached.
    recordings_directory: str = "var/recordings"
    prompt_cache_directory: str = "var/prompts"
    #: Language -> vosk model folder; menus in a language without one take keys only.
    speech_models: dict[str, str] = field(default_factory=dict)
    #: On SIGTERM, new calls are refused (503) and calls in progress get this
    #: long to finish before the server stops.
    drain_seconds: int = field(default=300, metadata=_bounds(0, 86_400))
    #: How long a supervisor's phone rings to listen in on a call before the
    #: request is dropped.
    monitor_ring_seconds: int = field(default=30, metadata=_bounds(5, 300))


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    """Outbound calls: the trunk they go through, how numbers are rewritten, who may dial what."""

    #: The trunk (SIP provider or PBX) outbound calls are sent to: an address or
    #: host name. Empty: no outbound calls.
    host: str = ""
    port: int = field(default=5060, metadata=_bounds(1, 65535))
    transport: str = "udp"
    #: Digest credentials for a trunk that challenges our INVITEs (401 or 407).
    username: str = ""
    password: str = ""
    #: Number presented to the called party, in From and P-Asserted-Identity
    #: (RFC 3325); empty: anonymous (RFC 3323).
    caller_id: str = ""
    #: G.711 law offered on both legs (PCMA is usual in China and Europe, PCMU
    #: in North America).
    codec: str = "PCMA"
    #: Rewrites of the dialled number, in order: each ``{pattern, replace}``
    #: whose pattern (a regular expression) matches the whole number replaces
    #: it (``\1`` for a group); the next rule sees the result.
    dial_rules: list[dict[str, str]] = field(default_factory=list)
    #: Role -> patterns of the numbers it may dial (after the dial rules, each
    #: matched against the whole number). A role not listed dials nothing: by
    #: default nobody can call out.
    allow: dict[str, list[str]] = field(default_factory=dict)
    #: How long the agent's phone, then the customer's, may ring unanswered.
    agent_ring_seconds: int = field(default=30, metadata=_bounds(5, 600))
    customer_ring_seconds: int = field(default=60, metadata=_bounds(5, 600))
    #: Ring agents for their pending callbacks once due (when they are available).
    dial_due_callbacks: bool = True
    #: How often due callbacks are looked for.
    callback_poll_seconds: float = field(default=30.0, metadata=_bounds(0.1, 3600))


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    #: SQLAlchemy URL: ``sqlite+aiosqlite:///path.db`` or ``postgresql+asyncpg://...``.
    url: str = "sqlite+aiosqlite:///var/callcenter.db"
    #: Apply Alembic migrations when the server starts.
    upgrade_on_start: bool = True
    pool_size: int = field(default=10, metadata=_bounds(1, 200))
    #: Seconds to wait for a connection or a statement before calling the database down.
    timeout_seconds: float = field(default=5.0, metadata=_bounds(0.1, 300))


@dataclass(frozen=True, slots=True)
class RedisSettings:
    #: Empty: live state stays in this process. ``redis://host:port/db`` shares it.
    url: str = ""
    key_prefix: str = "cc:"


@dataclass(frozen=True, slots=True)
class SpoolSettings:
    #: Folder of the durable spool that interactions and tickets pass through.
    directory: str = "var/spool"
    #: Records applied to the database in one transaction at most.
    batch_size: int = field(default=256, metadata=_bounds(1, 10_000))
    #: A spool segment file is closed and a new one begun past this size.
    segment_bytes: int = field(default=16 * 1_048_576, metadata=_bounds(4096, 1 << 32))
    #: Largest single record (a security limit).
    max_record_bytes: int = field(default=1_048_576, metadata=_bounds(1024, 64 * 1_048_576))
    #: Longest pause between retries while the database is unreachable.
    max_retry_seconds: float = field(default=5.0, metadata=_bounds(0.05, 300))
    #: How long an API request waits for its record to reach the database
    #: before answering 202 (recorded, not yet applied).
    apply_wait_seconds: float = field(default=3.0, metadata=_bounds(0, 60))


@dataclass(frozen=True, slots=True)
class AuthSettings:
    session_ttl_seconds: int = field(default=8 * 3600, metadata=_bounds(60, 30 * 86400))
    #: Sessions idle this long expire before their time-to-live.
    session_idle_seconds: int = field(default=3600, metadata=_bounds(60, 30 * 86400))
    #: Failed logins per account (or per address) within the window before throttling.
    login_max_failures: int = field(default=5, metadata=_bounds(1, 1000))
    login_window_seconds: int = field(default=300, metadata=_bounds(1, 86400))
    #: Lock-out after the limit; doubles with each further failure up to an hour.
    login_lockout_seconds: int = field(default=30, metadata=_bounds(1, 3600))
    #: Mark session cookies Secure (set when served over HTTPS).
    secure_cookies: bool = False


@dataclass(frozen=True, slots=True)
class SiteSettings:
    #: IANA time zone for business hours, SLA clocks and reports.
    time_zone: str = "UTC"
    #: Region (ISO 3166 alpha-2) assumed for phone numbers written without a country code.
    default_region: str = "CN"
    default_language: str = "en"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    default_page_size: int = field(default=50, metadata=_bounds(1, 1000))
    max_page_size: int = field(default=200, metadata=_bounds(1, 1000))


@dataclass(frozen=True, slots=True)
class TicketSettings:
    #: Hours to first response and to resolution, by priority.
    first_response_hours: dict[str, float] = field(
        default_factory=lambda: {"urgent": 1, "high": 4, "normal": 8, "low": 24}
    )
    resolution_hours: dict[str, float] = field(
        default_factory=lambda: {"urgent": 8, "high": 24, "normal": 72, "low": 120}
    )
    #: Complaints are handled faster: a complaint never has less than this priority.
    complaint_min_priority: str = "high"


@dataclass(frozen=True, slots=True)
class ChatSettings:
    #: Origins (scheme://host[:port]) whose pages may open the chat widget's
    #: websocket; the server's own origin is always allowed.
    allowed_origins: list[str] = field(default_factory=list)
    #: Shared secret with which the company's site signs identity tokens;
    #: empty disables verified chat identities.
    identity_secret: str = ""
    #: A customer who reconnects within this time keeps the conversation.
    resume_grace_seconds: int = field(default=120, metadata=_bounds(0, 3600))
    #: Limits per client address (security limits).
    max_new_per_minute: int = field(default=10, metadata=_bounds(1, 10_000))
    max_messages_per_minute: int = field(default=60, metadata=_bounds(1, 100_000))
    max_message_chars: int = field(default=4000, metadata=_bounds(1, 100_000))
    #: Queue for chats that name none.
    default_queue: str = "chat"


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """How the ACD router decides; the score formula is in ``acd/priority.py``."""

    #: Seconds of head start by customer tier (verified identities only).
    tier_bonus_key: float = field(default=150.0, metadata=_bounds(0, 86_400))
    tier_bonus_normal: float = field(default=30.0, metadata=_bounds(0, 86_400))
    tier_bonus_small: float = field(default=0.0, metadata=_bounds(0, 86_400))
    #: Seconds of head start per level of queue priority and of IVR priority.
    queue_bonus_per_level: float = field(default=1.0, metadata=_bounds(0, 86_400))
    ivr_bonus_per_level: float = field(default=60.0, metadata=_bounds(0, 86_400))
    #: What an agent becomes after letting an offer ring out.
    missed_offer_presence: str = "away"
    missed_offer_reason: str = "missed"
    #: A call takes the agent whole: no chats beside a call, no call beside chats.
    voice_is_exclusive: bool = True


@dataclass(frozen=True, slots=True)
class CtiSettings:
    #: Events kept for consoles that reconnect; older gaps get a fresh snapshot.
    replay_window: int = field(default=10_000, metadata=_bounds(1, 10_000_000))
    #: An agent whose console stays disconnected this long goes offline.
    agent_grace_seconds: int = field(default=60, metadata=_bounds(0, 3600))
    #: Append a handled contact to the customer's open ticket instead of opening one.
    append_to_open_ticket: bool = False
    #: How often the 15-minute interval totals are saved for reports.
    interval_flush_seconds: float = field(default=60.0, metadata=_bounds(1, 900))


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    #: Deliver to loopback, link-local and private addresses (off: a webhook
    #: must not become a way into the server's own network).
    allow_private_targets: bool = False
    timeout_seconds: float = field(default=10.0, metadata=_bounds(0.5, 120))
    #: Attempts before a delivery is given up (backoff doubles up to an hour).
    max_attempts: int = field(default=12, metadata=_bounds(1, 100))
    #: Wait before the first retry; each further one waits twice as long.
    retry_base_seconds: float = field(default=5.0, metadata=_bounds(0.01, 3600))
    #: How often the sender looks for due deliveries.
    poll_seconds: float = field(default=1.0, metadata=_bounds(0.05, 60))


@dataclass(frozen=True, slots=True)
class Settings:
    #: ``production`` or ``demo``; demo seeds data and allows its known passwords.
    mode: str = "production"
    http: HttpSettings = field(default_factory=HttpSettings)
    sip: SipSettings = field(default_factory=SipSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    site: SiteSettings = field(default_factory=SiteSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    tickets: TicketSettings = field(default_factory=TicketSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    cti: CtiSettings = field(default_factory=CtiSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    #: Demo seed data (``[seed]`` tables), validated by :mod:`callcenter.demo`.
    seed: dict[str, Any] = field(default_factory=dict)


_CHOICES: dict[str, frozenset[str]] = {
    "mode": frozenset({"production", "demo"}),
    "tickets.complaint_min_priority": frozenset({"low", "normal", "high", "urgent"}),
    "site.default_language": frozenset({"en", "zh-CN"}),
    "routing.missed_offer_presence": frozenset({"away", "available"}),
    "outbound.transport": frozenset({"udp", "tcp"}),
    "outbound.codec": frozenset({"PCMU", "PCMA"}),
}
#: Roles of users (``store.models.ROLES``), for settings given per role.
_ROLES = frozenset({"agent", "supervisor", "admin"})
#: What a trunk host may look like: an IP address or a DNS name.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+")
#: What a caller ID may hold.
_NUMBER = re.compile(r"\+?[0-9]{1,32}")


def _coerce(key: str, tp: Any, value: Any, from_env: bool) -> Any:
    if from_env and isinstance(value, str):
        value = _parse_env(key, tp, value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    origin = typing.get_origin(tp)
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if item_type is not str:
            if not isinstance(value, list):
                raise ConfigError(key, f"expected an array of tables, got {value!r}")
            return [_coerce(f"{key}[{i}]", item_type, v, False) for i, v in enumerate(value)]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, f"expected an array of strings, got {value!r}")
        return list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table, got {value!r}")
        _, value_type = typing.get_args(tp)
        if value_type is Any:
            return dict(value)
        return {k: _coerce(f"{key}.{k}", value_type, v, False) for k, v in value.items()}
    raise ConfigError(key, f"unsupported setting type {tp!r}")  # pragma: no cover


def _parse_env(key: str, tp: Any, raw: str) -> Any:
    if tp is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(key, f"expected true or false, got {raw!r}")
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(key, f"expected an integer, got {raw!r}") from None
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(key, f"expected a number, got {raw!r}") from None
    if tp is str:
        return raw
    if typing.get_origin(tp) is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    raise ConfigError(key, "cannot be set from the environment; set it in the TOML file")


def _check(key: str, spec: dataclasses.Field[Any], value: Any) -> None:
    low, high = spec.metadata.get("low"), spec.metadata.get("high")
    if low is not None and value < low:
        raise ConfigError(key, f"expected at least {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(key, f"expected at most {high}, got {value!r}")
    choices = _CHOICES.get(key)
    if choices is not None and value not in choices:
        raise ConfigError(key, f"expected one of {', '.join(sorted(choices))}, got {value!r}")


def _build(cls: Any, data: Mapping[str, Any], prefix: str, env: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{prefix}{key}", f"unknown setting (known here: {known})")
    kwargs: dict[str, Any] = {}
    for name, spec in names.items():
        key = f"{prefix}{name}"
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            sub = data.get(name, {})
            if not isinstance(sub, dict):
                raise ConfigError(key, f"expected a table, got {sub!r}")
            kwargs[name] = _build(tp, sub, f"{key}.", env)
            continue
        env_name = ENV_PREFIX + key.replace(".", "_").upper()
        if env_name in env:
            value = _coerce(key, tp, env[env_name], True)
        elif name in data:
            value = _coerce(key, tp, data[name], False)
        else:
            continue
        if not isinstance(value, dict | list):
            _check(key, spec, value)
        kwargs[name] = value
    return cls(**kwargs)


def _known_env_names(cls: Any = Settings, prefix: str = "") -> set[str]:
    names: set[str] = set()
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        tp = hints[spec.name]
        key = f"{prefix}{spec.name}"
        if dataclasses.is_dataclass(tp):
            names |= _known_env_names(tp, f"{key}.")
        elif not isinstance(tp, types.GenericAlias) or typing.get_args(tp) == (str,):
            names.add(ENV_PREFIX + key.replace(".", "_").upper())
    return names


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (TOML) with environment overrides.

    Raises :class:`ConfigError` naming the first wrong key or value.
    """
    env = os.environ if env is None else env
    if path is None:
        path = env.get("CALLCENTER_CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("config", f"file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    known = _known_env_names()
    for name in env:
        if name.startswith(ENV_PREFIX) and name not in known and name not in ENV_RESERVED:
            raise ConfigError(name, "unknown environment override")
    settings: Settings = _build(Settings, data, "", env)
    _check_cross(settings)
    return settings


def _check_cross(settings: Settings) -> None:
    try:
        zoneinfo.ZoneInfo(settings.site.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "site.time_zone", f"expected an IANA time zone, got {settings.site.time_zone!r}"
        ) from None
    url = settings.database.url
    if not (url.startswith("sqlite+aiosqlite://") or url.startswith("postgresql+asyncpg://")):
        raise ConfigError(
            "database.url",
            "expected sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB",
        )
    if settings.redis.url and not settings.redis.url.startswith(("redis://", "rediss://")):
        raise ConfigError("redis.url", "expected empty or redis://HOST:PORT/DB")
    sip = settings.sip
    if not sip.digest_algorithms or not set(sip.digest_algorithms) <= {"MD5", "SHA-256"}:
        raise ConfigError("sip.digest_algorithms", "expected some of MD5 and SHA-256")
    for trunk in sip.trunks:
        try:
            ipaddress.ip_network(trunk, strict=False)
        except ValueError:
            raise ConfigError(
                "sip.trunks", f"expected IP addresses or networks, got {trunk!r}"
            ) from None
    if settings.voice.rtp_first_port >= settings.voice.rtp_last_port:
        raise ConfigError("voice.rtp_first_port", "expected below voice.rtp_last_port")
    if sip.min_expires > sip.max_expires:
        raise ConfigError("sip.min_expires", "expected at most sip.max_expires")
    if settings.api.default_page_size > settings.api.max_page_size:
        raise ConfigError("api.default_page_size", "expected at most api.max_page_size")
    for table in ("first_response_hours", "resolution_hours"):
        hours = getattr(settings.tickets, table)
        for priority in ("low", "normal", "high", "urgent"):
            if priority not in hours or hours[priority] <= 0:
                raise ConfigError(
                    f"tickets.{table}.{priority}", "expected a positive number of hours"
                )
    if len(settings.site.default_region) != 2 or not settings.site.default_region.isalpha():
        raise ConfigError("site.default_region", "expected a two-letter region code such as CN")
    _check_outbound(settings.outbound)


def _check_outbound(outbound: OutboundSettings) -> None:
    if outbound.host and not _HOST.fullmatch(outbound.host):
        raise ConfigError(
            "outbound.host", f"expected an address or host name, got {outbound.host!r}"
        )
    if bool(outbound.username) != bool(outbound.password):
        raise ConfigError("outbound.password", "expected both username and password, or neither")
    if outbound.caller_id and not _NUMBER.fullmatch(outbound.caller_id):
        raise ConfigError("outbound.caller_id", "expected a number such as +861012345678")
    for index, rule in enumerate(outbound.dial_rules):
        key = f"outbound.dial_rules[{index}]"
        if set(rule) != {"pattern", "replace"}:
            raise ConfigError(key, "expected a table with pattern and replace")
        try:
            re.compile(rule["pattern"]).sub(rule["replace"], "")
        except re.error as error:
            raise ConfigError(key, f"not a usable regular expression: {error}") from None
    for role, patterns in outbound.allow.items():
        if role not in _ROLES:
            raise ConfigError(
                f"outbound.allow.{role}", f"expected one of {', '.join(sorted(_ROLES))}"
            )
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ConfigError(
                    f"outbound.allow.{role}", f"{pattern!r} is not a regular expression: {error}"
                ) from None
    if any(outbound.allow.values()) and not outbound.host:
        raise ConfigError(
            "outbound.host", "expected the trunk's address when outbound.allow permits numbers"
        )
