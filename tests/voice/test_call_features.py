"""Call features with real SIPp peers: the survey after the agent leaves, draining on shutdown."""

from __future__ import annotations

import array
import asyncio
import math
import wave
from pathlib import Path
from typing import Any

import pytest

from callcenter.media import g711
from callcenter.server import Server
from callcenter.voice.sounds import Sounds
from tests.conftest import ApiClient
from tests.voice.sipp import Sipp, available_console, free_port, register_phone, sipp

FLOWS = Path(__file__).parent / "flows"
SIP = {"digest_algorithms": ["MD5", "SHA-256"], "trunks": ["127.0.0.1"]}


async def _agent_phone(server: Server, tmp_path: Path, scenario: str) -> Sipp:
    assert server.voice is not None
    uas_port = free_port()
    phone = await Sipp(
        scenario,
        "",
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_port() & ~1),
        "-rtp_echo",
        folder=tmp_path,
        port=uas_port,
        timeout=40,
    ).start()
    await register_phone(f"127.0.0.1:{server.voice.port}", uas_port, folder=tmp_path)
    return phone


@pytest.mark.settings(sip=SIP, voice={"numbers": {"100": "survey"}, "flows_directory": str(FLOWS)})
async def test_caller_rates_the_call_after_the_agent_hangs_up(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    assert server.voice is not None
    await client.login("super")
    # No wrap-up: the interaction is written as the agent hangs up, before the score.
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 0})
    assert made.status == 201, made.body
    phone = await _agent_phone(server, tmp_path, "agent_hangs_up")
    console = await available_console(new_client, "agent")
    caller = await sipp(
        "caller_survey",
        f"127.0.0.1:{server.voice.port}",
        *("-s", "100", "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)),
        folder=tmp_path,
        timeout=40,
    )
    assert caller.returncode == 0, caller.errors or caller.stderr
    assert (await phone.finish()).returncode == 0
    offer = await console.type("offer")
    interaction = f"/api/v1/interactions/{offer['contact_id']}"
    for _ in range(50):
        found = await client.get(interaction)
        if found.status == 200 and found.body["csat_score"] is not None:
            break
        await asyncio.sleep(0.1)
    assert found.body["csat_score"] == 4
    assert found.body["has_recording"] is True
    assert found.body["ivr_path"][:2] == ["welcome", "support"]
    tickets = found.body["ticket_ids"]
    assert len(tickets) == 1
    ticket = await client.get(f"/api/v1/tickets/{tickets[0]}")
    assert ticket.body["csat_score"] == 4


@pytest.mark.settings(sip=SIP, voice={"numbers": {"100": "support"}, "flows_directory": str(FLOWS)})
async def test_draining_refuses_new_calls(server: Server, tmp_path: Path) -> None:
    assert server.voice is not None and server.calls is not None
    await server.drain()
    refused = await sipp(
        "caller_menu", f"127.0.0.1:{server.voice.port}", "-s", "100", folder=tmp_path, timeout=10
    )
    assert refused.returncode != 0
    assert "503" in refused.errors + refused.stdout


async def test_sounds_are_played_in_the_calls_codec(tmp_path: Path) -> None:
    sounds = Sounds(tmp_path)
    tone = array.array(
        "h", [int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8000)]
    )
    with wave.open(str(tmp_path / "beep.wav"), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(tone.tobytes())
    with wave.open(str(tmp_path / "stereo.wav"), "wb") as sound:
        sound.setnchannels(2)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(3200))
    ulaw = await sounds.load("beep.wav", "PCMU")
    alaw = await sounds.load("beep.wav", "PCMA")
    assert len(ulaw) == len(alaw) == 8000 and ulaw != alaw
    assert g711.ulaw_to_pcm(ulaw)[:400] != bytes(400)  # not silence
    # Refused, not played: another format, a missing file, a path out of the folder.
    assert await sounds.load("stereo.wav", "PCMU") == b""
    assert await sounds.load("missing.wav", "PCMU") == b""
    assert await sounds.load("../beep.wav", "PCMU") == b""


@pytest.mark.settings(sip=SIP, voice={"numbers": {"100": "support"}, "flows_directory": str(FLOWS)})
async def test_a_call_that_ends_in_the_menu_is_an_interaction(
    server: Server, client: ApiClient, tmp_path: Path
) -> None:
    assert server.voice is not None
    caller = await sipp(
        "caller_hangs_up_in_menu", f"127.0.0.1:{server.voice.port}", "-s", "100", folder=tmp_path
    )
    assert caller.returncode == 0, caller.errors or caller.stderr
    await client.login("super")
    for _ in range(50):  # written through the spool
        found = (await client.get("/api/v1/interactions", channel="voice")).body["items"]
        if found:
            break
        await asyncio.sleep(0.1)
    assert len(found) == 1
    (interaction,) = found
    assert interaction["end_reason"] == "caller_hung_up"
    assert interaction["ivr_path"] == ["welcome"] and interaction["agent_id"] is None
    assert interaction["remote_identity"] == "+8613800138000"
