"""G.711: every code and every sample against a plain reference, the standard's points, frames."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.media import g711

# The reference below is written the long way, as the segment tables of G.711
# read: find the segment whose end the magnitude does not pass, then take the
# four bits after the leading one. Negative samples are folded by one's
# complement (-1 -> 0), as in the ITU-T G.191 reference code.
_SEGMENT_ENDS = [0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF]


def _segment(magnitude: int) -> int:
    for segment, end in enumerate(_SEGMENT_ENDS):
        if magnitude <= end:
            return segment
    return len(_SEGMENT_ENDS)


def ref_ulaw_encode(sample: int) -> int:
    if sample >= 0:
        magnitude, mask = sample, 0xFF
    else:
        magnitude, mask = -sample - 1, 0x7F
    biased = magnitude + 0x84
    segment = _segment(biased)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((biased >> (segment + 3)) & 0x0F)) ^ mask


def ref_alaw_encode(sample: int) -> int:
    if sample >= 0:
        magnitude, mask = sample, 0xD5
    else:
        magnitude, mask = -sample - 1, 0x55
    segment = _segment(magnitude)
    if segment >= 8:
        return 0x7F ^ mask
    shift = 4 if segment < 2 else segment + 3
    return ((segment << 4) | ((magnitude >> shift) & 0x0F)) ^ mask


def ref_ulaw_decode(code: int) -> int:
    # G.191 form: sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33)
    complemented = ~code & 0xFF
    exponent = (complemented >> 4) & 0x07
    mantissa = complemented & 0x0F
    step = 4 << (exponent + 1)
    value = (0x80 << exponent) + step * mantissa + step // 2 - 4 * 33
    return value if code & 0x80 else -value


def ref_alaw_decode(code: int) -> int:
    value = code ^ 0x55
    exponent = (value >> 4) & 0x07
    mantissa = value & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if code & 0x80 else -magnitude


def pack(samples: list[int]) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def unpack(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


ALL_CODES = bytes(range(256))
ALL_SAMPLES = list(range(-32768, 32768))


def test_every_code_decodes_as_the_reference() -> None:
    assert unpack(g711.ulaw_to_pcm(ALL_CODES)) == [ref_ulaw_decode(c) for c in ALL_CODES]
    assert unpack(g711.alaw_to_pcm(ALL_CODES)) == [ref_alaw_decode(c) for c in ALL_CODES]


def test_every_sample_encodes_as_the_reference() -> None:
    pcm = pack(ALL_SAMPLES)
    assert list(g711.pcm_to_ulaw(pcm)) == [ref_ulaw_encode(s) for s in ALL_SAMPLES]
    assert list(g711.pcm_to_alaw(pcm)) == [ref_alaw_encode(s) for s in ALL_SAMPLES]


def test_the_per_sample_rules_agree_with_the_frame_functions() -> None:
    assert [g711.ulaw_decode_sample(c) for c in ALL_CODES] == unpack(g711.ulaw_to_pcm(ALL_CODES))
    assert [g711.alaw_decode_sample(c) for c in ALL_CODES] == unpack(g711.alaw_to_pcm(ALL_CODES))
    for sample in (-32768, -32767, -1, 0, 1, 4, 5, 32767):
        assert g711.ulaw_encode_sample(sample) == ref_ulaw_encode(sample)
        assert g711.alaw_encode_sample(sample) == ref_alaw_encode(sample)


def test_every_code_survives_decode_then_encode_except_ulaw_negative_zero() -> None:
    ulaw = g711.pcm_to_ulaw(g711.ulaw_to_pcm(ALL_CODES))
    expected = bytearray(ALL_CODES)
    expected[0x7F] = 0xFF  # both zeros decode to 0, which encodes as positive zero
    assert ulaw == bytes(expected)
    assert g711.pcm_to_alaw(g711.alaw_to_pcm(ALL_CODES)) == ALL_CODES


def test_reference_points_of_the_standard() -> None:
    def ulaw(code: int) -> int:
        return unpack(g711.ulaw_to_pcm(bytes([code])))[0]

    def alaw(code: int) -> int:
        return unpack(g711.alaw_to_pcm(bytes([code])))[0]

    # u-law: both zeros, and the largest magnitudes (8031 in 14 bits).
    assert (ulaw(0xFF), ulaw(0x7F), ulaw(0x80), ulaw(0x00)) == (0, 0, 32124, -32124)
    # A-law has no zero: the smallest steps are +-1 in 13 bits, the largest 4032.
    assert (alaw(0xD5), alaw(0x55), alaw(0xAA), alaw(0x2A)) == (8, -8, 32256, -32256)
    assert g711.pcm_to_ulaw(pack([0])) == bytes([g711.ULAW_SILENCE])
    assert g711.pcm_to_alaw(pack([0])) == bytes([g711.ALAW_SILENCE])
    # Beyond the range both laws saturate at their largest code.
    assert g711.pcm_to_ulaw(pack([32767, -32768])) == bytes([0x80, 0x00])
    assert g711.pcm_to_alaw(pack([32767, -32768])) == bytes([0xAA, 0x2A])


@pytest.mark.parametrize(
    ("codes", "decode"),
    [
        (bytes.fromhex("1e0b0b1e9e8b8b9e"), g711.ulaw_to_pcm),
        (bytes.fromhex("34212134b4a1a1b4"), g711.alaw_to_pcm),
    ],
    ids=["ulaw", "alaw"],
)
def test_the_digital_milliwatt_decodes_to_a_1khz_sine_at_0_dbm0(
    codes: bytes, decode: object
) -> None:
    # G.711 Table 5 / 6: eight codes repeated give 1 kHz at 0 dBm0.
    assert callable(decode)
    samples = unpack(decode(codes))
    assert samples[4:] == [-s for s in samples[:4]]
    assert samples[0] == samples[3] and samples[1] == samples[2]
    assert samples[0] / samples[1] == pytest.approx(math.tan(math.pi / 8), rel=0.05)
    amplitude = abs(samples[1]) / math.sin(3 * math.pi / 8)
    full_scale_sine_dbm0 = 3.17
    level = 20 * math.log10(amplitude / 32768) + full_scale_sine_dbm0
    assert level == pytest.approx(0.0, abs=0.1)


def test_transcoding_follows_the_conversion_tables() -> None:
    ulaw_to_alaw = g711.ulaw_to_alaw(ALL_CODES)
    alaw_to_ulaw = g711.alaw_to_ulaw(ALL_CODES)
    for source_decode, target_decode, table in (
        (ref_ulaw_decode, ref_alaw_decode, ulaw_to_alaw),
        (ref_alaw_decode, ref_ulaw_decode, alaw_to_ulaw),
    ):
        pairs = sorted((source_decode(c), target_decode(table[c]), c) for c in range(256))
        for source, target, code in pairs:
            # The sign is kept, and the level moves by about a step at most.
            assert (target >= 0) == bool(code & 0x80)
            steps = sorted((_step(source), _step(target)))
            assert abs(target - source) <= steps[1] + steps[0] // 2
        # Louder stays louder.
        targets = [target for _, target, _ in pairs]
        assert targets == sorted(targets)
    # Where G.711 Tables 3 and 4 differ from decode-then-encode.
    assert ulaw_to_alaw[0xFF] == 0xD5 and alaw_to_ulaw[0xD5] == 0xFE
    assert ulaw_to_alaw[0x7F] == 0x55 and alaw_to_ulaw[0x55] == 0x7E
    assert ulaw_to_alaw[0x20] == 0x0A
    assert g711.alaw_encode_sample(ref_ulaw_decode(0x20)) == 0x0B
    # A frame is one translate: the same as code by code.
    frame = bytes(range(0, 256, 3))
    assert g711.ulaw_to_alaw(frame) == bytes(ulaw_to_alaw[c] for c in frame)
    assert g711.alaw_to_ulaw(frame) == bytes(alaw_to_ulaw[c] for c in frame)


def _step(value: int) -> int:
    """Quantisation step of either law around ``value``, in 16-bit units."""
    return max(16, 1 << max(0, abs(value).bit_length() - 5))


def test_empty_frames_and_odd_lengths() -> None:
    assert g711.ulaw_to_pcm(b"") == b"" and g711.pcm_to_alaw(b"") == b""
    with pytest.raises(ValueError):
        g711.pcm_to_ulaw(b"\x00\x01\x02")
    with pytest.raises(ValueError):
        g711.pcm_to_alaw(b"\x00")


def test_a_sine_frame_round_trips_within_the_quantisation_noise() -> None:
    samples = [round(20000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(160)]
    for encode, decode in (
        (g711.pcm_to_ulaw, g711.ulaw_to_pcm),
        (g711.pcm_to_alaw, g711.alaw_to_pcm),
    ):
        decoded = unpack(decode(encode(pack(samples))))
        noise = sum((a - b) ** 2 for a, b in zip(samples, decoded, strict=True))
        signal = sum(a * a for a in samples)
        assert 10 * math.log10(signal / noise) > 33  # G.711 gives about 38 dB


@given(st.lists(st.integers(-32768, 32767), max_size=400))
def test_random_frames_encode_as_the_reference(samples: list[int]) -> None:
    pcm = pack(samples)
    assert list(g711.pcm_to_ulaw(pcm)) == [ref_ulaw_encode(s) for s in samples]
    assert list(g711.pcm_to_alaw(pcm)) == [ref_alaw_encode(s) for s in samples]


@given(st.binary(max_size=400))
def test_random_codes_decode_to_two_bytes_each(codes: bytes) -> None:
    for decode in (g711.ulaw_to_pcm, g711.alaw_to_pcm):
        assert len(decode(codes)) == 2 * len(codes)
