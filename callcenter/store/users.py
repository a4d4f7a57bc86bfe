"""Users (agents 坐席, supervisors, admins) with credentials and skills."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.clock import utcnow
from callcenter.credentials import hash_password_off_loop, password_problem, sip_ha1
from callcenter.store.models import Skill, User, UserSkill


class UserInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


async def skill_ids(db: AsyncSession, names: list[str], create: bool = False) -> dict[str, int]:
    """Ids of skills by name; unknown names are an error unless ``create``."""
    found = {
        s.name: s.id
        for s in (await db.execute(select(Skill).where(Skill.name.in_(names)))).scalars()
    }
    for name in names:
        if name not in found:
            if not create:
                raise UserInputError("skills", f"unknown skill {name!r}")
            skill = Skill(name=name, description="")
            db.add(skill)
            await db.flush()
            found[name] = skill.id
    return found


async def set_skills(
    db: AsyncSession, user_id: int, skills: dict[str, int], create: bool = False
) -> None:
    ids = await skill_ids(db, list(skills), create)
    await db.execute(delete(UserSkill).where(UserSkill.user_id == user_id))
    for name, level in skills.items():
        if not 1 <= level <= 5:
            raise UserInputError(f"skills.{name}", "proficiency must be from 1 to 5")
        db.add(UserSkill(user_id=user_id, skill_id=ids[name], proficiency=level))


async def user_skills(db: AsyncSession, user_ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {u: {} for u in user_ids}
    rows = await db.execute(
        select(UserSkill.user_id, Skill.name, UserSkill.proficiency)
        .join(Skill, Skill.id == UserSkill.skill_id)
        .where(UserSkill.user_id.in_(user_ids))
    )
    for user_id, name, level in rows:
        out[user_id][name] = level
    return out


def set_sip_secret(user: User, secret: str, realm: str) -> None:
    """Store only the digest HA1 hashes of an extension's secret."""
    if user.sip_extension is None:
        raise UserInputError("sip_secret", "set a SIP extension first")
    if len(secret) < 8:
        raise UserInputError("sip_secret", "must have at least 8 characters")
    user.sip_ha1_md5, user.sip_ha1_sha256 = sip_ha1(user.sip_extension, realm, secret)


async def create_user(
    db: AsyncSession,
    *,
    username: str,
    password: str,
    role: str,
    realm: str,
    display_name: str = "",
    sip_extension: str | None = None,
    sip_secret: str | None = None,
    skills: dict[str, int] | None = None,
    chat_capacity: int = 3,
    language: str = "en",
    demo_credential: bool = False,
    create_skills: bool = False,
) -> User:
    """Add a user (the caller commits). Raises :class:`UserInputError`."""
    problem = password_problem(password)
    if problem:
        raise UserInputError("password", problem)
    if (await db.execute(select(User.id).where(User.username == username))).first():
        raise UserInputError("username", "is already taken")
    if (
        sip_extension
        and (await db.execute(select(User.id).where(User.sip_extension == sip_extension))).first()
    ):
        raise UserInputError("sip_extension", "is already assigned")
    now = utcnow()
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=await hash_password_off_loop(password),
        demo_credential=demo_credential,
        sip_extension=sip_extension,
        chat_capacity=chat_capacity,
        language=language,
        active=True,
        created_at=now,
        updated_at=now,
    )
    if sip_secret:
        set_sip_secret(user, sip_secret, realm)
    db.add(user)
    await db.flush()
    if skills:
        await set_skills(db, user.id, skills, create_skills)
    return user


def user_json(user: User, skills: dict[str, int]) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "sip_extension": user.sip_extension,
        "sip_secret_set": user.sip_ha1_md5 is not None,
        "skills": skills,
        "chat_capacity": user.chat_capacity,
        "language": user.language,
        "active": user.active,
    }
