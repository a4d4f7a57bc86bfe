"""Benchmark of live chat: customers and agents talking over real websockets.

Project path: the real server (``callcenter serve``) in its own process, on a
loopback port, with an SQLite database in a temporary folder that was
migrated with ``callcenter db upgrade`` and seeded with a ``chat`` queue, a
disposition code and ``--agents`` agents (chat capacity 3, one API token
each). The agents open ``/ws/agent`` with their bearer token, say ``hello``,
go available and accept every offer at once; the customers open ``/ws/chat``
and send ``start``, 50 at a time. Once every chat has started (one that fails
to start is counted and left out), each customer sends a message every 2 s
(jittered) for ``--duration`` seconds, and its agent answers every message
the moment it arrives. Each message carries a unique id and the
``time.perf_counter()`` at which it was sent; all clients run in one asyncio
loop in this process, so the receiver measures the delivery latency on the
same clock. After a short drain, lost = sent - received, per direction.

Ceiling: the same number of customer and agent sockets (customer ``k``
paired with agent ``k % agents``), the same message pattern from the same
seed, through a bare aiohttp websocket relay in its own process that hands
each frame to the paired socket: what relaying alone costs a Python
websocket server on the same machine. The ratio is ``ceiling_p99_ms / p99_ms``.

Run from the project root::

    .venv/bin/python bench/chat_load.py [--customers N] [--agents A] [--duration S] [--quick]

The last line printed is one JSON object with the figures. The exit status is
non-zero when a message is lost or a chat fails to start (or a run cannot be
set up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from callcenter.config import ChatSettings

DEFAULT_CUSTOMERS = 500
DEFAULT_AGENTS = 200
DEFAULT_DURATION = 60.0
QUICK_DURATION = 10.0
CHAT_CAPACITY = 3
CHAT_QUEUE = ChatSettings().default_queue
#: Mean seconds between two messages of one customer, and the jitter (a
#: share of it, either way) that keeps the customers out of step.
MESSAGE_INTERVAL = 2.0
JITTER = 0.5
#: Between the last chat start and the first message, so that no message
#: queues behind the last offers and screen pops.
LEAD_SECONDS = 1.0
#: How long the last messages may take to arrive before they count as lost.
DRAIN_SECONDS = 5.0
SERVER_START_TIMEOUT = 60.0
JOIN_TIMEOUT = 60.0
#: Handshakes (and chat starts) in flight at once while the sockets open.
CONNECTS_AT_ONCE = 50
#: Period of the probe that watches this process's own event loop.
STALL_PROBE = 0.01
#: Largest websocket message, as the server's own limit.
WS_MAX_MESSAGE = 64 * 1024
#: Body of every message after its stamp, so frames have a chat line's length.
FILLER = "could you check the charges on my last invoice, please?"
OPENING = "Hello, I have a question about my bill."
#: Config bounds of the per-address chat limits (all customers share 127.0.0.1).
MAX_NEW_PER_MINUTE = 10_000
MAX_MESSAGES_PER_MINUTE = 100_000
THIS_FILE = Path(__file__).resolve()
CALLCENTER = Path(sys.executable).with_name("callcenter")


class RunFailed(Exception):
    """A run could not be set up or carried out as the benchmark intends."""


# -- messages -------------------------------------------------------------------


def stamp(message_id: str, sent_at: float) -> str:
    return f"[{message_id} {sent_at:.6f}] {FILLER}"


def read_stamp(text: str) -> tuple[str, float] | None:
    if not text.startswith("["):
        return None
    head, _, _ = text[1:].partition("]")
    message_id, _, sent_at = head.partition(" ")
    try:
        return message_id, float(sent_at)
    except ValueError:
        return None


@dataclass(slots=True)
class Direction:
    """One direction of the conversation: what was sent, what arrived, how late."""

    label: str
    sent: int = 0
    seen: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    duplicates: int = 0

    def arrived(self, text: str, now: float) -> str | None:
        """Count a message received at ``now``; its id, or None if not one of ours."""
        stamped = read_stamp(text)
        if stamped is None:
            return None
        message_id, sent_at = stamped
        if message_id in self.seen:
            self.duplicates += 1
            return None
        self.seen.add(message_id)
        self.latencies.append(now - sent_at)
        return message_id

    @property
    def lost(self) -> int:
        return self.sent - len(self.seen)


@dataclass(slots=True)
class Traffic:
    to_agent: Direction = field(default_factory=lambda: Direction("customer -> agent"))
    to_customer: Direction = field(default_factory=lambda: Direction("agent -> customer"))
    #: Error codes and unexpected events, by side.
    errors: Counter[str] = field(default_factory=Counter)
    closing: bool = False
    #: Longest stall of the bench's own event loop while the customers talked, s.
    client_stall: float = 0.0
    draining: bool = False
    #: Set once the talking is over and every message sent has arrived.
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        """Called after each frame is handled, so that an answer is counted as sent first."""
        if self.draining and self.to_agent.lost <= 0 and self.to_customer.lost <= 0:
            self.settled.set()


# -- clients ----------------------------------------------------------------------


class Agent:
    """An agent's console: accepts every offer, answers every customer message at once."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, traffic: Traffic) -> None:
        self.ws = ws
        self.traffic = traffic
        self.ready = asyncio.Event()
        self.chats = 0
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        traffic = self.traffic
        async for frame in self.ws:
            now = time.perf_counter()
            if frame.type != WSMsgType.TEXT:
                continue
            data = json.loads(frame.data)
            kind = data.get("type")
            # The server also sends the agent its own messages back; the relay
            # has no "from" and forwards only the customer's.
            if kind == "message" and data.get("from", "customer") == "customer":
                message_id = traffic.to_agent.arrived(data["text"], now)
                if message_id is not None:
                    # The relay forwards the customer's frame as it is: the
                    # message id names the pair.
                    contact = data.get("contact_id") or message_id[1:].partition("-")[0]
                    await self._answer(contact, "a" + message_id[1:])
            elif kind == "offer":
                await self.ws.send_str(
                    json.dumps({"type": "accept", "contact_id": data["contact_id"]})
                )
            elif kind == "connected":
                self.chats += 1
            elif kind == "ok" and data.get("ref") == "ready":
                self.ready.set()
            elif kind == "error":
                traffic.errors[f"agent {data.get('code')}"] += 1
            elif kind in ("offer_withdrawn", "contact_ended"):
                traffic.errors[f"agent {kind}"] += 1
            traffic.check()
        if not traffic.closing:
            traffic.errors[f"agent socket closed by the server ({self.ws.close_code})"] += 1

    async def _answer(self, contact_id: str, message_id: str) -> None:
        self.traffic.to_customer.sent += 1
        text = stamp(message_id, time.perf_counter())
        # A socket the server closed is already reported; the answer counts as lost.
        with contextlib.suppress(ConnectionError):
            await self.ws.send_str(
                json.dumps({"type": "message", "contact_id": contact_id, "text": text})
            )


