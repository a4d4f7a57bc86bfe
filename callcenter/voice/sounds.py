"""Recorded sounds a call plays: the flows' audio files and the music on hold.

Files of the sounds folder (WAV, 8 kHz, mono, 16-bit) are read once per
codec and kept encoded; a name that leads outside the folder is refused.
The music on hold is made here, not shipped: a soft two-note chime every
few seconds.
"""

from __future__ import annotations

import array
import asyncio
import logging
import math
import wave
from pathlib import Path

from callcenter.media import g711

log = logging.getLogger(__name__)


class Sounds:
    """The sounds folder, read lazily and cached per codec."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, bytes] = {}
        self._music: dict[str, bytes] = {}

    async def load(self, name: str, encoding: str) -> bytes:
        """An audio file of the sounds folder in ``encoding``; b"" (logged) if unusable."""
        key = f"{encoding}:{name}"
        if key not in self._files:
            path = (self.folder / name).resolve()
            if not path.is_relative_to(self.folder.resolve()):
                log.warning("sound %r is outside the sounds folder", name)
                return b""
            try:
                pcm = await asyncio.to_thread(_read_wav, path)
            except (OSError, ValueError, EOFError) as error:
                log.warning("sound %s not played: %s", path, error)
                return b""
            self._files[key] = _encode(pcm, encoding)
        return self._files[key]

    def music_on_hold(self, encoding: str) -> bytes:
        """Music on hold in ``encoding``."""
        cached = self._music.get(encoding)
        if cached is None:
            cached = self._music[encoding] = _encode(_chime(), encoding)
        return cached


def _encode(pcm: bytes, encoding: str) -> bytes:
    return g711.pcm_to_alaw(pcm) if encoding == "PCMA" else g711.pcm_to_ulaw(pcm)


def _chime(seconds: float = 4.0, rate: int = 8000) -> bytes:
    """Linear PCM: two soft notes (E5, C5) with a decaying envelope, then quiet."""
    samples = array.array("h", bytes(2 * int(seconds * rate)))
    for start, freq in ((0.0, 659.25), (0.6, 523.25)):
        first = int(start * rate)
        for n in range(int(1.2 * rate)):
            envelope = math.exp(-3.0 * n / rate)
            value = 4000 * envelope * math.sin(2 * math.pi * freq * n / rate)
            samples[first + n] = max(-32768, min(32767, samples[first + n] + int(value)))
    return samples.tobytes()


def _read_wav(path: Path) -> bytes:
    """16-bit linear PCM of a WAV file at 8 kHz, mono (the format prompts are sent in)."""
    with wave.open(str(path), "rb") as sound:
        if (sound.getframerate(), sound.getnchannels(), sound.getsampwidth()) != (8000, 1, 2):
            raise ValueError("expected WAV at 8 kHz, mono, 16-bit")
        return sound.readframes(sound.getnframes())
