"""Webhooks: the live events, signed and delivered to the company's own systems.

Each request is a POST of the JSON event with the headers

- ``X-Callcenter-Event``: the event type,
- ``X-Callcenter-Delivery``: the delivery id (the same on every retry),
- ``X-Callcenter-Timestamp``: Unix seconds when this attempt was signed,
- ``X-Callcenter-Signature``: ``sha256=`` + hex HMAC-SHA256 of
  ``timestamp + "." + body`` with the webhook's secret.

A receiver recomputes the signature and refuses old timestamps, which stops
forgery and replay. Deliveries are queued durably (through the spool into
the ``webhook_deliveries`` table) and retried with exponential backoff, so a
slow or absent receiver never slows routing and loses nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from sqlalchemy import select, update

from callcenter.clock import to_iso, utcnow
from callcenter.config import WebhookSettings
from callcenter.cti.feed import FeedEvent
from callcenter.store.models import Webhook, WebhookDelivery
from callcenter.store.recorder import Recorder
from callcenter.store.records import WEBHOOK_QUEUED

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0
BATCH = 50


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff_seconds(attempts: int, rng: random.Random, first: float = 5.0) -> float:
    """Wait before attempt ``attempts + 1``: doubling from ``first``, jittered, at most an hour."""
    base: float = min(first * float(2.0 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return base * (0.5 + rng.random() / 2)


def address_allowed(address: str, allow_private: bool) -> bool:
    """Loopback, link-local, private, multicast and unspecified targets only when allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if allow_private:
        return True
    return not (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    )


class TargetRefused(OSError):
    pass


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then refuses forbidden addresses: the check is made on
    the very addresses the connection will use, so DNS tricks cannot slip past it."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if address_allowed(r["host"], self._allow)]
        if not allowed:
            raise TargetRefused(f"webhook target {host} resolves only to forbidden addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class WebhookQueue:
    """Turns feed events into durable deliveries for the matching webhooks."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        #: (id, events filter) of the active webhooks, refreshed when they change.
        self.hooks: list[tuple[int, frozenset[str]]] = []
        self._pending: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def load(self, sessions: Any) -> None:
        async with sessions() as db:
            rows = (await db.execute(select(Webhook).where(Webhook.active.is_(True)))).scalars()
            self.hooks = [(w.id, frozenset(w.events)) for w in rows]

    def offer(self, event: FeedEvent, epoch: str) -> None:
        targets = [hook for hook, kinds in self.hooks if not kinds or event.kind in kinds]
        if not targets:
            return
        payload = json.dumps(
            {
                "type": event.kind,
                "epoch": epoch,
                "seq": event.seq,
                "at": to_iso(event.at),
                "data": dict(event.data),
            },
            ensure_ascii=False,
            default=str,
        )
        now = to_iso(utcnow())
        self._pending.put_nowait(
            {
                "deliveries": [
                    {
                        "id": str(uuid.uuid4()),
                        "webhook_id": hook,
                        "event_type": event.kind,
                        "payload": payload,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "last_error": "",
                        "created_at": now,
                    }
                    for hook in targets
                ]
            }
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._write(), name="webhook-queue")

    async def stop(self) -> None:
        await self._pending.join()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _write(self) -> None:
        while True:
            item = await self._pending.get()
            try:
                await self.recorder.record(WEBHOOK_QUEUED, item)
            except Exception:
                log.exception("webhook deliveries could not be spooled")
            finally:
                self._pending.task_done()


class WebhookSender:
    """Sends due deliveries; one attempt each per round, retried with backoff."""

    def __init__(
        self, sessions: Any, settings: WebhookSettings, rng: random.Random | None = None
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.settings.allow_private_targets)
        )
        self._http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
        )
        self._task = asyncio.create_task(self._loop(), name="webhook-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._http is not None:
            await self._http.close()

    async def _loop(self) -> None:
        while True:
            try:
                sent = await self.round()
            except Exception as exc:
                log.warning("webhook round failed: %s", exc)
                sent = 0
            if sent == 0:
                await asyncio.sleep(self.settings.poll_seconds)

    async def round(self) -> int:
        """Attempt the due deliveries once; returns how many were attempted."""
        now = utcnow()
        async with self.sessions() as db:
            rows = (
                await db.execute(
                    select(WebhookDelivery, Webhook)
                    .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                    .where(
                        WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now
                    )
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(BATCH)
                )
            ).all()
        results = await asyncio.gather(*(self._attempt(d, w) for d, w in rows))
        async with self.sessions() as db:
            for (delivery, _), error in zip(rows, results, strict=True):
                attempts = delivery.attempts + 1
                if error is None:
                    values: dict[str, Any] = {
                        "status": "delivered",
                        "attempts": attempts,
                        "delivered_at": utcnow(),
                        "last_error": "",
                    }
                elif attempts >= self.settings.max_attempts:
                    values = {"status": "failed", "attempts": attempts, "last_error": error[:300]}
                else:
                    wait = dt.timedelta(
                        seconds=backoff_seconds(
                            attempts, self.rng, self.settings.retry_base_seconds
                        )
                    )
                    values = {
                        "attempts": attempts,
                        "last_error": error[:300],
                        "next_attempt_at": utcnow() + wait,
                    }
                await db.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery.id)
                    .values(**values)
                )
            await db.commit()
        return len(rows)

    async def _attempt(self, delivery: WebhookDelivery, hook: Webhook) -> str | None:
        """None when delivered, else why not."""
        assert self._http is not None
        body = delivery.payload.encode()
        stamp = int(utcnow().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Callcenter-Event": delivery.event_type,
            "X-Callcenter-Delivery": delivery.id,
            "X-Callcenter-Timestamp": str(stamp),
            "X-Callcenter-Signature": signature(hook.secret, stamp, body),
        }
        host = urlsplit(hook.url).hostname or ""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None  # a name: the guarded resolver checks what it resolves to
        allow = self.settings.allow_private_targets
        if literal is not None and not address_allowed(str(literal), allow):
            return f"webhook target {host} is a forbidden address"
        try:
            async with self._http.post(
                hook.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
