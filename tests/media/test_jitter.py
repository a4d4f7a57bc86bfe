"""Jitter buffer: order, gaps, late and duplicate packets, the wrap, bounds, depth."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.media.jitter import Frame, Gap, JitterBuffer

TICK = 0.02


def payload(sequence: int) -> bytes:
    return sequence.to_bytes(2, "big") * 80


def push(buffer: JitterBuffer, sequence: int, arrival: float = 0.0) -> bool:
    return buffer.push(
        sequence % 65536, (sequence * 160) % 2**32, payload(sequence % 65536), arrival
    )


def played(buffer: JitterBuffer, ticks: int, start: float = 0.0) -> list[int | None]:
    """The sequence number of each tick's frame; ``None`` for a gap."""
    out: list[int | None] = []
    for i in range(ticks):
        item = buffer.pop(start + i * TICK)
        out.append(item.sequence if isinstance(item, Frame) else None)
    return out


def test_playout_waits_for_the_depth_then_plays_in_order() -> None:
    buffer = JitterBuffer(depth=3)
    push(buffer, 10)
    push(buffer, 12)
    assert buffer.pop(0.0) == Gap()
    push(buffer, 11)
    frame = buffer.pop(0.02)
    assert frame == Frame(10, 1600, payload(10))
    assert played(buffer, 2, 0.04) == [11, 12]


def test_a_lone_packet_plays_once_it_has_waited_the_depth() -> None:
    buffer = JitterBuffer(depth=3)
    push(buffer, 1, arrival=0.0)
    assert buffer.pop(0.05) == Gap()
    assert isinstance(buffer.pop(0.07), Frame)


def test_a_missing_frame_is_a_gap_and_comes_too_late_after() -> None:
    buffer = JitterBuffer(depth=2)
    for sequence in (1, 2, 4, 5):
        push(buffer, sequence)
    assert played(buffer, 2) == [1, 2]
    assert buffer.pop(0.04) == Gap(3)
    assert push(buffer, 3, 0.05) is False  # its tick has passed
    assert played(buffer, 2, 0.06) == [4, 5]
    assert (buffer.late, buffer.concealed) == (1, 1)


def test_duplicates_are_dropped() -> None:
    buffer = JitterBuffer(depth=2)
    assert push(buffer, 7) and push(buffer, 8)
    assert push(buffer, 7) is False
    assert played(buffer, 2) == [7, 8]
    assert buffer.duplicates == 1


def test_the_sequence_wrap() -> None:
    buffer = JitterBuffer(depth=4)
    for sequence in (65534, 0, 65535, 1):
        push(buffer, sequence)
    assert played(buffer, 4) == [65534, 65535, 0, 1]


def test_running_dry_refills_before_playing_again() -> None:
    buffer = JitterBuffer(depth=2)
    push(buffer, 1)
    push(buffer, 2)
    assert played(buffer, 3) == [1, 2, None]
    push(buffer, 3, 1.0)  # the next talkspurt
    assert buffer.pop(1.0) == Gap()
    push(buffer, 4, 1.01)
    assert played(buffer, 2, 1.02) == [3, 4]


def test_size_is_bounded_and_latency_caught_up() -> None:
    buffer = JitterBuffer(depth=3, max_depth=5, capacity=8)
    for sequence in range(20):
        push(buffer, sequence)
    assert len(buffer) == 8 and buffer.dropped == 12
    # Seven frames left against a target of three: one more goes to catch up.
    assert played(buffer, 8) == [12, 14, 15, 16, 17, 18, 19, None]
    assert buffer.dropped == 13


def test_a_restart_is_believed_when_the_next_packet_follows() -> None:
    buffer = JitterBuffer(depth=1)
    push(buffer, 100)
    assert played(buffer, 1) == [100]
    assert push(buffer, 30000) is False  # a stray
    assert push(buffer, 30000) is False
    assert push(buffer, 30001) is True
    assert played(buffer, 1, 0.1) == [30001]


def test_out_of_range_values_are_refused() -> None:
    buffer = JitterBuffer()
    assert buffer.push(65536, 0, b"", 0.0) is False
    assert buffer.push(0, 2**32, b"", 0.0) is False
    with pytest.raises(ValueError):
        JitterBuffer(depth=0)
    with pytest.raises(ValueError):
        JitterBuffer(depth=5, max_depth=4)
    with pytest.raises(ValueError):
        JitterBuffer(max_depth=10, capacity=10)


def test_the_adaptive_depth_follows_the_jitter() -> None:
    steady = JitterBuffer(adaptive=True, depth=3, min_depth=1, max_depth=8)
    for sequence in range(100):
        push(steady, sequence, sequence * TICK)
    assert steady.jitter == pytest.approx(0, abs=1e-9)
    assert steady.target == 1
    jittery = JitterBuffer(adaptive=True, depth=3, min_depth=1, max_depth=8)
    rng = random.Random(2)
    for sequence in range(300):
        push(jittery, sequence, sequence * TICK + rng.uniform(0, 0.06))
    assert 0.01 < jittery.jitter < 0.03
    assert 3 <= jittery.target <= 8
    fixed = JitterBuffer(depth=3)
    assert fixed.target == 3


@given(st.integers(0, 65535), st.integers(1, 60), st.randoms(use_true_random=False))
def test_reordered_arrivals_play_in_order_once_each(
    first: int, count: int, rng: random.Random
) -> None:
    buffer = JitterBuffer(depth=4, max_depth=8, capacity=32)
    # Each packet is delayed by up to two frame times.
    arrivals = sorted(
        (i * TICK + rng.uniform(0, 2 * TICK), (first + i) % 65536) for i in range(count)
    )
    out: list[int] = []
    tick = 0
    for arrival, sequence in arrivals:
        while tick * TICK + 4 * TICK < arrival:
            item = buffer.pop(tick * TICK + 4 * TICK)
            if isinstance(item, Frame):
                out.append(item.sequence)
            tick += 1
        buffer.push(sequence, 0, b"", arrival)
    for extra in range(count + 8):
        item = buffer.pop((tick + extra) * TICK + 4 * TICK)
        if isinstance(item, Frame):
            out.append(item.sequence)
    expected = [(first + i) % 65536 for i in range(count)]
    unwrapped = [(s - first) % 65536 for s in out]
    assert unwrapped == sorted(set(unwrapped))
    assert set(out) <= set(expected)
    assert len(out) + buffer.late + buffer.dropped == count
