"""Bulk import of customer records (客户档案) from a CSV file: ``callcenter customers import``.

Every row passes the same checks as ``POST /api/v1/customers`` (the REST
schema, E.164 phone numbers, e-mail addresses, unique account numbers) before
anything is written. Good rows are committed in batches, each in one
transaction; a batch the database still refuses is retried row by row with
:func:`callcenter.store.customers.create_customer`, so one bad row never costs
the others. Bad rows are reported on stderr by physical line number and copied
to a rejects file, to be fixed and imported again.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.config import Settings
from callcenter.store import db
from callcenter.store.customers import (
    CustomerInputError,
    insert_customers,
    normalize_emails,
    normalize_phones,
)
from callcenter.store.models import Customer
from callcenter.web.routes.customers import CUSTOMER
from callcenter.web.schema import ValidationError

#: Columns a file may have, in any order; only ``name`` is required.
COLUMNS = (
    "name",
    "account_number",
    "company",
    "tier",
    "value_score",
    "phones",
    "emails",
    "tags",
    "notes",
    "language",
)
#: Columns holding several values in one cell.
LIST_COLUMNS = frozenset({"phones", "emails", "tags"})
LIST_SEPARATOR = ";"
#: Extra columns of the rejects file.
REJECT_COLUMNS = ("line", "reason")

EXIT_OK = 0
EXIT_REJECTS = 1
EXIT_REFUSED = 2

_UTF8_BOM = codecs.BOM_UTF8


@dataclass(frozen=True, slots=True)
class ImportLimits:
    #: Rows stored in one transaction.
    batch_size: int = 500
    #: Longest physical line, newline included (a security limit).
    max_line_bytes: int = 1_048_576
    #: Longest field, quoted newlines included (a security limit, via csv.field_size_limit).
    max_field_chars: int = 100_000
    #: Files with fewer rows than this import without a progress display.
    progress_min_rows: int = 1_000
    #: Seconds between progress lines when stderr is not a terminal.
    progress_log_seconds: float = 5.0
    #: Seconds between redraws of the progress bar on a terminal.
    progress_redraw_seconds: float = 0.1


class FileRefused(Exception):
    """The file cannot be imported at all; nothing was stored."""


class RowError(ValueError):
    """A row cannot be stored; the message says why, naming the column."""


class _LineError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Lines:
    """Decoded physical lines of a binary stream, for :func:`csv.reader`.

    Reading line by line in binary keeps the line count exact and bounds the
    memory one line can take; an over-long or undecodable line raises
    :class:`_LineError` and the iterator stays usable for the next line.
    """

    def __init__(self, stream: IO[bytes], max_line_bytes: int) -> None:
        self._stream = stream
        self._max = max_line_bytes
        #: Physical lines read so far.
        self.count = 0
        self.bom = False
        #: The first line that is not UTF-8, if any.
        self.encoding_error: str | None = None
        #: Quote characters seen since the caller last reset it.
        self.quotes = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self._stream.readline(self._max + 1)
        if not raw:
            raise StopIteration
        self.count += 1
        if self.count == 1 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM) :]
            self.bom = True
        self.quotes += raw.count(b'"')
        if len(raw) > self._max:
            while raw and not raw.endswith(b"\n"):
                raw = self._stream.readline(65_536)
                self.quotes += raw.count(b'"')
            raise _LineError(f"line {self.count} is longer than {self._max} bytes")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"line {self.count} is not valid UTF-8 (byte {exc.start + 1})"
            self.encoding_error = self.encoding_error or reason
            raise _LineError(reason) from None


@dataclass(frozen=True, slots=True)
class _Record:
    #: Physical line the record starts on (the header is line 1).
    line: int
    fields: list[str]
    #: Why the record could not be read as CSV, if it could not.
    error: str | None = None


def _records(lines: _Lines) -> Iterator[_Record]:
    """CSV records with their first line number; blank rows are skipped."""
    reader = csv.reader(lines, strict=True)
    while True:
        start = lines.count + 1
        lines.quotes = 0
        try:
            fields = next(reader)
        except StopIteration:
            return
        except (_LineError, csv.Error) as exc:
            reason = exc.reason if isinstance(exc, _LineError) else f"not valid CSV: {exc}"
            _skip_rest_of_record(lines)
            yield _Record(start, [], reason)
            continue
        if any(value.strip() for value in fields):
            yield _Record(start, fields)


def _skip_rest_of_record(lines: _Lines) -> None:
    """Move past the lines left of a record the reader gave up on.

    The reader starts afresh on the next line, which would read the rest of
    a long quoted field as rows of its own, and its closing quote as the
    opening of a field swallowing the rows after it. An odd number of quote
    characters so far means the record goes on (escaped quotes come in pairs).
    """
    while lines.quotes % 2:
        try:
            next(lines)
        except StopIteration:
            return
        except _LineError:
            continue


@contextmanager
def _field_limit(chars: int) -> Iterator[None]:
    # The limit is process-wide in the csv module, so it is put back afterwards.
    previous = csv.field_size_limit(chars)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


@dataclass(frozen=True, slots=True)
class _Header:
    #: Names as written in the file, for the rejects file.
    names: list[str]
    #: Column for each position.
    columns: list[str]
    bom: bool


def check_header(fields: Sequence[str]) -> list[str]:
    """The column of each header cell (names are matched without case or surrounding blanks).

    Raises :class:`FileRefused` for an unknown, unnamed or repeated column or a
    missing ``name`` column.
    """
    columns: list[str] = []
    for position, raw in enumerate(fields, 1):
        name = raw.strip().lower()
        if not name:
            raise FileRefused(f"column {position} of the header has no name")
        if name not in COLUMNS:
            raise FileRefused(f"unknown column {raw.strip()!r} (known: {', '.join(COLUMNS)})")
        if name in columns:
            raise FileRefused(f"column {name!r} appears twice in the header")
        columns.append(name)
    if "name" not in columns:
        raise FileRefused("the header has no 'name' column")
    return columns


def _scan(path: Path, limits: ImportLimits) -> tuple[_Header, int]:
    """Read the whole file once: its header, and how many rows follow.

    Refusing a file that is not UTF-8 here, before anything is stored, spares
    the user a half-imported file (a spreadsheet saved as GBK, say).
    """
    with _field_limit(limits.max_field_chars), _open(path) as stream:
        lines = _Lines(stream, limits.max_line_bytes)
        records = _records(lines)
        first = next(records, None)
        total = sum(1 for _ in records)
    if lines.encoding_error is not None:
        raise FileRefused(f"{lines.encoding_error}; save the file as UTF-8 CSV")
    if first is None:
        raise FileRefused("the file is empty; expected a header row")
    if first.error is not None:
        raise FileRefused(f"cannot read the header: {first.error}")
    columns = check_header(first.fields)
    return _Header([name.strip() for name in first.fields], columns, lines.bom), total


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise FileRefused(f"cannot read it: {exc.strerror or exc}") from None


_INDEXED = re.compile(r"(\w+)\[(\d+)\]")


def _where(path: str) -> str:
    """``.tags[2]`` as a spreadsheet user counts it: ``tags item 3``."""
    path = path.lstrip(".")
    match = _INDEXED.fullmatch(path)
    return f"{match[1]} item {int(match[2]) + 1}" if match else path


def check_row(cells: Mapping[str, str], region: str) -> dict[str, Any]:
    """The customer data of one row, as :func:`create_customer` takes it.

    Empty cells take the defaults of the API (tier ``normal``, score 0, no
    account number); phone numbers come back in E.164 and e-mail addresses in
    lower case. Raises :class:`RowError` naming the column at fault. Account
    numbers are checked against each other and the database by the caller.
    """
    if not cells.get("name", "").strip():
        raise RowError("name: is required")
    data: dict[str, Any] = {}
    for column, raw in cells.items():
        if column in LIST_COLUMNS:
            items = [item.strip() for item in raw.split(LIST_SEPARATOR)]
            data[column] = [item for item in items if item]
        elif column == "value_score":
            if raw.strip():
                score = CUSTOMER.fields[column]
                try:
                    data[column] = score.from_query(raw.strip(), column)
                except ValidationError as exc:
                    raise RowError(f"{_where(exc.path)}: {exc.message}") from None
        elif column == "notes":
            if raw:
                data[column] = raw
        elif raw.strip():
            data[column] = raw
    try:
        clean: dict[str, Any] = CUSTOMER.check(data, "")
        clean["phones"] = normalize_phones(clean.get("phones", []), region)
        clean["emails"] = normalize_emails(clean.get("emails", []))
    except ValidationError as exc:
        raise RowError(f"{_where(exc.path)}: {exc.message}") from None
    except CustomerInputError as exc:
        raise RowError(f"{_where(exc.field)}: {exc.message}") from None
    return clean


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    fields: list[str]
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reject:
    line: int
    fields: list[str]
    reason: str


class _RejectsFile:
    """The rejects CSV: the file's own columns plus ``line`` and ``reason``.

    Opened at the first bad row, so a clean import leaves no file behind.
    """

    def __init__(self, path: Path, header: _Header) -> None:
        self.path = path
        self._header = header
        self._stream: TextIO | None = None
        self._writer: Any = None
        self.count = 0

    def write(self, reject: Reject) -> None:
        if self._stream is None:
            # A BOM when the input had one keeps spreadsheets reading Chinese names right.
            encoding = "utf-8-sig" if self._header.bom else "utf-8"
            self._stream = self.path.open("w", encoding=encoding, newline="")
            self._writer = csv.writer(self._stream)
            self._writer.writerow([*self._header.names, *REJECT_COLUMNS])
        width = len(self._header.names)
        cells = (reject.fields + [""] * width)[:width]
        self._writer.writerow([*cells, reject.line, reject.reason])
        self.count += 1

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        elif self.path.is_file():
            # What is there describes an earlier run, and would mislead.
            self.path.unlink()


class Progress:
    """Rows done out of a total, on stderr.

    On a terminal a bar is redrawn in place; elsewhere (a log, a pipe) a line
    is printed at most every ``log_seconds``. Messages go through
    :meth:`note` so they never land in the middle of the bar. Call
    :meth:`finish` at the end.
    """

    def __init__(
        self,
        stream: TextIO,
        total: int,
        *,
        enabled: bool = True,
        log_seconds: float = 5.0,
        redraw_seconds: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._total = total
        self._enabled = enabled
        self._tty = stream.isatty()
        self._interval = redraw_seconds if self._tty else log_seconds
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._done = 0
        self._drawn = False

    def update(self, done: int) -> None:
        self._done = done
        if not self._enabled:
            return
        now = self._clock()
        if now - self._last >= self._interval or (self._tty and not self._drawn):
            self._last = now
            self._show(now)

    def note(self, text: str) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[K")
        self._stream.write(text + "\n")
        if self._drawn:
            self._show(self._clock())
        self._stream.flush()

    def finish(self) -> None:
        if self._enabled and self._tty:
            self._show(self._clock())
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

    def render(self, now: float) -> str:
        done, total = self._done, self._total
        percent = 100.0 * done / total if total else 100.0
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        figures = f"{done:,}/{total:,} rows {percent:5.1f}% {rate:,.0f} rows/s"
        if not self._tty:
            return f"importing: {figures}"
        width = 30
        filled = width * done // total if total else width
        return f"[{'#' * filled}{'.' * (width - filled)}] {figures}"

    def _show(self, now: float) -> None:
        if self._tty:
            self._stream.write("\r" + self.render(now) + "\x1b[K")
            self._drawn = True
        else:
            self._stream.write(self.render(now) + "\n")
        self._stream.flush()


async def run_import(
    settings: Settings,
    path: Path,
    rejects_path: Path | None = None,
    *,
    limits: ImportLimits | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Import ``path``; return the exit code.

    0: every row stored. 1: some rows rejected, the others stored; the bad
    ones are in ``rejects_path`` (default ``FILE.rejects.csv`` beside the
    file; a clean run removes one left by an earlier run). 2: the file was
    refused as a whole (unreadable, not UTF-8, unknown or missing columns) and
    nothing was stored, or the database failed part way: the summary then
    counts what was stored, and stderr names the line from which on nothing was.
    """
    limits = limits or ImportLimits()
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    rejects_path = rejects_path or path.with_name(path.name + ".rejects.csv")
    try:
        _check_rejects_path(path, rejects_path)
        header, total = await asyncio.to_thread(_scan, path, limits)
    except FileRefused as exc:
        print(f"error: {path}: {exc}", file=err)
        return EXIT_REFUSED

    progress = Progress(
        err,
        total,
        enabled=total >= limits.progress_min_rows,
        log_seconds=limits.progress_log_seconds,
        redraw_seconds=limits.progress_redraw_seconds,
    )
    importer = _Importer(settings.site.default_region, header, progress, limits)
    rejects = _RejectsFile(rejects_path, header)
    engine: AsyncEngine | None = None
    failure: str | None = None
    try:
        engine = db.engine_for(settings.database)
        await db.upgrade(engine)
        with _field_limit(limits.max_field_chars), _open(path) as stream:
            await importer.run(
                _records(_Lines(stream, limits.max_line_bytes)), db.session_factory(engine), rejects
            )
    except (SQLAlchemyError, OSError, FileRefused) as exc:
        failure = (str(exc).splitlines() or [type(exc).__name__])[0]
    finally:
        progress.finish()
        rejects.close()
        if engine is not None:
            await engine.dispose()

    if failure is not None:
        where = f" at line {importer.pending}" if importer.pending is not None else ""
        print(f"error: the import stopped{where}: {failure}", file=err)
    summary = f"imported {importer.imported} customers, {rejects.count} rejected"
    if rejects.count:
        summary += f" (see {rejects_path})"
    print(summary, file=out)
    if failure is not None:
        return EXIT_REFUSED
    return EXIT_REJECTS if rejects.count else EXIT_OK


