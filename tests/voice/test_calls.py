"""A call end to end with real SIPp peers: IVR menu, key 1, queue, the agent's phone, bridge."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import pytest

from callcenter.server import Server
from tests.conftest import ApiClient
from tests.voice.sipp import Sipp, available_console, free_port, register_phone, sipp

FLOWS = Path(__file__).parent / "flows"
SIPP_MD5 = {"digest_algorithms": ["MD5", "SHA-256"], "trunks": ["127.0.0.1"]}


def energy(samples: bytes) -> float:
    values = memoryview(samples).cast("h")
    return sum(v * v for v in values) / max(1, len(values))


@pytest.mark.settings(
    sip=SIPP_MD5, voice={"numbers": {"100": "support"}, "flows_directory": str(FLOWS)}
)
async def test_caller_reaches_a_registered_agent_through_the_menu(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    assert server.voice is not None and server.calls is not None
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 30})
    assert made.status == 201, made.body
    target = f"127.0.0.1:{server.voice.port}"

    # The agent's phone: registered, and ringing at the port it named.
    uas_port, media_port = free_port(), free_port() & ~1
    agent_phone = await Sipp(
        "agent_answers",
        "",
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media_port),
        "-rtp_echo",
        folder=tmp_path,
        port=uas_port,
        timeout=40,
    ).start()
    await register_phone(target, uas_port, folder=tmp_path)

    # The agent's console: available.
    console = await available_console(new_client, "agent")

    caller = await sipp(
        "caller_menu",
        target,
        "-s",
        "100",
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_port() & ~1),
        folder=tmp_path,
        timeout=40,
    )
    assert caller.returncode == 0, caller.errors or caller.stderr
    answered = await agent_phone.finish()
    assert answered.returncode == 0, answered.errors or answered.stderr

    # The console saw the call as an offer with the caller's number, then connected.
    offer = await console.type("offer")
    assert offer["channel"] == "voice" and offer["queue"] == "support"
    assert offer["pop"]["collected"] is not None
    await console.type("connected", contact_id=offer["contact_id"])

    # The recording has the caller on the left and the echoing agent on the right.
    recording = server.calls.recordings / f"{offer['contact_id']}.wav"
    for _ in range(50):
        if recording.exists() and recording.stat().st_size > 44:
            break
        await asyncio.sleep(0.1)
    with wave.open(str(recording)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        frames = wav.readframes(wav.getnframes())
    left = b"".join(frames[i : i + 2] for i in range(0, len(frames), 4))
    right = b"".join(frames[i + 2 : i + 4] for i in range(0, len(frames), 4))
    assert energy(left) > 1000 and energy(right) > 1000
