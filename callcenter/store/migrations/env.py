"""Alembic environment: runs on the connection handed over by ``store.db.upgrade``."""

from typing import Any, Literal

from alembic import context

from callcenter.store.models import Base, UtcDateTime


def render_item(kind: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Migrations name plain SQL types: the UTC conversion is the model's
    # business, and a migration must not depend on model code that may change.
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
