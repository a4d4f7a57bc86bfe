"""The Recorder against real databases: order, exactly once, poison, outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter.clock import to_iso
from callcenter.config import TicketSettings
from callcenter.store.db import create_engine, upgrade
from callcenter.store.models import (
    Interaction,
    QueueLogEntry,
    SpoolCheckpoint,
    Ticket,
    TicketChange,
    table,
)
from callcenter.store.recorder import Applied, Applier, Pending, Recorder, Rejected
from callcenter.store.records import (
    APPLIERS,
    INTERACTION_RECORDED,
    QUEUE_LOG,
    TICKET_CREATED,
    TICKET_TRANSITIONED,
)
from callcenter.store.spool import Spool
from callcenter.store.tickets import new_ticket
from tests.tcp_proxy import running_proxy

T0 = dt.datetime(2024, 6, 1, 9, 0, tzinfo=dt.UTC)
#: Quick retries: a test waits on the backoff, never on the production default.
FAST = {"max_retry_seconds": 0.2, "statement_timeout": 5.0}


def queue_entry(n: int, entry_id: str | None = None) -> dict[str, Any]:
    return {
        "id": entry_id or str(uuid.uuid4()),
        "at": to_iso(T0 + dt.timedelta(seconds=n)),
        "contact_id": str(uuid.uuid4()),
        "queue": "sales",
        "agent": "",
        "event": "queued",
        "data": {"n": n},
    }


def interaction(
    n: int, interaction_id: str | None = None, *, with_ticket: bool = False, **fields: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "interaction": {
            "id": interaction_id or str(uuid.uuid4()),
            "channel": "voice",
            "remote_identity": f"+8613800{n:06d}",
            "arrived_at": to_iso(T0 + dt.timedelta(minutes=n)),
            **fields,
        }
    }
    if with_ticket:
        record["ticket"] = new_ticket(
            {"subject": f"call {n}"}, None, T0 + dt.timedelta(minutes=n), TicketSettings()
        )
    return record


class Attempts:
    """Wraps appliers to see every attempt, committed or not, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def wrap(self, appliers: Mapping[str, Applier]) -> dict[str, Applier]:
        def one(op: str, real: Applier) -> Applier:
            async def applier(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
                self.seen.append((op, data))
                return await real(conn, data)

            return applier

        return {op: one(op, real) for op, real in appliers.items()}


class AckLosingEngine:
    """An engine whose next ``losses`` commits succeed but are reported as failed,
    as when the connection drops after the server committed."""

    def __init__(self, engine: AsyncEngine, losses: int) -> None:
        self.engine = engine
        self.losses = losses
        self.lost = 0

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn
        if self.losses > 0:
            self.losses -= 1
            self.lost += 1
            raise ConnectionResetError("connection lost before the commit was acknowledged")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, timeout=2.0)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def running(
    folder: Path,
    engine: AsyncEngine,
    appliers: Mapping[str, Applier] = APPLIERS,
    *,
    start: bool = True,
    segment_bytes: int = 16 * 1_048_576,
    **options: Any,
) -> AsyncIterator[Recorder]:
    spool = Spool.open(folder, segment_bytes=segment_bytes)
    recorder = Recorder(spool, engine, appliers, **{**FAST, **options})
    if start:
        recorder.start()
    try:
        yield recorder
    finally:
        # stop() re-raises whatever ended the drain task: a test never hides it.
        await recorder.stop()
        await spool.close()


async def count(engine: AsyncEngine, model: Any) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(table(model)))).scalar_one()
        )


async def queue_numbers(engine: AsyncEngine) -> list[int]:
    tbl = table(QueueLogEntry)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(tbl.c.data))).scalars().all()
    return sorted(row["n"] for row in rows)


async def checkpoint(engine: AsyncEngine, spool_id: str) -> int | None:
    tbl = table(SpoolCheckpoint)
    async with engine.connect() as conn:
        stmt = select(tbl.c.last_seq).where(tbl.c.spool_id == spool_id)
        value = (await conn.execute(stmt)).scalar_one_or_none()
    return None if value is None else int(value)


def rejects(folder: Path) -> list[dict[str, Any]]:
    path = folder / "rejected.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_records_are_applied_in_order_exactly_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    attempts = Attempts()
    async with running(tmp_path, engine, attempts.wrap(APPLIERS), batch_size=7) as recorder:
        call = str(uuid.uuid4())
        for n in range(40):
            await recorder.record(QUEUE_LOG, queue_entry(n))
            if n % 10 == 0:
                # Later records about the same call overwrite earlier ones, so
                # only in-order application leaves the last version standing.
                await recorder.record(INTERACTION_RECORDED, interaction(0, call, notes=f"v{n}"))
        await recorder.drained(10)
        assert recorder.applied_seq == recorder.spool.durable_seq == 44
        assert await checkpoint(engine, recorder.spool.spool_id) == 44

    numbers = [d["data"]["n"] for op, d in attempts.seen if op == QUEUE_LOG]
    assert numbers == list(range(40))
    assert await queue_numbers(engine) == list(range(40))
    tbl = table(Interaction)
    async with engine.connect() as conn:
        notes = (await conn.execute(select(tbl.c.notes))).scalars().all()
    assert notes == ["v30"]
    assert rejects(tmp_path) == []


