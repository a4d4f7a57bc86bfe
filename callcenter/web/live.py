"""The live websockets: agent console, supervisor wallboard, customer chat.

The protocols are documented message by message in ``docs/protocols.md``.
Every message is validated against its schema and checked against the
caller's role and contacts; a bad one is answered with an ``error`` and
changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from callcenter.acd.lifecycle import IllegalTransition
from callcenter.acd.router import UnknownContact, UnknownQueue
from callcenter.chat.identity import BadIdentityToken, verify
from callcenter.credentials import new_token, same
from callcenter.cti.center import Contact, ContactCenter, ContactError
from callcenter.cti.feed import Replay
from callcenter.cti.screen_pop import Identity, screen_pop
from callcenter.store.models import TICKET_CATEGORIES, TICKET_PRIORITIES, DispositionCode
from callcenter.store.recorder import is_transient
from callcenter.voice.calls import CallManager
from callcenter.voice.monitor import MODES, Monitor
from callcenter.web.api import ROLE_RANK, SERVICES
from callcenter.web.auth import Principal, authenticate
from callcenter.web.errors import ApiError
from callcenter.web.schema import Int, Obj, Str, ValidationError, obj
from callcenter.web.throttle import RateLimiter

CENTER: web.AppKey[ContactCenter] = web.AppKey("center")
CHAT_LIMITS: web.AppKey[tuple[RateLimiter, RateLimiter]] = web.AppKey("chat_limits")

#: Largest websocket message accepted (a security limit).
WS_MAX_MESSAGE = 64 * 1024
#: Messages a slow console may have queued before it is dropped (it resyncs).
OUTBOX_LIMIT = 2000
#: Time allowed for the first message.
HELLO_TIMEOUT = 15.0

CONTACT = Str(max_length=36, min_length=36)
EPOCH = Str(max_length=64)
HELLO = obj(csrf_token=Str(max_length=200), epoch=EPOCH, seq=Int(minimum=0), ref=Str(max_length=64))


def _text(settings_chars: int) -> Str:
    return Str(max_length=settings_chars, min_length=1, strip=False)


class WsOutbox:
    """A console's outgoing messages: pushed without waiting, sent in order by one task."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.socket = socket
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._overflowed = False
        self._task = asyncio.create_task(self._send())

    def push(self, message: dict[str, Any]) -> None:
        if self._overflowed:
            return
        if self._queue.qsize() >= OUTBOX_LIMIT:
            # Too slow to keep up: close; the console reconnects and resyncs.
            self._overflowed = True
            self._queue.put_nowait(None)
            return
        self._queue.put_nowait(message)

    async def _send(self) -> None:
        while True:
            message = await self._queue.get()
            if message is None or self.socket.closed:
                if self._overflowed:
                    await self.socket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
                else:
                    await self.socket.close()
                return
            try:
                await self.socket.send_str(json.dumps(message, ensure_ascii=False, default=str))
            except ConnectionError:
                return

    async def close(self) -> None:
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(self._task, 5)
        except (TimeoutError, ConnectionError):
            self._task.cancel()


def _error(outbox: WsOutbox, code: str, message: str, ref: Any = None) -> None:
    reply: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        reply["ref"] = ref
    outbox.push(reply)


