"""A TCP proxy a test owns, to take a server away and bring it back.

The machine's PostgreSQL keeps running for every other test; a test that
needs an outage points its client at the proxy and calls :meth:`TcpProxy.cut`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

_CHUNK = 65536


@dataclass
class _Trigger:
    pattern: bytes
    forward: bool
    fired: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Link:
    """One client connection and its connection to the target."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    #: Set by :meth:`TcpProxy.cut_on`: drop the target's next reply and cut.
    swallow_reply: _Trigger | None = None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        # abort, not close: a cut must not flush what is still buffered,
        # just as a pulled cable would not.
        self.client.transport.abort()
        self.upstream.transport.abort()


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port``.

    Start with :meth:`start` and always :meth:`close` it. While cut, every
    live connection is gone and new ones are closed as soon as they are
    accepted, so a client sees the server as unreachable, not slow.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self.connections = 0
        self._up = True
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._trigger: _Trigger | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Close every live connection at once; refuse new ones until :meth:`restore`."""
        self._up = False
        self.cuts += 1
        self._trigger = None
        for link in list(self._links):
            link.abort()

    def restore(self) -> None:
        self._up = True

    def cut_on(self, pattern: bytes, *, forward: bool) -> asyncio.Event:
        """Cut when a client next sends bytes containing ``pattern``.

        With ``forward`` the message reaches the target and its reply is
        dropped (the target acted, the client never hears of it); without,
        the message is lost with the connection. The returned event is set
        once the cut has happened.
        """
        self._trigger = _Trigger(pattern, forward)
        return self._trigger.fired

    async def close(self) -> None:
        self._up = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for link in list(self._links):
            link.abort()
        # The handlers end on their own once their links are aborted;
        # cancelling one would upset the stream machinery that started it.
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._relay(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        if not self._up:
            link.abort()
            return
        self.connections += 1
        self._links.add(link)
        try:
            link.pumps = [
                asyncio.create_task(self._pump(reader, up_writer, link, from_client=True)),
                asyncio.create_task(self._pump(up_reader, writer, link, from_client=False)),
            ]
            await asyncio.gather(*link.pumps)
        finally:
            self._links.discard(link)
            link.abort()
            for pump in link.pumps:
                pump.cancel()
            await asyncio.gather(*link.pumps, return_exceptions=True)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        from_client: bool,
    ) -> None:
        try:
            while data := await reader.read(_CHUNK):
                if from_client and not self._check_trigger(link, data):
                    return
                if not from_client and link.swallow_reply is not None:
                    self._fire(link.swallow_reply)
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            # One direction ending ends the connection: a half-open link
            # would only hide the cut from the other side.
            link.abort()

    def _check_trigger(self, link: _Link, data: bytes) -> bool:
        """Whether ``data`` may go on to the target."""
        trigger = self._trigger
        if trigger is None or trigger.pattern not in data:
            return True
        self._trigger = None
        if trigger.forward:
            link.swallow_reply = trigger
            return True
        self._fire(trigger)
        return False

    def _fire(self, trigger: _Trigger) -> None:
        self.cut()
        trigger.fired.set()


@contextlib.asynccontextmanager
async def running_proxy(target_host: str, target_port: int) -> AsyncIterator[TcpProxy]:
    """A started proxy, closed (with every connection through it) on exit."""
    proxy = TcpProxy(target_host, target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
