"""In-band DTMF: generated key presses found, in noise and through G.711; speech and noise not."""

from __future__ import annotations

import math
import random
import struct

import pytest

from callcenter.media import g711
from callcenter.media.inband import (
    COLUMN_FREQUENCIES,
    DBM0_AMPLITUDE,
    KEYPAD,
    ROW_FREQUENCIES,
    InbandDetector,
)

RATE = 8000


def ms(milliseconds: float) -> int:
    return round(milliseconds * RATE / 1000)


def level(dbm0: float) -> float:
    return DBM0_AMPLITUDE * 10 ** (dbm0 / 20)


def tones(count: int, *parts: tuple[float, float], start: int = 0) -> list[float]:
    """``count`` samples of the sum of (frequency, amplitude) sines."""
    return [
        sum(a * math.sin(2 * math.pi * f * (n + start) / RATE) for f, a in parts)
        for n in range(count)
    ]


def key(
    digit: str,
    duration_ms: float,
    *,
    row_dbm0: float = -7.0,
    column_dbm0: float = -5.0,
    deviation: float = 0.0,
) -> list[float]:
    """A key press: Q.23 sends the column tone about 2 dB above the row tone."""
    row = next(i for i, keys in enumerate(KEYPAD) if digit in keys)
    column = KEYPAD[row].index(digit)
    return tones(
        ms(duration_ms),
        (ROW_FREQUENCIES[row] * (1 + deviation), level(row_dbm0)),
        (COLUMN_FREQUENCIES[column] * (1 + deviation), level(column_dbm0)),
    )


def silence(duration_ms: float) -> list[float]:
    return [0.0] * ms(duration_ms)


def pcm(samples: list[float]) -> bytes:
    clipped = (max(-32768, min(32767, round(s))) for s in samples)
    return struct.pack(f"<{len(samples)}h", *clipped)


def detect(samples: list[float], **options: float) -> list[str]:
    return InbandDetector(**options).feed(pcm(samples))  # type: ignore[arg-type]


def dial(digits: str, on_ms: float = 60, off_ms: float = 60, **tone: float) -> list[float]:
    signal = silence(30)
    for digit in digits:
        signal += key(digit, on_ms, **tone) + silence(off_ms)
    return signal


def test_every_key_is_found() -> None:
    assert "".join(detect(dial("0123456789*#ABCD"))) == "0123456789*#ABCD"


def test_a_long_press_is_one_digit_and_a_repeat_needs_a_pause() -> None:
    assert detect(silence(20) + key("5", 1500) + silence(100)) == ["5"]
    assert detect(dial("55", on_ms=80, off_ms=40)) == ["5", "5"]
    # A 10 ms break inside one press is not a pause (ITU-T Q.24).
    assert detect(key("5", 100) + silence(10) + key("5", 100)) == ["5"]


@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_40_ms_is_enough_and_20_ms_is_not(offset: int) -> None:
    # Wherever the tone falls against the analysis windows.
    for digit in "19#D":
        assert detect([0.0] * offset + key(digit, 40) + silence(50)) == [digit]
        assert detect([0.0] * offset + key(digit, 20) + silence(50)) == []


def test_chunk_sizes_do_not_matter() -> None:
    signal = pcm(dial("147*", on_ms=50, off_ms=50))
    detector = InbandDetector()
    found: list[str] = []
    rng = random.Random(4)
    position = 0
    while position < len(signal):
        size = 2 * rng.randint(0, 150)
        found += detector.feed(signal[position : position + size])
        position += size
    assert "".join(found) == "147*"


def test_levels_and_twist() -> None:
    # Quiet but within range, and twist within Q.24 both ways.
    assert detect(dial("3", row_dbm0=-25, column_dbm0=-25)) == ["3"]
    assert detect(dial("3", row_dbm0=-8, column_dbm0=-5)) == ["3"]  # column 3 dB up
    assert detect(dial("3", row_dbm0=-4, column_dbm0=-10)) == ["3"]  # column 6 dB down
    # Too quiet, and twist well past the limits.
    assert detect(dial("3", row_dbm0=-40, column_dbm0=-40)) == []
    assert detect(dial("3", row_dbm0=-12, column_dbm0=-5)) == []  # column 7 dB up
    assert detect(dial("3", row_dbm0=-3, column_dbm0=-14)) == []  # column 11 dB down
    # One tone alone is not a key.
    assert detect(tones(ms(200), (ROW_FREQUENCIES[0], level(-5)))) == []
    assert detect(tones(ms(200), (COLUMN_FREQUENCIES[2], level(-5)))) == []