def _origin_ok(request: web.Request, allowed: list[str]) -> bool:
    """Whether the page that opened the websocket is ours (or one allowed)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    public = request.app[SERVICES].settings.http.public_url
    trusted = {a.rstrip("/") for a in [*allowed, public] if a}
    return urlsplit(origin).netloc == request.host or origin.rstrip("/") in trusted


async def _messages(socket: web.WebSocketResponse, outbox: WsOutbox) -> Any:
    """The JSON objects a socket sends; bad frames are answered and skipped."""
    async for message in socket:
        if message.type != WSMsgType.TEXT:
            _error(outbox, "bad_frame", "send JSON text messages")
            continue
        try:
            data = json.loads(message.data)
        except ValueError:
            _error(outbox, "malformed_json", "not valid JSON")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            _error(outbox, "invalid_message", "a message is a JSON object with a type")
            continue
        yield data


async def _first(socket: web.WebSocketResponse) -> dict[str, Any] | None:
    try:
        message = await socket.receive(timeout=HELLO_TIMEOUT)
    except TimeoutError:
        return None
    if message.type != WSMsgType.TEXT:
        return None
    try:
        data = json.loads(message.data)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _check(schema: Obj, data: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in data.items() if k != "type"}
    checked: dict[str, Any] = schema.check(body, "message")
    return checked


def _roles(principal: Principal) -> frozenset[str]:
    ranks = [r for r, n in ROLE_RANK.items() if n <= ROLE_RANK[principal.role]]
    return frozenset(ranks)


async def _greet(
    center: ContactCenter,
    outbox: WsOutbox,
    principal: Principal,
    hello: dict[str, Any],
    snapshot: Any,
) -> None:
    """Welcome, then replay or resync: no await between reading the feed and attaching."""
    user = str(principal.user_id)
    roles = _roles(principal)
    outbox.push(
        {
            "type": "welcome",
            "user": principal.username,
            "epoch": center.feed.epoch,
            "seq": center.feed.seq,
        }
    )
    caught = center.catch_up(user, roles, hello.get("epoch"), hello.get("seq"))
    if isinstance(caught, Replay):
        outbox.push({"type": "replay", "count": len(caught.events)})
        for event in caught.events:
            outbox.push(event.wire(center.feed.epoch))
    else:
        outbox.push({"type": "resync", "reason": caught.reason})
        outbox.push(
            {"type": "snapshot", "epoch": center.feed.epoch, "seq": center.feed.seq, **snapshot()}
        )
    center.attach(outbox, user, roles)


async def _open_console(
    request: web.Request, least_role: str
) -> tuple[web.WebSocketResponse, WsOutbox, Principal, dict[str, Any]] | web.StreamResponse:
    services = request.app[SERVICES]
    principal = await authenticate(request, services, "GET")
    if ROLE_RANK[principal.role] < ROLE_RANK[least_role]:
        raise ApiError(403, "forbidden", f"this needs the {least_role} role or higher")
    if principal.via == "session" and not _origin_ok(request, []):
        # A cookie rides along with any page's websocket: only our own pages may use it.
        raise ApiError(403, "bad_origin", "the console must be opened from this server")
    socket = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE, heartbeat=30)
    await socket.prepare(request)
    outbox = WsOutbox(socket)
    hello = await _first(socket)
    try:
        checked = _check(HELLO, hello or {}) if hello and hello.get("type") == "hello" else None
    except ValidationError:
        checked = None
    if checked is None:
        _error(outbox, "hello_expected", "the first message must be a valid hello")
        await outbox.close()
        await socket.close(code=WSCloseCode.POLICY_VIOLATION)
        return socket
    if principal.via == "session" and not same(checked.get("csrf_token", ""), principal.csrf_token):
        _error(outbox, "csrf", "missing or wrong csrf_token")
        await outbox.close()
        await socket.close(code=WSCloseCode.POLICY_VIOLATION)
        return socket
    services.sockets.add(principal.user_id, socket)
    return socket, outbox, principal, checked


async def _serve(
    socket: web.WebSocketResponse,
    outbox: WsOutbox,
    schemas: dict[str, Obj],
    act: Callable[[str, dict[str, Any]], Awaitable[None]],
) -> None:
    """A console's message loop: check each message, act on it, answer ``ok`` or ``error``."""
    async for data in _messages(socket, outbox):
        kind, ref = data["type"], data.get("ref")
        schema = schemas.get(kind)
        if schema is None:
            _error(outbox, "unknown_type", f"unknown message type {kind[:40]!r}", ref)
            continue
        try:
            body = _check(schema, data)
            if kind == "ping":
                outbox.push({"type": "pong", "ref": ref})
                continue
            await act(kind, body)
            outbox.push({"type": "ok", "ref": ref})
        except ValidationError as exc:
            _error(outbox, "invalid_field", f"{exc.path}: {exc.message}", ref)
        except ContactError as exc:
            _error(outbox, exc.code, str(exc), ref)
        except (IllegalTransition, UnknownContact, UnknownQueue) as exc:
            _error(outbox, "illegal_transition", str(exc), ref)


# -- agent console ----------------------------------------------------------------

WRAPUP_TICKET = obj(
    subject=Str(max_length=300, min_length=1),
    category=Str(choices=TICKET_CATEGORIES),
    priority=Str(choices=TICKET_PRIORITIES),
    status=Str(choices=("new", "open", "pending", "resolved")),
)


