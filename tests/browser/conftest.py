"""Browser tests: Playwright driving Debian's headless Chromium against the real server.

No browser is downloaded: Playwright launches ``/usr/bin/chromium`` (or
``$CHROMIUM``). Every test gets its own browser, a PostgreSQL database and an
ephemeral port. Screenshots go to ``test-artifacts/browser/`` (not committed; a few
are copied to ``docs/screenshots/`` by hand). A page that throws a JavaScript
error or opens a dialog (``alert``) fails its test.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from callcenter.server import Server
from tests.conftest import PASSWORD, REPO, missing_part

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright
except ImportError:  # pragma: no cover - reported by the fixture
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARTIFACTS = REPO / "test-artifacts" / "browser"
#: Chromium flags that keep it from reaching out to the network on its own.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

OpenPage = Callable[..., Awaitable["Page"]]


@pytest.fixture
async def database_url(pg_url: str) -> AsyncIterator[str]:
    """Browser tests run on PostgreSQL only: they test the pages, not the store."""
    yield pg_url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if async_playwright is None:
        missing_part("the playwright package is not installed")
    if not HAVE_CHROMIUM:
        missing_part(f"Chromium not found at {CHROMIUM}")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


class Pages:
    """Opens pages in fresh browser contexts and watches them for errors."""

    def __init__(self, browser: Browser, server: Server) -> None:
        self.browser = browser
        self.server = server
        self.contexts: list[BrowserContext] = []
        self.problems: list[str] = []

    async def open(
        self,
        path: str,
        *,
        language: str = "en",
        viewport: tuple[int, int] = (1280, 800),
    ) -> Page:
        """Open ``path`` on the test server."""
        return await self.open_url(self.server.url + path, language=language, viewport=viewport)

    async def open_url(
        self,
        url: str,
        *,
        language: str = "en",
        viewport: tuple[int, int] = (1280, 800),
    ) -> Page:
        """Open ``url`` (the server, or a proxy in front of it) in a fresh context."""
        path = url
        context = await self.browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
            locale="zh-CN" if language == "zh-CN" else "en-US",
        )
        # The pages keep the chosen language in localStorage; start each test's
        # page in the language it asks for.
        # about:blank has no storage; the script must not throw there.
        await context.add_init_script(
            f"try {{ if (!sessionStorage.getItem('cc.test')) {{"
            f" localStorage.setItem('cc.lang', {json.dumps(language)});"
            f" sessionStorage.setItem('cc.test', '1'); }} }} catch (e) {{}}"
        )
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"{path}: {error}"))
        page.on("dialog", lambda dialog: self.problems.append(f"{path}: dialog {dialog.message}"))
        await page.goto(url)
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def pages(browser: Browser, server: Server) -> AsyncIterator[Pages]:
    opened = Pages(browser, server)
    try:
        yield opened
    finally:
        await opened.close()
    assert not opened.problems, opened.problems


async def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Fill the shared sign-in form and wait until it is gone."""
    await page.fill("#login-username", username)
    await page.fill("#login-password", password)
    await page.click("#login-submit")
    await page.wait_for_selector("#login-form", state="detached")


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


def visible_text(value: Any) -> str:
    return " ".join(str(value).split())
