"""IVR flows: loaded from YAML and checked whole before any call runs them.

A flow file looks like::

    language: en                 # the language a call starts in
    languages: [en, zh-CN]       # every prompt has a text in each
    steps:
      - id: greeting
        type: say
        text:
          en: Welcome.
          zh-CN: {text: 欢迎。, reading: huan1 ying2.}
      - id: bye
        type: hangup

A step's ``next`` defaults to the step that follows it in the list. The
loader refuses, with a :class:`FlowError` naming the flow, the step, the field
and the line:

* what is not YAML, uses anchors or aliases, or repeats a key;
* an unknown step type or field, a field of the wrong type or out of range, a
  prompt missing a language or longer than the limit, a Chinese reading that
  is not tone-numbered pinyin;
* a missing ``next`` with no step after it, a target naming no step, a step no
  path from the first one reaches, and a loop through steps none of which
  waits for the caller or ends the call;
* a file, a flow or a menu past its size limit (:class:`FlowLimits`).

Loading reads files: do it at start-up or through ``asyncio.to_thread``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml  # type: ignore[import-untyped]

from callcenter.ivr.steps import (
    DTMF_KEYS,
    PLACEHOLDER,
    STEP_TYPES,
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
    QueueCondition,
    QueueStep,
    Rule,
    SayStep,
    SetStep,
    Speech,
    Step,
    SurveyStep,
    TransferStep,
    VariableCondition,
    VoicemailStep,
    phrase_key,
)

_FLOW_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_VARIABLE = _STEP_ID
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # queues and skills
_FILE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./-]{0,254}")
_NUMBER = re.compile(r"\+?[0-9*#]{1,32}")
_REASON = re.compile(r"[a-z][a-z_]{0,31}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
_PINYIN_SYLLABLE = re.compile(r"[a-zvü]+[1-5]")
_LETTERS = re.compile(r"[^\W\d_]+\d*")

#: Languages whose reading must be tone-numbered pinyin (espeak-ng's
#: ``cmn-latn-pinyin`` voice speaks a syllable without a tone flat and wrong).
PINYIN_LANGUAGES = frozenset({"zh-CN"})


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """Size limits of a flow; they protect the server from a mistaken or hostile file."""

    max_bytes: int = 256 * 1024
    max_steps: int = 200
    max_prompt_chars: int = 500
    max_choices: int = 12
    #: Phrases per choice and language.
    max_phrases: int = 10
    max_rules: int = 20
    #: Languages flows may use (the TTS has voices for these).
    known_languages: tuple[str, ...] = ("en", "zh-CN")


class FlowError(ValueError):
    """A flow that cannot run; the message names the flow, step, field and line."""

    def __init__(
        self,
        flow: str,
        message: str,
        *,
        step: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.flow = flow
        self.step = step
        self.field = field
        self.line = line
        self.reason = message
        where = f"flow {flow!r}"
        if step is not None:
            where += f", step {step!r}"
        if field is not None:
            where += f", field {field!r}"
        if line is not None:
            where += f" (line {line})"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Flow:
    """A checked flow. ``steps`` keeps the file's order; the first step starts a call."""

    name: str
    language: str
    languages: tuple[str, ...]
    steps: dict[str, Step]
    description: str = ""

    @property
    def first(self) -> str:
        return next(iter(self.steps))

    @property
    def uses_hours(self) -> bool:
        """Whether a branch asks the business calendar (the interpreter then needs one)."""
        return any(
            isinstance(rule.condition, HoursCondition)
            for step in self.steps.values()
            if isinstance(step, BranchStep)
            for rule in step.rules
        )


def load_flow(path: Path, *, limits: FlowLimits | None = None) -> Flow:
    """Read and check one flow file; the flow is named after the file (``main.yaml``: main)."""
    limits = limits or FlowLimits()
    name = path.stem
    with path.open("rb") as file:
        data = file.read(limits.max_bytes + 1)
    return parse_flow(data, name, limits=limits)


