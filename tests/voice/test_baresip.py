"""A call end to end between real baresip softphones: the caller, the menu, the agent's phone.

The caller is a baresip that dials the support number and presses 1 with
RFC 4733 events; the agent's phone is a baresip registered with digest
authentication as extension 1001 that answers by itself. Each plays its own
tone (caller 440 Hz, agent 1000 Hz), so the server's recording can be checked
for who is on which channel, and each dumps what it received.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import wave
from pathlib import Path
from typing import Any

import pytest

from callcenter.server import Server
from tests.conftest import ApiClient, missing_part
from tests.voice.baresip import Baresip
from tests.voice.sipp import available_console

FLOWS = Path(__file__).parent / "flows"
#: baresip 1.0 (libre) answers MD5 challenges only, and gives up on the whole
#: 401 ("Function not implemented") when any challenge in it is SHA-256, even
#: after an MD5 one: offer MD5 alone. Calls from 127.0.0.1 come in as a trunk.
BARESIP_SIP = {"digest_algorithms": ["MD5"], "trunks": ["127.0.0.1"]}
CALLER_HZ, AGENT_HZ = 440, 1000
#: One 20 ms frame at 8 kHz; frames quieter than SILENT (RMS) are left out of a pitch.
FRAME, SILENT = 160, 300.0


async def tone(path: Path, hertz: int, seconds: int = 30) -> Path:
    """A 16-bit mono 8 kHz WAV of a sine tone: what baresip's aufile source can play."""
    sox = shutil.which("sox")
    if sox is None:
        missing_part("sox is not installed (Debian package sox)")
    assert sox is not None
    wav = ("-r", "8000", "-c", "1", "-b", "16", str(path))
    sine = ("synth", str(seconds), "sine", str(hertz), "vol", "0.5")
    process = await asyncio.create_subprocess_exec(sox, "-n", *wav, *sine)
    assert await process.wait() == 0
    return path


def samples(path: Path, channel: int = 0) -> memoryview:
    """One channel of a 16-bit WAV, as signed samples."""
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2 and wav.getframerate() == 8000
        channels = wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    return memoryview(frames).cast("h")[channel::channels]


def energy(values: memoryview) -> float:
    return sum(v * v for v in values) / max(1, len(values))


def pitch(values: memoryview) -> float:
    """The frequency of a tone: its rising zero crossings a second, in frames not silent."""
    rising, seconds = 0, 0.0
    for start in range(0, len(values) - FRAME, FRAME):
        # One sample more, so that a crossing between two frames counts once.
        frame = values[start : start + FRAME + 1]
        if energy(frame) < SILENT * SILENT:
            continue
        rising += sum(1 for a, b in itertools.pairwise(frame) if a < 0 <= b)
        seconds += FRAME / 8000
    return rising / seconds if seconds else 0.0


def assert_tone(values: memoryview, hertz: int) -> None:
    assert energy(values) > 1000, f"silent: energy {energy(values):.0f}"
    assert abs(pitch(values) - hertz) < 20, f"{pitch(values):.0f} Hz, not {hertz} Hz"


async def registered(server: Server, extension: str, phone: Baresip) -> None:
    """Wait for the phone's binding (its REGISTER_OK may come before the control link)."""
    assert server.voice is not None
    for _ in range(100):
        if server.voice.binding_peer(extension) is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{extension} did not register:\n{phone.log_tail()}")


@pytest.mark.settings(
    sip=BARESIP_SIP, voice={"numbers": {"100": "support"}, "flows_directory": str(FLOWS)}
)
async def test_baresip_caller_reaches_a_baresip_agent_through_the_menu(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    assert server.voice is not None and server.calls is not None
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 30})
    assert made.status == 201, made.body
    port = server.voice.port
    caller_sound = await tone(tmp_path / "caller.wav", CALLER_HZ)
    agent_sound = await tone(tmp_path / "agent.wav", AGENT_HZ)

    # The agent's phone registers with digest auth and answers whatever rings it.
    agent_account = (
        f"<sip:1001@127.0.0.1:{port}>;auth_user=1001;auth_pass=sip-secret-1001;"
        "regint=300;answermode=auto;audio_codecs=PCMU,PCMA"
    )
    caller_account = "<sip:+8613800138000@127.0.0.1>;regint=0;audio_codecs=PCMU,PCMA"
    async with (
        Baresip(tmp_path, agent_account, agent_sound, name="agent") as agent_phone,
        Baresip(tmp_path, caller_account, caller_sound, name="caller") as caller_phone,
    ):
        await registered(server, "1001", agent_phone)

        console = await available_console(new_client, "agent")

        # The IVR answers at once; key 1 (an RFC 4733 event) during the menu's prompt.
        await caller_phone.command("dial", f"sip:100@127.0.0.1:{port}")
        await caller_phone.event("CALL_ESTABLISHED")
        await asyncio.sleep(1.0)
        await caller_phone.command("sndcode", "1")

        # Queued, offered: the agent's phone rings and answers; the console follows.
        offer = await console.type("offer")
        assert offer["channel"] == "voice" and offer["queue"] == "support"
        assert offer["pop"]["collected"] == {"welcome": "1"}
        answered = await agent_phone.event("CALL_ESTABLISHED")
        assert answered["direction"] == "incoming"
        await console.type("connected", contact_id=offer["contact_id"])

        # Talk for a while, then the caller hangs up and both calls close.
        await asyncio.sleep(3.0)
        await caller_phone.command("hangup")
        await caller_phone.event("CALL_CLOSED")
        await agent_phone.event("CALL_CLOSED")

    # The server's recording: the caller's tone on the left, the agent's on the right.
    recording = server.calls.recordings / f"{offer['contact_id']}.wav"
    for _ in range(50):
        if recording.exists() and recording.stat().st_size > 44:
            break
        await asyncio.sleep(0.1)
    with wave.open(str(recording)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
    assert_tone(samples(recording, 0), CALLER_HZ)
    assert_tone(samples(recording, 1), AGENT_HZ)

    # What each phone received (sndfile's dumps of the decoded audio): the agent
    # heard only the caller; the caller heard the menu, then the agent.
    (agent_heard,) = agent_phone.dumps("dec")
    assert_tone(samples(agent_heard), CALLER_HZ)
    (caller_heard,) = caller_phone.dumps("dec")
    assert_tone(samples(caller_heard)[-2 * 8000 :], AGENT_HZ)