class Customer:
    """A customer in the chat widget: talks at a steady, jittered pace once joined."""

    def __init__(
        self, index: int, ws: aiohttp.ClientWebSocketResponse, traffic: Traffic, joined: bool
    ) -> None:
        self.index = index
        self.ws = ws
        self.traffic = traffic
        self.joined = asyncio.Event()
        #: Set once the customer has an agent or has lost its socket.
        self.settled = asyncio.Event()
        if joined:
            self.joined.set()
            self.settled.set()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        traffic = self.traffic
        async for frame in self.ws:
            now = time.perf_counter()
            if frame.type != WSMsgType.TEXT:
                continue
            data = json.loads(frame.data)
            kind = data.get("type")
            if kind == "message":
                traffic.to_customer.arrived(data["text"], now)
            elif kind == "agent_joined":
                self.joined.set()
                self.settled.set()
            elif kind == "error":
                traffic.errors[f"customer {data.get('code')}"] += 1
            elif kind == "ended":
                traffic.errors[f"customer ended {data.get('reason')}"] += 1
            traffic.check()
        self.settled.set()
        if not traffic.closing:
            traffic.errors[f"customer socket closed by the server ({self.ws.close_code})"] += 1

    async def talk(self, start: float, stop: float, rng: random.Random) -> None:
        # The first message falls anywhere in the first interval, so the
        # customers do not all speak on the same beat.
        at = start + rng.uniform(0, MESSAGE_INTERVAL)
        count = 0
        while at < stop:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            if self.ws.closed:
                # Already reported as a socket the server closed.
                return
            count += 1
            self.traffic.to_agent.sent += 1
            text = stamp(f"c{self.index}-{count}", time.perf_counter())
            try:
                await self.ws.send_str(json.dumps({"type": "message", "text": text}))
            except ConnectionError:
                return
            at += MESSAGE_INTERVAL * rng.uniform(1 - JITTER, 1 + JITTER)


