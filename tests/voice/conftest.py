"""Fixtures of the telephony tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.voice.sipp import Sipp


@pytest.fixture(autouse=True)
async def phones() -> AsyncIterator[list[Sipp]]:
    """The SIPp peers a test starts: any still running at its end is stopped and reaped."""
    started: list[Sipp] = []
    yield started
    for phone in started:
        if phone.process is not None and phone.process.returncode is None:
            phone.process.kill()
            await phone.finish()
