"""Queues: read by everyone, managed by supervisors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from callcenter.cti.center import DIRECT_QUEUE
from callcenter.store.models import STRATEGIES, Queue
from callcenter.store.queues import queue_json, save_queue
from callcenter.store.users import UserInputError
from callcenter.web.api import Call, one
from callcenter.web.errors import ApiError
from callcenter.web.live import CENTER
from callcenter.web.routes import api
from callcenter.web.schema import Int, Map, Str, obj, optional

QUEUE = obj(
    ("name",),
    name=Str(max_length=64, min_length=1, pattern=r"[a-z0-9_\-]+"),
    display_name=Str(max_length=200),
    channel=Str(choices=("any", "voice", "chat")),
    strategy=Str(choices=STRATEGIES),
    sl_target_percent=Int(minimum=1, maximum=100),
    sl_threshold_seconds=Int(minimum=1, maximum=3600),
    priority=Int(minimum=0, maximum=1000),
    wrapup_seconds=Int(minimum=0, maximum=3600),
    offer_timeout_seconds=Int(minimum=5, maximum=600),
    max_waiting=Int(minimum=1, maximum=100_000, nullable=True),
    max_wait_seconds=Int(minimum=1, maximum=86_400, nullable=True),
    overflow_queue=Str(max_length=64, nullable=True),
    skills=Map(max_keys=20),
)
QUEUE_PATCH = optional(obj(**{k: v for k, v in QUEUE.fields.items() if k != "name"}))


def _levels(raw: dict[str, Any] | None) -> None:
    for name, level in (raw or {}).items():
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
            raise ApiError(
                422,
                "invalid_field",
                "minimum proficiency must be an integer from 1 to 5",
                {"field": f"body.skills.{name}"},
            )


def _error(exc: UserInputError) -> ApiError:
    status = 409 if exc.message.startswith("is already") else 422
    return ApiError(
        status,
        "conflict" if status == 409 else "invalid_field",
        exc.message,
        {"field": f"body.{exc.field}"},
    )


@api.route("GET", "/queues", summary="List queues", tag="queues", role="agent")
async def list_queues(call: Call) -> Any:
    async with call.services.sessions() as db:
        queues = list((await db.execute(select(Queue).order_by(Queue.name))).scalars())
        return {"items": await queue_json(db, queues)}


@api.route(
    "POST",
    "/queues",
    summary="Create a queue",
    tag="queues",
    role="supervisor",
    body=QUEUE,
    status=201,
    errors=(409, 422),
)
async def create_queue(call: Call) -> Any:
    _levels(call.body.get("skills"))
    if call.body["name"] == DIRECT_QUEUE:
        # The router's own queue of calls transferred to one agent.
        raise ApiError(
            409, "conflict", "is reserved for transfers to an agent", {"field": "body.name"}
        )
    async with call.services.sessions() as db:
        try:
            queue = await save_queue(db, call.body)
        except UserInputError as exc:
            raise _error(exc) from None
        await db.commit()
        out = (await queue_json(db, [queue]))[0]
    await call.audit("queue.create", f"queue:{queue.id}")
    # The router takes the new queue at once.
    await call.request.app[CENTER].load_queues()
    return out


@api.route(
    "GET", "/queues/{queue_id}", summary="A queue", tag="queues", role="agent", errors=(404,)
)
async def get_queue(call: Call) -> Any:
    async with call.services.sessions() as db:
        queue = await one(db, Queue, call.path_int("queue_id"), "queue")
        return (await queue_json(db, [queue]))[0]


@api.route(
    "PATCH",
    "/queues/{queue_id}",
    summary="Change a queue",
    tag="queues",
    role="supervisor",
    body=QUEUE_PATCH,
    errors=(404, 422),
)
async def patch_queue(call: Call) -> Any:
    _levels(call.body.get("skills"))
    async with call.services.sessions() as db:
        queue = await one(db, Queue, call.path_int("queue_id"), "queue")
        try:
            await save_queue(db, call.body, queue)
        except UserInputError as exc:
            raise _error(exc) from None
        await db.commit()
        out = (await queue_json(db, [queue]))[0]
    await call.audit("queue.update", f"queue:{queue.id}", {"fields": sorted(call.body)})
    await call.request.app[CENTER].load_queues()
    return out
