"""The interpreter walked through flows with events and virtual time (no I/O)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter.hours import BusinessCalendar
from callcenter.ivr.events import (
    Action,
    AgentAnswered,
    AgentLeft,
    CallerHungUp,
    CustomerFound,
    CustomerNotFound,
    Digit,
    Enqueue,
    Event,
    Hangup,
    Listen,
    LookupCustomer,
    Play,
    PromptDone,
    QueryQueue,
    QueueExited,
    QueueInfo,
    RecordVoicemail,
    RequestCallback,
    SaveSurvey,
    Say,
    SetLanguage,
    SpeechResult,
    StopListening,
    StopPrompt,
    StopRecording,
    Tick,
    Transfer,
    VoicemailDone,
)
from callcenter.ivr.flow import Flow, load_flow, parse_flow
from callcenter.ivr.interpreter import Heard, Interpreter
from callcenter.ivr.steps import MenuStep, Prompt, QueueStep, SayStep, SetStep, SurveyStep

FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows"
MAIN = load_flow(FLOWS / "main.yaml")
SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = BusinessCalendar.build(
    "Asia/Shanghai", [(day, dt.time(9), dt.time(18)) for day in range(5)]
)
OPEN = dt.datetime(2027, 3, 2, 10, 0, tzinfo=SHANGHAI)  # a Tuesday morning
CLOSED = dt.datetime(2027, 3, 7, 10, 0, tzinfo=SHANGHAI)  # a Sunday
KEY_CALLER = "+8613800138000"


def prompt(step: str, field: str = "prompt", flow: Flow = MAIN) -> Prompt:
    value = getattr(flow.steps[step], field)
    assert isinstance(value, Prompt)
    return value


def say(step: str, field: str = "prompt", language: str = "en", flow: Flow = MAIN) -> Say:
    """The Say action a prompt of ``flow`` becomes (without placeholders)."""
    speech = prompt(step, field, flow).speech(language)
    return Say(speech.text, language, speech.reading)


class Call:
    """One call: the interpreter, a virtual clock and the actions of the last step."""

    def __init__(
        self,
        flow: Flow = MAIN,
        *,
        now: dt.datetime = OPEN,
        caller: str = KEY_CALLER,
        speech: tuple[str, ...] = ("en",),
    ) -> None:
        self.now = now
        self.caller = caller
        self.ivr = Interpreter(
            flow,
            {"caller_number": caller, "called_number": "100"},
            now,
            calendar=CALENDAR,
            speech_languages=speech,
        )
        self.actions = self.ivr.start(now)

    def send(self, event: Event, *, after: float = 0.0) -> list[Action]:
        self.now += dt.timedelta(seconds=after)
        self.actions = self.ivr.handle(event, self.now)
        return self.actions

    def wait(self) -> list[Action]:
        """Let time run to the next deadline and send the Tick."""
        deadline = self.ivr.next_deadline()
        assert deadline is not None, "nothing is timed"
        assert deadline > self.now
        self.now = deadline
        self.actions = self.ivr.handle(Tick(), self.now)
        return self.actions

    def to_menu(self, found: Event | None = None) -> None:
        """From the start to the main menu playing (caller unknown unless ``found``)."""
        assert self.actions == [LookupCustomer("caller", self.caller)]
        self.send(found or CustomerNotFound(), after=0.2)
        self.send(PromptDone(), after=3)
        assert self.ivr.step == "main_menu"


def key_customer() -> CustomerFound:
    return CustomerFound("42", "上海华泰贸易", "key", "zh-CN")


# -- the main flow -------------------------------------------------------------


def test_key_customer_in_chinese_to_support_then_survey() -> None:
    call = Call()
    assert call.actions == [LookupCustomer("caller", KEY_CALLER)]
    assert call.ivr.next_deadline() == OPEN + dt.timedelta(seconds=5)

    assert call.send(key_customer(), after=0.1) == [
        SetLanguage("zh-CN"),
        say("greeting", "text", "zh-CN"),
    ]
    assert call.ivr.variables["customer_tier"] == "key"
    # No Chinese speech model here: the menu takes keys only, and does not listen.
    assert call.send(PromptDone(), after=3) == [say("main_menu", language="zh-CN")]
    assert call.send(PromptDone(), after=8) == []
    assert call.ivr.next_deadline() == call.now + dt.timedelta(seconds=6)

    actions = call.send(Digit("1"), after=1)
    assert actions == [
        Enqueue("support", 2, {"mandarin": 1}, "key", "", 45),
        QueryQueue("support"),
    ]
    assert call.send(QueueInfo("support", 0, 4, 150, position=3), after=0.1) == [
        Say(
            "您目前排在第3位，预计等待约3分钟。如需保留排队位置并由我们回电，请按1。",
            "zh-CN",
            "nin2 mu4 qian2 pai2 zai4 di4 3 wei4, yu4 ji4 deng3 dai4 yue1 3 fen1 zhong1. "
            "ru2 xu1 bao3 liu2 pai2 dui4 wei4 zhi4 bing4 you2 wo3 men5 hui2 dian4, qing3 an4 1.",
        )
    ]
    assert call.send(PromptDone(), after=9) == []
    assert call.wait() == [QueryQueue("support")]  # 45 s after the last query
    assert call.now == OPEN + dt.timedelta(seconds=0.1 + 3 + 8 + 1 + 45)
    assert call.send(QueueInfo("support", 0, 2, 40, position=1)) != []

    assert call.send(AgentAnswered("agent-7"), after=20) == [StopPrompt()]
    assert call.ivr.next_deadline() is None
    assert call.send(Digit("1")) == []  # keys while with the agent are not the IVR's
    assert call.send(AgentLeft(), after=300) == [say("survey", language="zh-CN")]
    assert call.send(Digit("5"), after=2) == [
        StopPrompt(),
        SaveSurvey(5),
        say("survey", "thanks", "zh-CN"),
    ]
    assert call.send(PromptDone(), after=2) == [say("goodbye", "text", "zh-CN")]
    assert call.send(PromptDone(), after=2) == [Hangup("completed")]
    assert call.ivr.finished and call.ivr.end_reason == "completed"
    assert call.ivr.next_deadline() is None
    assert call.ivr.path == (
        "identify",
        "customer_language",
        "key_customer",
        "key_priority",
        "hours",
        "greeting",
        "main_menu",
        "support",
        "survey",
        "goodbye",
        "end",
    )
    assert call.ivr.collected == {"main_menu": "1", "survey_score": "5"}
    assert call.ivr.language == "zh-CN"
    assert call.ivr.variables["agent"] == "agent-7"


def test_unknown_caller_menu_retries_then_any_agent() -> None:
    call = Call(caller="+12025550100")
    assert call.actions == [LookupCustomer("caller", "+12025550100")]
    assert call.send(CustomerNotFound()) == [say("greeting", "text")]
    # A key during the greeting stops it and goes to the menu, which finds it invalid.
    assert call.send(Digit("7"), after=1) == [
        StopPrompt(),
        say("main_menu", "invalid"),
        say("main_menu"),
    ]
    grammar = ("support", "technical support", "billing", "agent", "operator")
    assert call.send(PromptDone(), after=9) == [Listen(grammar, "en")]
    assert call.wait() == [StopListening(), say("main_menu", "no_input"), say("main_menu")]
    assert call.send(PromptDone(), after=9) == [Listen(grammar, "en")]
    # Third failure: retries (2) are used up, and the menu sends the caller to a person.
    actions = call.wait()
    assert actions == [
        StopListening(),
        Enqueue("agents", 0, {"english": 1}, None, "", 45),
        QueryQueue("agents"),
    ]
    assert call.ivr.collected == {}
    assert call.ivr.path[-2:] == ("main_menu", "any_agent")


def test_speech_chooses_and_is_recorded() -> None:
    call = Call(caller="+12025550100")
    call.to_menu()
    assert call.send(PromptDone(), after=9)[0] == Listen(
        ("support", "technical support", "billing", "agent", "operator"), "en"
    )
    # Unsure or out-of-grammar answers count as invalid input.
    assert call.send(SpeechResult("agent", 0.3), after=2) == [
        say("main_menu", "invalid"),
        say("main_menu"),
    ]
    call.send(PromptDone(), after=9)
    assert call.send(SpeechResult("billing please", 0.9), after=2)[0] == say("main_menu", "invalid")
    call.send(PromptDone(), after=9)
    actions = call.send(SpeechResult("Technical  Support", 0.93), after=2)
    assert actions[0] == Enqueue("support", 0, {"english": 1}, None, "", 45)
    assert call.ivr.recognised == (
        Heard("main_menu", "agent", 0.3, ""),
        Heard("main_menu", "billing please", 0.9, ""),
        Heard("main_menu", "Technical  Support", 0.93, "technical support"),
    )
    assert call.ivr.collected == {"main_menu": "Technical  Support"}


def test_digit_while_listening_stops_the_recogniser() -> None:
    call = Call(caller="+12025550100")
    call.to_menu()
    call.send(PromptDone(), after=9)
    actions = call.send(Digit("2"), after=1)
    assert actions[:2] == [StopListening(), Enqueue("billing", 0, {"english": 1}, None, "", 45)]
    assert call.send(SpeechResult("billing", 1.0)) == []  # too late: ignored


def test_switching_language_and_back() -> None:
    call = Call(caller="+12025550100")
    call.to_menu()
    assert call.send(Digit("9"), after=2) == [
        StopPrompt(),
        SetLanguage("zh-CN"),
        say("main_menu", language="zh-CN"),
    ]
    assert call.ivr.language == "zh-CN"
    assert call.send(Digit("9"), after=2) == [StopPrompt(), SetLanguage("en"), say("main_menu")]
    assert call.ivr.path.count("main_menu") == 3


def test_customer_language_not_in_flow_keeps_the_default() -> None:
    call = Call()
    actions = call.send(CustomerFound("7", "Jean Dupont", "normal", "fr"))
    assert actions == [say("greeting", "text")]
    assert call.ivr.language == "en"
    call.send(PromptDone())
    call.send(Digit("0"))
    assert call.actions[:2] == [
        StopPrompt(),
        Enqueue("agents", 0, {"english": 1}, "normal", "", 45),
    ]


def test_closed_goes_to_voicemail() -> None:
    call = Call(now=CLOSED)
    assert call.send(CustomerNotFound()) == [say("closed", "text")]
    assert call.send(PromptDone(), after=12) == [say("voicemail")]
    assert call.send(PromptDone(), after=6) == [RecordVoicemail(120, "support")]
    assert call.ivr.next_deadline() == call.now + dt.timedelta(seconds=135)
    assert call.send(Digit("#"), after=20) == [StopRecording()]
    assert call.send(Digit("#")) == []
    assert call.send(VoicemailDone("/spool/vm/1.wav", 20.0), after=0.2) == [
        say("message_taken", "text")
    ]
    assert call.ivr.variables["voicemail_path"] == "/spool/vm/1.wav"
    assert call.send(PromptDone(), after=4) == [Hangup("voicemail")]
    assert call.ivr.path == (
        "identify",
        "hours",
        "closed",
        "voicemail",
        "message_taken",
        "message_end",
    )


def test_lost_lookup_answer_times_out_as_not_found() -> None:
    call = Call()
    assert call.wait() == [say("greeting", "text")]
    assert call.send(key_customer()) == []  # a late answer changes nothing
    assert call.ivr.variables.get("customer_tier") is None


def test_callback_declined_then_accepted_keeps_the_place() -> None:
    call = Call(caller="+12025550100")
    call.to_menu()
    call.send(Digit("2"), after=1)
    call.send(QueueInfo("billing", 0, 9, 600, position=9))
    assert call.send(Digit("1"), after=3) == [StopPrompt(), say("offer_callback")]
    # Declining goes back to waiting without queueing again (no Enqueue).
    assert call.send(Digit("2"), after=4) == [StopPrompt(), QueryQueue("billing")]
    assert call.send(QueueInfo("billing", 0, 8, 540, position=8))[0].text.startswith(  # type: ignore[union-attr]
        "You are number 8 in line."
    )
    assert call.send(Digit("1"), after=3) == [StopPrompt(), say("offer_callback")]
    assert call.send(PromptDone(), after=6) == []
    assert call.send(Digit("1"), after=1) == [
        RequestCallback("billing", "+12025550100"),
        say("offer_callback", "confirm"),
    ]
    assert call.send(PromptDone(), after=4) == [Hangup("callback")]
    assert call.ivr.collected["callback_number"] == "+12025550100"


def test_callback_offer_unanswered_resumes_waiting() -> None:
    call = Call(caller="+12025550100")
    call.to_menu()
    call.send(Digit("1"))
    call.send(Digit("1"), after=10)
    call.send(PromptDone(), after=6)
    assert call.wait() == [QueryQueue("support")]
    assert call.ivr.step == "support"
    # The agent answers while the offer plays: the offer stops.
    call.send(Digit("1"), after=10)
    assert call.send(AgentAnswered()) == [StopPrompt()]
    assert call.send(AgentLeft(), after=60) == [say("survey")]


def test_queue_gives_up_leads_to_voicemail() -> None:
    call = Call(caller="+12025550100")
    call.to_menu()
    call.send(Digit("0"))
    assert call.send(QueueExited("timed_out"), after=900) == [StopPrompt(), say("busy", "text")]
    assert call.ivr.variables["queue_outcome"] == "timed_out"
    assert call.send(PromptDone()) == [say("voicemail")]


def test_survey_retries_and_no_answer() -> None:
    call = Call(caller="+12025550100")
    call.to_menu()
    call.send(Digit("1"))
    call.send(AgentAnswered(), after=30)
    call.send(AgentLeft(), after=100)
    assert call.send(Digit("8"), after=1) == [StopPrompt(), say("survey", "invalid"), say("survey")]
    call.send(PromptDone(), after=5)
    assert call.wait() == [say("goodbye", "text")]  # one retry, then no score
    assert "survey_score" not in call.ivr.collected


def test_caller_hangs_up() -> None:
    call = Call(caller="+12025550100")
    call.to_menu()
    assert call.send(CallerHungUp(), after=2) == []
    assert call.ivr.finished and call.ivr.end_reason == "caller_hung_up"
    assert call.ivr.next_deadline() is None
    assert call.send(Digit("1")) == []
    assert call.send(Tick(), after=100) == []


def test_lost_prompt_done_is_covered_by_a_deadline() -> None:
    call = Call(caller="+12025550100")
    call.send(CustomerNotFound())
    assert call.ivr.next_deadline() == call.now + dt.timedelta(seconds=300)
    assert call.wait() == [say("main_menu")]


def test_needs_a_calendar_when_the_flow_asks_for_hours() -> None:
    with pytest.raises(ValueError, match="pass a calendar"):
        Interpreter(MAIN, {}, OPEN)


def test_start_once_and_before_handle() -> None:
    ivr = Interpreter(MAIN, {}, OPEN, calendar=CALENDAR)
    with pytest.raises(RuntimeError):
        ivr.handle(PromptDone(), OPEN)
    # No caller number: the lookup is skipped.
    assert ivr.start(OPEN) == [say("greeting", "text")]
    with pytest.raises(RuntimeError):
        ivr.start(OPEN)


def test_events_check_their_values() -> None:
    with pytest.raises(ValueError, match="DTMF"):
        Digit("x")
    with pytest.raises(ValueError, match="confidence"):
        SpeechResult("yes", 1.5)


# -- other step types ----------------------------------------------------------

ACCOUNT_FLOW = parse_flow(
    """\
