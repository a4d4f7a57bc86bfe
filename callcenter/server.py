"""Running the server: open the services, serve HTTP, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable

from aiohttp import web
from sqlalchemy import select

from callcenter.config import Settings
from callcenter.cti.center import ContactCenter
from callcenter.cti.webhooks import WebhookSender
from callcenter.services import Services, close_services, open_services
from callcenter.store.models import User
from callcenter.voice.calls import CallManager
from callcenter.voice.outbound import OutboundCalls
from callcenter.voice.service import VoiceService
from callcenter.web.app import create_app

log = logging.getLogger(__name__)


class StartupRefused(RuntimeError):
    """The server will not start as configured; the message says why."""


class Server:
    """One server process: services plus the HTTP listener.

    ``await start()`` returns once it listens (``port`` is the bound port,
    useful with port 0); ``await stop()`` closes everything.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: Services | None = None
        self.center: ContactCenter | None = None
        self.webhook_sender: WebhookSender | None = None
        self.voice: VoiceService | None = None
        self.calls: CallManager | None = None
        self.outbound: OutboundCalls | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.settings.http.host}:{self.port}"

    async def start(self) -> None:
        self.services = await open_services(self.settings)
        try:
            if self.settings.mode != "demo":
                await _refuse_demo_credentials(self.services)
            self.center = ContactCenter(self.services)
            await self.center.start()
            if self.settings.sip.enabled:
                self.center.voice_needs_phone = True
                self.voice = VoiceService(
                    self.services, self.settings.sip, self.center.set_voice_reachable
                )
                await self.voice.start()
                self.calls = CallManager(self.services, self.settings, self.voice, self.center)
                self.calls.start()
                self.outbound = OutboundCalls(self.calls)
                self.outbound.start()
            self.webhook_sender = WebhookSender(self.services.sessions, self.settings.webhooks)
            self.webhook_sender.start()
            self._runner = web.AppRunner(
                create_app(self.services, self.center, self.outbound), access_log=None
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.settings.http.host, self.settings.http.port)
            await site.start()
        except BaseException:
            await self.stop()
            raise
        self.port = int(self._runner.addresses[0][1])

    async def drain(self) -> None:
        """Take no new calls; let those in progress finish, up to ``voice.drain_seconds``."""
        if self.calls is not None:
            await self.calls.drain(self.settings.voice.drain_seconds)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.webhook_sender is not None:
            await self.webhook_sender.stop()
            self.webhook_sender = None
        if self.outbound is not None:
            await self.outbound.close()
            self.outbound = None
        if self.calls is not None:
            await self.calls.close()
            self.calls = None
        if self.voice is not None:
            await self.voice.stop()
            self.voice = None
        if self.center is not None:
            await self.center.stop()
            self.center = None
        if self.services is not None:
            await close_services(self.services)
            self.services = None


async def _refuse_demo_credentials(services: Services) -> None:
    async with services.sessions() as db:
        names = list(
            (
                await db.execute(
                    select(User.username).where(
                        User.demo_credential.is_(True), User.active.is_(True)
                    )
                )
            ).scalars()
        )
    if names:
        raise StartupRefused(
            "demo passwords are still in use for "
            + ", ".join(sorted(names))
            + "; change them (callcenter users passwd NAME) or disable those users, "
            "or run in demo mode"
        )


def settle_memory() -> None:
    """Move what start-up loaded out of the collector's way.

    Modules and tables loaded at start stay for the life of the process;
    freezing them spares every later full collection from walking them, which
    otherwise pauses the loop for a tenth of a second or more.
    """
    gc.collect()
    gc.freeze()


async def serve(settings: Settings, on_ready: Callable[[Server], None] | None = None) -> None:
    """Run until SIGINT or SIGTERM."""
    server = Server(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settle_memory()
    if on_ready is not None:
        on_ready(server)
    try:
        await stop.wait()
        log.info("draining: no new calls, waiting for those in progress")
        await server.drain()
    finally:
        log.info("stopping")
        await server.stop()
