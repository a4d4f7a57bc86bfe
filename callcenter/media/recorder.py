"""Records a call to a stereo WAV file: caller on the left, agent on the right.

The two sides' audio arrives independently, as packets come in (or as the
mixer re-clocks them), and either side may fall silent for a while (on
hold, muted, silence suppression, lost packets). :class:`CallRecorder`
keeps the channels in step by arrival time: time since the recording began
is cut into 20 ms slots, and each frame is placed where its side's audio
ends unless that is more than ``jitter_ms`` behind the frame's arrival slot,
in which case the gap is filled with silence first. A side running ahead of
real time by more than ``max_ahead_ms`` (a phone whose clock is fast) has
frames dropped. Network jitter thus never shifts the channels, and over a
long call they stay within ``jitter_ms`` of each other.

Audio is buffered and written in chunks of ``chunk_seconds`` by one worker
thread shared by all recordings, so a slow disk holds up the writer thread,
never the event loop. The WAV header is patched after every chunk: a
recording cut short by a crash is readable up to its last chunk.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO

from callcenter.media.wav import MAX_DATA_BYTES, SAMPLE_WIDTH, WavWriter

SLOT_MS = 20
DEFAULT_JITTER_MS = 60
DEFAULT_MAX_AHEAD_MS = 200
DEFAULT_CHUNK_SECONDS = 1.0

_executor: ThreadPoolExecutor | None = None


def _shared_executor() -> ThreadPoolExecutor:
    # One worker: the jobs of each recording must run in order, and a
    # single thread keeps up with thousands of 32 kB/s recordings.
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="call-recorder")
    return _executor


class Side(IntEnum):
    """The two channels of a recording."""

    CALLER = 0
    AGENT = 1


class RecordingError(RuntimeError):
    """The recording could not be written completely (the file or disk failed)."""


class CallRecorder:
    """A call's recording at ``path`` (created or overwritten).

    Create it in the event loop when recording starts (``start`` is that
    moment in ``loop.time()`` seconds; by default the first frame's
    arrival), call :meth:`feed` with each side's decoded audio as it
    arrives, and await :meth:`close` at the end of the call. ``executor``
    must run jobs in the order they are submitted (a single worker).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sample_rate: int = 8000,
        start: float | None = None,
        jitter_ms: int = DEFAULT_JITTER_MS,
        max_ahead_ms: int = DEFAULT_MAX_AHEAD_MS,
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        max_data_bytes: int = MAX_DATA_BYTES,
        executor: Executor | None = None,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.origin = start
        self.dropped_frames = 0
        self._slot = SLOT_MS * sample_rate // 1000
        self._jitter = jitter_ms * sample_rate // 1000
        self._max_ahead = max_ahead_ms * sample_rate // 1000
        self._chunk = max(1, int(chunk_seconds * sample_rate))
        self._max_data_bytes = max_data_bytes
        # Samples placed on each side, counted from the origin; the buffers
        # hold what is not yet handed to the writer, from ``_written`` on.
        self._cursors = [0, 0]
        self._buffers = [bytearray(), bytearray()]
        self._written = 0
        self._closed = False
        self._error: BaseException | None = None
        self._file: BinaryIO | None = None
        self._writer: WavWriter | None = None
        self._loop = asyncio.get_running_loop()
        self._executor = executor or _shared_executor()
        self._jobs: list[asyncio.Future[None]] = []
        self._submit(self._open_file)

    @property
    def duration(self) -> float:
        """Seconds recorded so far (written or waiting to be)."""
        return max(self._cursors) / self.sample_rate

    def feed(self, side: Side, pcm: bytes, now: float) -> None:
        """Add one frame of ``side``'s 16-bit little-endian PCM that arrived at ``now``.

        ``now`` is ``loop.time()``; frames after :meth:`close` are ignored.
        """
        if self._closed or not pcm:
            return
        if len(pcm) % SAMPLE_WIDTH:
            raise ValueError("audio is whole 16-bit samples")
        if self.origin is None:
            self.origin = now
        arrival = self._position(now)
        cursor = self._cursors[side]
        if cursor < arrival - self._jitter:
            self._pad(side, arrival)
        elif cursor > arrival + self._max_ahead:
            self.dropped_frames += 1
            return
        self._buffers[side] += pcm
        self._cursors[side] += len(pcm) // SAMPLE_WIDTH
        limit = arrival - self._jitter
        if limit - self._written >= self._chunk:
            # Audio for a side older than the jitter allowance will not come
            # any more: that side was silent, so write silence for it.
            for other in Side:
                if self._cursors[other] < limit:
                    self._pad(other, limit)
            self._flush(min(self._cursors))

    async def close(self) -> float:
        """Write the rest, pad the shorter side, close the file; returns the duration in seconds.

        Raises :class:`RecordingError` if any write failed (what was written
        before stays readable).
        """
        if not self._closed:
            self._closed = True
            end = max(self._cursors)
            for side in Side:
                self._pad(side, end)
            self._flush(end)
            self._submit(self._close_file)
        await asyncio.gather(*self._jobs, return_exceptions=True)
        self._jobs.clear()
        if self._error is not None:
            raise RecordingError(f"recording {self.path} failed: {self._error}") from self._error
        return self._written / self.sample_rate

    # -- in the event loop -------------------------------------------------

    def _position(self, now: float) -> int:
        assert self.origin is not None
        samples = max(0, int((now - self.origin) * self.sample_rate))
        return samples // self._slot * self._slot

    def _pad(self, side: Side, position: int) -> None:
        missing = position - self._cursors[side]
        if missing > 0:
            self._buffers[side] += bytes(missing * SAMPLE_WIDTH)
            self._cursors[side] = position

    def _flush(self, position: int) -> None:
        count = (position - self._written) * SAMPLE_WIDTH
        if count <= 0:
            return
        chunks = []
        for buffer in self._buffers:
            chunks.append(bytes(buffer[:count]))
            del buffer[:count]
        self._written = position
        if self._error is None:
            self._submit(self._write, chunks[0], chunks[1])

    def _submit(self, job: Callable[..., None], *args: bytes) -> None:
        self._jobs = [pending for pending in self._jobs if not pending.done()]
        future = self._loop.run_in_executor(self._executor, job, *args)
        future.add_done_callback(self._job_done)
        self._jobs.append(future)

    def _job_done(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None and self._error is None:
            self._error = future.exception()

    # -- in the writer thread ----------------------------------------------

    def _open_file(self) -> None:
        self._file = self.path.open("wb")
        self._writer = WavWriter(
            self._file, sample_rate=self.sample_rate, max_data_bytes=self._max_data_bytes
        )

    def _write(self, caller: bytes, agent: bytes) -> None:
        if self._writer is None:
            return  # the file did not open; the error is already recorded
        self._writer.write(caller, agent)
        self._writer.patch_header()

    def _close_file(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            if self._file is not None:
                self._file.close()
