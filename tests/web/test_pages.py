"""The consoles' static files: served with a strict policy, nothing outside their folder."""

from __future__ import annotations

import aiohttp
import pytest

from callcenter.server import Server


async def test_pages_are_served_with_a_content_security_policy(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/", allow_redirects=False) as home:
            assert home.status == 302 and home.headers["Location"] == "/console/"
        async with http.get(server.url + "/console/") as page:
            assert page.status == 200
            assert page.headers["Content-Type"].startswith("text/html")
            policy = page.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert 'src="/console/main.js"' in await page.text()
        async with http.get(server.url + "/common/live.js") as script:
            assert script.status == 200
            assert script.headers["Content-Type"].startswith("text/javascript")
            assert "class LiveSocket" in await script.text()


@pytest.mark.parametrize(
    "path",
    [
        "/console/%2e%2e/%2e%2e/pyproject.toml",
        "/console/..%2f..%2fcallcenter%2fconfig.py",
        "/common/../../README.md",
        "/console/missing.js",
        "/secret/index.html",
        "/widget/%00.html",
    ],
)
async def test_nothing_outside_the_console_folder(server: Server, path: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + path) as response:
            assert response.status == 404
            assert "[project]" not in await response.text()