@pytest.mark.parametrize("deviation", [-0.015, 0.015])
def test_frequencies_within_tolerance_are_found(deviation: float) -> None:
    assert "".join(detect(dial("0123456789*#ABCD", deviation=deviation))) == "0123456789*#ABCD"


def test_two_rows_at_once_are_not_a_key() -> None:
    both = tones(ms(200), (697, level(-7)), (770, level(-7)), (1209, level(-5)))
    assert detect(both) == []


@pytest.mark.parametrize("snr_db", [20, 10, 6])
def test_keys_in_white_noise(snr_db: float) -> None:
    rng = random.Random(snr_db)
    signal = dial("2580#", on_ms=70, off_ms=70)
    # Noise power relative to one tone of the pair.
    sigma = level(-7) / math.sqrt(2) * 10 ** (-snr_db / 20)
    noisy = [s + rng.gauss(0, sigma) for s in signal]
    assert "".join(detect(noisy)) == "2580#"


def test_keys_through_g711() -> None:
    signal = pcm(dial("9*6", on_ms=50, off_ms=50))
    for encode, decode in (
        (g711.pcm_to_ulaw, g711.ulaw_to_pcm),
        (g711.pcm_to_alaw, g711.alaw_to_pcm),
    ):
        assert InbandDetector().feed(decode(encode(signal))) == ["9", "*", "6"]


def test_silence_and_noise_are_not_keys() -> None:
    rng = random.Random(1)
    assert detect(silence(2000)) == []
    assert detect([rng.gauss(0, 3000) for _ in range(ms(3000))]) == []
    assert detect([rng.gauss(0, 30) for _ in range(ms(1000))]) == []


def vowel(
    formants: tuple[float, ...], pitch: float, glide: float, duration_ms: float
) -> list[float]:
    """A voiced sound: harmonics of a (gliding) pitch shaped by formant resonances."""
    count = ms(duration_ms)
    samples = [0.0] * count
    phases = [0.0] * 60
    for n in range(count):
        f0 = pitch + glide * n / count
        value = 0.0
        for harmonic in range(1, 60):
            frequency = harmonic * f0
            if frequency > 3800:
                break
            gain = sum(1 / (1 + ((frequency - f) / (60 + 0.05 * f)) ** 2) for f in formants)
            phases[harmonic] += 2 * math.pi * frequency / RATE
            value += gain * math.sin(phases[harmonic])
        samples[n] = value
    peak = max(abs(s) for s in samples)
    return [s * 12000 / peak for s in samples]


# First three formants of English vowels (Peterson and Barney).
VOWELS = {
    "father": (730, 1090, 2440),
    "heed": (270, 2290, 3010),
    "who'd": (300, 870, 2240),
    "head": (530, 1840, 2480),
    "hawed": (570, 840, 2410),
    "had": (660, 1720, 2410),
    "heard": (490, 1350, 1690),
}


@pytest.mark.parametrize("formants", VOWELS.values(), ids=VOWELS.keys())
def test_speech_like_sounds_are_not_keys(formants: tuple[float, ...]) -> None:
    for pitch, glide in ((95, 10), (120, -15), (160, 20), (210, -25)):
        assert detect(vowel(formants, pitch, glide, 400)) == []


@pytest.mark.parametrize(
    "chord",
    [
        (350, 440),
        (440, 480),
        (480, 620),
        (400, 1000, 2000),
        (523, 659, 784),
        (600, 1100),
        (500, 1000, 1500, 2000),
    ],
)
def test_tones_that_are_not_dtmf_are_not_keys(chord: tuple[float, ...]) -> None:
    # Dial tone, ringback and busy (350+440, 440+480, 480+620) among them.
    assert detect(tones(ms(500), *((f, level(-8)) for f in chord))) == []


def test_odd_byte_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        InbandDetector().feed(b"\x00\x01\x02")
    with pytest.raises(ValueError):
        InbandDetector(block_size=16)
    with pytest.raises(ValueError):
        InbandDetector(step=0)
