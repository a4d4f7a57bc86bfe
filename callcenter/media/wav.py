"""Call recordings as WAV: 16-bit PCM, caller on the left, agent on the right.

:class:`WavWriter` writes the header first with zero sizes, appends audio as
the call goes, and patches the sizes on :meth:`WavWriter.close` (or
whenever :meth:`WavWriter.patch_header` is called, so a recording cut short
by a crash is still readable up to that point). The file object must be
seekable; the writer never closes it. :func:`read_recording` reads one back.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

SAMPLE_WIDTH = 2
HEADER_SIZE = 44
#: The RIFF size fields are 32 bits: about 37 hours of 8 kHz stereo.
MAX_DATA_BYTES = 0xFFFFFFFF - (HEADER_SIZE - 8)

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


class WavWriter:
    """Appends 16-bit little-endian PCM to a WAV file, one or two channels.

    Call :meth:`write` with each pair of frames (caller, agent) as they are
    recorded, then :meth:`close`. Use as a context manager to close on exit.
    """

    def __init__(
        self,
        file: BinaryIO,
        *,
        sample_rate: int = 8000,
        channels: int = 2,
        max_data_bytes: int = MAX_DATA_BYTES,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError("a recording has one or two channels")
        self.file = file
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_data_bytes = min(max_data_bytes, MAX_DATA_BYTES)
        self.data_bytes = 0
        self.closed = False
        self._start = file.tell()
        file.write(self._header())

    @property
    def frames(self) -> int:
        """Sample frames written (one sample per channel each)."""
        return self.data_bytes // (SAMPLE_WIDTH * self.channels)

    @property
    def duration(self) -> float:
        """Seconds of audio written."""
        return self.frames / self.sample_rate

    def write(self, caller: bytes, agent: bytes = b"") -> None:
        """Append one stretch of each side; the shorter side is padded with silence.

        With one channel only ``caller`` is written. Raises ``ValueError`` for
        a side that is not whole 16-bit samples, or past ``max_data_bytes``.
        """
        if self.closed:
            raise ValueError("the recording is closed")
        if self.channels == 1:
            if agent:
                raise ValueError("a mono recording has no agent channel")
            data = caller
            if len(data) % SAMPLE_WIDTH:
                raise ValueError("audio is whole 16-bit samples")
        else:
            data = interleave(caller, agent)
        if self.data_bytes + len(data) > self.max_data_bytes:
            raise ValueError("the recording has reached its size limit")
        self.file.write(data)
        self.data_bytes += len(data)

    def patch_header(self) -> None:
        """Write the sizes so far into the header, and come back to the end."""
        end = self.file.tell()
        self.file.seek(self._start)
        self.file.write(self._header())
        self.file.seek(end)

    def close(self) -> None:
        """Patch the header with the final sizes; the file object stays open."""
        if not self.closed:
            self.patch_header()
            self.file.flush()
            self.closed = True

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _header(self) -> bytes:
        block_align = SAMPLE_WIDTH * self.channels
        return _HEADER.pack(
            b"RIFF",
            HEADER_SIZE - 8 + self.data_bytes,
            b"WAVE",
            b"fmt ",
            16,
            1,  # PCM
            self.channels,
            self.sample_rate,
            self.sample_rate * block_align,
            block_align,
            8 * SAMPLE_WIDTH,
            b"data",
            self.data_bytes,
        )


def interleave(left: bytes, right: bytes) -> bytes:
    """Two mono 16-bit streams as one stereo stream; the shorter is padded with silence."""
    if len(left) % SAMPLE_WIDTH or len(right) % SAMPLE_WIDTH:
        raise ValueError("audio is whole 16-bit samples")
    size = max(len(left), len(right))
    stereo = bytearray(2 * size)
    # Byte by byte, so the result does not depend on the host's byte order.
    stereo[0 : 2 * len(left) : 4] = left[0::2]
    stereo[1 : 2 * len(left) : 4] = left[1::2]
    stereo[2 : 2 * len(right) : 4] = right[0::2]
    stereo[3 : 2 * len(right) : 4] = right[1::2]
    return bytes(stereo)


@dataclass(frozen=True, slots=True)
class Recording:
    """A recording read back: its rate and each channel as mono 16-bit PCM."""

    sample_rate: int
    caller: bytes
    agent: bytes | None


def read_recording(file: BinaryIO) -> Recording:
    """Read a WAV recording (via :mod:`wave`); ``agent`` is ``None`` for a mono file."""
    with wave.open(file, "rb") as reader:
        if reader.getsampwidth() != SAMPLE_WIDTH or reader.getnchannels() not in (1, 2):
            raise ValueError("not a 16-bit mono or stereo recording")
        rate = reader.getframerate()
        channels = reader.getnchannels()
        data = reader.readframes(reader.getnframes())
    if channels == 1:
        return Recording(rate, data, None)
    caller = bytearray(len(data) // 2)
    agent = bytearray(len(data) // 2)
    caller[0::2], caller[1::2] = data[0::4], data[1::4]
    agent[0::2], agent[1::2] = data[2::4], data[3::4]
    return Recording(rate, bytes(caller), bytes(agent))
