"""Paginated lists: ``page`` and ``page_size`` with a capped size."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.web.api import Call
from callcenter.web.errors import ApiError
from callcenter.web.schema import Int, Schema

PAGING: dict[str, Schema] = {
    "page": Int(minimum=1, maximum=1_000_000),
    "page_size": Int(minimum=1, maximum=100_000),
}


def where_equal(stmt: Select[Any], query: dict[str, Any], columns: dict[str, Any]) -> Select[Any]:
    """Add ``column == value`` for each query parameter given that names a column."""
    for key, column in columns.items():
        if key in query:
            stmt = stmt.where(column == query[key])
    return stmt


async def paginate(
    call: Call, db: AsyncSession, stmt: Select[Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Run ``stmt`` for the requested page; returns (rows, paging info for the reply)."""
    limits = call.services.settings.api
    size = call.query.get("page_size", limits.default_page_size)
    if size > limits.max_page_size:
        raise ApiError(
            400,
            "page_size_too_large",
            f"page_size must be at most {limits.max_page_size}",
            {"field": "query.page_size"},
        )
    page = call.query.get("page", 1)
    total = (
        await db.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))
    ).scalar_one()
    rows = list((await db.execute(stmt.limit(size).offset((page - 1) * size))).scalars())
    return rows, {"page": page, "page_size": size, "total": total}
