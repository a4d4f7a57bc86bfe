"""The OpenAPI 3 document, built from the route declarations."""

from __future__ import annotations

import re
from typing import Any

from callcenter import __version__
from callcenter.web.api import Route

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}
_DESCRIPTIONS = {
    202: "Recorded in the spool; applied when the database answers",
    400: "Bad request",
    401: "Not logged in",
    403: "Not allowed for this role, or missing CSRF token",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Body is not JSON",
    422: "A field is invalid",
    429: "Too many attempts",
}


#: Path parameters that are UUIDs; every other ``*_id`` is a positive 32-bit integer.
_UUID_PARAMS = frozenset({"ticket_id", "interaction_id"})


def _path_schema(name: str) -> dict[str, Any]:
    if name in _UUID_PARAMS:
        return {"type": "string", "format": "uuid"}
    return {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def build(routes: list[Route], prefix: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": f"{route.tag}_{route.handler.__name__}",
            "responses": {str(route.status): {"description": "Success"}},
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        if route.query is not None:
            params += [
                {
                    "name": name,
                    "in": "query",
                    "required": name in route.query.required,
                    "schema": schema.json_schema(),
                }
                for name, schema in route.query.fields.items()
            ]
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": route.body.json_schema()}},
            }
        errors = {400, 413, 415, 422} if route.body is not None else {400}
        if route.role is not None:
            errors |= {401, 403}
            op["security"] = [{"session": [], "csrf": []}, {"bearer": []}]
        else:
            op["security"] = []
        for status in sorted(errors | set(route.errors)):
            content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            op["responses"][str(status)] = {"description": _DESCRIPTIONS.get(status, "Error")}
            if status >= 400:
                op["responses"][str(status)]["content"] = content
        if route.role is not None:
            op["x-required-role"] = route.role
        paths.setdefault(prefix + route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Contact center API", "version": __version__},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "cc_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
