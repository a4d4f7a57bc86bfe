"""Queues: where contacts wait for agents, with their rules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.clock import utcnow
from callcenter.store.models import Queue, QueueSkill, Skill
from callcenter.store.users import UserInputError, skill_ids

QUEUE_FIELDS = (
    "display_name",
    "channel",
    "strategy",
    "sl_target_percent",
    "sl_threshold_seconds",
    "priority",
    "wrapup_seconds",
    "offer_timeout_seconds",
    "max_waiting",
    "max_wait_seconds",
)


async def _overflow_id(db: AsyncSession, name: str | None, own_id: int | None) -> int | None:
    if not name:
        return None
    found = (await db.execute(select(Queue.id).where(Queue.name == name))).scalar_one_or_none()
    if found is None:
        raise UserInputError("overflow_queue", f"unknown queue {name!r}")
    if found == own_id:
        raise UserInputError("overflow_queue", "a queue cannot overflow to itself")
    return int(found)


async def set_queue_skills(
    db: AsyncSession, queue_id: int, skills: dict[str, int], create: bool = False
) -> None:
    ids = await skill_ids(db, list(skills), create)
    await db.execute(delete(QueueSkill).where(QueueSkill.queue_id == queue_id))
    for name, level in skills.items():
        db.add(QueueSkill(queue_id=queue_id, skill_id=ids[name], min_proficiency=level))


async def save_queue(
    db: AsyncSession, data: dict[str, Any], queue: Queue | None = None, create_skills: bool = False
) -> Queue:
    """Create (``queue`` None) or change a queue from validated data (the caller commits)."""
    if queue is None:
        if (await db.execute(select(Queue.id).where(Queue.name == data["name"]))).first():
            raise UserInputError("name", "is already taken")
        queue = Queue(
            name=data["name"],
            display_name=data.get("display_name") or data["name"],
            created_at=utcnow(),
        )
        db.add(queue)
    for key in QUEUE_FIELDS:
        if key in data:
            setattr(queue, key, data[key])
    await db.flush()
    if "overflow_queue" in data:
        queue.overflow_queue_id = await _overflow_id(db, data["overflow_queue"], queue.id)
    if "skills" in data:
        await set_queue_skills(db, queue.id, data["skills"], create_skills)
    return queue


async def queue_json(db: AsyncSession, queues: list[Queue]) -> list[dict[str, Any]]:
    ids = [q.id for q in queues]
    skills: dict[int, dict[str, int]] = {i: {} for i in ids}
    rows = await db.execute(
        select(QueueSkill.queue_id, Skill.name, QueueSkill.min_proficiency)
        .join(Skill, Skill.id == QueueSkill.skill_id)
        .where(QueueSkill.queue_id.in_(ids))
    )
    for queue_id, name, level in rows:
        skills[queue_id][name] = level
    names = (
        {q_id: name for q_id, name in await db.execute(select(Queue.id, Queue.name))}
        if any(q.overflow_queue_id for q in queues)
        else {}
    )
    return [
        {
            "id": q.id,
            "name": q.name,
            **{k: getattr(q, k) for k in QUEUE_FIELDS},
            "overflow_queue": names.get(q.overflow_queue_id) if q.overflow_queue_id else None,
            "skills": skills[q.id],
        }
        for q in queues
    ]
