"""Route declarations: one place says path, role, body and query of each endpoint.

The aiohttp routes and the OpenAPI document are both built from these
declarations, and every handler runs behind the same checks: the caller is
authenticated and has the role, a cookie session sent the CSRF token, the body
and query parse against their schemas. A handler receives a
:class:`Call` and returns JSON-ready data (or an aiohttp response).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.web.errors import ApiError
from callcenter.web.schema import Obj, ValidationError

if TYPE_CHECKING:
    from callcenter.services import Services
    from callcenter.web.auth import Principal

ROLE_RANK = {"agent": 1, "supervisor": 2, "admin": 3}

SERVICES: web.AppKey[Services] = web.AppKey("services")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")

Handler = Callable[["Call"], Awaitable[Any]]
M = TypeVar("M")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    #: Least role allowed; ``None`` for public endpoints.
    role: str | None
    body: Obj | None = None
    query: Obj | None = None
    status: int = 200
    #: Responses besides the success one that the endpoint may give.
    errors: tuple[int, ...] = ()


@dataclass
class Call:
    """What a handler gets: the request, the services, the checked caller and input."""

    request: web.Request
    services: Services
    principal: Principal | None
    body: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "route declared public"
        return self.principal

    @property
    def address(self) -> str:
        return self.request.remote or ""

    async def audit(self, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        """Record in the audit log that the caller did ``action`` to ``target``, from here."""
        await self.services.audit(
            self.user.user_id, self.user.username, action, target, self.address, detail
        )

    def path_int(self, name: str) -> int:
        raw = self.request.match_info[name]
        # Ids are 32-bit integers in the database; anything else names nothing.
        if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > 2**31 - 1:
            raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
        return int(raw)

    def path_str(self, name: str, max_length: int = 64) -> str:
        raw = self.request.match_info[name]
        if len(raw) > max_length:
            raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
        return raw


async def one(db: AsyncSession, model: type[M], key: Any, what: str) -> M:
    """The row of ``model`` with primary key ``key``, or a 404 naming ``what``."""
    row = await db.get(model, key)
    if row is None:
        raise ApiError(404, "not_found", f"no such {what}")
    return row


class Api:
    """A list of declared routes."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        role: str | None,
        body: Obj | None = None,
        query: Obj | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        if role is not None and role not in ROLE_RANK:
            raise ValueError(f"unknown role {role}")

        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(method, path, handler, summary, tag, role, body, query, status, errors)
            )
            return handler

        return register


def bind(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for ``route``: checks, then the declared handler."""
    from callcenter.web.auth import authenticate

    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        principal = None
        if route.role is not None:
            principal = await authenticate(request, services, route.method)
            if ROLE_RANK[principal.role] < ROLE_RANK[route.role]:
                raise ApiError(403, "forbidden", f"this needs the {route.role} role or higher")
        call = Call(request, services, principal)
        if route.query is not None:
            call.query = _parse_query(request, route.query)
        elif request.query:
            raise ApiError(
                400, "invalid_query", f"unknown query parameter {next(iter(request.query))}"
            )
        if route.body is not None:
            call.body = await _parse_body(request, route.body)
        result = await route.handler(call)
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(result, status=route.status)

    return handle


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str)
    )


async def _parse_body(request: web.Request, schema: Obj) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    try:
        checked: dict[str, Any] = schema.check(data, "body")
    except ValidationError as exc:
        raise ApiError(422, "invalid_field", exc.message, {"field": exc.path}) from None
    return checked


def _parse_query(request: web.Request, schema: Obj) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in request.query:
        if key not in schema.fields:
            raise ApiError(400, "invalid_query", f"unknown query parameter {key}")
        values = request.query.getall(key)
        if len(values) > 1:
            raise ApiError(400, "invalid_query", f"query parameter {key} given more than once")
        try:
            out[key] = schema.fields[key].from_query(values[0], f"query.{key}")
        except ValidationError as exc:
            raise ApiError(400, "invalid_query", exc.message, {"field": exc.path}) from None
    missing = sorted(schema.required - set(out))
    if missing:
        raise ApiError(
            400,
            "invalid_query",
            f"query parameter {missing[0]} is required",
            {"field": f"query.{missing[0]}"},
        )
    return out
