"""Users and skills: managed by supervisors and admins.

A supervisor manages agents and supervisors; only an admin can create an
admin or change one, so no one can grant a role above their own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from callcenter.credentials import hash_password_off_loop, password_problem
from callcenter.store.models import ROLES, Skill, User
from callcenter.store.users import (
    UserInputError,
    create_user,
    set_sip_secret,
    set_skills,
    user_json,
    user_skills,
)
from callcenter.web.api import ROLE_RANK, Call, one
from callcenter.web.auth import end_user_sessions
from callcenter.web.errors import ApiError
from callcenter.web.paging import PAGING, paginate, where_equal
from callcenter.web.routes import api
from callcenter.web.schema import Bool, Int, Map, Str, obj

USERNAME = Str(max_length=64, min_length=1, pattern=r"[A-Za-z0-9._\-]+")
USER = obj(
    ("username", "password", "role"),
    username=USERNAME,
    password=Str(max_length=256, min_length=1, strip=False),
    role=Str(choices=ROLES),
    display_name=Str(max_length=200),
    sip_extension=Str(max_length=32, min_length=2, pattern=r"[0-9]+", nullable=True),
    sip_secret=Str(max_length=128, min_length=1, strip=False),
    skills=Map(max_keys=50),
    chat_capacity=Int(minimum=0, maximum=20),
    language=Str(choices=("en", "zh-CN")),
)
USER_PATCH = obj(
    password=Str(max_length=256, min_length=1, strip=False),
    role=Str(choices=ROLES),
    display_name=Str(max_length=200),
    sip_extension=Str(max_length=32, min_length=2, pattern=r"[0-9]+", nullable=True),
    sip_secret=Str(max_length=128, min_length=1, strip=False),
    skills=Map(max_keys=50),
    chat_capacity=Int(minimum=0, maximum=20),
    language=Str(choices=("en", "zh-CN")),
    active=Bool(),
)
SKILL = obj(
    ("name",), name=Str(max_length=64, min_length=1, pattern=r"[a-z0-9_\-]+"), description=Str()
)
LIST = obj(role=Str(choices=ROLES), **PAGING)


def _skills(raw: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, level in raw.items():
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
            raise ApiError(
                422,
                "invalid_field",
                "proficiency must be an integer from 1 to 5",
                {"field": f"body.skills.{name}"},
            )
        out[name] = level
    return out


def _may_manage(call: Call, role: str) -> None:
    if ROLE_RANK[role] > ROLE_RANK[call.user.role]:
        raise ApiError(403, "forbidden", f"only an admin can manage a {role}")


def _user_error(exc: UserInputError) -> ApiError:
    status = 409 if exc.message.startswith(("is already",)) else 422
    return ApiError(
        status,
        "conflict" if status == 409 else "invalid_field",
        exc.message,
        {"field": f"body.{exc.field}"},
    )


@api.route("GET", "/users", summary="List users", tag="users", role="supervisor", query=LIST)
async def list_users(call: Call) -> Any:
    stmt = select(User).order_by(User.id)
    stmt = where_equal(stmt, call.query, {"role": User.role})
    async with call.services.sessions() as db:
        rows, paging = await paginate(call, db, stmt)
        skills = await user_skills(db, [u.id for u in rows])
    return {"items": [user_json(u, skills[u.id]) for u in rows], **paging}


@api.route(
    "POST",
    "/users",
    summary="Create a user",
    tag="users",
    role="supervisor",
    body=USER,
    status=201,
    errors=(403, 409, 422),
)
async def create(call: Call) -> Any:
    body = call.body
    _may_manage(call, body["role"])
    skills = _skills(body.get("skills", {}))
    async with call.services.sessions() as db:
        try:
            user = await create_user(
                db,
                username=body["username"],
                password=body["password"],
                role=body["role"],
                realm=call.services.settings.sip.realm,
                display_name=body.get("display_name", ""),
                sip_extension=body.get("sip_extension"),
                sip_secret=body.get("sip_secret"),
                skills=skills,
                chat_capacity=body.get("chat_capacity", 3),
                language=body.get("language", call.services.settings.site.default_language),
            )
        except UserInputError as exc:
            raise _user_error(exc) from None
        await db.commit()
    await call.audit("user.create", f"user:{user.id}", {"role": user.role})
    return user_json(user, skills)


@api.route(
    "GET", "/users/{user_id}", summary="A user", tag="users", role="supervisor", errors=(404,)
)
async def get_user(call: Call) -> Any:
    user_id = call.path_int("user_id")
    async with call.services.sessions() as db:
        user = await one(db, User, user_id, "user")
        skills = await user_skills(db, [user_id])
    return user_json(user, skills[user_id])


@api.route(
    "PATCH",
    "/users/{user_id}",
    summary="Change a user; a new password or disabling ends their sessions",
    tag="users",
    role="supervisor",
    body=USER_PATCH,
    errors=(403, 404, 409, 422),
)
async def patch_user(call: Call) -> Any:
    user_id = call.path_int("user_id")
    body = call.body
    sign_out = False
    async with call.services.sessions() as db:
        user = await one(db, User, user_id, "user")
        _may_manage(call, user.role)
        if "role" in body:
            _may_manage(call, body["role"])
        try:
            if "password" in body:
                problem = password_problem(body["password"])
                if problem:
                    raise UserInputError("password", problem)
                user.password_hash = await hash_password_off_loop(body["password"])
                user.demo_credential = False
                sign_out = True
            for key in ("role", "display_name", "chat_capacity", "language"):
                if key in body:
                    setattr(user, key, body[key])
            if "active" in body:
                sign_out = sign_out or (user.active and not body["active"])
                user.active = body["active"]
            if "sip_extension" in body and body["sip_extension"] != user.sip_extension:
                if (
                    body["sip_extension"]
                    and (
                        await db.execute(
                            select(User.id).where(User.sip_extension == body["sip_extension"])
                        )
                    ).first()
                ):
                    raise UserInputError("sip_extension", "is already assigned")
                user.sip_extension = body["sip_extension"]
                # HA1 covers the user name, so a new extension needs a new secret.
                user.sip_ha1_md5 = user.sip_ha1_sha256 = None
            if "sip_secret" in body:
                set_sip_secret(user, body["sip_secret"], call.services.settings.sip.realm)
            if "skills" in body:
                await set_skills(db, user_id, _skills(body["skills"]))
        except UserInputError as exc:
            raise _user_error(exc) from None
        await db.commit()
        skills = await user_skills(db, [user_id])
    if sign_out:
        await end_user_sessions(call.services, user_id)
    await call.audit(
        "user.update",
        f"user:{user_id}",
        {
            "fields": sorted(k for k in body if k not in ("password", "sip_secret"))
            + [k for k in ("password", "sip_secret") if k in body]
        },
    )
    return user_json(user, skills[user_id])


@api.route("GET", "/skills", summary="List skills", tag="users", role="agent")
async def list_skills(call: Call) -> Any:
    async with call.services.sessions() as db:
        rows = (await db.execute(select(Skill).order_by(Skill.name))).scalars()
        return {"items": [{"id": s.id, "name": s.name, "description": s.description} for s in rows]}


@api.route(
    "POST",
    "/skills",
    summary="Create a skill",
    tag="users",
    role="supervisor",
    body=SKILL,
    status=201,
    errors=(409,),
)
async def create_skill(call: Call) -> Any:
    async with call.services.sessions() as db:
        if (await db.execute(select(Skill.id).where(Skill.name == call.body["name"]))).first():
            raise ApiError(409, "conflict", "a skill of that name exists", {"field": "body.name"})
        skill = Skill(name=call.body["name"], description=call.body.get("description", ""))
        db.add(skill)
        await db.commit()
    await call.audit("skill.create", f"skill:{skill.id}")
    return {"id": skill.id, "name": skill.name, "description": skill.description}