async def converse(
    customers: Sequence[Customer], traffic: Traffic, duration: float, seed: int
) -> None:
    """Every customer talks for ``duration`` seconds; then wait for the last answers."""
    start = time.perf_counter() + LEAD_SECONDS
    stop = start + duration
    watch = asyncio.create_task(watch_stalls(traffic))
    try:
        # Seeded by customer, so the ceiling replays each customer's pattern
        # even when some chats of the project path failed to start.
        await asyncio.gather(
            *(c.talk(start, stop, random.Random(f"{seed}:{c.index}")) for c in customers)
        )
        traffic.draining = True
        traffic.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(traffic.settled.wait(), DRAIN_SECONDS)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


async def watch_stalls(traffic: Traffic) -> None:
    """Note the longest stall of this process's loop: a latency it adds to every figure."""
    while True:
        began = time.perf_counter()
        await asyncio.sleep(STALL_PROBE)
        traffic.client_stall = max(traffic.client_stall, time.perf_counter() - began - STALL_PROBE)


async def open_all(indices: Iterable[int], opener: Any) -> list[Any]:
    """``opener(i)`` for every index, a bounded number of handshakes at a time."""
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def one(index: int) -> Any:
        async with gate:
            return await opener(index)

    return list(await asyncio.gather(*(one(i) for i in indices)))


async def wait_all(events: Sequence[asyncio.Event], timeout: float) -> int:
    """Wait until every event is set, at most ``timeout`` seconds; returns how many are."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(e.wait() for e in events))
    return sum(e.is_set() for e in events)


async def close_all(
    traffic: Traffic, customers: Sequence[Customer], agents: Sequence[Agent]
) -> None:
    traffic.closing = True
    for side in (customers, agents):
        await asyncio.gather(*(c.ws.close() for c in side), return_exceptions=True)
        await asyncio.gather(*(c.task for c in side), return_exceptions=True)


def new_http() -> aiohttp.ClientSession:
    # The connector's default of 100 connections would queue most of the sockets.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


# -- child processes ------------------------------------------------------------


@contextlib.asynccontextmanager
async def child(argv: Sequence[str], ready_prefix: str, timeout: float) -> AsyncIterator[str]:
    """Run ``argv`` until the block ends; yields the first output line with ``ready_prefix``."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    tail: deque[str] = deque(maxlen=40)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def collect() -> None:
        assert proc.stdout is not None
        # Read to the end so that a chatty child never blocks on a full pipe.
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            if line.startswith(ready_prefix) and not ready.done():
                ready.set_result(line)

    reader = asyncio.create_task(collect())
    try:
        try:
            async with asyncio.timeout(timeout):
                # A child that exits ends ``reader`` before ``ready``.
                watched: list[asyncio.Future[Any]] = [ready, reader]
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            pass
        if not ready.done():
            output = "\n".join(tail)
            raise RunFailed(f"{argv[0]} did not start; its last output:\n{output}")
        yield ready.result()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def run_cli(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(CALLCENTER),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RunFailed(f"callcenter {' '.join(args)} failed:\n{output.decode(errors='replace')}")


async def wait_healthy(base: str, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "/healthz") as response:
                    if response.status == 200:
                        return
            if time.perf_counter() > deadline:
                raise RunFailed(f"{base}/healthz did not answer 200 within {timeout:.0f} s")
            await asyncio.sleep(0.1)


# -- the project path ---------------------------------------------------------------


def database_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'callcenter.db'}"


def write_config(folder: Path, customers: int) -> Path:
    per_minute = math.ceil(customers * 60 / (MESSAGE_INTERVAL * (1 - JITTER)))
    toml = f"""\
mode = "production"

[http]
host = "127.0.0.1"
port = 0

# Chat only: no SIP listener to collide with anything on port 5060.
[sip]
enabled = false

[database]
url = {json.dumps(database_url(folder))}
upgrade_on_start = false

[spool]
directory = {json.dumps(str(folder / "spool"))}

[chat]
max_new_per_minute = {min(MAX_NEW_PER_MINUTE, 2 * customers)}
max_messages_per_minute = {min(MAX_MESSAGES_PER_MINUTE, 2 * per_minute)}

[cti]
agent_grace_seconds = 300
"""
    path = folder / "callcenter.toml"
    path.write_text(toml)
    return path


