"""The steps of an IVR flow, as :mod:`callcenter.ivr.flow` builds them from YAML.

Every step is a frozen dataclass with an ``id`` and the ids of the steps it
may go to (already resolved: a missing ``next`` is the following step of the
file). :meth:`targets` lists those (field, step id) pairs, which is what the
loader checks and walks.

Steps fall in two kinds, which is what the loader's loop check needs:
steps that wait for the caller or end the call (``WAITS`` is true: menu,
collect, queue, callback, voicemail, survey, transfer, hangup) and steps that
pass straight on (say, play, lookup, branch, set). A cycle made only of the
second kind would loop for ever without the caller doing anything.

Prompts are text per language, spoken by TTS. A text may carry a ``reading``,
which is what the TTS speaks instead (Chinese prompts are written in
characters and read from tone-numbered pinyin, because espeak-ng's own
character-to-pinyin table gets polyphones and some tones wrong). Both may
hold ``{variable}`` placeholders, filled in when the prompt is spoken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

#: ``{name}`` in a prompt: replaced by the call variable ``name`` ("" if unset).
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

#: DTMF keys (RFC 4733 events 0-11; A-D are not used by IVR menus).
DTMF_KEYS = "0123456789*#"


def phrase_key(phrase: str) -> str:
    """A phrase as menus compare it: case, spaces and punctuation do not count."""
    return "".join(ch for ch in phrase.casefold() if ch.isalnum())


@dataclass(frozen=True, slots=True)
class Speech:
    """A prompt in one language: ``text`` to show, ``reading`` to speak if set."""

    text: str
    reading: str = ""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt in each language of its flow (the loader checks all are there)."""

    speeches: dict[str, Speech]

    def speech(self, language: str) -> Speech:
        return self.speeches[language]


@dataclass(frozen=True, slots=True)
class Choice:
    """A menu choice: a DTMF key and/or spoken phrases per language."""

    digit: str
    #: language -> phrases the caller may say (empty: DTMF only).
    phrases: dict[str, tuple[str, ...]]
    goto: str


@dataclass(frozen=True, slots=True)
class SayStep:
    KIND: ClassVar[str] = "say"
    WAITS: ClassVar[bool] = False
    id: str
    next: str
    text: Prompt
    #: A key pressed while it plays stops it (the key is kept for the next menu).
    barge_in: bool = True

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)


@dataclass(frozen=True, slots=True)
class PlayStep:
    KIND: ClassVar[str] = "play"
    WAITS: ClassVar[bool] = False
    id: str
    next: str
    #: Audio file, relative to the voice layer's sounds folder.
    file: str
    barge_in: bool = True

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)


@dataclass(frozen=True, slots=True)
class MenuStep:
    """Prompt, then wait for a key or a phrase; retry on bad or no input."""

    KIND: ClassVar[str] = "menu"
    WAITS: ClassVar[bool] = True
    id: str
    prompt: Prompt
    choices: tuple[Choice, ...]
    #: Where the call goes once every try failed.
    failed: str
    #: Tries after the first one.
    retries: int = 2
    #: Seconds of silence after the prompt that count as no input.
    timeout_seconds: float = 5.0
    invalid: Prompt | None = None
    no_input: Prompt | None = None
    #: A recognised phrase below this confidence counts as invalid input.
    min_confidence: float = 0.5

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (*(("choices.goto", c.goto) for c in self.choices), ("failed", self.failed))


@dataclass(frozen=True, slots=True)
class CollectStep:
    """Prompt, then collect digits into ``variable``."""

    KIND: ClassVar[str] = "collect"
    WAITS: ClassVar[bool] = True
    id: str
    next: str
    failed: str
    variable: str
    prompt: Prompt
    min_length: int = 1
    max_length: int = 16
    #: The key that ends the input early ("" for none: input ends at max_length).
    terminator: str = "#"
    #: Seconds to wait for the first key after the prompt.
    timeout_seconds: float = 5.0
    #: Seconds to wait for each further key.
    digit_timeout_seconds: float = 3.0
    retries: int = 2
    invalid: Prompt | None = None
    no_input: Prompt | None = None

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next), ("failed", self.failed))


@dataclass(frozen=True, slots=True)
class LookupStep:
    """Find the customer by the caller's number or by an account number collected."""

    KIND: ClassVar[str] = "lookup"
    WAITS: ClassVar[bool] = False
    id: str
    next: str
    not_found: str
    by: Literal["caller", "account"]
    #: For ``by: account``: the variable holding the account number.
    variable: str = ""

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next), ("not_found", self.not_found))


@dataclass(frozen=True, slots=True)
class HoursCondition:
    """True when the business calendar's opening state is ``open``."""

    open: bool


@dataclass(frozen=True, slots=True)
class VariableCondition:
    variable: str
    test: Literal["equals", "not_equals", "in", "set"]
    #: The values compared with (``set``: ("true",) or ("false",)).
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueueCondition:
    """A queue statistic within bounds (each bound inclusive, ``None`` for open)."""

    queue: str
    statistic: Literal["agents_available", "waiting", "expected_wait_seconds"]
    at_least: float | None = None
    at_most: float | None = None


Condition = HoursCondition | VariableCondition | QueueCondition


