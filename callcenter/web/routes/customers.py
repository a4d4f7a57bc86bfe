"""Customers: records with contact points, tier and history (screen-pop data)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from callcenter.clock import to_iso
from callcenter.store.customers import (
    CustomerInputError,
    CustomerView,
    create_customer,
    load_contacts,
    lookup,
    search_query,
    update_customer,
)
from callcenter.store.models import TIERS, Customer, Interaction, Ticket
from callcenter.web.api import Call, one
from callcenter.web.errors import ApiError
from callcenter.web.paging import PAGING, paginate
from callcenter.web.routes import api
from callcenter.web.schema import Int, List, Str, obj, optional

PHONE = Str(max_length=40, min_length=1)
CUSTOMER = obj(
    ("name",),
    name=Str(max_length=200, min_length=1),
    account_number=Str(max_length=64, min_length=1, pattern=r"[A-Za-z0-9._\-]+", nullable=True),
    company=Str(max_length=200),
    tier=Str(choices=TIERS),
    value_score=Int(minimum=0, maximum=1_000_000_000),
    notes=Str(max_length=10_000, strip=False),
    tags=List(Str(max_length=40, min_length=1), max_items=30),
    language=Str(max_length=8, choices=("", "en", "zh-CN")),
    phones=List(PHONE, max_items=10),
    emails=List(Str(max_length=254, min_length=3), max_items=10),
)
SEARCH = obj(q=Str(max_length=100), tier=Str(choices=TIERS), **PAGING)
LOOKUP = obj(phone=PHONE, email=Str(max_length=254), account=Str(max_length=64))


def customer_json(view: CustomerView) -> dict[str, Any]:
    c = view.customer
    return {
        "id": c.id,
        "name": c.name,
        "account_number": c.account_number,
        "company": c.company,
        "tier": c.tier,
        "value_score": c.value_score,
        "notes": c.notes,
        "tags": c.tags,
        "language": c.language,
        "phones": view.phones,
        "emails": view.emails,
        "created_at": to_iso(c.created_at),
        "updated_at": to_iso(c.updated_at),
    }


def _input_error(exc: CustomerInputError) -> ApiError:
    status = 409 if exc.field == "account_number" else 422
    code = "conflict" if status == 409 else "invalid_field"
    return ApiError(status, code, exc.message, {"field": f"body.{exc.field}"})


@api.route(
    "GET", "/customers", summary="Search customers", tag="customers", role="agent", query=SEARCH
)
async def list_customers(call: Call) -> Any:
    region = call.services.settings.site.default_region
    stmt = search_query(call.query.get("q"), call.query.get("tier"), region).order_by(Customer.id)
    async with call.services.sessions() as db:
        rows, paging = await paginate(call, db, stmt)
        views = await load_contacts(db, rows)
    return {"items": [customer_json(views[c.id]) for c in rows], **paging}


@api.route(
    "GET",
    "/customers/lookup",
    summary="Find customers by phone (any format), e-mail or account number",
    tag="customers",
    role="agent",
    query=LOOKUP,
)
async def lookup_customers(call: Call) -> Any:
    if not call.query:
        raise ApiError(400, "invalid_query", "give phone, email or account")
    region = call.services.settings.site.default_region
    async with call.services.sessions() as db:
        found = await lookup(
            db,
            region,
            phone=call.query.get("phone"),
            email=call.query.get("email"),
            account=call.query.get("account"),
        )
        views = await load_contacts(db, found)
    return {"items": [customer_json(views[c.id]) for c in found]}


@api.route(
    "POST",
    "/customers",
    summary="Create a customer",
    tag="customers",
    role="agent",
    body=CUSTOMER,
    status=201,
    errors=(409, 422),
)
async def create(call: Call) -> Any:
    region = call.services.settings.site.default_region
    async with call.services.sessions() as db:
        try:
            customer = await create_customer(db, call.body, region)
            await db.commit()
        except CustomerInputError as exc:
            raise _input_error(exc) from None
        except IntegrityError:
            # Another request took the account number between check and insert.
            raise _input_error(CustomerInputError("account_number", "is already used")) from None
        views = await load_contacts(db, [customer])
    await call.audit("customer.create", f"customer:{customer.id}")
    return customer_json(views[customer.id])


@api.route(
    "GET",
    "/customers/{customer_id}",
    summary="A customer with open tickets and recent interactions",
    tag="customers",
    role="agent",
    errors=(404,),
)
async def get_customer(call: Call) -> Any:
    customer_id = call.path_int("customer_id")
    async with call.services.sessions() as db:
        customer = await one(db, Customer, customer_id, "customer")
        views = await load_contacts(db, [customer])
        tickets = (
            await db.execute(
                select(Ticket)
                .where(Ticket.customer_id == customer_id, Ticket.status.not_in(("closed",)))
                .order_by(Ticket.created_at.desc())
                .limit(50)
            )
        ).scalars()
        history = (
            await db.execute(
                select(Interaction)
                .where(Interaction.customer_id == customer_id)
                .order_by(Interaction.arrived_at.desc())
                .limit(50)
            )
        ).scalars()
        out = customer_json(views[customer_id])
        out["open_tickets"] = [
            {
                "id": t.id,
                "number": t.number,
                "subject": t.subject,
                "status": t.status,
                "category": t.category,
                "priority": t.priority,
            }
            for t in tickets
        ]
        out["history"] = [
            {
                "id": i.id,
                "channel": i.channel,
                "direction": i.direction,
                "arrived_at": to_iso(i.arrived_at),
                "agent_id": i.agent_id,
                "disposition_code": i.disposition_code,
                "csat_score": i.csat_score,
            }
            for i in history
        ]
    return out


@api.route(
    "PATCH",
    "/customers/{customer_id}",
    summary="Change a customer (phones and emails replace the lists)",
    tag="customers",
    role="agent",
    body=optional(CUSTOMER),
    errors=(404, 409, 422),
)
async def patch_customer(call: Call) -> Any:
    customer_id = call.path_int("customer_id")
    region = call.services.settings.site.default_region
    async with call.services.sessions() as db:
        customer = await one(db, Customer, customer_id, "customer")
        try:
            changed = await update_customer(db, customer, call.body, region)
            await db.commit()
        except CustomerInputError as exc:
            raise _input_error(exc) from None
        except IntegrityError:
            raise _input_error(CustomerInputError("account_number", "is already used")) from None
        views = await load_contacts(db, [customer])
    if changed:
        await call.audit("customer.update", f"customer:{customer_id}", {"fields": sorted(changed)})
    return customer_json(views[customer_id])
