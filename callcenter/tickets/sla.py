"""SLA due times of a ticket: first response and resolution."""

from __future__ import annotations

import datetime as dt

from callcenter.config import TicketSettings

PRIORITY_ORDER = ("low", "normal", "high", "urgent")


def effective_priority(category: str, priority: str, settings: TicketSettings) -> str:
    """Complaints are never handled below ``complaint_min_priority``."""
    if category != "complaint":
        return priority
    floor = settings.complaint_min_priority
    return max(priority, floor, key=PRIORITY_ORDER.index)


def due_times(
    priority: str, created_at: dt.datetime, settings: TicketSettings
) -> tuple[dt.datetime, dt.datetime]:
    """(first response due, resolution due) for a ticket created at ``created_at``."""
    first = dt.timedelta(hours=settings.first_response_hours[priority])
    resolve = dt.timedelta(hours=settings.resolution_hours[priority])
    return created_at + first, created_at + resolve
