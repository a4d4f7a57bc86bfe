"""The demo: seed the database from ``config/demo.toml`` and run the server."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select

from callcenter.clock import utcnow
from callcenter.config import ConfigError, Settings
from callcenter.server import Server, settle_memory
from callcenter.services import Services
from callcenter.store import records
from callcenter.store.customers import create_customer
from callcenter.store.models import (
    BusinessHours,
    CannedResponse,
    Customer,
    DispositionCode,
    Holiday,
    User,
)
from callcenter.store.queues import save_queue
from callcenter.store.tickets import new_ticket
from callcenter.store.users import create_user

log = logging.getLogger(__name__)


def _list(seed: dict[str, Any], name: str) -> list[dict[str, Any]]:
    items = seed.get(name, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"seed.{name}", "expected an array of tables")
    return items


async def seed(services: Services) -> bool:
    """Load the seed data once; returns False when the database already has users."""
    data = services.settings.seed
    password = data.get("password")
    if not isinstance(password, str):
        raise ConfigError("seed.password", "expected the demo users' password")
    region = services.settings.site.default_region
    async with services.sessions() as db:
        if (await db.execute(select(User.id).limit(1))).first():
            return False
        for skill in _list(data, "skills"):
            from callcenter.store.models import Skill

            db.add(Skill(name=skill["name"], description=skill.get("description", "")))
        await db.flush()
        for queue in _list(data, "queues"):
            await save_queue(db, queue, create_skills=True)
        for user in _list(data, "users"):
            ext = user.get("extension")
            await create_user(
                db,
                username=user["username"],
                password=password,
                role=user["role"],
                realm=services.settings.sip.realm,
                display_name=user.get("display_name", ""),
                sip_extension=ext,
                sip_secret=password if ext else None,
                skills=user.get("skills", {}),
                chat_capacity=user.get("chat_capacity", 3),
                language=user.get("language", "en"),
                demo_credential=True,
                create_skills=True,
            )
        for customer in _list(data, "customers"):
            await create_customer(db, customer, region)
        for code in _list(data, "dispositions"):
            db.add(DispositionCode(**code, active=True))
        for canned in _list(data, "canned"):
            db.add(CannedResponse(**canned))
        calendar = data.get("calendar", {})
        for span in calendar.get("hours", []):
            db.add(
                BusinessHours(
                    calendar="default",
                    weekday=span["weekday"],
                    opens=dt.time.fromisoformat(span["opens"]),
                    closes=dt.time.fromisoformat(span["closes"]),
                )
            )
        for day in calendar.get("holidays", []):
            db.add(
                Holiday(calendar="default", day=dt.date.fromisoformat(day["day"]), name=day["name"])
            )
        await db.commit()
        accounts = {c.account_number: c.id for c in (await db.execute(select(Customer))).scalars()}
        admin = (await db.execute(select(User.id).where(User.role == "admin"))).scalar()
    for ticket in _list(data, "tickets"):
        status = ticket.pop("status", "new")
        ticket["customer_id"] = accounts.get(ticket.pop("customer", None))
        payload = new_ticket(ticket, admin, utcnow(), services.settings.tickets)
        await services.recorder.record(records.TICKET_CREATED, payload)
        path = {"open": ["open"], "pending": ["open", "pending"]}.get(status, [])
        for step in path:
            await services.recorder.record(
                records.TICKET_TRANSITIONED,
                {"id": payload["id"], "actor_id": admin, "to": step, "at": payload["created_at"]},
            )
    await services.recorder.drained(30)
    return True


async def run_demo(settings: Settings) -> None:
    """Seed (first run only) and serve until interrupted."""
    import asyncio
    import signal

    server = Server(settings)
    await server.start()
    assert server.services is not None
    if await seed(server.services):
        log.info("demo data seeded")
    password = settings.seed.get("password")
    print(
        f"\nContact center demo running at {server.url}\n"
        f"  API:     {server.url}/api/v1/openapi.json\n"
        f"  Log in:  agents 1001-1005, supervisor, admin; password {password}\n"
        "  Stop with Ctrl-C.\n",
        flush=True,
    )
    settle_memory()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
