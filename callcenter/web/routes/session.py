"""Logging in and out, the current user, API tokens, and the user's websocket."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from callcenter.clock import to_iso, utcnow
from callcenter.credentials import new_token, token_digest
from callcenter.store.models import ApiToken, User
from callcenter.store.users import user_json, user_skills
from callcenter.web.api import Call, json_response, one
from callcenter.web.auth import COOKIE, login, logout, set_session_cookie
from callcenter.web.errors import ApiError
from callcenter.web.routes import api
from callcenter.web.schema import Int, Str, obj

LOGIN = obj(
    ("username", "password"),
    username=Str(max_length=64, min_length=1),
    password=Str(max_length=256, min_length=1, strip=False),
)
TOKEN = obj(
    ("name", "user_id"),
    name=Str(max_length=100, min_length=1),
    user_id=Int(minimum=1),
    expires_in_days=Int(minimum=1, maximum=3650),
)
#: Largest websocket message accepted (a security limit).
WS_MAX_MESSAGE = 64 * 1024


async def _me(call: Call, user_id: int, csrf: str) -> dict[str, Any]:
    async with call.services.sessions() as db:
        user = await db.get(User, user_id)
        assert user is not None
        skills = await user_skills(db, [user_id])
    return {"user": user_json(user, skills[user_id]), "csrf_token": csrf}


@api.route(
    "POST",
    "/auth/login",
    summary="Log in; sets the session cookie and returns a CSRF token",
    tag="session",
    role=None,
    body=LOGIN,
    errors=(401, 429),
)
async def do_login(call: Call) -> Any:
    user, cookie, session = await login(
        call.services, call.body["username"], call.body["password"], call.address
    )
    body = await _me(call, user.id, session.csrf_token)
    body["expires_at"] = to_iso(session.expires_at)
    response = json_response(body)
    set_session_cookie(response, call.services, cookie)
    return response


@api.route(
    "POST",
    "/auth/logout",
    summary="Log out; closes this user's websockets",
    tag="session",
    role="agent",
)
async def do_logout(call: Call) -> Any:
    await logout(call.services, call.user)
    await call.audit("logout", f"user:{call.user.user_id}")
    response = json_response({"status": "logged out"})
    response.del_cookie(COOKIE, path="/")
    return response


@api.route(
    "GET",
    "/auth/me",
    summary="The current user and the session's CSRF token",
    tag="session",
    role="agent",
)
async def me(call: Call) -> Any:
    return await _me(call, call.user.user_id, call.user.csrf_token)


@api.route("GET", "/tokens", summary="API tokens (never their values)", tag="session", role="admin")
async def list_tokens(call: Call) -> Any:
    async with call.services.sessions() as db:
        rows = (await db.execute(select(ApiToken).order_by(ApiToken.id))).scalars()
        return {
            "items": [
                {
                    "id": t.id,
                    "name": t.name,
                    "user_id": t.user_id,
                    "created_at": to_iso(t.created_at),
                    "expires_at": to_iso(t.expires_at),
                    "revoked": t.revoked,
                }
                for t in rows
            ]
        }


@api.route(
    "POST",
    "/tokens",
    summary="Create a bearer token for an integration (shown once)",
    tag="session",
    role="admin",
    body=TOKEN,
    status=201,
    errors=(422,),
)
async def create_token(call: Call) -> Any:
    body = call.body
    token = new_token()
    now = utcnow()
    days = body.get("expires_in_days")
    async with call.services.sessions() as db:
        if await db.get(User, body["user_id"]) is None:
            raise ApiError(422, "invalid_field", "no such user", {"field": "body.user_id"})
        row = ApiToken(
            token_hash=token_digest(token),
            user_id=body["user_id"],
            name=body["name"],
            created_at=now,
            expires_at=now + dt.timedelta(days=days) if days else None,
            revoked=False,
        )
        db.add(row)
        await db.commit()
    await call.audit("token.create", f"token:{row.id}", {"user_id": body["user_id"]})
    return {"id": row.id, "name": row.name, "token": token, "expires_at": to_iso(row.expires_at)}


@api.route(
    "DELETE",
    "/tokens/{token_id}",
    summary="Revoke a token",
    tag="session",
    role="admin",
    errors=(404,),
)
async def revoke_token(call: Call) -> Any:
    async with call.services.sessions() as db:
        row = await one(db, ApiToken, call.path_int("token_id"), "token")
        row.revoked = True
        await db.commit()
    call.services.credentials.forget(row.token_hash)
    await call.audit("token.revoke", f"token:{row.id}")
    return {"id": row.id, "revoked": True}
