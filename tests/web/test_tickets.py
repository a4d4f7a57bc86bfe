"""Tickets over the API: the whole lifecycle, illegal moves, search."""

from __future__ import annotations

from typing import Any

from tests.conftest import ApiClient


async def _ticket(client: ApiClient, **fields: Any) -> dict[str, Any]:
    reply = await client.post("/api/v1/tickets", {"subject": "Cannot log in", **fields})
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


async def _move(client: ApiClient, ticket_id: str, to: str, **extra: Any) -> Any:
    return await client.post(f"/api/v1/tickets/{ticket_id}/transitions", {"to": to, **extra})


async def test_complaint_walks_its_whole_lifecycle(client: ApiClient) -> None:
    await client.login("agent")
    customer = await client.post("/api/v1/customers", {"name": "王芳", "tier": "key"})
    ticket = await _ticket(
        client,
        subject="账单重复扣费",
        category="complaint",
        priority="low",
        customer_id=customer.body["id"],
    )
    assert ticket["status"] == "new" and ticket["number"].startswith("T")
    # Complaints are never handled below high priority.
    assert ticket["priority"] == "high"
    assert ticket["first_responded_at"] is None
    reply = await client.post(
        f"/api/v1/tickets/{ticket['id']}/comments", {"body": "We are checking the invoice."}
    )
    assert reply.status == 201
    for step in ("open", "pending", "open"):
        reply = await _move(client, ticket["id"], step)
        assert reply.status == 200, reply.body
        assert reply.body["status"] == step
    refused = await _move(client, ticket["id"], "resolved")
    assert refused.status == 409 and "resolution" in refused.body["error"]["message"]
    resolved = await _move(
        client, ticket["id"], "resolved", resolution="Refunded the double charge"
    )
    assert resolved.status == 200 and resolved.body["resolved_at"] is not None
    reopened = await _move(client, ticket["id"], "open")
    assert reopened.body["status"] == "open" and reopened.body["resolved_at"] is None
    await _move(client, ticket["id"], "resolved", resolution="Refund confirmed by customer")
    closed = await _move(client, ticket["id"], "closed")
    assert closed.status == 200 and closed.body["closed_at"] is not None

    full = await client.get(f"/api/v1/tickets/{ticket['id']}")
    assert full.body["first_responded_at"] is not None
    assert [c["body"] for c in full.body["comments"]] == ["We are checking the invoice."]
    statuses = [(h["old"], h["new"]) for h in full.body["history"] if h["field"] == "status"]
    assert statuses == [
        (None, "new"),
        ("new", "open"),
        ("open", "pending"),
        ("pending", "open"),
        ("open", "resolved"),
        ("resolved", "open"),
        ("open", "resolved"),
        ("resolved", "closed"),
    ]
    # The customer's card shows no open ticket any more.
    card = await client.get(f"/api/v1/customers/{customer.body['id']}")
    assert card.body["open_tickets"] == []


async def test_illegal_transitions_change_nothing(client: ApiClient) -> None:
    await client.login("agent")
    ticket = await _ticket(client)
    before = await client.get(f"/api/v1/tickets/{ticket['id']}")
    for target in ("closed", "new"):
        reply = await _move(client, ticket["id"], target)
        assert reply.status == 409, reply.body
        assert reply.body["error"]["code"] == "illegal_transition"
    assert (await _move(client, ticket["id"], "archived")).status == 422
    after = await client.get(f"/api/v1/tickets/{ticket['id']}")
    assert after.body == before.body

    await _move(client, ticket["id"], "resolved")
    await _move(client, ticket["id"], "closed")
    closed = await client.get(f"/api/v1/tickets/{ticket['id']}")
    for target in ("open", "pending", "resolved", "new"):
        assert (await _move(client, ticket["id"], target)).status == 409
    assert (await client.patch(f"/api/v1/tickets/{ticket['id']}", {"subject": "x"})).status == 409
    reply = await client.post(f"/api/v1/tickets/{ticket['id']}/comments", {"body": "late"})
    assert reply.status == 409
    assert (await client.get(f"/api/v1/tickets/{ticket['id']}")).body == closed.body


async def test_edits_are_kept_in_history(client: ApiClient) -> None:
    await client.login("agent")
    me = await client.get("/api/v1/auth/me")
    ticket = await _ticket(client)
    reply = await client.patch(
        f"/api/v1/tickets/{ticket['id']}",
        {"priority": "urgent", "assignee_id": me.body["user"]["id"], "subject": "Cannot log in"},
    )
    assert reply.status == 200 and reply.body["priority"] == "urgent"
    history = (await client.get(f"/api/v1/tickets/{ticket['id']}")).body["history"]
    fields = {h["field"]: (h["old"], h["new"]) for h in history}
    assert fields["priority"] == ("normal", "urgent")
    assert fields["assignee_id"] == (None, str(me.body["user"]["id"]))
    assert "subject" not in fields  # unchanged values leave no history
    bad = await client.patch(f"/api/v1/tickets/{ticket['id']}", {"assignee_id": 999999})
    assert bad.status == 422


async def test_search_filters_and_pages(client: ApiClient) -> None:
    await client.login("agent")
    me = (await client.get("/api/v1/auth/me")).body["user"]["id"]
    customer = (await client.post("/api/v1/customers", {"name": "Searcher"})).body["id"]
    await _ticket(client, subject="Printer jam 100% of the time", category="fault")
    await _ticket(client, subject="Refund request", category="request", customer_id=customer)
    await _ticket(client, subject="Wrong refund amount", category="complaint", assignee_id=me)
    for n in range(4):
        await _ticket(client, subject=f"Question {n}")

    async def subjects(**query: str) -> list[str]:
        reply = await client.get("/api/v1/tickets", **query)
        assert reply.status == 200, reply.body
        return sorted(t["subject"] for t in reply.body["items"])

    assert await subjects(q="refund") == ["Refund request", "Wrong refund amount"]
    assert await subjects(q="100%") == ["Printer jam 100% of the time"]
    assert await subjects(category="complaint") == ["Wrong refund amount"]
    assert await subjects(customer_id=str(customer)) == ["Refund request"]
    assert await subjects(assignee_id=str(me)) == ["Wrong refund amount"]
    assert await subjects(status="open") == []
    page1 = await client.get("/api/v1/tickets", page_size="3", page="1")
    page3 = await client.get("/api/v1/tickets", page_size="3", page="3")
    assert page1.body["total"] == 7 and len(page1.body["items"]) == 3
    assert len(page3.body["items"]) == 1
    too_big = await client.get("/api/v1/tickets", page_size="100000")
    assert too_big.status == 400 and too_big.body["error"]["code"] == "page_size_too_large"


async def test_unknown_ticket_is_404(client: ApiClient) -> None:
    await client.login("agent")
    missing = "7d0f4f0e-1111-4222-8333-944455556666"
    assert (await client.get(f"/api/v1/tickets/{missing}")).status == 404
    assert (await client.get("/api/v1/tickets/not-a-uuid")).status == 404
    assert (await _move(client, missing, "open")).status == 404
    reply = await client.post(f"/api/v1/tickets/{missing}/comments", {"body": "hello"})
    assert reply.status == 404
