"""Bad input always gets a 4xx with a JSON body naming the problem; nothing is written."""

from __future__ import annotations

from typing import Any

import aiohttp

from callcenter.server import Server
from tests.conftest import ApiClient


async def _count_customers(client: ApiClient) -> int:
    reply = await client.get("/api/v1/customers")
    return int(reply.body["total"])


def _names_problem(reply: Any) -> str:
    assert isinstance(reply.body, dict), reply.body
    error = reply.body["error"]
    assert error["code"] and error["message"]
    assert "Traceback" not in str(reply.body) and "sqlalchemy" not in str(reply.body).lower()
    return str(error["code"])


async def test_malformed_bodies(client: ApiClient) -> None:
    await client.login("agent")
    cases: list[tuple[bytes, int, str]] = [
        (b"{not json", 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        (b"[1, 2]", 422, "invalid_field"),
        (b'{"name": 42}', 422, "invalid_field"),
        (b'{"name": "x", "tier": "gold"}', 422, "invalid_field"),
        (b'{"name": "x", "colour": "red"}', 422, "invalid_field"),
        (b'{"name": "x", "value_score": "100"}', 422, "invalid_field"),
        (b'{"name": "x", "value_score": true}', 422, "invalid_field"),
        (b'{"name": "x", "tags": "vip"}', 422, "invalid_field"),
        (b'{"name": ""}', 422, "invalid_field"),
        (b'{"name": "' + b"x" * 201 + b'"}', 422, "invalid_field"),
        (b'{"name": "nul\\u0000byte"}', 422, "invalid_field"),
        (b'{"name": null}', 422, "invalid_field"),
        (b"{}", 422, "invalid_field"),
    ]
    for raw, status, code in cases:
        reply = await client.call("POST", "/api/v1/customers", raw=raw)
        assert reply.status == status, (raw, reply.body)
        assert _names_problem(reply) == code, raw
    unknown = await client.call("POST", "/api/v1/customers", raw=b'{"name": "x", "colour": "red"}')
    assert unknown.body["error"]["field"] == "body.colour"
    wrong_type = await client.call(
        "POST", "/api/v1/customers", raw=b"<x/>", headers={"Content-Type": "text/xml"}
    )
    assert wrong_type.status == 415
    assert await _count_customers(client) == 0


async def test_oversized_body(client: ApiClient, server: Server) -> None:
    await client.login("agent")
    size = server.settings.http.max_body_bytes + 1
    reply = await client.call("POST", "/api/v1/customers", raw=b'{"notes": "' + b"a" * size + b'"}')
    assert reply.status == 413
    assert _names_problem(reply) == "body_too_large"
    assert await _count_customers(client) == 0


async def test_bad_queries_and_ids(client: ApiClient) -> None:
    await client.login("agent")
    for path, params, status in [
        ("/api/v1/customers", {"page_size": "1000"}, 400),
        ("/api/v1/customers", {"page_size": "0"}, 400),
        ("/api/v1/customers", {"page": "-1"}, 400),
        ("/api/v1/customers", {"page": "abc"}, 400),
        ("/api/v1/customers", {"sort": "name"}, 400),
        ("/api/v1/customers", {"tier": "gold"}, 400),
        ("/api/v1/tickets", {"status": "lost"}, 400),
        ("/api/v1/interactions", {"since": "yesterday"}, 400),
        ("/api/v1/interactions", {"until": "2026-01-01T00:00:00"}, 400),
        ("/api/v1/callbacks", {"due_before": "soon"}, 400),
        ("/api/v1/customers/abc", {}, 404),
        ("/api/v1/customers/99999999999999999999", {}, 404),
        ("/api/v1/customers/2147483648", {}, 404),
        ("/api/v1/customers/0", {}, 404),
        ("/api/v1/customers/%D9%A3", {}, 404),
        ("/api/v1/tickets/" + "a" * 300, {}, 404),
        ("/api/v1/nothing-here", {}, 404),
    ]:
        reply = await client.get(path, **params)
        assert reply.status == status, (path, params, reply.body)
        _names_problem(reply)
    wrong_method = await client.call("DELETE", "/api/v1/customers")
    assert wrong_method.status == 405
    _names_problem(wrong_method)


async def test_injection_strings_are_kept_as_text(client: ApiClient) -> None:
    await client.login("agent")
    nasty = [
        "Robert'); DROP TABLE customers;--",
        "<img src=x onerror=alert(1)>",
        "%_\\' OR '1'='1",
        "{{7*7}} ${7*7}",
    ]
    for name in nasty:
        reply = await client.post("/api/v1/customers", {"name": name, "notes": name})
        assert reply.status == 201
        assert reply.body["name"] == name.strip()
    for name in nasty:
        found = await client.get("/api/v1/customers", q=name[:100])
        assert found.status == 200
        assert [c["name"] for c in found.body["items"]] == [name.strip()], name
    ticket = await client.post("/api/v1/tickets", {"subject": nasty[0], "description": nasty[1]})
    assert ticket.status == 201 and ticket.body["subject"] == nasty[0]
    assert await _count_customers(client) == len(nasty)


async def test_no_internal_detail_in_errors(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            server.url + "/api/v1/auth/login",
            data=b"\x00" * 50,
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 400
            body = await response.json()
            assert set(body) == {"error"}
