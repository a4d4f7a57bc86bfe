"""Reports: per-queue totals by 15-minute interval, and summed over a period."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from callcenter.clock import to_iso
from callcenter.store.models import QueueInterval
from callcenter.web.api import Call
from callcenter.web.errors import ApiError
from callcenter.web.paging import where_equal
from callcenter.web.routes import api
from callcenter.web.schema import Str, Time, obj

PERIOD = obj(("since", "until"), since=Time(), until=Time(), queue=Str(max_length=64))
#: Longest period one report covers (a limit on the rows read).
MAX_DAYS = 366


def _figures(rows: list[QueueInterval]) -> dict[str, Any]:
    answered = sum(r.answered for r in rows)
    abandoned = sum(r.abandoned for r in rows)
    handled = sum(r.handled for r in rows)
    return {
        "offered": sum(r.offered for r in rows),
        "answered": answered,
        "abandoned": abandoned,
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
    since, until = call.query["since"], call.query["until"]
    if until <= since or (until - since).days > MAX_DAYS:
        raise ApiError(
            400, "invalid_query", f"until must follow since, at most {MAX_DAYS} days later"
        )
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
