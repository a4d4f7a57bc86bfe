"""The relay bridge and the call recorder, between real UDP sockets on loopback.

Each call leg is a pair: a "phone" (an RtpPort standing for the peer) and
the server's leg it talks to. The bridge joins the two server legs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import wave
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from callcenter.media.bridge import Bridge
from callcenter.media.clock import MediaClock
from callcenter.media.g711 import alaw_to_pcm, pcm_to_alaw, pcm_to_ulaw, ulaw_to_pcm
from callcenter.media.player import Player
from callcenter.media.port import PortAllocator, RtpPort
from callcenter.media.recorder import CallRecorder, RecordingError, Side
from callcenter.media.rtp import RtpPacket
from callcenter.sip.sdp import PCMA, PCMU, TELEPHONE_EVENT, Codec

HOST = "127.0.0.1"
EVENT_96 = dataclasses.replace(TELEPHONE_EVENT, payload_type=96)
Pair = Callable[..., Awaitable[tuple[RtpPort, RtpPort]]]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """Makes (phone, server leg) pairs pointed at each other; closes them all at the end."""
    allocator = PortAllocator()
    opened: list[RtpPort] = []

    async def make(codec: Codec = PCMU, **options: Any) -> tuple[RtpPort, RtpPort]:
        phone = await RtpPort.open(HOST, allocator, codec, **options)
        leg = await RtpPort.open(HOST, allocator, codec, **options)
        phone.set_remote((HOST, leg.number))
        leg.set_remote((HOST, phone.number))
        opened.extend((phone, leg))
        return phone, leg

    yield make
    for port in opened:
        port.close()
    for port in opened:
        await port.wait_closed()


async def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` every 5 ms until it holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    assert condition(), "timed out waiting"


def tone(frequency: float, ms: int, amplitude: float = 8000) -> bytes:
    step = 2 * math.pi * frequency / 8000
    return array("h", (round(amplitude * math.sin(step * n)) for n in range(ms * 8))).tobytes()


def samples(pcm: bytes) -> array[int]:
    return array("h", pcm)


def amplitude_at(pcm: array[int] | list[int], frequency: float) -> float:
    """The amplitude of ``frequency`` in the samples (Goertzel)."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / 8000)
    s1 = s2 = 0.0
    for sample in pcm:
        s1, s2 = sample + coefficient * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / len(pcm)


def rms(pcm: array[int] | list[int]) -> float:
    return math.sqrt(sum(s * s for s in pcm) / len(pcm)) if len(pcm) else 0.0


def assert_g711_close(sent: bytes, received: bytes) -> None:
    """Equal within what one more G.711 quantization step can change."""
    assert len(sent) == len(received)
    for a, b in zip(samples(sent), samples(received), strict=True):
        assert abs(a - b) <= abs(a) / 16 + 8, (a, b)


def assert_one_stream(packets: list[RtpPacket], ssrc: int, payload_type: int) -> None:
    first = packets[0]
    assert all(p.ssrc == ssrc and p.payload_type == payload_type for p in packets)
    assert [(p.sequence - first.sequence) % 65536 for p in packets] == list(range(len(packets)))
    assert [(p.timestamp - first.timestamp) % 2**32 for p in packets] == [
        160 * n for n in range(len(packets))
    ]


async def test_relays_pcmu_to_pcma_and_back(pair: Pair) -> None:
    caller_phone, caller_leg = await pair(PCMU)
    agent_phone, agent_leg = await pair(PCMA)
    bridge = Bridge(caller_leg, agent_leg)
    at_agent: list[RtpPacket] = []
    at_caller: list[RtpPacket] = []
    agent_phone.on_audio = lambda payload, packet: at_agent.append(packet)
    caller_phone.on_audio = lambda payload, packet: at_caller.append(packet)

    spoken = pcm_to_ulaw(tone(440, 200))
    for start in range(0, len(spoken), 160):
        caller_phone.send_audio(spoken[start : start + 160])
    await wait_until(lambda: len(at_agent) == 10)
    assert_one_stream(at_agent, agent_leg.sender.ssrc, PCMA.payload_type)
    assert at_agent[0].marker
    heard = b"".join(p.payload for p in at_agent)
    assert_g711_close(ulaw_to_pcm(spoken), alaw_to_pcm(heard))

    answer = pcm_to_alaw(tone(1000, 100, amplitude=12000))
    for start in range(0, len(answer), 160):
        agent_phone.send_audio(answer[start : start + 160])
    await wait_until(lambda: len(at_caller) == 5)
    assert_one_stream(at_caller, caller_leg.sender.ssrc, PCMU.payload_type)
    heard = b"".join(p.payload for p in at_caller)
    assert_g711_close(alaw_to_pcm(answer), ulaw_to_pcm(heard))
    assert bridge.relayed_to(agent_leg) == 10 and bridge.relayed_to(caller_leg) == 5
    bridge.close()
    assert caller_leg.on_audio is None and agent_leg.on_audio is None


