"""Shared fixtures: real databases (SQLite and PostgreSQL), a running server, an API client.

Every test gets its own database (a fresh PostgreSQL database created and
dropped around it, or an SQLite file in its temporary folder), its own spool
folder and an ephemeral HTTP port, so a running demo or a second test run
never collides. Under ``CI=true`` an unreachable PostgreSQL fails the tests
that need it instead of skipping them.
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from callcenter.config import (
    DatabaseSettings,
    HttpSettings,
    Settings,
    SipSettings,
    SpoolSettings,
    VoiceSettings,
)
from callcenter.server import Server
from callcenter.store.users import create_user

#: Admin connection used to create and drop each test's database.
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "correct-horse-battery"


REPO = Path(__file__).resolve().parent.parent


def run_callcenter(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real ``callcenter`` command, without any CALLCENTER_* setting from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def missing_part(what: str) -> None:
    """A real part is missing: fail under CI, skip on a developer's machine."""
    if IN_CI:
        pytest.fail(f"{what} (required under CI=true)")
    pytest.skip(what)


async def create_pg_database() -> tuple[str, str]:
    """Create an empty database; returns (asyncpg URL, name)."""
    name = f"cc_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        missing_part(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")
        raise
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}", name


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def sqlalchemy_url(asyncpg_url: str) -> str:
    return asyncpg_url.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    url, name = await create_pg_database()
    try:
        yield sqlalchemy_url(url)
    finally:
        await drop_pg_database(name)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL)."""
    url, name = await create_pg_database()
    try:
        yield sqlalchemy_url(url)
    finally:
        await drop_pg_database(name)


def make_settings(database_url: str, folder: Path, **changes: Any) -> Settings:
    """Settings for a test server: loopback, port 0, spool in ``folder``."""
    settings = Settings(
        http=HttpSettings(host="127.0.0.1", port=0),
        sip=SipSettings(host="127.0.0.1", port=0),
        voice=VoiceSettings(
            recordings_directory=str(folder / "recordings"),
            prompt_cache_directory=str(folder / "prompts"),
        ),
        database=DatabaseSettings(url=database_url, timeout_seconds=2.0),
        spool=SpoolSettings(directory=str(folder / "spool"), max_retry_seconds=0.5),
    )
    return dataclasses.replace(settings, **changes)


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Settings:
    """Test settings; ``@pytest.mark.settings(chat={"identity_secret": "s"})`` changes a section."""
    made = make_settings(database_url, tmp_path)
    marker = request.node.get_closest_marker("settings")
    for section, changes in (marker.kwargs if marker else {}).items():
        made = dataclasses.replace(
            made, **{section: dataclasses.replace(getattr(made, section), **changes)}
        )
    return made


async def add_user(server: Server, username: str, role: str, **extra: Any) -> int:
    assert server.services is not None
    async with server.services.sessions() as session:
        user = await create_user(
            session,
            username=username,
            password=PASSWORD,
            role=role,
            realm=server.settings.sip.realm,
            **extra,
        )
        await session.commit()
        return user.id


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    """A running server with users ``admin``, ``super`` and ``agent`` (password PASSWORD)."""
    srv = Server(settings)
    await srv.start()
    try:
        await add_user(srv, "admin", "admin")
        await add_user(srv, "super", "supervisor")
        await add_user(srv, "agent", "agent", sip_extension="1001", sip_secret="sip-secret-1001")
        yield srv
    finally:
        await srv.stop()


@dataclasses.dataclass
class Reply:
    status: int
    body: Any
    headers: Any


class ApiClient:
    """Talks to the server over real HTTP, keeping the session cookie and CSRF token."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def login(self, username: str, password: str = PASSWORD) -> Reply:
        reply = await self.call(
            "POST", "/api/v1/auth/login", {"username": username, "password": password}
        )
        if reply.status == 200:
            self.csrf = reply.body["csrf_token"]
        return reply

    async def call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = {"X-CSRF-Token": self.csrf} if self.csrf else {}
        all_headers.update(headers or {})
        kwargs: dict[str, Any] = {"headers": all_headers, "params": params}
        if raw is not None:
            # A stream, so that large test bodies do not trip aiohttp's warning.
            kwargs["data"] = io.BytesIO(raw)
            all_headers.setdefault("Content-Type", "application/json")
        elif json_body is not None:
            kwargs["json"] = json_body
        async with self.http.request(method, self.base_url + path, **kwargs) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return Reply(response.status, body, response.headers)

    async def console(
        self, path: str = "/ws/agent", **hello: Any
    ) -> aiohttp.ClientWebSocketResponse:
        """Open a live console websocket as this client's user and say hello."""
        ws = await self.http.ws_connect(
            self.base_url + path, headers={"Origin": self.base_url}, max_msg_size=0
        )
        await ws.send_json({"type": "hello", "csrf_token": self.csrf, **hello})
        return ws

    async def get(self, path: str, **params: str) -> Reply:
        return await self.call("GET", path, params=params or None)

    async def post(self, path: str, body: Any = None) -> Reply:
        return await self.call("POST", path, body)

    async def patch(self, path: str, body: Any) -> Reply:
        return await self.call("PATCH", path, body)

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[ApiClient]:
    api = ApiClient(server.url)
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
async def new_client(server: Server) -> AsyncIterator[Any]:
    """A factory of further clients (other users, other addresses)."""
    made: list[ApiClient] = []

    def make() -> ApiClient:
        api = ApiClient(server.url)
        made.append(api)
        return api

    try:
        yield make
    finally:
        for api in made:
            await api.close()