languages: [en, zh-CN]
steps:
  - id: intro
    type: play
    file: chime.wav
  - id: account
    type: collect
    variable: account
    prompt: {en: Enter your account number and press hash., zh-CN: 请输入账号并按井号键。}
    min_length: 4
    max_length: 6
    invalid: {en: That is not an account number., zh-CN: 账号无效。}
    failed: operator
  - id: find
    type: lookup
    by: account
    variable: account
    not_found: operator
  - id: staffed
    type: branch
    when:
      - queue: vip
        agents_available: {at_least: 1}
        goto: vip
      - variable: customer_tier
        equals: key
        goto: operator
  - id: bye
    type: hangup
  - id: vip
    type: queue
    queue: vip
    priority: 1
    skills: [vip]
  - id: operator
    type: transfer
    number: "+8621000000"
""",
    "account",
)


def account_call() -> Call:
    call = Call(ACCOUNT_FLOW)
    assert call.actions == [Play("chime.wav")]
    assert call.send(PromptDone(), after=1) == [say("account", flow=ACCOUNT_FLOW)]
    return call


def test_collect_digits_with_terminator_and_lookup_by_account() -> None:
    call = account_call()
    assert call.send(Digit("1"), after=1) == [StopPrompt()]
    for digit in "234":
        assert call.send(Digit(digit), after=0.5) == []
    assert call.send(Digit("#"), after=0.5) == [LookupCustomer("account", "1234")]
    assert call.ivr.collected == {"account": "1234"}
    assert call.send(CustomerFound("9", "Liu Yang", "normal")) == [QueryQueue("vip")]
    assert call.send(QueueInfo("vip", 2, 0, 0.0)) == [Enqueue("vip", 1, {"vip": 1}, "normal")]


def test_collect_ends_at_max_length_and_after_a_pause() -> None:
    call = account_call()
    call.send(PromptDone())
    for digit in "12345":
        assert call.send(Digit(digit), after=0.5) == []
    assert call.send(Digit("6")) == [LookupCustomer("account", "123456")]

    call = account_call()
    call.send(PromptDone())
    for digit in "98765":
        call.send(Digit(digit), after=0.5)
    assert call.ivr.next_deadline() == call.now + dt.timedelta(seconds=3)
    assert call.wait() == [LookupCustomer("account", "98765")]


def test_collect_too_short_and_no_input_then_failed() -> None:
    call = account_call()
    call.send(PromptDone())
    call.send(Digit("1"))
    assert call.send(Digit("#")) == [
        say("account", "invalid", flow=ACCOUNT_FLOW),
        say("account", flow=ACCOUNT_FLOW),
    ]
    call.send(PromptDone())
    assert call.wait() == [say("account", flow=ACCOUNT_FLOW)]  # no no_input prompt: just again
    call.send(PromptDone())
    assert call.wait() == [Transfer("+8621000000")]
    assert call.ivr.finished and call.ivr.end_reason == "transferred"


def test_branch_stats_time_out_and_variable_rule() -> None:
    call = account_call()
    for digit in "5555#":
        call.send(Digit(digit))
    call.send(CustomerFound("1", "Huatai", "key"))
    assert call.actions == [QueryQueue("vip")]
    assert call.send(QueueInfo("other", 5, 0, 0.0)) == []
    # The statistics never come: queue rules are false, the tier rule decides.
    assert call.wait() == [Transfer("+8621000000")]


def test_typed_ahead_digits_fill_a_collect() -> None:
    call = Call(ACCOUNT_FLOW)
    assert call.send(Digit("4"), after=0.5) == [StopPrompt()]
    assert call.ivr.step == "account"
    for digit in "321#":
        call.send(Digit(digit))
    assert call.actions == [LookupCustomer("account", "4321")]


def test_steps_are_frozen_and_typed() -> None:
    menu = MAIN.steps["main_menu"]
    assert isinstance(menu, MenuStep)
    with pytest.raises(AttributeError):
        menu.retries = 5  # type: ignore[misc]
    assert isinstance(MAIN.steps["survey"], SurveyStep)
    assert isinstance(MAIN.steps["support"], QueueStep)
    assert isinstance(MAIN.steps["greeting"], SayStep)


RULES_FLOW = parse_flow(
    """\
