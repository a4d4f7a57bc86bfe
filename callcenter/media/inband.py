"""In-band DTMF detection on 8 kHz linear PCM, for calls without RFC 4733 events.

The audio is read through windows of ``block_size`` samples, a new one every
``step`` samples; in each a Goertzel filter measures the power at the eight
DTMF frequencies (ITU-T Q.23). A window holds a digit when one row and one
column tone stand out:

* each is loud enough (``min_level_dbm0``, per tone);
* each beats the other tones of its group by ``relative_peak_db``;
* their levels differ within the twist limits of ITU-T Q.24: the column
  (high) tone may be up to ``reverse_twist_db`` louder than the row tone, or
  up to ``normal_twist_db`` weaker;
* together they carry at least ``min_tone_fraction`` of the window's energy,
  which is what keeps speech and music from passing for a digit.

A digit is reported once it holds in ``min_on_blocks`` windows in a row, and
the same digit again only after ``min_off_blocks`` windows without it. With
the defaults (102-sample windows every 51 samples, five on, four off) that is
Q.24's timing: a 40 ms tone is found wherever it falls, one under 25 ms never
is, a break of up to 15 ms inside a key press is bridged and a 30 ms pause
separates two presses.

The windows make filters about 78 Hz wide: tones within the 1.5% that Q.24
asks a receiver to accept are found, but a tone 3.5% off, which Q.24 asks it
to refuse, may be found too; and a row and a column tone leak into each
other's filters, so twist is measured to within about 2 dB.
"""

from __future__ import annotations

import math
import sys
from array import array
from operator import mul

ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
#: Digit at (row, column), as on the ITU-T Q.23 keypad.
KEYPAD = ("123A", "456B", "789C", "*0#D")

#: Peak amplitude, in 16-bit linear PCM, of a sine at 0 dBm0: G.711 puts the
#: full-scale sine at +3.17 dBm0.
DBM0_AMPLITUDE = 32768 * 10 ** (-3.17 / 20)


class InbandDetector:
    """Finds DTMF digits in a stream of 16-bit little-endian PCM, fed in any chunk sizes.

    One detector per call direction; :meth:`feed` keeps partial blocks
    between calls. The defaults suit 8 kHz audio.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 8000,
        block_size: int = 102,
        step: int = 51,
        min_level_dbm0: float = -30.0,
        relative_peak_db: float = 4.0,
        normal_twist_db: float = 8.0,
        reverse_twist_db: float = 4.0,
        min_tone_fraction: float = 0.55,
        min_on_blocks: int = 5,
        min_off_blocks: int = 4,
    ) -> None:
        if block_size < 32:
            raise ValueError("blocks under 32 samples cannot tell the DTMF rows apart")
        if not 0 < step <= block_size:
            raise ValueError("the step between windows is 1..block_size samples")
        self.sample_rate = sample_rate
        self.block_size = block_size
        self.step = step
        self.min_on_blocks = min_on_blocks
        self.min_off_blocks = min_off_blocks
        self._coefficients = [
            2.0 * math.cos(2.0 * math.pi * f / sample_rate)
            for f in ROW_FREQUENCIES + COLUMN_FREQUENCIES
        ]
        # Thresholds are compared with Goertzel powers, which are (N * A / 2) ** 2
        # for a tone of amplitude A filling the block.
        min_amplitude = DBM0_AMPLITUDE * 10 ** (min_level_dbm0 / 20)
        self._min_power = (block_size * min_amplitude / 2) ** 2
        # Two tones that pass the level test bring at least this much energy,
        # so quieter windows (silence, mostly) skip the filters.
        self._min_energy = block_size * min_amplitude**2
        self._relative_peak = 10 ** (relative_peak_db / 10)
        self._normal_twist = 10 ** (normal_twist_db / 10)
        self._reverse_twist = 10 ** (reverse_twist_db / 10)
        # Power of a pure tone against the block's energy sum(x**2) is N / 2.
        self._min_fraction = min_tone_fraction * block_size / 2
        self._pending: list[int] = []
        self._candidate: str | None = None
        self._run = 0
        self._reported: str | None = None
        self._off = 0

    def feed(self, pcm: bytes) -> list[str]:
        """Take the next stretch of audio; returns the digits that began in it, in order."""
        if len(pcm) % 2:
            raise ValueError(f"16-bit PCM has an even number of bytes, not {len(pcm)}")
        samples = array("h", pcm)
        if sys.byteorder == "big":
            samples.byteswap()
        pending = self._pending
        pending.extend(samples)
        digits = []
        size = self.block_size
        start = 0
        while len(pending) - start >= size:
            digit = self._step(self._classify(pending[start : start + size]))
            if digit is not None:
                digits.append(digit)
            start += self.step
        del pending[:start]
        return digits

    def _step(self, hit: str | None) -> str | None:
        """Advance the validation by one window; the digit to report, if any."""
        if hit == self._candidate:
            self._run += 1
        else:
            self._candidate, self._run = hit, 1
        if self._reported is not None:
            if hit == self._reported:
                self._off = 0
                return None
            self._off += 1
            if self._off >= self.min_off_blocks:
                self._reported = None
        if hit is not None and hit != self._reported and self._run >= self.min_on_blocks:
            self._reported, self._off = hit, 0
            return hit
        return None

    def _classify(self, block: list[int]) -> str | None:
        """The digit this window holds, or ``None``."""
        energy = sum(map(mul, block, block))
        if energy < self._min_energy:
            return None
        powers = [_goertzel(block, coefficient) for coefficient in self._coefficients]
        rows, columns = powers[:4], powers[4:]
        row = max(range(4), key=rows.__getitem__)
        column = max(range(4), key=columns.__getitem__)
        row_power, column_power = rows[row], columns[column]
        if row_power < self._min_power or column_power < self._min_power:
            return None
        if column_power > row_power * self._reverse_twist:
            return None
        if row_power > column_power * self._normal_twist:
            return None
        for group, best in ((rows, row), (columns, column)):
            peak = group[best]
            if any(p * self._relative_peak > peak for i, p in enumerate(group) if i != best):
                return None
        if row_power + column_power < self._min_fraction * energy:
            return None
        return KEYPAD[row][column]


def _goertzel(block: list[int], coefficient: float) -> float:
    """Power of ``block`` at the frequency whose ``2 cos(2 pi f / rate)`` is given."""
    s1 = s2 = 0.0
    for sample in block:
        s1, s2 = sample + coefficient * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2
