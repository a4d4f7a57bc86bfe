"""A supervisor listens in, whispers and barges on a live call, then leaves it.

The caller and the agent are real SIPp peers, each talking a steady tone of
its own; the supervisor's phone (registered by SIPp as extension 2001) is a
small SIP user agent here that answers, talks a third tone and keeps what it
hears. Who hears whom is measured by those tones: in what the supervisor's
phone receives, and in what the server sends out on the caller's and the
agent's legs.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import math
import re
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select

from callcenter.media import g711
from callcenter.media.port import RtpPort
from callcenter.media.rtp import RtpPacket
from callcenter.server import Server
from callcenter.store.models import AuditEntry
from tests.conftest import ApiClient, add_user
from tests.voice.sipp import Sipp, available_console, free_port, register_phone
from tests.web.test_chat_flow import Socket

FLOWS = Path(__file__).parent / "flows"
SIP = {"digest_algorithms": ["MD5", "SHA-256"], "trunks": ["127.0.0.1"]}
RATE = 8000
#: Each party's tone: whole periods in a second, so a looped second has no seam.
CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 500, 900, 1400
AMPLITUDE = 6000
#: A tone is heard when it carries this share of a stretch's power, and absent
#: under the second figure (three equal tones each carry about a third).
HEARD, SILENT = 0.15, 0.02
#: The agent's phone hangs up this long after answering.
AGENT_TALKS_MS = 20_000


def tone(hz: int, start: int, count: int) -> bytes:
    """``count`` samples of a sine at ``hz`` from sample ``start``, as 16-bit PCM."""
    step = 2 * math.pi * hz / RATE
    return array.array(
        "h", (round(AMPLITUDE * math.sin(step * n)) for n in range(start, start + count))
    ).tobytes()


def share(pcm: bytes, hz: int) -> float:
    """The share of the power of ``pcm`` that is a tone at ``hz`` (a single DFT bin)."""
    samples = array.array("h", pcm)
    if not samples:
        return 0.0
    step = 2 * math.pi * hz / RATE
    re_part = sum(x * math.cos(step * n) for n, x in enumerate(samples))
    im_part = sum(x * math.sin(step * n) for n, x in enumerate(samples))
    power = sum(x * x for x in samples) / len(samples)
    return (2 * (re_part**2 + im_part**2) / len(samples) ** 2) / power if power else 0.0


class Tap:
    """What the server sends out on one leg (bridged packets and mixed audio), decoded."""

    def __init__(self, port: RtpPort) -> None:
        self.pcm = bytearray()
        send_audio, send_packet = port.send_audio, port.send_packet

        def audio(payload: bytes, samples: int | None = None) -> None:
            self.pcm += port.decode(payload)
            send_audio(payload, samples)

        def packet(packet: RtpPacket, samples: int = 0) -> None:
            if packet.payload_type == port.payload_type:
                self.pcm += port.decode(packet.payload)
            send_packet(packet, samples)

        port.send_audio = audio  # type: ignore[method-assign]
        port.send_packet = packet  # type: ignore[method-assign]


class Media(asyncio.DatagramProtocol):
    """The supervisor phone's RTP: sends its tone every 20 ms, decodes what comes in."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.heard = bytearray()
        self.packets = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) > 12 and data[1] & 0x7F == 8:
            self.packets += 1
            self.heard += g711.alaw_to_pcm(data[12:])

    async def talk(self, remote: tuple[str, int]) -> None:
        ssrc = secrets.randbits(32)
        for n in itertools.count():
            assert self.transport is not None
            header = bytes((0x80, 8)) + (n % 65536).to_bytes(2, "big")
            header += (n * 160 % 2**32).to_bytes(4, "big") + ssrc.to_bytes(4, "big")
            payload = g711.pcm_to_alaw(tone(SUPERVISOR_HZ, n * 160, 160))
            self.transport.sendto(header + payload, remote)
            await asyncio.sleep(0.02)


