"""Benchmark of the durable write path: ended contacts logged as interactions with tickets.

Project path: ``--writers`` concurrent writers each await
``Recorder.record("interaction.recorded", ...)`` (the durable ack), exactly as
the server does when a contact ends; the clock stops once the drain task has
applied every record to PostgreSQL.

Ceiling: the same rows, column for column, written with raw asyncpg by the
same number of writers into a second database migrated the same way, one
transaction per contact (interaction, ticket, ticket history row, link), as
a server writing straight to the database would. The rows are built before
the clock starts, so the ceiling is what the database takes from a lean
client. The drain commits a few hundred records per transaction, so the
ratio can exceed 1: the spool's batching then more than pays for the spool.

Run from the project root::

    .venv/bin/python bench/tickets.py [--count N] [--writers W] [--quick]

The last line printed is one JSON object with the figures. The exit status is
non-zero when the database does not hold exactly the rows written.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event

from callcenter.clock import from_iso, to_iso
from callcenter.config import DatabaseSettings, Settings, SpoolSettings, TicketSettings
from callcenter.services import close_services, open_services
from callcenter.store import db
from callcenter.store.recorder import Recorder
from callcenter.store.records import INTERACTION_RECORDED
from callcenter.store.tickets import new_ticket

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DEFAULT_COUNT = 20_000
QUICK_COUNT = 2_000
DEFAULT_WRITERS = 16
AGENTS = 40
CUSTOMERS = 2_000
QUEUES = ("billing", "support", "sales", "complaints")
#: Contacts spread over this many days, as a month of traffic would be.
SPAN_DAYS = 30
#: Tables every contact writes one row to; each must end with exactly ``count`` rows.
WRITTEN_TABLES = ("interactions", "tickets", "ticket_changes", "ticket_interactions")
DRAIN_TIMEOUT_SECONDS = 120.0


class VerificationFailed(Exception):
    """The database does not hold exactly the rows the benchmark wrote."""


# -- the contacts -------------------------------------------------------------

_REASONS: dict[str, tuple[str, str]] = {
    # reason: (ticket category, subject)
    "billing": ("inquiry", "Question about an invoice"),
    "refund": ("request", "Refund of a double charge"),
    "outage": ("fault", "Service down since this morning"),
    "complaint": ("complaint", "Rude treatment at the branch"),
    "address": ("request", "Change of delivery address"),
    "feedback": ("feedback", "Suggestion for the mobile app"),
}
_QUEUE_OF = {
    "billing": "billing",
    "refund": "billing",
    "outage": "support",
    "complaint": "complaints",
    "address": "support",
    "feedback": "sales",
}
_NOTES = (
    "Customer verified with account number and date of birth.",
    "Explained the charges on the last two invoices.",
    "Promised a call back once the technician has reported.",
    "客户要求尽快处理，已升级给主管。",
    "Offered a goodwill credit; customer accepted.",
    "Reset the line remotely and confirmed the service works.",
    "Customer was unhappy with the waiting time.",
)
_DISPOSITIONS = ("resolved", "follow_up", "escalated", "information_given", "transferred")
_END_REASONS = ("caller_hangup", "agent_hangup", "customer_left", "transfer")


@dataclass(frozen=True, slots=True)
class CeilingRows:
    """One contact as asyncpg arguments for the four INSERTs of the ceiling."""

    interaction: tuple[Any, ...]
    ticket: tuple[Any, ...]
    change: tuple[Any, ...]
    link: tuple[Any, ...]


def make_contact(
    rng: random.Random, start: dt.datetime, settings: TicketSettings, taken: set[str]
) -> dict[str, Any]:
    """The ``interaction.recorded`` payload of one ended contact and the ticket it opens."""
    channel = "voice" if rng.random() < 0.7 else "chat"
    reason = rng.choice(tuple(_REASONS))
    category, subject = _REASONS[reason]
    interaction_id = str(uuid.uuid4())
    customer_id = rng.randint(1, CUSTOMERS) if rng.random() < 0.85 else None
    agent_id = rng.randint(1, AGENTS)
    arrived = start + dt.timedelta(seconds=rng.uniform(0, SPAN_DAYS * 86_400))
    queued = arrived + dt.timedelta(seconds=rng.uniform(8, 90))
    offered = queued + dt.timedelta(seconds=rng.expovariate(1 / 40))
    answered = offered + dt.timedelta(seconds=rng.uniform(2, 15))
    ended = answered + dt.timedelta(seconds=rng.lognormvariate(5.5, 0.6))
    language = "zh-CN" if rng.random() < 0.3 else "en"
    notes = " ".join(rng.sample(_NOTES, rng.randint(1, 3)))
    if channel == "voice":
        identity = f"+44{rng.randint(7_000_000_000, 7_999_999_999)}"
        ivr_path = ["welcome", "language", "main_menu", reason]
        if rng.random() < 0.4:
            ivr_path.insert(3, "identify")
        recording: str | None = f"recordings/{arrived:%Y/%m/%d}/{interaction_id}.wav"
        transcript: list[str] = []
    else:
        identity = f"visitor-{rng.getrandbits(48):012x}@chat"
        ivr_path = ["pre_chat_form", reason]
        recording = None
        transcript = [
            f"{'customer' if i % 2 == 0 else 'agent'}: {rng.choice(_NOTES)}"
            for i in range(rng.randint(4, 16))
        ]
    collected: dict[str, Any] = {"language": language, "reason": reason}
    if customer_id is not None:
        collected["account_number"] = f"ACC-{customer_id:06d}"
    if rng.random() < 0.3:
        collected["callback_number"] = f"+44{rng.randint(7_000_000_000, 7_999_999_999)}"
    csat = rng.choices((None, 1, 2, 3, 4, 5), weights=(30, 4, 6, 15, 25, 20))[0]
    interaction = {
        "id": interaction_id,
        "channel": channel,
        "direction": "inbound" if rng.random() < 0.9 else "outbound",
        "customer_id": customer_id,
        "queue_id": QUEUES.index(_QUEUE_OF[reason]) + 1,
        "agent_id": agent_id,
        "remote_identity": identity,
        "arrived_at": to_iso(arrived),
        "queued_at": to_iso(queued),
        "offered_at": to_iso(offered),
        "answered_at": to_iso(answered),
        "ended_at": to_iso(ended),
        "ivr_path": ivr_path,
        "collected": collected,
        "disposition_code": rng.choice(_DISPOSITIONS),
        "notes": notes,
        "recording_path": recording,
        "transcript": transcript,
        "csat_score": csat,
        "end_reason": rng.choice(_END_REASONS),
    }
    request = {
        "subject": subject,
        "description": notes,
        "category": category,
        "priority": rng.choices(("low", "normal", "high", "urgent"), weights=(2, 6, 2, 1))[0],
        "customer_id": customer_id,
        "assignee_id": agent_id,
    }
    # Ticket numbers carry 30 random bits a day; a clash is rare but would make
    # the record refused, and the benchmark is about throughput, not clashes.
    while True:
        ticket = new_ticket(request, agent_id, ended, settings)
        if ticket["number"] not in taken:
            taken.add(ticket["number"])
            break
    return {"interaction": interaction, "ticket": ticket}


def make_contacts(count: int, seed: int, taken: set[str]) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    settings = TicketSettings()
    start = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    return [make_contact(rng, start, settings, taken) for _ in range(count)]


_INTERACTION_COLUMNS = (
    "id",
    "channel",
    "direction",
    "customer_id",
    "queue_id",
    "agent_id",
    "remote_identity",
    "arrived_at",
    "queued_at",
    "offered_at",
    "answered_at",
    "ended_at",
    "ivr_path",
    "collected",
    "disposition_code",
    "notes",
    "recording_path",
    "transcript",
    "csat_score",
    "end_reason",
)
_INTERACTION_TIMES = frozenset({"arrived_at", "queued_at", "offered_at", "answered_at", "ended_at"})
_INTERACTION_JSON = frozenset({"ivr_path", "collected", "transcript"})
_TICKET_COLUMNS = (
    "id",
    "number",
    "subject",
    "description",
    "category",
    "priority",
    "status",
    "customer_id",
    "assignee_id",
    "created_by_id",
    "created_at",
    "updated_at",
    "first_response_due",
    "resolution_due",
    "resolution",
)
_TICKET_TIMES = frozenset({"created_at", "updated_at", "first_response_due", "resolution_due"})


def _placeholders(count: int) -> str:
    return ", ".join(f"${i}" for i in range(1, count + 1))


# Built from this module's constant column lists, never from input.
INSERT_INTERACTION = (
    f"INSERT INTO interactions ({', '.join(_INTERACTION_COLUMNS)}) "  # noqa: S608
    f"VALUES ({_placeholders(len(_INTERACTION_COLUMNS))})"
)
INSERT_TICKET = (
    f"INSERT INTO tickets ({', '.join(_TICKET_COLUMNS)}) "  # noqa: S608
    f"VALUES ({_placeholders(len(_TICKET_COLUMNS))})"
)
INSERT_CHANGE = (
    "INSERT INTO ticket_changes (ticket_id, actor_id, field, old_value, new_value, at) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
INSERT_LINK = "INSERT INTO ticket_interactions (ticket_id, interaction_id) VALUES ($1, $2)"


def ceiling_rows(payload: dict[str, Any]) -> CeilingRows:
    """The rows the appliers write for ``payload``, with the values they write."""
    interaction = payload["interaction"]
    ticket = payload["ticket"]
    values: list[Any] = []
    for name in _INTERACTION_COLUMNS:
        value = interaction[name]
        if name in _INTERACTION_TIMES:
            value = from_iso(value)
        elif name in _INTERACTION_JSON:
            value = json.dumps(value)
        values.append(value)
    # ``resolution`` is not in the payload; the model's default ("") fills it.
    ticket_values = [
        from_iso(ticket[name]) if name in _TICKET_TIMES else ticket.get(name, "")
        for name in _TICKET_COLUMNS
    ]
    created_at = from_iso(ticket["created_at"])
    return CeilingRows(
        interaction=tuple(values),
        ticket=tuple(ticket_values),
        change=(
            ticket["id"],
            ticket["created_by_id"],
            "status",
            None,
            ticket["status"],
            created_at,
        ),
        link=(ticket["id"], interaction["id"]),
    )


# -- databases ----------------------------------------------------------------


def sqlalchemy_url(asyncpg_url: str) -> str:
    return asyncpg_url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def create_database(name: str) -> str:
    """Create an empty database, migrate it, seed the reference rows; returns its asyncpg URL."""
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    engine = db.create_engine(sqlalchemy_url(url))
    try:
        await db.upgrade(engine)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await seed_reference(conn)
    finally:
        await conn.close()
    return url


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def seed_reference(conn: asyncpg.Connection) -> None:
    """Agents, queues and customers the interactions point to (foreign keys)."""
    now = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    await conn.executemany(
        "INSERT INTO users (id, username, display_name, role, password_hash, demo_credential,"
        " chat_capacity, language, active, created_at, updated_at)"
        " VALUES ($1, $2, $3, 'agent', 'x', false, 3, 'en', true, $4, $4)",
        [(i, f"agent{i}", f"Agent {i}", now) for i in range(1, AGENTS + 1)],
    )
    await conn.executemany(
        "INSERT INTO queues (id, name, display_name, channel, strategy, sl_target_percent,"
        " sl_threshold_seconds, priority, wrapup_seconds, offer_timeout_seconds, created_at)"
        " VALUES ($1, $2, $3, 'any', 'longest_idle', 80, 20, 0, 30, 20, $4)",
        [(i, name, name.title(), now) for i, name in enumerate(QUEUES, start=1)],
    )
    await conn.executemany(
        "INSERT INTO customers (id, name, account_number, company, tier, value_score, notes,"
        " tags, language, created_at, updated_at)"
        " VALUES ($1, $2, $3, '', $4, 0, '', '[]', 'en', $5, $5)",
        [
            (i, f"Customer {i}", f"ACC-{i:06d}", ("key", "normal", "small")[i % 3], now)
            for i in range(1, CUSTOMERS + 1)
        ],
    )


async def count_rows(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return {
            name: int(await conn.fetchval(f"SELECT count(*) FROM {name}"))  # noqa: S608
            for name in WRITTEN_TABLES
        }
    finally:
        await conn.close()


async def empty_written_tables(url: str) -> None:
    """Drop what the warm-up wrote, so the measured run ends with exactly ``count`` rows."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(f"TRUNCATE {', '.join(WRITTEN_TABLES)} CASCADE")
    finally:
        await conn.close()


