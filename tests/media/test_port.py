"""RtpPort and PortAllocator on real UDP sockets over loopback."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from callcenter.media.dtmf import DtmfSender
from callcenter.media.g711 import pcm_to_ulaw
from callcenter.media.port import (
    PortAllocator,
    PortsExhausted,
    RtpPort,
    dtmf_tone,
)
from callcenter.media.rtp import RtpPacket, RtpSender, parse_packet
from callcenter.sip.sdp import PCMA, PCMU, TELEPHONE_EVENT, Codec, Direction

HOST = "127.0.0.1"
OpenPort = Callable[..., Awaitable[RtpPort]]


class RawPeer(asyncio.DatagramProtocol):
    """A bare UDP socket: sends whatever it is given and keeps what arrives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.append(data)

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, port: RtpPort) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port.number))


@pytest.fixture
def allocator() -> PortAllocator:
    return PortAllocator()


@pytest.fixture
async def open_port(allocator: PortAllocator) -> AsyncIterator[OpenPort]:
    opened: list[RtpPort] = []

    async def open_port(codec: Codec = PCMU, **options: Any) -> RtpPort:
        port = await RtpPort.open(HOST, allocator, codec, **options)
        opened.append(port)
        return port

    yield open_port
    for port in opened:
        port.close()
    for port in opened:
        await port.wait_closed()


@pytest.fixture
async def raw_peer() -> AsyncIterator[Callable[[], Awaitable[RawPeer]]]:
    peers: list[RawPeer] = []

    async def make() -> RawPeer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(RawPeer, local_addr=(HOST, 0))
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        assert peer.transport is not None
        peer.transport.close()
    await asyncio.sleep(0)  # let the transports finish closing