def load_flows(folder: Path, *, limits: FlowLimits | None = None) -> dict[str, Flow]:
    """Every ``*.yaml`` flow of a folder by name; the first bad one raises."""
    return {path.stem: load_flow(path, limits=limits) for path in sorted(folder.glob("*.yaml"))}


def parse_flow(source: str | bytes, name: str, *, limits: FlowLimits | None = None) -> Flow:
    """Check a flow given as YAML text; raises :class:`FlowError`."""
    limits = limits or FlowLimits()
    if not _FLOW_NAME.fullmatch(name):
        raise FlowError(name, "a flow name is 1-64 lower-case letters, digits, '-' or '_'")
    data = source.encode() if isinstance(source, str) else source
    if len(data) > limits.max_bytes:
        raise FlowError(name, f"the file is larger than {limits.max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlowError(name, f"the file is not UTF-8 (byte {exc.start})") from None
    reader = _Yaml(name)
    raw = reader.load(text)
    loader = _Loader(name, limits)
    loader.lines = reader.lines
    return loader.build(raw)


class _Yaml:
    """YAML to plain values, refusing aliases and repeated keys, keeping mapping lines."""

    def __init__(self, flow: str) -> None:
        self.flow = flow
        self.lines: dict[int, int] = {}
        self._seen: set[int] = set()
        self._scalars = yaml.SafeLoader("")

    def load(self, text: str) -> Any:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            line = None if mark is None else mark.line + 1
            raise FlowError(self.flow, f"not valid YAML: {problem}", line=line) from None
        except RecursionError:
            raise FlowError(self.flow, "the YAML is nested too deeply") from None
        if node is None:
            raise FlowError(self.flow, "the file is empty")
        return self._value(node)

    def _value(self, node: Any) -> Any:
        line = node.start_mark.line + 1
        if id(node) in self._seen:
            raise FlowError(self.flow, "anchors and aliases are not allowed", line=line)
        self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._value(key_node)
                if not isinstance(key, str):
                    raise FlowError(self.flow, f"key {key!r} is not a string", line=line)
                if key in out:
                    raise FlowError(
                        self.flow, f"key {key!r} appears twice", line=key_node.start_mark.line + 1
                    )
                out[key] = self._value(value_node)
            self.lines[id(out)] = line
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._value(item) for item in node.value]
        try:
            return self._scalars.construct_object(node)
        except yaml.YAMLError as exc:
            raise FlowError(self.flow, f"bad value: {exc}", line=line) from None


