"""Sample-rate conversion: the telephone band passes, what would alias is removed."""

from __future__ import annotations

import itertools
import math
from array import array

import pytest

from callcenter.ivr.resample import Resampler, resample


def tone(frequency: float, rate: int, seconds: float, amplitude: int = 10_000) -> bytes:
    count = int(rate * seconds)
    return array(
        "h", (round(amplitude * math.sin(2 * math.pi * frequency * i / rate)) for i in range(count))
    ).tobytes()


def level(pcm: bytes) -> float:
    """RMS of the middle half (away from the filter's start and end)."""
    samples = array("h", pcm)
    middle = samples[len(samples) // 4 : 3 * len(samples) // 4]
    return math.sqrt(sum(s * s for s in middle) / len(middle))


def gain_db(frequency: float, from_rate: int, to_rate: int) -> float:
    source = tone(frequency, from_rate, 0.5)
    out = resample(source, from_rate, to_rate)
    return 20 * math.log10(max(level(out), 1e-6) / level(source))


@pytest.mark.parametrize("frequency", [300, 1000, 2000, 3000])
def test_telephone_band_passes(frequency: int) -> None:
    assert abs(gain_db(frequency, 22_050, 8_000)) < 0.5


@pytest.mark.parametrize("frequency", [4500, 6000, 9000])
def test_above_the_new_nyquist_is_removed(frequency: int) -> None:
    assert gain_db(frequency, 22_050, 8_000) < -60


def test_upsampling_keeps_the_tone() -> None:
    assert abs(gain_db(1000, 8_000, 16_000)) < 0.1
    out = resample(tone(1000, 8_000, 0.5), 8_000, 16_000)
    samples = array("h", out)
    crossings = sum(1 for a, b in itertools.pairwise(samples[2000:6001]) if a < 0 <= b)
    assert crossings == 250  # 1 kHz for 0.25 s


def test_lengths() -> None:
    assert len(resample(tone(500, 22_050, 1.0), 22_050, 8_000)) == 2 * 8_000
    assert len(resample(b"\x00\x00" * 441, 22_050, 8_000)) == 2 * 160
    assert len(resample(b"\x00\x00" * 3, 22_050, 8_000)) == 2 * 2  # rounded up
    assert resample(b"", 22_050, 8_000) == b""


def test_streaming_in_any_pieces_equals_all_at_once() -> None:
    source = tone(700, 22_050, 0.3) + tone(2500, 22_050, 0.2)
    whole = resample(source, 22_050, 8_000)
    for piece in (2, 34, 882, 4410):
        converter = Resampler(22_050, 8_000)
        out = b"".join(
            converter.process(source[i : i + piece]) for i in range(0, len(source), piece)
        )
        assert out + converter.flush() == whole
        assert converter.flush() == b""
        with pytest.raises(RuntimeError):
            converter.process(b"\x00\x00")


def test_loud_input_is_clipped_not_wrapped() -> None:
    square = array("h", ([32767] * 20 + [-32768] * 20) * 200).tobytes()
    out = array("h", resample(square, 16_000, 8_000))
    assert max(out) == 32767 and min(out) == -32768


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="even number"):
        resample(b"\x00", 8_000, 16_000)
    with pytest.raises(ValueError, match="even number"):
        resample(b"\x00", 8_000, 8_000)
    assert resample(b"\x01\x02", 8_000, 8_000) == b"\x01\x02"
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 8_000)
    with pytest.raises(ValueError, match="cutoff"):
        Resampler(8_000, 16_000, cutoff=2)
    with pytest.raises(ValueError, match="zero_crossings"):
        Resampler(8_000, 16_000, zero_crossings=1)