def verify(where: str, counts: dict[str, int], expected: int) -> None:
    wrong = {name: n for name, n in counts.items() if n != expected}
    if wrong:
        raise VerificationFailed(f"{where}: expected {expected} rows in each table, found {wrong}")


# -- the project path ---------------------------------------------------------


@dataclass(slots=True)
class ProjectResult:
    elapsed: float
    acked_after: float
    latencies: list[float]
    fsync_rounds: int
    drain_batches: int


async def run_project(
    url: str,
    spool_dir: Path,
    warmup: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
    writers: int,
) -> ProjectResult:
    settings = Settings(
        database=DatabaseSettings(url=sqlalchemy_url(url)),
        spool=SpoolSettings(directory=str(spool_dir)),
    )
    services = await open_services(settings, upgrade=True)
    recorder = services.recorder
    commits = 0

    def on_commit(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    try:
        await record_all(recorder, warmup, writers, [], set())
        await recorder.drained(DRAIN_TIMEOUT_SECONDS)
        await empty_written_tables(url)
        latencies: list[float] = []
        # Each writer notes the durable sequence number it woke up to: all the
        # records of one fsync round wake to the same number.
        durable_marks: set[int] = set()
        event.listen(services.engine.sync_engine, "commit", on_commit)
        started = time.perf_counter()
        await record_all(recorder, contacts, writers, latencies, durable_marks)
        acked = time.perf_counter()
        await recorder.drained(DRAIN_TIMEOUT_SECONDS)
        finished = time.perf_counter()
        event.remove(services.engine.sync_engine, "commit", on_commit)
        if recorder.rejected_count:
            raise VerificationFailed(f"project path: {recorder.rejected_count} records refused")
    finally:
        await close_services(services)
    verify("project path", await count_rows(url), len(contacts))
    return ProjectResult(
        elapsed=finished - started,
        acked_after=acked - started,
        latencies=latencies,
        fsync_rounds=len(durable_marks),
        drain_batches=commits,
    )


async def record_all(
    recorder: Recorder,
    payloads: Sequence[dict[str, Any]],
    writers: int,
    latencies: list[float],
    durable_marks: set[int],
) -> None:
    items = iter(payloads)
    spool = recorder.spool

    async def writer() -> None:
        for payload in items:
            began = time.perf_counter()
            await recorder.record(INTERACTION_RECORDED, payload)
            latencies.append(time.perf_counter() - began)
            durable_marks.add(spool.durable_seq)

    await asyncio.gather(*(writer() for _ in range(writers)))


# -- the ceiling --------------------------------------------------------------


async def insert_all(pool: asyncpg.Pool, rows: Sequence[CeilingRows], writers: int) -> None:
    items: Iterator[CeilingRows] = iter(rows)

    async def writer() -> None:
        async with pool.acquire() as conn:
            for row in items:
                async with conn.transaction():
                    await conn.execute(INSERT_INTERACTION, *row.interaction)
                    await conn.execute(INSERT_TICKET, *row.ticket)
                    await conn.execute(INSERT_CHANGE, *row.change)
                    await conn.execute(INSERT_LINK, *row.link)

    await asyncio.gather(*(writer() for _ in range(writers)))


async def run_ceiling(
    url: str, warmup: list[dict[str, Any]], contacts: list[dict[str, Any]], writers: int
) -> float:
    warm_rows = [ceiling_rows(p) for p in warmup]
    rows = [ceiling_rows(p) for p in contacts]
    pool = await asyncpg.create_pool(url, min_size=writers, max_size=writers)
    try:
        await insert_all(pool, warm_rows, writers)
        await empty_written_tables(url)
        started = time.perf_counter()
        await insert_all(pool, rows, writers)
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    verify("ceiling", await count_rows(url), len(contacts))
    return elapsed


# -- the run ------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench(count: int, writers: int) -> dict[str, Any]:
    # A short warm-up fills the statement caches and the connection pools.
    warm_count = max(200, min(1_000, count // 10))
    taken: set[str] = set()
    warmup = make_contacts(warm_count, 1, taken)
    contacts = make_contacts(count, 2, taken)
    suffix = uuid.uuid4().hex[:12]
    project_db = f"cc_bench_{suffix}"
    ceiling_db = f"cc_bench_{suffix}_ceiling"
    created: list[str] = []
    try:
        created.append(project_db)
        project_url = await create_database(project_db)
        with tempfile.TemporaryDirectory(prefix="cc_bench_spool_") as folder:
            project = await run_project(project_url, Path(folder), warmup, contacts, writers)
        created.append(ceiling_db)
        ceiling_url = await create_database(ceiling_db)
        ceiling_elapsed = await run_ceiling(ceiling_url, warmup, contacts, writers)
    finally:
        for name in created:
            await drop_database(name)

    rate = count / project.elapsed
    ceiling_rate = count / ceiling_elapsed
    p50 = percentile(project.latencies, 0.50) * 1e3
    p99 = percentile(project.latencies, 0.99) * 1e3
    per_round = count / max(1, project.fsync_rounds)
    per_batch = count / max(1, project.drain_batches)
    print(f"durable write path: {count} ended contacts (interaction + ticket), {writers} writers")
    print(
        f"  project path : {rate:8.0f} interactions/s  ({project.elapsed:.2f} s until all applied;"
        f" all acked after {project.acked_after:.2f} s = {count / project.acked_after:.0f} acks/s)"
    )
    print(f"  durable ack  : p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(
        f"  spool        : {project.fsync_rounds} fsync rounds ({per_round:.1f} records each),"
        f" {project.drain_batches} drain transactions ({per_batch:.1f} records each)"
    )
    print(
        f"  ceiling      : {ceiling_rate:8.0f} interactions/s  ({ceiling_elapsed:.2f} s, asyncpg)"
    )
    print(f"  ratio        : {rate / ceiling_rate:.3f}  (project path / ceiling)")
    return {
        "interactions_per_s": round(rate, 1),
        "ceiling_per_s": round(ceiling_rate, 1),
        "ratio": round(rate / ceiling_rate, 4),
        "count": count,
        "writers": writers,
        "elapsed_s": round(project.elapsed, 3),
        "ceiling_elapsed_s": round(ceiling_elapsed, 3),
        "acks_per_s": round(count / project.acked_after, 1),
        "ack_p50_ms": round(p50, 3),
        "ack_p99_ms": round(p99, 3),
        "fsync_rounds": project.fsync_rounds,
        "drain_transactions": project.drain_batches,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, help=f"contacts to record (default {DEFAULT_COUNT})")
    parser.add_argument("--writers", type=int, default=DEFAULT_WRITERS, help="concurrent writers")
    parser.add_argument("--quick", action="store_true", help=f"a short run of {QUICK_COUNT}")
    args = parser.parse_args(argv)
    count = args.count if args.count is not None else QUICK_COUNT if args.quick else DEFAULT_COUNT
    if count < 1 or args.writers < 1:
        parser.error("--count and --writers must be at least 1")
    try:
        figures = asyncio.run(bench(count, args.writers))
    except VerificationFailed as exc:
        print(f"verification failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
