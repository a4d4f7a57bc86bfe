"""The aiohttp application: REST API under /api/v1, websockets, consoles, health, metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from callcenter.cti.center import ContactCenter
from callcenter.services import Services
from callcenter.voice.outbound import OutboundCalls
from callcenter.web import live, openapi, pages
from callcenter.web.api import OPENAPI, SERVICES, bind
from callcenter.web.errors import errors_middleware
from callcenter.web.live import CENTER, CHAT_LIMITS
from callcenter.web.routes import api, system
from callcenter.web.routes.calls import OUTBOUND
from callcenter.web.throttle import RateLimiter

API_PREFIX = "/api/v1"


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics = request.app[SERVICES].metrics
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - started)
    return response


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def create_app(
    services: Services, center: ContactCenter, outbound: OutboundCalls | None = None
) -> web.Application:
    app = web.Application(
        client_max_size=services.settings.http.max_body_bytes,
        middlewares=[metrics_middleware, security_headers, errors_middleware],
    )
    app[SERVICES] = services
    app[CENTER] = center
    if outbound is not None:
        app[OUTBOUND] = outbound
    chat = services.settings.chat
    app[CHAT_LIMITS] = (
        RateLimiter(chat.max_new_per_minute),
        RateLimiter(chat.max_messages_per_minute),
    )
    for route in api.routes:
        app.router.add_route(route.method, API_PREFIX + route.path, bind(route))
    app.router.add_get("/ws/agent", live.agent_socket)
    app.router.add_get("/ws/supervisor", live.supervisor_socket)
    app.router.add_get("/ws/chat", live.chat_socket)
    app.router.add_get(API_PREFIX + "/openapi.json", system.openapi)
    app.router.add_get("/healthz", system.healthz)
    app.router.add_get("/metrics", system.metrics)
    app[OPENAPI] = openapi.build(api.routes, API_PREFIX)
    pages.add_routes(app, services.settings.http.console_directory)
    return app
