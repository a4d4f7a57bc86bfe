"""SDP parsing and building (RFC 4566) and audio offer/answer (RFC 3264)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.sip import sdp
from callcenter.sip.message import parse_datagram
from callcenter.sip.sdp import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    Connection,
    Direction,
    SdpError,
    SessionDescription,
)

MESSAGES = Path(__file__).parent / "messages"
SUPPORTED = (PCMU, PCMA, TELEPHONE_EVENT)


def body(name: str) -> bytes:
    data = (MESSAGES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return parse_datagram(data).body


def text(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


def offer_of(*media_lines: str, session: tuple[str, ...] = ()) -> SessionDescription:
    return sdp.parse(
        text(
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.10",
            "s=-",
            "c=IN IP4 192.0.2.10",
            "t=0 0",
            *session,
            *media_lines,
        )
    )


WITH_SDP = [
    "zoiper_invite.sip",
    "yealink_reinvite_hold.sip",
    "baresip_invite.sip",
    "sipp_invite.sip",
    "response_200_invite.sip",
    "compact_folded_invite.sip",
]


@pytest.mark.parametrize("name", WITH_SDP)
def test_recorded_descriptions_round_trip(name: str) -> None:
    description = sdp.parse(body(name))
    assert sdp.parse(description.encode()) == description
    assert sdp.parse(str(description)) == description


def test_zoiper_offer() -> None:
    offer = sdp.parse(body("zoiper_invite.sip"))
    assert offer.origin.session_id == "0" and offer.origin.version == 48210753
    assert offer.connection == Connection("10.0.7.41")
    (audio,) = offer.media
    assert (audio.kind, audio.port, audio.protocol) == ("audio", 8000, "RTP/AVP")
    assert audio.formats == ("106", "9", "98", "101", "0", "8", "3")
    names = [(c.name, c.clock_rate, c.payload_type) for c in audio.codecs]
    assert names == [
        ("opus", 48000, 106),
        ("G722", 8000, 9),
        ("telephone-event", 48000, 98),
        ("telephone-event", 8000, 101),
        ("PCMU", 8000, 0),
        ("PCMA", 8000, 8),
        ("GSM", 8000, 3),
    ]
    assert audio.codecs[0].channels == 2
    assert audio.codecs[3].fmtp == "0-16"
    assert audio.direction is Direction.SENDRECV and audio.ptime is None
    assert audio.voice_codec == Codec("opus", 48000, 106, 2, audio.codecs[0].fmtp)
    assert audio.attribute("rtcp-mux") is None
    assert not offer.on_hold(audio)


def test_answer_takes_the_first_offered_codec_we_support() -> None:
    offer = sdp.parse(body("zoiper_invite.sip"))
    answer = sdp.answer(offer, SUPPORTED, "203.0.113.5", 30000)
    (audio,) = answer.media
    assert audio.port == 30000 and audio.formats == ("0", "101")
    assert [c.name for c in audio.codecs] == ["PCMU", "telephone-event"]
    assert audio.event_codec == Codec("telephone-event", 8000, 101, fmtp="0-15")
    assert audio.ptime == 20 and audio.direction is Direction.SENDRECV
    assert answer.connection == Connection("203.0.113.5")
    assert answer.origin.address == "203.0.113.5"
    assert sdp.parse(answer.encode()) == answer
    pcma_first = sdp.parse(body("response_200_invite.sip"))
    assert sdp.answer(pcma_first, SUPPORTED, "203.0.113.5", 30000).media[0].voice_codec == Codec(
        "PCMA", 8000, 8
    )


def test_answer_echoes_the_offers_event_payload_type() -> None:
    offer = offer_of(
        "m=audio 4000 RTP/AVP 8 96",
        "a=rtpmap:96 telephone-event/8000",
        "a=fmtp:96 0-16",
        "a=ptime:30",
    )
    (audio,) = sdp.answer(offer, SUPPORTED, "203.0.113.5", 30000).media
    assert audio.formats == ("8", "96")
    assert audio.event_codec == Codec("telephone-event", 8000, 96, fmtp="0-15")
    assert audio.ptime == 30
    without_events = sdp.answer(offer, (PCMA,), "203.0.113.5", 30000).media[0]
    assert without_events.formats == ("8",)


@pytest.mark.parametrize(
    ("attribute", "connection", "expected"),
    [
        ("a=sendrecv", "192.0.2.10", Direction.SENDRECV),
        ("a=sendonly", "192.0.2.10", Direction.RECVONLY),
        ("a=recvonly", "192.0.2.10", Direction.SENDONLY),
        ("a=inactive", "192.0.2.10", Direction.INACTIVE),
        ("a=sendrecv", "0.0.0.0", Direction.RECVONLY),
        ("a=inactive", "0.0.0.0", Direction.INACTIVE),
    ],
)
def test_hold_is_answered_mirrored(attribute: str, connection: str, expected: Direction) -> None:
    offer = offer_of("m=audio 4000 RTP/AVP 0", f"c=IN IP4 {connection}", attribute)
    audio = offer.media[0]
    assert offer.on_hold(audio) == (expected in (Direction.RECVONLY, Direction.INACTIVE))
    assert sdp.answer(offer, SUPPORTED, "203.0.113.5", 30000).media[0].direction is expected


def test_recorded_hold() -> None:
    hold = sdp.parse(body("yealink_reinvite_hold.sip"))
    assert hold.on_hold(hold.media[0])
    assert hold.media[0].codecs[2] == Codec("G729", 8000, 18, fmtp="annexb=no")
    answer = sdp.answer(hold, SUPPORTED, "203.0.113.5", 30000, version=2, session_id="77")
    assert answer.media[0].direction is Direction.RECVONLY
    assert (answer.origin.session_id, answer.origin.version) == ("77", 2)


def test_our_direction_narrows_the_answer() -> None:
    offer = offer_of("m=audio 4000 RTP/AVP 0")
    answer = sdp.answer(offer, SUPPORTED, "203.0.113.5", 30000, Direction.SENDONLY)
    assert answer.media[0].direction is Direction.SENDONLY
    session_level = offer_of("m=audio 4000 RTP/AVP 0", session=("a=recvonly",))
    assert session_level.direction_of(session_level.media[0]) is Direction.RECVONLY
    answer = sdp.answer(session_level, SUPPORTED, "203.0.113.5", 30000, Direction.RECVONLY)
    assert answer.media[0].direction is Direction.INACTIVE


def test_unusable_streams_are_rejected_with_port_zero() -> None:
    offer = offer_of(
        "m=video 5000 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "m=audio 4002 RTP/SAVP 0",
        "m=audio 4004 RTP/AVP 9 18",
        "m=audio 0 RTP/AVP 0",
        "m=audio 4006 RTP/AVP 8",
        "m=audio 4008 RTP/AVP 0",
        "m=image 4010 udptl t38",
    )
    answer = sdp.answer(offer, SUPPORTED, "203.0.113.5", 30000)
    assert [(m.kind, m.port, m.protocol, m.formats) for m in answer.media] == [
        ("video", 0, "RTP/AVP", ("96",)),
        ("audio", 0, "RTP/SAVP", ("0",)),
        ("audio", 0, "RTP/AVP", ("9", "18")),
        ("audio", 0, "RTP/AVP", ("0",)),
        ("audio", 30000, "RTP/AVP", ("8",)),
        ("audio", 0, "RTP/AVP", ("0",)),
        ("image", 0, "udptl", ("t38",)),
    ]
    assert sdp.parse(answer.encode()) == answer
    nothing = sdp.answer(offer_of("m=audio 4000 RTP/AVP 18"), SUPPORTED, "203.0.113.5", 1)
    assert nothing.media[0].rejected


def test_opus_first_offer_falls_back_to_g711() -> None:
    offer = sdp.parse(body("baresip_invite.sip"))
    (audio,) = sdp.answer(offer, SUPPORTED, "2001:db8::5", 30000).media
    assert audio.voice_codec == PCMU
    answer = sdp.answer(offer, SUPPORTED, "2001:db8::5", 30000)
    assert answer.connection == Connection("2001:db8::5", "IP6")
    assert "c=IN IP6 2001:db8::5" in str(answer)


def test_ptime_outside_the_accepted_set_gets_the_default() -> None:
    offer = offer_of("m=audio 4000 RTP/AVP 0", "a=ptime:40")
    assert sdp.answer(offer, SUPPORTED, "192.0.2.1", 1).media[0].ptime == 20
    offer = offer_of("m=audio 4000 RTP/AVP 0", "a=ptime:10")
    assert sdp.answer(offer, SUPPORTED, "192.0.2.1", 1).media[0].ptime == 10


def test_our_offer() -> None:
    offer = sdp.offer(SUPPORTED, "pbx.example.net", 31000, session_id="5", version=1)
    assert str(offer) == text(
        "v=0",
        "o=- 5 1 IN IP4 pbx.example.net",
        "s=-",
        "c=IN IP4 pbx.example.net",
        "t=0 0",
        "m=audio 31000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    )
    assert sdp.parse(offer.encode()) == offer
    hold = sdp.offer(SUPPORTED, "192.0.2.1", 31000, Direction.SENDONLY)
    assert hold.on_hold(hold.media[0])
    assert hold.origin.session_id.isdigit()


def test_other_lines_are_kept_in_rfc_order() -> None:
    description = sdp.parse(
        text(
            "v=0",
            "o=alice 2890844526 2890844526 IN IP4 host.example.com",
            "s=Session",
            "c=IN IP4 host.example.com",
            "b=CT:128",
            "i=A seminar",
            "u=http://www.example.com/seminars/sdp.pdf",
            "e=j.doe@example.com (Jane Doe)",
            "t=2873397496 2873404696",
            "r=7d 1h 0 25h",
            "a=recvonly",
            "m=audio 49170/2 RTP/AVP 0",
            "b=AS:64",
            "i=voice",
            "c=IN IP4 224.2.17.12/127",
        )
    )
    assert [k for k, _ in description.lines] == ["i", "u", "e", "b", "r"]
    audio = description.media[0]
    assert (audio.port_count, audio.connection) == (2, Connection("224.2.17.12/127"))
    assert [k for k, _ in audio.lines] == ["i", "b"]
    again = sdp.parse(description.encode())
    assert again == description
    assert str(description).index("i=A seminar") < str(description).index("c=IN IP4 host")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("", "Session description must start with v=0"),
        ("v=1\r\n", "Session description must start with v=0"),
        (text("v=0", "s=-", "t=0 0"), "Missing o=, s= or t= line"),
        (text("v=0", "o=- 1 1 IN IP4 h", "s=-"), "Missing o=, s= or t= line"),
        (text("v=0", "o=- x 1 IN IP4 h", "s=-", "t=0 0"), "Malformed o= line"),
        (text("v=0", "o=- 1 1 IN IP4", "s=-", "t=0 0"), "Malformed o= line"),
        (text("v=0", "o=- 1 1 IN IP4 h", "o=- 1 1 IN IP4 h", "s=-", "t=0 0"), "Repeated o= line"),
        (text("v=0", "o=- 1 1 IN IP4 h", "s=-", "c=IN IP4", "t=0 0"), "Malformed c= line"),
        (text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=now"), "Malformed t= line"),
        (text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "x=unknown"), "Unexpected x= line"),
        (text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "v=0"), "Unexpected v= line"),
        (
            text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 1 RTP/AVP 0", "t=0 0"),
            "Unexpected t= line",
        ),
        (text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 1 RTP/AVP"), "Malformed m= line"),
        (
            text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 70000 RTP/AVP 0"),
            "Malformed m= line",
        ),
        (
            text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 1/x RTP/AVP 0"),
            "Malformed m= line",
        ),
        (
            text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 1 RTP/AVP PCMU"),
            "Malformed m= line",
        ),
        (
            text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 1 RTP/AVP 200"),
            "Malformed m= line",
        ),
        (
            text(
                "v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 1 RTP/AVP 0", "a=rtpmap:0 PCMU"
            ),
            "Malformed rtpmap",
        ),
        (
            text(
                "v=0",
                "o=- 1 1 IN IP4 h",
                "s=-",
                "t=0 0",
                "m=audio 1 RTP/AVP 0",
                "a=rtpmap:300 X/8000",
            ),
            "Malformed rtpmap",
        ),
        (
            text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 1 RTP/AVP 0", "a=fmtp:x y"),
            "Malformed fmtp",
        ),
        (
            text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 1 RTP/AVP 0", "a=ptime:0"),
            "Malformed ptime",
        ),
        (
            text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "m=audio 1 RTP/AVP 0", "a=ptime:x"),
            "Malformed ptime",
        ),
        (text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "a=:x"), "Malformed a= line"),
        (text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "a x"), "Malformed line"),
        (text("v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0", "a=x\ry"), "Malformed line"),
        (b"v=0\r\n\xff\r\n", "Malformed session description"),
    ],
)
def test_bad_descriptions_are_refused(data: str | bytes, reason: str) -> None:
    with pytest.raises(SdpError) as raised:
        sdp.parse(data)
    assert raised.value.reason == reason


def test_limits() -> None:
    many = offer_of(*["m=audio 4000 RTP/AVP 0"] * 16)
    assert len(many.media) == 16
    with pytest.raises(SdpError, match="Too many media streams"):
        sdp.parse(many.encode(), max_media=15)
    with pytest.raises(SdpError, match="too large"):
        sdp.parse(many.encode(), max_bytes=100)


def test_direction_helpers() -> None:
    assert Direction.of(sends=True, receives=False) is Direction.SENDONLY
    assert Direction.SENDONLY.mirrored() is Direction.RECVONLY
    assert Direction.INACTIVE.mirrored() is Direction.INACTIVE
    assert Direction.SENDRECV.sends and Direction.SENDRECV.receives
    assert PCMU.same_format(Codec("pcmu", 8000, 96)) and not PCMU.same_format(PCMA)
    assert Codec("opus", 48000, 111, 2).rtpmap == "111 opus/48000/2"


def test_non_rtp_media_has_no_codecs() -> None:
    offer = offer_of("m=image 4010 udptl t38", "a=T38FaxVersion:0")
    image = offer.media[0]
    assert image.codecs == () and image.voice_codec is None and not image.is_rtp


@given(st.text(max_size=400))
def test_any_text_raises_only_sdp_error(value: str) -> None:
    for data in (value, "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n" + value):
        try:
            description = sdp.parse(data)
        except SdpError:
            continue
        assert sdp.parse(description.encode()) == description
        for media in description.media:
            _ = media.codecs, media.ptime, media.direction, description.on_hold(media)
        sdp.answer(description, SUPPORTED, "192.0.2.1", 30000)
