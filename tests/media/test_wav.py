"""WAV recordings: read back by the standard library, channels, padding, patched sizes, limits."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.media.wav import HEADER_SIZE, WavWriter, interleave, read_recording


def samples(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}h", *values)


def test_a_stereo_recording_reads_back_with_the_wave_module(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    caller = [samples(*range(i, i + 160)) for i in range(0, 800, 160)]
    agent = [samples(*range(-i, -i - 160, -1)) for i in range(0, 800, 160)]
    with path.open("wb") as file, WavWriter(file) as writer:
        for left, right in zip(caller, agent, strict=True):
            writer.write(left, right)
        assert writer.frames == 800 and writer.duration == pytest.approx(0.1)
    with wave.open(str(path), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (2, 2, 8000)
        assert reader.getnframes() == 800
        data = reader.readframes(800)
    assert struct.unpack("<4h", data[:8]) == (0, 0, 1, -1)
    assert path.stat().st_size == HEADER_SIZE + 800 * 4
    with path.open("rb") as file:
        recording = read_recording(file)
    assert recording.sample_rate == 8000
    assert recording.caller == b"".join(caller) and recording.agent == b"".join(agent)


def test_the_shorter_side_is_padded_with_silence() -> None:
    buffer = io.BytesIO()
    with WavWriter(buffer) as writer:
        writer.write(samples(1, 2, 3), samples(-1))
        writer.write(b"", samples(7, 8))
    buffer.seek(0)
    recording = read_recording(buffer)
    assert recording.caller == samples(1, 2, 3, 0, 0)
    assert recording.agent == samples(-1, 0, 0, 7, 8)


def test_the_header_is_patched_on_close_and_on_request() -> None:
    buffer = io.BytesIO()
    writer = WavWriter(buffer)
    writer.write(samples(5) * 160, samples(6) * 160)
    assert struct.unpack_from("<I", buffer.getvalue(), 4)[0] == 36  # not yet patched
    assert struct.unpack_from("<I", buffer.getvalue(), 40)[0] == 0
    writer.patch_header()
    assert struct.unpack_from("<I", buffer.getvalue(), 40)[0] == 640
    writer.write(samples(5) * 160, samples(6) * 160)
    assert buffer.tell() == HEADER_SIZE + 1280  # patching came back to the end
    writer.close()
    value = buffer.getvalue()
    assert value[:4] == b"RIFF" and value[8:16] == b"WAVEfmt "
    assert struct.unpack_from("<I", value, 4)[0] == 36 + 1280
    assert struct.unpack_from("<I", value, 40)[0] == 1280
    writer.close()  # twice is harmless
    with pytest.raises(ValueError):
        writer.write(samples(1), samples(1))


def test_a_recording_after_other_data_in_the_file() -> None:
    buffer = io.BytesIO()
    buffer.write(b"preamble")
    with WavWriter(buffer) as writer:
        writer.write(samples(9, 9), samples(8, 8))
    buffer.seek(8)
    assert read_recording(io.BytesIO(buffer.read())).caller == samples(9, 9)


def test_mono() -> None:
    buffer = io.BytesIO()
    with WavWriter(buffer, channels=1, sample_rate=16000) as writer:
        writer.write(samples(1, 2, 3))
        with pytest.raises(ValueError):
            writer.write(samples(1), samples(2))
    buffer.seek(0)
    recording = read_recording(buffer)
    assert recording.sample_rate == 16000
    assert (recording.caller, recording.agent) == (samples(1, 2, 3), None)


def test_bad_input_and_the_size_limit() -> None:
    writer = WavWriter(io.BytesIO(), max_data_bytes=8)
    with pytest.raises(ValueError):
        writer.write(b"\x00\x01\x02", b"")
    with pytest.raises(ValueError):
        writer.write(b"", b"\x01")
    writer.write(samples(1, 2), samples(3, 4))
    with pytest.raises(ValueError, match="size limit"):
        writer.write(samples(1), samples(1))
    assert writer.data_bytes == 8
    with pytest.raises(ValueError):
        WavWriter(io.BytesIO(), channels=3)


def test_reading_something_else_is_refused() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as other:
        other.setnchannels(1)
        other.setsampwidth(1)
        other.setframerate(8000)
        other.writeframes(b"\x80" * 10)
    buffer.seek(0)
    with pytest.raises(ValueError):
        read_recording(buffer)


SIDES = st.lists(st.integers(-32768, 32767), max_size=50)


@given(SIDES, SIDES)
def test_interleaving_keeps_each_side(left: list[int], right: list[int]) -> None:
    stereo = interleave(samples(*left), samples(*right))
    size = max(len(left), len(right))
    pairs = list(struct.iter_unpack("<2h", stereo))
    assert [p[0] for p in pairs] == left + [0] * (size - len(left))
    assert [p[1] for p in pairs] == right + [0] * (size - len(right))
