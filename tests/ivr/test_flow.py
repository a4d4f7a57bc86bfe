"""Flow loading: the shipped flows load, and every kind of bad flow is refused by name."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from callcenter.ivr.flow import FlowError, FlowLimits, load_flow, load_flows, parse_flow
from callcenter.ivr.steps import (
    BranchStep,
    CallbackStep,
    HoursCondition,
    LookupStep,
    MenuStep,
    QueueStep,
    SayStep,
    SetStep,
    VariableCondition,
)

FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"

HEAD = """\
language: en
languages: [en, zh-CN]
steps:
"""


def flow_text(*steps: str, head: str = HEAD) -> str:
    """A flow of ``steps`` (YAML list items, each dedented on its own)."""
    return head + textwrap.indent("".join(textwrap.dedent(s) for s in steps), "  ")


def refused(*steps: str, head: str = HEAD, limits: FlowLimits | None = None) -> FlowError:
    with pytest.raises(FlowError) as caught:
        parse_flow(flow_text(*steps, head=head), "demo", limits=limits)
    return caught.value


SAY = """\
- id: hello
  type: say
  text: {en: Hello., zh-CN: 你好。}
"""
BYE = """\
- id: bye
  type: hangup
"""


# -- the shipped flows ---------------------------------------------------------


def test_every_shipped_flow_loads() -> None:
    flows = load_flows(FLOWS)
    assert "main" in flows
    for name, flow in flows.items():
        assert flow.name == name
        assert set(flow.languages) == {"en", "zh-CN"}


def test_main_flow_shape() -> None:
    flow = load_flow(FLOWS / "main.yaml")
    assert flow.first == "identify"
    assert flow.uses_hours
    lookup = flow.steps["identify"]
    assert isinstance(lookup, LookupStep) and lookup.by == "caller"
    menu = flow.steps["main_menu"]
    assert isinstance(menu, MenuStep)
    assert {c.digit: c.goto for c in menu.choices} == {
        "1": "support",
        "2": "billing",
        "0": "any_agent",
        "9": "switch_language",
    }
    agent = next(c for c in menu.choices if c.digit == "0")
    assert "agent" in agent.phrases["en"]
    assert "人工服务" in agent.phrases["zh-CN"]
    queues = {s.queue for s in flow.steps.values() if isinstance(s, QueueStep)}
    assert queues == {"support", "billing", "agents"}
    for step in flow.steps.values():
        if isinstance(step, QueueStep):
            assert step.announce_every > 0 and step.next == "survey"
    # Every Chinese prompt is in characters, with a pinyin reading for the TTS.
    greeting = flow.steps["greeting"]
    assert isinstance(greeting, SayStep)
    chinese = greeting.text.speech("zh-CN")
    assert chinese.text.startswith("您好") and chinese.reading.startswith("nin2 hao3")


def test_defaults_and_resolved_targets() -> None:
    flow = parse_flow(
        flow_text(
            """\
            - id: ask
              type: menu
              prompt: {en: Press 1., zh-CN: 请按1。}
              choices:
                - {digit: 1, goto: bye}
            - id: lang
              type: set
              variable: language
              value: zh-CN
            - id: check
              type: branch
              when:
                - open: true
                  goto: bye
                - variable: customer_tier
                  in: [key, normal]
                  goto: bye
            """,
            BYE,
        ),
        "demo",
    )
    menu = flow.steps["ask"]
    assert isinstance(menu, MenuStep)
    assert menu.failed == "lang"  # a menu's 'failed' defaults to the following step
    assert (menu.retries, menu.timeout_seconds) == (2, 5.0)
    assert menu.choices[0].digit == "1"  # a YAML number is taken as its key
    set_step = flow.steps["lang"]
    assert isinstance(set_step, SetStep) and set_step.next == "check"
    branch = flow.steps["check"]
    assert isinstance(branch, BranchStep) and branch.next == "bye"
    assert branch.rules[0].condition == HoursCondition(True)
    assert branch.rules[1].condition == VariableCondition("customer_tier", "in", ("key", "normal"))


def test_reading_must_be_tone_numbered_pinyin() -> None:
    good = """\
    - id: hello
      type: say
      text:
        en: Hello.
        zh-CN: {text: "你好，请按{digit}。", reading: "ni3 hao3, qing3 an4 {digit}. lv4"}
    """
    parse_flow(flow_text(good, BYE), "demo")
    error = refused(
        """\
        - id: hello
          type: say
          text:
            en: Hello.
            zh-CN: {text: 你好。, reading: ni hao}
        """,
        BYE,
    )
    assert (error.step, error.field) == ("hello", "text.zh-CN.reading")
    assert "'ni' is not a pinyin syllable" in str(error)
    error = refused(
        """\
        - id: hello
          type: say
          text:
            en: Hello.
            zh-CN: {text: 你好。, reading: 你好}
        """,
        BYE,
    )
    assert error.field == "text.zh-CN.reading"


# -- each named error ---------------------------------------------------------


def test_unknown_step_type() -> None:
    error = refused("- {id: start, type: dance}\n" + BYE)
    assert (error.flow, error.step, error.field) == ("demo", "start", "type")
    assert "unknown step type 'dance'" in str(error)
    assert "known types: say, play, menu" in str(error)
    assert error.line == 4


def test_missing_next_at_the_end() -> None:
    error = refused(SAY)
    assert (error.step, error.field) == ("hello", "next")
    assert "no step follows" in str(error)


def test_unknown_target() -> None:
    error = refused(
        """\
        - id: ask
          type: menu
          prompt: {en: Press 1., zh-CN: 请按1。}
          choices:
            - {digit: 1, goto: nowhere}
        """,
        BYE,
    )
    assert (error.step, error.field) == ("ask", "choices.goto")
    assert "unknown step 'nowhere'" in str(error)


def test_unreachable_step() -> None:
    error = refused(BYE, SAY + "  next: bye\n")
    assert error.step == "hello"
    assert "no path from 'bye' reaches this step" in str(error)


def test_loop_without_input() -> None:
    error = refused(
        """\
        - id: hello
          type: say
          text: {en: Hello., zh-CN: 你好。}
        - id: again
          type: branch
          when:
            - {variable: x, equals: "1", goto: bye}
          next: hello
        """,
        BYE,
    )
    assert "loops without waiting for the caller or ending the call" in str(error)
    assert "hello -> again -> hello" in str(error) or "again -> hello -> again" in str(error)


def test_loop_through_a_menu_is_fine() -> None:
    parse_flow(
        flow_text(
            """\
            - id: hello
              type: say
              text: {en: Hello., zh-CN: 你好。}
            - id: ask
              type: menu
              prompt: {en: Press 1 to hear it again., zh-CN: 重听请按1。}
              choices:
                - {digit: 1, goto: hello}
            """,
            BYE,
        ),
        "demo",
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout", '"five"', "must be a number, not a text"),
        ("timeout", "0", "must be between 1 and 60, not 0"),
        ("retries", "20", "must be between 0 and 9, not 20"),
        ("retries", "1.5", "must be a whole number"),
        ("min_confidence", "2", "must be between 0 and 1"),
        ("prompt", "hello", "must map each language to its text"),
        ("choices", "{}", "must be a non-empty list"),
        ("tiemout", "5", "unknown field (known fields:"),
        ("next", "bye", "use 'failed'"),
    ],
)
def test_bad_menu_fields(field: str, value: str, message: str) -> None:
    fields = {
        "prompt": "{en: Press 1., zh-CN: 请按1。}",
        "choices": "[{digit: 1, goto: bye}]",
        field: value,
    }
    body = "".join(f"  {k}: {v}\n" for k, v in fields.items())
    error = refused(f"- id: ask\n  type: menu\n{body}" + BYE)
    assert (error.step, error.field) == ("ask", field)
    assert message in str(error)


@pytest.mark.parametrize(
    ("choices", "field", "message"),
    [
        ("[{digit: x, goto: bye}]", "choices[1].digit", "must be one DTMF key"),
        ("[{digit: 1, goto: bye}, {digit: '1', goto: bye}]", "choices[2].digit", "two choices"),
        ("[{goto: bye}]", "choices[1]", "needs a digit, speech phrases or both"),
        ("[{digit: 1}]", "choices[1].goto", "is missing"),
        ("[{digit: 1, goto: bye, speech: {fr: [oui]}}]", "choices[1].speech.fr", "not one of"),
        ("[{digit: 1, goto: bye, speech: {en: []}}]", "choices[1].speech.en", "non-empty list"),
        (
            "[{digit: 1, goto: bye, speech: {en: [Agent]}}, {digit: 2, goto: bye, speech: "
            "{en: [' agent ']}}]",
            "choices[2].speech.en",
            "used by two choices",
        ),
    ],
)
def test_bad_choices(choices: str, field: str, message: str) -> None:
    error = refused(
        "- id: ask\n  type: menu\n  prompt: {en: Press 1., zh-CN: 请按1。}\n"
        f"  choices: {choices}\n" + BYE
    )
    assert (error.step, error.field) == ("ask", field)
    assert message in str(error)


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        ("{id: s, type: say, text: {en: Hi.}}", "text", "has no text in zh-CN"),
        ("{id: s, type: say, text: {en: Hi., zh-CN: 嗨, fr: Salut}}", "text.fr", "not one of"),
        ("{id: s, type: say, text: {en: '', zh-CN: 嗨}}", "text.en", "is empty"),
        ("{id: s, type: say, text: {en: 'Hi {', zh-CN: 嗨}}", "text.en", "brace"),
        ("{id: s, type: say, text: {en: Hi., zh-CN: 嗨}, barge_in: yes please}", "barge_in", ""),
        ("{id: s, type: play, file: /etc/passwd}", "file", "is not a relative path"),
        ("{id: s, type: play, file: ../secret.wav}", "file", "may not leave"),
        ("{id: s, type: collect, variable: 1x, prompt: {en: a, zh-CN: 请}}", "variable", ""),
        (
            "{id: s, type: collect, variable: acct, prompt: {en: a, zh-CN: 请}, min_length: 5, "
            "max_length: 3}",
            "max_length",
            "less than min_length",
        ),
        ("{id: s, type: lookup, by: email}", "by", "'caller' or 'account'"),
        ("{id: s, type: lookup, by: account}", "variable", "is missing"),
        ("{id: s, type: set, variable: language, value: fr}", "value", "flow's languages"),
        ("{id: s, type: set, variable: priority, value: 12}", "value", "a priority is 0-9"),
        ("{id: s, type: set, variable: x}", "value", "exactly one of 'value' and 'from'"),
        ("{id: s, type: queue, queue: 'bad name'}", "queue", "is not 1-64 letters"),
        ("{id: s, type: queue, queue: q, announce_every: 5}", "announce_every", "at least 10"),
        ("{id: s, type: queue, queue: q, announce_every: 30}", "announce", "is missing"),
        ("{id: s, type: queue, queue: q, skills: {x: 9}}", "skills", "must be 1-5"),
        ("{id: s, type: queue, queue: q, callback_digit: 1}", "callback", "go together"),
        ("{id: s, type: voicemail, prompt: {en: a, zh-CN: 请}, max_seconds: 1}", "max_seconds", ""),
        ("{id: s, type: transfer, number: call-me}", "number", "is not a number"),
        ("{id: s, type: survey}", "prompt", "is missing"),
        ("{id: s, type: branch, when: []}", "when", "non-empty list of rules"),
        ("{id: s, type: branch, when: [{goto: bye}]}", "when[1]", "tests one of"),
        (
            "{id: s, type: branch, when: [{queue: q, waiting: {above: 3}, goto: bye}]}",
            "when[1].waiting.above",
            "unknown field",
        ),
        (
            "{id: s, type: branch, when: [{variable: x, equals: 1, in: [1], goto: bye}]}",
            "when[1].variable",
            "exactly one of",
        ),
        ("{id: s, type: branch, when: [{variable: x, in: [[1]], goto: bye}]}", "when[1].in", ""),
        (
            "{id: s, type: branch, when: [{queue: q, waiting: {}, goto: bye}]}",
            "when[1].waiting",
            "",
        ),
        (
            "{id: s, type: branch, when: [{queue: q, waiting: {at_most: -1}, goto: bye}]}",
            "when[1].waiting.at_most",
            "0 or more",
        ),
        ("{id: s, type: branch, when: [{queue: q, goto: bye}]}", "when[1].queue", "exactly one"),
        (
            "{id: s, type: collect, variable: a, prompt: {en: a, zh-CN: 请}, terminator: x}",
            "terminator",
            "'#', '*' or false",
        ),
        ("{id: s, type: lookup, variable: acct}", "variable", "only for 'by: account'"),
        ("{id: s, type: queue, queue: q, skills: 3}", "skills", "must be a list of skills"),
        ("{id: s, type: queue, queue: q, language_skills: {fr: x}}", "language_skills.fr", ""),
        ("{id: s, type: queue, queue: q, language_skills: [x]}", "language_skills", "must map"),
        ("{id: s, type: queue, queue: q, announce: {en: a, zh-CN: 请}}", "announce", "needs"),
        ("{id: s, type: transfer, number: '100', next: bye}", "next", "ends the flow"),
        ("{id: s, type: hangup, next: bye}", "next", "ends the flow"),
        ("{id: s, type: hangup, reason: Bad Reason}", "reason", "a-z"),
        ("{id: s, type: say, text: {en: Hi., zh-CN: [嗨]}}", "text.zh-CN", "must be a text or"),
        ("{id: s, type: say, text: {en: Hi., zh-CN: 嗨}, next: 9lives}", "next", "a step id"),
        ("{id: s, type: set, variable: x, value: [1]}", "value", "must be a string"),
    ],
)
def test_bad_fields(step: str, field: str, message: str) -> None:
    error = refused(f"- {step}\n" + BYE)
    assert (error.step, error.field) == ("s", field)
    assert message in str(error)


def test_bad_flow_fields() -> None:
    error = refused(SAY, BYE, head="language: fr\nlanguages: [en, zh-CN]\nsteps:\n")
    assert error.field == "language" and "not in languages" in str(error)
    error = refused(SAY, BYE, head="languages: [en, fr]\nsteps:\n")
    assert error.field == "languages" and "'fr' is not one of en, zh-CN" in str(error)
    error = refused(SAY, BYE, head="name: other\nlanguages: [en, zh-CN]\nsteps:\n")
    assert error.field == "name"
    error = refused(SAY, BYE, head="languages: [en, zh-CN]\ncolour: red\nsteps:\n")
    assert error.field == "colour"
    with pytest.raises(FlowError, match="steps"):
        parse_flow("languages: [en]\nsteps: []\n", "demo")


def test_step_ids() -> None:
    assert "two steps have this id" in str(refused(BYE + BYE))
    assert "step #1 needs an 'id'" in str(refused("- {type: hangup}\n"))
    assert "step #1 must be a mapping" in str(refused("- hello\n"))


def test_callback_links() -> None:
    offer = """\
    - id: offer
      type: callback
      prompt: {en: Press 1., zh-CN: 请按1。}
    """
    error = refused("- {id: wait, type: queue, queue: q, callback_digit: 1, callback: bye}\n" + BYE)
    assert (error.step, error.field) == ("wait", "callback")
    assert "not a callback step" in str(error)
    # Without 'declined' a callback step goes back to its queue, so only a queue may lead to it.
    error = refused(
        """\
        - id: ask
          type: menu
          prompt: {en: Press 1., zh-CN: 请按1。}
          choices: [{digit: 1, goto: offer}]
          failed: bye
        """,
        offer,
        BYE,
    )
    assert (error.step, error.field) == ("ask", "choices.goto")
    error = refused(offer, BYE)
    assert (error.step, error.field) == ("offer", "declined")
    flow = parse_flow(
        flow_text(
            "- {id: wait, type: queue, queue: q, callback_digit: 1, callback: offer, next: bye}\n",
            offer,
            BYE,
        ),
        "demo",
    )
    step = flow.steps["offer"]
    assert isinstance(step, CallbackStep) and step.declined == ""


# -- YAML and size limits ------------------------------------------------------


def test_yaml_problems() -> None:
    with pytest.raises(FlowError, match=r"\(line 2\): not valid YAML: expected .,. or .\]."):
        parse_flow("languages: [en\nsteps: x\n", "demo")
    with pytest.raises(FlowError, match="anchors and aliases are not allowed"):
        parse_flow(flow_text("- &a {id: bye, type: hangup}\n- *a\n"), "demo")
    with pytest.raises(FlowError, match="key 'type' appears twice") as caught:
        parse_flow(flow_text("- id: bye\n  type: hangup\n  type: say\n"), "demo")
    assert caught.value.line == 6
    with pytest.raises(FlowError, match="the file is empty"):
        parse_flow("", "demo")
    with pytest.raises(FlowError, match="not UTF-8"):
        parse_flow(b"languages: [\xff]\n", "demo")
    with pytest.raises(FlowError, match="must be a mapping"):
        parse_flow("- 1\n- 2\n", "demo")
    with pytest.raises(FlowError, match="flow name"):
        parse_flow(flow_text(BYE), "../main")


def test_size_limits() -> None:
    text = flow_text(SAY, BYE)
    with pytest.raises(FlowError, match="larger than 100 bytes"):
        parse_flow(text, "demo", limits=FlowLimits(max_bytes=100))
    error = refused(SAY, BYE, limits=FlowLimits(max_steps=1))
    assert error.field == "steps" and "more than 1 steps" in str(error)
    error = refused(SAY, BYE, limits=FlowLimits(max_prompt_chars=5))
    assert (error.step, error.field) == ("hello", "text.en")
    assert "longer than 5" in str(error)
    error = refused(
        "- id: ask\n  type: menu\n  prompt: {en: a, zh-CN: 请}\n  choices: "
        "[{digit: 1, goto: bye}, {digit: 2, goto: bye}]\n" + BYE,
        limits=FlowLimits(max_choices=1),
    )
    assert error.field == "choices" and "more than 1 choices" in str(error)


def test_load_flow_reads_at_most_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(flow_text(SAY, BYE) + "#" * 10_000 + "\n")
    with pytest.raises(FlowError, match="larger than 1000 bytes"):
        load_flow(path, limits=FlowLimits(max_bytes=1000))
    (tmp_path / "small.yaml").write_text(flow_text(BYE))
    path.unlink()
    assert list(load_flows(tmp_path)) == ["small"]
