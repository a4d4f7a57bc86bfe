"""The kinds of spooled record and how each is applied to the database.

Each applier reads what it needs, decides, and only then writes, so that a
:class:`RecordRejected` leaves nothing half-done inside a shared batch.
Payloads are plain JSON with times as ISO 8601 strings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter.clock import from_iso
from callcenter.store.models import (
    AuditEntry,
    ChatMessage,
    Interaction,
    QueueInterval,
    QueueLogEntry,
    Ticket,
    TicketChange,
    TicketComment,
    TicketInteraction,
    Webhook,
    WebhookDelivery,
    table,
)
from callcenter.store.recorder import Applier, BatchApplier, RecordRejected
from callcenter.tickets.lifecycle import IllegalTransition, TicketState, transition

INTERACTION_RECORDED = "interaction.recorded"
TICKET_CREATED = "ticket.created"
TICKET_UPDATED = "ticket.updated"
TICKET_TRANSITIONED = "ticket.transitioned"
TICKET_COMMENTED = "ticket.commented"
QUEUE_LOG = "queue_log.appended"

_INTERACTION_TIMES = ("arrived_at", "queued_at", "offered_at", "answered_at", "ended_at")
_TICKET_TIMES = ("created_at", "updated_at", "first_response_due", "resolution_due")
#: Ticket fields a ``ticket.updated`` record may change (each change goes to the history).
TICKET_EDITABLE = ("subject", "description", "category", "priority", "assignee_id", "customer_id")


def _times(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    out = dict(data)
    for name in names:
        if name in out:
            out[name] = from_iso(out[name])
    return out


def _upsert(conn: AsyncConnection, table: Any, columns: tuple[str, ...], key: str) -> Any:
    """Insert-or-update of ``columns``, executed with the rows as parameters.

    SQLAlchemy does not cache the compiled form of ON CONFLICT statements, so
    a run of rows is sent as one execution rather than one statement each.
    """
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(table)
    changes = {k: stmt.excluded[k] for k in columns if k != key}
    return stmt.on_conflict_do_update(index_elements=[key], set_=changes)


def _same_keys(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive rows with the same columns, in order: one execution each.

    An execution with many rows takes its columns from the first row, so rows
    that name other columns go to their own execution.
    """
    group: list[dict[str, Any]] = []
    for row in rows:
        if group and row.keys() != group[0].keys():
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def _change_rows(
    ticket_id: str,
    actor_id: int | None,
    at: dt.datetime,
    changes: list[tuple[str, Any, Any]],
) -> list[dict[str, Any]]:
    return [
        {
            "ticket_id": ticket_id,
            "actor_id": actor_id,
            "field": name,
            "old_value": None if old is None else str(old),
            "new_value": None if new is None else str(new),
            "at": at,
        }
        for name, old, new in changes
    ]


async def _history(
    conn: AsyncConnection,
    ticket_id: str,
    actor_id: int | None,
    at: dt.datetime,
    changes: list[tuple[str, Any, Any]],
) -> None:
    if changes:
        await conn.execute(
            insert(table(TicketChange)), _change_rows(ticket_id, actor_id, at, changes)
        )


@dataclass(slots=True)
class _NewTickets:
    """The rows that new tickets write: themselves, their first history entries, their links."""

    tickets: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    def add(self, data: dict[str, Any]) -> dict[str, Any]:
        row = _times(data, _TICKET_TIMES)
        links = row.pop("interaction_ids", [])
        row.setdefault("status", "new")
        self.tickets.append(row)
        self.changes.extend(
            _change_rows(
                row["id"],
                row.get("created_by_id"),
                row["created_at"],
                [("status", None, row["status"])],
            )
        )
        self.links.extend({"ticket_id": row["id"], "interaction_id": i} for i in links)
        result = {"ticket_id": row["id"], "number": row["number"]}
        self.results.append(result)
        return result

    async def insert(self, conn: AsyncConnection) -> None:
        if len(self.tickets) == 1:
            await _avoid_number_clash(conn, self.tickets[0])
            self.results[0]["number"] = self.tickets[0]["number"]
        for group in _same_keys(self.tickets):
            await conn.execute(insert(table(Ticket)), group)
        if self.changes:
            await conn.execute(insert(table(TicketChange)), self.changes)
        if self.links:
            await conn.execute(insert(table(TicketInteraction)), self.links)


