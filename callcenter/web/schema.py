"""Request validation, and the JSON Schema the OpenAPI document shows for it.

One declaration serves both, so the document can never disagree with what
the server accepts. Unknown fields are refused, strings and lists have
length limits, numbers have bounds.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ValidationError(ValueError):
    """A value does not fit its schema; ``path`` says where (``body.tags[2]``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class Schema:
    nullable: bool = False

    def check(self, value: Any, path: str) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise ValidationError(path, "must not be null")
        return self._check(value, path)

    def _check(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        out = self._json_schema()
        if self.nullable:
            out["nullable"] = True
        return out

    def _json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def from_query(self, raw: str, path: str) -> Any:
        """Read the value from a query-string parameter."""
        return self.check(raw, path)


@dataclass(frozen=True)
class Str(Schema):
    max_length: int = 200
    min_length: int = 0
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    strip: bool = True

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise ValidationError(path, "must be a string")
        if self.strip:
            value = value.strip()
        if "\x00" in value:
            raise ValidationError(path, "must not contain NUL characters")
        if len(value) > self.max_length:
            raise ValidationError(path, f"must have at most {self.max_length} characters")
        if len(value) < self.min_length:
            raise ValidationError(
                path,
                "must not be empty"
                if self.min_length == 1
                else f"must have at least {self.min_length} characters",
            )
        if self.choices is not None and value not in self.choices:
            raise ValidationError(path, f"must be one of: {', '.join(self.choices)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ValidationError(path, f"must match {self.pattern}")
        return value

    def _json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.min_length:
            out["minLength"] = self.min_length
        if self.choices is not None:
            out["enum"] = list(self.choices)
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out


@dataclass(frozen=True)
class Int(Schema):
    minimum: int = -(2**31)
    maximum: int = 2**31 - 1
    nullable: bool = False

    def _check(self, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(path, "must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise ValidationError(path, f"must be between {self.minimum} and {self.maximum}")
        return value

    def from_query(self, raw: str, path: str) -> Any:
        if not re.fullmatch(r"-?\d{1,12}", raw):
            raise ValidationError(path, "must be an integer")
        return self.check(int(raw), path)

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Bool(Schema):
    nullable: bool = False

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            raise ValidationError(path, "must be true or false")
        return value

    def from_query(self, raw: str, path: str) -> Any:
        if raw not in ("true", "false"):
            raise ValidationError(path, "must be true or false")
        return raw == "true"

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Time(Schema):
    """An ISO 8601 time with a UTC offset, returned as an aware UTC datetime."""

    nullable: bool = False

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str) or len(value) > 40:
            raise ValidationError(path, "must be an ISO 8601 time such as 2026-01-31T09:00:00Z")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                path, "must be an ISO 8601 time such as 2026-01-31T09:00:00Z"
            ) from None
        if parsed.tzinfo is None:
            raise ValidationError(path, "must include a UTC offset (Z or +08:00)")
        return parsed.astimezone(dt.UTC)

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time"}


@dataclass(frozen=True)
class List(Schema):
    item: Schema
    max_items: int = 50
    nullable: bool = False

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise ValidationError(path, "must be a list")
        if len(value) > self.max_items:
            raise ValidationError(path, f"must have at most {self.max_items} items")
        return [self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.json_schema(), "maxItems": self.max_items}


@dataclass(frozen=True)
class Obj(Schema):
    fields: Mapping[str, Schema]
    required: frozenset[str] = field(default_factory=frozenset)
    nullable: bool = False

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(path, "must be a JSON object")
        unknown = sorted(set(value) - set(self.fields))
        if unknown:
            raise ValidationError(f"{path}.{unknown[0]}", "is not a known field")
        missing = sorted(self.required - set(value))
        if missing:
            raise ValidationError(f"{path}.{missing[0]}", "is required")
        return {k: self.fields[k].check(v, f"{path}.{k}") for k, v in value.items()}

    def _json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: v.json_schema() for k, v in self.fields.items()},
        }
        if self.required:
            out["required"] = sorted(self.required)
        return out


@dataclass(frozen=True)
class Map(Schema):
    """A JSON object with free keys (limited in number and length) and scalar values."""

    max_keys: int = 50
    max_value_length: int = 1000
    nullable: bool = False

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(path, "must be a JSON object")
        if len(value) > self.max_keys:
            raise ValidationError(path, f"must have at most {self.max_keys} keys")
        for key, item in value.items():
            if len(key) > 64:
                raise ValidationError(path, "keys must have at most 64 characters")
            if isinstance(item, str) and len(item) > self.max_value_length:
                raise ValidationError(f"{path}.{key}", "is too long")
            if not isinstance(item, str | int | float | bool) and item is not None:
                raise ValidationError(f"{path}.{key}", "must be a string, number or boolean")
        return dict(value)

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "object", "maxProperties": self.max_keys}


def obj(required: tuple[str, ...] = (), /, **fields: Schema) -> Obj:
    """Shorthand: ``obj(("name",), name=Str(), tier=Str(...))``."""
    return Obj(fields, frozenset(required))


def optional(schema: Obj) -> Obj:
    """The same object with no required fields (for PATCH bodies)."""
    return Obj(schema.fields, frozenset())