async def test_prompt_then_bridge_is_one_stream_to_the_caller(pair: Pair) -> None:
    caller_phone, caller_leg = await pair(PCMU)
    agent_phone, agent_leg = await pair(PCMU)
    at_caller: list[RtpPacket] = []
    caller_phone.on_audio = lambda payload, packet: at_caller.append(packet)
    await Player(caller_leg, MediaClock(), b"\x20" * 800).start()  # "please hold"
    bridge = Bridge(caller_leg, agent_leg)
    for _ in range(5):
        agent_phone.send_audio(b"\x30" * 160)
    await wait_until(lambda: len(at_caller) == 10)
    assert [p.payload[0] for p in at_caller] == [0x20] * 5 + [0x30] * 5
    assert len({p.ssrc for p in at_caller}) == 1
    first = at_caller[0]
    assert [(p.sequence - first.sequence) % 65536 for p in at_caller] == list(range(10))
    stamps = [(p.timestamp - first.timestamp) % 2**32 for p in at_caller]
    assert stamps == sorted(stamps) and stamps[5] >= 800
    assert at_caller[5].marker  # the relayed audio is a new talkspurt
    bridge.close()


async def test_rfc4733_digit_is_relayed_once_with_the_mapped_payload_type(pair: Pair) -> None:
    caller_phone, caller_leg = await pair(PCMU, telephone_event=TELEPHONE_EVENT)
    agent_phone, agent_leg = await pair(PCMA, telephone_event=EVENT_96)
    bridge = Bridge(caller_leg, agent_leg)
    at_agent: list[str] = []
    at_call_layer: list[str] = []
    events: list[RtpPacket] = []
    agent_phone.on_digit = at_agent.append
    agent_phone.on_event = events.append
    caller_leg.on_digit = at_call_layer.append
    await asyncio.wait_for(caller_phone.send_digit("7"), 2)
    await wait_until(lambda: len(at_agent) == 1)
    await asyncio.sleep(0.1)
    assert at_agent == ["7"] and at_call_layer == ["7"]
    assert len(events) == 7
    assert {p.payload_type for p in events} == {96}
    assert {p.timestamp for p in events} == {events[0].timestamp}
    assert {p.ssrc for p in events} == {agent_leg.sender.ssrc}
    assert events[0].marker
    bridge.close()


async def test_digit_toward_a_leg_without_telephone_event_is_played_in_band(pair: Pair) -> None:
    caller_phone, caller_leg = await pair(PCMU, telephone_event=TELEPHONE_EVENT)
    agent_phone, agent_leg = await pair(PCMA)
    bridge = Bridge(caller_leg, agent_leg)
    heard: list[str] = []
    agent_phone.on_digit = heard.append
    await asyncio.wait_for(caller_phone.send_digit("3"), 2)
    await wait_until(lambda: heard == ["3"])
    bridge.close()


async def test_hold_stops_relaying_toward_the_held_leg(pair: Pair) -> None:
    caller_phone, caller_leg = await pair(PCMU)
    agent_phone, agent_leg = await pair(PCMU)
    bridge = Bridge(caller_leg, agent_leg)
    at_caller: list[RtpPacket] = []
    at_agent: list[RtpPacket] = []
    caller_phone.on_audio = lambda payload, packet: at_caller.append(packet)
    agent_phone.on_audio = lambda payload, packet: at_agent.append(packet)
    bridge.hold(caller_leg)
    assert bridge.is_held(caller_leg) and not bridge.is_held(agent_leg)
    agent_phone.send_audio(b"\x01" * 160)
    caller_phone.send_audio(b"\x02" * 160)
    await wait_until(lambda: len(at_agent) == 1)
    await asyncio.sleep(0.05)
    assert at_caller == []
    bridge.resume(caller_leg)
    agent_phone.send_audio(b"\x03" * 160)
    await wait_until(lambda: len(at_caller) == 1)
    assert at_caller[0].payload == b"\x03" * 160 and at_caller[0].marker
    bridge.close()