#: Call controls an agent's console may send (docs/protocols.md).
CALL_ACTIONS = (
    "hangup",
    "hold",
    "resume",
    "mute",
    "unmute",
    "dtmf",
    "transfer",
    "consult",
    "complete",
    "conference",
    "cancel_consult",
)


def _agent_schemas(chars: int) -> dict[str, Obj]:
    ref = Str(max_length=64)
    return {
        "presence": obj(
            ("presence",),
            presence=Str(choices=("available", "away", "offline")),
            reason=Str(max_length=64),
            ref=ref,
        ),
        "accept": obj(("contact_id",), contact_id=CONTACT, ref=ref),
        "reject": obj(("contact_id",), contact_id=CONTACT, ref=ref),
        "message": obj(("contact_id", "text"), contact_id=CONTACT, text=_text(chars), ref=ref),
        "typing": obj(("contact_id",), contact_id=CONTACT, ref=ref),
        "end": obj(("contact_id",), contact_id=CONTACT, ref=ref),
        "call": obj(
            ("contact_id", "action"),
            contact_id=CONTACT,
            action=Str(choices=CALL_ACTIONS),
            digits=Str(max_length=32, min_length=1, pattern=r"[0-9*#A-Da-d]+"),
            queue=Str(max_length=64, min_length=1),
            agent=Str(max_length=20, min_length=1, pattern=r"[0-9]+"),
            number=Str(max_length=40, min_length=1),
            ref=ref,
        ),
        "wrapup": obj(
            ("contact_id", "disposition"),
            contact_id=CONTACT,
            disposition=Str(max_length=32, min_length=1),
            notes=Str(max_length=20_000, strip=False),
            ticket=WRAPUP_TICKET,
            ref=ref,
        ),
        "viewing": obj(("ticket_id",), ticket_id=Str(max_length=36), ref=ref),
        "ping": obj(ref=ref),
    }


async def _valid_disposition(request: web.Request, code: str) -> bool:
    async with request.app[SERVICES].sessions() as db:
        row = await db.get(DispositionCode, code)
    return row is not None and row.active


async def agent_socket(request: web.Request) -> web.StreamResponse:
    """``GET /ws/agent``: the agent console (docs/protocols.md)."""
    opened = await _open_console(request, "agent")
    if isinstance(opened, web.StreamResponse):
        return opened
    socket, outbox, principal, hello = opened
    services, center = request.app[SERVICES], request.app[CENTER]
    agent = str(principal.user_id)
    schemas = _agent_schemas(services.settings.chat.max_message_chars)
    try:
        if not center.is_joined(agent):
            await center.join_agent(principal.user_id)
        await _greet(center, outbox, principal, hello, lambda: center.agent_snapshot(agent))

        async def act(kind: str, body: dict[str, Any]) -> None:
            if kind == "presence":
                await center.set_presence(agent, body["presence"], body.get("reason", ""))
            elif kind == "accept":
                await center.accept(agent, body["contact_id"])
            elif kind == "reject":
                await center.reject(agent, body["contact_id"])
            elif kind == "message":
                await center.agent_message(agent, body["contact_id"], body["text"])
            elif kind == "typing":
                center.typing(body["contact_id"], "agent", agent)
            elif kind == "end":
                await center.end_by_agent(agent, body["contact_id"])
            elif kind == "call":
                await center.call_control(agent, body["contact_id"], body["action"], body)
            elif kind == "viewing":
                center.view_ticket(outbox, agent, principal.username, body["ticket_id"])
            elif kind == "wrapup":
                if not await _valid_disposition(request, body["disposition"]):
                    raise ContactError("invalid_disposition", "unknown disposition code")
                await center.wrap_up(agent, body["contact_id"], body)

        await _serve(socket, outbox, schemas, act)
    finally:
        center.detach(outbox, agent)
        services.sockets.remove(principal.user_id, socket)
        await outbox.close()
    return socket


# -- supervisor wallboard -------------------------------------------------------------

SUPERVISOR_SCHEMAS = {
    "agent_presence": obj(
        ("agent_id", "presence"),
        agent_id=Str(max_length=12),
        presence=Str(choices=("available", "away", "offline")),
        reason=Str(max_length=64),
        ref=Str(max_length=64),
    ),
    "move": obj(
        ("contact_id", "queue"),
        contact_id=CONTACT,
        queue=Str(max_length=64),
        ref=Str(max_length=64),
    ),
    "monitor": obj(
        ("contact_id", "mode"),
        contact_id=CONTACT,
        mode=Str(choices=tuple(MODES)),
        ref=Str(max_length=64),
    ),
    "monitor_stop": obj(("contact_id",), contact_id=CONTACT, ref=Str(max_length=64)),
    "ping": obj(ref=Str(max_length=64)),
}


