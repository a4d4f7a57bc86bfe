"""Interactions: every call and chat with its timeline, IVR path, outcome and score."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from callcenter.clock import to_iso
from callcenter.store.models import CHANNELS, Interaction, TicketInteraction
from callcenter.web.api import ROLE_RANK, Call, one
from callcenter.web.errors import ApiError
from callcenter.web.paging import PAGING, paginate, where_equal
from callcenter.web.routes import api
from callcenter.web.schema import Int, Str, Time, obj

LIST = obj(
    customer_id=Int(minimum=1),
    agent_id=Int(minimum=1),
    channel=Str(choices=CHANNELS),
    since=Time(),
    until=Time(),
    **PAGING,
)


def interaction_json(i: Interaction) -> dict[str, Any]:
    return {
        "id": i.id,
        "channel": i.channel,
        "direction": i.direction,
        "customer_id": i.customer_id,
        "queue_id": i.queue_id,
        "agent_id": i.agent_id,
        "remote_identity": i.remote_identity,
        "arrived_at": to_iso(i.arrived_at),
        "queued_at": to_iso(i.queued_at),
        "offered_at": to_iso(i.offered_at),
        "answered_at": to_iso(i.answered_at),
        "ended_at": to_iso(i.ended_at),
        "ivr_path": i.ivr_path,
        "collected": i.collected,
        "disposition_code": i.disposition_code,
        "notes": i.notes,
        "has_recording": i.recording_path is not None,
        "transcript": i.transcript,
        "csat_score": i.csat_score,
        "end_reason": i.end_reason,
    }


@api.route(
    "GET",
    "/interactions",
    summary="Interactions, newest first, by customer, agent, channel and time",
    tag="interactions",
    role="agent",
    query=LIST,
)
async def list_interactions(call: Call) -> Any:
    q = call.query
    stmt = select(Interaction).order_by(Interaction.arrived_at.desc(), Interaction.id)
    stmt = where_equal(
        stmt,
        q,
        {
            "customer_id": Interaction.customer_id,
            "agent_id": Interaction.agent_id,
            "channel": Interaction.channel,
        },
    )
    if "since" in q:
        stmt = stmt.where(Interaction.arrived_at >= q["since"])
    if "until" in q:
        stmt = stmt.where(Interaction.arrived_at < q["until"])
    async with call.services.sessions() as db:
        rows, paging = await paginate(call, db, stmt)
    return {"items": [interaction_json(i) for i in rows], **paging}


@api.route(
    "GET",
    "/interactions/{interaction_id}",
    summary="One interaction with the tickets it is linked to",
    tag="interactions",
    role="agent",
    errors=(404,),
)
async def get_interaction(call: Call) -> Any:
    interaction_id = call.path_str("interaction_id", 36)
    async with call.services.sessions() as db:
        found = await one(db, Interaction, interaction_id, "interaction")
        tickets = (
            await db.execute(
                select(TicketInteraction.ticket_id).where(
                    TicketInteraction.interaction_id == interaction_id
                )
            )
        ).scalars()
        out = interaction_json(found)
        out["ticket_ids"] = list(tickets)
    return out


@api.route(
    "GET",
    "/interactions/{interaction_id}/recording",
    summary="A call's recording (WAV: caller left, agent right); agents hear their own calls",
    tag="interactions",
    role="agent",
    errors=(403, 404),
)
async def get_recording(call: Call) -> Any:
    interaction_id = call.path_str("interaction_id", 36)
    async with call.services.sessions() as db:
        found = await one(db, Interaction, interaction_id, "interaction")
    if found.recording_path is None:
        raise ApiError(404, "not_found", "this interaction has no recording")
    user = call.user
    if ROLE_RANK[user.role] < ROLE_RANK["supervisor"] and found.agent_id != user.user_id:
        raise ApiError(403, "forbidden", "agents may hear only their own calls")
    path = Path(found.recording_path)
    if not await asyncio.to_thread(path.is_file):
        raise ApiError(404, "not_found", "the recording file is missing")
    # Listening to a call is itself on record.
    await call.audit("recording.play", f"interaction:{interaction_id}")
    return web.FileResponse(
        path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, no-store"}
    )
