"""RFC 4733 telephone events: the payload, the packets of a key press, and digits back out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.media.dtmf import (
    DIGITS,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    TelephoneEventError,
    event_code,
    parse_event,
)
from callcenter.media.rtp import RtpPacket, RtpSender, parse_packet
from tests.conftest import missing_part
from tests.media.test_rtp import SIPP_DIR, pcap_udp_payloads

# -- payload --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "event"),
    [
        ("010a0000", TelephoneEvent(1, False, 10, 0)),
        ("010a0140", TelephoneEvent(1, False, 10, 320)),
        ("018a08c0", TelephoneEvent(1, True, 10, 2240)),
        ("0b3f0320", TelephoneEvent(11, False, 63, 800)),
        ("0f80ffff", TelephoneEvent(15, True, 0, 0xFFFF)),
        ("1000a000", TelephoneEvent(16, False, 0, 0xA000)),
    ],
)
def test_event_payloads(payload: str, event: TelephoneEvent) -> None:
    assert parse_event(bytes.fromhex(payload)) == event
    assert event.to_bytes() == bytes.fromhex(payload)


def test_the_reserved_bit_is_ignored_on_receipt() -> None:
    # RFC 4733 section 2.3.3: sent as zero, ignored by the receiver.
    assert parse_event(bytes.fromhex("054a00a0")) == TelephoneEvent(5, False, 10, 160)
    assert parse_event(bytes.fromhex("05ca00a0")) == TelephoneEvent(5, True, 10, 160)


def test_digits_and_other_events() -> None:
    assert [TelephoneEvent(code).digit for code in range(16)] == list("0123456789*#ABCD")
    assert TelephoneEvent(16).digit is None  # flash
    assert [event_code(d) for d in "0123456789*#ABCDabcd"] == [*range(16), 12, 13, 14, 15]
    for bad in ("", "E", "12", " ", "%"):
        with pytest.raises(ValueError):
            event_code(bad)


@pytest.mark.parametrize("payload", ["", "01", "010a00", "010a0000ff", "010a0000010a0000"])
def test_payloads_that_are_not_one_event_are_refused(payload: str) -> None:
    with pytest.raises(TelephoneEventError):
        parse_event(bytes.fromhex(payload))


def test_events_out_of_range_cannot_be_built() -> None:
    for fields in ({"event": 256}, {"event": 1, "volume": 64}, {"event": 1, "duration": 65536}):
        with pytest.raises(ValueError):
            TelephoneEvent(**fields)  # type: ignore[arg-type]


@given(st.binary(max_size=12))
def test_random_payloads_parse_or_raise_telephone_event_error(payload: bytes) -> None:
    try:
        event = parse_event(payload)
    except TelephoneEventError:
        return
    assert event.to_bytes()[0] == payload[0] and event.duration.to_bytes(2, "big") == payload[2:]


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_build_then_parse_gives_the_event_back(
    code: int, end: bool, volume: int, duration: int
) -> None:
    event = TelephoneEvent(code, end, volume, duration)
    assert parse_event(event.to_bytes()) == event


# -- sender ---------------------------------------------------------------------------------


def test_a_key_press_with_the_timing_of_the_rfc_4733_example() -> None:
    # RFC 4733 section 5 sends digit 9 at 8 kHz with an update every 50 ms:
    # one timestamp throughout, marker on the first packet, durations of 400,
    # 800, 1200 and 1600, and the final report three times with the E bit.
    rtp = RtpSender(0, ssrc=0x5EED, sequence=1, timestamp=0)
    sender = DtmfSender(rtp, interval_ms=50, duration_ms=200)
    packets = sender.packets("9")
    assert [p.sequence for p in packets] == [1, 2, 3, 4, 5, 6]
    assert {(p.timestamp, p.ssrc, p.payload_type) for p in packets} == {(0, 0x5EED, 101)}
    assert [p.marker for p in packets] == [True] + [False] * 5
    assert [parse_event(p.payload) for p in packets] == [
        TelephoneEvent(9, False, 10, 400),
        TelephoneEvent(9, False, 10, 800),
        TelephoneEvent(9, False, 10, 1200),
        TelephoneEvent(9, True, 10, 1600),
        TelephoneEvent(9, True, 10, 1600),
        TelephoneEvent(9, True, 10, 1600),
    ]
    # The clock has moved past the six intervals; audio resumes as a talkspurt.
    audio = rtp.frame(bytes(400), 400)
    assert (audio.sequence, audio.timestamp, audio.marker, audio.payload_type) == (7, 2400, True, 0)


def test_default_key_presses_and_a_digit_string() -> None:
    rtp = RtpSender(0, ssrc=1, sequence=65533, timestamp=2**32 - 480)
    sender = DtmfSender(rtp)
    first = sender.packets("1")
    durations = [parse_event(p.payload).duration for p in first]
    assert durations == [160, 320, 480, 640, 800, 800, 800]
    assert [p.sequence for p in first] == [65533, 65534, 65535, 0, 1, 2, 3]
    second = sender.packets("#", duration_ms=50)
    assert second[0].timestamp == (2**32 - 480 + 7 * 160) % 2**32
    assert [parse_event(p.payload).duration for p in second] == [160, 320, 400, 400, 400]
    assert second[0].marker and not any(p.marker for p in second[1:])


def test_key_presses_that_do_not_fit_are_refused() -> None:
    sender = DtmfSender(RtpSender(0))
    with pytest.raises(ValueError):
        sender.packets("x")
    with pytest.raises(ValueError):
        sender.packets("1", duration_ms=0)
    with pytest.raises(ValueError):
        sender.packets("1", duration_ms=9000)  # over 0xFFFF samples


# -- receiver -------------------------------------------------------------------------------


def key_press(rtp: RtpSender, digit: str, **options: int) -> list[RtpPacket]:
    return DtmfSender(rtp, **options).packets(digit)


def deliver(receiver: DtmfReceiver, packets: list[RtpPacket], start: float = 0.0) -> list[str]:
    digits: list[str] = []
    for i, packet in enumerate(packets):
        digits += receiver.feed(packet, start + 0.02 * i)
    return digits


def test_a_key_press_is_one_digit_reported_at_its_first_end_packet() -> None:
    packets = key_press(RtpSender(0), "7")
    receiver = DtmfReceiver()
    reported = [receiver.feed(p, 0.02 * i) for i, p in enumerate(packets)]
    assert reported == [[], [], [], [], ["7"], [], []]
    assert receiver.poll(10.0) == []


def test_duplicates_and_a_late_update_do_not_repeat_the_digit() -> None:
    packets = key_press(RtpSender(0), "3")
    arriving = [packets[0], packets[0], packets[1], packets[2], packets[4], packets[3]]
    arriving += [packets[5], packets[4], packets[6]]
    assert deliver(DtmfReceiver(), arriving) == ["3"]


def test_a_lost_first_packet_still_counts() -> None:
    packets = key_press(RtpSender(0), "A")
    assert deliver(DtmfReceiver(), packets[1:]) == ["A"]


def test_lost_end_packets_are_covered_by_the_next_event() -> None:
    rtp = RtpSender(0)
    first = key_press(rtp, "5")[:4]  # no end packets arrive
    second = key_press(rtp, "5")
    receiver = DtmfReceiver()
    assert deliver(receiver, first) == []
    assert receiver.feed(second[0], 0.1) == ["5"]  # a new timestamp ends the old event
    assert deliver(receiver, second[1:], 0.12) == ["5"]


def test_lost_end_packets_are_covered_by_the_timeout() -> None:
    packets = key_press(RtpSender(0), "*")
    receiver = DtmfReceiver(end_timeout=0.3)
    assert deliver(receiver, packets[:3]) == []
    assert receiver.poll(0.3) == []
    assert receiver.poll(0.35) == ["*"]
    # Stragglers of the same event come too late to count again.
    assert receiver.feed(packets[5], 0.5) == []
    assert receiver.poll(5.0) == []


def test_a_packet_of_an_earlier_event_is_ignored() -> None:
    rtp = RtpSender(0)
    first, second = key_press(rtp, "1"), key_press(rtp, "2")
    receiver = DtmfReceiver()
    assert deliver(receiver, first[:2] + second[:2]) == ["1"]
    assert receiver.feed(first[2], 0.1) == []  # late, and older than event 2
    assert deliver(receiver, second[2:], 0.12) == ["2"]


def test_events_across_the_timestamp_wrap() -> None:
    rtp = RtpSender(0, timestamp=2**32 - 1000)
    digits = deliver(DtmfReceiver(), key_press(rtp, "8") + key_press(rtp, "9"))
    assert digits == ["8", "9"]


def test_other_events_end_a_digit_but_are_not_digits() -> None:
    rtp = RtpSender(0, ssrc=9, timestamp=0)
    receiver = DtmfReceiver()
    assert deliver(receiver, key_press(rtp, "4")[:2]) == []
    flash = rtp.emit(TelephoneEvent(16, True, 10, 800).to_bytes(), timestamp=5000, payload_type=101)
    assert receiver.feed(flash, 0.1) == ["4"]
    assert receiver.feed(flash, 0.12) == []


def test_a_new_source_starts_afresh() -> None:
    receiver = DtmfReceiver()
    a = key_press(RtpSender(0, ssrc=1, timestamp=1000), "1")
    b = key_press(RtpSender(0, ssrc=2, timestamp=1000), "2")
    assert deliver(receiver, a[:3]) == []
    assert receiver.feed(b[0], 0.1) == ["1"]
    assert deliver(receiver, b[1:], 0.12) == ["2"]


def test_a_long_event_in_segments_is_one_digit() -> None:
    # RFC 4733 section 2.5.1.3: past 0xFFFF units the event goes on in a new
    # segment whose timestamp is where the previous one ended.
    rtp = RtpSender(0, ssrc=3, timestamp=2**32 - 100)
    start = rtp.timestamp
    receiver = DtmfReceiver()
    segment_one = [TelephoneEvent(0, False, 10, d) for d in (20000, 40000, 65535)]
    segment_two = [TelephoneEvent(0, e, 10, 1600) for e in (False, True, True, True)]
    digits: list[str] = []
    for event in segment_one:
        digits += receiver.feed(rtp.emit(event.to_bytes(), timestamp=start, payload_type=101), 1.0)
    for event in segment_two:
        packet = rtp.emit(event.to_bytes(), timestamp=start + 65535, payload_type=101)
        digits += receiver.feed(packet, 1.1)
    assert digits == ["0"]


def test_a_payload_that_is_not_an_event_changes_nothing() -> None:
    packets = key_press(RtpSender(0), "6")
    receiver = DtmfReceiver()
    deliver(receiver, packets[:2])
    broken = RtpPacket(101, packets[2].sequence, packets[2].timestamp, packets[2].ssrc, b"\x06")
    with pytest.raises(TelephoneEventError):
        receiver.feed(broken, 10.0)
    assert deliver(receiver, packets[2:], 0.06) == ["6"]


@given(
    st.text(alphabet=DIGITS, min_size=1, max_size=6),
    st.data(),
)
def test_any_loss_and_duplication_yields_each_digit_once(digits: str, data: st.DataObject) -> None:
    rtp = RtpSender(0)
    arriving: list[RtpPacket] = []
    for digit in digits:
        packets = key_press(rtp, digit)
        kept = data.draw(
            st.lists(st.sampled_from(packets), min_size=1, max_size=12).map(
                lambda chosen, packets=packets: sorted(chosen, key=packets.index)
            )
        )
        arriving += kept
    receiver = DtmfReceiver()
    got = deliver(receiver, arriving) + receiver.poll(100.0)
    assert "".join(got) == digits


# -- a recorded capture ---------------------------------------------------------------------


NAMED = {"pound": "#", "star": "*"}


def test_sipp_captures_give_their_digit_once() -> None:
    captures = sorted(SIPP_DIR.glob("dtmf_2833_*.pcap")) if SIPP_DIR.exists() else []
    if not captures:
        missing_part(f"{SIPP_DIR}/dtmf_2833_*.pcap (Debian package sip-tester)")
    for path in captures:
        name = path.stem.removeprefix("dtmf_2833_")
        receiver = DtmfReceiver()
        digits: list[str] = []
        for arrival, datagram in pcap_udp_payloads(path):
            packet = parse_packet(datagram)
            assert packet.payload_type == 101
            digits += receiver.feed(packet, arrival)
        assert digits == [NAMED.get(name, name)], path.name


def test_sipp_capture_read_as_expected() -> None:
    path = SIPP_DIR / "dtmf_2833_1.pcap"
    if not path.exists():
        missing_part(f"{path} (Debian package sip-tester)")
    packets = [parse_packet(d) for _, d in pcap_udp_payloads(path)]
    events = [parse_event(p.payload) for p in packets]
    assert len({p.timestamp for p in packets}) == 1 and packets[0].marker
    assert [e.duration for e in events] == [0, 320, 640, 960, 1280, 1600, 1920, 2240, 2240, 2240]
    assert [e.end for e in events] == [False] * 7 + [True] * 3
