"""The durable spool: an append-only, fsync'd log of records for the database.

Interactions, tickets and the queue log are appended here first. A record is
acknowledged only once it is on disk (``fsync``), so a database outage delays
it but never loses it; :mod:`callcenter.store.drain` applies the records to
the database in order, exactly once.

On disk a spool is a folder with a ``spool.id`` file and segment files named
by the sequence number of their first record. Each record is framed as::

    length (4 bytes, big-endian) | CRC-32 of the payload (4 bytes) | payload

where the payload is UTF-8 JSON ``{"seq": N, "op": "...", "data": {...}}``.
A torn record at the end of the last segment (a crash mid-write) is cut off
when the spool opens; damage anywhere else stops the opening with
:class:`SpoolCorrupt`, because silently skipping records would lose them.

Concurrent appends share one ``fsync`` (group commit): each ``append`` waits
for the flush round that covers its record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
_SEGMENT_SUFFIX = ".seg"


class SpoolError(Exception):
    pass


class SpoolCorrupt(SpoolError):
    """A record before the end of the spool fails its checksum."""


class RecordTooLarge(SpoolError):
    """The record exceeds ``max_record_bytes`` (a security limit)."""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    seq: int
    op: str
    data: dict[str, Any]


def encode_record(record: SpoolRecord) -> bytes:
    payload = json.dumps(
        {"seq": record.seq, "op": record.op, "data": record.data},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_records(
    buf: bytes, max_record_bytes: int, max_count: int | None = None
) -> tuple[list[SpoolRecord], int, bool]:
    """Decode whole records from ``buf``, at most ``max_count`` of them.

    Returns (records, bytes consumed, damaged) where ``damaged`` tells that
    decoding stopped at a bad frame rather than at the end of the data.
    """
    records: list[SpoolRecord] = []
    pos = 0
    while pos + _HEADER.size <= len(buf) and (max_count is None or len(records) < max_count):
        length, crc = _HEADER.unpack_from(buf, pos)
        if length > max_record_bytes:
            return records, pos, True
        end = pos + _HEADER.size + length
        if end > len(buf):
            break
        payload = buf[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return records, pos, True
        try:
            obj = json.loads(payload)
            records.append(SpoolRecord(int(obj["seq"]), str(obj["op"]), dict(obj["data"])))
        # A checksum proves the bytes are as written, not that they are a
        # record: anything JSON can hold (Infinity, deep nesting) is damage.
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
            return records, pos, True
        pos = end
    return records, pos, False


@dataclass(slots=True)
class _Segment:
    first_seq: int
    path: Path
    #: Bytes of this segment known to be on disk; the reader never goes past it.
    durable_size: int
    closed: bool


@dataclass(frozen=True, slots=True)
class SpoolPosition:
    """Where the reader stands: a segment and an offset in it."""

    segment_first_seq: int
    offset: int


class Spool:
    """Append records durably; read them back in order for the drainer.

    Open with :meth:`open`. ``append`` returns once the record is on disk.
    The drainer calls :meth:`read` for the next records after a position and
    :meth:`release` once they are in the database, which lets the spool
    delete segments that hold nothing more to apply.
    """

    def __init__(
        self,
        directory: Path,
        spool_id: str,
        segments: list[_Segment],
        next_seq: int,
        *,
        segment_bytes: int,
        max_record_bytes: int,
    ) -> None:
        self.directory = directory
        self.spool_id = spool_id
        self._segments = segments
        self._next_seq = next_seq
        self._segment_bytes = segment_bytes
        self.max_record_bytes = max_record_bytes
        self._file: BinaryIO = open(segments[-1].path, "ab")
        self._written = segments[-1].durable_size
        self._to_sync: list[BinaryIO] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._durable_event = asyncio.Event()
        self._durable_seq = next_seq - 1
        self._closed = False

    @classmethod
    def open(
        cls,
        directory: str | Path,
        *,
        segment_bytes: int = 16 * 1_048_576,
        max_record_bytes: int = 1_048_576,
    ) -> Spool:
        """Open (or create) the spool in ``directory``, repairing a torn tail."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        id_file = path / "spool.id"
        if id_file.exists():
            spool_id = id_file.read_text().strip()
        else:
            # A new folder is a new spool: its numbering starts again, and so
            # must its checkpoint in the database, or new records would be
            # taken for old ones and skipped.
            spool_id = str(uuid.uuid4())
            _write_durably(id_file, spool_id.encode())
        names = sorted(p for p in path.iterdir() if p.suffix == _SEGMENT_SUFFIX)
        segments: list[_Segment] = []
        next_seq = 1
        for index, seg_path in enumerate(names):
            first = int(seg_path.stem)
            data = seg_path.read_bytes()
            records, used, damaged = decode_records(data, max_record_bytes)
            last = index == len(names) - 1
            if (damaged or used < len(data)) and not last:
                raise SpoolCorrupt(f"spool segment {seg_path.name} is damaged at byte {used}")
            if used < len(data):
                log.warning(
                    "spool %s: cutting a torn record (%d bytes) off the end",
                    seg_path.name,
                    len(data) - used,
                )
                with open(seg_path, "r+b") as fh:
                    fh.truncate(used)
                    fh.flush()
                    os.fsync(fh.fileno())
            if records and records[0].seq != first:
                raise SpoolCorrupt(f"spool segment {seg_path.name} starts at {records[0].seq}")
            next_seq = records[-1].seq + 1 if records else max(next_seq, first)
            segments.append(_Segment(first, seg_path, used, closed=not last))
        if not segments:
            seg_path = path / f"{next_seq:020d}{_SEGMENT_SUFFIX}"
            _write_durably(seg_path, b"")
            segments.append(_Segment(next_seq, seg_path, 0, closed=False))
        return cls(
            path,
            spool_id,
            segments,
            next_seq,
            segment_bytes=segment_bytes,
            max_record_bytes=max_record_bytes,
        )

    # -- writing --------------------------------------------------------

    async def append(
        self, op: str, data: dict[str, Any], on_seq: Callable[[int], None] | None = None
    ) -> int:
        """Append one record and return its sequence number once it is on disk.

        ``on_seq`` is called with the number before the write, so a caller can
        wait for the record's result without a race. Raises
        :class:`RecordTooLarge` (nothing is written then).
        """
        if self._closed:
            raise SpoolError("spool is closed")
        seq = self._next_seq
        frame = encode_record(SpoolRecord(seq, op, data))
        if len(frame) - _HEADER.size > self.max_record_bytes:
            raise RecordTooLarge(
                f"record of {len(frame)} bytes exceeds the limit of {self.max_record_bytes}"
            )
        self._next_seq += 1
        if on_seq is not None:
            on_seq(seq)
        if self._written >= self._segment_bytes:
            self._rotate(seq)
        self._file.write(frame)
        self._written += len(frame)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_rounds())
        # The record is in the file buffer either way; a caller that gives
        # up waiting does not take it back.
        await asyncio.shield(waiter)
        return seq

    def _rotate(self, first_seq: int) -> None:
        self._file.flush()
        # The old segment is marked closed only once it is synced, so the
        # reader never steps past records that are not yet on disk.
        self._to_sync.append(self._file)
        path = self.directory / f"{first_seq:020d}{_SEGMENT_SUFFIX}"
        self._file = open(path, "ab")
        self._segments.append(_Segment(first_seq, path, 0, closed=False))
        self._written = 0

    async def _flush_rounds(self) -> None:
        while self._waiters:
            waiters, self._waiters = self._waiters, []
            old_files, self._to_sync = self._to_sync, []
            self._file.flush()
            size = self._file.tell()
            last_seq = self._next_seq - 1
            current = self._segments[-1]
            try:
                await asyncio.to_thread(_sync_files, old_files, self._file, self.directory)
            except OSError as exc:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(SpoolError(f"spool write failed: {exc}"))
                continue
            for handle in old_files:
                for seg in self._segments:
                    if seg.path == Path(handle.name):
                        seg.durable_size = handle.tell()
                        seg.closed = True
                handle.close()
            current.durable_size = max(current.durable_size, size)
            self._durable_seq = last_seq
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._durable_event.set()

    # -- reading --------------------------------------------------------

    @property
    def durable_seq(self) -> int:
        """Sequence number of the last record known to be on disk."""
        return self._durable_seq

    def start(self) -> SpoolPosition:
        first = self._segments[0]
        return SpoolPosition(first.first_seq, 0)

    async def wait_durable(self, after_seq: int) -> None:
        """Return once a record after ``after_seq`` is on disk."""
        while self._durable_seq <= after_seq:
            self._durable_event.clear()
            await self._durable_event.wait()

    def read(self, position: SpoolPosition, limit: int) -> tuple[list[SpoolRecord], SpoolPosition]:
        """Up to ``limit`` durable records from ``position`` and the position after them."""
        records: list[SpoolRecord] = []
        for seg in self._iter_from(position.segment_first_seq):
            offset = position.offset if seg.first_seq == position.segment_first_seq else 0
            if offset < seg.durable_size:
                found, used = self._read_segment(seg, offset, limit - len(records))
                records.extend(found)
                position = SpoolPosition(seg.first_seq, offset + used)
                if len(records) >= limit or offset + used < seg.durable_size:
                    return records, position
            if not seg.closed:
                return records, position
            position = self._next_position(seg)
        return records, position

    def _read_segment(
        self, seg: _Segment, offset: int, limit: int
    ) -> tuple[list[SpoolRecord], int]:
        available = seg.durable_size - offset
        # Read a window, not the whole segment: a batch needs only ``limit``
        # records; the window grows when one record is larger than it.
        want = min(available, max(limit, 1) * 2048)
        with open(seg.path, "rb") as fh:
            while True:
                fh.seek(offset)
                buf = fh.read(want)
                found, used, damaged = decode_records(buf, self.max_record_bytes, limit)
                if damaged:
                    raise SpoolCorrupt(f"spool segment {seg.path.name} is damaged")
                if found or want >= available:
                    return found, used
                want = min(available, want * 4)

    def _iter_from(self, first_seq: int) -> Iterator[_Segment]:
        for seg in list(self._segments):
            if seg.first_seq >= first_seq:
                yield seg

    def _next_position(self, seg: _Segment) -> SpoolPosition:
        index = self._segments.index(seg)
        nxt = self._segments[index + 1]
        return SpoolPosition(nxt.first_seq, 0)

    def release(self, position: SpoolPosition) -> None:
        """Everything before ``position`` is in the database: drop whole segments before it."""
        while len(self._segments) > 1 and self._segments[0].first_seq < position.segment_first_seq:
            seg = self._segments.pop(0)
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass

    def segment_count(self) -> int:
        return len(self._segments)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        self._closed = True
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def _sync_files(old: list[BinaryIO], current: BinaryIO, directory: Path) -> None:
    for handle in old:
        os.fsync(handle.fileno())
    os.fsync(current.fileno())
    if old:
        # A new segment's directory entry must be durable too.
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
