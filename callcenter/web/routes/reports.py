"""Reports: per-queue totals by 15-minute interval and summed over a period; per-agent totals."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from callcenter.clock import to_iso
from callcenter.store.models import Interaction, Queue, QueueInterval, User
from callcenter.web.api import Call
from callcenter.web.errors import ApiError
from callcenter.web.paging import where_equal
from callcenter.web.routes import api
from callcenter.web.schema import Str, Time, obj

PERIOD = obj(("since", "until"), since=Time(), until=Time(), queue=Str(max_length=64))
#: Longest period one report covers (a limit on the rows read).
MAX_DAYS = 366


@dataclass
class _AgentTotals:
    answered: int = 0
    connected_seconds: float = 0.0
    #: Answered contacts that have an end time (connected_seconds sums theirs).
    ended: int = 0
    csat_sum: int = 0
    csat_answers: int = 0


def _period(call: Call) -> tuple[dt.datetime, dt.datetime]:
    since: dt.datetime = call.query["since"]
    until: dt.datetime = call.query["until"]
    if until <= since or (until - since).days > MAX_DAYS:
        raise ApiError(
            400, "invalid_query", f"until must follow since, at most {MAX_DAYS} days later"
        )
    return since, until


def _figures(rows: list[QueueInterval]) -> dict[str, Any]:
    answered = sum(r.answered for r in rows)
    abandoned = sum(r.abandoned for r in rows)
    handled = sum(r.handled for r in rows)
    return {
        "offered": sum(r.offered for r in rows),
        "answered": answered,
        "abandoned": abandoned,
        # Contacts whose handle time AHT averages: what a sum over queues weighs it by.
        "handled": handled,
        "service_level": sum(r.answered_in_threshold for r in rows) / answered
        if answered
        else None,
        "asa_seconds": sum(r.wait_seconds for r in rows) / answered if answered else None,
        "aht_seconds": sum(r.handle_seconds for r in rows) / handled if handled else None,
        "abandon_rate": abandoned / (answered + abandoned) if answered + abandoned else None,
    }


@api.route(
    "GET",
    "/reports/intervals",
    summary="Queue totals by 15-minute interval and for the period",
    tag="reports",
    role="supervisor",
    query=PERIOD,
    errors=(400,),
)
async def intervals(call: Call) -> Any:
    since, until = _period(call)
    stmt = select(QueueInterval).where(QueueInterval.start >= since, QueueInterval.start < until)
    stmt = where_equal(stmt, call.query, {"queue": QueueInterval.queue})
    async with call.services.sessions() as db:
        rows = list(
            (await db.execute(stmt.order_by(QueueInterval.queue, QueueInterval.start))).scalars()
        )
    queues: dict[str, list[QueueInterval]] = {}
    for row in rows:
        queues.setdefault(row.queue, []).append(row)
    return {
        "since": to_iso(since),
        "until": to_iso(until),
        "queues": [
            {
                "queue": name,
                **_figures(items),
                "intervals": [{"start": to_iso(r.start), **_figures([r])} for r in items],
            }
            for name, items in sorted(queues.items())
        ],
    }


@api.route(
    "GET",
    "/reports/agents",
    summary="Contacts each agent answered over a period",
    tag="reports",
    role="supervisor",
    query=PERIOD,
    errors=(400,),
)
async def agents(call: Call) -> Any:
    """Per agent, the contacts that arrived in the period and that the agent answered.

    ``connected_seconds`` is answer to end (talk, or the chat's length); wrap-up
    is not recorded per interaction, so it is not in it (the queue report's AHT has it).
    """
    since, until = _period(call)
    stmt = select(
        Interaction.agent_id, Interaction.answered_at, Interaction.ended_at, Interaction.csat_score
    ).where(
        Interaction.agent_id.is_not(None),
        Interaction.answered_at.is_not(None),
        Interaction.arrived_at >= since,
        Interaction.arrived_at < until,
    )
    if "queue" in call.query:
        stmt = stmt.join(Queue, Queue.id == Interaction.queue_id).where(
            Queue.name == call.query["queue"]
        )
    totals: dict[int, _AgentTotals] = {}
    async with call.services.sessions() as db:
        # Streamed: a long period holds many interactions, and only the sums are kept.
        async for agent, answered_at, ended_at, csat in await db.stream(stmt):
            row = totals.setdefault(agent, _AgentTotals())
            row.answered += 1
            if ended_at is not None:
                row.connected_seconds += max(0.0, (ended_at - answered_at).total_seconds())
                row.ended += 1
            if csat is not None:
                row.csat_sum += csat
                row.csat_answers += 1
        found = await db.execute(select(User.id, User.display_name).where(User.id.in_(totals)))
        names: dict[int, str] = {agent: name for agent, name in found}
    return {
        "since": to_iso(since),
        "until": to_iso(until),
        "agents": [
            {
                "agent_id": agent,
                "name": names.get(agent, str(agent)),
                "answered": row.answered,
                "connected_seconds": round(row.connected_seconds, 1),
                "average_connected_seconds": row.connected_seconds / row.ended
                if row.ended
                else None,
                "csat_average": row.csat_sum / row.csat_answers if row.csat_answers else None,
                "csat_answers": row.csat_answers,
            }
            for agent, row in sorted(totals.items(), key=lambda item: names.get(item[0], ""))
        ],
    }
