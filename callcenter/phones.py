"""Phone numbers as E.164, the form every lookup and every stored number uses."""

from __future__ import annotations

import phonenumbers

#: What networks put in From or P-Asserted-Identity for a hidden caller.
WITHHELD = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})
#: Longest raw input considered (a security limit; real numbers are far shorter).
MAX_RAW_LENGTH = 64


def to_e164(raw: str | None, default_region: str) -> str | None:
    """Return ``raw`` as an E.164 string, or ``None`` when it is withheld or invalid.

    National numbers are read in ``default_region``. A ``None`` never matches
    or creates a customer, so callers must treat it as "no number".
    """
    if raw is None:
        return None
    text = raw.strip()
    if text.lower() in WITHHELD or len(text) > MAX_RAW_LENGTH:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
