"""Webhooks: URLs of the company's own systems that receive the live events (admins only)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from callcenter.clock import to_iso, utcnow
from callcenter.credentials import new_token
from callcenter.store.models import Webhook, WebhookDelivery
from callcenter.web.api import Call, one
from callcenter.web.errors import ApiError
from callcenter.web.live import CENTER
from callcenter.web.routes import api
from callcenter.web.schema import List, Str, obj

EVENT_TYPES = (
    "offer",
    "offer_withdrawn",
    "connected",
    "message",
    "wrapup",
    "contact_ended",
    "presence",
    "agent",
    "queue",
)
WEBHOOK = obj(
    ("url",),
    url=Str(max_length=500, min_length=8),
    events=List(Str(choices=EVENT_TYPES), max_items=len(EVENT_TYPES)),
)


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(422, "invalid_field", "must be an http or https URL", {"field": "body.url"})
    if parts.username or parts.password:
        raise ApiError(422, "invalid_field", "must not carry credentials", {"field": "body.url"})
    return raw


@api.route(
    "GET", "/webhooks", summary="Webhooks and their delivery counts", tag="webhooks", role="admin"
)
async def list_webhooks(call: Call) -> Any:
    async with call.services.sessions() as db:
        hooks = list((await db.execute(select(Webhook).order_by(Webhook.id))).scalars())
        counts = await db.execute(
            select(WebhookDelivery.webhook_id, WebhookDelivery.status, func.count()).group_by(
                WebhookDelivery.webhook_id, WebhookDelivery.status
            )
        )
        tally: dict[int, dict[str, int]] = {}
        for hook_id, status, count in counts:
            tally.setdefault(hook_id, {})[status] = count
    return {
        "items": [
            {
                "id": w.id,
                "url": w.url,
                "events": w.events,
                "active": w.active,
                "created_at": to_iso(w.created_at),
                "deliveries": tally.get(w.id, {}),
            }
            for w in hooks
        ]
    }


@api.route(
    "POST",
    "/webhooks",
    summary="Add a webhook; its signing secret is shown once",
    tag="webhooks",
    role="admin",
    body=WEBHOOK,
    status=201,
    errors=(422,),
)
async def create_webhook(call: Call) -> Any:
    secret = new_token()
    hook = Webhook(
        url=_url(call.body["url"]),
        secret=secret,
        events=call.body.get("events", []),
        active=True,
        created_at=utcnow(),
    )
    async with call.services.sessions() as db:
        db.add(hook)
        await db.commit()
    await call.request.app[CENTER].webhooks.load(call.services.sessions)
    await call.audit("webhook.create", f"webhook:{hook.id}", {"url": hook.url})
    return {"id": hook.id, "url": hook.url, "events": hook.events, "secret": secret}


@api.route(
    "DELETE",
    "/webhooks/{webhook_id}",
    summary="Remove a webhook and its queued deliveries",
    tag="webhooks",
    role="admin",
    errors=(404,),
)
async def delete_webhook(call: Call) -> Any:
    async with call.services.sessions() as db:
        hook = await one(db, Webhook, call.path_int("webhook_id"), "webhook")
        await db.delete(hook)
        await db.commit()
    await call.request.app[CENTER].webhooks.load(call.services.sessions)
    await call.audit("webhook.delete", f"webhook:{hook.id}")
    return {"id": hook.id, "deleted": True}
