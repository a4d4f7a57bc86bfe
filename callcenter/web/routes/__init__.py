"""The REST API under ``/api/v1``: one module per resource, all declared on :data:`api`."""

from callcenter.web.api import Api

api = Api()

# Importing the modules registers their routes on ``api``.
from callcenter.web.routes import (  # noqa: E402
    callbacks,
    calls,
    customers,
    interactions,
    queues,
    reference,
    reports,
    session,
    system,
    tickets,
    users,
    webhooks,
)

__all__ = [
    "api",
    "callbacks",
    "calls",
    "customers",
    "interactions",
    "queues",
    "reference",
    "reports",
    "session",
    "system",
    "tickets",
    "users",
    "webhooks",
]