language: en
languages: [en]
steps:
  - id: rules
    type: branch
    when:
      - {variable: vip, set: true, goto: vip}
      - {variable: called_number, in: ["200", "300"], goto: message}
      - {variable: caller_number, not_equals: "+100", goto: offer}
  - {id: bye, type: hangup}
  - {id: vip, type: queue, queue: vip}
  - id: message
    type: voicemail
    prompt: {en: Leave a message.}
    max_seconds: 30
  - {id: after_message, type: hangup, reason: voicemail}
  - id: offer
    type: callback
    queue: callbacks
    prompt: {en: Press 1 to be called back.}
    declined: bye
  - {id: booked, type: hangup, reason: callback}
""",
    "rules",
)


def rules_call(**call_vars: str) -> tuple[Interpreter, list[Action]]:
    ivr = Interpreter(RULES_FLOW, call_vars, OPEN)
    return ivr, ivr.start(OPEN)


def test_variable_rules() -> None:
    assert rules_call(vip="yes")[1] == [Enqueue("vip", 0)]
    assert rules_call(called_number="300")[1] == [Say("Leave a message.", "en")]
    assert rules_call(caller_number="+200")[1] == [Say("Press 1 to be called back.", "en")]
    ivr, actions = rules_call(caller_number="+100", called_number="100")
    assert actions == [Hangup("completed")] and ivr.finished


def test_queue_without_overflow_hangs_up() -> None:
    ivr, _ = rules_call(vip="yes")
    assert ivr.handle(QueueExited("rejected_full"), OPEN) == [
        StopPrompt(),
        Hangup("queue_rejected_full"),
    ]
    assert ivr.end_reason == "queue_rejected_full"


def test_voicemail_barge_in_and_a_recorder_that_never_answers() -> None:
    ivr, _ = rules_call(called_number="200")
    later = OPEN + dt.timedelta(seconds=1)
    assert ivr.handle(Digit("5"), later) == [StopPrompt(), RecordVoicemail(30, "")]
    assert ivr.next_deadline() == later + dt.timedelta(seconds=45)
    assert ivr.handle(Tick(), later + dt.timedelta(seconds=45)) == [Hangup("voicemail")]
    assert "voicemail_path" not in ivr.variables


def test_callback_outside_a_queue() -> None:
    ivr, _ = rules_call(caller_number="+200")
    ivr.handle(PromptDone(), OPEN)
    assert ivr.handle(Digit("1"), OPEN) == [
        RequestCallback("callbacks", "+200"),
        Hangup("callback"),
    ]
    ivr, _ = rules_call(caller_number="+200")
    assert ivr.handle(Digit("2"), OPEN) == [StopPrompt(), Hangup("completed")]


def test_a_looping_flow_built_without_the_loader_is_hung_up() -> None:
    looping = Flow(
        "loop",
        "en",
        ("en",),
        {"a": SetStep("a", "b", "x", "1"), "b": SetStep("b", "a", "y", "2")},
    )
    ivr = Interpreter(looping, {}, OPEN)
    assert ivr.start(OPEN) == [Hangup("flow_error")]
    assert ivr.finished


def test_bad_call_variables() -> None:
    with pytest.raises(ValueError, match="bad call variable"):
        Interpreter(RULES_FLOW, {"not a name": "x"}, OPEN)