async def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` every 5 ms until it holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    assert condition(), "timed out waiting"


def connect(a: RtpPort, b: RtpPort) -> None:
    """Point two ports at each other, as two SDPs would."""
    a.set_remote((HOST, b.number))
    b.set_remote((HOST, a.number))


def test_allocator_hands_out_even_ports_and_takes_them_back() -> None:
    allocator = PortAllocator(30001, 30010)  # 30010 has no RTCP port beside it
    ports = {allocator.allocate() for _ in range(4)}
    assert ports == {30002, 30004, 30006, 30008}
    with pytest.raises(PortsExhausted):
        allocator.allocate()
    allocator.release(30004)
    allocator.release(30004)
    assert allocator.available == 1
    assert allocator.allocate() == 30004
    with pytest.raises(ValueError):
        PortAllocator(30000, 30000)


async def test_codec_and_ptime_are_checked(open_port: OpenPort) -> None:
    with pytest.raises(ValueError, match=r"G\.711"):
        await open_port(Codec("G729", 8000, 18))
    with pytest.raises(ValueError, match="ptime"):
        await open_port(PCMU, ptime=25)


async def test_two_ports_exchange_audio(open_port: OpenPort) -> None:
    a, b = await open_port(PCMU), await open_port(PCMU)
    connect(a, b)
    at_b: list[RtpPacket] = []
    at_a: list[bytes] = []
    b.on_audio = lambda payload, packet: at_b.append(packet)
    a.on_audio = lambda payload, packet: at_a.append(payload)
    frames = [bytes([n]) * 160 for n in range(5)]
    for frame in frames:
        a.send_audio(frame)
    await wait_until(lambda: len(at_b) == 5)
    assert [p.payload for p in at_b] == frames
    assert [p.marker for p in at_b] == [True, False, False, False, False]
    assert all(p.ssrc == a.sender.ssrc and p.payload_type == 0 for p in at_b)
    assert [(p.sequence - at_b[0].sequence) % 65536 for p in at_b] == [0, 1, 2, 3, 4]
    assert [(p.timestamp - at_b[0].timestamp) % 2**32 for p in at_b] == [0, 160, 320, 480, 640]
    assert b.stats.received == 4  # the first packet is the source's probation (RFC 3550 A.1)
    b.send_audio(b"\x55" * 160)
    await wait_until(lambda: len(at_a) == 1)
    assert at_a == [b"\x55" * 160]
    assert a.last_received >= b.last_received - 1


async def test_latches_to_where_packets_come_from(
    open_port: OpenPort, raw_peer: Callable[[], Awaitable[RawPeer]]
) -> None:
    server = await open_port(PCMU, relatch_after=0.2)
    sdp_address = await raw_peer()
    phone = await open_port(PCMU)
    server.set_remote(sdp_address.address)
    phone.set_remote((HOST, server.number))
    got: list[bytes] = []
    phone.on_audio = lambda payload, packet: got.append(payload)

    # Before anything arrives, audio goes where the SDP said.
    server.send_audio(b"\x01" * 160)
    await wait_until(lambda: len(sdp_address.received) == 1)
    assert not server.latched

    # The phone is behind NAT: its packets come from elsewhere, and we answer there.
    phone.send_audio(b"\x02" * 160)
    await wait_until(lambda: server.latched)
    assert server.remote == (HOST, phone.number)
    server.send_audio(b"\x03" * 160)
    await wait_until(lambda: got == [b"\x03" * 160])

    # Another source with another SSRC is refused while the phone is active ...
    intruder = await raw_peer()
    stranger = RtpSender(0)
    intruder.send(stranger.frame(b"\x04" * 160, 160).to_bytes(), server)
    await wait_until(lambda: server.foreign_packets == 1)
    assert server.remote == (HOST, phone.number)

    # ... but the phone's own stream from a new address is a NAT rebinding.
    rebound = await raw_peer()
    same_stream = RtpSender(0, ssrc=phone.sender.ssrc)
    rebound.send(same_stream.frame(b"\x05" * 160, 160).to_bytes(), server)
    await wait_until(lambda: server.remote == rebound.address)

    # And once the latched source has been silent long enough, anyone may take over.
    await asyncio.sleep(0.25)
    intruder.send(stranger.frame(b"\x06" * 160, 160).to_bytes(), server)
    await wait_until(lambda: server.remote == intruder.address)
    assert server.relatches == 2


async def test_bad_foreign_and_repeated_packets_are_dropped(
    open_port: OpenPort, raw_peer: Callable[[], Awaitable[RawPeer]]
) -> None:
    port = await open_port(PCMU, max_packet_size=400)
    got: list[int] = []
    port.on_audio = lambda payload, packet: got.append(packet.sequence)
    peer = await raw_peer()
    sender = RtpSender(0, sequence=100)
    packets = [sender.frame(b"\xff" * 160, 160) for _ in range(4)]
    for packet in packets[:3]:
        peer.send(packet.to_bytes(), port)
    peer.send(packets[2].to_bytes(), port)  # an exact repeat
    peer.send(b"\x80\x00", port)  # too short
    peer.send(b"\x00" * 20, port)  # RTP version 0
    peer.send(dataclasses.replace(packets[3], payload=bytes(500)).to_bytes(), port)
    peer.send(dataclasses.replace(packets[3], payload_type=18).to_bytes(), port)  # G.729
    peer.send(packets[3].to_bytes(), port)
    await wait_until(lambda: port.packets_received == 9)
    assert got == [100, 101, 102, 103]
    assert (port.bad_packets, port.unknown_payload, port.duplicates) == (3, 1, 1)


async def test_rfc4733_digits_are_sent_on_time_and_reported_once(open_port: OpenPort) -> None:
    a = await open_port(PCMU, telephone_event=TELEPHONE_EVENT)
    b = await open_port(PCMU, telephone_event=TELEPHONE_EVENT)
    connect(a, b)
    loop = asyncio.get_running_loop()
    digits: list[str] = []
    arrivals: list[float] = []
    b.on_digit = digits.append
    b.on_event = lambda packet: arrivals.append(loop.time())
    first, second = a.send_digit("7"), a.send_digit("#")
    await asyncio.wait_for(second, 2)
    assert first.done()
    await wait_until(lambda: len(digits) == 2)
    await asyncio.sleep(0.1)
    assert digits == ["7", "#"]
    # 100 ms key presses: five updates 20 ms apart, the last sent three times.
    assert len(arrivals) == 14
    assert arrivals[6] - arrivals[0] == pytest.approx(0.120, abs=0.015)


async def test_repeated_event_packets_give_one_digit(
    open_port: OpenPort, raw_peer: Callable[[], Awaitable[RawPeer]]
) -> None:
    port = await open_port(
        PCMA, telephone_event=dataclasses.replace(TELEPHONE_EVENT, payload_type=96)
    )
    digits: list[str] = []
    port.on_digit = digits.append
    peer = await raw_peer()
    packets = DtmfSender(RtpSender(8), payload_type=96).packets("4")
    for _ in range(2):  # the whole key press twice, as a looping capture would send it
        for packet in packets:
            peer.send(packet.to_bytes(), port)
    await wait_until(lambda: port.packets_received == 2 * len(packets))
    await asyncio.sleep(0.05)
    assert digits == ["4"]


async def test_in_band_digits_without_telephone_event(open_port: OpenPort) -> None:
    a, b = await open_port(PCMA), await open_port(PCMA)
    connect(a, b)
    digits: list[str] = []
    b.on_digit = digits.append
    for digit in "59":
        await asyncio.wait_for(a.send_digit(digit), 2)
    await wait_until(lambda: len(digits) == 2)
    assert digits == ["5", "9"]


def test_dtmf_tone_is_two_tones_at_the_given_level() -> None:
    pcm = dtmf_tone("1", 100)
    assert len(pcm) == 1600
    assert pcm_to_ulaw(pcm)  # whole 16-bit samples
    with pytest.raises(ValueError):
        dtmf_tone("x", 100)


async def test_write_audio_cuts_frames_to_the_negotiated_ptime(open_port: OpenPort) -> None:
    a, b = await open_port(PCMU, ptime=30), await open_port(PCMU)
    connect(a, b)
    sizes: list[int] = []
    b.on_audio = lambda payload, packet: sizes.append(len(payload))
    for _ in range(4):
        a.write_audio(b"\x10" * 160)
    await wait_until(lambda: len(sizes) == 2)
    a.flush_audio()
    await wait_until(lambda: len(sizes) == 3)
    assert sizes == [240, 240, 160]


async def test_direction_that_does_not_send_sends_nothing(
    open_port: OpenPort, raw_peer: Callable[[], Awaitable[RawPeer]]
) -> None:
    port = await open_port(PCMU)
    peer = await raw_peer()
    port.set_remote(peer.address)
    port.direction = Direction.RECVONLY
    port.send_audio(b"\xff" * 160)
    port.direction = Direction.SENDRECV
    port.send_audio(b"\x7f" * 160)
    await wait_until(lambda: len(peer.received) == 1)
    assert parse_packet(peer.received[0]).payload == b"\x7f" * 160


async def test_close_gives_the_port_back(allocator: PortAllocator) -> None:
    before = allocator.available
    port = await RtpPort.open(HOST, allocator, PCMU)
    assert allocator.available == before - 1
    port.close()
    port.send_audio(b"\xff" * 160)  # quietly dropped
    await port.wait_closed()
    assert port.closed
    assert allocator.available == before
