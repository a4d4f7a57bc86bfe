"""The durable data model (SQLAlchemy 2.0 typed ORM).

Customers with their history, tiers and contact points; users with skills;
queues; interactions; service tickets with their lifecycle, comments and
change history; callbacks; calendars; the audit and queue logs. Schema
changes go through Alembic migrations in ``store/migrations``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass an aware UTC datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UtcDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


ROLES = ("agent", "supervisor", "admin")
TIERS = ("key", "normal", "small")
CHANNELS = ("voice", "chat")
DIRECTIONS = ("inbound", "outbound")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_CATEGORIES = ("inquiry", "request", "complaint", "fault", "feedback", "other")
CALLBACK_STATUSES = ("pending", "done", "failed", "cancelled")
STRATEGIES = (
    "longest_idle",
    "round_robin",
    "fewest_contacts",
    "least_talk_time",
    "linear",
    "random",
    "ring_all",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint("chat_capacity >= 0", name="chat_capacity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    #: Set for accounts seeded with a published demo password; cleared on change.
    demo_credential: Mapped[bool] = mapped_column(Boolean, default=False)
    sip_extension: Mapped[str | None] = mapped_column(String(32), unique=True)
    #: Digest HA1 = H(username:realm:secret); the secret itself is never stored.
    sip_ha1_md5: Mapped[str | None] = mapped_column(String(32))
    sip_ha1_sha256: Mapped[str | None] = mapped_column(String(64))
    chat_capacity: Mapped[int] = mapped_column(Integer, default=3)
    language: Mapped[str] = mapped_column(String(8), default="en")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Skill(Base):
    __tablename__ = "skills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")


class UserSkill(Base):
    __tablename__ = "user_skills"
    __table_args__ = (CheckConstraint("proficiency BETWEEN 1 AND 5", name="proficiency"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    skill_id: Mapped[int] = mapped_column(
        ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True
    )
    proficiency: Mapped[int] = mapped_column(Integer)


class Queue(Base):
    __tablename__ = "queues"
    __table_args__ = (
        CheckConstraint(_in("strategy", STRATEGIES), name="strategy"),
        CheckConstraint("sl_target_percent BETWEEN 1 AND 100", name="sl_target"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16), default="any")
    strategy: Mapped[str] = mapped_column(String(32), default="longest_idle")
    #: Service level: ``sl_target_percent`` % answered within ``sl_threshold_seconds``.
    sl_target_percent: Mapped[int] = mapped_column(Integer, default=80)
    sl_threshold_seconds: Mapped[int] = mapped_column(Integer, default=20)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    wrapup_seconds: Mapped[int] = mapped_column(Integer, default=30)
    offer_timeout_seconds: Mapped[int] = mapped_column(Integer, default=20)
    max_waiting: Mapped[int | None] = mapped_column(Integer)
    max_wait_seconds: Mapped[int | None] = mapped_column(Integer)
    overflow_queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id"))
    created_at: Mapped[dt.datetime]


class QueueSkill(Base):
    __tablename__ = "queue_skills"
    __table_args__ = (CheckConstraint("min_proficiency BETWEEN 1 AND 5", name="min_proficiency"),)

    queue_id: Mapped[int] = mapped_column(
        ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True
    )
    skill_id: Mapped[int] = mapped_column(
        ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True
    )
    min_proficiency: Mapped[int] = mapped_column(Integer, default=1)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (CheckConstraint(_in("tier", TIERS), name="tier"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    account_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    company: Mapped[str] = mapped_column(String(200), default="")
    tier: Mapped[str] = mapped_column(String(16), default="normal")
    value_score: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class CustomerContact(Base):
    """A phone number (E.164) or e-mail address (lower case) of a customer.

    One table for both so that a lookup by any identity is one indexed query.
    """

    __tablename__ = "customer_contacts"
    __table_args__ = (
        CheckConstraint(_in("kind", ("phone", "email")), name="kind"),
        UniqueConstraint("customer_id", "kind", "value", name="uq_customer_contacts_identity"),
        Index("ix_customer_contacts_lookup", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(254))
    label: Mapped[str] = mapped_column(String(32), default="")


class Interaction(Base):
    __tablename__ = "interactions"
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        CheckConstraint("csat_score IS NULL OR csat_score BETWEEN 1 AND 5", name="csat"),
        Index("ix_interactions_customer_arrived", "customer_id", "arrived_at"),
        Index("ix_interactions_arrived", "arrived_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(8), default="inbound")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: Caller number or chat identity as the customer presented it.
    remote_identity: Mapped[str] = mapped_column(String(254), default="")
    arrived_at: Mapped[dt.datetime]
    queued_at: Mapped[dt.datetime | None]
    offered_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    ivr_path: Mapped[list[str]] = mapped_column(default=list)
    collected: Mapped[dict[str, Any]] = mapped_column(default=dict)
    disposition_code: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str] = mapped_column(Text, default="")
    recording_path: Mapped[str | None] = mapped_column(String(500))
    transcript: Mapped[list[str]] = mapped_column(default=list)
    csat_score: Mapped[int | None] = mapped_column(Integer)
    end_reason: Mapped[str] = mapped_column(String(32), default="")


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("category", TICKET_CATEGORIES), name="category"),
        CheckConstraint(_in("priority", TICKET_PRIORITIES), name="priority"),
        Index("ix_tickets_status_updated", "status", "updated_at"),
        Index("ix_tickets_customer", "customer_id"),
        Index("ix_tickets_assignee", "assignee_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    first_response_due: Mapped[dt.datetime]
    resolution_due: Mapped[dt.datetime]
    first_responded_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    resolution: Mapped[str] = mapped_column(Text, default="")
    csat_score: Mapped[int | None] = mapped_column(Integer)


class TicketInteraction(Base):
    __tablename__ = "ticket_interactions"

    ticket_id: Mapped[str] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    interaction_id: Mapped[str] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True
    )


class TicketComment(Base):
    __tablename__ = "ticket_comments"
    __table_args__ = (Index("ix_ticket_comments_ticket", "ticket_id", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]


class TicketChange(Base):
    """One field of a ticket changed: the ticket's full history."""

    __tablename__ = "ticket_changes"
    __table_args__ = (Index("ix_ticket_changes_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime]


class Callback(Base):
    """A planned follow-up contact (回访) with its outcome."""

    __tablename__ = "callbacks"
    __table_args__ = (
        CheckConstraint(_in("status", CALLBACK_STATUSES), name="status"),
        Index("ix_callbacks_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    ticket_id: Mapped[str | None] = mapped_column(ForeignKey("tickets.id"))
    phone: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[dt.datetime]
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    outcome: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]


class DispositionCode(Base):
    __tablename__ = "disposition_codes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    label_en: Mapped[str] = mapped_column(String(100))
    label_zh: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CannedResponse(Base):
    __tablename__ = "canned_responses"
    __table_args__ = (UniqueConstraint("shortcut", "language", name="uq_canned_shortcut_lang"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)


class BusinessHours(Base):
    """Opening hours of a calendar: one row per weekday span (0 = Monday)."""

    __tablename__ = "business_hours"
    __table_args__ = (CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calendar: Mapped[str] = mapped_column(String(64), default="default")
    weekday: Mapped[int] = mapped_column(Integer)
    opens: Mapped[dt.time] = mapped_column(Time)
    closes: Mapped[dt.time] = mapped_column(Time)


class Holiday(Base):
    __tablename__ = "holidays"
    __table_args__ = (UniqueConstraint("calendar", "day", name="uq_holidays_calendar_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calendar: Mapped[str] = mapped_column(String(64), default="default")
    day: Mapped[dt.date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(100))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime]
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class QueueLogEntry(Base):
    """Every routing event, enough to rebuild any report."""

    __tablename__ = "queue_log"
    __table_args__ = (Index("ix_queue_log_at", "at"), Index("ix_queue_log_contact", "contact_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[dt.datetime]
    contact_id: Mapped[str] = mapped_column(String(36))
    queue: Mapped[str] = mapped_column(String(64), default="")
    agent: Mapped[str] = mapped_column(String(64), default="")
    event: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ChatMessage(Base):
    """One chat message, stored as it arrives (the transcript of a chat contact)."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint(_in("sender", ("customer", "agent", "system")), name="sender"),
        Index("ix_chat_messages_contact", "contact_id", "at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: The interaction id of the chat; its interaction row is written when it ends.
    contact_id: Mapped[str] = mapped_column(String(36))
    sender: Mapped[str] = mapped_column(String(8))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime]


class QueueInterval(Base):
    """Totals of one queue over one 15-minute interval, for reports."""

    __tablename__ = "queue_intervals"
    __table_args__ = (UniqueConstraint("queue", "start", name="uq_queue_intervals_queue_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64))
    start: Mapped[dt.datetime]
    offered: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    answered_in_threshold: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)
    wait_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    handle_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    handled: Mapped[int] = mapped_column(Integer, default=0)


class Webhook(Base):
    """A URL of the company's own systems that receives the live events."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    #: Shared secret for the HMAC signature; shown once when created.
    secret: Mapped[str] = mapped_column(String(100))
    #: Event types to send; empty sends every event.
    events: Mapped[list[str]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime]


class WebhookDelivery(Base):
    """One event for one webhook, retried with backoff until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", ("pending", "delivered", "failed")), name="status"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime]
    delivered_at: Mapped[dt.datetime | None]


class Session(Base):
    __tablename__ = "sessions"

    #: SHA-256 of the cookie value; the value itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    address: Mapped[str] = mapped_column(String(64), default="")


class ApiToken(Base):
    """A bearer token for an integration, acting as its user."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class SpoolCheckpoint(Base):
    """The last spool record applied, written in the same transaction as the record."""

    __tablename__ = "spool_checkpoints"

    spool_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


def table(model: type[Base]) -> Table:
    """The Core table of a model, for bulk statements outside an ORM session."""
    result = model.__table__
    assert isinstance(result, Table)
    return result
