"""A database outage delays records, never loses or doubles them (DESIGN decision 4).

The Recorder reaches a real PostgreSQL through a proxy the test cuts; the
result is checked on a direct connection that the cuts never touch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.clock import to_iso, utcnow
from callcenter.config import TicketSettings
from callcenter.store.db import create_engine, upgrade
from callcenter.store.models import (
    Interaction,
    SpoolCheckpoint,
    Ticket,
    TicketChange,
    TicketInteraction,
    table,
)
from callcenter.store.recorder import Recorder
from callcenter.store.records import APPLIERS, INTERACTION_RECORDED
from callcenter.store.spool import Spool
from callcenter.store.tickets import new_ticket
from tests.tcp_proxy import TcpProxy, running_proxy

WRITERS = 6
SEED = 4733
#: The longest a writer may wait for its record to be on disk, outage or not.
MAX_ACK_SECONDS = 1.0


@dataclass
class Ledger:
    """What the writers were told is safe, and when."""

    interactions: list[str] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)
    slowest: float = 0.0


@dataclass
class Outages:
    windows: list[tuple[float, float]] = field(default_factory=list)

    def acks_inside(self, ledger: Ledger) -> list[int]:
        return [sum(start <= t <= end for t in ledger.acked_at) for start, end in self.windows]


@pytest.fixture
async def direct_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url, timeout=2.0)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


def call_record(n: int) -> dict[str, Any]:
    now = utcnow()
    ticket = new_ticket(
        {"subject": f"call {n}", "category": "complaint" if n % 5 == 0 else "inquiry"},
        None,
        now,
        TicketSettings(),
    )
    return {
        "interaction": {
            "id": str(uuid.uuid4()),
            "channel": "voice" if n % 2 else "chat",
            "remote_identity": f"+8613800{n:06d}",
            "arrived_at": to_iso(now - dt.timedelta(minutes=3)),
            "answered_at": to_iso(now - dt.timedelta(minutes=2)),
            "ended_at": to_iso(now),
            "ivr_path": ["welcome", "menu"],
            "collected": {"account": f"A-{n}"},
            "notes": "回访 requested",
        },
        "ticket": ticket,
    }


async def writer(
    recorder: Recorder, ledger: Ledger, stop: asyncio.Event, rng: random.Random, base: int
) -> None:
    loop = asyncio.get_running_loop()
    n = base
    while not stop.is_set():
        record = call_record(n)
        began = loop.time()
        await recorder.record(INTERACTION_RECORDED, record)
        done = loop.time()
        ledger.slowest = max(ledger.slowest, done - began)
        ledger.acked_at.append(done)
        ledger.interactions.append(record["interaction"]["id"])
        ledger.tickets.append(record["ticket"]["id"])
        n += 1
        await asyncio.sleep(rng.uniform(0.002, 0.015))


async def outage(proxy: TcpProxy, outages: Outages, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.sleep(seconds)
    outages.windows.append((start, loop.time()))
    proxy.restore()


async def chaos(proxy: TcpProxy, outages: Outages, rng: random.Random) -> None:
    # Cuts at random moments: some land between batches, some inside one.
    for _ in range(6):
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        proxy.cut()
        await outage(proxy, outages, rng.uniform(0.2, 0.5))
    # Cuts with a commit in flight, both ways its outcome can go: the
    # database committed and the answer was lost, or the COMMIT never arrived.
    for forward in (True, False, True, False):
        fired = proxy.cut_on(b"COMMIT", forward=forward)
        await asyncio.wait_for(fired.wait(), 5)
        await outage(proxy, outages, 0.25)
    # A cut while a connection is being set up, before it could run anything.
    proxy.cut()
    fired = proxy.cut_on(b"user\x00", forward=True)
    proxy.restore()
    await asyncio.wait_for(fired.wait(), 5)
    await outage(proxy, outages, 0.25)


async def scalar(engine: AsyncEngine, stmt: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def column(engine: AsyncEngine, model: Any, name: str) -> list[Any]:
    tbl = table(model)
    async with engine.connect() as conn:
        return list((await conn.execute(select(tbl.c[name]))).scalars().all())


async def test_an_outage_delays_records_but_loses_or_doubles_none(
    direct_engine: AsyncEngine, pg_url: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    url = make_url(pg_url)
    ledger = Ledger()
    outages = Outages()
    async with running_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        # In the clear, so that the proxy can see a COMMIT go by.
        through = url.set(port=proxy.port).update_query_dict({"ssl": "disable"})
        proxied = create_engine(through.render_as_string(hide_password=False), timeout=1.0)
        spool = Spool.open(tmp_path / "spool", segment_bytes=64 * 1024)
        recorder = Recorder(
            spool,
            proxied,
            APPLIERS,
            batch_size=16,
            max_retry_seconds=0.2,
            statement_timeout=3.0,
        )
        recorder.start()
        stop = asyncio.Event()
        writers = [
            asyncio.create_task(
                writer(recorder, ledger, stop, random.Random(SEED + w), base=w * 100_000)
            )
            for w in range(WRITERS)
        ]
        try:
            await asyncio.sleep(0.3)
            await chaos(proxy, outages, rng)
            await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*writers)
            await recorder.drained(20)
            retries = recorder.retries
            rejected = recorder.rejected_count
            last_seq = spool.durable_seq
        finally:
            stop.set()
            await asyncio.gather(*writers, return_exceptions=True)
            try:
                await recorder.stop()
            finally:
                await spool.close()
                await proxied.dispose()

    # The outages were real, and writers went on through every one of them.
    assert proxy.cuts >= 11
    assert retries >= 11
    assert all(count > 0 for count in outages.acks_inside(ledger)), outages.acks_inside(ledger)
    assert ledger.slowest < MAX_ACK_SECONDS
    assert len(ledger.interactions) == last_seq

    # Every acknowledged record is in the database once, and nothing else is.
    assert rejected == 0
    assert not (tmp_path / "spool" / "rejected.jsonl").exists()
    interactions = await column(direct_engine, Interaction, "id")
    assert len(interactions) == len(set(interactions)) == len(ledger.interactions)
    assert set(interactions) == set(ledger.interactions)
    tickets = await column(direct_engine, Ticket, "id")
    assert len(tickets) == len(set(tickets)) == len(ledger.tickets)
    assert set(tickets) == set(ledger.tickets)
    links = await scalar(direct_engine, select(func.count()).select_from(table(TicketInteraction)))
    history = await scalar(direct_engine, select(func.count()).select_from(table(TicketChange)))
    assert links == history == len(ledger.tickets)
    checkpoints = table(SpoolCheckpoint)
    assert await scalar(direct_engine, select(checkpoints.c.last_seq)) == last_seq