def _check_rejects_path(path: Path, rejects_path: Path) -> None:
    if rejects_path.exists() and path.exists() and os.path.samefile(path, rejects_path):
        raise FileRefused("the rejects file would overwrite the file being imported")
    if not rejects_path.parent.is_dir():
        raise FileRefused(f"the folder of the rejects file, {rejects_path.parent}, does not exist")


class _Importer:
    def __init__(
        self, region: str, header: _Header, progress: Progress, limits: ImportLimits
    ) -> None:
        self._region = region
        self._header = header
        self._progress = progress
        self._limits = limits
        #: Account number -> line of the row that claimed it.
        self._accounts: dict[str, int] = {}
        self.imported = 0
        #: First line of the batch being stored; what precedes it is settled.
        self.pending: int | None = None
        self._done = 0

    async def run(
        self,
        records: Iterator[_Record],
        sessions: async_sessionmaker[AsyncSession],
        rejects: _RejectsFile,
    ) -> None:
        next(records, None)  # the header, already checked
        batch: list[_Record] = []
        for record in records:
            batch.append(record)
            if len(batch) >= self._limits.batch_size:
                await self._batch(batch, sessions, rejects)
                batch = []
        if batch:
            await self._batch(batch, sessions, rejects)

    async def _batch(
        self,
        records: list[_Record],
        sessions: async_sessionmaker[AsyncSession],
        rejects: _RejectsFile,
    ) -> None:
        self.pending = records[0].line
        bad: list[Reject] = []
        rows: list[_Row] = []
        for record in records:
            try:
                rows.append(_Row(record.line, record.fields, self._check(record)))
            except RowError as exc:
                bad.append(Reject(record.line, record.fields, str(exc)))
        async with sessions() as session:
            taken = await _taken_accounts(session, rows)
        good: list[_Row] = []
        for row in rows:
            account = row.data.get("account_number")
            if account is None:
                good.append(row)
            elif account in taken:
                reason = f"account_number: {account!r} is already used by another customer"
                bad.append(Reject(row.line, row.fields, reason))
            elif account in self._accounts:
                reason = f"account_number: {account!r} is also on line {self._accounts[account]}"
                bad.append(Reject(row.line, row.fields, reason))
            else:
                self._accounts[account] = row.line
                good.append(row)
        bad.extend(await self._store(good, sessions))
        for reject in sorted(bad, key=lambda r: r.line):
            self._progress.note(f"line {reject.line}: {reject.reason}")
            rejects.write(reject)
        self.pending = None
        self._done += len(records)
        self._progress.update(self._done)

    def _check(self, record: _Record) -> dict[str, Any]:
        if record.error is not None:
            raise RowError(record.error)
        width = len(self._header.columns)
        if len(record.fields) != width:
            raise RowError(f"has {len(record.fields)} fields, the header has {width}")
        return check_row(dict(zip(self._header.columns, record.fields, strict=True)), self._region)

    async def _store(
        self, rows: list[_Row], sessions: async_sessionmaker[AsyncSession]
    ) -> list[Reject]:
        """Store ``rows`` in one transaction, or one by one if the database
        refuses the batch; returns the rows it refused."""
        if not rows:
            return []
        async with sessions() as session:
            try:
                await insert_customers(session, [row.data for row in rows])
                await session.commit()
            except (IntegrityError, DataError):
                await session.rollback()
            else:
                self.imported += len(rows)
                return []
        return await self._store_one_by_one(rows, sessions)

    async def _store_one_by_one(
        self, rows: list[_Row], sessions: async_sessionmaker[AsyncSession]
    ) -> list[Reject]:
        bad: list[Reject] = []
        async with sessions() as session:
            for row in rows:
                try:
                    await insert_customers(session, [row.data])
                    await session.commit()
                except (IntegrityError, DataError) as exc:
                    await session.rollback()
                    bad.append(Reject(row.line, row.fields, _refusal(exc)))
                else:
                    self.imported += 1
        return bad


async def _taken_accounts(session: AsyncSession, rows: Sequence[_Row]) -> set[str]:
    wanted = {row.data["account_number"] for row in rows if row.data.get("account_number")}
    if not wanted:
        return set()
    found = await session.execute(
        select(Customer.account_number).where(Customer.account_number.in_(wanted))
    )
    return {account for account in found.scalars() if account is not None}


def _refusal(exc: IntegrityError | DataError) -> str:
    """The database's own reason, without the driver's wrapping."""
    text = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else ""
    if text.startswith("<class "):
        text = text.partition(": ")[2]
    return f"the database refused the row: {text or type(exc).__name__}"
