"""A database outage seen from the API: work is recorded, answered 202, applied later."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from callcenter.config import DatabaseSettings
from callcenter.server import Server
from tests.conftest import ApiClient, add_user, make_settings
from tests.tcp_proxy import TcpProxy, running_proxy


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


@pytest.fixture
async def proxied(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[Server, TcpProxy]]:
    target = urlsplit(pg_url)
    async with running_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        settings = make_settings(_through(pg_url, proxy.port), tmp_path)
        settings = dataclasses.replace(
            settings,
            database=DatabaseSettings(url=settings.database.url, timeout_seconds=1.0, pool_size=2),
            spool=dataclasses.replace(
                settings.spool, apply_wait_seconds=0.5, max_retry_seconds=0.2
            ),
        )
        server = Server(settings)
        await server.start()
        try:
            await add_user(server, "agent", "agent")
            yield server, proxy
        finally:
            proxy.restore()
            await server.stop()


async def test_tickets_opened_during_an_outage_arrive_once(
    proxied: tuple[Server, TcpProxy],
) -> None:
    server, proxy = proxied
    client = ApiClient(server.url)
    try:
        assert (await client.login("agent")).status == 200
        before = await client.post("/api/v1/tickets", {"subject": "Before the outage"})
        assert before.status == 201

        proxy.cut()
        health = await client.get("/healthz")
        assert health.status == 503 and health.body["error"]["code"] == "database_unavailable"
        reads = await client.get("/api/v1/customers")
        assert reads.status == 503 and reads.headers["Retry-After"]
        accepted = []
        for n in range(5):
            reply = await client.post("/api/v1/tickets", {"subject": f"During the outage {n}"})
            assert reply.status == 202, reply.body
            assert reply.body["status"] == "recorded" and reply.body["number"].startswith("T")
            accepted.append(reply.body)
        # A change to a ticket that is itself still waiting is applied after it, in order.
        comment = await client.post(
            f"/api/v1/tickets/{accepted[0]['id']}/comments", {"body": "Customer called again"}
        )
        assert comment.status == 202
        assert server.services is not None
        assert server.services.recorder.backlog >= 6

        proxy.restore()
        await server.services.recorder.drained(20)
        assert (await client.get("/healthz")).status == 200
        listing = await client.get("/api/v1/tickets", page_size="50")
        subjects = sorted(t["subject"] for t in listing.body["items"])
        assert subjects == ["Before the outage"] + [f"During the outage {n}" for n in range(5)]
        numbers = {t["number"] for t in listing.body["items"]}
        assert {a["number"] for a in accepted} <= numbers
        first = await client.get(f"/api/v1/tickets/{accepted[0]['id']}")
        assert [c["body"] for c in first.body["comments"]] == ["Customer called again"]
        await asyncio.sleep(0)
    finally:
        await client.close()