async def seed(folder: Path, agents: int) -> list[str]:
    """The chat queue, a disposition code and the agents; returns their API tokens."""
    # Imported here: the relay runs this file too, and its heap should hold
    # little more than aiohttp, since every full collection walks all of it.
    from callcenter.credentials import hash_password, new_token, token_digest
    from callcenter.store import db
    from callcenter.store.models import ApiToken, DispositionCode, Queue, User

    engine = db.create_engine(database_url(folder))
    now = dt.datetime.now(dt.UTC)
    # argon2 is slow by design, and nobody logs in with this password.
    password_hash = hash_password(secrets.token_urlsafe(16))
    tokens = [new_token() for _ in range(agents)]
    try:
        async with db.session_factory(engine)() as session:
            session.add(
                Queue(
                    name=CHAT_QUEUE,
                    display_name="Chat",
                    channel="chat",
                    wrapup_seconds=0,
                    created_at=now,
                )
            )
            session.add(DispositionCode(code="resolved", label_en="Resolved", label_zh="已解决"))
            users = [
                User(
                    username=f"bench{i:04d}",
                    display_name=f"Agent {i}",
                    role="agent",
                    password_hash=password_hash,
                    chat_capacity=CHAT_CAPACITY,
                    created_at=now,
                    updated_at=now,
                )
                for i in range(1, agents + 1)
            ]
            session.add_all(users)
            await session.flush()
            session.add_all(
                ApiToken(
                    token_hash=token_digest(token),
                    user_id=user.id,
                    name="chat bench",
                    created_at=now,
                    expires_at=None,
                )
                for user, token in zip(users, tokens, strict=True)
            )
            await session.commit()
    finally:
        await engine.dispose()
    return tokens


@dataclass(slots=True)
class RunResult:
    traffic: Traffic
    #: Indices of the customers who talked (every customer whose chat started).
    talking: list[int]
    #: From the first chat start until every customer had an agent or had failed.
    ramp_seconds: float
    chats_per_agent: Counter[int]


async def run_project(
    folder: Path, customers: int, agents: int, duration: float, seed_value: int
) -> RunResult:
    config = write_config(folder, customers)
    await run_cli("db", "upgrade", "--config", str(config))
    tokens = await seed(folder, agents)
    argv = [str(CALLCENTER), "serve", "--config", str(config)]
    async with child(argv, "callcenter listening on ", SERVER_START_TIMEOUT) as line:
        base = line.rsplit(" ", 1)[1]
        await wait_healthy(base, SERVER_START_TIMEOUT)
        ws_base = base.replace("http://", "ws://", 1)
        traffic = Traffic()
        async with new_http() as http:

            async def open_agent(index: int) -> Agent:
                ws = await http.ws_connect(
                    ws_base + "/ws/agent",
                    headers={"Authorization": f"Bearer {tokens[index]}"},
                    max_msg_size=WS_MAX_MESSAGE,
                )
                agent = Agent(ws, traffic)
                await ws.send_str(json.dumps({"type": "hello"}))
                await ws.send_str(
                    json.dumps({"type": "presence", "presence": "available", "ref": "ready"})
                )
                return agent

            async def open_customer(index: int) -> Customer:
                ws = await http.ws_connect(
                    ws_base + "/ws/chat", headers={"Origin": base}, max_msg_size=WS_MAX_MESSAGE
                )
                customer = Customer(index, ws, traffic, joined=False)
                start = {
                    "type": "start",
                    "name": f"Customer {index}",
                    "email": f"customer{index}@example.com",
                    "message": OPENING,
                }
                await ws.send_str(json.dumps(start))
                return customer

            agent_list: list[Agent] = []
            customer_list: list[Customer] = []
            try:
                agent_list = await open_all(range(agents), open_agent)
                ready = await wait_all([a.ready for a in agent_list], JOIN_TIMEOUT)
                if ready < agents:
                    raise RunFailed(f"only {ready} of {agents} agents became available")
                began = time.perf_counter()
                customer_list = await open_all(range(customers), open_customer)
                await wait_all([c.settled for c in customer_list], JOIN_TIMEOUT)
                ramp = time.perf_counter() - began
                # A chat that failed to start is reported, not retried: the
                # others still measure the delivery path.
                talking = [c for c in customer_list if c.joined.is_set() and not c.ws.closed]
                if not talking:
                    raise RunFailed("no chat started")
                await converse(talking, traffic, duration, seed_value)
            finally:
                await close_all(traffic, customer_list, agent_list)
    return RunResult(
        traffic, [c.index for c in talking], ramp, Counter(a.chats for a in agent_list)
    )