def _parse(data: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    start, *lines = head.decode().split("\r\n")
    headers = [(n.strip().lower(), v.strip()) for n, v in (line.split(":", 1) for line in lines)]
    return start, headers, body


def _header(headers: list[tuple[str, str]], name: str) -> str:
    return next(v for n, v in headers if n == name)


class Phone(asyncio.DatagramProtocol):
    """The supervisor's phone: answers every INVITE at once, and hangs up when told to."""

    def __init__(self, sip_port: int, media: Media, media_port: int) -> None:
        self.sip_port = sip_port
        self.media = media
        self.media_port = media_port
        self.transport: asyncio.DatagramTransport | None = None
        self.rings = 0
        self.answered = asyncio.Event()
        self.hung_up = asyncio.Event()
        self.bye_answered = asyncio.Event()
        self.dialog: dict[str, Any] = {}
        self.talking: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        start, headers, body = _parse(data)
        if start.startswith("SIP/2.0"):
            if "BYE" in _header(headers, "cseq"):
                self.bye_answered.set()
            return
        method = start.split()[0]
        if method == "INVITE":
            self._answer(headers, body, addr)
        elif method == "BYE":
            self._reply(headers, addr, "200 OK")
            self._stop()
            self.hung_up.set()

    def _reply(
        self,
        headers: list[tuple[str, str]],
        addr: Any,
        status: str,
        extra: str = "",
        body: str = "",
    ) -> None:
        kept = [
            f"{n.title()}: {v}" for n, v in headers if n in ("via", "from", "to", "call-id", "cseq")
        ]
        lines = [f"SIP/2.0 {status}", *kept]
        if extra:
            lines.append(extra)
        lines.append(f"Content-Length: {len(body)}")
        assert self.transport is not None
        self.transport.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), addr)

    def _answer(self, headers: list[tuple[str, str]], offer: bytes, addr: Any) -> None:
        self.rings += 1
        text = offer.decode()
        assert "PCMA/8000" in text, text
        connection = re.search(r"c=IN IP4 (\S+)", text)
        media = re.search(r"m=audio (\d+)", text)
        assert connection and media
        tag = uuid.uuid4().hex[:10]
        headers = [(n, f"{v};tag={tag}" if n == "to" else v) for n, v in headers]
        contact = re.search(r"<([^>]+)>", _header(headers, "contact"))
        assert contact
        self.dialog = {
            "call_id": _header(headers, "call-id"),
            "local": _header(headers, "to"),
            "remote": _header(headers, "from"),
            "target": contact.group(1),
            "addr": addr,
        }
        sdp = (
            "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.media_port} RTP/AVP 8 101\r\n"
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
        extra = f"Contact: <sip:2001@127.0.0.1:{self.sip_port}>\r\nContent-Type: application/sdp"
        self._reply(headers, addr, "200 OK", extra, sdp)
        self.hung_up.clear()
        self.bye_answered.clear()
        remote = (connection.group(1), int(media.group(1)))
        self.talking = asyncio.get_running_loop().create_task(self.media.talk(remote))
        self.answered.set()

    def hang_up(self) -> None:
        """The supervisor puts the phone down: BYE within the dialog."""
        d = self.dialog
        bye = (
            f"BYE {d['target']} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"From: {d['local']}\r\nTo: {d['remote']}\r\nCall-ID: {d['call_id']}\r\n"
            "CSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        assert self.transport is not None
        self.transport.sendto(bye.encode(), d["addr"])
        self._stop()

    def _stop(self) -> None:
        if self.talking is not None:
            self.talking.cancel()
            self.talking = None
        self.answered.clear()


async def supervisor_phone(server: Server, folder: Path) -> tuple[Phone, list[Any]]:
    assert server.voice is not None
    loop = asyncio.get_running_loop()
    media_port = free_port() & ~1
    media_transport, media = await loop.create_datagram_endpoint(
        Media, local_addr=("127.0.0.1", media_port)
    )
    sip_port = free_port()
    sip_transport, phone = await loop.create_datagram_endpoint(
        lambda: Phone(sip_port, media, media_port), local_addr=("127.0.0.1", sip_port)
    )
    await register_phone(
        f"127.0.0.1:{server.voice.port}",
        sip_port,
        folder=folder,
        extension="2001",
        secret="sip-secret-2001",
    )
    return phone, [media_transport, sip_transport]


async def _window(phone: Phone, *taps: Tap, seconds: float = 1.0) -> None:
    """Start afresh once what was in flight before a change has gone, then listen a while."""
    await asyncio.sleep(0.3)
    phone.media.heard.clear()
    for tap in taps:
        tap.pcm.clear()
    await asyncio.sleep(seconds)


async def _offered(console: Socket, caller: Sipp) -> dict[str, Any]:
    """The offer of the call to the agent; if the caller gives up first, why."""
    assert caller.process is not None
    offer = asyncio.ensure_future(console.expect(lambda m: m["type"] == "offer", timeout=30))
    gone = asyncio.ensure_future(caller.process.wait())
    await asyncio.wait({offer, gone}, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if offer.done():
        return offer.result()
    offer.cancel()
    run = await caller.finish()
    raise AssertionError(f"the caller left before any offer: {run.errors or run.stderr}")


async def _audited(server: Server, action: str, count: int) -> list[AuditEntry]:
    assert server.services is not None
    for _ in range(50):
        async with server.services.sessions() as db:
            rows = list(
                (
                    await db.execute(
                        select(AuditEntry)
                        .where(AuditEntry.action == action)
                        .order_by(AuditEntry.id)
                    )
                ).scalars()
            )
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"{action}: {len(rows)} audit entries, expected {count}")


@dataclass
class Talk:
    """A caller (SIPp) talking to the agent, whose phone (SIPp) hangs up after a while."""

    contact_id: str
    caller: Sipp
    agent_phone: Sipp
    console: Socket


async def agent_takes_a_call(
    server: Server, new_client: Any, folder: Path, agent_talks_ms: int = AGENT_TALKS_MS
) -> Talk:
    """Register the agent's phone, make the agent available, and have a caller reach it."""
    assert server.voice is not None
    target = f"127.0.0.1:{server.voice.port}"
    for name, hz in (("caller_tone.al", CALLER_HZ), ("agent_tone.al", AGENT_HZ)):
        (folder / name).write_bytes(g711.pcm_to_alaw(tone(hz, 0, RATE)))
    uas_port = free_port()
    agent_phone = await Sipp(
        "agent_talks",
        "",
        *("-mi", "127.0.0.1", "-mp", str(free_port() & ~1), "-d", str(agent_talks_ms)),
        folder=folder,
        port=uas_port,
        timeout=60,
    ).start()
    await register_phone(target, uas_port, folder=folder)
    console = await available_console(new_client, "agent")
    caller = await Sipp(
        "caller_talks",
        target,
        *("-s", "100", "-mi", "127.0.0.1", "-mp", str(free_port() & ~1)),
        folder=folder,
        timeout=60,
    ).start()
    contact_id = (await _offered(console, caller))["contact_id"]
    await console.type("connected", contact_id=contact_id)
    return Talk(contact_id, caller, agent_phone, console)


@pytest.mark.settings(sip=SIP, voice={"numbers": {"100": "support"}, "flows_directory": str(FLOWS)})
async def test_a_supervisor_listens_whispers_barges_and_leaves_the_call(
    server: Server, client: ApiClient, new_client: Any, tmp_path: Path
) -> None:
    assert server.voice is not None and server.calls is not None
    await client.login("super")
    made = await client.post("/api/v1/queues", {"name": "support", "wrapup_seconds": 30})
    assert made.status == 201, made.body
    await add_user(server, "boss", "supervisor", sip_extension="2001", sip_secret="sip-secret-2001")
    phone, transports = await supervisor_phone(server, tmp_path)
    try:
        boss = new_client()
        await boss.login("boss")
        board = Socket(await boss.console("/ws/supervisor"))
        await board.type("welcome")
        other = Socket(await client.console("/ws/supervisor"))
        await other.type("welcome")
        talk = await agent_takes_a_call(server, new_client, tmp_path)
        contact_id = talk.contact_id
        call = server.calls.by_contact[contact_id]
        assert call.agent is not None and call.bridge is not None
        to_caller, to_agent = Tap(call.caller.port), Tap(call.agent.port)

        # Refusals: no such contact, and a supervisor without a registered phone.
        await board.send(type="monitor", contact_id=str(uuid.uuid4()), mode="listen", ref="u")
        assert (await board.type("error", ref="u"))["code"] == "unknown_contact"
        await other.send(type="monitor", contact_id=contact_id, mode="listen", ref="n")
        assert (await other.type("error", ref="n"))["code"] == "no_phone"
        await board.send(type="monitor", contact_id=contact_id, mode="eavesdrop", ref="i")
        assert (await board.type("error", ref="i"))["code"] == "invalid_field"

        # Listen: the supervisor's phone rings, answers and hears both sides; nobody hears it.
        await board.send(type="monitor", contact_id=contact_id, mode="listen", ref="l")
        await board.type("ok", ref="l")
        await board.type("monitor", contact_id=contact_id, state="ringing", mode="listen")
        await board.type("monitor", contact_id=contact_id, state="connected", mode="listen")
        assert phone.rings == 1 and phone.answered.is_set()
        assert call.bridge is None
        await _window(phone, to_caller, to_agent)
        assert phone.media.packets > 0
        assert share(phone.media.heard, CALLER_HZ) > HEARD
        assert share(phone.media.heard, AGENT_HZ) > HEARD
        assert share(to_agent.pcm, CALLER_HZ) > HEARD
        assert share(to_caller.pcm, AGENT_HZ) > HEARD
        assert share(to_agent.pcm, SUPERVISOR_HZ) < SILENT
        assert share(to_caller.pcm, SUPERVISOR_HZ) < SILENT

        # One supervisor at a time.
        await other.send(type="monitor", contact_id=contact_id, mode="barge", ref="o")
        assert (await other.type("error", ref="o"))["code"] == "monitored"

        # Whisper: the agent hears the supervisor, the caller does not.
        await board.send(type="monitor", contact_id=contact_id, mode="whisper", ref="w")
        await board.type("ok", ref="w")
        await board.type("monitor", contact_id=contact_id, state="connected", mode="whisper")
        await _window(phone, to_caller, to_agent)
        assert share(to_agent.pcm, SUPERVISOR_HZ) > HEARD
        assert share(to_agent.pcm, CALLER_HZ) > HEARD
        assert share(to_caller.pcm, SUPERVISOR_HZ) < SILENT
        assert share(to_caller.pcm, AGENT_HZ) > HEARD
        assert share(phone.media.heard, CALLER_HZ) > HEARD

        # Barge: everyone hears everyone.
        await board.send(type="monitor", contact_id=contact_id, mode="barge", ref="b")
        await board.type("ok", ref="b")
        await board.type("monitor", contact_id=contact_id, state="connected", mode="barge")
        await _window(phone, to_caller, to_agent)
        assert share(to_caller.pcm, SUPERVISOR_HZ) > HEARD
        assert share(to_agent.pcm, SUPERVISOR_HZ) > HEARD
        assert share(phone.media.heard, AGENT_HZ) > HEARD

        # Stop: the supervisor's phone is hung up and the two parties are bridged again.
        await board.send(type="monitor_stop", contact_id=contact_id, ref="s")
        await board.type("ok", ref="s")
        await board.type("monitor", contact_id=contact_id, state="ended", reason="stopped")
        await asyncio.wait_for(phone.hung_up.wait(), 5)
        bridge = call.bridge
        assert bridge is not None
        relayed = bridge.relayed_to(call.caller.port), bridge.relayed_to(call.agent.port)
        await _window(phone, to_caller, to_agent)
        assert bridge.relayed_to(call.caller.port) > relayed[0]
        assert bridge.relayed_to(call.agent.port) > relayed[1]
        assert share(to_caller.pcm, AGENT_HZ) > HEARD and share(to_agent.pcm, CALLER_HZ) > HEARD
        assert share(to_caller.pcm, SUPERVISOR_HZ) < SILENT
        assert share(to_agent.pcm, SUPERVISOR_HZ) < SILENT
        await board.send(type="monitor_stop", contact_id=contact_id, ref="s2")
        assert (await board.type("error", ref="s2"))["code"] == "not_monitoring"

        # The supervisor hangs up the phone: bridged again too.
        await board.send(type="monitor", contact_id=contact_id, mode="whisper", ref="l2")
        await board.type("ok", ref="l2")
        await board.type("monitor", contact_id=contact_id, state="connected", mode="whisper")
        assert phone.rings == 2 and call.bridge is None
        phone.hang_up()
        await asyncio.wait_for(phone.bye_answered.wait(), 5)
        await board.type("monitor", contact_id=contact_id, state="ended", reason="hung_up")
        assert call.bridge is not None
        await _window(phone, to_caller, to_agent)
        assert share(to_caller.pcm, AGENT_HZ) > HEARD and share(to_agent.pcm, CALLER_HZ) > HEARD

        # Listening as the call ends: the supervisor's phone is hung up with it.
        await board.send(type="monitor", contact_id=contact_id, mode="listen", ref="l3")
        await board.type("ok", ref="l3")
        await board.type("monitor", contact_id=contact_id, state="connected", mode="listen")
        ended = await board.expect(
            lambda m: m["type"] == "monitor" and m["state"] == "ended",
            timeout=AGENT_TALKS_MS / 1000 + 10,
        )
        assert ended["reason"] == "call_ended"
        await asyncio.wait_for(phone.hung_up.wait(), 5)
        assert contact_id not in server.calls.monitor.sessions

        answered = await talk.agent_phone.finish()
        assert answered.returncode == 0, answered.errors or answered.stderr
        called = await talk.caller.finish()
        assert called.returncode == 0, called.errors or called.stderr
        # In wrap-up the contact is still there, but no longer a call to listen to.
        await board.send(type="monitor", contact_id=contact_id, mode="listen", ref="w2")
        assert (await board.type("error", ref="w2"))["code"] == "not_connected"

        # Each start and change of mode is in the audit log, with the mode.
        rows = await _audited(server, "live.monitor", 5)
        assert [(r.target, r.detail["mode"], r.detail["started"]) for r in rows] == [
            (contact_id, "listen", True),
            (contact_id, "whisper", False),
            (contact_id, "barge", False),
            (contact_id, "whisper", True),
            (contact_id, "listen", True),
        ]
        assert all(r.actor == "boss" for r in rows)
        await _audited(server, "live.monitor_stop", 1)
    finally:
        if phone.talking is not None:
            phone.talking.cancel()
        for transport in transports:
            transport.close()