@dataclass(frozen=True, slots=True)
class Rule:
    condition: Condition
    goto: str


@dataclass(frozen=True, slots=True)
class BranchStep:
    """The first rule that holds decides; ``next`` when none does."""

    KIND: ClassVar[str] = "branch"
    WAITS: ClassVar[bool] = False
    id: str
    next: str
    rules: tuple[Rule, ...]

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (*(("when.goto", r.goto) for r in self.rules), ("next", self.next))

    @property
    def queues(self) -> tuple[str, ...]:
        """Queues whose statistics the rules need, each once."""
        names = (r.condition.queue for r in self.rules if isinstance(r.condition, QueueCondition))
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class SetStep:
    """Set ``variable`` to ``value`` or to the value of ``source``.

    Two variables are the call's settings: ``language`` (one of the flow's
    languages; another value is ignored) and ``priority`` (0-9, added to the
    queue step's priority).
    """

    KIND: ClassVar[str] = "set"
    WAITS: ClassVar[bool] = False
    id: str
    next: str
    variable: str
    value: str | None = None
    source: str | None = None

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)


@dataclass(frozen=True, slots=True)
class QueueStep:
    """Queue the call for an agent; ``next`` is where it goes once the agent leaves."""

    KIND: ClassVar[str] = "queue"
    WAITS: ClassVar[bool] = True
    id: str
    next: str
    queue: str
    priority: int = 0
    #: Skills the contact needs beyond the queue's, with the least proficiency.
    skills: dict[str, int] = field(default_factory=dict)
    #: A skill per call language (e.g. zh-CN: mandarin), needed at proficiency 1.
    language_skills: dict[str, str] = field(default_factory=dict)
    #: Music on hold, relative to the sounds folder ("" for the voice layer's default).
    music: str = ""
    #: Seconds between announcements of position and wait (0: never).
    announce_every: int = 0
    announce: Prompt | None = None
    #: A key that, while waiting, leads to the ``callback`` step.
    callback_digit: str = ""
    callback: str = ""
    #: Where the call goes if the queue gives up on it ("" to hang up).
    overflow: str = ""

    def targets(self) -> tuple[tuple[str, str], ...]:
        out = [("next", self.next)]
        if self.callback:
            out.append(("callback", self.callback))
        if self.overflow:
            out.append(("overflow", self.overflow))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class CallbackStep:
    """Offer a call back; the caller keeps their place in the queue they wait in."""

    KIND: ClassVar[str] = "callback"
    WAITS: ClassVar[bool] = True
    id: str
    next: str
    #: Where a declined offer goes ("": back to waiting in the queue it came from).
    declined: str
    prompt: Prompt
    accept_digit: str = "1"
    #: The variable holding the number to call back.
    number_variable: str = "caller_number"
    confirm: Prompt | None = None
    timeout_seconds: float = 5.0
    #: Queue of the callback when the call is not waiting in one already.
    queue: str = ""

    def targets(self) -> tuple[tuple[str, str], ...]:
        if not self.declined:
            return (("next", self.next),)
        return (("next", self.next), ("declined", self.declined))


@dataclass(frozen=True, slots=True)
class VoicemailStep:
    """Record a message after the prompt; the voice layer files it as a ticket."""

    KIND: ClassVar[str] = "voicemail"
    WAITS: ClassVar[bool] = True
    id: str
    next: str
    prompt: Prompt
    max_seconds: int = 120
    #: The queue the ticket belongs to ("" for none).
    queue: str = ""

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)


@dataclass(frozen=True, slots=True)
class TransferStep:
    KIND: ClassVar[str] = "transfer"
    WAITS: ClassVar[bool] = True
    id: str
    number: str

    def targets(self) -> tuple[tuple[str, str], ...]:
        return ()


@dataclass(frozen=True, slots=True)
class SurveyStep:
    """Ask for a satisfaction score from 1 to 5 by DTMF and save it."""

    KIND: ClassVar[str] = "survey"
    WAITS: ClassVar[bool] = True
    id: str
    next: str
    prompt: Prompt
    retries: int = 1
    timeout_seconds: float = 8.0
    invalid: Prompt | None = None
    thanks: Prompt | None = None

    def targets(self) -> tuple[tuple[str, str], ...]:
        return (("next", self.next),)


@dataclass(frozen=True, slots=True)
class HangupStep:
    KIND: ClassVar[str] = "hangup"
    WAITS: ClassVar[bool] = True
    id: str
    reason: str = "completed"

    def targets(self) -> tuple[tuple[str, str], ...]:
        return ()


Step = (
    SayStep
    | PlayStep
    | MenuStep
    | CollectStep
    | LookupStep
    | BranchStep
    | SetStep
    | QueueStep
    | CallbackStep
    | VoicemailStep
    | TransferStep
    | SurveyStep
    | HangupStep
)

STEP_TYPES: dict[str, type[Step]] = {
    cls.KIND: cls
    for cls in (
        SayStep,
        PlayStep,
        MenuStep,
        CollectStep,
        LookupStep,
        BranchStep,
        SetStep,
        QueueStep,
        CallbackStep,
        VoicemailStep,
        TransferStep,
        SurveyStep,
        HangupStep,
    )
}