# -- the ceiling ------------------------------------------------------------------


async def relay_main() -> None:
    """The ceiling's server: hands every frame to the paired socket, nothing else."""
    customers: dict[str, web.WebSocketResponse] = {}
    agents: dict[str, web.WebSocketResponse] = {}

    async def customer(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE)
        await ws.prepare(request)
        key, agent = request.query["id"], request.query["agent"]
        customers[key] = ws
        try:
            async for frame in ws:
                target = agents.get(agent)
                if frame.type == WSMsgType.TEXT and target is not None:
                    await target.send_str(frame.data)
        finally:
            customers.pop(key, None)
        return ws

    async def agent(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE)
        await ws.prepare(request)
        key = request.query["id"]
        agents[key] = ws
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                # One agent socket serves several customers: the frame says which.
                target = customers.get(str(json.loads(frame.data).get("contact_id")))
                if target is not None:
                    await target.send_str(frame.data)
        finally:
            agents.pop(key, None)
        return ws

    app = web.Application()
    app.router.add_get("/customer", customer)
    app.router.add_get("/agent", agent)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"relay listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def run_ceiling(
    customers: Sequence[int], agents: int, duration: float, seed_value: int
) -> RunResult:
    argv = [sys.executable, str(THIS_FILE), "--relay"]
    async with child(argv, "relay listening on ", SERVER_START_TIMEOUT) as line:
        ws_base = line.rsplit(" ", 1)[1].replace("http://", "ws://", 1)
        traffic = Traffic()
        async with new_http() as http:

            async def open_agent(index: int) -> Agent:
                ws = await http.ws_connect(
                    f"{ws_base}/agent?id={index}", max_msg_size=WS_MAX_MESSAGE
                )
                return Agent(ws, traffic)

            async def open_customer(index: int) -> Customer:
                ws = await http.ws_connect(
                    f"{ws_base}/customer?id={index}&agent={index % agents}",
                    max_msg_size=WS_MAX_MESSAGE,
                )
                return Customer(index, ws, traffic, joined=True)

            agent_list: list[Agent] = []
            customer_list: list[Customer] = []
            try:
                agent_list = await open_all(range(agents), open_agent)
                began = time.perf_counter()
                customer_list = await open_all(customers, open_customer)
                ramp = time.perf_counter() - began
                await converse(customer_list, traffic, duration, seed_value)
            finally:
                await close_all(traffic, customer_list, agent_list)
    pairs = Counter(i % agents for i in customers)
    return RunResult(traffic, list(customers), ramp, Counter(pairs.values()))


# -- the run ------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(values: Sequence[float], fraction: float) -> float:
    return round(percentile(values, fraction) * 1e3, 3) if values else math.nan


def describe(direction: Direction) -> str:
    lat = direction.latencies
    return (
        f"{direction.sent:7,d} sent, p50 {ms(lat, 0.5):6.2f} ms, p99 {ms(lat, 0.99):6.2f} ms,"
        f" max {ms(lat, 1.0):7.2f} ms, lost {direction.lost}"
        + (f", {direction.duplicates} twice" if direction.duplicates else "")
    )


def summary(result: RunResult) -> dict[str, Any]:
    traffic = result.traffic
    both = traffic.to_agent.latencies + traffic.to_customer.latencies
    return {
        "messages": traffic.to_agent.sent + traffic.to_customer.sent,
        "p50_ms": ms(both, 0.5),
        "p99_ms": ms(both, 0.99),
        "max_ms": ms(both, 1.0),
        "lost": traffic.to_agent.lost + traffic.to_customer.lost,
    }


