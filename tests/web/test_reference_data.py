"""Queues, skills, callbacks, reference data and the audit log over the API."""

from __future__ import annotations

import asyncio
from typing import Any

from callcenter.server import Server
from tests.conftest import ApiClient


async def test_queues_are_managed_by_supervisors(client: ApiClient, new_client: Any) -> None:
    await client.login("super")
    assert (await client.post("/api/v1/skills", {"name": "billing"})).status == 201
    assert (await client.post("/api/v1/skills", {"name": "billing"})).status == 409
    overflow = await client.post("/api/v1/queues", {"name": "overflow"})
    assert overflow.status == 201
    made = await client.post(
        "/api/v1/queues",
        {
            "name": "billing",
            "display_name": "账务",
            "strategy": "fewest_contacts",
            "skills": {"billing": 3},
            "overflow_queue": "overflow",
            "max_wait_seconds": 120,
        },
    )
    assert made.status == 201, made.body
    assert made.body["skills"] == {"billing": 3} and made.body["overflow_queue"] == "overflow"
    assert (await client.post("/api/v1/queues", {"name": "billing"})).status == 409
    unknown_skill = await client.post("/api/v1/queues", {"name": "x", "skills": {"magic": 2}})
    assert unknown_skill.status == 422
    bad_level = await client.post("/api/v1/queues", {"name": "y", "skills": {"billing": 9}})
    assert bad_level.status == 422
    selfish = await client.patch(f"/api/v1/queues/{made.body['id']}", {"overflow_queue": "billing"})
    assert selfish.status == 422
    changed = await client.patch(f"/api/v1/queues/{made.body['id']}", {"wrapup_seconds": 45})
    assert changed.body["wrapup_seconds"] == 45
    agent = new_client()
    await agent.login("agent")
    listed = await agent.get("/api/v1/queues")
    assert [q["name"] for q in listed.body["items"]] == ["billing", "overflow"]
    assert (await agent.post("/api/v1/queues", {"name": "mine"})).status == 403


async def test_callbacks_plan_and_complete(client: ApiClient) -> None:
    await client.login("agent")
    customer = await client.post("/api/v1/customers", {"name": "Callback Person"})
    planned = await client.post(
        "/api/v1/callbacks",
        {
            "phone": "138 0013 8000",
            "due_at": "2026-12-01T10:00:00+08:00",
            "customer_id": customer.body["id"],
            "notes": "回访: satisfaction check",
        },
    )
    assert planned.status == 201, planned.body
    assert planned.body["phone"] == "+8613800138000"
    assert planned.body["due_at"] == "2026-12-01T02:00:00+00:00"
    assert (
        await client.post("/api/v1/callbacks", {"phone": "x", "due_at": "2026-12-01T10:00:00Z"})
    ).status == 422
    naive = await client.post(
        "/api/v1/callbacks", {"phone": "13800138000", "due_at": "2026-12-01T10:00"}
    )
    assert naive.status == 422 and "offset" in naive.body["error"]["message"]
    later = await client.post(
        "/api/v1/callbacks", {"phone": "13800138001", "due_at": "2026-12-02T10:00:00Z"}
    )
    due = await client.get("/api/v1/callbacks", status="pending")
    assert [c["id"] for c in due.body["items"]] == [planned.body["id"], later.body["id"]]
    done = await client.patch(
        f"/api/v1/callbacks/{planned.body['id']}",
        {"status": "done", "outcome": "Customer satisfied"},
    )
    assert done.status == 200 and done.body["completed_at"] is not None
    again = await client.patch(f"/api/v1/callbacks/{planned.body['id']}", {"status": "failed"})
    assert again.status == 409
    pending = await client.get("/api/v1/callbacks", status="pending")
    assert [c["id"] for c in pending.body["items"]] == [later.body["id"]]


async def test_reference_data(client: ApiClient) -> None:
    await client.login("super")
    code = await client.post(
        "/api/v1/dispositions", {"code": "resolved", "label_en": "Resolved", "label_zh": "已解决"}
    )
    assert code.status == 201
    canned = await client.post(
        "/api/v1/canned-responses",
        {"shortcut": "hello", "language": "zh-CN", "title": "问候", "body": "您好！"},
    )
    assert canned.status == 201
    calendar = await client.call(
        "PUT",
        "/api/v1/calendar",
        {
            "hours": [{"weekday": 0, "opens": "09:00", "closes": "18:00"}],
            "holidays": [{"day": "2027-02-06", "name": "春节"}],
        },
    )
    assert calendar.status == 200, calendar.body
    assert calendar.body["hours"] == [{"weekday": 0, "opens": "09:00", "closes": "18:00"}]
    backwards = await client.call(
        "PUT",
        "/api/v1/calendar",
        {"hours": [{"weekday": 0, "opens": "18:00", "closes": "09:00"}], "holidays": []},
    )
    assert backwards.status == 422
    assert (await client.get("/api/v1/calendar")).body["holidays"] == [
        {"day": "2027-02-06", "name": "春节"}
    ]
    listed = await client.get("/api/v1/dispositions")
    assert listed.body["items"][0]["label_zh"] == "已解决"


async def test_audit_log_says_who_did_what_from_where(client: ApiClient, server: Server) -> None:
    await client.login("agent", "wrong-password")
    await client.login("agent")
    customer = await client.post("/api/v1/customers", {"name": "Audited"})
    await client.login("admin")
    assert server.services is not None
    await server.services.recorder.drained(10)
    for _ in range(50):
        log = await client.get("/api/v1/audit")
        actions = [(a["actor"], a["action"]) for a in log.body["items"]]
        if ("agent", "customer.create") in actions:
            break
        await asyncio.sleep(0.05)
    assert ("agent", "login.failed") in actions
    assert ("agent", "login") in actions
    entry = next(a for a in log.body["items"] if a["action"] == "customer.create")
    assert entry["target"] == f"customer:{customer.body['id']}"
    assert entry["address"] == "127.0.0.1"
