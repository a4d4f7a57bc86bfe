"""The shared media clock, and players on it sending to a real UDP socket."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest

from callcenter.media.clock import MediaClock
from callcenter.media.player import Player
from callcenter.media.port import PortAllocator, RtpPort
from callcenter.media.rtp import RtpPacket
from callcenter.sip.sdp import PCMA, PCMU

HOST = "127.0.0.1"
PERIOD = 0.020


async def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` every 5 ms until it holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    assert condition(), "timed out waiting"


async def test_ticks_land_on_absolute_deadlines() -> None:
    clock = MediaClock()
    loop = asyncio.get_running_loop()
    ticks: list[tuple[int, float]] = []
    finished = loop.create_future()

    def on_tick(tick: int) -> None:
        ticks.append((tick, loop.time()))
        if len(ticks) == 101 and not finished.done():
            finished.set_result(None)

    clock.subscribe(on_tick)
    assert clock.running
    await asyncio.wait_for(finished, 5)
    clock.unsubscribe(on_tick)
    numbers = [tick for tick, _ in ticks]
    assert numbers == list(range(101))
    for tick, at in ticks:
        assert at >= clock.deadline(tick) - 0.001  # never early
    first, last = ticks[0][1], ticks[100][1]
    assert (last - first) / 100 == pytest.approx(PERIOD, abs=0.0005)
    # No drift: the hundredth tick is as close to its deadline as ticks ever are.
    assert last - clock.deadline(100) < 0.015
    assert clock.skipped == 0
    assert 0 <= clock.p99_lateness <= clock.max_lateness
    assert clock.lateness_percentile(0.5) <= clock.p99_lateness


async def test_a_stalled_loop_skips_ticks_instead_of_bursting() -> None:
    clock = MediaClock(max_behind=3)
    loop = asyncio.get_running_loop()
    ticks: list[tuple[int, float]] = []
    finished = loop.create_future()

    def on_tick(tick: int) -> None:
        ticks.append((tick, loop.time()))
        if len(ticks) == 5:
            time.sleep(0.2)  # the whole loop stalls: ten ticks' worth
        if len(ticks) == 12 and not finished.done():
            finished.set_result(None)

    clock.subscribe(on_tick)
    await asyncio.wait_for(finished, 5)
    clock.close()
    numbers = [tick for tick, _ in ticks]
    jump = numbers[5] - numbers[4]
    assert 9 <= jump <= 12
    assert clock.skipped == jump - 1
    # After the stall the ticks are consecutive again, each within a period of its deadline.
    assert numbers[5:] == list(range(numbers[5], numbers[5] + 7))
    for tick, at in ticks[5:]:
        assert clock.deadline(tick) - 0.001 <= at < clock.deadline(tick) + PERIOD
    assert clock.max_lateness >= 0.18


async def test_runs_only_while_it_has_subscribers() -> None:
    clock = MediaClock()
    seen: list[int] = []

    def first(tick: int) -> None:
        seen.append(tick)

    def second(tick: int) -> None:
        pass

    assert not clock.running
    clock.subscribe(first)
    clock.subscribe(second)
    await wait_until(lambda: len(seen) >= 2)
    clock.unsubscribe(first)
    assert clock.running and clock.subscribers == 1
    clock.unsubscribe(second)
    clock.unsubscribe(second)  # harmless
    assert not clock.running
    last = clock.tick
    await asyncio.sleep(0.05)
    assert clock.tick == last
    clock.subscribe(first)
    await wait_until(lambda: seen[-1] > last)
    assert seen[-1] == last + 1  # numbers go on across a stop
    clock.close()
    assert not clock.running


async def test_a_failing_subscriber_is_logged_and_the_clock_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = MediaClock()
    seen: list[int] = []

    def broken(tick: int) -> None:
        raise RuntimeError("boom")

    clock.subscribe(broken)
    clock.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="callcenter.media.clock"):
        await wait_until(lambda: len(seen) >= 3)
    clock.close()
    assert "media clock subscriber" in caplog.text


@pytest.fixture
async def leg_and_phone() -> AsyncIterator[tuple[RtpPort, RtpPort, list[RtpPacket]]]:
    """A server leg sending to a phone that keeps every packet it gets."""
    allocator = PortAllocator()
    leg = await RtpPort.open(HOST, allocator, PCMU)
    phone = await RtpPort.open(HOST, allocator, PCMU)
    leg.set_remote((HOST, phone.number))
    received: list[RtpPacket] = []
    phone.on_audio = lambda payload, packet: received.append(packet)
    yield leg, phone, received
    leg.close()
    phone.close()
    await leg.wait_closed()
    await phone.wait_closed()


async def test_player_sends_one_frame_a_tick(
    leg_and_phone: tuple[RtpPort, RtpPort, list[RtpPacket]],
) -> None:
    leg, _, received = leg_and_phone
    clock = MediaClock()
    audio = bytes(range(160)) * 10  # 200 ms
    player = Player(leg, clock, audio)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(player.start(), 2)
    assert loop.time() - started == pytest.approx(0.200, abs=0.030)
    assert not clock.running  # the player left the clock when it finished
    await wait_until(lambda: len(received) == 10)
    await asyncio.sleep(0.05)
    assert len(received) == 10 and player.frames_sent == 10
    assert b"".join(p.payload for p in received) == audio
    assert [p.marker for p in received] == [True] + [False] * 9
    first = received[0]
    assert [(p.sequence - first.sequence) % 65536 for p in received] == list(range(10))
    assert [(p.timestamp - first.timestamp) % 2**32 for p in received] == [
        160 * n for n in range(10)
    ]


async def test_player_pads_the_last_frame_with_silence(
    leg_and_phone: tuple[RtpPort, RtpPort, list[RtpPacket]],
) -> None:
    leg, _, received = leg_and_phone
    player = Player(leg, MediaClock(), b"\x10" * 170)
    await asyncio.wait_for(player.start(), 2)
    await wait_until(lambda: len(received) == 2)
    assert received[1].payload == b"\x10" * 10 + b"\xff" * 150


async def test_looping_player_runs_until_stopped(
    leg_and_phone: tuple[RtpPort, RtpPort, list[RtpPacket]],
) -> None:
    leg, _, received = leg_and_phone
    clock = MediaClock()
    music = bytes(range(100))  # shorter than a frame: it wraps inside frames
    player = Player(leg, clock, music, loop=True)
    player.start()
    await wait_until(lambda: len(received) >= 6)
    player.stop()
    await asyncio.wait_for(player.done, 1)
    assert not clock.running and not player.playing
    played = b"".join(p.payload for p in received)
    assert played == (music * 20)[: len(played)]
    with pytest.raises(RuntimeError):
        player.start()


async def test_player_on_a_30_ms_leg() -> None:
    allocator = PortAllocator()
    leg = await RtpPort.open(HOST, allocator, PCMA, ptime=30)
    phone = await RtpPort.open(HOST, allocator, PCMA)
    leg.set_remote((HOST, phone.number))
    sizes: list[int] = []
    phone.on_audio = lambda payload, packet: sizes.append(len(payload))
    try:
        await asyncio.wait_for(Player(leg, MediaClock(), b"\xd5" * 160 * 12).start(), 2)
        await wait_until(lambda: len(sizes) == 8)
        assert sizes == [240] * 8
    finally:
        leg.close()
        phone.close()
        await leg.wait_closed()
        await phone.wait_closed()
