"""Running baresip, a real SIP softphone, headless from the tests.

Each :class:`Baresip` gets its own config folder (``config``, ``accounts``),
its own SIP, RTP and control ports, plays a WAV file as its microphone and
dumps both directions of every call as WAV (``sndfile``) into ``rec/``. It is
driven over ``ctrl_tcp``: netstring-framed JSON commands (``dial``,
``sndcode``, ``hangup``, ``quit``) with a token, answered by a response with
the same token; UA and call events (``REGISTER_OK``, ``CALL_ESTABLISHED``,
``CALL_CLOSED``...) arrive on the same connection.

Use it as an async context manager: the process is quit (killed if it will
not go) and the socket closed on the way out, whatever happened.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.conftest import missing_part

MODULES = Path("/usr/lib/baresip/modules")
#: Longest a netstring from baresip may be (events are a few hundred bytes).
MAX_MESSAGE = 65536
#: baresip quits by itself after this long, should a test leave it behind.
LIFETIME_SECONDS = 120


def free_tcp_udp_port() -> int:
    """A port free now for UDP and TCP, and the next one for TCP.

    baresip's SIP listens on the port over UDP and TCP, and its TLS on the
    next one; a taken neighbour stops it at start.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tls,
            ):
                try:
                    udp.bind(("127.0.0.1", port))
                    tls.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for baresip's SIP")


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


class BaresipError(AssertionError):
    """baresip did not do what the test waited for; the message has its log's tail."""


class Baresip:
    """One baresip process with one account.

    ``account`` is a line of baresip's ``accounts`` file, e.g.
    ``<sip:1001@127.0.0.1:5060>;auth_pass=x;regint=60;answermode=auto`` for
    a phone that registers and answers by itself. ``source`` is its
    microphone: a 16-bit mono 8 kHz WAV (what ``aufile`` plays at
    ``audio_srate 8000``). ``name`` names its folder under ``folder``.
    """

    def __init__(self, folder: Path, account: str, source: Path, *, name: str = "baresip") -> None:
        binary = shutil.which("baresip")
        if binary is None or not (MODULES / "ctrl_tcp.so").exists():
            missing_part("baresip is not installed (Debian package baresip-core)")
        assert binary is not None
        self.binary = binary
        self.name = name
        self.folder = folder / name
        self.recordings = self.folder / "rec"
        self.recordings.mkdir(parents=True)
        self.log_path = self.folder / "baresip.log"
        self.sip_port = free_tcp_udp_port()
        self.control_port = free_tcp_udp_port()
        rtp = free_tcp_udp_port() & ~1
        self.rtp_ports = (rtp, rtp + 19) if rtp + 19 < 65536 else (rtp - 20, rtp - 1)
        (self.folder / "config").write_text(
            "\n".join(
                f"{key}\t{value}"
                for key, value in (
                    ("poll_method", "epoll"),
                    ("sip_listen", f"127.0.0.1:{self.sip_port}"),
                    ("audio_player", "aubridge,nil"),
                    ("audio_source", f"aufile,{source}"),
                    ("audio_alert", "aubridge,nil"),
                    ("audio_srate", "8000"),
                    ("audio_channels", "1"),
                    ("rtp_ports", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}"),
                    ("net_interface", "127.0.0.1"),
                    ("module_path", str(MODULES)),
                    ("module", "g711.so"),
                    ("module", "aufile.so"),
                    ("module", "aubridge.so"),
                    ("module", "sndfile.so"),
                    ("snd_path", str(self.recordings)),
                    ("module_app", "account.so"),
                    ("module_app", "menu.so"),
                    ("module_app", "ctrl_tcp.so"),
                    ("ctrl_tcp_listen", f"127.0.0.1:{self.control_port}"),
                    ("dtmf_mode", "rtpevent"),
                )
            )
            + "\n"
        )
        (self.folder / "accounts").write_text(account + "\n")
        self.process: asyncio.subprocess.Process | None = None
        self._log: Any = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._events: list[dict[str, Any]] = []
        self._tokens = itertools.count(1)

    async def __aenter__(self) -> Baresip:
        try:
            await self.start()
        except BaseException:
            await self.stop()  # a failed start leaves no process or open log behind
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, timeout: float = 10.0) -> None:
        """Start the process and connect to its control port."""
        self._log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            "-f",
            str(self.folder),
            "-t",
            str(LIFETIME_SECONDS),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.returncode is not None:
                raise BaresipError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    "127.0.0.1", self.control_port
                )
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(
                        f"{self.name}: no control port:\n{self.log_tail()}"
                    ) from None
                await asyncio.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def _receive(self, timeout: float) -> dict[str, Any]:
        assert self._reader is not None
        length = await asyncio.wait_for(self._reader.readuntil(b":"), timeout)
        size = int(length[:-1])
        if not 0 < size <= MAX_MESSAGE:
            raise BaresipError(f"{self.name}: bad netstring length {size}")
        payload = await asyncio.wait_for(self._reader.readexactly(size + 1), timeout)
        if payload[-1:] != b",":
            raise BaresipError(f"{self.name}: netstring without its ','")
        message: dict[str, Any] = json.loads(payload[:-1])
        return message

    async def command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """Run a ctrl_tcp command; returns its text. Events that come first are kept."""
        assert self._writer is not None
        token = f"t{next(self._tokens)}"
        body = {"command": command, "params": params, "token": token}
        self._writer.write(netstring(json.dumps(body).encode()))
        await self._writer.drain()
        deadline = time.monotonic() + timeout
        while True:
            message = await self._receive(max(0.01, deadline - time.monotonic()))
            if message.get("response") and message.get("token") == token:
                if not message.get("ok"):
                    raise BaresipError(f"{self.name}: {command} failed: {message}")
                return str(message.get("data", ""))
            if message.get("event"):
                self._events.append(message)

    async def event(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the next event of this type (``CALL_ESTABLISHED``...)."""
        for message in self._events:
            if message.get("type") == kind:
                self._events.remove(message)
                return message
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                message = await self._receive(left)
            except TimeoutError:
                seen = [m.get("type") for m in self._events]
                raise BaresipError(
                    f"{self.name}: no {kind} in {timeout} s (saw {seen}):\n{self.log_tail()}"
                ) from None
            if message.get("event") and message.get("type") == kind:
                return message
            if message.get("event"):
                self._events.append(message)

    def dumps(self, direction: str) -> list[Path]:
        """sndfile's WAV files: ``dec`` is what was received, ``enc`` what was sent."""
        return sorted(self.recordings.glob(f"*-{direction}.wav"))

    async def stop(self, timeout: float = 5.0) -> None:
        """Quit baresip (kill it if it does not go) and close the control socket."""
        process = self.process
        if process is not None and process.returncode is None and self._writer is not None:
            try:
                await self.command("quit", timeout=timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, BaresipError):
                pass
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
        if process is not None:
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
