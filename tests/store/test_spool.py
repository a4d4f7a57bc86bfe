"""The durable spool on its own: framing, group commit, segments, repair on open."""

from __future__ import annotations

import asyncio
import json
import random
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from callcenter.store import spool as spool_module
from callcenter.store.spool import (
    RecordTooLarge,
    Spool,
    SpoolCorrupt,
    SpoolPosition,
    SpoolRecord,
    decode_records,
    encode_record,
)

#: Small enough that a few dozen records span many segments.
SMALL_SEGMENT = 256


def segment_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.seg"))


def read_all(spool: Spool, position: SpoolPosition, limit: int = 1000) -> list[SpoolRecord]:
    out: list[SpoolRecord] = []
    while True:
        records, position = spool.read(position, limit)
        if not records:
            return out
        out.extend(records)


async def append_many(spool: Spool, count: int, start: int = 0) -> list[int]:
    return [await spool.append("test.op", {"n": start + i}) for i in range(count)]


class SyncRounds:
    """Counts the spool's fsync rounds; ``delay`` stretches each, as a slow disk would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> None:
        self.count = 0
        #: Set (from the worker thread) once a round has begun.
        self.began = threading.Event()
        real = spool_module._sync_files

        def counting(*args: Any) -> None:
            self.count += 1
            self.began.set()
            time.sleep(delay)
            real(*args)

        monkeypatch.setattr(spool_module, "_sync_files", counting)


async def test_records_read_back_in_order_with_their_data(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path)
    data = [{"n": i, "text": "客户满意度", "nested": {"list": [i, None, True]}} for i in range(20)]
    seqs = [await spool.append("op.kind", d) for d in data]
    assert seqs == list(range(1, 21))
    assert spool.durable_seq == 20
    records = read_all(spool, spool.start(), limit=3)
    assert [r.seq for r in records] == seqs
    assert [r.data for r in records] == data
    assert {r.op for r in records} == {"op.kind"}
    await spool.close()


async def test_concurrent_appends_share_fsync_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds = SyncRounds(monkeypatch, delay=0.02)
    spool = Spool.open(tmp_path, segment_bytes=4096)
    acked: list[int] = []

    async def writer(w: int) -> None:
        for i in range(10):
            seq = await spool.append("test.op", {"writer": w, "i": i})
            # Acknowledged means on disk: never ahead of the flushed position.
            assert spool.durable_seq >= seq
            acked.append(seq)

    await asyncio.gather(*(writer(w) for w in range(30)))
    assert sorted(acked) == list(range(1, 301))
    assert rounds.count < 300 // 10, f"{rounds.count} fsync rounds for 300 records"
    records = read_all(spool, spool.start(), limit=17)
    assert [r.seq for r in records] == list(range(1, 301))
    # Each writer's records keep the order in which that writer made them.
    for w in range(30):
        assert [r.data["i"] for r in records if r.data["writer"] == w] == list(range(10))
    assert len(segment_files(tmp_path)) > 1
    await spool.close()


async def test_appends_during_a_slow_fsync_join_the_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds = SyncRounds(monkeypatch, delay=0.05)
    spool = Spool.open(tmp_path)
    first = asyncio.create_task(spool.append("test.op", {"wave": 0}))
    assert await asyncio.to_thread(rounds.began.wait, 5)
    # The first round is now in its (slow) fsync.
    later = [asyncio.create_task(spool.append("test.op", {"wave": 1})) for _ in range(50)]
    assert await first == 1
    assert sorted(await asyncio.gather(*later)) == list(range(2, 52))
    assert rounds.count == 2
    await spool.close()


async def test_reopening_keeps_the_numbering_and_the_id(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    await append_many(spool, 30)
    spool_id = spool.spool_id
    await spool.close()

    again = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    assert again.spool_id == spool_id
    assert again.durable_seq == 30
    assert await again.append("test.op", {"n": 30}) == 31
    records = read_all(again, again.start())
    assert [r.seq for r in records] == list(range(1, 32))
    assert [r.data["n"] for r in records] == list(range(31))
    await again.close()


async def test_numbering_survives_released_segments(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    await append_many(spool, 30)
    _, end = spool.read(spool.start(), 1000)
    spool.release(end)
    assert len(segment_files(tmp_path)) == 1
    await spool.close()

    again = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    assert await again.append("test.op", {}) == 31
    await again.close()


async def test_a_new_folder_is_a_new_spool(tmp_path: Path) -> None:
    one = Spool.open(tmp_path / "one")
    two = Spool.open(tmp_path / "two")
    assert one.spool_id != two.spool_id
    assert await one.append("test.op", {}) == 1
    assert await two.append("test.op", {}) == 1
    await one.close()
    await two.close()


async def test_reads_cross_segment_boundaries(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    await append_many(spool, 60)
    files = segment_files(tmp_path)
    assert len(files) >= 5
    assert spool.segment_count() == len(files)
    # Segment files are named by their first record.
    firsts = [int(f.stem) for f in files]
    assert firsts[0] == 1
    assert firsts == sorted(firsts)
    for limit in (1, 4, 7, 1000):
        assert [r.seq for r in read_all(spool, spool.start(), limit)] == list(range(1, 61))
    await spool.close()


async def test_release_drops_only_segments_wholly_before_the_position(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    await append_many(spool, 60)
    files = segment_files(tmp_path)
    records, position = spool.read(spool.start(), 25)
    assert [r.seq for r in records] == list(range(1, 26))
    spool.release(position)
    kept = segment_files(tmp_path)
    assert kept == [f for f in files if int(f.stem) >= position.segment_first_seq]
    assert len(kept) < len(files)
    # What is left still holds every record not yet applied.
    rest = read_all(spool, position, limit=6)
    assert [r.seq for r in rest] == list(range(26, 61))
    await spool.close()


async def test_release_never_drops_the_active_segment(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    await append_many(spool, 60)
    active = segment_files(tmp_path)[-1]
    records, end = spool.read(spool.start(), 1000)
    assert len(records) == 60
    spool.release(end)
    assert segment_files(tmp_path) == [active]
    spool.release(SpoolPosition(10**12, 0))
    assert segment_files(tmp_path) == [active]
    assert spool.segment_count() == 1
    # The spool goes on as before: new records, and reading from where the reader stood.
    await append_many(spool, 20, start=60)
    assert [r.seq for r in read_all(spool, end)] == list(range(61, 81))
    await spool.close()


def _garbage_header_only(data: bytes) -> bytes:
    return data + b"\x00\x00"


def _garbage_bad_crc(data: bytes) -> bytes:
    payload = b'{"seq":999,"op":"x","data":{}}'
    return data + struct.pack(">II", len(payload), zlib.crc32(payload) ^ 1) + payload


def _garbage_huge_length(data: bytes) -> bytes:
    return data + struct.pack(">II", 0xFFFFFFF0, 0) + b"junk"


def _garbage_zeros(data: bytes) -> bytes:
    # A file extended by the filesystem but never written reads back as zeros.
    return data + bytes(4096)


def _torn_last_record(data: bytes) -> bytes:
    return data[:-5]


@pytest.mark.parametrize(
    ("damage", "intact"),
    [
        (_torn_last_record, 59),
        (_garbage_header_only, 60),
        (_garbage_bad_crc, 60),
        (_garbage_huge_length, 60),
        (_garbage_zeros, 60),
    ],
)
async def test_a_torn_tail_is_cut_off_on_open(
    tmp_path: Path, damage: Callable[[bytes], bytes], intact: int
) -> None:
    spool = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    await append_many(spool, 60)
    await spool.close()
    last = segment_files(tmp_path)[-1]
    last.write_bytes(damage(last.read_bytes()))

    again = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    assert again.durable_seq == intact
    assert [r.seq for r in read_all(again, again.start())] == list(range(1, intact + 1))
    # Appending continues right after the last whole record, in a clean file.
    assert await again.append("test.op", {"after": "repair"}) == intact + 1
    await again.close()
    for segment in segment_files(tmp_path):
        _, used, damaged = decode_records(segment.read_bytes(), again.max_record_bytes)
        assert not damaged
        assert used == segment.stat().st_size
    third = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    assert [r.seq for r in read_all(third, third.start())] == list(range(1, intact + 2))
    await third.close()


async def test_an_empty_last_segment_continues_its_numbering(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    await append_many(spool, 60)
    await spool.close()
    last = segment_files(tmp_path)[-1]
    # A crash right after a rotation leaves the new segment empty.
    last.write_bytes(b"")

    again = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    first = int(last.stem)
    assert again.durable_seq == first - 1
    assert await again.append("test.op", {}) == first
    assert [r.seq for r in read_all(again, again.start())] == list(range(1, first + 1))
    await again.close()


def _flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1 :]


def _truncate(data: bytes) -> bytes:
    return data[:-3]


def _trailing_garbage(data: bytes) -> bytes:
    return data + b"\x00\x00\x00\x03abc"


@pytest.mark.parametrize("damage", [_flip_byte, _truncate, _trailing_garbage])
async def test_damage_before_the_last_segment_stops_the_opening(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    spool = Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    await append_many(spool, 60)
    await spool.close()
    files = segment_files(tmp_path)
    assert len(files) >= 3
    victim = files[1]
    before = {f: f.read_bytes() for f in files if f != victim}
    victim.write_bytes(damage(victim.read_bytes()))

    with pytest.raises(SpoolCorrupt):
        Spool.open(tmp_path, segment_bytes=SMALL_SEGMENT)
    # Refusing to open must not "repair" anything: the records stay for a person to rescue.
    assert {f: f.read_bytes() for f in files if f != victim} == before


async def test_an_oversized_record_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, max_record_bytes=200)
    assert await spool.append("test.op", {"n": 1}) == 1
    sizes = {f: f.stat().st_size for f in segment_files(tmp_path)}
    with pytest.raises(RecordTooLarge):
        await spool.append("test.op", {"blob": "x" * 500})
    # A multi-byte text counts by its bytes, not its characters.
    with pytest.raises(RecordTooLarge):
        await spool.append("test.op", {"blob": "呼" * 70})
    assert {f: f.stat().st_size for f in segment_files(tmp_path)} == sizes
    assert spool.durable_seq == 1
    assert await spool.append("test.op", {"n": 2}) == 2
    assert [r.data for r in read_all(spool, spool.start())] == [{"n": 1}, {"n": 2}]
    await spool.close()


async def test_appending_to_a_closed_spool_fails(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path)
    await spool.close()
    with pytest.raises(spool_module.SpoolError):
        await spool.append("test.op", {})


def _frame(payload: bytes) -> bytes:
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


#: Payloads with a valid checksum that are still not records.
_ODD_PAYLOADS = [
    b"",
    b"null",
    b"[]",
    b'"text"',
    b"12",
    b"{}",
    b'{"seq":1}',
    b'{"seq":"x","op":"a","data":{}}',
    b'{"seq":Infinity,"op":"a","data":{}}',
    b'{"seq":NaN,"op":"a","data":{}}',
    b'{"seq":1e999,"op":"a","data":{}}',
    b'{"seq":1,"op":"a","data":"text"}',
    b'{"seq":1,"op":"a","data":[1,2]}',
    b'{"seq":1,"op":"a","data":7}',
    b'{"seq":[1],"op":"a","data":{}}',
    b"\xff\xfe\xfd",
    b'{"seq":1,"op":"\xc3","data":{}}',
    b"[" * 100_000,
    b'{"a":' * 50_000,
]


def _check_decode(buf: bytes, limit: int) -> None:
    records, used, damaged = decode_records(buf, limit)
    assert 0 <= used <= len(buf)
    assert all(isinstance(r, SpoolRecord) for r in records)
    # What was consumed decodes again to the same records, cleanly.
    again, used_again, damaged_again = decode_records(buf[:used], limit)
    assert (again, used_again, damaged_again) == (records, used, False)
    if not damaged and used < len(buf):
        assert len(buf) - used < 8 or used + 8 + struct.unpack_from(">I", buf, used)[0] > len(buf)


def test_decode_never_raises_on_garbage() -> None:
    rng = random.Random(20240601)
    valid = b"".join(
        encode_record(SpoolRecord(i, "test.op", {"n": i, "s": "坐席" * (i % 5)}))
        for i in range(1, 40)
    )
    for _ in range(3000):
        kind = rng.randrange(5)
        if kind == 0:
            buf = rng.randbytes(rng.randrange(0, 200))
        elif kind == 1:
            flipped = bytearray(valid)
            for _ in range(rng.randrange(1, 6)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            buf = bytes(flipped)
        elif kind == 2:
            buf = valid[: rng.randrange(len(valid))]
        elif kind == 3:
            cut = rng.randrange(len(valid))
            buf = valid[:cut] + rng.randbytes(rng.randrange(1, 40)) + valid[cut:]
        else:
            payload = rng.choice(_ODD_PAYLOADS)
            cut = rng.randrange(len(valid))
            buf = valid[:cut] + _frame(payload) + valid[cut:]
        _check_decode(buf, rng.choice([16, 1024, 1_048_576]))


def test_every_odd_payload_is_damage() -> None:
    for payload in _ODD_PAYLOADS:
        good = encode_record(SpoolRecord(1, "test.op", {}))
        records, used, damaged = decode_records(good + _frame(payload), 1_048_576)
        assert [r.seq for r in records] == [1], payload[:40]
        assert used == len(good)
        assert damaged


def test_truncation_anywhere_yields_a_clean_prefix() -> None:
    frames = [
        encode_record(SpoolRecord(i, "test.op", {"payload": json.dumps([i] * i)}))
        for i in range(1, 15)
    ]
    valid = b"".join(frames)
    boundaries = [0]
    for frame in frames:
        boundaries.append(boundaries[-1] + len(frame))
    for cut in range(len(valid) + 1):
        records, used, damaged = decode_records(valid[:cut], 1_048_576)
        whole = max(i for i, b in enumerate(boundaries) if b <= cut)
        assert not damaged
        assert used == boundaries[whole]
        assert [r.seq for r in records] == list(range(1, whole + 1))


def test_decode_stops_at_max_count() -> None:
    valid = b"".join(encode_record(SpoolRecord(i, "test.op", {})) for i in range(1, 11))
    records, used, damaged = decode_records(valid, 1024, max_count=4)
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert not damaged
    assert decode_records(valid[used:], 1024)[0][0].seq == 5
