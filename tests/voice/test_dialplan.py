"""The dial plan without sockets: rules rewrite in order, roles allow by whole-number patterns."""

from __future__ import annotations

import pytest

from callcenter.config import OutboundSettings
from callcenter.voice.dialplan import DialPlan, InvalidNumber, NotAllowed

MOBILE = r"\+861[3-9]\d{9}"
RULES = [
    {"pattern": r"0(\d+)", "replace": r"+86\1"},
    {"pattern": r"(1[3-9]\d{9})", "replace": r"+86\1"},
]


def plan(**allow: list[str]) -> DialPlan:
    return DialPlan.from_settings(OutboundSettings(dial_rules=RULES, allow=allow))


@pytest.mark.parametrize(
    ("typed", "dialled"),
    [
        ("013800138000", "+8613800138000"),
        ("13800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("(010) 8888-6666", "+861088886666"),
        ("+8613800138000", "+8613800138000"),
        ("110", "110"),
    ],
)
def test_rules_rewrite_in_order_each_seeing_the_last_result(typed: str, dialled: str) -> None:
    assert plan().rewrite(typed) == dialled


@pytest.mark.parametrize(
    "typed", ["", "+", "abc", "sip:100@evil", "123;user=phone", "1" * 33, "+86 138\n00"]
)
def test_what_is_not_a_number_is_refused(typed: str) -> None:
    with pytest.raises(InvalidNumber):
        plan(agent=[".*"]).check("agent", typed)


def test_a_rule_cannot_make_something_else_of_a_number() -> None:
    rogue = DialPlan([(r"(\d+)", r"\1@evil")], {"agent": [".*"]})
    with pytest.raises(InvalidNumber):
        rogue.check("agent", "123")


def test_nothing_is_allowed_by_default() -> None:
    default = DialPlan.from_settings(OutboundSettings())
    for role in ("agent", "supervisor", "admin"):
        for number in ("+8613800138000", "110", "013800138000"):
            with pytest.raises(NotAllowed):
                default.check(role, number)


def test_patterns_are_per_role_and_match_the_whole_rewritten_number() -> None:
    rules = plan(agent=[MOBILE], supervisor=[MOBILE, r"\+86(10|2\d)\d{8}"])
    assert rules.check("agent", "013800138000") == "+8613800138000"
    assert rules.check("supervisor", "01088886666") == "+861088886666"
    for role, number in [
        ("agent", "01088886666"),  # a landline: supervisors only
        ("agent", "+88213456789"),  # satellite, premium rate
        ("agent", "+86138001380001"),  # a mobile pattern with a digit more
        ("admin", "013800138000"),  # admins are not given agents' patterns
    ]:
        with pytest.raises(NotAllowed):
            rules.check(role, number)