async def test_a_leg_can_be_in_one_bridge_only(pair: Pair) -> None:
    _, caller_leg = await pair(PCMU)
    _, agent_leg = await pair(PCMU)
    _, other_leg = await pair(PCMU)
    bridge = Bridge(caller_leg, agent_leg)
    with pytest.raises(ValueError):
        Bridge(caller_leg, other_leg)
    with pytest.raises(ValueError):
        bridge.hold(other_leg)
    bridge.close()
    bridge.close()
    Bridge(caller_leg, other_leg).close()


async def test_bridge_records_both_sides_in_step(pair: Pair, tmp_path: Path) -> None:
    caller_phone, caller_leg = await pair(PCMU)
    agent_phone, agent_leg = await pair(PCMA)
    path = tmp_path / "call.wav"
    recorder = CallRecorder(path, start=asyncio.get_running_loop().time())
    bridge = Bridge(caller_leg, agent_leg, recorder)
    clock = MediaClock()
    caller_says = Player(caller_phone, clock, pcm_to_ulaw(tone(500, 1000))).start()
    await asyncio.sleep(0.3)
    agent_says = Player(agent_phone, clock, pcm_to_alaw(tone(1000, 500))).start()
    await asyncio.wait_for(asyncio.gather(caller_says, agent_says), 3)
    await asyncio.sleep(0.05)
    bridge.close()
    duration = await recorder.close()
    assert duration == pytest.approx(1.0, abs=0.1)

    with wave.open(str(path), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (2, 2, 8000)
        assert reader.getnframes() == round(duration * 8000)
        stereo = samples(reader.readframes(reader.getnframes()))
    caller, agent = stereo[0::2], stereo[1::2]
    assert amplitude_at(caller[:8000], 500) > 3000
    assert amplitude_at(caller[:8000], 1000) < 300
    assert amplitude_at(agent, 1000) > 1000
    assert amplitude_at(agent, 500) < 300
    # The agent began 300 ms in: its channel is silent until then, and then talks.
    assert rms(agent[: 8 * 200]) < 50
    assert rms(agent[8 * 400 : 8 * 700]) > 3000
    assert rms(caller[: 8 * 200]) > 3000


async def test_recorder_places_frames_by_arrival_time(tmp_path: Path) -> None:
    path = tmp_path / "aligned.wav"
    recorder = CallRecorder(path, start=100.0, chunk_seconds=0.1)
    caller_frame, agent_frame = tone(500, 20), tone(1000, 20)
    for n in range(50):
        arrival = 100.0 + n * 0.020 + 0.003
        recorder.feed(Side.CALLER, caller_frame, arrival)
        if 25 <= n < 35 or n >= 40:  # joins at 0.5 s, and 0.7-0.8 s is lost
            recorder.feed(Side.AGENT, agent_frame, arrival)
    assert await recorder.close() == pytest.approx(1.0)
    with wave.open(str(path), "rb") as reader:
        stereo = samples(reader.readframes(reader.getnframes()))
    caller, agent = stereo[0::2], stereo[1::2]
    assert len(caller) == 8000
    assert caller.tobytes() == caller_frame * 50
    assert agent.tobytes() == bytes(8000) + agent_frame * 10 + bytes(1600) + agent_frame * 10


async def test_recorder_drops_frames_of_a_side_running_ahead(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "fast.wav", start=0.0)
    for _ in range(40):
        recorder.feed(Side.CALLER, bytes(320), 0.0)
    assert recorder.dropped_frames == 29  # 200 ms ahead of real time is the limit
    assert await recorder.close() == pytest.approx(0.22)


async def test_recorder_reports_a_file_it_cannot_write(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "missing" / "call.wav")
    recorder.feed(Side.CALLER, bytes(320), 0.0)
    with pytest.raises(RecordingError):
        await recorder.close()
