"""An ended contact recorded through the spool shows up in the API and on the customer's card."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import wave
from pathlib import Path
from typing import Any

from callcenter.clock import to_iso
from callcenter.config import TicketSettings
from callcenter.server import Server
from callcenter.store import records
from callcenter.store.recorder import Applied
from callcenter.store.tickets import new_ticket
from tests.conftest import ApiClient, add_user


async def test_recorded_contact_appears_with_its_ticket(client: ApiClient, server: Server) -> None:
    await client.login("agent")
    me = (await client.get("/api/v1/auth/me")).body["user"]["id"]
    customer = (
        await client.post("/api/v1/customers", {"name": "Caller", "phones": ["13800138000"]})
    ).body
    start = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
    interaction_id = str(uuid.uuid4())
    interaction = {
        "id": interaction_id,
        "channel": "voice",
        "direction": "inbound",
        "customer_id": customer["id"],
        "agent_id": me,
        "remote_identity": "+8613800138000",
        "arrived_at": to_iso(start),
        "queued_at": to_iso(start + dt.timedelta(seconds=20)),
        "offered_at": to_iso(start + dt.timedelta(seconds=31)),
        "answered_at": to_iso(start + dt.timedelta(seconds=35)),
        "ended_at": to_iso(start + dt.timedelta(seconds=300)),
        "ivr_path": ["welcome", "menu", "billing"],
        "collected": {"account": "A-1", "language": "zh-CN"},
        "disposition_code": "resolved",
        "notes": "Explained the bill",
        "csat_score": 5,
        "end_reason": "agent_hangup",
    }
    ticket = new_ticket(
        {"subject": "Bill question", "customer_id": customer["id"]}, me, start, TicketSettings()
    )
    assert server.services is not None
    outcome = await server.services.recorder.record_and_wait(
        records.INTERACTION_RECORDED, {"interaction": interaction, "ticket": ticket}, 5
    )
    assert isinstance(outcome, Applied)
    listed = await client.get("/api/v1/interactions", customer_id=str(customer["id"]))
    assert [i["id"] for i in listed.body["items"]] == [interaction_id]
    one = await client.get(f"/api/v1/interactions/{interaction_id}")
    assert one.body["ivr_path"] == ["welcome", "menu", "billing"]
    assert one.body["collected"] == {"account": "A-1", "language": "zh-CN"}
    assert one.body["ticket_ids"] == [ticket["id"]]
    assert one.body["answered_at"] == "2026-11-23T01:00:35+00:00"
    card = await client.get(f"/api/v1/customers/{customer['id']}")
    assert [h["csat_score"] for h in card.body["history"]] == [5]
    assert [t["subject"] for t in card.body["open_tickets"]] == ["Bill question"]
    linked = await client.get(f"/api/v1/tickets/{ticket['id']}")
    assert linked.body["interaction_ids"] == [interaction_id]
    window = await client.get("/api/v1/interactions", since="2026-11-23T02:00:00Z", channel="voice")
    assert window.body["items"] == []
    assert (await client.get("/api/v1/interactions/nope")).status == 404


async def test_recordings_play_for_the_agent_who_took_the_call_and_supervisors(
    client: ApiClient, server: Server, new_client: Any, tmp_path: Path
) -> None:
    await add_user(server, "agent2", "agent")
    await client.login("agent")
    me = (await client.get("/api/v1/auth/me")).body["user"]["id"]
    wav = tmp_path / "call.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x10\x00\x20\x00" * 800)
    start = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)
    interaction_id = str(uuid.uuid4())
    interaction = {
        "id": interaction_id,
        "channel": "voice",
        "agent_id": me,
        "arrived_at": to_iso(start),
        "ended_at": to_iso(start + dt.timedelta(seconds=60)),
        "recording_path": str(wav),
    }
    assert server.services is not None
    outcome = await server.services.recorder.record_and_wait(
        records.INTERACTION_RECORDED, {"interaction": interaction}, 5
    )
    assert isinstance(outcome, Applied)
    path = f"/api/v1/interactions/{interaction_id}/recording"
    assert (await client.get(f"/api/v1/interactions/{interaction_id}")).body["has_recording"]
    async with client.http.get(server.url + path) as mine:
        assert mine.status == 200 and mine.headers["Content-Type"] == "audio/wav"
        assert await mine.read() == wav.read_bytes()
    other = new_client()
    await other.login("agent2")
    assert (await other.get(path)).status == 403
    boss = new_client()
    await boss.login("super")
    async with boss.http.get(server.url + path) as heard:
        assert heard.status == 200
    admin = new_client()
    await admin.login("admin")
    for _ in range(50):  # the audit log is written through the spool
        audit = await admin.get("/api/v1/audit", action="recording.play")
        if len(audit.body["items"]) == 2:
            break
        await asyncio.sleep(0.1)
    assert [e["target"] for e in audit.body["items"]] == [f"interaction:{interaction_id}"] * 2
    assert {e["actor"] for e in audit.body["items"]} == {"agent", "super"}
