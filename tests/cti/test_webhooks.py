"""Webhooks: signed, delivered to a real receiver on loopback, retried, guarded."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from callcenter.config import WebhookSettings
from callcenter.cti.webhooks import address_allowed, backoff_seconds, signature
from callcenter.server import Server
from tests.conftest import ApiClient, add_user, make_settings


class Receiver:
    """A stand-in for the company's CRM: records what arrives, fails when told to."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.failures_left = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        if self.failures_left > 0:
            self.failures_left -= 1
            return web.Response(status=503)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def test_signature_backoff_and_address_rules() -> None:
    body = b'{"type":"offer"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s3cret", 1_700_000_000, body) == f"sha256={expected}"
    rng = random.Random(1)
    waits = [backoff_seconds(n, rng) for n in range(1, 16)]
    assert 2.5 <= waits[0] <= 5 and max(waits) <= 3600 and waits[10] > waits[2]
    for address in (
        "127.0.0.1",
        "::1",
        "169.254.169.254",
        "10.1.2.3",
        "192.168.0.1",
        "fe80::1",
        "0.0.0.0",
    ):
        assert not address_allowed(address, False), address
        assert address_allowed(address, True)
    assert address_allowed("93.184.216.34", False)


async def _run_with_hook(
    tmp_path: Path, database_url: str, allow_private: bool
) -> tuple[Receiver, Any]:
    receiver = Receiver()
    await receiver.start()
    settings = make_settings(database_url, tmp_path)
    settings = dataclasses.replace(
        settings,
        webhooks=WebhookSettings(
            allow_private_targets=allow_private,
            poll_seconds=0.05,
            retry_base_seconds=0.1,
            timeout_seconds=2,
        ),
    )
    server = Server(settings)
    await server.start()
    return receiver, server


async def test_events_are_signed_delivered_and_retried(database_url: str, tmp_path: Path) -> None:
    receiver, server = await _run_with_hook(tmp_path, database_url, allow_private=True)
    client = ApiClient(server.url)
    try:
        await add_user(server, "admin", "admin")
        await client.login("admin")
        assert (await client.post("/api/v1/queues", {"name": "chat"})).status == 201
        made = await client.post(
            "/api/v1/webhooks", {"url": receiver.url, "events": ["contact_ended"]}
        )
        assert made.status == 201, made.body
        secret = made.body["secret"]
        receiver.failures_left = 2
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.url + "/ws/chat", headers={"Origin": server.url})
            await ws.send_json({"type": "start", "name": "Hook", "message": "hi"})
            queued = await ws.receive_json(timeout=5)
            await ws.send_json({"type": "end"})
            await ws.close()
        for _ in range(200):
            if len(receiver.received) >= 3:
                break
            await asyncio.sleep(0.05)
        assert len(receiver.received) == 3  # two refusals, then delivered
        deliveries = {h["X-Callcenter-Delivery"] for h, _ in receiver.received}
        assert len(deliveries) == 1  # the same delivery each time
        headers, body = receiver.received[-1]
        assert headers["X-Callcenter-Event"] == "contact_ended"
        stamp = int(headers["X-Callcenter-Timestamp"])
        assert headers["X-Callcenter-Signature"] == signature(secret, stamp, body)
        event = json.loads(body)
        assert event["type"] == "contact_ended"
        assert event["data"] == {"contact_id": queued["contact_id"], "outcome": "abandoned"}
        listed = await client.get("/api/v1/webhooks")
        for _ in range(50):
            if listed.body["items"][0]["deliveries"] == {"delivered": 1}:
                break
            await asyncio.sleep(0.05)
            listed = await client.get("/api/v1/webhooks")
        assert listed.body["items"][0]["deliveries"] == {"delivered": 1}
        assert "secret" not in listed.body["items"][0]
        bad = await client.post("/api/v1/webhooks", {"url": "ftp://example.com/x"})
        assert bad.status == 422
    finally:
        await client.close()
        await server.stop()
        await receiver.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_loopback_targets_are_refused_by_default(database_url: str, tmp_path: Path) -> None:
    receiver, server = await _run_with_hook(tmp_path, database_url, allow_private=False)
    client = ApiClient(server.url)
    try:
        await add_user(server, "admin", "admin")
        await client.login("admin")
        await client.post("/api/v1/queues", {"name": "chat"})
        made = await client.post("/api/v1/webhooks", {"url": receiver.url})
        assert made.status == 201
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.url + "/ws/chat", headers={"Origin": server.url})
            await ws.send_json({"type": "start", "name": "Hook", "message": "hi"})
            await ws.receive_json(timeout=5)
            await ws.close()
        assert server.services is not None
        from sqlalchemy import select

        from callcenter.store.models import WebhookDelivery

        errors: list[str] = []
        for _ in range(100):
            await server.services.recorder.drained(5)
            async with server.services.sessions() as db:
                errors = [
                    d.last_error for d in (await db.execute(select(WebhookDelivery))).scalars()
                ]
            if errors and all(errors):
                break
            await asyncio.sleep(0.05)
        assert errors and all("forbidden" in e for e in errors), (errors, receiver.received)
        assert receiver.received == []
    finally:
        await client.close()
        await server.stop()
        await receiver.stop()
