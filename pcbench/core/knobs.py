"""Knob checking from a dataclass's own annotations: one source for types, choices and ranges.

A component (compressor, task, reader) is a dataclass whose fields are its knobs and carry no
defaults: the values come from its YAML. Each field's annotation says what is allowed:

    rate: Annotated[float, Range(0, 1, low_open=True)] | None
    level: Literal["passage", "sentence"]
    batch_size: Annotated[int, Range(1)]

`check_knobs` converts what Hydra composed (strings from the command line included) to those
types and refuses anything else with one line naming the key, the bad value and what is allowed,
before anything loads. Hand-written checks stay only for rules between knobs.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pcbench.core.errors import PcbenchError, closest


@dataclass(frozen=True)
class Range:
    """A numeric interval; None leaves a side open-ended."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return ""


@dataclass(frozen=True)
class Pattern:
    """A string that must match `regex` in full; `meaning` says in words what that is."""

    regex: str
    meaning: str

    def allows(self, value: str) -> bool:
        return re.fullmatch(self.regex, value) is not None


@dataclass(frozen=True)
class DeviceName:
    """auto, cpu, cuda, cuda:N or mps, and only one this machine has (checked when the knob is)."""

    def problem(self, value: str) -> str | None:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            return "one of auto, cpu, cuda, cuda:N, mps"
        if value in ("auto", "cpu"):
            return None
        import torch

        if value.startswith("cuda"):
            if not torch.cuda.is_available():
                return f"auto or cpu (no CUDA device here: torch {torch.__version__})"
            index = int(value.split(":")[1]) if ":" in value else 0
            if index >= torch.cuda.device_count():
                return f"cuda:0..cuda:{torch.cuda.device_count() - 1}, auto or cpu"
        if value == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            return "auto or cpu (no MPS device here)"
        return None


# Every device knob: checked against what exists before anything loads.
Device = Annotated[str, DeviceName()]

# Knobs that change how fast a result comes, or whether a model may load at all, never what the
# result is: the one list the cache keys (compressors and readers) and the analysis's variant labels
# leave out. A class whose output one of them does change keeps it in its key (Provence, where
# trust_remote_code picks the implementation).
CHANGE_NOTHING = frozenset({"device", "batch_size", "trust_remote_code"})


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class KnobError(ValueError):
    """A value that does not fit its annotation; the message says what is allowed."""


def describe(hint: Any) -> str:
    """What a type annotation allows, in words, for error messages."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        base, *extras = args
        ranges = [e.describe() for e in extras if isinstance(e, Range)]
        patterns = [e.meaning for e in extras if isinstance(e, Pattern)]
        if patterns:
            return " ".join(patterns)
        if any(isinstance(e, DeviceName) for e in extras):
            return "one of auto, cpu, cuda, cuda:N, mps"
        return " ".join([describe(base), *[r for r in ranges if r]])
    if origin in (Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(str(a) if a is not None else "null" for a in args)
    if origin in (list, tuple, typing.Sequence):
        return f"a list (each {describe(args[0])})" if args else "a list"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(hint, str(hint))


def convert(value: Any, hint: Any) -> Any:
    """`value` converted to `hint`, or KnobError."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin is Annotated:
        base, *extras = args
        value = convert(value, base)
        for extra in extras:
            if value is None:
                break
            if isinstance(extra, Range) and not extra.allows(value):
                raise KnobError(describe(hint))
            if isinstance(extra, Pattern) and not extra.allows(value):
                raise KnobError(describe(hint))
            if isinstance(extra, DeviceName) and (problem := extra.problem(value)):
                raise KnobError(problem)
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg)
            except KnobError:
                continue
        raise KnobError(describe(hint))
    if origin is Literal:
        for arg in args:
            if value == arg and type(value) is type(arg):
                return arg
        raise KnobError(describe(hint))
    if origin in (list, tuple) or hint in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise KnobError(describe(hint))
        item = args[0] if args else Any
        try:
            return [convert(v, item) for v in value]
        except KnobError:
            raise KnobError(describe(hint)) from None  # name the list, not only the item's rule
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise KnobError(describe(hint))
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise KnobError(describe(hint))
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise KnobError(describe(hint))
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # NaN passes every comparison; infinities are never meant
                raise KnobError("a finite number")
            return float(value)
        raise KnobError(describe(hint))
    if hint is str:
        if isinstance(value, str):
            return value
        raise KnobError(describe(hint))
    if value is None:
        raise KnobError(describe(hint))
    return value  # nested components and other objects: their own classes check them


def hints(cls: type) -> dict[str, Any]:
    """The init fields of a dataclass and their annotations (ClassVars are not knobs)."""
    resolved = get_type_hints(cls, include_extras=True)
    return {f.name: resolved[f.name] for f in dataclasses.fields(cls) if f.init}


def check_knobs(cls: type, values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`values` converted to `cls`'s annotated types; one PcbenchError line for the first bad one.

    Unknown keys and missing ones are refused too, naming the allowed keys.
    """
    fields = hints(cls)
    unknown = [k for k in values if k not in fields and not k.startswith("_")]
    if unknown:
        guess = closest(unknown[0], fields)
        hint = f"did you mean {guess!r}? " if guess else ""
        raise PcbenchError(f"{prefix} has no key {unknown[0]!r}; {hint}allowed: {', '.join(fields)}")
    missing = [k for k, f in ((f.name, f) for f in dataclasses.fields(cls) if f.init)
               if k not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise PcbenchError(f"{prefix} sets no value for {', '.join(missing)}; add it to the YAML or the command line")
    out = {}
    for key, value in values.items():
        if key.startswith("_"):
            out[key] = value
            continue
        try:
            out[key] = convert(value, fields[key])
        except KnobError as exc:
            name = f"{prefix}.{key}" if prefix else key
            raise PcbenchError(f"{name}={value!r} is not allowed; allowed: {exc}") from None
    return out


# Task knobs added after cells were recorded: null leaves them out of the config hash and the task's
# settings, so a cell finished before they existed is still finished. Own data (the task with
# `fields`) always had `revision`; its new knob is fields.instruction.
LATER_TASK_KNOBS = ("min_tokens", "max_tokens", "revision")


def without_later_knobs(task: dict[str, Any]) -> dict[str, Any]:
    later = LATER_TASK_KNOBS if "fields" not in task else ("min_tokens", "max_tokens")
    out = {k: v for k, v in task.items() if not (k in later and v is None)}
    if isinstance(out.get("fields"), dict) and out["fields"].get("instruction", "") is None:
        out["fields"] = {k: v for k, v in out["fields"].items() if k != "instruction"}
    return out