class _Fields:
    """The fields of one YAML mapping, read once each; what is left over is unknown."""

    def __init__(
        self,
        loader: _Loader,
        raw: Any,
        step: str | None,
        prefix: str = "",
        line: int | None = None,
    ) -> None:
        self.loader = loader
        self.step = step
        self.prefix = prefix
        self.line = line
        if not isinstance(raw, dict):
            raise self.error(None, f"must be a mapping, not {_kind(raw)}")
        self.raw: dict[str, Any] = raw
        self.line = loader.lines.get(id(raw), line)
        self._asked: list[str] = []

    def error(self, field: str | None, message: str) -> FlowError:
        name = f"{self.prefix}{field}" if field else (self.prefix.rstrip(".") or None)
        return FlowError(self.loader.flow, message, step=self.step, field=name, line=self.line)

    def has(self, name: str) -> bool:
        return name in self.raw

    def get(self, name: str) -> Any:
        self._asked.append(name)
        return self.raw.get(name)

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - set(self._asked))
        if unknown:
            known = ", ".join(sorted(set(self._asked)))
            raise self.error(unknown[0], f"unknown field (known fields: {known})")

    def string(
        self,
        name: str,
        default: str | None = None,
        *,
        pattern: re.Pattern[str] | None = None,
        explain: str = "",
        max_chars: int = 200,
    ) -> str:
        value = self.get(name)
        if value is None:
            if default is None:
                raise self.error(name, "is missing")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.error(name, f"must be a string, not {_kind(value)}")
        value = str(value)
        if len(value) > max_chars:
            raise self.error(name, f"is longer than {max_chars} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(name, f"{value!r} is not {explain or 'valid'}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be a whole number, not {_kind(value)}")
        if not low <= value <= high:
            raise self.error(name, f"must be between {low} and {high}, not {value}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"must be a number, not {_kind(value)}")
        if not low <= value <= high:
            raise self.error(name, f"must be between {low:g} and {high:g}, not {value:g}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, not {_kind(value)}")
        return value

    def digit(self, name: str, default: str | None = None) -> str:
        value = self.get(name)
        if value is None:
            if default is None:
                raise self.error(name, "is missing")
            return default
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
            return str(value)
        if not isinstance(value, str) or len(value) != 1 or value not in DTMF_KEYS:
            raise self.error(name, f"must be one DTMF key of {DTMF_KEYS}, not {value!r}")
        return value

    def target(self, name: str, default: str | None) -> str:
        """A step id; ``default`` is the following step (``None``: there is none)."""
        value = self.get(name)
        if value is None:
            if default is None:
                raise self.error(name, "is missing and no step follows this one")
            return default
        if not isinstance(value, str) or not _STEP_ID.fullmatch(value):
            raise self.error(name, f"must be a step id, not {value!r}")
        return value

    def prompt(self, name: str) -> Prompt:
        value = self.get(name)
        if value is None:
            raise self.error(name, "is missing")
        return self.loader.prompt(self, name, value)

    def optional_prompt(self, name: str) -> Prompt | None:
        value = self.get(name)
        return None if value is None else self.loader.prompt(self, name, value)


class _Loader:
    def __init__(self, flow: str, limits: FlowLimits) -> None:
        self.flow = flow
        self.limits = limits
        self.lines: dict[int, int] = {}
        self.languages: tuple[str, ...] = ()

    def fail(self, message: str, **where: Any) -> FlowError:
        return FlowError(self.flow, message, **where)

    def build(self, raw: Any) -> Flow:
        top = _Fields(self, raw, None)
        name = top.string("name", self.flow)
        if name != self.flow:
            raise top.error("name", f"is {name!r} but the flow is {self.flow!r} (its file name)")
        description = top.string("description", "", max_chars=1000)
        languages_raw = top.get("languages")
        if not isinstance(languages_raw, list) or not languages_raw:
            raise top.error("languages", "must be a non-empty list of language codes")
        for code in languages_raw:
            if not isinstance(code, str) or code not in self.limits.known_languages:
                known = ", ".join(self.limits.known_languages)
                raise top.error("languages", f"{code!r} is not one of {known}")
        if len(set(languages_raw)) != len(languages_raw):
            raise top.error("languages", "lists a language twice")
        self.languages = tuple(languages_raw)
        language = top.string("language", self.languages[0])
        if language not in self.languages:
            raise top.error("language", f"{language!r} is not in languages")
        raw_steps = top.get("steps")
        top.finish()
        if not isinstance(raw_steps, list) or not raw_steps:
            raise top.error("steps", "must be a non-empty list of steps")
        if len(raw_steps) > self.limits.max_steps:
            raise top.error("steps", f"has more than {self.limits.max_steps} steps")
        ids = self._step_ids(raw_steps)
        steps: dict[str, Step] = {}
        for index, raw_step in enumerate(raw_steps):
            following = ids[index + 1] if index + 1 < len(ids) else None
            step = self._step(raw_step, ids[index], following)
            steps[step.id] = step
        flow = Flow(self.flow, language, self.languages, steps, description)
        self._check_graph(flow)
        self._check_callbacks(steps)
        return flow

    def _step_ids(self, raw_steps: list[Any]) -> list[str]:
        ids: list[str] = []
        for index, raw_step in enumerate(raw_steps, start=1):
            line = self.lines.get(id(raw_step))
            if not isinstance(raw_step, dict):
                raise self.fail(f"step #{index} must be a mapping, not {_kind(raw_step)}")
            step_id = raw_step.get("id")
            if not isinstance(step_id, str) or not _STEP_ID.fullmatch(step_id):
                raise self.fail(
                    f"step #{index} needs an 'id' of letters, digits and '_' "
                    f"(not starting with a digit), not {step_id!r}",
                    line=line,
                )
            if step_id in ids:
                raise self.fail("two steps have this id", step=step_id, line=line)
            ids.append(step_id)
        return ids

    def _step(self, raw: dict[str, Any], step_id: str, following: str | None) -> Step:
        fields = _Fields(self, raw, step_id)
        fields.get("id")
        kind = fields.get("type")
        parser = _PARSERS.get(kind) if isinstance(kind, str) else None
        if parser is None:
            known = ", ".join(STEP_TYPES)
            raise fields.error("type", f"unknown step type {kind!r} (known types: {known})")
        step = parser(self, fields, step_id, following)
        fields.finish()
        return step

    # -- values shared by several step types ----------------------------------

    def prompt(self, fields: _Fields, name: str, raw: Any) -> Prompt:
        if not isinstance(raw, dict):
            raise fields.error(name, "must map each language to its text")
        speeches: dict[str, Speech] = {}
        for language, value in raw.items():
            field = f"{name}.{language}"
            if language not in self.languages:
                raise fields.error(field, "is not one of the flow's languages")
            if isinstance(value, dict):
                inner = _Fields(self, value, fields.step, f"{field}.", fields.line)
                text = inner.string("text", max_chars=self.limits.max_prompt_chars)
                reading = inner.string("reading", "", max_chars=self.limits.max_prompt_chars)
                inner.finish()
            elif isinstance(value, str):
                text, reading = value, ""
            else:
                raise fields.error(
                    field, f"must be a text or {{text, reading}}, not {_kind(value)}"
                )
            if not text.strip():
                raise fields.error(field, "is empty")
            for part, label in ((text, field), (reading, f"{field}.reading")):
                if len(part) > self.limits.max_prompt_chars:
                    raise fields.error(label, f"is longer than {self.limits.max_prompt_chars}")
                stray = PLACEHOLDER.sub("", part)
                if "{" in stray or "}" in stray:
                    raise fields.error(label, "has a brace that is not a {variable} placeholder")
            if reading and language in PINYIN_LANGUAGES:
                self._check_pinyin(fields, f"{field}.reading", reading)
            speeches[language] = Speech(text, reading)
        missing = [language for language in self.languages if language not in speeches]
        if missing:
            raise fields.error(name, f"has no text in {', '.join(missing)}")
        return Prompt(speeches)

    def _check_pinyin(self, fields: _Fields, field: str, reading: str) -> None:
        for token in _LETTERS.findall(PLACEHOLDER.sub(" ", reading)):
            if not _PINYIN_SYLLABLE.fullmatch(token.lower()):
                raise fields.error(
                    field,
                    f"{token!r} is not a pinyin syllable with a tone number 1-5 "
                    "(write e.g. 'ni3 hao3')",
                )

    def name(self, fields: _Fields, field: str, default: str | None = None) -> str:
        return fields.string(
            field, default, pattern=_NAME, explain="1-64 letters, digits, '.', '-' or '_'"
        )

    def variable(self, fields: _Fields, field: str, default: str | None = None) -> str:
        return fields.string(
            field, default, pattern=_VARIABLE, explain="a variable name (letters, digits, '_')"
        )

    def file(self, fields: _Fields, field: str, default: str | None = None) -> str:
        value = fields.string(
            field, default, pattern=_FILE, explain="a relative path", max_chars=255
        )
        if ".." in value.split("/"):
            raise fields.error(field, "may not leave the sounds folder ('..')")
        return value

    def condition(self, fields: _Fields) -> Condition:
        if fields.has("open"):
            return HoursCondition(fields.boolean("open", True))
        if fields.has("variable"):
            variable = self.variable(fields, "variable")
            tests = [t for t in ("equals", "not_equals", "in", "set") if fields.has(t)]
            if len(tests) != 1:
                raise fields.error("variable", "needs exactly one of equals, not_equals, in, set")
            test = cast(Literal["equals", "not_equals", "in", "set"], tests[0])
            if test == "set":
                values: tuple[str, ...] = (str(fields.boolean("set", True)).lower(),)
            elif test == "in":
                raw = fields.get("in")
                if not isinstance(raw, list) or not all(
                    isinstance(v, str | int) and not isinstance(v, bool) for v in raw
                ):
                    raise fields.error("in", "must be a list of texts or numbers")
                values = tuple(str(v) for v in raw)
            else:
                values = (fields.string(test),)
            return VariableCondition(variable, test, values)
        if fields.has("queue"):
            queue = self.name(fields, "queue")
            statistics = [
                s for s in ("agents_available", "waiting", "expected_wait_seconds") if fields.has(s)
            ]
            if len(statistics) != 1:
                raise fields.error(
                    "queue", "needs exactly one of agents_available, waiting, expected_wait_seconds"
                )
            statistic = cast(
                Literal["agents_available", "waiting", "expected_wait_seconds"], statistics[0]
            )
            bounds = _Fields(
                self,
                fields.get(statistic),
                fields.step,
                f"{fields.prefix}{statistic}.",
                fields.line,
            )
            at_least = bounds.get("at_least")
            at_most = bounds.get("at_most")
            bounds.finish()
            for label, bound in (("at_least", at_least), ("at_most", at_most)):
                if bound is not None and (
                    isinstance(bound, bool) or not isinstance(bound, int | float) or bound < 0
                ):
                    raise bounds.error(label, "must be a number, 0 or more")
            if at_least is None and at_most is None:
                raise bounds.error(None, "needs at_least or at_most")
            return QueueCondition(
                queue,
                statistic,
                None if at_least is None else float(at_least),
                None if at_most is None else float(at_most),
            )
        raise fields.error(None, "a rule tests one of: open, variable, queue")

    # -- graph -----------------------------------------------------------------

    def _check_callbacks(self, steps: dict[str, Step]) -> None:
        """A queue offers a callback step; one without ``declined`` is reached only so."""
        offered: set[str] = set()
        for step in steps.values():
            if isinstance(step, QueueStep) and step.callback:
                offer = steps[step.callback]
                if not isinstance(offer, CallbackStep):
                    raise self.fail(
                        f"names {step.callback!r}, a {offer.KIND} step, not a callback step",
                        step=step.id,
                        field="callback",
                    )
                offered.add(step.callback)
        for step in steps.values():
            for field, target_id in step.targets():
                callback = steps[target_id]
                if (
                    isinstance(callback, CallbackStep)
                    and not callback.declined
                    and not (isinstance(step, QueueStep) and field == "callback")
                ):
                    raise self.fail(
                        f"leads to {target_id!r}, a callback step without 'declined', which "
                        "only a queue step's 'callback' may lead to (it goes back to that queue)",
                        step=step.id,
                        field=field,
                    )
        for step_id, step in steps.items():
            if isinstance(step, CallbackStep) and not step.declined and step_id not in offered:
                raise self.fail(
                    "is missing (it may be left out only when queue steps offer this callback)",
                    step=step_id,
                    field="declined",
                )

    def _check_graph(self, flow: Flow) -> None:
        steps = flow.steps
        for step in steps.values():
            for field, target in step.targets():
                if target not in steps:
                    raise self.fail(f"names unknown step {target!r}", step=step.id, field=field)
        reached = {flow.first}
        todo = [flow.first]
        while todo:
            for _, target in steps[todo.pop()].targets():
                if target not in reached:
                    reached.add(target)
                    todo.append(target)
        for step_id in steps:
            if step_id not in reached:
                raise self.fail(f"no path from {flow.first!r} reaches this step", step=step_id)
        cycle = _idle_cycle(steps)
        if cycle:
            raise self.fail(
                "loops without waiting for the caller or ending the call: " + " -> ".join(cycle),
                step=cycle[0],
            )


def _idle_cycle(steps: Mapping[str, Step]) -> list[str]:
    """A cycle through steps that pass straight on, as ids (first repeated), or []."""
    idle = {step_id for step_id, step in steps.items() if not step.WAITS}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in idle:
        if start in state:
            continue
        path = [start]
        state[start] = 1
        stack: list[Iterator[str]] = [_idle_targets(steps, idle, start)]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                stack.pop()
                state[path.pop()] = 2
            elif state.get(target) == 1:
                return [*path[path.index(target) :], target]
            elif target not in state:
                state[target] = 1
                path.append(target)
                stack.append(_idle_targets(steps, idle, target))
    return []


def _idle_targets(steps: Mapping[str, Step], idle: set[str], step_id: str) -> Iterator[str]:
    return (target for _, target in steps[step_id].targets() if target in idle)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "a text",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


# -- step parsers: (loader, fields, id, following step) -> step ----------------

_Parser = Callable[[_Loader, _Fields, str, "str | None"], Step]


def _say(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    return SayStep(sid, f.target("next", nxt), f.prompt("text"), f.boolean("barge_in", True))


def _play(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    return PlayStep(sid, f.target("next", nxt), ld.file(f, "file"), f.boolean("barge_in", True))


def _menu(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    if f.has("next"):
        raise f.error("next", "a menu goes where its choices say; use 'failed' for what follows")
    prompt = f.prompt("prompt")
    raw_choices = f.get("choices")
    if not isinstance(raw_choices, list) or not raw_choices:
        raise f.error("choices", "must be a non-empty list")
    if len(raw_choices) > ld.limits.max_choices:
        raise f.error("choices", f"has more than {ld.limits.max_choices} choices")
    choices: list[Choice] = []
    digits: set[str] = set()
    phrases_seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(raw_choices, start=1):
        cf = _Fields(ld, raw, sid, f"choices[{index}].", f.line)
        digit = cf.digit("digit", "") if cf.has("digit") else ""
        if digit and digit in digits:
            raise cf.error("digit", f"key {digit!r} is used by two choices")
        digits.add(digit)
        phrases: dict[str, tuple[str, ...]] = {}
        raw_speech = cf.get("speech")
        if raw_speech is not None:
            if not isinstance(raw_speech, dict):
                raise cf.error("speech", "must map languages to lists of phrases")
            for language, items in raw_speech.items():
                label = f"speech.{language}"
                if language not in ld.languages:
                    raise cf.error(label, "is not one of the flow's languages")
                if isinstance(items, str):
                    items = [items]
                if (
                    not isinstance(items, list)
                    or not items
                    or not all(isinstance(p, str) and p.strip() for p in items)
                ):
                    raise cf.error(label, "must be a non-empty list of phrases")
                if len(items) > ld.limits.max_phrases:
                    raise cf.error(label, f"has more than {ld.limits.max_phrases} phrases")
                for phrase in items:
                    if len(phrase) > 100:
                        raise cf.error(label, f"phrase {phrase[:20]!r}... is over 100 characters")
                    key = (language, phrase_key(phrase))
                    if key in phrases_seen:
                        raise cf.error(label, f"phrase {phrase!r} is used by two choices")
                    phrases_seen.add(key)
                phrases[language] = tuple(items)
        if not digit and not phrases:
            raise cf.error(None, "needs a digit, speech phrases or both")
        goto = cf.target("goto", None)
        cf.finish()
        choices.append(Choice(digit, phrases, goto))
    return MenuStep(
        sid,
        prompt,
        tuple(choices),
        failed=f.target("failed", nxt),
        retries=f.integer("retries", 2, 0, 9),
        timeout_seconds=f.number("timeout", 5.0, 1, 60),
        invalid=f.optional_prompt("invalid"),
        no_input=f.optional_prompt("no_input"),
        min_confidence=f.number("min_confidence", 0.5, 0, 1),
    )


def _collect(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    prompt = f.prompt("prompt")
    min_length = f.integer("min_length", 1, 1, 32)
    max_length = f.integer("max_length", 16, 1, 32)
    if max_length < min_length:
        raise f.error("max_length", f"is less than min_length ({min_length})")
    terminator = f.get("terminator")
    if terminator is None:
        terminator = "#"
    elif terminator is False or terminator == "":
        terminator = ""
    elif terminator not in ("#", "*"):
        raise f.error("terminator", f"must be '#', '*' or false, not {terminator!r}")
    return CollectStep(
        sid,
        next=f.target("next", nxt),
        failed=f.target("failed", nxt),
        variable=ld.variable(f, "variable"),
        prompt=prompt,
        min_length=min_length,
        max_length=max_length,
        terminator=terminator,
        timeout_seconds=f.number("timeout", 5.0, 1, 60),
        digit_timeout_seconds=f.number("digit_timeout", 3.0, 1, 30),
        retries=f.integer("retries", 2, 0, 9),
        invalid=f.optional_prompt("invalid"),
        no_input=f.optional_prompt("no_input"),
    )


def _lookup(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    by = f.string("by", "caller")
    if by not in ("caller", "account"):
        raise f.error("by", f"must be 'caller' or 'account', not {by!r}")
    variable = ""
    if by == "account":
        variable = ld.variable(f, "variable")
    elif f.has("variable"):
        raise f.error("variable", "is only for 'by: account'")
    following = f.target("next", nxt)
    return LookupStep(
        sid,
        next=following,
        not_found=f.target("not_found", following),
        by=cast(Literal["caller", "account"], by),
        variable=variable,
    )


def _branch(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    raw_rules = f.get("when")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise f.error("when", "must be a non-empty list of rules")
    if len(raw_rules) > ld.limits.max_rules:
        raise f.error("when", f"has more than {ld.limits.max_rules} rules")
    rules = []
    for index, raw in enumerate(raw_rules, start=1):
        rf = _Fields(ld, raw, sid, f"when[{index}].", f.line)
        condition = ld.condition(rf)
        goto = rf.target("goto", None)
        rf.finish()
        rules.append(Rule(condition, goto))
    return BranchStep(sid, f.target("next", nxt), tuple(rules))


def _set(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    variable = ld.variable(f, "variable")
    if f.has("value") == f.has("from"):
        raise f.error("value", "give exactly one of 'value' and 'from'")
    value = f.string("value") if f.has("value") else None
    source = ld.variable(f, "from") if f.has("from") else None
    if value is not None and variable == "language" and value not in ld.languages:
        raise f.error("value", f"{value!r} is not one of the flow's languages")
    if value is not None and variable == "priority" and value not in tuple("0123456789"):
        raise f.error("value", f"a priority is 0-9, not {value!r}")
    return SetStep(sid, f.target("next", nxt), variable, value, source)


def _queue(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    raw_skills = f.get("skills")
    skills: dict[str, int] = {}
    if isinstance(raw_skills, list):
        raw_skills = dict.fromkeys(raw_skills, 1)
    if raw_skills is not None:
        if not isinstance(raw_skills, dict):
            raise f.error("skills", "must be a list of skills or map skills to proficiency 1-5")
        for skill, level in raw_skills.items():
            if not isinstance(skill, str) or not _NAME.fullmatch(skill):
                raise f.error("skills", f"{skill!r} is not a skill name")
            if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
                raise f.error("skills", f"proficiency of {skill!r} must be 1-5, not {level!r}")
            skills[skill] = level
    announce_every = f.integer("announce_every", 0, 0, 3600)
    if 0 < announce_every < 10:
        raise f.error("announce_every", "must be 0 (never) or at least 10 seconds")
    announce = f.prompt("announce") if announce_every else f.optional_prompt("announce")
    if announce is not None and not announce_every:
        raise f.error("announce", "needs announce_every")
    raw_language_skills = f.get("language_skills")
    language_skills: dict[str, str] = {}
    if raw_language_skills is not None:
        if not isinstance(raw_language_skills, dict):
            raise f.error("language_skills", "must map languages to skill names")
        for language, skill in raw_language_skills.items():
            if language not in ld.languages:
                raise f.error(f"language_skills.{language}", "is not one of the flow's languages")
            if not isinstance(skill, str) or not _NAME.fullmatch(skill):
                raise f.error(f"language_skills.{language}", f"{skill!r} is not a skill name")
            language_skills[language] = skill
    callback_digit = f.digit("callback_digit", "")
    callback = f.target("callback", "")
    if bool(callback_digit) != bool(callback):
        raise f.error("callback", "callback and callback_digit go together")
    return QueueStep(
        sid,
        next=f.target("next", nxt),
        queue=ld.name(f, "queue"),
        priority=f.integer("priority", 0, 0, 9),
        skills=skills,
        language_skills=language_skills,
        music=ld.file(f, "music", ""),
        announce_every=announce_every,
        announce=announce,
        callback_digit=callback_digit,
        callback=callback,
        overflow=f.target("overflow", ""),
    )


def _callback(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    prompt = f.prompt("prompt")
    return CallbackStep(
        sid,
        next=f.target("next", nxt),
        declined=f.target("declined", ""),
        prompt=prompt,
        accept_digit=f.digit("accept_digit", "1"),
        number_variable=ld.variable(f, "number_variable", "caller_number"),
        confirm=f.optional_prompt("confirm"),
        timeout_seconds=f.number("timeout", 5.0, 1, 60),
        queue=ld.name(f, "queue") if f.has("queue") else "",
    )


def _voicemail(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    prompt = f.prompt("prompt")
    return VoicemailStep(
        sid,
        next=f.target("next", nxt),
        prompt=prompt,
        max_seconds=f.integer("max_seconds", 120, 5, 600),
        queue=ld.name(f, "queue") if f.has("queue") else "",
    )


def _transfer(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    if f.has("next"):
        raise f.error("next", "a transfer ends the flow")
    number = f.string(
        "number", pattern=_NUMBER, explain="a number of digits, '*' and '#' (may start with '+')"
    )
    return TransferStep(sid, number)


def _survey(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    prompt = f.prompt("prompt")
    return SurveyStep(
        sid,
        next=f.target("next", nxt),
        prompt=prompt,
        retries=f.integer("retries", 1, 0, 9),
        timeout_seconds=f.number("timeout", 8.0, 1, 60),
        invalid=f.optional_prompt("invalid"),
        thanks=f.optional_prompt("thanks"),
    )


def _hangup(ld: _Loader, f: _Fields, sid: str, nxt: str | None) -> Step:
    if f.has("next"):
        raise f.error("next", "a hangup ends the flow")
    reason = f.string("reason", "completed", pattern=_REASON, explain="a-z and '_'")
    return HangupStep(sid, reason)


_PARSERS: dict[str, _Parser] = {
    "say": _say,
    "play": _play,
    "menu": _menu,
    "collect": _collect,
    "lookup": _lookup,
    "branch": _branch,
    "set": _set,
    "queue": _queue,
    "callback": _callback,
    "voicemail": _voicemail,
    "transfer": _transfer,
    "survey": _survey,
    "hangup": _hangup,
}
