"""The router's asyncio adapter: events in order, one timer, effects out.

One lock serialises :meth:`RoutingEngine.submit`, so the router sees one
event at a time; a timer task sleeps until the router's next deadline and
then submits a :class:`~callcenter.acd.events.Tick`. Outward effects go to
the listeners (consoles, statistics) as they come out. Queue-log lines are
handed to a writer task that records them durably in order, so an ``fsync``
never holds up a routing decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

from callcenter.acd import events as ev
from callcenter.acd.dispatch import run, run_now
from callcenter.acd.router import QueueConfigured, Router
from callcenter.clock import to_iso, utcnow
from callcenter.state.contract import ImmediateLiveState, LiveState
from callcenter.store.recorder import Recorder
from callcenter.store.records import QUEUE_LOG

log = logging.getLogger(__name__)

Listener = Callable[[ev.Effect], None]


def queue_log_record(line: ev.QueueLog) -> dict[str, Any]:
    """The spooled form of a queue-log line (``queue_log.appended``)."""
    return {
        "id": str(uuid.uuid4()),
        "at": to_iso(line.at),
        "contact_id": line.contact_id,
        "queue": line.queue,
        "agent": line.agent_id,
        "event": line.event,
        "data": dict(line.data),
    }


class RoutingEngine:
    def __init__(
        self,
        router: Router,
        store: LiveState,
        recorder: Recorder | None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.router = router
        self.store = store
        #: The same store when it answers at once: decisions then skip the event loop.
        self._immediate = store if isinstance(store, ImmediateLiveState) else None
        self.recorder = recorder
        self.clock = clock
        self.listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._lines: asyncio.Queue[ev.QueueLog] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._timer(), name="acd-timer"),
            asyncio.create_task(self._write_queue_log(), name="acd-queue-log"),
        ]

    async def stop(self) -> None:
        """Stop the timer; queue-log lines already handed over are still recorded."""
        for task in self._tasks:
            if task.get_name() == "acd-timer":
                task.cancel()
        await self._lines.join()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def submit(self, event: ev.Event | QueueConfigured) -> list[ev.Effect]:
        """Hand ``event`` to the router; returns the outward effects it caused."""
        async with self._lock:
            if self._immediate is not None:
                effects = run_now(self.router, self._immediate, event, self.clock())
            else:
                effects = await run(self.router, self.store, event, self.clock())
        for effect in effects:
            if isinstance(effect, ev.QueueLog):
                self._lines.put_nowait(effect)
            for listener in self.listeners:
                try:
                    listener(effect)
                except Exception:
                    log.exception("routing listener failed on %s", type(effect).__name__)
        # A new decision may have armed an earlier deadline than the timer sleeps for.
        self._wake.set()
        return effects

    async def _timer(self) -> None:
        while True:
            self._wake.clear()
            deadline = self.router.next_deadline()
            if deadline is None:
                await self._wake.wait()
                continue
            delay = (deadline - self.clock()).total_seconds()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            await self.submit(ev.Tick())

    async def _write_queue_log(self) -> None:
        while True:
            lines = [await self._lines.get()]
            while not self._lines.empty():
                lines.append(self._lines.get_nowait())
            try:
                if self.recorder is not None:
                    # Appends take their sequence numbers in the order they are
                    # started, and share one fsync.
                    await asyncio.gather(
                        *(self.recorder.record(QUEUE_LOG, queue_log_record(x)) for x in lines)
                    )
            except Exception:
                log.exception("%d queue-log lines could not be spooled", len(lines))
            finally:
                for _ in lines:
                    self._lines.task_done()