def _monitor(center: ContactCenter) -> Monitor | None:
    """Listening in on calls: there when telephony is on."""
    calls = center.voice_calls
    return calls.monitor if isinstance(calls, CallManager) else None


def _monitoring(monitor: Monitor | None, center: ContactCenter, contact_id: str) -> Monitor:
    if monitor is not None:
        return monitor
    if contact_id in center.contacts:
        raise ContactError("not_a_call", "this contact is not a call")
    raise ContactError("unknown_contact", "no such contact")


async def supervisor_socket(request: web.Request) -> web.StreamResponse:
    """``GET /ws/supervisor``: live queues and agents (docs/protocols.md)."""
    opened = await _open_console(request, "supervisor")
    if isinstance(opened, web.StreamResponse):
        return opened
    socket, outbox, principal, hello = opened
    services, center = request.app[SERVICES], request.app[CENTER]
    user = str(principal.user_id)
    monitor = _monitor(center)
    try:
        await _greet(center, outbox, principal, hello, center.supervisor_snapshot)
        if monitor is not None:
            monitor.watch(principal.user_id, outbox)

        async def act(kind: str, body: dict[str, Any]) -> None:
            detail: dict[str, Any] | None = None
            if kind == "agent_presence":
                if not center.is_joined(body["agent_id"]):
                    # Only agents who have opened a console are routed and shown.
                    raise ContactError("unknown_agent", "no such agent on the wallboard")
                await center.set_presence(
                    body["agent_id"], body["presence"], body.get("reason", "supervisor")
                )
            elif kind == "move":
                await center.move(body["contact_id"], body["queue"])
            elif kind == "monitor":
                listening = _monitoring(monitor, center, body["contact_id"])
                rung = await listening.start(body["contact_id"], principal.user_id, body["mode"])
                detail = {"mode": body["mode"], "started": rung}
            elif kind == "monitor_stop":
                _monitoring(monitor, center, body["contact_id"]).stop(
                    body["contact_id"], principal.user_id
                )
            target = body.get("agent_id") or body.get("contact_id", "")
            await services.audit(
                principal.user_id,
                principal.username,
                f"live.{kind}",
                target,
                request.remote or "",
                detail,
            )

        await _serve(socket, outbox, SUPERVISOR_SCHEMAS, act)
    finally:
        if monitor is not None:
            monitor.unwatch(principal.user_id, outbox)
        center.detach(outbox, user)
        services.sockets.remove(principal.user_id, socket)
        await outbox.close()
    return socket


# -- customer chat ---------------------------------------------------------------------


def _chat_schemas(chars: int) -> dict[str, Obj]:
    return {
        "start": obj(
            ("name", "message"),
            name=Str(max_length=100, min_length=1),
            message=_text(chars),
            email=Str(max_length=254),
            phone=Str(max_length=40),
            queue=Str(max_length=64),
            identity_token=Str(max_length=2048),
            language=Str(choices=("en", "zh-CN")),
        ),
        "resume": obj(
            ("contact_id", "resume_token"), contact_id=CONTACT, resume_token=Str(max_length=100)
        ),
        "message": obj(("text",), text=_text(chars)),
        "typing": obj(),
        "end": obj(),
    }


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _start_chat(
    request: web.Request, outbox: WsOutbox, body: dict[str, Any]
) -> Contact | None:
    services, center = request.app[SERVICES], request.app[CENTER]
    settings = services.settings
    verified = False
    identity = Identity(phone=body.get("phone"), email=body.get("email"), name=body["name"])
    if "identity_token" in body:
        try:
            vouched = verify(settings.chat.identity_secret, body["identity_token"], time.time())
        except BadIdentityToken as exc:
            _error(outbox, "bad_identity_token", str(exc))
            return None
        identity = Identity(
            phone=vouched.phone,
            email=vouched.email,
            account=vouched.account,
            name=vouched.name or body["name"],
            verified=True,
        )
        verified = True
    queue = body.get("queue") or settings.chat.default_queue
    if queue not in center.queues:
        _error(outbox, "unknown_queue", "no such queue")
        return None
    async with services.sessions() as db:
        pop = await screen_pop(
            db,
            identity,
            settings.site.default_region,
            {"name": body["name"], "language": body.get("language", "")},
        )
        await db.commit()
    customer = pop["customer"]
    token = new_token()
    contact = Contact(
        contact_id=str(uuid.uuid4()),
        channel="chat",
        queue=queue,
        pop=pop,
        remote_identity=body.get("email") or body.get("phone") or body["name"],
        arrived_at=center.clock(),
        customer_name=body["name"],
        customer_id=customer["id"] if customer else None,
        collected=pop["collected"],
        customer=outbox,
        resume_hash=_digest(token),
    )
    tier = customer["tier"] if customer and verified else None
    outbox.push(
        {
            "type": "queued",
            "contact_id": contact.contact_id,
            "resume_token": token,
            "verified": verified,
        }
    )
    await center.arrive(contact, tier, body["message"])
    return contact


