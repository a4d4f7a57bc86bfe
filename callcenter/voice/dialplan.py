"""What a user may dial out, and how the number goes to the trunk.

A number typed in the console is cleaned (spaces, dashes, dots and
parentheses dropped) and must then be digits with an optional leading
``+``. The dial rules rewrite it in order: a rule whose pattern matches the
whole number replaces it, and the next rule sees the result. The rewritten
number is what the trunk is asked for, and what the permissions judge: it
must match, whole, one of the patterns listed for the user's role. A role
with no patterns dials nothing, so with no permissions configured nobody
can call out (a stolen agent login cannot run up a toll bill).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from callcenter.config import OutboundSettings

#: Digits with an optional leading ``+``: all a number may hold, before and
#: after the dial rules (nothing that could change a SIP URI).
NUMBER = re.compile(r"\+?[0-9]{1,32}")
_SEPARATORS = str.maketrans("", "", " -.()\t")


class DialError(ValueError):
    """A number that may not be dialled; ``code`` says why and is safe to show."""

    code = "invalid_number"


class InvalidNumber(DialError):
    """Not a phone number, before or after the dial rules."""


class NotAllowed(DialError):
    """A valid number that the user's role may not dial."""

    code = "not_allowed"


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: re.Pattern[str]
    replace: str


class DialPlan:
    """The dial rules and the permissions per role; see the module docstring."""

    def __init__(
        self, rules: Sequence[tuple[str, str]], allow: Mapping[str, Sequence[str]]
    ) -> None:
        self.rules = tuple(Rule(re.compile(p), r) for p, r in rules)
        self.allow = {role: tuple(re.compile(p) for p in ps) for role, ps in allow.items()}

    @classmethod
    def from_settings(cls, settings: OutboundSettings) -> DialPlan:
        return cls([(r["pattern"], r["replace"]) for r in settings.dial_rules], settings.allow)

    def rewrite(self, number: str) -> str:
        """The number as the trunk gets it; raises InvalidNumber."""
        cleaned = number.translate(_SEPARATORS)
        if not NUMBER.fullmatch(cleaned):
            raise InvalidNumber("not a phone number")
        for rule in self.rules:
            match = rule.pattern.fullmatch(cleaned)
            if match is not None:
                cleaned = match.expand(rule.replace)
        if not NUMBER.fullmatch(cleaned):
            raise InvalidNumber("the dial rules do not make a phone number of it")
        return cleaned

    def check(self, role: str, number: str) -> str:
        """The rewritten number if ``role`` may dial it; raises InvalidNumber or NotAllowed."""
        dialled = self.rewrite(number)
        if not any(p.fullmatch(dialled) for p in self.allow.get(role, ())):
            raise NotAllowed(f"{dialled} may not be dialled")
        return dialled
