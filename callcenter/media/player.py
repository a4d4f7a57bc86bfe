"""Plays G.711 audio to a call leg on the shared media clock: prompts and music on hold.

A :class:`Player` sends one 20 ms frame (160 codes) each tick of the
:class:`~callcenter.media.clock.MediaClock` through
:meth:`RtpPort.write_audio <callcenter.media.port.RtpPort.write_audio>`,
which cuts the frames to the leg's packet size. The audio must already be in
the leg's codec (the TTS cache keeps prompts as u-law and A-law).

When nothing plays, nothing is sent: no comfort noise, no keep-alive.
G.711 phones and trunks play silence for missing packets, and the RTP
inactivity timers of peers are tens of seconds to minutes, longer than any
pause the IVR leaves. A peer that needs a steady stream can be given one
with a looping player of silence (``port.silence_code * 160``).
"""

from __future__ import annotations

import asyncio

from callcenter.media.clock import MediaClock
from callcenter.media.port import RtpPort

#: Codes in one 20 ms frame at 8 kHz.
FRAME_BYTES = 160


class Player:
    """Plays ``audio`` (codes in the port's codec) once, or over and over with ``loop=True``.

    Call :meth:`start`, then await :attr:`done`, which completes when the
    audio has all been sent or :meth:`stop` was called (or the port
    closed). A last partial frame is padded with silence, so N * 20 ms of
    audio goes out as exactly N frames. Each start opens a talkspurt: its
    first packet has the marker bit.
    """

    def __init__(
        self,
        port: RtpPort,
        clock: MediaClock,
        audio: bytes,
        *,
        loop: bool = False,
        frame_bytes: int = FRAME_BYTES,
    ) -> None:
        if loop and not audio:
            raise ValueError("nothing to play in a loop")
        self.port = port
        self.clock = clock
        self.audio = bytes(audio)
        self.loop = loop
        self.frame_bytes = frame_bytes
        self.frames_sent = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._offset = 0
        self._playing = False

    @property
    def playing(self) -> bool:
        return self._playing

    def start(self) -> asyncio.Future[None]:
        """Begin on the next tick; returns :attr:`done`. A player starts only once."""
        if self._playing or self.done.done():
            raise RuntimeError("this player has already started")
        if not self.audio:
            self.done.set_result(None)
            return self.done
        self._playing = True
        self.port.begin_talkspurt()
        self.clock.subscribe(self._tick)
        return self.done

    def stop(self) -> None:
        """Stop after the frame already sent; :attr:`done` completes. Harmless when stopped."""
        if self._playing:
            self._finish()
        elif not self.done.done():
            self.done.set_result(None)

    def _tick(self, tick: int) -> None:
        if self.port.closed:
            self._finish()
            return
        self.port.write_audio(self._next_frame())
        self.frames_sent += 1
        if not self.loop and self._offset >= len(self.audio):
            self._finish()

    def _next_frame(self) -> bytes:
        audio, size = self.audio, self.frame_bytes
        if not self.loop:
            frame = audio[self._offset : self._offset + size]
            self._offset += len(frame)
            return frame + self.port.silence_code * (size - len(frame))
        # Music on hold: wrap around without a gap, however short the piece.
        frame = b""
        while len(frame) < size:
            if self._offset >= len(audio):
                self._offset = 0
            piece = audio[self._offset : self._offset + size - len(frame)]
            self._offset += len(piece)
            frame += piece
        return frame

    def _finish(self) -> None:
        self._playing = False
        self.clock.unsubscribe(self._tick)
        self.port.flush_audio()
        if not self.done.done():
            self.done.set_result(None)
