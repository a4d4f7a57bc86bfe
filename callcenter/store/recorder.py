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
RunApplier = Callable[[AsyncConnection, list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class BatchApplier:
    """An applier that can also apply a run of consecutive records of its kind at once.

    Statements sent one record at a time cost a round trip each; ``many``
    sends each statement once for the whole run. It must leave the database
    as ``one`` applied to each record in turn would, and return one result
    per record, in order. It must not reject a record: when it raises, the
    batch is rolled back and its records are applied one by one with ``one``,
    which may raise :class:`RecordRejected`.
    """

    one: Applier
    many: RunApplier

    async def __call__(self, conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
        return await self.one(conn, data)


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


#: SQLSTATE prefixes that say the server cannot serve now, not that the data
#: is wrong: class 08 (connection exception), 57P01-57P03 (shutting down,
#: starting up), and 40001/40P01 (serialization failure, deadlock), after
#: which the same transaction succeeds when tried again. asyncpg raises some
#: of these unwrapped when a connection is lost while it is being set up.
_TRANSIENT_SQLSTATES = ("08", "57P", "40001", "40P01")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable rather than the data is wrong."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(state, str) and state.startswith(_TRANSIENT_SQLSTATES)


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
        try:
            for record in records:
                try:
                    outcomes.extend(await self._apply_batch([record]))
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    outcomes.append(await self._reject_poison(record, exc))
        except BaseException:
            # Each record above is committed on its own and the retry skips
            # it: a refusal not kept now would never be kept.
            self._keep_rejects(outcomes)
            raise
        return outcomes

    async def _apply_batch(self, records: list[SpoolRecord]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        async with asyncio.timeout(self._timeout), self.engine.begin() as conn:
            last = await self._checkpoint(conn)
            # Records at or below the checkpoint were applied before a lost
            # commit acknowledgement.
            todo = [record for record in records if record.seq > last]
            index = 0
            while index < len(todo):
                record = todo[index]
                applier = self._appliers.get(record.op)
                if isinstance(applier, BatchApplier) and (run := _run_length(todo, index)) > 1:
                    chunk = todo[index : index + run]
                    results = await applier.many(conn, [r.data for r in chunk])
                    outcomes.extend(
                        Applied(r.seq, result) for r, result in zip(chunk, results, strict=True)
                    )
                    index += run
                    continue
                index += 1
                if applier is None:
                    outcomes.append(self._rejected(record, f"unknown record type {record.op}"))
                    continue
                try:
                    result = await applier(conn, record.data)
                except RecordRejected as exc:
                    outcomes.append(self._rejected(record, str(exc), exc.code))
                    continue
                outcomes.append(Applied(record.seq, result))
            # After a restart the reader starts below the checkpoint: moving
            # it back to the end of such a batch would apply what follows twice.
            if records[-1].seq > last:
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


def _run_length(records: list[SpoolRecord], start: int) -> int:
    """How many records from ``start`` on share the op of the record at ``start``."""
    op = records[start].op
    end = start + 1
    while end < len(records) and records[end].op == op:
        end += 1
    return end - start
