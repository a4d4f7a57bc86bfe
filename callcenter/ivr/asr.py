"""Short spoken answers with vosk, constrained to a menu's phrases.

A model directory per language comes from configuration; a language without
one has no speech input, and its menus take DTMF only (give
:attr:`SpeechRecognizer.languages` to the interpreter as its
``speech_languages``).

The recogniser is grammar-constrained: it may only hear the menu's phrases,
or ``[unk]`` for anything else, which is what makes a small model reliable
on a telephone line. Audio comes in as 8 kHz 16-bit PCM (decoded G.711) and
is resampled to the model's rate (16 kHz for most vosk models) on the way in.
Model loading (seconds) and recognition run off the event loop.

Use one :class:`SpeechStream` per :class:`~callcenter.ivr.events.Listen`:
feed it the caller's audio as it arrives (batches of 100 ms or so; every call
is a thread hop), and send the first :class:`Recognition` it returns as
``SpeechResult``; call :meth:`SpeechStream.finish` on a timeout to get what
it heard so far.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callcenter.ivr.resample import Resampler

#: Audio that comes off the telephone line.
LINE_RATE = 8000
_SAMPLE_FREQUENCY = re.compile(r"--sample-frequency=(\d+)")


class NoSpeechModel(LookupError):
    """No speech model is configured for the language (use DTMF instead)."""


@dataclass(frozen=True, slots=True)
class Recognition:
    """What was heard: the text ("" if nothing in the grammar) and a confidence 0..1."""

    text: str
    confidence: float


def model_rate(model_dir: Path) -> int:
    """The sample rate a vosk model expects (``conf/mfcc.conf``; Kaldi's default 16 kHz)."""
    try:
        conf = (model_dir / "conf" / "mfcc.conf").read_text()
    except FileNotFoundError:
        return 16000
    found = _SAMPLE_FREQUENCY.search(conf)
    return int(found.group(1)) if found else 16000


class SpeechRecognizer:
    """vosk models by language, loaded on first use (or by :meth:`load`).

    ``max_phrases`` and ``max_phrase_chars`` limit a grammar; ``max_seconds``
    limits the audio one stream takes (more is ignored), so a stream left open
    cannot grow without bound.
    """

    def __init__(
        self,
        models: Mapping[str, Path],
        *,
        max_phrases: int = 50,
        max_phrase_chars: int = 100,
        max_seconds: float = 30.0,
    ) -> None:
        self.models = dict(models)
        self.max_phrases = max_phrases
        self.max_phrase_chars = max_phrase_chars
        self.max_seconds = max_seconds
        self._loaded: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    @property
    def languages(self) -> frozenset[str]:
        """Languages with a model: the interpreter's ``speech_languages``."""
        return frozenset(self.models)

    async def load(self, language: str) -> None:
        """Load the language's model now rather than on the first call (takes seconds)."""
        await self._model(language)

    async def _model(self, language: str) -> Any:
        if language not in self.models:
            raise NoSpeechModel(f"no speech model for language {language!r}")
        async with self._lock:
            model = self._loaded.get(language)
            if model is None:
                model = await asyncio.to_thread(_load_model, self.models[language])
                self._loaded[language] = model
            return model

    async def open(self, language: str, phrases: Sequence[str]) -> SpeechStream:
        """A recogniser for one answer, constrained to ``phrases``."""
        if not phrases:
            raise ValueError("a grammar needs at least one phrase")
        if len(phrases) > self.max_phrases:
            raise ValueError(f"a grammar has at most {self.max_phrases} phrases")
        for phrase in phrases:
            if not phrase.strip() or len(phrase) > self.max_phrase_chars:
                raise ValueError(f"bad phrase {phrase[:40]!r}")
        model = await self._model(language)
        rate = model_rate(self.models[language])
        # vosk's vocabulary is lower case; unknown words in a grammar are dropped.
        grammar = json.dumps(
            [*(" ".join(p.lower().split()) for p in phrases), "[unk]"], ensure_ascii=False
        )
        recognizer = await asyncio.to_thread(_recognizer, model, rate, grammar)
        return SpeechStream(recognizer, rate, int(self.max_seconds * LINE_RATE * 2))

    async def recognize(self, pcm: bytes, language: str, phrases: Sequence[str]) -> Recognition:
        """Recognise one whole utterance of 8 kHz 16-bit PCM."""
        stream = await self.open(language, phrases)
        heard = await stream.feed(pcm)
        final = await stream.finish()
        return heard or final


class SpeechStream:
    """One utterance: feed 8 kHz PCM, get a :class:`Recognition` at its end.

    Calls must not overlap (await each before the next).
    """

    def __init__(self, recognizer: Any, rate: int, max_bytes: int) -> None:
        self._recognizer = recognizer
        self._resampler = Resampler(LINE_RATE, rate) if rate != LINE_RATE else None
        self._left = max_bytes
        self._done: Recognition | None = None

    async def feed(self, pcm: bytes) -> Recognition | None:
        """Take more audio; returns the result once the caller has stopped speaking."""
        if self._done is not None:
            return None
        pcm = pcm[: max(self._left, 0)]
        self._left -= len(pcm)
        if not pcm:
            return None
        ended = await asyncio.to_thread(self._accept, pcm)
        if not ended:
            return None
        result = _recognition(self._recognizer.Result())
        if not result.text:
            return None  # silence or noise before the answer: keep listening
        self._done = result
        return result

    async def finish(self) -> Recognition:
        """The result when the audio ends without a clear end of speech."""
        if self._done is not None:
            return self._done
        self._done = await asyncio.to_thread(self._final)
        return self._done

    def _accept(self, pcm: bytes) -> bool:
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        return bool(self._recognizer.AcceptWaveform(pcm))

    def _final(self) -> Recognition:
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail:
                self._recognizer.AcceptWaveform(tail)
        return _recognition(self._recognizer.FinalResult())


def _load_model(path: Path) -> Any:
    import vosk  # type: ignore[import-untyped]

    # Kaldi logs to stderr: -1 would keep warnings, and there is one on every
    # grammar for each word the model lacks ("[unk]" in models without it, as
    # the Korean one); -2 keeps errors only.
    vosk.SetLogLevel(-2)
    if not (path / "am").is_dir() and not (path / "final.mdl").exists():
        raise NoSpeechModel(f"{path} is not a vosk model directory")
    return vosk.Model(str(path))


def _recognizer(model: Any, rate: int, grammar: str) -> Any:
    import vosk

    recognizer = vosk.KaldiRecognizer(model, rate, grammar)
    recognizer.SetWords(True)  # per-word confidences
    return recognizer


def _recognition(result_json: str) -> Recognition:
    """vosk's JSON result -> text without ``[unk]`` and the mean word confidence."""
    result = json.loads(result_json)
    words = [w for w in result.get("result", ()) if w.get("word") != "[unk]"]
    text = " ".join(w["word"] for w in words)
    if not words:
        return Recognition("", 0.0)
    confidence = sum(float(w.get("conf", 0.0)) for w in words) / len(words)
    return Recognition(text, min(1.0, max(0.0, confidence)))
