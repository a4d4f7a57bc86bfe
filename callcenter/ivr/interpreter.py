"""Runs one call through a flow: events in, actions out, ``now`` passed in.

The interpreter does no I/O and keeps no clock. The voice layer drives it:

1. make one per call with the flow, the call's variables (``caller_number``,
   ``called_number``) and the business calendar, and call :meth:`start`;
2. carry out every action returned, in order (see :mod:`callcenter.ivr.events`);
3. feed back what happens with :meth:`Interpreter.handle`, and at
   :meth:`Interpreter.next_deadline` feed a :class:`Tick`;
4. stop when :attr:`Interpreter.finished` is true (after a Hangup or
   Transfer action, or :class:`CallerHungUp`), and store :attr:`path`,
   :attr:`collected` and :attr:`recognised` with the interaction.

A key pressed while a prompt plays stops it (barge-in). During a say or play
step the key is kept and given to the next step that reads keys, so a caller
who knows the menu can press 1 during the greeting.

Events that no longer apply (a late answer to a query, a key while the call
is with an agent) are ignored: the voice layer cannot always avoid sending
them, and they change nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from callcenter.hours import BusinessCalendar
from callcenter.ivr import events as ev
from callcenter.ivr.flow import Flow
from callcenter.ivr.steps import (
    PLACEHOLDER,
    BranchStep,
    CallbackStep,
    Choice,
    CollectStep,
    Condition,
    HangupStep,
    HoursCondition,
    LookupStep,
    MenuStep,
    PlayStep,
    Prompt,
    QueueStep,
    SayStep,
    SetStep,
    Step,
    SurveyStep,
    TransferStep,
    VariableCondition,
    VoicemailStep,
    phrase_key,
)

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

# What the current step waits for.
_PROMPT = "prompt"  # its prompt to finish (keys barge in)
_INPUT = "input"  # keys or speech, until the no-input deadline
_CLOSING = "closing"  # a closing prompt (thanks, confirmation), then ``next``
_LOOKUP = "lookup"
_STATS = "stats"  # a branch's queue statistics
_QUEUED = "queued"
_AGENT = "agent"
_RECORDING = "recording"
_DONE = "done"


@dataclass(frozen=True, slots=True)
class Heard:
    """One speech result in a menu: what was heard and what it was taken for."""

    step: str
    text: str
    confidence: float
    #: The phrase it matched ("" if it matched none or was below the threshold).
    phrase: str


class Interpreter:
    """One call's way through a flow.

    ``speech_languages`` are the languages with a speech model: a menu listens
    only in those and is DTMF-only in the others. ``calendar`` is required
    when the flow branches on business hours. The timeouts are how long an
    answer from the voice layer may take before the interpreter goes on
    without it (a lost PromptDone, a slow lookup or statistics query, a
    recording that never reports).
    """

    def __init__(
        self,
        flow: Flow,
        call_vars: Mapping[str, str],
        now: dt.datetime,
        *,
        calendar: BusinessCalendar | None = None,
        speech_languages: Collection[str] = (),
        prompt_timeout_seconds: float = 300.0,
        lookup_timeout_seconds: float = 5.0,
        query_timeout_seconds: float = 3.0,
        recording_grace_seconds: float = 15.0,
        max_value_chars: int = 200,
        max_path: int = 500,
    ) -> None:
        if flow.uses_hours and calendar is None:
            raise ValueError(f"flow {flow.name!r} branches on business hours: pass a calendar")
        for name, value in call_vars.items():
            if not _VARIABLE.fullmatch(name) or not isinstance(value, str):
                raise ValueError(f"bad call variable {name!r}")
        self.flow = flow
        self.calendar = calendar
        self.speech_languages = frozenset(speech_languages)
        self.started_at = now
        self._prompt_timeout = dt.timedelta(seconds=prompt_timeout_seconds)
        self._lookup_timeout = dt.timedelta(seconds=lookup_timeout_seconds)
        self._query_timeout = dt.timedelta(seconds=query_timeout_seconds)
        self._recording_grace = dt.timedelta(seconds=recording_grace_seconds)
        self._max_value_chars = max_value_chars
        self._max_path = max_path
        self._vars: dict[str, str] = {k: v[:max_value_chars] for k, v in call_vars.items()}
        start_language = self._vars.get("language", "")
        self.language = start_language if start_language in flow.languages else flow.language
        self._vars["language"] = self.language
        self.priority = 0
        self._collected: dict[str, str] = {}
        self._heard: list[Heard] = []
        self._path: list[str] = []
        self._started = False
        self.end_reason = ""

        self._step: Step = flow.steps[flow.first]
        self._phase = _DONE
        self._deadline: dt.datetime | None = None
        self._attempts = 0
        self._digits = ""
        self._typed: list[str] = []  # keys pressed during say/play, for the next menu
        self._listening = False
        self._stats: dict[str, ev.QueueInfo] = {}
        self._stopped_recording = False
        # The queue the call waits in (it stays queued while a callback is offered).
        self._waiting: QueueStep | None = None
        self._announcing = False
        self._hops = 0

    # -- public ----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._started and self._phase == _DONE

    @property
    def path(self) -> tuple[str, ...]:
        """The ids of the steps visited, in order (the interaction's ``ivr_path``)."""
        return tuple(self._path)

    @property
    def collected(self) -> dict[str, str]:
        """What the caller gave: menu choices by menu id, digits by variable, survey score."""
        return dict(self._collected)

    @property
    def variables(self) -> dict[str, str]:
        """Every call variable: the call's own, lookup results, collected and set ones."""
        return dict(self._vars)

    @property
    def recognised(self) -> tuple[Heard, ...]:
        """Every speech result, with its confidence and the phrase it matched."""
        return tuple(self._heard)

    @property
    def step(self) -> str:
        """The id of the current step."""
        return self._step.id

    def next_deadline(self) -> dt.datetime | None:
        """When to send the next :class:`Tick`, or ``None`` while nothing is timed."""
        return None if self._phase == _DONE else self._deadline

    def start(self, now: dt.datetime) -> list[ev.Action]:
        """Enter the first step; carry out the actions returned."""
        if self._started:
            raise RuntimeError("the interpreter has already started")
        self._started = True
        self._hops = 0
        out: list[ev.Action] = []
        self._goto(self.flow.first, now, out)
        return out

    def handle(self, event: ev.Event, now: dt.datetime) -> list[ev.Action]:
        """Feed one event; carry out the actions returned, in order."""
        if not self._started:
            raise RuntimeError("call start() before handle()")
        out: list[ev.Action] = []
        if self._phase == _DONE:
            return out
        self._hops = 0
        if isinstance(event, ev.CallerHungUp):
            self._finish("caller_hung_up")
            return out
        if isinstance(event, ev.Tick):
            if self._deadline is None or now < self._deadline:
                return out
            self._deadline = None
        if self._waiting is not None and self._queue_event(event, now, out):
            return out
        step = self._step
        if isinstance(step, SayStep | PlayStep):
            self._on_prompt_step(step, event, now, out)
        elif isinstance(step, MenuStep):
            self._on_menu(step, event, now, out)
        elif isinstance(step, CollectStep):
            self._on_collect(step, event, now, out)
        elif isinstance(step, SurveyStep):
            self._on_survey(step, event, now, out)
        elif isinstance(step, CallbackStep):
            self._on_callback(step, event, now, out)
        elif isinstance(step, LookupStep):
            self._on_lookup(step, event, now, out)
        elif isinstance(step, BranchStep):
            self._on_branch(step, event, now, out)
        elif isinstance(step, QueueStep):
            self._on_queue(step, event, now, out)
        elif isinstance(step, VoicemailStep):
            self._on_voicemail(step, event, now, out)
        return out

    # -- moving between steps --------------------------------------------------

    def _goto(self, step_id: str, now: dt.datetime, out: list[ev.Action]) -> None:
        # The loader refuses loops that wait for nothing, so a chain of steps
        # within one event is bounded; this guards against a bug, not a flow.
        self._hops += 1
        if self._hops > 2 * len(self.flow.steps) + 10:
            out.append(ev.Hangup("flow_error"))
            self._finish("flow_error")
            return
        step = self.flow.steps[step_id]
        self._step = step
        if len(self._path) < self._max_path:
            self._path.append(step_id)
        self._attempts = 0
        self._digits = ""
        self._deadline = None
        self._phase = _DONE
        if not isinstance(step, SayStep | PlayStep | SetStep | BranchStep | LookupStep):
            typed, self._typed = self._typed, []
        else:
            typed = []
        if isinstance(step, SayStep):
            self._say(step.text, out)
            self._await_prompt(now)
        elif isinstance(step, PlayStep):
            out.append(ev.Play(step.file))
            self._await_prompt(now)
        elif isinstance(step, MenuStep):
            if typed:
                self._menu_key(step, typed[0], now, out)
            else:
                self._prompt_again(step.prompt, None, now, out)
        elif isinstance(step, CollectStep):
            if typed:
                self._phase = _INPUT
                for key in typed:
                    if self._step is step and self._phase == _INPUT:
                        self._collect_key(step, key, now, out)
            else:
                self._prompt_again(step.prompt, None, now, out)
        elif isinstance(step, SurveyStep):
            self._prompt_again(step.prompt, None, now, out)
        elif isinstance(step, CallbackStep):
            self._prompt_again(step.prompt, None, now, out)
        elif isinstance(step, LookupStep):
            self._enter_lookup(step, now, out)
        elif isinstance(step, BranchStep):
            self._enter_branch(step, now, out)
        elif isinstance(step, SetStep):
            self._apply_set(step, out)
            self._goto(step.next, now, out)
        elif isinstance(step, QueueStep):
            self._enter_queue(step, now, out)
        elif isinstance(step, VoicemailStep):
            self._say(step.prompt, out)
            self._await_prompt(now)
        elif isinstance(step, TransferStep):
            out.append(ev.Transfer(step.number))
            self._finish("transferred")
        elif isinstance(step, HangupStep):
            out.append(ev.Hangup(step.reason))
            self._finish(step.reason)

    def _finish(self, reason: str) -> None:
        self._phase = _DONE
        self._deadline = None
        self._waiting = None
        self.end_reason = reason

    # -- prompts ---------------------------------------------------------------

    def _say(self, prompt: Prompt, out: list[ev.Action]) -> None:
        speech = prompt.speech(self.language)
        out.append(ev.Say(self._fill(speech.text), self.language, self._fill(speech.reading)))

    def _fill(self, template: str) -> str:
        return PLACEHOLDER.sub(lambda m: self._vars.get(m.group(1), ""), template)

    def _await_prompt(self, now: dt.datetime) -> None:
        self._phase = _PROMPT
        self._deadline = now + self._prompt_timeout

    def _prompt_again(
        self, prompt: Prompt, notice: Prompt | None, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        """(Re)start an input step: the notice (invalid, no input), then its prompt."""
        if notice is not None:
            self._say(notice, out)
        self._say(prompt, out)
        self._digits = ""
        self._await_prompt(now)

    def _barge_in(self, out: list[ev.Action]) -> None:
        if self._phase == _PROMPT:
            out.append(ev.StopPrompt())

    def _stop_listening(self, out: list[ev.Action]) -> None:
        if self._listening:
            out.append(ev.StopListening())
            self._listening = False

    def _prompt_finished(self, event: ev.Event) -> bool:
        """A PromptDone, or the safety deadline for a lost one."""
        return self._phase in (_PROMPT, _CLOSING) and isinstance(event, ev.PromptDone | ev.Tick)

    # -- say and play ----------------------------------------------------------

    def _on_prompt_step(
        self, step: SayStep | PlayStep, event: ev.Event, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if self._prompt_finished(event):
            self._goto(step.next, now, out)
        elif isinstance(event, ev.Digit) and step.barge_in and self._phase == _PROMPT:
            out.append(ev.StopPrompt())
            self._typed.append(event.digit)
            self._goto(step.next, now, out)

    # -- menu ------------------------------------------------------------------

    def _on_menu(
        self, step: MenuStep, event: ev.Event, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if self._phase == _PROMPT and isinstance(event, ev.PromptDone | ev.Tick):
            self._phase = _INPUT
            self._deadline = now + dt.timedelta(seconds=step.timeout_seconds)
            grammar = self._grammar(step)
            if grammar:
                out.append(ev.Listen(grammar, self.language))
                self._listening = True
        elif isinstance(event, ev.Digit) and self._phase in (_PROMPT, _INPUT):
            self._barge_in(out)
            self._stop_listening(out)
            self._menu_key(step, event.digit, now, out)
        elif isinstance(event, ev.SpeechResult) and self._listening:
            self._listening = False  # one result per Listen
            choice = self._match(step, event)
            if choice is None:
                self._retry(step, step.invalid, now, out)
            else:
                self._collected[step.id] = event.text
                self._goto(choice.goto, now, out)
        elif isinstance(event, ev.Tick) and self._phase == _INPUT:
            self._stop_listening(out)
            self._retry(step, step.no_input, now, out)

    def _grammar(self, step: MenuStep) -> tuple[str, ...]:
        if self.language not in self.speech_languages:
            return ()
        return tuple(p for c in step.choices for p in c.phrases.get(self.language, ()))

    def _match(self, step: MenuStep, result: ev.SpeechResult) -> Choice | None:
        heard = phrase_key(result.text)
        for choice in step.choices:
            for phrase in choice.phrases.get(self.language, ()):
                if heard and phrase_key(phrase) == heard:
                    accepted = result.confidence >= step.min_confidence
                    self._heard.append(
                        Heard(step.id, result.text, result.confidence, phrase if accepted else "")
                    )
                    return choice if accepted else None
        self._heard.append(Heard(step.id, result.text, result.confidence, ""))
        return None

    def _menu_key(self, step: MenuStep, key: str, now: dt.datetime, out: list[ev.Action]) -> None:
        for choice in step.choices:
            if choice.digit == key:
                self._collected[step.id] = key
                self._goto(choice.goto, now, out)
                return
        self._retry(step, step.invalid, now, out)

    def _retry(
        self,
        step: MenuStep | CollectStep | SurveyStep,
        notice: Prompt | None,
        now: dt.datetime,
        out: list[ev.Action],
    ) -> None:
        """A try failed: prompt again while tries remain, else give up."""
        self._attempts += 1
        if self._attempts > step.retries:
            self._goto(step.next if isinstance(step, SurveyStep) else step.failed, now, out)
            return
        self._prompt_again(step.prompt, notice, now, out)

    # -- collect ---------------------------------------------------------------

    def _on_collect(
        self, step: CollectStep, event: ev.Event, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if self._phase == _PROMPT and isinstance(event, ev.PromptDone | ev.Tick):
            self._phase = _INPUT
            self._deadline = now + dt.timedelta(seconds=step.timeout_seconds)
        elif isinstance(event, ev.Digit) and self._phase in (_PROMPT, _INPUT):
            self._barge_in(out)
            self._phase = _INPUT
            self._collect_key(step, event.digit, now, out)
        elif isinstance(event, ev.Tick) and self._phase == _INPUT:
            if self._digits:
                self._collect_done(step, now, out)
            else:
                self._retry(step, step.no_input, now, out)

    def _collect_key(
        self, step: CollectStep, key: str, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if step.terminator and key == step.terminator:
            self._collect_done(step, now, out)
        elif not key.isdigit():
            self._retry(step, step.invalid, now, out)
        else:
            self._digits += key
            if len(self._digits) >= step.max_length:
                self._collect_done(step, now, out)
            else:
                self._deadline = now + dt.timedelta(seconds=step.digit_timeout_seconds)

    def _collect_done(self, step: CollectStep, now: dt.datetime, out: list[ev.Action]) -> None:
        if not step.min_length <= len(self._digits) <= step.max_length:
            self._retry(step, step.invalid, now, out)
            return
        self._vars[step.variable] = self._digits
        self._collected[step.variable] = self._digits
        self._goto(step.next, now, out)

    # -- survey ----------------------------------------------------------------

    def _on_survey(
        self, step: SurveyStep, event: ev.Event, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if self._phase == _CLOSING:
            if self._prompt_finished(event):
                self._goto(step.next, now, out)
        elif self._phase == _PROMPT and isinstance(event, ev.PromptDone | ev.Tick):
            self._phase = _INPUT
            self._deadline = now + dt.timedelta(seconds=step.timeout_seconds)
        elif isinstance(event, ev.Digit) and self._phase in (_PROMPT, _INPUT):
            self._barge_in(out)
            if event.digit not in "12345":
                self._retry(step, step.invalid, now, out)
                return
            score = int(event.digit)
            out.append(ev.SaveSurvey(score))
            self._vars["survey_score"] = event.digit
            self._collected["survey_score"] = event.digit
            self._close(step.thanks, step.next, now, out)
        elif isinstance(event, ev.Tick) and self._phase == _INPUT:
            self._retry(step, None, now, out)

    def _close(
        self, prompt: Prompt | None, target: str, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        """Say a closing prompt, if any, and go to ``target`` once it has played."""
        if prompt is None:
            self._goto(target, now, out)
            return
        self._say(prompt, out)
        self._phase = _CLOSING
        self._deadline = now + self._prompt_timeout

    # -- callback --------------------------------------------------------------

    def _on_callback(
        self, step: CallbackStep, event: ev.Event, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if self._phase == _CLOSING:
            if self._prompt_finished(event):
                self._goto(step.next, now, out)
        elif self._phase == _PROMPT and isinstance(event, ev.PromptDone | ev.Tick):
            self._phase = _INPUT
            self._deadline = now + dt.timedelta(seconds=step.timeout_seconds)
        elif isinstance(event, ev.Digit) and self._phase in (_PROMPT, _INPUT):
            self._barge_in(out)
            number = self._vars.get(step.number_variable, "")
            queue = self._waiting.queue if self._waiting is not None else step.queue
            if event.digit != step.accept_digit or not number or not queue:
                self._decline(step, now, out)
                return
            out.append(ev.RequestCallback(queue, number))
            self._collected["callback_number"] = number
            self._close(step.confirm, step.next, now, out)
        elif isinstance(event, ev.Tick) and self._phase == _INPUT:
            self._decline(step, now, out)

    def _decline(self, step: CallbackStep, now: dt.datetime, out: list[ev.Action]) -> None:
        if step.declined:
            self._goto(step.declined, now, out)
        elif self._waiting is not None:
            self._goto(self._waiting.id, now, out)  # back to waiting, in the same place
        else:
            # Only a queue leads to a callback step without 'declined' (the
            # loader checks), and leaving the queue leaves the step too.
            out.append(ev.Hangup("flow_error"))
            self._finish("flow_error")

    # -- lookup ----------------------------------------------------------------

    def _enter_lookup(self, step: LookupStep, now: dt.datetime, out: list[ev.Action]) -> None:
        value = self._vars.get("caller_number" if step.by == "caller" else step.variable, "")
        if not value:
            self._goto(step.not_found, now, out)
            return
        out.append(ev.LookupCustomer(step.by, value))
        self._phase = _LOOKUP
        self._deadline = now + self._lookup_timeout

    def _on_lookup(
        self, step: LookupStep, event: ev.Event, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if self._phase != _LOOKUP:
            return
        if isinstance(event, ev.CustomerFound):
            limit = self._max_value_chars
            self._vars["customer_id"] = event.customer_id[:limit]
            self._vars["customer_name"] = event.name[:limit]
            self._vars["customer_tier"] = event.tier[:limit]
            self._vars["customer_language"] = event.language[:limit]
            self._goto(step.next, now, out)
        elif isinstance(event, ev.CustomerNotFound | ev.Tick):
            self._goto(step.not_found, now, out)

    # -- branch ----------------------------------------------------------------

    def _enter_branch(self, step: BranchStep, now: dt.datetime, out: list[ev.Action]) -> None:
        self._stats = {}
        if not step.queues:
            self._decide(step, now, out)
            return
        out.extend(ev.QueryQueue(queue) for queue in step.queues)
        self._phase = _STATS
        self._deadline = now + self._query_timeout

    def _on_branch(
        self, step: BranchStep, event: ev.Event, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if self._phase != _STATS:
            return
        if isinstance(event, ev.QueueInfo) and event.queue in step.queues:
            self._stats[event.queue] = event
            if len(self._stats) == len(step.queues):
                self._decide(step, now, out)
        elif isinstance(event, ev.Tick):
            self._decide(step, now, out)  # what did not answer in time counts as false

    def _decide(self, step: BranchStep, now: dt.datetime, out: list[ev.Action]) -> None:
        for rule in step.rules:
            if self._holds(rule.condition, now):
                self._goto(rule.goto, now, out)
                return
        self._goto(step.next, now, out)

    def _holds(self, condition: Condition, now: dt.datetime) -> bool:
        if isinstance(condition, HoursCondition):
            assert self.calendar is not None  # checked in __init__
            return self.calendar.is_open(now) == condition.open
        if isinstance(condition, VariableCondition):
            value = self._vars.get(condition.variable, "")
            if condition.test == "equals":
                return value == condition.values[0]
            if condition.test == "not_equals":
                return value != condition.values[0]
            if condition.test == "in":
                return value in condition.values
            return bool(value) == (condition.values[0] == "true")
        info = self._stats.get(condition.queue)
        if info is None:
            return False
        figure = float(getattr(info, condition.statistic))
        if condition.at_least is not None and figure < condition.at_least:
            return False
        return condition.at_most is None or figure <= condition.at_most

    # -- set -------------------------------------------------------------------

    def _apply_set(self, step: SetStep, out: list[ev.Action]) -> None:
        if step.value is not None:
            value = step.value
        else:
            value = self._vars.get(step.source or "", "")
        if step.variable == "language":
            if value not in self.flow.languages:
                return  # e.g. a customer language no prompt is written in
            if value != self.language:
                self.language = value
                out.append(ev.SetLanguage(value))
        elif step.variable == "priority":
            if len(value) != 1 or not value.isdigit():
                return
            self.priority = int(value)
        self._vars[step.variable] = value[: self._max_value_chars]

    # -- queue -----------------------------------------------------------------

    def _enter_queue(self, step: QueueStep, now: dt.datetime, out: list[ev.Action]) -> None:
        if self._waiting is None or self._waiting.queue != step.queue:
            skills = dict(step.skills)
            language_skill = step.language_skills.get(self.language)
            if language_skill:
                skills.setdefault(language_skill, 1)
            out.append(
                ev.Enqueue(
                    step.queue,
                    min(9, step.priority + self.priority),
                    skills,
                    self._vars.get("customer_tier") or None,
                    step.music,
                    step.announce_every,
                )
            )
        # Re-entering the queue the call waits in (a callback declined) resumes the wait.
        self._waiting = step
        self._phase = _QUEUED
        if step.announce_every:
            self._query_position(step, now, out)

    def _query_position(self, step: QueueStep, now: dt.datetime, out: list[ev.Action]) -> None:
        out.append(ev.QueryQueue(step.queue))
        self._announcing = True
        self._deadline = now + dt.timedelta(seconds=step.announce_every)

    def _on_queue(
        self, step: QueueStep, event: ev.Event, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if self._phase == _AGENT:
            if isinstance(event, ev.AgentLeft):
                self._goto(step.next, now, out)
            return
        if self._phase != _QUEUED:
            return
        if isinstance(event, ev.Tick) and step.announce_every:
            self._query_position(step, now, out)
        elif isinstance(event, ev.QueueInfo) and event.queue == step.queue and self._announcing:
            self._announcing = False
            if step.announce is not None and event.position > 0:
                self._vars["queue_position"] = str(event.position)
                self._vars["queue_waiting"] = str(event.waiting)
                minutes = max(1, math.ceil(event.expected_wait_seconds / 60))
                self._vars["queue_wait_minutes"] = str(minutes)
                self._say(step.announce, out)
        elif isinstance(event, ev.Digit) and event.digit == step.callback_digit:
            out.append(ev.StopPrompt())
            self._goto(step.callback, now, out)

    def _queue_event(self, event: ev.Event, now: dt.datetime, out: list[ev.Action]) -> bool:
        """Events about the queue the call waits in, whatever step it is at."""
        queue_step = self._waiting
        assert queue_step is not None
        if isinstance(event, ev.AgentAnswered):
            out.append(ev.StopPrompt())  # an announcement or offer may be playing
            self._stop_listening(out)
            self._waiting = None
            self._announcing = False
            self._step = queue_step
            self._phase = _AGENT
            self._deadline = None
            self._vars["agent"] = event.agent[: self._max_value_chars]
            return True
        if isinstance(event, ev.QueueExited):
            out.append(ev.StopPrompt())  # an announcement or offer may be playing
            self._stop_listening(out)
            self._waiting = None
            self._announcing = False
            self._vars["queue_outcome"] = event.outcome[: self._max_value_chars]
            if queue_step.overflow:
                self._goto(queue_step.overflow, now, out)
            else:
                out.append(ev.Hangup("queue_" + self._vars["queue_outcome"]))
                self._finish("queue_" + self._vars["queue_outcome"])
            return True
        return False

    # -- voicemail -------------------------------------------------------------

    def _on_voicemail(
        self, step: VoicemailStep, event: ev.Event, now: dt.datetime, out: list[ev.Action]
    ) -> None:
        if self._phase == _PROMPT:
            if isinstance(event, ev.Digit):
                out.append(ev.StopPrompt())
            elif not isinstance(event, ev.PromptDone | ev.Tick):
                return
            out.append(ev.RecordVoicemail(step.max_seconds, step.queue))
            self._phase = _RECORDING
            self._stopped_recording = False
            self._deadline = now + dt.timedelta(seconds=step.max_seconds) + self._recording_grace
        elif self._phase == _RECORDING:
            if isinstance(event, ev.Digit) and event.digit == "#" and not self._stopped_recording:
                self._stopped_recording = True
                out.append(ev.StopRecording())
            elif isinstance(event, ev.VoicemailDone):
                self._vars["voicemail_path"] = event.path[:500]
                self._vars["voicemail_seconds"] = f"{event.seconds:.1f}"
                self._goto(step.next, now, out)
            elif isinstance(event, ev.Tick):
                self._goto(step.next, now, out)  # the recorder never answered
