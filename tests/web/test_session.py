"""Logging in and out, sessions, CSRF, throttling, bearer tokens, roles."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from callcenter.server import Server
from callcenter.store.models import Session
from callcenter.web.api import ROLE_RANK
from callcenter.web.routes import api
from tests.conftest import ApiClient


async def test_health_and_login(client: ApiClient) -> None:
    reply = await client.get("/healthz")
    assert reply.status == 200 and reply.body["status"] == "ok"
    reply = await client.login("agent")
    assert reply.status == 200, reply.body
    assert reply.body["user"]["role"] == "agent"
    assert reply.body["user"]["sip_secret_set"] is True
    cookie = reply.headers.getall("Set-Cookie")[0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    me = await client.get("/api/v1/auth/me")
    assert me.status == 200 and me.body["user"]["username"] == "agent"


async def test_wrong_password_and_unknown_user_look_the_same(client: ApiClient) -> None:
    wrong = await client.login("agent", "not-the-password")
    unknown = await client.login("nobody", "not-the-password")
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body
    assert (await client.get("/api/v1/auth/me")).status == 401


async def test_failed_logins_are_throttled(client: ApiClient, server: Server) -> None:
    limit = server.settings.auth.login_max_failures
    for _ in range(limit):
        assert (await client.login("agent", "wrong-password")).status == 401
    locked = await client.login("agent")  # right password, but locked now
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert locked.body["error"]["code"] == "too_many_attempts"


async def test_csrf_token_required_for_changes(client: ApiClient) -> None:
    await client.login("agent")
    token, client.csrf = client.csrf, ""
    reply = await client.post("/api/v1/customers", {"name": "No Token"})
    assert reply.status == 403 and reply.body["error"]["code"] == "csrf"
    client.csrf = "forged"
    assert (await client.post("/api/v1/customers", {"name": "Forged"})).status == 403
    client.csrf = token
    assert (await client.post("/api/v1/customers", {"name": "With Token"})).status == 201
    listing = await client.get("/api/v1/customers")
    assert [c["name"] for c in listing.body["items"]] == ["With Token"]


async def test_logout_ends_session_and_closes_websockets(client: ApiClient, server: Server) -> None:
    await client.login("agent")
    ws = await client.console()
    welcome = await ws.receive_json(timeout=5)
    assert welcome["type"] == "welcome" and welcome["user"] == "agent"
    await ws.send_json({"type": "ping", "ref": "p1"})
    replies = [await ws.receive_json(timeout=5) for _ in range(3)]
    assert {"type": "pong", "ref": "p1"} in replies
    assert (await client.post("/api/v1/auth/logout")).status == 200
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == 4001
    assert (await client.get("/api/v1/auth/me")).status == 401


async def test_websocket_needs_a_session_its_role_and_our_origin(
    server: Server, client: ApiClient
) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/ws/agent", "/ws/supervisor"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(server.url + path, headers={"Origin": server.url})
            assert info.value.status == 401
    await client.login("agent")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.http.ws_connect(server.url + "/ws/supervisor", headers={"Origin": server.url})
    assert info.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.http.ws_connect(
            server.url + "/ws/agent", headers={"Origin": "https://evil.example"}
        )
    assert info.value.status == 403
    # Without the session's CSRF token the hello is refused and the socket closed.
    ws = await client.http.ws_connect(server.url + "/ws/agent", headers={"Origin": server.url})
    await ws.send_json({"type": "hello", "csrf_token": "forged"})
    reply = await ws.receive_json(timeout=5)
    assert reply["code"] == "csrf"
    assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()


async def test_expired_session_is_refused(client: ApiClient, server: Server) -> None:
    await client.login("agent")
    assert server.services is not None
    async with server.services.sessions() as db:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        await db.execute(update(Session).values(expires_at=past))
        await db.commit()
    reply = await client.get("/api/v1/auth/me")
    assert reply.status == 401 and "ended" in reply.body["error"]["message"]


async def test_idle_session_is_refused(client: ApiClient, server: Server) -> None:
    await client.login("agent")
    assert server.services is not None
    idle = dt.timedelta(seconds=server.settings.auth.session_idle_seconds + 1)
    async with server.services.sessions() as db:
        await db.execute(update(Session).values(last_seen_at=dt.datetime.now(dt.UTC) - idle))
        await db.commit()
    assert (await client.get("/api/v1/auth/me")).status == 401


async def test_bearer_token_for_integrations(client: ApiClient, new_client: Any) -> None:
    await client.login("admin")
    users = await client.get("/api/v1/users", role="agent")
    agent_id = users.body["items"][0]["id"]
    made = await client.post("/api/v1/tokens", {"name": "crm-sync", "user_id": agent_id})
    assert made.status == 201
    integration = new_client()
    bearer = {"Authorization": f"Bearer {made.body['token']}"}
    reply = await integration.call("GET", "/api/v1/customers", headers=bearer)
    assert reply.status == 200
    # A bearer call needs no CSRF token, and acts with its user's role only.
    created = await integration.call(
        "POST", "/api/v1/customers", {"name": "Via Token"}, headers=bearer
    )
    assert created.status == 201
    assert (await integration.call("GET", "/api/v1/users", headers=bearer)).status == 403
    listed = await client.get("/api/v1/tokens")
    assert "token" not in listed.body["items"][0]
    assert (await client.call("DELETE", f"/api/v1/tokens/{made.body['id']}")).status == 200
    assert (await integration.call("GET", "/api/v1/customers", headers=bearer)).status == 401
    junk = await integration.call(
        "GET", "/api/v1/customers", headers={"Authorization": "Bearer nope"}
    )
    assert junk.status == 401


def _example_path(path: str) -> str:
    """The route's path with every parameter filled in with a plausible value."""
    uuid_like = "00000000-0000-0000-0000-000000000000"
    return re.sub(
        r"{(\w+)}",
        lambda m: uuid_like if m.group(1) in ("ticket_id", "interaction_id") else "1",
        path,
    )


