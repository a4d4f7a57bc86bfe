"""Callbacks (回访): planned follow-up contacts with a due time and an outcome."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from callcenter.clock import to_iso, utcnow
from callcenter.phones import to_e164
from callcenter.store.models import CALLBACK_STATUSES, Callback, Customer, Ticket, User
from callcenter.web.api import Call, one
from callcenter.web.errors import ApiError
from callcenter.web.paging import PAGING, paginate, where_equal
from callcenter.web.routes import api
from callcenter.web.schema import Int, Str, Time, obj

ID = Int(minimum=1, nullable=True)
CALLBACK = obj(
    ("phone", "due_at"),
    phone=Str(max_length=40, min_length=1),
    due_at=Time(),
    customer_id=ID,
    ticket_id=Str(max_length=36, min_length=36, nullable=True),
    assignee_id=ID,
    notes=Str(max_length=5000, strip=False),
)
CALLBACK_PATCH = obj(
    due_at=Time(),
    assignee_id=ID,
    status=Str(choices=CALLBACK_STATUSES),
    outcome=Str(max_length=5000, strip=False),
    notes=Str(max_length=5000, strip=False),
)
LIST = obj(
    status=Str(choices=CALLBACK_STATUSES),
    assignee_id=Int(minimum=1),
    customer_id=Int(minimum=1),
    due_before=Time(),
    **PAGING,
)


def callback_json(c: Callback) -> dict[str, Any]:
    return {
        "id": c.id,
        "customer_id": c.customer_id,
        "ticket_id": c.ticket_id,
        "phone": c.phone,
        "due_at": to_iso(c.due_at),
        "assignee_id": c.assignee_id,
        "status": c.status,
        "outcome": c.outcome,
        "notes": c.notes,
        "created_by_id": c.created_by_id,
        "created_at": to_iso(c.created_at),
        "completed_at": to_iso(c.completed_at),
    }


async def _check_refs(db: Any, body: dict[str, Any]) -> None:
    for key, model, what in (
        ("customer_id", Customer, "customer"),
        ("ticket_id", Ticket, "ticket"),
        ("assignee_id", User, "user"),
    ):
        if body.get(key) is not None and await db.get(model, body[key]) is None:
            raise ApiError(422, "invalid_field", f"no such {what}", {"field": f"body.{key}"})


@api.route(
    "GET",
    "/callbacks",
    summary="List callbacks, soonest due first",
    tag="callbacks",
    role="agent",
    query=LIST,
)
async def list_callbacks(call: Call) -> Any:
    stmt = select(Callback).order_by(Callback.due_at, Callback.id)
    q = call.query
    stmt = where_equal(
        stmt,
        q,
        {
            "status": Callback.status,
            "assignee_id": Callback.assignee_id,
            "customer_id": Callback.customer_id,
        },
    )
    if "due_before" in q:
        stmt = stmt.where(Callback.due_at < q["due_before"])
    async with call.services.sessions() as db:
        rows, paging = await paginate(call, db, stmt)
    return {"items": [callback_json(c) for c in rows], **paging}


@api.route(
    "POST",
    "/callbacks",
    summary="Plan a callback",
    tag="callbacks",
    role="agent",
    body=CALLBACK,
    status=201,
    errors=(422,),
)
async def create_callback(call: Call) -> Any:
    body = call.body
    phone = to_e164(body["phone"], call.services.settings.site.default_region)
    if phone is None:
        raise ApiError(422, "invalid_field", "not a valid phone number", {"field": "body.phone"})
    async with call.services.sessions() as db:
        await _check_refs(db, body)
        callback = Callback(
            customer_id=body.get("customer_id"),
            ticket_id=body.get("ticket_id"),
            phone=phone,
            due_at=body["due_at"],
            assignee_id=body.get("assignee_id"),
            status="pending",
            notes=body.get("notes", ""),
            created_by_id=call.user.user_id,
            created_at=utcnow(),
        )
        db.add(callback)
        await db.commit()
    await call.audit("callback.create", f"callback:{callback.id}")
    return callback_json(callback)


@api.route(
    "PATCH",
    "/callbacks/{callback_id}",
    summary="Reschedule a callback or record its outcome",
    tag="callbacks",
    role="agent",
    body=CALLBACK_PATCH,
    errors=(404, 409, 422),
)
async def patch_callback(call: Call) -> Any:
    body = call.body
    async with call.services.sessions() as db:
        callback = await one(db, Callback, call.path_int("callback_id"), "callback")
        if callback.status != "pending":
            raise ApiError(409, "conflict", f"the callback is already {callback.status}")
        await _check_refs(db, body)
        for key in ("due_at", "assignee_id", "outcome", "notes", "status"):
            if key in body:
                setattr(callback, key, body[key])
        if body.get("status", "pending") != "pending":
            callback.completed_at = utcnow()
        await db.commit()
    await call.audit("callback.update", f"callback:{callback.id}", {"fields": sorted(body)})
    return callback_json(callback)
