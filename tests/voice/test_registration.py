"""Agents' phones register over UDP and TCP with digest authentication (real SIPp)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.server import Server
from tests.voice.sipp import sipp

#: SIPp answers only the first challenge and knows only MD5.
SIPP_DIGEST = pytest.mark.settings(sip={"digest_algorithms": ["MD5", "SHA-256"]})


@SIPP_DIGEST
@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_phone_registers_with_digest(server: Server, tmp_path: Path, transport: str) -> None:
    assert server.voice is not None
    target = f"127.0.0.1:{server.voice.port}"
    run = await sipp(
        "register",
        target,
        "-s",
        "1001",
        "-au",
        "1001",
        "-ap",
        "sip-secret-1001",
        "-t",
        transport,
        folder=tmp_path,
    )
    assert run.returncode == 0, run.errors or run.stderr
    found = server.voice.binding_peer("1001")
    assert found is not None
    peer, contact = found
    assert peer.transport == ("udp" if transport == "u1" else "tcp")
    assert contact.startswith("sip:1001@127.0.0.1:")
    assert server.voice.reachable_user("1001") is not None


@SIPP_DIGEST
async def test_wrong_secret_is_refused_and_the_address_locked_out(
    server: Server, tmp_path: Path
) -> None:
    assert server.voice is not None
    target = f"127.0.0.1:{server.voice.port}"
    args = ("-s", "1001", "-au", "1001", "-ap", "guessed-wrong")
    run = await sipp("register_refused", target, *args, folder=tmp_path)
    assert run.returncode == 0, run.errors or run.stderr
    assert server.voice.binding_peer("1001") is None
    # Keep guessing: the address is locked out and even the right secret is refused.
    limit = server.settings.sip.auth_max_failures
    await sipp("register_refused", target, *args, folder=tmp_path, calls=limit)
    right = await sipp(
        "register", target, "-s", "1001", "-au", "1001", "-ap", "sip-secret-1001", folder=tmp_path
    )
    assert right.returncode != 0
    assert "403" in right.errors + right.stdout + right.stderr
    assert server.voice.binding_peer("1001") is None
