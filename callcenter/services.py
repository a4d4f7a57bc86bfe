"""Everything a running server holds, opened and closed in one place."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.clock import to_iso, utcnow
from callcenter.config import Settings
from callcenter.store import db
from callcenter.store.recorder import Recorder
from callcenter.store.records import APPLIERS, AUDIT_RECORDED
from callcenter.store.spool import Spool
from callcenter.web.auth import CredentialCache
from callcenter.web.metrics import Metrics
from callcenter.web.sockets import SocketHub
from callcenter.web.throttle import LoginThrottle

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    recorder: Recorder
    metrics: Metrics
    sockets: SocketHub
    throttle: LoginThrottle
    credentials: CredentialCache

    async def audit(
        self,
        actor_id: int | None,
        actor: str,
        action: str,
        target: str,
        address: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append an audit entry (who did what, when, from where) through the spool."""
        await self.recorder.record(
            AUDIT_RECORDED,
            {
                "at": to_iso(utcnow()),
                "actor_id": actor_id,
                "actor": actor[:64],
                "action": action,
                "target": target[:100],
                "address": address[:64],
                "detail": detail or {},
            },
        )


async def open_services(settings: Settings, *, upgrade: bool | None = None) -> Services:
    """Connect, migrate when configured, open the spool and start draining it."""
    engine = db.engine_for(settings.database)
    if settings.database.upgrade_on_start if upgrade is None else upgrade:
        await db.upgrade(engine)
    spool = Spool.open(
        settings.spool.directory,
        segment_bytes=settings.spool.segment_bytes,
        max_record_bytes=settings.spool.max_record_bytes,
    )
    recorder = Recorder(
        spool,
        engine,
        APPLIERS,
        batch_size=settings.spool.batch_size,
        max_retry_seconds=settings.spool.max_retry_seconds,
        statement_timeout=settings.database.timeout_seconds * 4,
    )
    recorder.start()
    auth = settings.auth
    metrics, sockets = Metrics(), SocketHub()
    metrics.consoles.set_function(sockets.count)
    return Services(
        settings=settings,
        engine=engine,
        sessions=db.session_factory(engine),
        recorder=recorder,
        metrics=metrics,
        sockets=sockets,
        throttle=LoginThrottle(
            auth.login_max_failures, auth.login_window_seconds, auth.login_lockout_seconds
        ),
        credentials=CredentialCache(),
    )


async def close_services(services: Services, drain_timeout: float = 5.0) -> None:
    await services.sockets.close_all("server stopping")
    try:
        await services.recorder.drained(drain_timeout)
    except TimeoutError:
        log.warning(
            "stopping with %d records still in the spool; they are applied at next start",
            services.recorder.backlog,
        )
    await services.recorder.stop()
    await services.recorder.spool.close()
    await services.engine.dispose()
