"""The router's asyncio adapter: real timers and the queue log written through the spool."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from callcenter.acd import events as ev
from callcenter.acd.engine import RoutingEngine
from callcenter.acd.router import Router
from callcenter.acd.rules import QueueRules
from callcenter.state.memory import MemoryLiveState
from callcenter.store import db
from callcenter.store.models import QueueLogEntry
from callcenter.store.recorder import Recorder
from callcenter.store.records import APPLIERS
from callcenter.store.spool import Spool


async def test_offer_times_out_on_the_real_clock_and_the_queue_log_lands(
    database_url: str, tmp_path: Path
) -> None:
    engine = db.create_engine(database_url)
    await db.upgrade(engine)
    recorder = Recorder(Spool.open(tmp_path / "spool"), engine, APPLIERS)
    recorder.start()
    routing = RoutingEngine(
        Router([QueueRules("q", offer_timeout_seconds=0.3)]), MemoryLiveState(), recorder
    )
    seen: list[ev.Effect] = []
    routing.listeners.append(seen.append)
    routing.start()
    try:
        await routing.submit(ev.AgentJoined("a", {}, {"voice": 1}))
        await routing.submit(ev.AgentPresenceChanged("a", "available"))
        await routing.submit(ev.ContactArrived("c1", "q", "voice"))
        assert [type(e) for e in seen if isinstance(e, ev.Offer)] == [ev.Offer]
        for _ in range(100):
            if any(isinstance(e, ev.Withdraw) for e in seen):
                break
            await asyncio.sleep(0.02)
        assert [(e.contact_id, e.reason) for e in seen if isinstance(e, ev.Withdraw)] == [
            ("c1", "timeout")
        ]
        await routing.submit(ev.AgentPresenceChanged("a", "available"))
        await routing.submit(ev.OfferAccepted("c1", "a"))
        await routing.submit(ev.ContactLeft("c1"))
        await routing.submit(ev.WrapupDone("c1", "a"))
    finally:
        await routing.stop()
    await recorder.drained(10)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(QueueLogEntry.event).where(QueueLogEntry.contact_id == "c1"))
        ).scalars()
        events = list(rows)
    await recorder.stop()
    await recorder.spool.close()
    await engine.dispose()
    assert events == ["enqueued", "offered", "timeout", "offered", "connected", "wrapup", "done"]
