"""The write path of everything recorded: spool first, then the database.

:meth:`Recorder.record` returns once the record is on disk in the spool.
A background task applies spooled records to the database in order, in
batches, each batch in one transaction that also advances the spool's
checkpoint row; a batch whose commit is lost is therefore re-applied from
the checkpoint and every record lands exactly once. While the database is
unreachable the task retries with backoff and the records wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter.store.models import SpoolCheckpoint, table
from callcenter.store.spool import Spool, SpoolRecord

log = logging.getLogger(__name__)

Applier = Callable[[AsyncConnection, dict[str, Any]], Awaitable[dict[str, Any]]]


class RecordRejected(Exception):
    """Raised by an applier, before it writes anything, when a record cannot apply.

    The message is shown to the user who caused the record, so it names the
    problem without internal detail.
    """

    def __init__(self, message: str, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Applied:
    seq: int
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejected:
    seq: int
    reason: str
    code: str
    record: SpoolRecord | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """The record is safe in the spool but not yet in the database."""

    seq: int


Outcome = Applied | Rejected | Pending


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable rather than the data is wrong."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return False


class Recorder:
    """Record durably now; apply to the database in order, exactly once."""

    def __init__(
        self,
        spool: Spool,
        engine: AsyncEngine,
        appliers: Mapping[str, Applier],
        *,
        batch_size: int = 256,
        max_retry_seconds: float = 5.0,
        statement_timeout: float = 10.0,
    ) -> None:
        self.spool = spool
        self.engine = engine
        self._appliers = dict(appliers)
        self._batch_size = batch_size
        self._max_retry = max_retry_seconds
        self._timeout = statement_timeout
        self._waiters: dict[int, asyncio.Future[Outcome]] = {}
        self._task: asyncio.Task[None] | None = None
        self._rejects_path = spool.directory / "rejected.jsonl"
        self.applied_seq = 0
        self.retries = 0
        self.rejected_count = 0
        self.database_up = True
        self._idle = asyncio.Event()

    # -- API for writers --------------------------------------------------

    async def record(self, op: str, data: dict[str, Any]) -> int:
        """Append a record; returns its number once it is on disk."""
        if op not in self._appliers:
            raise ValueError(f"unknown record type {op!r}")
        return await self.spool.append(op, data)

    async def record_and_wait(self, op: str, data: dict[str, Any], timeout: float) -> Outcome:
        """Append a record and wait up to ``timeout`` seconds for it to reach the database."""
        if op not in self._appliers:
            raise ValueError(f"unknown record type {op!r}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        seq_box: list[int] = []

        def remember(seq: int) -> None:
            seq_box.append(seq)
            self._waiters[seq] = future

        await self.spool.append(op, data, on_seq=remember)
        seq = seq_box[0]
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return Pending(seq)
        finally:
            self._waiters.pop(seq, None)

    # -- the drain task ---------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="spool-drain")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def drained(self, timeout: float | None = None) -> None:
        """Wait until every record appended so far is in the database."""
        async with asyncio.timeout(timeout):
            while self.applied_seq < self.spool.durable_seq:
                self._idle.clear()
                await self._idle.wait()

    @property
    def backlog(self) -> int:
        return max(0, self.spool.durable_seq - self.applied_seq)

    async def _run(self) -> None:
        position = self.spool.start()
        delay = 0.05
        while True:
            records, after = self.spool.read(position, self._batch_size)
            if not records:
                self._idle.set()
                await self.spool.wait_durable(self.applied_seq)
                continue
            try:
                outcomes = await self._apply(records)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.database_up = False
                self.retries += 1
                log.warning("database unavailable, %d records wait: %s", self.backlog, exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self._max_retry)
                continue
            self.database_up = True
            delay = 0.05
            position = after
            self.applied_seq = records[-1].seq
            self.spool.release(position)
            self._keep_rejects(outcomes)
            self._deliver(outcomes)

    async def _apply(self, records: list[SpoolRecord]) -> list[Outcome]:
        try:
            return await self._apply_batch(records)
        except Exception as exc:
            if is_transient(exc) or len(records) == 1:
                if not is_transient(exc):
                    return [await self._reject_poison(records[0], exc)]
                raise
            log.warning("batch of %d records failed (%s); applying one by one", len(records), exc)
        outcomes: list[Outcome] = []
        for record in records:
            try:
                outcomes.extend(await self._apply_batch([record]))
            except Exception as exc:
                if is_transient(exc):
                    raise
                outcomes.append(await self._reject_poison(record, exc))
        return outcomes

    async def _apply_batch(self, records: list[SpoolRecord]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        async with asyncio.timeout(self._timeout), self.engine.begin() as conn:
            last = await self._checkpoint(conn)
            for record in records:
                if record.seq <= last:
                    continue  # applied before a lost commit acknowledgement
                applier = self._appliers.get(record.op)
                if applier is None:
                    outcomes.append(self._rejected(record, f"unknown record type {record.op}"))
                    continue
                try:
                    result = await applier(conn, record.data)
                except RecordRejected as exc:
                    outcomes.append(self._rejected(record, str(exc), exc.code))
                    continue
                outcomes.append(Applied(record.seq, result))
            await self._advance(conn, records[-1].seq)
        return outcomes

    async def _reject_poison(self, record: SpoolRecord, exc: BaseException) -> Outcome:
        """A record the database refuses on its own: set it aside, never silently."""
        log.error("spool record %d (%s) refused by the database: %s", record.seq, record.op, exc)
        async with asyncio.timeout(self._timeout), self.engine.begin() as conn:
            if record.seq > await self._checkpoint(conn):
                await self._advance(conn, record.seq)
        return self._rejected(record, "the record could not be stored", "storage_refused")

    def _rejected(self, record: SpoolRecord, reason: str, code: str = "rejected") -> Rejected:
        return Rejected(record.seq, reason, code, record)

    def _keep_rejects(self, outcomes: list[Outcome]) -> None:
        """Write refused records beside the spool, once their refusal is committed."""
        lines = [
            json.dumps(
                {"seq": o.seq, "op": o.record.op, "data": o.record.data, "reason": o.reason},
                ensure_ascii=False,
            )
            for o in outcomes
            if isinstance(o, Rejected) and o.record is not None
        ]
        if not lines:
            return
        self.rejected_count += len(lines)
        with open(self._rejects_path, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    async def _checkpoint(self, conn: AsyncConnection) -> int:
        tbl = table(SpoolCheckpoint)
        stmt = select(tbl.c.last_seq).where(tbl.c.spool_id == self.spool.spool_id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        last = (await conn.execute(stmt)).scalar_one_or_none()
        if last is None:
            await conn.execute(tbl.insert().values(spool_id=self.spool.spool_id, last_seq=0))
            return 0
        return int(last)

    async def _advance(self, conn: AsyncConnection, seq: int) -> None:
        tbl = table(SpoolCheckpoint)
        await conn.execute(
            update(tbl).where(tbl.c.spool_id == self.spool.spool_id).values(last_seq=seq)
        )

    def _deliver(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            waiter = self._waiters.pop(outcome.seq, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(outcome)
        self._idle.set()
