"""The screen pop: what an agent sees of the customer the moment an offer arrives.

The customer is found by the caller's number (E.164), the chat's e-mail or an
account number the IVR collected; a contact whose identity matches nobody
gets a new record, except that a withheld or invalid number never matches
or creates one. Identity the customer merely typed (a chat form) is marked
unverified and earns neither tier priority nor a view of the customer's
tickets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.clock import to_iso, utcnow
from callcenter.phones import to_e164
from callcenter.store.customers import create_customer, load_contacts, lookup
from callcenter.store.models import Customer, Interaction, Ticket

#: How much history a pop carries.
RECENT_INTERACTIONS = 10
OPEN_TICKETS = 20


@dataclass(frozen=True, slots=True)
class Identity:
    phone: str | None = None
    email: str | None = None
    account: str | None = None
    name: str | None = None
    #: True when the company vouched for it (trunk caller ID, signed chat token).
    verified: bool = False


async def find_or_create(db: AsyncSession, identity: Identity, region: str) -> Customer | None:
    """The customer for ``identity`` (the caller commits); ``None`` when nothing identifies it."""
    found = await lookup(
        db, region, phone=identity.phone, email=identity.email, account=identity.account
    )
    if found:
        return found[0]
    phone = to_e164(identity.phone, region) if identity.phone else None
    email = identity.email.strip().lower() if identity.email else None
    if phone is None and email is None:
        return None
    name = (identity.name or "").strip()[:200] or phone or email or ""
    return await create_customer(
        db,
        {"name": name, "phones": [phone] if phone else [], "emails": [email] if email else []},
        region,
    )


async def screen_pop(
    db: AsyncSession,
    identity: Identity,
    region: str,
    collected: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The pop for an offer: customer card, open tickets, recent history, collected data."""
    customer = await find_or_create(db, identity, region)
    pop: dict[str, Any] = {
        "verified": identity.verified,
        "collected": dict(collected or {}),
        "customer": None,
        "open_tickets": [],
        "history": [],
        "at": to_iso(utcnow()),
    }
    if customer is None:
        return pop
    view = (await load_contacts(db, [customer]))[customer.id]
    pop["customer"] = {
        "id": customer.id,
        "name": customer.name,
        "account_number": customer.account_number,
        "company": customer.company,
        # Typed-in identity proves nothing: no tier, so no priority and no VIP badge.
        "tier": customer.tier if identity.verified else None,
        "value_score": customer.value_score if identity.verified else None,
        "phones": view.phones,
        "emails": view.emails,
        "tags": customer.tags,
        "notes": customer.notes if identity.verified else "",
    }
    if not identity.verified:
        return pop
    tickets = await db.execute(
        select(Ticket)
        .where(Ticket.customer_id == customer.id, Ticket.status.not_in(("resolved", "closed")))
        .order_by(Ticket.updated_at.desc())
        .limit(OPEN_TICKETS)
    )
    pop["open_tickets"] = [
        {
            "id": t.id,
            "number": t.number,
            "subject": t.subject,
            "status": t.status,
            "category": t.category,
            "priority": t.priority,
        }
        for t in tickets.scalars()
    ]
    history = await db.execute(
        select(Interaction)
        .where(Interaction.customer_id == customer.id)
        .order_by(Interaction.arrived_at.desc())
        .limit(RECENT_INTERACTIONS)
    )
    pop["history"] = [
        {
            "id": i.id,
            "channel": i.channel,
            "arrived_at": to_iso(i.arrived_at),
            "agent_id": i.agent_id,
            "disposition_code": i.disposition_code,
            "csat_score": i.csat_score,
            "has_recording": i.recording_path is not None,
        }
        for i in history.scalars()
    ]
    return pop
