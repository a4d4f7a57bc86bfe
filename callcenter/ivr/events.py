"""What goes into the IVR interpreter and what comes out of it.

Events are facts the voice layer reports (a prompt finished, a key was
pressed, the customer was found, the queue answered); actions are what the
interpreter asks the voice layer to do. All are frozen dataclasses. Events
check their own values, so a bad one fails where it is made.

The voice layer plays :class:`Say` and :class:`Play` actions one after the
other and sends a single :class:`PromptDone` when the last one queued has
finished; :class:`StopPrompt` drops what plays and what is queued, and no
``PromptDone`` follows for those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callcenter.ivr.steps import DTMF_KEYS

# -- events in ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptDone:
    """Every prompt queued so far has been played to the end."""


@dataclass(frozen=True, slots=True)
class Digit:
    """The caller pressed a key (RFC 4733 event or in-band DTMF)."""

    digit: str

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in DTMF_KEYS:
            raise ValueError(f"not a DTMF key: {self.digit!r}")


@dataclass(frozen=True, slots=True)
class SpeechResult:
    """What the recogniser heard since :class:`Listen` ("" for nothing it knows)."""

    text: str
    confidence: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be 0..1, not {self.confidence}")


@dataclass(frozen=True, slots=True)
class CustomerFound:
    """The answer to :class:`LookupCustomer` when a customer matched."""

    customer_id: str
    name: str
    #: "key", "normal" or "small".
    tier: str
    #: The customer's preferred language ("" if unknown).
    language: str = ""


@dataclass(frozen=True, slots=True)
class CustomerNotFound:
    """The answer to :class:`LookupCustomer` when no customer matched."""


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """The answer to :class:`QueryQueue`: the queue's live statistics."""

    queue: str
    agents_available: int
    waiting: int
    expected_wait_seconds: float
    #: This call's place in the queue (1: next to be served; 0: not waiting in it).
    position: int = 0


@dataclass(frozen=True, slots=True)
class AgentAnswered:
    """An agent accepted the queued call; the voice layer has bridged them."""

    agent: str = ""


@dataclass(frozen=True, slots=True)
class AgentLeft:
    """The agent's side ended and the caller is still on the line."""


@dataclass(frozen=True, slots=True)
class QueueExited:
    """The queue gave up on the call ("overflowed", "timed_out", "rejected_full")."""

    outcome: str


@dataclass(frozen=True, slots=True)
class VoicemailDone:
    """The message was recorded (send it before :class:`CallerHungUp` if the caller left)."""

    path: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller is gone; the interpreter stops."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: send it at :meth:`Interpreter.next_deadline` (or later)."""


Event = (
    PromptDone
    | Digit
    | SpeechResult
    | CustomerFound
    | CustomerNotFound
    | QueueInfo
    | AgentAnswered
    | AgentLeft
    | QueueExited
    | VoicemailDone
    | CallerHungUp
    | Tick
)

# -- actions out ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    """Speak ``text`` in ``language``: render ``reading`` instead when it is set."""

    text: str
    language: str
    reading: str = ""


@dataclass(frozen=True, slots=True)
class Play:
    """Play an audio file, relative to the sounds folder."""

    path: str


@dataclass(frozen=True, slots=True)
class StopPrompt:
    """Stop what plays and drop what is queued (the caller barged in)."""


@dataclass(frozen=True, slots=True)
class Listen:
    """Start recognising speech in ``language``, constrained to ``grammar``.

    Send the result as :class:`SpeechResult` once the caller has said
    something (the recogniser's end of utterance). Only emitted for the
    languages the interpreter was told have a speech model.
    """

    grammar: tuple[str, ...]
    language: str


@dataclass(frozen=True, slots=True)
class StopListening:
    """Close the recogniser opened by :class:`Listen`; its result is no longer wanted."""


@dataclass(frozen=True, slots=True)
class LookupCustomer:
    """Find the customer; answer :class:`CustomerFound` or :class:`CustomerNotFound`.

    ``by`` is "caller" (``value`` is the caller's number as the call presented
    it) or "account" (``value`` is an account number the caller keyed in).
    """

    by: str
    value: str


@dataclass(frozen=True, slots=True)
class QueryQueue:
    """Get the queue's statistics; answer :class:`QueueInfo`."""

    queue: str


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Hand the call to the router and play ``music`` in a loop while it waits.

    Any Say or Play while the call waits plays in place of the music, which
    resumes afterwards. The interpreter itself times announcements (every
    ``announce_every`` seconds, 0 for never) with :class:`QueryQueue` and Say.
    Report :class:`AgentAnswered`, then :class:`AgentLeft` when the agent's
    side ends, or :class:`QueueExited` if the router gives up.
    """

    queue: str
    #: Extra priority levels (the router's ``ivr_priority``).
    priority: int
    skills: dict[str, int] = field(default_factory=dict)
    #: The customer's tier when the lookup found one, else None.
    tier: str | None = None
    music: str = ""
    announce_every: int = 0


@dataclass(frozen=True, slots=True)
class RequestCallback:
    """The caller accepted a callback to ``number``.

    If the call waits in ``queue`` the contact keeps its place there (the
    router's ``CallbackRequested``); otherwise book a new callback in ``queue``.
    """

    queue: str
    number: str


@dataclass(frozen=True, slots=True)
class RecordVoicemail:
    """Beep and record up to ``max_seconds``; answer :class:`VoicemailDone`.

    The message becomes a ticket (in ``queue`` if set) with what the IVR
    collected.
    """

    max_seconds: int
    queue: str = ""


@dataclass(frozen=True, slots=True)
class StopRecording:
    """The caller pressed '#': end the recording now and send :class:`VoicemailDone`."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """Transfer the call to ``number``; the flow is over."""

    number: str


@dataclass(frozen=True, slots=True)
class SaveSurvey:
    """Store the caller's satisfaction score (1-5) on the interaction."""

    score: int


@dataclass(frozen=True, slots=True)
class SetLanguage:
    """The call now speaks ``language`` (screen pop, agent skills, later prompts)."""

    language: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """Hang up the call; the flow is over."""

    reason: str


Action = (
    Say
    | Play
    | StopPrompt
    | Listen
    | StopListening
    | LookupCustomer
    | QueryQueue
    | Enqueue
    | RequestCallback
    | RecordVoicemail
    | StopRecording
    | Transfer
    | SaveSurvey
    | SetLanguage
    | Hangup
)
