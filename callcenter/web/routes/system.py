"""Health, metrics, the OpenAPI document and the audit log."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select, text

from callcenter.clock import to_iso
from callcenter.store.models import AuditEntry
from callcenter.web.api import OPENAPI, SERVICES, Call
from callcenter.web.errors import error_response
from callcenter.web.paging import PAGING, paginate, where_equal
from callcenter.web.routes import api
from callcenter.web.schema import Str, obj

AUDIT_QUERY = obj(actor=Str(max_length=64), action=Str(max_length=64), **PAGING)


async def healthz(request: web.Request) -> web.StreamResponse:
    """``GET /healthz``: ok only while the database answers."""
    services = request.app[SERVICES]
    try:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        response = error_response(503, "database_unavailable", "the database does not answer")
        return response
    return web.json_response({"status": "ok", "spool_backlog": services.recorder.backlog})


async def metrics(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    m = services.metrics
    m.spool_backlog.set(services.recorder.backlog)
    m.spool_rejected.set(services.recorder.rejected_count)
    m.database_up.set(1 if services.recorder.database_up else 0)
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[OPENAPI])


@api.route(
    "GET",
    "/audit",
    summary="The audit log: who did what, when, from where",
    tag="system",
    role="admin",
    query=AUDIT_QUERY,
)
async def audit_log(call: Call) -> Any:
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc())
    stmt = where_equal(stmt, call.query, {"actor": AuditEntry.actor, "action": AuditEntry.action})
    async with call.services.sessions() as db:
        rows, paging = await paginate(call, db, stmt)
    return {
        "items": [
            {
                "id": a.id,
                "at": to_iso(a.at),
                "actor_id": a.actor_id,
                "actor": a.actor,
                "action": a.action,
                "target": a.target,
                "address": a.address,
                "detail": a.detail,
            }
            for a in rows
        ],
        **paging,
    }
