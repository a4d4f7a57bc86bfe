"""Prompts as speech: espeak-ng through pyttsx3, cached on disk as 8 kHz G.711.

:meth:`PromptCache.render` returns a prompt as G.711 codes (u-law, or A-law
on request), one byte a sample at 8 kHz and padded with silence to whole
20 ms frames of :data:`FRAME_BYTES`, ready for RTP. A prompt is rendered once
per (text, voice, speaking rate, engine version) and kept in the cache folder
under the SHA-256 of those, so a changed text or an upgraded espeak-ng never
serves stale audio; the files can be deleted at any time.

Rendering, off the event loop:

1. pyttsx3's espeak driver, on one thread of its own (libespeak-ng keeps
   global state and is not thread-safe), writes a 22,050 Hz WAV. The driver is
   known to hang now and then: after ``timeout_seconds`` it is abandoned for
   good (its thread cannot be killed; it is a daemon thread and does not hold
   up exit) and
2. the ``espeak-ng`` command renders the same text with ``-w file.wav``,
   under the same timeout, killed if it overruns.
3. The WAV is resampled to 8 kHz (:mod:`callcenter.ivr.resample`) and encoded
   with :mod:`callcenter.media.g711`.

Voices (:data:`VOICES`): English is espeak-ng's ``en-us``. Simplified Chinese
must use ``cmn-latn-pinyin``: the plain ``cmn`` voice turns characters into
pinyin and then reads the tone numbers aloud as English digits. The
``cmn-latn-pinyin`` voice reads tone-numbered pinyin ("ni3 hao3", tone 5 or
none for the neutral tone, ``v`` or ``ü`` for ü, tone sandhi applied) and also
reads characters through espeak-ng's own table, but that table gets polyphones
(银行 as yin2 xing2, 重新 as zhong4 xin1) and some tones (欢迎, 尽快) wrong. So
flows write Chinese prompts in characters with a pinyin ``reading``, checked
at load, and the voice layer renders the reading (``Say.reading``); digits
inside a reading are read in Chinese.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import io
import logging
import os
import queue
import re
import tempfile
import threading
import wave
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from callcenter.ivr.resample import resample
from callcenter.media.g711 import ALAW_SILENCE, ULAW_SILENCE, pcm_to_alaw, pcm_to_ulaw

log = logging.getLogger(__name__)

#: Bytes of one 20 ms G.711 frame at 8 kHz.
FRAME_BYTES = 160
SAMPLE_RATE = 8000

#: espeak-ng voice per flow language (see the module documentation for Chinese).
VOICES: Mapping[str, str] = {"en": "en-us", "zh-CN": "cmn-latn-pinyin"}

#: Changes whenever the way a prompt is turned into audio changes, so that
#: files rendered the old way are not served.
_PIPELINE_VERSION = "1"

Law = Literal["ulaw", "alaw"]

_WAV_HEADER_BYTES = 44


class TtsError(RuntimeError):
    """A prompt could not be rendered (no espeak-ng, a voice missing, both paths failed)."""


def frames(audio: bytes, frame_bytes: int = FRAME_BYTES) -> Iterator[bytes]:
    """Split rendered audio into 20 ms frames (it is already a whole number of them)."""
    for start in range(0, len(audio), frame_bytes):
        yield audio[start : start + frame_bytes]


class PromptCache:
    """Renders prompts to G.711 and keeps them in ``folder``.

    ``max_chars`` is a security limit on one prompt's text. Call
    :meth:`close` when done; renders still running then finish on their own.
    """

    def __init__(
        self,
        folder: Path,
        *,
        voices: Mapping[str, str] = VOICES,
        words_per_minute: int = 160,
        timeout_seconds: float = 10.0,
        max_chars: int = 2000,
        use_pyttsx3: bool = True,
        command: str = "espeak-ng",
    ) -> None:
        if not 80 <= words_per_minute <= 450:
            raise ValueError(f"words_per_minute must be 80..450, not {words_per_minute}")
        self.folder = folder
        self.voices = dict(voices)
        self.words_per_minute = words_per_minute
        self.timeout_seconds = timeout_seconds
        self.max_chars = max_chars
        self.command = command
        #: Prompts rendered (not found in the cache) since this object was made.
        self.renders = 0
        self._pyttsx3: _Pyttsx3Thread | None = _Pyttsx3Thread() if use_pyttsx3 else None
        self._engine_version: str | None = None
        self._inflight: dict[Path, asyncio.Future[bytes]] = {}

    async def render(self, text: str, language: str, *, law: Law = "ulaw") -> bytes:
        """The prompt as G.711 ``law`` codes in whole 20 ms frames; renders on a cache miss.

        ``text`` is what the TTS speaks (a Say action's reading when it has
        one). Raises :class:`TtsError` when it cannot be rendered and
        ``ValueError`` for an empty or too long text or an unknown language.
        """
        voice = self.voices.get(language)
        if voice is None:
            raise ValueError(f"no voice for language {language!r}")
        spoken = " ".join(text.split())
        if not spoken:
            raise ValueError("nothing to say")
        if len(spoken) > self.max_chars:
            raise ValueError(f"prompt longer than {self.max_chars} characters")
        path = await self.cache_path(spoken, language, law=law)
        pending = self._inflight.get(path)
        if pending is None:
            pending = asyncio.ensure_future(self._load_or_render(path, spoken, voice, law))
            self._inflight[path] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(path, None))
        # Shielded: one caller giving up does not cancel the render for the others.
        return await asyncio.shield(pending)

    async def cache_path(self, text: str, language: str, *, law: Law = "ulaw") -> Path:
        """Where the prompt is (or will be) cached."""
        voice = self.voices[language]
        version = await self.engine_version()
        key = "\0".join(
            (_PIPELINE_VERSION, version, voice, str(self.words_per_minute), " ".join(text.split()))
        )
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}.{law}"

    async def engine_version(self) -> str:
        """espeak-ng's version (part of every cache key); ``TtsError`` if it is missing."""
        if self._engine_version is None:
            output = await self._run_command("--version", stdin=b"")
            found = re.search(rb"text-to-speech:\s*(\S+)", output)
            self._engine_version = found.group(1).decode() if found else output.decode()[:80]
        return self._engine_version

    async def close(self) -> None:
        pending = list(self._inflight.values())
        for render in pending:
            render.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._pyttsx3 is not None:
            self._pyttsx3.close()
            self._pyttsx3 = None

    async def _load_or_render(self, path: Path, text: str, voice: str, law: Law) -> bytes:
        cached = await asyncio.to_thread(_read_cached, path)
        if cached is not None:
            return cached
        self.renders += 1
        wav = await asyncio.to_thread(_scratch_file, path.parent)
        # The command writes a file of its own: a pyttsx3 render given up on
        # may still finish later and must not write over what is being read.
        command_wav = wav.with_name(f"{wav.stem}-command.wav")
        try:
            written = await self._synthesize(text, voice, wav, command_wav)
            return await asyncio.to_thread(_encode_and_store, written, law, path)
        finally:
            for scratch in (wav, command_wav):
                await asyncio.to_thread(scratch.unlink, missing_ok=True)

    async def _synthesize(self, text: str, voice: str, wav: Path, command_wav: Path) -> Path:
        """Render to ``wav`` with pyttsx3, else to ``command_wav`` with the command."""
        worker = self._pyttsx3
        if worker is not None:
            job = worker.submit(text, voice, self.words_per_minute, wav)
            try:
                await asyncio.wait_for(asyncio.wrap_future(job), self.timeout_seconds)
            except TimeoutError:
                log.warning("pyttsx3 hung rendering a prompt; using the espeak-ng command from now")
                worker.close()
                self._pyttsx3 = None
            except ImportError:
                log.warning("pyttsx3 is not installed; rendering with the espeak-ng command")
                worker.close()
                self._pyttsx3 = None
            except Exception as exc:
                log.warning("pyttsx3 failed (%s); rendering with the espeak-ng command", exc)
            else:
                return wav
        args = ["-v", voice, "-s", str(self.words_per_minute), "-b", "1", "-w", str(command_wav)]
        await self._run_command(*args, "--stdin", stdin=text.encode())
        return command_wav

    async def _run_command(self, *args: str, stdin: bytes) -> bytes:
        try:
            process = await asyncio.create_subprocess_exec(
                self.command,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise TtsError(f"{self.command} not found: install the espeak-ng package") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), self.timeout_seconds)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise TtsError(f"{self.command} took longer than {self.timeout_seconds} s") from None
        except asyncio.CancelledError:
            # The server is stopping: leave no process and no open pipes behind.
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            message = err.decode(errors="replace").strip()[:200]
            raise TtsError(f"{self.command} failed ({process.returncode}): {message}")
        return out


