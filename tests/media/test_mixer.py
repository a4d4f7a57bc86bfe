"""The mixer's modes, heard through real UDP sockets: who hears whom, by tone.

Caller, agent and supervisor phones each play their own tone; the server's
three legs go into a mixer; each phone's received audio is then measured at
the three frequencies (Goertzel), which tells whose voice reached it.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callcenter.media.clock import MediaClock
from callcenter.media.mixer import Mixer, Mode
from callcenter.media.player import Player
from callcenter.media.port import PortAllocator, RtpPort
from callcenter.media.recorder import CallRecorder, Side
from callcenter.sip.sdp import PCMA, PCMU, Codec

HOST = "127.0.0.1"
TONES = {"caller": 440.0, "agent": 1100.0, "supervisor": 1900.0}
CODECS = {"caller": PCMU, "agent": PCMA, "supervisor": PCMU}


@dataclass
class Party:
    phone: RtpPort
    leg: RtpPort
    heard: bytearray = field(default_factory=bytearray)


@pytest.fixture
async def parties() -> AsyncIterator[dict[str, Party]]:
    allocator = PortAllocator()
    made: dict[str, Party] = {}
    for name, codec in CODECS.items():
        made[name] = await _party(allocator, codec)
    yield made
    for party in made.values():
        party.phone.close()
        party.leg.close()
    for party in made.values():
        await party.phone.wait_closed()
        await party.leg.wait_closed()


async def _party(allocator: PortAllocator, codec: Codec) -> Party:
    phone = await RtpPort.open(HOST, allocator, codec)
    leg = await RtpPort.open(HOST, allocator, codec)
    phone.set_remote((HOST, leg.number))
    leg.set_remote((HOST, phone.number))
    party = Party(phone, leg)
    phone.on_audio = lambda payload, packet: party.heard.extend(phone.decode(payload))
    return party


def tone(frequency: float, ms: int, amplitude: float = 6000) -> bytes:
    step = 2 * math.pi * frequency / 8000
    return array("h", (round(amplitude * math.sin(step * n)) for n in range(ms * 8))).tobytes()


def amplitude_at(pcm: bytes, frequency: float) -> float:
    """The amplitude of ``frequency`` in 16-bit PCM (Goertzel)."""
    values = array("h", pcm)
    coefficient = 2 * math.cos(2 * math.pi * frequency / 8000)
    s1 = s2 = 0.0
    for sample in values:
        s1, s2 = sample + coefficient * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / len(values)


def who_is_heard(party: Party) -> set[str]:
    """Whose tone is in the last 300 ms a phone received."""
    recent = bytes(party.heard[-4800:])
    assert len(recent) == 4800, "the phone received too little audio"
    levels = {name: amplitude_at(recent, frequency) for name, frequency in TONES.items()}
    for name, level in levels.items():
        assert level > 3000 or level < 300, f"{name} half heard: {levels}"
    return {name for name, level in levels.items() if level > 3000}


async def talk(parties: dict[str, Party], clock: MediaClock, seconds: float) -> None:
    """Every phone plays its tone for ``seconds``."""
    players = [
        Player(party.phone, clock, party.phone.encode(tone(TONES[name], 100)), loop=True)
        for name, party in parties.items()
    ]
    for player in players:
        player.start()
    await asyncio.sleep(seconds)
    for player in players:
        player.stop()


EXPECTED = {
    Mode.LISTEN: {
        "caller": {"agent"},
        "agent": {"caller"},
        "supervisor": {"caller", "agent"},
    },
    Mode.WHISPER: {
        "caller": {"agent"},
        "agent": {"caller", "supervisor"},
        "supervisor": {"caller", "agent"},
    },
    Mode.BARGE: {
        "caller": {"agent", "supervisor"},
        "agent": {"caller", "supervisor"},
        "supervisor": {"caller", "agent"},
    },
}


@pytest.mark.parametrize("mode", [Mode.LISTEN, Mode.WHISPER, Mode.BARGE])
async def test_who_hears_whom(parties: dict[str, Party], mode: Mode) -> None:
    clock = MediaClock()
    mixer = Mixer(clock)
    caller, agent, supervisor = (parties[n].leg for n in ("caller", "agent", "supervisor"))
    mixer.add(caller)
    mixer.add(agent)
    mixer.add(supervisor, mode, whisper_to=agent if mode is Mode.WHISPER else None)
    await talk(parties, clock, 0.6)
    mixer.close()
    assert not clock.running
    # The expected sets never name the phone itself: nobody hears their own voice.
    for name, party in parties.items():
        assert who_is_heard(party) == EXPECTED[mode][name], name
    assert mixer.ports == []


async def test_modes_change_during_the_call(parties: dict[str, Party]) -> None:
    clock = MediaClock()
    mixer = Mixer(clock)
    caller, agent, supervisor = (parties[n].leg for n in ("caller", "agent", "supervisor"))
    mixer.add(caller)
    mixer.add(agent)
    mixer.add(supervisor, Mode.LISTEN)
    assert mixer.hears(supervisor, caller) and not mixer.hears(caller, supervisor)
    mixer.set_mode(supervisor, Mode.WHISPER, whisper_to=agent)
    assert mixer.hears(agent, supervisor) and not mixer.hears(caller, supervisor)
    mixer.set_mode(supervisor, Mode.BARGE)
    assert mixer.mode_of(supervisor) is Mode.CONFERENCE
    await talk(parties, clock, 0.5)
    assert who_is_heard(parties["caller"]) == {"agent", "supervisor"}
    mixer.remove(supervisor)
    assert supervisor.on_audio is None
    await asyncio.sleep(0.05)  # what was sent before the removal arrives first
    for party in parties.values():
        party.heard.clear()
    await talk(parties, clock, 0.5)
    mixer.close()
    assert who_is_heard(parties["caller"]) == {"agent"}
    assert not parties["supervisor"].heard


async def test_mode_rules_are_checked(parties: dict[str, Party]) -> None:
    mixer = Mixer(MediaClock())
    caller, agent, supervisor = (parties[n].leg for n in ("caller", "agent", "supervisor"))
    mixer.add(caller)
    with pytest.raises(ValueError):
        mixer.add(caller)
    with pytest.raises(ValueError):
        mixer.add(supervisor, Mode.WHISPER)  # to nobody
    with pytest.raises(ValueError):
        mixer.add(supervisor, Mode.WHISPER, whisper_to=agent)  # not in the mix
    with pytest.raises(ValueError):
        mixer.add(supervisor, Mode.LISTEN, whisper_to=caller)
    mixer.add(agent)
    mixer.add(supervisor, Mode.WHISPER, whisper_to=agent)
    mixer.remove(agent)
    assert not mixer.hears(caller, supervisor)
    mixer.close()


async def test_loud_voices_are_clipped_not_wrapped(parties: dict[str, Party]) -> None:
    clock = MediaClock()
    mixer = Mixer(clock)
    for name in ("caller", "agent", "supervisor"):
        mixer.add(parties[name].leg)
    loud = tone(TONES["supervisor"], 20, amplitude=30000)
    players = [
        Player(parties[name].phone, clock, parties[name].phone.encode(loud), loop=True)
        for name in ("caller", "agent")
    ]
    for player in players:
        player.start()
    await asyncio.sleep(0.4)
    for player in players:
        player.stop()
    mixer.close()
    heard = array("h", bytes(parties["supervisor"].heard[-3200:]))
    assert max(heard) > 30000 and min(heard) < -30000
    # Wrapping would turn the peaks of the sum into their opposite sign.
    assert amplitude_at(heard.tobytes(), TONES["supervisor"]) > 25000


async def test_mixer_feeds_the_recorder(parties: dict[str, Party], tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "conference.wav")
    clock = MediaClock()
    mixer = Mixer(clock, recorder=recorder)
    mixer.add(parties["caller"].leg, side=Side.CALLER)
    mixer.add(parties["agent"].leg, side=Side.AGENT)
    mixer.add(parties["supervisor"].leg, Mode.BARGE)
    await talk(parties, clock, 0.4)
    mixer.close()
    assert await recorder.close() == pytest.approx(0.4, abs=0.1)
