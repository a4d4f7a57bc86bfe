"""Running SIPp, the real SIP test peer, from the tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ApiClient, missing_part
from tests.web.test_chat_flow import Socket

SCENARIOS = Path(__file__).parent / "scenarios"
#: SIPp's audio and RFC 2833 captures (Debian sip-tester); scenarios play them from ``pcap/``.
CAPTURES = Path("/usr/share/sip-tester")
#: The SIP password of extension 1001, the ``agent`` user of tests/conftest.py.
AGENT_SIP_SECRET = "sip-secret-1001"


@dataclass
class SippRun:
    returncode: int
    stdout: str
    stderr: str
    errors: str


def free_port() -> int:
    """A port free for UDP now (for a SIPp that must listen where it said it would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sipp:
    """One SIPp process running a scenario from ``tests/voice/scenarios``."""

    def __init__(
        self,
        scenario: str,
        target: str,
        *args: str,
        folder: Path,
        calls: int = 1,
        port: int = 0,
        timeout: float = 30.0,
    ) -> None:
        binary = shutil.which("sipp")
        if binary is None:
            missing_part("SIPp (Debian package sip-tester) is not installed")
        assert binary is not None
        if not (folder / "pcap").exists() and CAPTURES.exists():
            (folder / "pcap").symlink_to(CAPTURES)
        self.folder = folder
        self.timeout = timeout
        self.error_file = folder / f"{scenario}-{os.getpid()}-{id(self)}-errors.log"
        self.command = [
            binary,
            *([target] if target else []),
            "-sf",
            str(SCENARIOS / f"{scenario}.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            str(calls),
            "-nostdin",
            "-timeout",
            f"{int(timeout)}s",
            "-timeout_error",
            "-trace_err",
            "-error_file",
            str(self.error_file),
            # Every SIPp binds a control port and media ports; let each find free ones.
            "-cp",
            "0",
            *args,
        ]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Sipp:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=self.folder,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "TERM": "dumb"},
        )
        return self

    async def finish(self) -> SippRun:
        assert self.process is not None
        try:
            out, err = await asyncio.wait_for(self.process.communicate(), self.timeout + 10)
        except TimeoutError:
            self.process.kill()
            out, err = await self.process.communicate()
        errors = self.error_file.read_text(errors="replace") if self.error_file.exists() else ""
        assert self.process.returncode is not None
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        return SippRun(self.process.returncode, stdout, stderr, errors)


async def sipp(
    scenario: str,
    target: str,
    *args: str,
    folder: Path,
    calls: int = 1,
    timeout: float = 30.0,
) -> SippRun:
    """Run one SIPp scenario against ``target`` and wait for it."""
    process = Sipp(scenario, target, *args, folder=folder, calls=calls, timeout=timeout)
    await process.start()
    return await process.finish()


async def register_phone(
    target: str,
    contact_port: int,
    *,
    folder: Path,
    extension: str = "1001",
    secret: str = AGENT_SIP_SECRET,
) -> None:
    """An agent's phone registers ``extension`` with digest auth, to be rung at ``contact_port``.

    The phone that answers there is another process (a SIPp UAS, baresip, a
    test's own user agent); SIPp cannot take calls in the scenario that
    registered.
    """
    registered = await sipp(
        "agent_register",
        target,
        *("-s", extension, "-au", extension, "-ap", secret),
        *("-set", "contact_port", str(contact_port)),
        folder=folder,
    )
    assert registered.returncode == 0, registered.errors


async def available_console(new_client: Callable[[], ApiClient], username: str) -> Socket:
    """The agent's console over ``/ws/agent``, logged in and set available."""
    api = new_client()
    await api.login(username)
    console = Socket(await api.console())
    await console.type("welcome")
    await console.send(type="presence", presence="available", ref="p")
    await console.type("ok", ref="p")
    return console
