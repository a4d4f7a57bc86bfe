"""Errors as JSON: every failure a client sees is ``{"error": {code, message}}``.

Nothing internal (tracebacks, SQL, file paths) ever reaches a client; an
unexpected exception is logged with an id and the client gets only the id.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from callcenter.store.recorder import is_transient

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers: dict[str, str] = {}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, **(details or {})}}
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type="application/json",
    )


_HTTP_CODES = {
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "method not allowed on this resource"),
    413: ("body_too_large", "the request body is too large"),
}


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        return error_response(exc.status, code, message)
    except IntegrityError:
        # A unique or foreign key the handler checked was taken or removed by a
        # concurrent request in between: the client's change conflicts, retrying
        # will show why.
        return error_response(409, "conflict", "the change conflicts with existing data")
    except Exception as exc:
        if is_transient(exc):
            log.warning("database unavailable during %s %s: %s", request.method, request.path, exc)
            response = error_response(
                503, "database_unavailable", "the database is unavailable; try again shortly"
            )
            response.headers["Retry-After"] = "5"
            return response
        incident = uuid.uuid4().hex[:12]
        log.exception("internal error %s in %s %s", incident, request.method, request.path)
        return error_response(500, "internal_error", "internal error", {"incident": incident})
