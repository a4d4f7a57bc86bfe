"""Customers: E.164 phone numbers, lookup by any identity, history on the card."""

from __future__ import annotations

from tests.conftest import ApiClient


async def test_phone_numbers_are_stored_as_e164_and_found_in_any_format(client: ApiClient) -> None:
    await client.login("agent")
    reply = await client.post(
        "/api/v1/customers",
        {
            "name": "Huatai Trading 华泰贸易",
            "account_number": "A-1",
            "tier": "key",
            "phones": ["021 6234 5678", "+86 138-0013-8000"],
            "emails": ["Buyer@Huatai.Example"],
            "tags": ["vip"],
        },
    )
    assert reply.status == 201, reply.body
    assert [p["number"] for p in reply.body["phones"]] == ["+862162345678", "+8613800138000"]
    assert reply.body["emails"] == [{"email": "buyer@huatai.example"}]
    for query in (
        {"phone": "13800138000"},
        {"phone": "+8613800138000"},
        {"phone": "0086 138 0013 8000"},
        {"email": "BUYER@huatai.example"},
        {"account": "A-1"},
    ):
        found = await client.get("/api/v1/customers/lookup", **query)
        assert found.status == 200
        assert [c["name"] for c in found.body["items"]] == ["Huatai Trading 华泰贸易"], query


async def test_withheld_or_invalid_numbers_never_match(client: ApiClient) -> None:
    await client.login("agent")
    await client.post("/api/v1/customers", {"name": "Anyone", "phones": ["13800138000"]})
    for raw in ("anonymous", "unknown", "restricted", "12", "+999999"):
        found = await client.get("/api/v1/customers/lookup", phone=raw)
        assert found.status == 200 and found.body["items"] == [], raw
    bad = await client.post("/api/v1/customers", {"name": "Bad", "phones": ["13800138000", "abc"]})
    assert bad.status == 422
    assert bad.body["error"]["field"] == "body.phones[1]"
    listing = await client.get("/api/v1/customers")
    assert [c["name"] for c in listing.body["items"]] == ["Anyone"]  # nothing half-written


async def test_account_numbers_are_unique(client: ApiClient) -> None:
    await client.login("agent")
    first = await client.post("/api/v1/customers", {"name": "One", "account_number": "X-9"})
    assert first.status == 201
    second = await client.post("/api/v1/customers", {"name": "Two", "account_number": "X-9"})
    assert second.status == 409 and second.body["error"]["field"] == "body.account_number"
    other = await client.post("/api/v1/customers", {"name": "Two", "account_number": "X-10"})
    clash = await client.patch(f"/api/v1/customers/{other.body['id']}", {"account_number": "X-9"})
    assert clash.status == 409


async def test_search_and_edit(client: ApiClient) -> None:
    await client.login("agent")
    a = await client.post(
        "/api/v1/customers", {"name": "Liu Yang", "company": "Acme", "tier": "normal"}
    )
    await client.post(
        "/api/v1/customers", {"name": "Zhao Lei", "tier": "small", "emails": ["zl@x.cn"]}
    )
    found = await client.get("/api/v1/customers", q="acme")
    assert [c["name"] for c in found.body["items"]] == ["Liu Yang"]
    found = await client.get("/api/v1/customers", q="zl@x")
    assert [c["name"] for c in found.body["items"]] == ["Zhao Lei"]
    small = await client.get("/api/v1/customers", tier="small")
    assert [c["name"] for c in small.body["items"]] == ["Zhao Lei"]
    changed = await client.patch(
        f"/api/v1/customers/{a.body['id']}", {"tier": "key", "phones": ["13912345678"]}
    )
    assert changed.status == 200
    assert changed.body["tier"] == "key"
    assert changed.body["phones"] == [{"number": "+8613912345678", "label": ""}]
    card = await client.get(f"/api/v1/customers/{a.body['id']}")
    assert card.body["tier"] == "key" and card.body["history"] == []
    assert (await client.get("/api/v1/customers/999999")).status == 404