async def chat_socket(request: web.Request) -> web.StreamResponse:
    """``GET /ws/chat``: the customer's side of a chat (docs/protocols.md)."""
    services, center = request.app[SERVICES], request.app[CENTER]
    settings = services.settings.chat
    if not _origin_ok(request, settings.allowed_origins):
        raise ApiError(403, "bad_origin", "chat is not allowed from this page")
    new_chats, messages = request.app[CHAT_LIMITS]
    address = request.remote or ""
    socket = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE, heartbeat=30)
    await socket.prepare(request)
    outbox = WsOutbox(socket)
    schemas = _chat_schemas(settings.max_message_chars)
    contact: Contact | None = None
    try:
        async for data in _messages(socket, outbox):
            kind = data["type"]
            schema = schemas.get(kind)
            if schema is None:
                _error(outbox, "unknown_type", "unknown message type")
                continue
            try:
                body = _check(schema, data)
            except ValidationError as exc:
                _error(outbox, "invalid_field", f"{exc.path}: {exc.message}")
                continue
            if contact is None:
                if kind == "start":
                    if not new_chats.allow(address, time.monotonic()):
                        _error(outbox, "too_many_chats", "too many new chats; try again later")
                        continue
                    try:
                        contact = await _start_chat(request, outbox, body)
                    except Exception as exc:
                        if not is_transient(exc):
                            raise
                        _error(outbox, "try_again", "the chat could not start; try again")
                elif kind == "resume":
                    contact = _resume(center, outbox, body)
                else:
                    _error(outbox, "no_chat", "start or resume a chat first")
                continue
            if contact.contact_id not in center.contacts:
                _error(outbox, "chat_ended", "this chat has ended")
                continue
            if kind == "message":
                if not messages.allow(address, time.monotonic()):
                    _error(outbox, "too_many_messages", "slow down")
                    continue
                await center.customer_message(contact.contact_id, body["text"])
            elif kind == "typing":
                center.typing(contact.contact_id, "customer")
            elif kind == "end":
                await center.leave(contact.contact_id)
                outbox.push({"type": "ended", "reason": "customer_ended"})
            else:
                _error(outbox, "chat_started", "this chat has already started")
    finally:
        if (
            contact is not None
            and contact.contact_id in center.contacts
            and contact.customer is outbox
        ):
            contact.customer = None
            grace = settings.resume_grace_seconds
            loop = asyncio.get_running_loop()
            contact_id = contact.contact_id
            contact.grace = loop.call_later(grace, lambda: center.spawn(center.leave(contact_id)))
        await outbox.close()
    return socket


def _resume(center: ContactCenter, outbox: WsOutbox, body: dict[str, Any]) -> Contact | None:
    contact = center.contacts.get(body["contact_id"])
    if contact is None or not same(contact.resume_hash, _digest(body["resume_token"])):
        _error(outbox, "cannot_resume", "no such chat, or it has ended")
        return None
    if contact.grace is not None:
        contact.grace.cancel()
        contact.grace = None
    contact.customer = outbox
    outbox.push(
        {
            "type": "resumed",
            "contact_id": contact.contact_id,
            "transcript": contact.transcript,
            # The agent may have joined while the customer was away.
            "agent_name": center.agent_name(contact.agent_id),
        }
    )
    return contact
