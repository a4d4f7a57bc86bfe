"""RTP: recorded packets, malformed input, round trips, the sender's state, receiver statistics."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.media import g711
from callcenter.media.rtp import (
    HEADER_SIZE,
    RtpError,
    RtpExtension,
    RtpPacket,
    RtpReceiverStats,
    RtpSender,
    parse_packet,
)
from tests.conftest import missing_part

SIPP_DIR = Path("/usr/share/sip-tester")

# A u-law voice packet as a softphone sends it: PT 0, seq 0x1f40, ts 0xa000.
ULAW_PACKET = bytes.fromhex("80001f400000a000deadbeef") + bytes([0xFF]) * 160
# The first packet of a talkspurt through a mixer: marker, PT 8, two CSRCs,
# a one-word header extension (RFC 8285 one-byte form, 0xBEDE) and four
# octets of padding.
MIXED_PACKET = bytes.fromhex(
    "b288ffff"  # V=2 P=1 X=1 CC=2, M=1 PT=8, seq 65535
    "ffffff60"  # timestamp 2**32 - 160
    "01020304"  # SSRC
    "0000000a0000000b"  # CSRC 10, 11
    "bede0001"  # extension: profile 0xBEDE, one word
    "10ff0000"  # its data
    "d5d5d5d5d5d5d5d5"  # payload: eight A-law silences
    "00000004"  # padding, count 4
)


def test_a_voice_packet() -> None:
    packet = parse_packet(ULAW_PACKET)
    assert packet == RtpPacket(
        payload_type=0,
        sequence=0x1F40,
        timestamp=0xA000,
        ssrc=0xDEADBEEF,
        payload=bytes([0xFF]) * 160,
    )
    assert packet.to_bytes() == ULAW_PACKET


def test_a_packet_with_csrcs_extension_padding_and_marker() -> None:
    packet = parse_packet(MIXED_PACKET)
    assert packet.marker and packet.payload_type == 8
    assert (packet.sequence, packet.timestamp, packet.ssrc) == (65535, 2**32 - 160, 0x01020304)
    assert packet.csrcs == (10, 11)
    assert packet.extension == RtpExtension(0xBEDE, bytes.fromhex("10ff0000"))
    assert packet.payload == bytes([g711.ALAW_SILENCE]) * 8
    assert packet.to_bytes(padding=4) == MIXED_PACKET


def test_a_telephone_event_packet_as_recorded() -> None:
    # From a SIPp capture: marker, PT 101, event 1 at volume 10, duration 0.
    packet = parse_packet(bytes.fromhex("80e51f30000033e00e05384e010a0000"))
    assert packet.marker and packet.payload_type == 101
    assert (packet.sequence, packet.timestamp, packet.ssrc) == (0x1F30, 0x33E0, 0x0E05384E)
    assert packet.payload == bytes.fromhex("010a0000")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter than the RTP header"),
        (ULAW_PACKET[:11], "shorter than the RTP header"),
        (b"\x40" + ULAW_PACKET[1:], "version 1"),
        (b"\x00" + ULAW_PACKET[1:], "version 0"),
        (b"\xc0" + ULAW_PACKET[1:], "version 3"),
        (b"\xa0" + ULAW_PACKET[1:-1] + b"\x00", "padding count is zero"),
        (b"\xa0" + ULAW_PACKET[1:12] + b"\x0d", "runs into the header"),
        (b"\x81" + ULAW_PACKET[1:12], "CSRC list"),
        (b"\x8f" + ULAW_PACKET[1:12] + bytes(56), "CSRC list"),
        (b"\x90" + ULAW_PACKET[1:12] + b"\xbe\xde", "header extension"),
        (b"\x90" + ULAW_PACKET[1:12] + b"\xbe\xde\x00\x02" + bytes(4), "header extension"),
        (b"\xb0" + ULAW_PACKET[1:12] + b"\xbe\xde\x00\x01\x00\x00\x00\x04", "header extension"),
    ],
)
def test_malformed_packets_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(RtpError, match=why):
        parse_packet(data)


def test_the_size_limit_is_a_parameter() -> None:
    with pytest.raises(RtpError, match="exceeds"):
        parse_packet(ULAW_PACKET + bytes(2000))
    with pytest.raises(RtpError, match="exceeds"):
        parse_packet(ULAW_PACKET, max_size=100)
    assert parse_packet(ULAW_PACKET, max_size=len(ULAW_PACKET)).sequence == 0x1F40


def test_an_empty_payload_and_padding_only() -> None:
    header = ULAW_PACKET[:HEADER_SIZE]
    assert parse_packet(header).payload == b""
    assert parse_packet(b"\xa0" + header[1:] + b"\x00\x00\x03").payload == b""


def test_packets_out_of_range_cannot_be_built() -> None:
    for bad in (
        {"payload_type": 128},
        {"sequence": 65536},
        {"timestamp": -1},
        {"ssrc": 2**32},
        {"csrcs": tuple(range(16))},
    ):
        fields: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
        fields.update(bad)
        with pytest.raises(ValueError):
            RtpPacket(**fields)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RtpExtension(0x10000)
    with pytest.raises(ValueError):
        RtpExtension(1, b"abc")
    with pytest.raises(ValueError):
        RtpPacket(0, 0, 0, 0).to_bytes(padding=256)


@given(st.binary(max_size=200))
def test_random_bytes_parse_or_raise_rtp_error(data: bytes) -> None:
    try:
        packet = parse_packet(data)
    except RtpError:
        return
    assert len(packet.payload) <= len(data) - HEADER_SIZE


@given(st.binary(min_size=1, max_size=100))
def test_random_bytes_behind_a_valid_first_octet_parse_or_raise_rtp_error(data: bytes) -> None:
    for first in (0x80, 0x90, 0xA0, 0xB5):
        try:
            parse_packet(bytes([first]) + data)
        except RtpError:
            pass


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 65535),
    timestamp=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=300),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4]),
    ),
)


@given(packets, st.integers(0, 255))
def test_build_then_parse_gives_the_packet_back(packet: RtpPacket, padding: int) -> None:
    data = packet.to_bytes(padding=padding)
    parsed = parse_packet(data, max_size=len(data))
    assert parsed == packet
    assert parsed.to_bytes(padding=padding) == data


# -- sender ---------------------------------------------------------------------------------


def test_the_sender_starts_from_random_values() -> None:
    senders = [RtpSender(0) for _ in range(8)]
    for attribute in ("ssrc", "sequence", "timestamp"):
        values = {getattr(s, attribute) for s in senders}
        assert len(values) > 1, f"{attribute} is not random"
    assert all(0 <= s.ssrc < 2**32 and 0 <= s.sequence < 2**16 for s in senders)


def test_frames_move_the_clock_and_mark_talkspurts() -> None:
    sender = RtpSender(0, ssrc=7, sequence=65534, timestamp=2**32 - 160)
    first = sender.frame(b"a" * 160, 160)
    second = sender.frame(b"b" * 160, 160)
    assert (first.sequence, first.timestamp, first.marker) == (65534, 2**32 - 160, True)
    assert (second.sequence, second.timestamp, second.marker) == (65535, 0, False)
    sender.skip(800)  # a silence: nothing sent for 100 ms
    third = sender.frame(b"c" * 160, 160)
    assert (third.sequence, third.timestamp, third.marker) == (0, 960, True)
    assert all(p.ssrc == 7 and p.payload_type == 0 for p in (first, second, third))
    assert sender.frame(b"d", 160).marker is False


def test_emit_takes_a_sequence_number_but_leaves_the_clock() -> None:
    sender = RtpSender(0, ssrc=1, sequence=10, timestamp=1000)
    event = sender.emit(b"\x01\x0a\x00\xa0", timestamp=1000, marker=True, payload_type=101)
    assert (event.sequence, event.timestamp, event.marker) == (10, 1000, True)
    assert event.payload_type == 101
    assert (sender.sequence, sender.timestamp) == (11, 1000)
    with pytest.raises(ValueError):
        sender.skip(-1)


# -- receiver statistics --------------------------------------------------------------------


def stream(start: int, count: int, *, ssrc: int = 5, timestamp: int = 0) -> Iterator[RtpPacket]:
    for i in range(count):
        yield RtpPacket(0, (start + i) % 65536, (timestamp + 160 * i) % 2**32, ssrc)


def feed(stats: RtpReceiverStats, packets: list[RtpPacket], *, step: float = 0.02) -> list[bool]:
    return [stats.update(p, i * step) for i, p in enumerate(packets)]


def test_a_clean_stream_across_the_sequence_wrap() -> None:
    stats = RtpReceiverStats(8000)
    accepted = feed(stats, list(stream(65500, 100)))
    # RFC 3550 A.1: the first packet only starts the probation.
    assert accepted == [False] + [True] * 99
    report = stats.report()
    assert (report.received, report.expected, report.lost, report.fraction_lost) == (99, 99, 0, 0)
    assert report.extended_highest_sequence == 65536 + (65500 + 99) % 65536
    assert report.jitter == 0.0
    assert (report.duplicates, report.reordered) == (0, 0)


def test_loss_duplicates_and_reordering() -> None:
    stats = RtpReceiverStats(8000)
    packets = list(stream(100, 100))
    lost = {packets[i].sequence for i in (10, 20, 30, 40, 50, 60, 70, 80, 90, 99)}
    arriving = [p for p in packets if p.sequence not in lost]
    arriving.insert(50, arriving[48])  # a duplicate
    arriving[60], arriving[61] = arriving[61], arriving[60]  # two swapped
    results = feed(stats, arriving)
    assert results.count(False) == 2  # the probation packet and the duplicate
    report = stats.report()
    assert report.duplicates == 1 and report.reordered == 1
    # Highest seen is 198 (199 was lost): 98 expected after the first, 89 received.
    assert (report.expected, report.received, report.lost) == (98, 89, 9)
    assert report.fraction_lost == (9 << 8) // 98
    # The next interval starts from here (A.3): it expects 199, which was
    # lost, and 200-209, which all come.
    feed(stats, list(stream(200, 10)))
    assert stats.report().fraction_lost == (1 << 8) // 11


def test_a_jump_is_believed_only_when_the_next_packet_follows_it() -> None:
    stats = RtpReceiverStats(8000)
    feed(stats, list(stream(1000, 10)))
    assert stats.update(RtpPacket(0, 40000, 0, 5), 1.0) is False  # one stray packet
    assert stats.update(RtpPacket(0, 1010, 1600, 5), 1.02) is True
    assert stats.update(RtpPacket(0, 30000, 0, 5), 1.04) is False
    assert stats.update(RtpPacket(0, 30001, 160, 5), 1.06) is True  # the sender restarted
    report = stats.report()
    assert (report.received, report.expected, report.extended_highest_sequence) == (1, 1, 30001)


def test_packets_of_another_source_are_refused() -> None:
    stats = RtpReceiverStats(8000)
    feed(stats, list(stream(0, 5)))
    assert stats.update(RtpPacket(0, 5, 800, ssrc=6), 0.1) is False
    assert stats.report().received == 4


def test_interarrival_jitter_follows_rfc_3550_a8() -> None:
    stats = RtpReceiverStats(8000)
    # Every other packet 10 ms late: the transit changes by 80 units each time.
    for i, packet in enumerate(stream(0, 400, timestamp=2**32 - 32000)):
        stats.update(packet, i * 0.02 + (0.01 if i % 2 else 0.0))
    assert stats.report().jitter == pytest.approx(80, abs=0.5)
    steady = RtpReceiverStats(8000)
    feed(steady, list(stream(0, 50, timestamp=2**32 - 3200)))
    assert steady.report().jitter == pytest.approx(0, abs=1e-6)


# -- a recorded capture ---------------------------------------------------------------------


def pcap_udp_payloads(path: Path) -> Iterator[tuple[float, bytes]]:
    """(time, UDP payload) for each IPv4/UDP frame of a classic pcap file (Ethernet or raw IP)."""
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError(f"{path} is not a pcap file")
    fraction = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    (link_type,) = struct.unpack_from(order + "I", data, 20)
    offset = 24
    while offset + 16 <= len(data):
        seconds, fractional, captured, _ = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        if link_type == 1:  # Ethernet, perhaps with one VLAN tag
            ether_type = struct.unpack_from("!H", frame, 12)[0]
            ip = frame[14:]
            if ether_type == 0x8100:
                ether_type, ip = struct.unpack_from("!H", frame, 16)[0], frame[18:]
            if ether_type != 0x0800:
                continue
        elif link_type == 101:
            ip = frame
        else:
            raise ValueError(f"link type {link_type} is not read here")
        if ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 0x0F) * 4 :]
        length = struct.unpack_from("!H", udp, 4)[0]
        yield seconds + fractional * fraction, udp[8:length]


def test_the_sipp_g711_capture_is_a_clean_alaw_stream() -> None:
    path = SIPP_DIR / "g711a.pcap"
    if not path.exists():
        missing_part(f"{path} (Debian package sip-tester)")
    packets = [(t, parse_packet(payload)) for t, payload in pcap_udp_payloads(path)]
    assert len(packets) > 100
    stats = RtpReceiverStats(8000)
    for arrival, packet in packets:
        assert packet.payload_type == 8
        stats.update(packet, arrival)
        # Every A-law code survives decoding and encoding again.
        assert g711.pcm_to_alaw(g711.alaw_to_pcm(packet.payload)) == packet.payload
    report = stats.report()
    assert report.lost == 0 and report.duplicates == 0 and report.reordered == 0
    assert report.received == len(packets) - 1
