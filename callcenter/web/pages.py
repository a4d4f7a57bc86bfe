"""The browser consoles: static files served from ``agent_console/``.

``/console/`` (agents), ``/wallboard/`` (supervisors) and ``/widget/`` (the
chat widget and its demo page) are plain HTML, CSS and ES modules, with no
build step; ``/common/`` holds what they share. Files are looked up inside the
console folder only, by an allow-list of extensions; pages get a strict
Content-Security-Policy (no inline script, no other origins), so text a
customer typed can never run as code even if it slipped into the markup.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

SECTIONS = ("console", "wallboard", "widget", "common")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
#: Pages are same-origin only; the widget script itself may be embedded by the
#: company's site, so only the HTML pages refuse framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
ROOT = web.AppKey("console_root", Path)


def default_root() -> Path:
    return Path(__file__).resolve().parents[2] / "agent_console"


async def page(request: web.Request) -> web.StreamResponse:
    root = request.app[ROOT]
    section = request.match_info["section"]
    relative = request.match_info.get("path", "") or "index.html"
    if "\x00" in relative:
        raise web.HTTPNotFound(text="no such page")
    target = (root / section / relative).resolve()
    if (
        section not in SECTIONS
        or not target.is_relative_to(root)
        or target.suffix not in CONTENT_TYPES
        or not target.is_file()
    ):
        raise web.HTTPNotFound(text="no such page")
    headers = {
        "Content-Type": CONTENT_TYPES[target.suffix],
        # Revalidated on every load (ETag), so a new release is picked up at once.
        "Cache-Control": "no-cache",
    }
    if target.suffix == ".html":
        headers["Content-Security-Policy"] = CSP
    return web.FileResponse(target, headers=headers)


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


async def section_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"/{request.match_info['section']}/")


def add_routes(app: web.Application, directory: str) -> None:
    app[ROOT] = (Path(directory) if directory else default_root()).resolve()
    sections = "|".join(SECTIONS)
    app.router.add_get("/", home)
    app.router.add_get(f"/{{section:{sections}}}", section_root)
    app.router.add_get(f"/{{section:{sections}}}/{{path:.*}}", page)