async def _avoid_number_clash(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Give a ticket whose random number is taken a distinct one instead of refusing it.

    A batch does not look (its insert fails on the unique index and its
    records are applied one by one, which comes here); a lone ticket pays one
    indexed lookup. The suffix comes from the ticket's id, so a retry after a
    lost commit picks the same number.
    """
    tbl = table(Ticket)
    taken = await conn.execute(select(tbl.c.id).where(tbl.c.number == row["number"]))
    if taken.first() is not None:
        row["number"] = f"{row['number']}-{row['id'][:4].upper()}"


async def _insert_ticket(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    new = _NewTickets()
    result = new.add(data)
    await new.insert(conn)
    return result


async def apply_interaction(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    """An interaction as it stands (inserted, or updated by a later record), and
    optionally the ticket it opens, in the same transaction."""
    return (await apply_interactions(conn, [data]))[0]


async def apply_interactions(
    conn: AsyncConnection, batch: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """:func:`apply_interaction` for a run of records, each statement sent once for the run.

    Interactions go first, then tickets, their history and links: each row
    still follows the rows it refers to, and a later record for the same
    interaction still updates it in order.
    """
    rows = [_times(data["interaction"], _INTERACTION_TIMES) for data in batch]
    for group in _same_keys(rows):
        await conn.execute(_upsert(conn, table(Interaction), tuple(group[0]), "id"), group)
    new = _NewTickets()
    results: list[dict[str, Any]] = []
    for row, data in zip(rows, batch, strict=True):
        result: dict[str, Any] = {"interaction_id": row["id"]}
        ticket = data.get("ticket")
        if ticket is not None:
            result.update(new.add({**ticket, "interaction_ids": [row["id"]]}))
        results.append(result)
    await new.insert(conn)
    return results


async def apply_ticket_created(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    links = data.get("interaction_ids", [])
    if links:
        tbl = table(Interaction)
        found = (await conn.execute(select(tbl.c.id).where(tbl.c.id.in_(links)))).all()
        if len(found) != len(set(links)):
            raise RecordRejected("a linked interaction does not exist", "not_found")
    return await _insert_ticket(conn, data)


async def _ticket_row(conn: AsyncConnection, ticket_id: str) -> Any:
    tbl = table(Ticket)
    stmt = select(tbl).where(tbl.c.id == ticket_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        raise RecordRejected(f"ticket {ticket_id} does not exist", "not_found")
    return row


async def apply_ticket_updated(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    current = await _ticket_row(conn, data["id"])
    if current["status"] == "closed":
        raise RecordRejected("a closed ticket cannot be edited", "ticket_closed")
    at = from_iso(data["at"])
    assert at is not None
    changes = {k: v for k, v in data["changes"].items() if k in TICKET_EDITABLE and current[k] != v}
    if changes:
        await conn.execute(
            update(table(Ticket))
            .where(table(Ticket).c.id == data["id"])
            .values(**changes, updated_at=at)
        )
        await _history(
            conn,
            data["id"],
            data.get("actor_id"),
            at,
            [(k, current[k], v) for k, v in changes.items()],
        )
    return {"ticket_id": data["id"], "changed": sorted(changes)}


async def apply_ticket_transitioned(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    current = await _ticket_row(conn, data["id"])
    at = from_iso(data["at"])
    assert at is not None
    state = TicketState(current["status"], current["category"], current["first_responded_at"])
    try:
        changes = transition(state, data["to"], at, data.get("resolution", ""))
    except IllegalTransition as exc:
        raise RecordRejected(str(exc), "illegal_transition") from None
    await conn.execute(
        update(table(Ticket))
        .where(table(Ticket).c.id == data["id"])
        .values(**changes, updated_at=at)
    )
    history = [("status", current["status"], changes["status"])]
    if "resolution" in changes:
        history.append(("resolution", current["resolution"] or None, changes["resolution"]))
    await _history(conn, data["id"], data.get("actor_id"), at, history)
    return {"ticket_id": data["id"], "status": changes["status"]}


async def apply_ticket_commented(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    current = await _ticket_row(conn, data["ticket_id"])
    if current["status"] == "closed":
        raise RecordRejected("a closed ticket takes no more comments", "ticket_closed")
    row = _times(data, ("created_at",))
    await conn.execute(insert(table(TicketComment)).values(**row))
    values: dict[str, Any] = {"updated_at": row["created_at"]}
    # A reply the customer can see is the first response the SLA clock waits for.
    if not row.get("internal") and current["first_responded_at"] is None:
        values["first_responded_at"] = row["created_at"]
    await conn.execute(
        update(table(Ticket)).where(table(Ticket).c.id == data["ticket_id"]).values(**values)
    )
    return {"ticket_id": data["ticket_id"], "comment_id": row["id"]}


async def apply_queue_log(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    await conn.execute(insert(table(QueueLogEntry)).values(**_times(data, ("at",))))
    return {"id": data["id"]}


APPLIERS: dict[str, Applier] = {
    INTERACTION_RECORDED: BatchApplier(apply_interaction, apply_interactions),
    TICKET_CREATED: apply_ticket_created,
    TICKET_UPDATED: apply_ticket_updated,
    TICKET_TRANSITIONED: apply_ticket_transitioned,
    TICKET_COMMENTED: apply_ticket_commented,
    QUEUE_LOG: apply_queue_log,
}


AUDIT_RECORDED = "audit.recorded"


async def apply_audit(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    await conn.execute(insert(table(AuditEntry)).values(**_times(data, ("at",))))
    return {}


APPLIERS[AUDIT_RECORDED] = apply_audit


CHAT_MESSAGE = "chat.message"


async def apply_chat_message(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    await conn.execute(insert(table(ChatMessage)).values(**_times(data, ("at",))))
    return {"id": data["id"]}


APPLIERS[CHAT_MESSAGE] = apply_chat_message


TICKET_LINKED = "ticket.linked"


async def apply_ticket_linked(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    """Another contact about an open ticket: link it and note it in the history."""
    current = await _ticket_row(conn, data["ticket_id"])
    if current["status"] == "closed":
        raise RecordRejected("a closed ticket takes no more contacts", "ticket_closed")
    at = from_iso(data["at"])
    assert at is not None
    await conn.execute(
        insert(table(TicketInteraction)).values(
            ticket_id=data["ticket_id"], interaction_id=data["interaction_id"]
        )
    )
    await conn.execute(
        update(table(Ticket)).where(table(Ticket).c.id == data["ticket_id"]).values(updated_at=at)
    )
    await _history(
        conn,
        data["ticket_id"],
        data.get("actor_id"),
        at,
        [("interaction", None, data["interaction_id"])],
    )
    return {"ticket_id": data["ticket_id"]}


APPLIERS[TICKET_LINKED] = apply_ticket_linked


WEBHOOK_QUEUED = "webhook.queued"


async def apply_webhook_queued(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    rows = [_times(d, ("next_attempt_at", "created_at")) for d in data["deliveries"]]
    # A webhook deleted meanwhile takes its deliveries with it.
    hooks = table(Webhook)
    live = set((await conn.execute(select(hooks.c.id))).scalars())
    rows = [r for r in rows if r["webhook_id"] in live]
    if rows:
        await conn.execute(insert(table(WebhookDelivery)), rows)
    return {"queued": len(rows)}


APPLIERS[WEBHOOK_QUEUED] = apply_webhook_queued


QUEUE_INTERVAL = "queue_interval.saved"


async def apply_queue_interval(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    """Interval totals replace what was stored for that queue and interval."""
    row = _times(data, ("start",))
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(table(QueueInterval)).values(**row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["queue", "start"],
        set_={k: stmt.excluded[k] for k in row if k not in ("queue", "start")},
    )
    await conn.execute(stmt)
    return {}


APPLIERS[QUEUE_INTERVAL] = apply_queue_interval


INTERACTION_SCORED = "interaction.scored"


async def apply_interaction_scored(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    """The caller's satisfaction score, on the interaction and on the tickets it belongs to."""
    interactions, links, tickets = table(Interaction), table(TicketInteraction), table(Ticket)
    found = await conn.execute(
        update(interactions)
        .where(interactions.c.id == data["id"])
        .values(csat_score=data["csat_score"])
    )
    if found.rowcount == 0:
        raise RecordRejected("no such interaction to score", "not_found")
    linked = select(links.c.ticket_id).where(links.c.interaction_id == data["id"])
    await conn.execute(
        update(tickets).where(tickets.c.id.in_(linked)).values(csat_score=data["csat_score"])
    )
    return {"id": data["id"]}


APPLIERS[INTERACTION_SCORED] = apply_interaction_scored