def _read_cached(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _scratch_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="render-", suffix=".wav", dir=folder)
    os.close(fd)
    return Path(name)


def _encode_and_store(wav: Path, law: Law, path: Path) -> bytes:
    """22,050 Hz WAV -> 8 kHz G.711 in whole frames, written atomically to ``path``."""
    try:
        with wave.open(str(wav), "rb") as reader:
            if reader.getnchannels() != 1 or reader.getsampwidth() != 2:
                raise TtsError("espeak-ng did not write 16-bit mono audio")
            rate = reader.getframerate()
            pcm = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise TtsError(f"espeak-ng wrote an unreadable WAV: {exc}") from None
    if not pcm:
        raise TtsError("espeak-ng rendered no audio")
    narrow = resample(pcm, rate, SAMPLE_RATE)
    codes = pcm_to_ulaw(narrow) if law == "ulaw" else pcm_to_alaw(narrow)
    silence = ULAW_SILENCE if law == "ulaw" else ALAW_SILENCE
    codes += bytes([silence]) * (-len(codes) % FRAME_BYTES)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(codes)
    os.replace(temporary, path)
    return codes


_Job = tuple["concurrent.futures.Future[None]", str, str, int, Path]


class _Pyttsx3Thread:
    """pyttsx3 on a daemon thread of its own; jobs run one at a time."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(
        self, text: str, voice: str, words_per_minute: int, wav: Path
    ) -> concurrent.futures.Future[None]:
        job: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pyttsx3", daemon=True)
            self._thread.start()
        self._jobs.put((job, text, voice, words_per_minute, wav))
        return job

    def close(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        engine: Any = None
        while (item := self._jobs.get()) is not None:
            job, text, voice, words_per_minute, wav = item
            if not job.set_running_or_notify_cancel():
                continue
            try:
                if engine is None:
                    import pyttsx3  # type: ignore[import-untyped]

                    engine = pyttsx3.init("espeak")
                engine.setProperty("voice", voice)
                engine.setProperty("rate", words_per_minute)
                engine.save_to_file(text, str(wav))
                # The espeak driver print()s a line for every file it saves;
                # stdout is swapped for the ~10 ms of the render to keep it quiet.
                with contextlib.redirect_stdout(io.StringIO()):
                    engine.runAndWait()
                if wav.stat().st_size <= _WAV_HEADER_BYTES:
                    raise TtsError("pyttsx3 rendered no audio")
            except Exception as exc:
                job.set_exception(exc)
            else:
                job.set_result(None)
