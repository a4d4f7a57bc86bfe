"""G.711 u-law and A-law (ITU-T G.711), frame at a time, without ``audioop``.

Linear audio is 16-bit signed little-endian PCM, as RTP audio is decoded and
recordings are written; codes are one byte a sample. The per-sample rules
(:func:`ulaw_encode_sample` and friends) follow the ITU-T G.191 reference
implementation of G.711; they run once, at import, to fill lookup tables, and
whole frames are then converted at C speed:

* decoding translates the codes twice (code -> low byte, code -> high byte)
  and interleaves the two with slice assignment;
* encoding reads the frame as unsigned 16-bit words and indexes a 65,536-entry
  table with them;
* u-law <-> A-law is one ``bytes.translate`` through the conversion tables of
  G.711 (Tables 3 and 4), which are not the same as decode-then-encode.

Measured on CPython 3.11 (x86-64), a 20 ms frame (160 samples) takes about
4.7 µs to encode, 0.8 µs to decode and 0.15 µs to transcode; filling the
tables at import takes about 25 ms.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable

#: The u-law code for silence (positive zero) and the A-law code nearest zero.
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

_ULAW_BIAS = 0x84  # 33 in 14-bit units, scaled to 16 bits
_ALAW_EVEN_BITS = 0x55


def ulaw_encode_sample(sample: int) -> int:
    """One 16-bit sample to a u-law code (G.711 section 3, Table 2).

    Only the 14 most significant bits count; a negative value is folded by
    one's complement, so -1 is the "negative zero" code 0x7F.
    """
    value = sample >> 2
    magnitude = ~value if value < 0 else value
    magnitude = min(magnitude + (_ULAW_BIAS >> 2), 0x1FFF)
    segment = (magnitude >> 6).bit_length()  # 0..7, the chord (exponent)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code = (segment << 4) | mantissa
    # Codes are transmitted inverted; the sign bit is 1 for positive samples.
    return (code ^ 0x7F) | (0x80 if sample >= 0 else 0x00)


def ulaw_decode_sample(code: int) -> int:
    """A u-law code to the 16-bit sample at the centre of its interval."""
    inverted = ~code & 0xFF
    segment = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return magnitude if code & 0x80 else -magnitude


def alaw_encode_sample(sample: int) -> int:
    """One 16-bit sample to an A-law code (G.711 section 2, Table 1).

    Only the 12 most significant bits count; negative values are folded by
    one's complement and the even bits of the result are inverted.
    """
    magnitude = (~sample if sample < 0 else sample) >> 4
    if magnitude > 0x0F:
        segment = 1
        while magnitude > 0x1F:
            magnitude >>= 1
            segment += 1
        magnitude = (segment << 4) | (magnitude - 0x10)
    if sample >= 0:
        magnitude |= 0x80
    return magnitude ^ _ALAW_EVEN_BITS


def alaw_decode_sample(code: int) -> int:
    """An A-law code to the 16-bit sample at the centre of its interval."""
    value = (code ^ _ALAW_EVEN_BITS) & 0x7F
    segment = value >> 4
    mantissa = value & 0x0F
    if segment > 0:
        mantissa += 0x10
    magnitude = (mantissa << 4) + 0x08
    if segment > 1:
        magnitude <<= segment - 1
    return magnitude if code & 0x80 else -magnitude


# G.711 Tables 3 and 4 by magnitude (0 = the smallest step, 127 = the largest):
# u-law magnitude -> A-law magnitude, and back. The standard defines them;
# they differ from decoding and re-encoding near the segment edges.
# fmt: off
_ULAW_TO_ALAW_MAGNITUDE = bytes((
      0,   0,   1,   1,   2,   2,   3,   3,   4,   4,   5,   5,   6,   6,   7,   7,
      8,   9,  10,  11,  12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,
     24,  26,  28,  30,  32,  33,  34,  35,  36,  37,  38,  39,  40,  41,  42,  43,
     45,  47,  48,  49,  50,  51,  52,  53,  54,  55,  56,  57,  58,  59,  60,  61,
     63,  64,  65,  66,  67,  68,  69,  70,  71,  72,  73,  74,  75,  76,  77,  78,
     80,  81,  82,  83,  84,  85,  86,  87,  88,  89,  90,  91,  92,  93,  94,  95,
     96,  97,  98,  99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
))
_ALAW_TO_ULAW_MAGNITUDE = bytes((
      1,   3,   5,   7,   9,  11,  13,  15,  16,  17,  18,  19,  20,  21,  22,  23,
     24,  25,  26,  27,  28,  29,  30,  31,  32,  32,  33,  33,  34,  34,  35,  35,
     36,  37,  38,  39,  40,  41,  42,  43,  44,  45,  46,  47,  48,  48,  49,  49,
     50,  51,  52,  53,  54,  55,  56,  57,  58,  59,  60,  61,  62,  63,  64,  64,
     65,  66,  67,  68,  69,  70,  71,  72,  73,  74,  75,  76,  77,  78,  79,  79,
     80,  81,  82,  83,  84,  85,  86,  87,  88,  89,  90,  91,  92,  93,  94,  95,
     96,  97,  98,  99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
))
# fmt: on


def _ulaw_to_alaw_code(code: int) -> int:
    magnitude = _ULAW_TO_ALAW_MAGNITUDE[(code & 0x7F) ^ 0x7F]
    return (magnitude | (code & 0x80)) ^ _ALAW_EVEN_BITS


def _alaw_to_ulaw_code(code: int) -> int:
    magnitude = _ALAW_TO_ULAW_MAGNITUDE[(code ^ _ALAW_EVEN_BITS) & 0x7F]
    return (magnitude ^ 0x7F) | (code & 0x80)


def _decode_bytes(decode: Callable[[int], int]) -> tuple[bytes, bytes]:
    """Two translate tables: code -> low byte and code -> high byte of its sample."""
    words = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(word & 0xFF for word in words), bytes(word >> 8 for word in words)


def _encode_table(encode: Callable[[int], int]) -> bytes:
    """The code for every 16-bit word, indexed as a native ``array("H")`` reads it."""
    # Both laws ignore the two low bits, so 16,384 evaluations fill the table.
    by_top_bits = bytes(encode(_signed((top << 2) & 0xFFFF)) for top in range(0x4000))
    table = bytearray(0x10000)
    for low in range(4):
        table[low::4] = by_top_bits
    if sys.byteorder == "big":
        # Frames are little-endian: a big-endian host reads every word swapped.
        table = bytearray(table[((word & 0xFF) << 8) | (word >> 8)] for word in range(0x10000))
    return bytes(table)


def _signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


_ULAW_LOW, _ULAW_HIGH = _decode_bytes(ulaw_decode_sample)
_ALAW_LOW, _ALAW_HIGH = _decode_bytes(alaw_decode_sample)
# Held as lists: ``map(list.__getitem__, ...)`` is the fastest lookup CPython
# has (a third quicker than indexing ``bytes``), for 512 KiB a table.
_ULAW_ENCODE = list(_encode_table(ulaw_encode_sample))
_ALAW_ENCODE = list(_encode_table(alaw_encode_sample))
_ULAW_TO_ALAW = bytes(_ulaw_to_alaw_code(code) for code in range(256))
_ALAW_TO_ULAW = bytes(_alaw_to_ulaw_code(code) for code in range(256))


def _decode(codes: bytes, low: bytes, high: bytes) -> bytes:
    pcm = bytearray(2 * len(codes))
    pcm[0::2] = codes.translate(low)
    pcm[1::2] = codes.translate(high)
    return bytes(pcm)


def _encode(pcm: bytes, table: list[int]) -> bytes:
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM has an even number of bytes, not {len(pcm)}")
    return bytes(map(table.__getitem__, array("H", pcm)))


def ulaw_to_pcm(codes: bytes) -> bytes:
    """Decode u-law codes to 16-bit little-endian PCM (two bytes a code)."""
    return _decode(codes, _ULAW_LOW, _ULAW_HIGH)


def alaw_to_pcm(codes: bytes) -> bytes:
    """Decode A-law codes to 16-bit little-endian PCM (two bytes a code)."""
    return _decode(codes, _ALAW_LOW, _ALAW_HIGH)


def pcm_to_ulaw(pcm: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to u-law; ``ValueError`` on an odd length."""
    return _encode(pcm, _ULAW_ENCODE)


def pcm_to_alaw(pcm: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to A-law; ``ValueError`` on an odd length."""
    return _encode(pcm, _ALAW_ENCODE)


def ulaw_to_alaw(codes: bytes) -> bytes:
    """Transcode u-law to A-law by G.711 Table 3, without going through PCM."""
    return codes.translate(_ULAW_TO_ALAW)


def alaw_to_ulaw(codes: bytes) -> bytes:
    """Transcode A-law to u-law by G.711 Table 4, without going through PCM."""
    return codes.translate(_ALAW_TO_ULAW)
