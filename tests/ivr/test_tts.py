"""TTS with the real espeak-ng: G.711 of plausible length and energy, cached on disk."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import shutil
from array import array
from pathlib import Path
from typing import Any

import pytest

from callcenter.ivr import tts
from callcenter.ivr.flow import load_flow
from callcenter.ivr.steps import SayStep
from callcenter.ivr.tts import FRAME_BYTES, PromptCache, TtsError, frames
from callcenter.media.g711 import alaw_to_pcm, ulaw_to_pcm
from tests.conftest import missing_part

FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"
ENGLISH = "Welcome to Huatai customer service."


def chinese_greeting() -> str:
    """The reading of the demo greeting, as the voice layer passes it to the TTS."""
    step = load_flow(FLOWS / "main.yaml").steps["greeting"]
    assert isinstance(step, SayStep)
    return step.text.speech("zh-CN").reading


@pytest.fixture(autouse=True)
def espeak() -> None:
    if shutil.which("espeak-ng") is None:
        missing_part("espeak-ng is not installed (Debian package espeak-ng)")


@pytest.fixture
async def cache(tmp_path: Path) -> Any:
    made = PromptCache(tmp_path / "prompts")
    yield made
    await made.close()


def loudness(pcm: bytes) -> float:
    samples = array("h", pcm)
    return math.sqrt(sum(s * s for s in samples) / len(samples))


@pytest.mark.parametrize(
    ("language", "text", "shortest", "longest"),
    [("en", ENGLISH, 1.2, 5.0), ("zh-CN", chinese_greeting(), 2.5, 8.0)],
)
async def test_renders_ulaw_once_and_caches_it(
    cache: PromptCache, tmp_path: Path, language: str, text: str, shortest: float, longest: float
) -> None:
    audio = await cache.render(text, language)
    assert len(audio) % FRAME_BYTES == 0
    assert shortest < len(audio) / 8000 < longest
    pcm = ulaw_to_pcm(audio)
    assert loudness(pcm) > 1000  # speech, not silence
    # Speech has pauses: a good share of 20 ms frames is much quieter than the loudest.
    levels = sorted(loudness(ulaw_to_pcm(frame)) for frame in frames(audio))
    assert levels[len(levels) // 10] < levels[-1] / 10
    assert cache.renders == 1

    path = await cache.cache_path(text, language)
    assert path.read_bytes() == audio
    assert [p for p in (tmp_path / "prompts").rglob("*") if p.is_file()] == [path]
    assert await cache.render(f"  {text}\n", language) == audio  # same words, same prompt
    assert cache.renders == 1
    reopened = PromptCache(tmp_path / "prompts")
    assert await reopened.render(text, language) == audio
    assert reopened.renders == 0
    await reopened.close()


async def test_alaw_on_request(cache: PromptCache) -> None:
    ulaw = await cache.render(ENGLISH, "en")
    alaw = await cache.render(ENGLISH, "en", law="alaw")
    # espeak-ng's output varies by a few milliseconds from one render to the next.
    assert abs(len(alaw) - len(ulaw)) <= 2 * FRAME_BYTES and alaw != ulaw
    assert abs(loudness(alaw_to_pcm(alaw)) - loudness(ulaw_to_pcm(ulaw))) < 100
    assert (await cache.cache_path(ENGLISH, "en", law="alaw")).suffix == ".alaw"
    assert cache.renders == 2


async def test_keys_differ_by_text_and_voice(cache: PromptCache) -> None:
    paths = {
        await cache.cache_path("ni3 hao3", "zh-CN"),
        await cache.cache_path("ni3 hao3", "en"),
        await cache.cache_path("ni3 hao4", "zh-CN"),
    }
    assert len(paths) == 3
    assert await cache.engine_version() != ""


async def test_same_prompt_at_once_renders_once(cache: PromptCache) -> None:
    results = await asyncio.gather(*(cache.render("Please hold.", "en") for _ in range(4)))
    assert len(set(results)) == 1
    assert cache.renders == 1


async def test_the_command_renders_alone(tmp_path: Path, cache: PromptCache) -> None:
    command = PromptCache(tmp_path / "command", use_pyttsx3=False)
    by_command = await command.render(ENGLISH, "en")
    by_library = await cache.render(ENGLISH, "en")
    assert abs(len(by_command) - len(by_library)) <= len(by_library) // 10
    assert loudness(ulaw_to_pcm(by_command)) > 1000
    await command.close()


async def test_a_hung_pyttsx3_falls_back_to_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    submitted: list[str] = []

    def hang(self: object, text: str, *args: object) -> concurrent.futures.Future[None]:
        submitted.append(text)
        return concurrent.futures.Future()  # never done, as a wedged driver

    monkeypatch.setattr(tts._Pyttsx3Thread, "submit", hang)
    cache = PromptCache(tmp_path, timeout_seconds=0.5)
    with caplog.at_level(logging.WARNING, logger="callcenter.ivr.tts"):
        audio = await cache.render(ENGLISH, "en")
    assert loudness(ulaw_to_pcm(audio)) > 1000
    assert "pyttsx3 hung" in caplog.text
    await cache.render("Goodbye.", "en")
    assert submitted == [ENGLISH]  # abandoned for good after the hang
    await cache.close()


async def test_refusals(cache: PromptCache, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no voice"):
        await cache.render("Bonjour.", "fr")
    with pytest.raises(ValueError, match="nothing to say"):
        await cache.render(" \n ", "en")
    with pytest.raises(ValueError, match="longer than"):
        await PromptCache(tmp_path, max_chars=10).render("x" * 11, "en")
    missing = PromptCache(tmp_path, command="no-such-espeak-ng", use_pyttsx3=False)
    with pytest.raises(TtsError, match="not found"):
        await missing.render(ENGLISH, "en")
    with pytest.raises(ValueError, match="words_per_minute"):
        PromptCache(tmp_path, words_per_minute=20)
    assert cache.renders == 0


def test_frames() -> None:
    assert list(frames(b"a" * 320)) == [b"a" * 160, b"a" * 160]
    assert list(frames(b"")) == []