async def bench(customers: int, agents: int, duration: float, seed_value: int) -> dict[str, Any]:
    # Other work on the machine shows in every latency: say how busy it was.
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cc_bench_chat_") as folder:
        project = await run_project(Path(folder), customers, agents, duration, seed_value)
    ceiling = await run_ceiling(project.talking, agents, duration, seed_value)

    mine, top = summary(project), summary(ceiling)
    ratio = top["p99_ms"] / mine["p99_ms"] if mine["p99_ms"] else math.nan
    talking = len(project.talking)
    failed = customers - talking
    trouble = project.traffic.errors
    print(
        f"live chat: {customers} customers, {agents} agents (chat capacity {CHAT_CAPACITY}),"
        f" {duration:g} s, a message every {MESSAGE_INTERVAL:g} s ±{JITTER:.0%} per customer,"
        f" each answered at once (load average {load_before:.2f} before the run)"
    )
    print(
        f"  project path : {mine['messages']:7,d} messages, p50 {mine['p50_ms']:.2f} ms,"
        f" p99 {mine['p99_ms']:.2f} ms, max {mine['max_ms']:.2f} ms, lost {mine['lost']}"
    )
    for direction in (project.traffic.to_agent, project.traffic.to_customer):
        print(f"    {direction.label:17s}: {describe(direction)}")
    print(
        f"    chat starts  : {talking} of {customers} joined in {project.ramp_seconds:.2f} s"
        f" ({talking / project.ramp_seconds:.0f}/s, {CONNECTS_AT_ONCE} at a time),"
        f" {failed} failed; chats per agent {dict(sorted(project.chats_per_agent.items()))}"
    )
    if trouble:
        print(f"    trouble      : {dict(trouble)}")
    print(
        f"  ceiling      : {top['messages']:7,d} messages, p50 {top['p50_ms']:.2f} ms,"
        f" p99 {top['p99_ms']:.2f} ms, max {top['max_ms']:.2f} ms, lost {top['lost']}"
        " (bare aiohttp relay)"
    )
    for direction in (ceiling.traffic.to_agent, ceiling.traffic.to_customer):
        print(f"    {direction.label:17s}: {describe(direction)}")
    print(f"  ratio        : {ratio:.3f}  (ceiling p99 / project p99)")
    stalls = [run.traffic.client_stall * 1e3 for run in (project, ceiling)]
    print(
        f"  client loop  : longest stall {stalls[0]:.1f} ms (project), {stalls[1]:.1f} ms (ceiling)"
    )

    figures: dict[str, Any] = {
        **mine,
        "customers": talking,
        "failed_starts": failed,
        "agents": agents,
        "duration_s": duration,
        "ramp_s": round(project.ramp_seconds, 3),
    }
    for key, direction in (
        ("to_agent", project.traffic.to_agent),
        ("to_customer", project.traffic.to_customer),
    ):
        figures[f"{key}_sent"] = direction.sent
        figures[f"{key}_p50_ms"] = ms(direction.latencies, 0.5)
        figures[f"{key}_p99_ms"] = ms(direction.latencies, 0.99)
        figures[f"{key}_lost"] = direction.lost
    figures["errors"] = sum(trouble.values())
    figures["client_max_stall_ms"] = round(max(stalls), 3)
    figures["ceiling_messages"] = top["messages"]
    figures["ceiling_p50_ms"] = top["p50_ms"]
    figures["ceiling_p99_ms"] = top["p99_ms"]
    figures["ceiling_lost"] = top["lost"]
    figures["ratio"] = round(ratio, 4)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--customers", type=int, default=DEFAULT_CUSTOMERS, help="chatting customers"
    )
    parser.add_argument("--agents", type=int, default=DEFAULT_AGENTS, help="agents online")
    parser.add_argument(
        "--duration", type=float, help=f"seconds of conversation (default {DEFAULT_DURATION:g})"
    )
    parser.add_argument("--quick", action="store_true", help=f"a short run of {QUICK_DURATION:g} s")
    parser.add_argument("--seed", type=int, default=1, help="seed of the message pattern")
    # The ceiling's relay runs this file again in its own process.
    parser.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.relay:
        asyncio.run(relay_main())
        return 0
    duration = (
        args.duration
        if args.duration is not None
        else QUICK_DURATION
        if args.quick
        else DEFAULT_DURATION
    )
    if args.customers < 1 or args.agents < 1 or duration <= 0:
        parser.error("--customers, --agents and --duration must be positive")
    if args.customers > args.agents * CHAT_CAPACITY:
        parser.error(f"{args.agents} agents take at most {args.agents * CHAT_CAPACITY} chats")
    try:
        figures = asyncio.run(bench(args.customers, args.agents, duration, args.seed))
    except RunFailed as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 1 if figures["lost"] or figures["failed_starts"] or figures["ceiling_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