async def test_a_run_of_records_about_one_call_applies_in_order(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    call, other = str(uuid.uuid4()), str(uuid.uuid4())
    async with running(tmp_path, engine, start=False) as recorder:
        # Recorded before the drain starts, so they reach it as one batch.
        await recorder.record(INTERACTION_RECORDED, interaction(0, call, notes="v0"))
        await recorder.record(INTERACTION_RECORDED, interaction(0, call, with_ticket=True))
        await recorder.record(INTERACTION_RECORDED, interaction(1, other, notes="other"))
        for version in range(1, 4):
            await recorder.record(INTERACTION_RECORDED, interaction(0, call, notes=f"v{version}"))
        recorder.start()
        await recorder.drained(10)

    tbl = table(Interaction)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(tbl.c.id, tbl.c.notes))).all()
    assert sorted(rows) == sorted([(call, "v3"), (other, "other")])
    assert await count(engine, Ticket) == 1
    assert rejects(tmp_path) == []


async def test_records_made_while_stopped_are_applied_on_start(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    async with running(tmp_path, engine, start=False) as recorder:
        for n in range(10):
            await recorder.record(QUEUE_LOG, queue_entry(n))
        assert recorder.backlog == 10
        assert await count(engine, QueueLogEntry) == 0
        recorder.start()
        await recorder.drained(10)
        assert recorder.backlog == 0
    assert await queue_numbers(engine) == list(range(10))


async def test_a_restart_does_not_apply_anything_twice(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    async with running(tmp_path, engine, batch_size=4) as recorder:
        for n in range(20):
            await recorder.record(QUEUE_LOG, queue_entry(n))
        await recorder.drained(10)
        spool_id = recorder.spool.spool_id

    # A new process: a new engine, the spool reopened from its folder.
    fresh = create_engine(database_url, timeout=2.0)
    attempts = Attempts()
    try:
        async with running(tmp_path, fresh, attempts.wrap(APPLIERS), batch_size=4) as recorder:
            assert recorder.spool.spool_id == spool_id
            for n in range(20, 25):
                await recorder.record(QUEUE_LOG, queue_entry(n))
            await recorder.drained(10)
            assert await checkpoint(fresh, spool_id) == 25
    finally:
        await fresh.dispose()
    assert [d["data"]["n"] for _, d in attempts.seen] == list(range(20, 25))
    assert await queue_numbers(engine) == list(range(25))
    assert rejects(tmp_path) == []


async def test_a_lost_commit_acknowledgement_is_not_applied_again(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    losing = AckLosingEngine(engine, losses=3)
    attempts = Attempts()
    async with running(
        tmp_path, cast(AsyncEngine, losing), attempts.wrap(APPLIERS), start=False, batch_size=5
    ) as recorder:
        for n in range(12):
            await recorder.record(QUEUE_LOG, queue_entry(n))
        recorder.start()
        await recorder.drained(10)
        assert recorder.retries == 3
        assert losing.lost == 3

    # The retry of a batch whose commit did land finds it in the checkpoint.
    assert [d["data"]["n"] for _, d in attempts.seen] == list(range(12))
    assert await queue_numbers(engine) == list(range(12))
    assert rejects(tmp_path) == []


async def test_a_crash_between_commit_and_release_skips_what_was_applied(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    folder = tmp_path / "spool"
    snapshot = tmp_path / "before-release"
    async with running(folder, engine, start=False, segment_bytes=1024) as recorder:
        for n in range(60):
            await recorder.record(QUEUE_LOG, queue_entry(n))
        shutil.copytree(folder, snapshot)
        recorder.start()
        await recorder.drained(10)
        assert len(list(folder.glob("*.seg"))) < len(list(snapshot.glob("*.seg")))

    # On disk the releases never happened; in the database the commits did.
    shutil.rmtree(folder)
    shutil.copytree(snapshot, folder)
    attempts = Attempts()
    async with running(folder, engine, attempts.wrap(APPLIERS), segment_bytes=1024) as recorder:
        await recorder.record(QUEUE_LOG, queue_entry(60))
        await recorder.drained(10)
        assert recorder.applied_seq == 61
    assert [d["data"]["n"] for _, d in attempts.seen] == [60]
    assert await queue_numbers(engine) == list(range(61))
    assert rejects(tmp_path) == []


async def test_a_poison_record_is_set_aside_and_the_rest_applied(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    first = queue_entry(0)
    duplicate = queue_entry(1, entry_id=first["id"])
    orphan = interaction(2, customer_id=424242)
    good_call = interaction(3, with_ticket=True)
    async with running(tmp_path, engine, start=False) as recorder:
        await recorder.record(QUEUE_LOG, first)
        await recorder.record(QUEUE_LOG, duplicate)
        await recorder.record(INTERACTION_RECORDED, orphan)
        await recorder.record(INTERACTION_RECORDED, good_call)
        await recorder.record(QUEUE_LOG, queue_entry(4))
        recorder.start()
        await recorder.drained(10)
        assert recorder.rejected_count == 2
        # A poison record found alone is refused the same way, and said so.
        outcome = await recorder.record_and_wait(QUEUE_LOG, queue_entry(5, first["id"]), 10)
        assert isinstance(outcome, Rejected)
        assert (outcome.seq, outcome.code) == (6, "storage_refused")
        assert first["id"] not in outcome.reason  # no internal detail for the user
        await recorder.record(QUEUE_LOG, queue_entry(7))
        await recorder.drained(10)
        assert await checkpoint(engine, recorder.spool.spool_id) == 7

    set_aside = rejects(tmp_path)
    assert [(r["seq"], r["op"]) for r in set_aside] == [
        (2, QUEUE_LOG),
        (3, INTERACTION_RECORDED),
        (6, QUEUE_LOG),
    ]
    assert set_aside[0]["data"] == duplicate
    assert set_aside[1]["data"] == orphan
    assert await queue_numbers(engine) == [0, 4, 7]
    tbl = table(Interaction)
    async with engine.connect() as conn:
        ids = (await conn.execute(select(tbl.c.id))).scalars().all()
    assert ids == [good_call["interaction"]["id"]]
    assert await count(engine, Ticket) == 1

    # Set aside once: a restart neither applies nor refuses them again.
    async with running(tmp_path, engine) as recorder:
        await recorder.drained(10)
    assert len(rejects(tmp_path)) == 3


async def test_a_poison_record_stays_set_aside_when_the_database_goes_away_next(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    first = queue_entry(0)
    duplicate = queue_entry(1, entry_id=first["id"])
    after = queue_entry(2)
    failed_once: list[bool] = []

    async def flaky(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
        # The connection drops on the record right after the poison one,
        # once that one's refusal is committed.
        if data["id"] == after["id"] and not failed_once:
            failed_once.append(True)
            raise ConnectionResetError("connection lost")
        return await APPLIERS[QUEUE_LOG](conn, data)

    async with running(tmp_path, engine, {**APPLIERS, QUEUE_LOG: flaky}, start=False) as recorder:
        for entry in (first, duplicate, after, queue_entry(3)):
            await recorder.record(QUEUE_LOG, entry)
        recorder.start()
        await recorder.drained(10)
        assert failed_once
        assert recorder.retries == 1

    assert await queue_numbers(engine) == [0, 2, 3]
    assert [(r["seq"], r["data"]) for r in rejects(tmp_path)] == [(2, duplicate)]


async def test_record_and_wait_returns_what_the_applier_made(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    async with running(tmp_path, engine) as recorder:
        entry = queue_entry(0)
        outcome = await recorder.record_and_wait(QUEUE_LOG, entry, 10)
        assert outcome == Applied(1, {"id": entry["id"]})

        call = interaction(1, with_ticket=True)
        outcome = await recorder.record_and_wait(INTERACTION_RECORDED, call, 10)
        assert isinstance(outcome, Applied)
        assert outcome.result == {
            "interaction_id": call["interaction"]["id"],
            "ticket_id": call["ticket"]["id"],
            "number": call["ticket"]["number"],
        }
        move = {"id": call["ticket"]["id"], "to": "open", "at": to_iso(T0)}
        outcome = await recorder.record_and_wait(TICKET_TRANSITIONED, move, 10)
        assert outcome == Applied(3, {"ticket_id": call["ticket"]["id"], "status": "open"})


async def test_record_and_wait_reports_an_applier_refusal(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    async with running(tmp_path, engine) as recorder:
        missing = {"id": str(uuid.uuid4()), "to": "open", "at": to_iso(T0)}
        outcome = await recorder.record_and_wait(TICKET_TRANSITIONED, missing, 10)
        assert isinstance(outcome, Rejected)
        assert outcome.seq == 1
        assert outcome.code == "not_found"
        assert "does not exist" in outcome.reason

        ticket = new_ticket({"subject": "refund"}, None, T0, TicketSettings())
        assert isinstance(await recorder.record_and_wait(TICKET_CREATED, ticket, 10), Applied)
        illegal = {"id": ticket["id"], "to": "closed", "at": to_iso(T0)}
        outcome = await recorder.record_and_wait(TICKET_TRANSITIONED, illegal, 10)
        assert isinstance(outcome, Rejected)
        assert outcome.code == "illegal_transition"
        # A refused record in a batch does not hold back the next one.
        outcome = await recorder.record_and_wait(QUEUE_LOG, queue_entry(0), 10)
        assert isinstance(outcome, Applied)

    tbl = table(Ticket)
    async with engine.connect() as conn:
        status = (await conn.execute(select(tbl.c.status))).scalar_one()
    assert status == "new"
    assert await count(engine, TicketChange) == 1
    assert [(r["seq"], r["op"]) for r in rejects(tmp_path)] == [
        (1, TICKET_TRANSITIONED),
        (3, TICKET_TRANSITIONED),
    ]


def _hide_sqlite_file(path: Path, hidden: Path) -> Callable[[], None]:
    """Make the database at ``path`` unreachable; returns how to bring it back."""
    hidden.mkdir()
    for part in path.parent.glob(path.name + "*"):
        part.rename(hidden / part.name)
    # SQLite cannot open a folder: one standing where the file was makes the
    # database unreachable, the way a missing mount would.
    path.mkdir()

    def restore() -> None:
        path.rmdir()
        for part in hidden.iterdir():
            part.rename(path.parent / part.name)

    return restore


@contextlib.asynccontextmanager
async def database_away(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[str, Callable[[], None]]]:
    """A URL for the migrated database while it is unreachable, and how to bring it back."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        async with running_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxy.cut()
            yield url.set(port=proxy.port).render_as_string(hide_password=False), proxy.restore
        return
    yield database_url, _hide_sqlite_file(Path(url.database or ""), tmp_path / "hidden")


async def test_record_and_wait_is_pending_while_the_database_is_down(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    await engine.dispose()
    async with database_away(database_url, tmp_path) as (url, restore):
        unreachable = create_engine(url, timeout=1.0)
        try:
            async with running(tmp_path / "spool", unreachable) as recorder:
                entry = queue_entry(0)
                outcome = await recorder.record_and_wait(QUEUE_LOG, entry, 0.5)
                assert outcome == Pending(1)
                assert not recorder.database_up
                assert recorder.retries >= 1
                # Writers are not held up: more records go in while it is away.
                for n in range(1, 5):
                    await recorder.record(QUEUE_LOG, queue_entry(n))
                assert recorder.backlog == 5
                restore()
                await recorder.drained(10)
                assert recorder.database_up
        finally:
            await unreachable.dispose()
    assert await queue_numbers(engine) == list(range(5))


async def test_a_clashing_ticket_number_is_made_distinct_not_refused(
    database_url: str, tmp_path: Path
) -> None:
    """Random ticket numbers can clash; the second ticket gets a suffix and is kept."""
    engine = create_engine(database_url)
    await upgrade(engine)
    recorder = Recorder(Spool.open(tmp_path / "spool"), engine, APPLIERS)
    recorder.start()
    try:
        first = new_ticket({"subject": "one"}, None, dt.datetime.now(dt.UTC), TicketSettings())
        second = new_ticket({"subject": "two"}, None, dt.datetime.now(dt.UTC), TicketSettings())
        second["number"] = first["number"]
        third = new_ticket({"subject": "three"}, None, dt.datetime.now(dt.UTC), TicketSettings())
        outcomes = [
            await recorder.record_and_wait(TICKET_CREATED, data, 10) for data in (first, second)
        ]
        # In a batch of ended contacts: the batch fails on the unique index and
        # its records are applied one by one, where the clash is resolved.
        calls = [interaction(n, with_ticket=True) for n in range(3)]
        calls[1]["ticket"]["number"] = first["number"]
        third["number"] = first["number"]
        await recorder.record(TICKET_CREATED, third)
        await asyncio.gather(*(recorder.record(INTERACTION_RECORDED, c) for c in calls))
        await recorder.drained(10)
        assert all(isinstance(o, Applied) for o in outcomes)
        numbers = [o.result["number"] for o in outcomes if isinstance(o, Applied)]
        assert numbers[0] == first["number"]
        assert numbers[1] == f"{first['number']}-{second['id'][:4].upper()}"
        async with engine.connect() as conn:
            rows = await conn.execute(select(Ticket.subject, Ticket.number))
            stored = {subject: number for subject, number in rows.all()}
        assert stored == {
            "one": first["number"],
            "two": numbers[1],
            "three": f"{first['number']}-{third['id'][:4].upper()}",
            "call 0": calls[0]["ticket"]["number"],
            "call 1": f"{first['number']}-{calls[1]['ticket']['id'][:4].upper()}",
            "call 2": calls[2]["ticket"]["number"],
        }
        assert recorder.rejected_count == 0
    finally:
        await recorder.stop()
        await recorder.spool.close()
        await engine.dispose()