async def test_every_endpoint_checks_login_and_role(client: ApiClient, new_client: Any) -> None:
    """Walk every declared route: anonymous -> 401, too low a role -> 403."""
    agent = new_client()
    await agent.login("agent")
    supervisor = new_client()
    await supervisor.login("super")
    checked = 0
    for route in api.routes:
        path = "/api/v1" + _example_path(route.path)
        assert "{" not in path
        if route.role is None:
            continue
        anonymous = await client.call(route.method, path, {} if route.body else None)
        assert anonymous.status == 401, (route.method, route.path, anonymous.body)
        lower = [
            c
            for role, c in (("agent", agent), ("supervisor", supervisor))
            if ROLE_RANK[role] < ROLE_RANK[route.role]
        ]
        for caller in lower:
            reply = await caller.call(route.method, path, {} if route.body else None)
            assert reply.status == 403, (route.method, route.path, reply.body)
        checked += 1
    assert checked >= 30


async def test_supervisor_cannot_make_an_admin(client: ApiClient) -> None:
    await client.login("super")
    reply = await client.post(
        "/api/v1/users", {"username": "boss", "password": "long-enough-1", "role": "admin"}
    )
    assert reply.status == 403
    made = await client.post(
        "/api/v1/users",
        {
            "username": "1009",
            "password": "long-enough-1",
            "role": "agent",
            "skills": {},
            "sip_extension": "1009",
            "sip_secret": "another-secret",
        },
    )
    assert made.status == 201, made.body
    assert made.body["sip_secret_set"] is True
    promote = await client.patch(f"/api/v1/users/{made.body['id']}", {"role": "admin"})
    assert promote.status == 403


async def test_password_change_ends_sessions(client: ApiClient, new_client: Any) -> None:
    agent = new_client()
    await agent.login("agent")
    me = await agent.get("/api/v1/auth/me")
    await client.login("admin")
    reply = await client.patch(
        f"/api/v1/users/{me.body['user']['id']}", {"password": "a-new-password"}
    )
    assert reply.status == 200
    assert (await agent.get("/api/v1/auth/me")).status == 401
    assert (await agent.login("agent", "a-new-password")).status == 200


@pytest.mark.settings(http={"public_url": "https://cc.example.com"})
async def test_console_behind_a_proxy_is_accepted_from_the_public_origin(
    client: ApiClient, server: Server
) -> None:
    await client.login("agent")
    ws = await client.http.ws_connect(
        server.url + "/ws/agent", headers={"Origin": "https://cc.example.com"}
    )
    await ws.send_json({"type": "hello", "csrf_token": client.csrf})
    assert (await ws.receive_json(timeout=5))["type"] == "welcome"
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.http.ws_connect(
            server.url + "/ws/agent", headers={"Origin": "https://other.example.com"}
        )
