from __future__ import annotations

import pytest

from callcenter.phones import to_e164


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("13800138000", "CN", "+8613800138000"),
        ("021-6234-5678", "CN", "+862162345678"),
        ("+44 20 7946 0958", "CN", "+442079460958"),
        ("0044 20 7946 0958", "CN", "+442079460958"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("anonymous", "CN", None),
        ("Restricted", "CN", None),
        ("", "CN", None),
        (None, "CN", None),
        ("12345", "CN", None),
        ("not a number", "CN", None),
        ("1" * 100, "CN", None),
    ],
)
def test_to_e164(raw: str | None, region: str, expected: str | None) -> None:
    assert to_e164(raw, region) == expected
