"""Service tickets: search, create, edit, comment, move through the lifecycle.

Every change is a spooled record. The request waits a short while for the
record to reach the database and answers with the result; if the database is
away it answers 202 with what was recorded, and the change is applied when
the database returns.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from callcenter.clock import to_iso, utcnow
from callcenter.store import records
from callcenter.store.models import (
    TICKET_CATEGORIES,
    TICKET_PRIORITIES,
    Customer,
    Ticket,
    TicketChange,
    TicketComment,
    TicketInteraction,
    User,
)
from callcenter.store.recorder import Applied, Outcome, Pending, Rejected, is_transient
from callcenter.store.tickets import new_ticket, search_query, ticket_json
from callcenter.tickets.lifecycle import TicketStatus
from callcenter.web.api import Call, json_response, one
from callcenter.web.errors import ApiError
from callcenter.web.paging import PAGING, paginate
from callcenter.web.routes import api
from callcenter.web.schema import Bool, Int, List, Str, obj

STATUSES = tuple(s.value for s in TicketStatus)
ID = Int(minimum=1, maximum=2**31 - 1, nullable=True)
UUID = Str(max_length=36, min_length=36, pattern=r"[0-9a-f\-]{36}")

TICKET = obj(
    ("subject",),
    subject=Str(max_length=300, min_length=1),
    description=Str(max_length=20_000, strip=False),
    category=Str(choices=TICKET_CATEGORIES),
    priority=Str(choices=TICKET_PRIORITIES),
    customer_id=ID,
    assignee_id=ID,
    interaction_ids=List(UUID, max_items=20),
)
TICKET_PATCH = obj(
    subject=Str(max_length=300, min_length=1),
    description=Str(max_length=20_000, strip=False),
    category=Str(choices=TICKET_CATEGORIES),
    priority=Str(choices=TICKET_PRIORITIES),
    customer_id=ID,
    assignee_id=ID,
)
COMMENT = obj(("body",), body=Str(max_length=20_000, min_length=1, strip=False), internal=Bool())
TRANSITION = obj(("to",), to=Str(choices=STATUSES), resolution=Str(max_length=20_000))
SEARCH = obj(
    q=Str(max_length=100),
    status=Str(choices=STATUSES),
    category=Str(choices=TICKET_CATEGORIES),
    priority=Str(choices=TICKET_PRIORITIES),
    customer_id=Int(minimum=1),
    assignee_id=Int(minimum=1),
    **PAGING,
)

_REJECTION_STATUS = {"not_found": 404, "illegal_transition": 409, "ticket_closed": 409}


async def _check_references(call: Call, body: dict[str, Any]) -> None:
    """Refuse unknown customers and assignees now, with a clear error, when the
    database answers; when it does not, the record waits in the spool."""
    try:
        async with call.services.sessions() as db:
            if (
                body.get("customer_id") is not None
                and await db.get(Customer, body["customer_id"]) is None
            ):
                raise ApiError(
                    422, "invalid_field", "no such customer", {"field": "body.customer_id"}
                )
            if body.get("assignee_id") is not None:
                user = await db.get(User, body["assignee_id"])
                if user is None or not user.active:
                    raise ApiError(
                        422, "invalid_field", "no such user", {"field": "body.assignee_id"}
                    )
    except Exception as exc:
        if not is_transient(exc):
            raise


async def _record(call: Call, op: str, data: dict[str, Any]) -> Outcome:
    wait = call.services.settings.spool.apply_wait_seconds
    outcome = await call.services.recorder.record_and_wait(op, data, wait)
    if isinstance(outcome, Rejected):
        status = _REJECTION_STATUS.get(outcome.code, 409)
        code = "conflict" if status == 409 and outcome.code == "rejected" else outcome.code
        raise ApiError(status, code, outcome.reason)
    return outcome


def _accepted(data: dict[str, Any], outcome: Pending) -> Any:
    return json_response({"status": "recorded", "record": outcome.seq, **data}, status=202)


async def _load(call: Call, ticket_id: str) -> Ticket:
    async with call.services.sessions() as db:
        ticket = await one(db, Ticket, ticket_id, "ticket")
    return ticket


def _ticket_id(call: Call) -> str:
    raw = call.path_str("ticket_id", 36)
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(404, "not_found", "no such ticket") from None


@api.route(
    "GET",
    "/tickets",
    summary="Search and filter tickets",
    tag="tickets",
    role="agent",
    query=SEARCH,
)
async def list_tickets(call: Call) -> Any:
    q = call.query
    stmt = search_query(
        q.get("q"),
        q.get("status"),
        q.get("category"),
        q.get("priority"),
        q.get("customer_id"),
        q.get("assignee_id"),
    )
    now = utcnow()
    async with call.services.sessions() as db:
        rows, paging = await paginate(call, db, stmt)
    return {"items": [ticket_json(t, now) for t in rows], **paging}


@api.route(
    "POST",
    "/tickets",
    summary="Open a ticket (202 when recorded while the database is away)",
    tag="tickets",
    role="agent",
    body=TICKET,
    status=201,
    errors=(202, 404, 422),
)
async def create_ticket(call: Call) -> Any:
    await _check_references(call, call.body)
    data = new_ticket(call.body, call.user.user_id, utcnow(), call.services.settings.tickets)
    outcome = await _record(call, records.TICKET_CREATED, data)
    await call.audit("ticket.create", f"ticket:{data['id']}")
    if isinstance(outcome, Pending):
        return _accepted({"id": data["id"], "number": data["number"]}, outcome)
    return ticket_json(await _load(call, data["id"]), utcnow())


@api.route(
    "GET",
    "/tickets/{ticket_id}",
    summary="A ticket with its comments, history and linked interactions",
    tag="tickets",
    role="agent",
    errors=(404,),
)
async def get_ticket(call: Call) -> Any:
    ticket_id = _ticket_id(call)
    async with call.services.sessions() as db:
        ticket = await one(db, Ticket, ticket_id, "ticket")
        comments = (
            await db.execute(
                select(TicketComment)
                .where(TicketComment.ticket_id == ticket_id)
                .order_by(TicketComment.created_at, TicketComment.id)
            )
        ).scalars()
        changes = (
            await db.execute(
                select(TicketChange)
                .where(TicketChange.ticket_id == ticket_id)
                .order_by(TicketChange.id)
            )
        ).scalars()
        links = (
            await db.execute(
                select(TicketInteraction.interaction_id).where(
                    TicketInteraction.ticket_id == ticket_id
                )
            )
        ).scalars()
        out = ticket_json(ticket, utcnow())
        out["comments"] = [
            {
                "id": c.id,
                "author_id": c.author_id,
                "body": c.body,
                "internal": c.internal,
                "created_at": to_iso(c.created_at),
            }
            for c in comments
        ]
        out["history"] = [
            {
                "field": h.field,
                "old": h.old_value,
                "new": h.new_value,
                "actor_id": h.actor_id,
                "at": to_iso(h.at),
            }
            for h in changes
        ]
        out["interaction_ids"] = list(links)
    return out


@api.route(
    "PATCH",
    "/tickets/{ticket_id}",
    summary="Change a ticket's fields (each change goes to its history)",
    tag="tickets",
    role="agent",
    body=TICKET_PATCH,
    errors=(202, 404, 409, 422),
)
async def patch_ticket(call: Call) -> Any:
    ticket_id = _ticket_id(call)
    await _check_references(call, call.body)
    data = {
        "id": ticket_id,
        "actor_id": call.user.user_id,
        "at": to_iso(utcnow()),
        "changes": call.body,
    }
    outcome = await _record(call, records.TICKET_UPDATED, data)
    if isinstance(outcome, Pending):
        return _accepted({"id": ticket_id}, outcome)
    assert isinstance(outcome, Applied)
    if outcome.result["changed"]:
        await call.audit(
            "ticket.update", f"ticket:{ticket_id}", {"fields": outcome.result["changed"]}
        )
    return ticket_json(await _load(call, ticket_id), utcnow())


@api.route(
    "POST",
    "/tickets/{ticket_id}/comments",
    summary="Comment on a ticket (a public reply counts as the first response)",
    tag="tickets",
    role="agent",
    body=COMMENT,
    status=201,
    errors=(202, 404, 409),
)
async def comment(call: Call) -> Any:
    ticket_id = _ticket_id(call)
    data = {
        "id": str(uuid.uuid4()),
        "ticket_id": ticket_id,
        "author_id": call.user.user_id,
        "body": call.body["body"],
        "internal": call.body.get("internal", False),
        "created_at": to_iso(utcnow()),
    }
    outcome = await _record(call, records.TICKET_COMMENTED, data)
    if isinstance(outcome, Pending):
        return _accepted({"id": data["id"]}, outcome)
    return {k: data[k] for k in ("id", "ticket_id", "author_id", "body", "internal", "created_at")}


@api.route(
    "POST",
    "/tickets/{ticket_id}/transitions",
    summary="Move a ticket to another status (illegal moves are refused with 409)",
    tag="tickets",
    role="agent",
    body=TRANSITION,
    errors=(202, 404, 409),
)
async def transition(call: Call) -> Any:
    ticket_id = _ticket_id(call)
    data = {
        "id": ticket_id,
        "actor_id": call.user.user_id,
        "to": call.body["to"],
        "resolution": call.body.get("resolution", ""),
        "at": to_iso(utcnow()),
    }
    outcome = await _record(call, records.TICKET_TRANSITIONED, data)
    if isinstance(outcome, Pending):
        return _accepted({"id": ticket_id, "to": call.body["to"]}, outcome)
    await call.audit("ticket.transition", f"ticket:{ticket_id}", {"to": call.body["to"]})
    return ticket_json(await _load(call, ticket_id), utcnow())
