"""What a cell writes, as types: an `ExampleRecord` per line of predictions.jsonl and the
`CellMetrics` of metrics.json, at schema version `SCHEMA`. The runner writes them, the cache and
`analysis/` read them through these types (mypy checks every key), and `schema_problem` refuses a
folder written by a newer pcbench with one line.

Schema 1 is every folder written before the version was recorded: the same fields, and still read.
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass
from typing import Any, TypedDict

SCHEMA = 2
# The reader-free diagnostics of what survives compression (runners/diagnostics.py), per example and as
# cell means.
SURVIVAL = ("entities_kept", "dates_kept", "numbers_kept", "question_terms_kept", "instruction_kept",
            "instruction_whole")


class Cached(TypedDict, total=False):
    compress: bool  # the compressed context came from the cache
    generate: bool  # the reader's answer came from the cache


class Diagnostics(TypedDict, total=False):
    """What the runner judges of a compressed context, beside the reader's answer."""

    answer_in_context: bool | None  # a gold answer survives in what the reader saw (None: yes/no only)
    evidence_recall: float | None  # share of the gold evidence kept (None: no evidence, or written text)
    char_ratio: float
    kept_ratio_cl100k: float  # the LLMLingua papers' unit: GPT-3.5 tokens of the context
    prompt_ratio_cl100k: float  # ... of the whole prompt
    evidence_recall_applicable: bool  # False for written (abstractive) contexts
    # What survives (runners/diagnostics.py): shares of the original context's named entities, dates,
    # numbers and question terms still in the compressed context; None where the original has none.
    entities_kept: float | None
    dates_kept: float | None
    numbers_kept: float | None
    question_terms_kept: float | None
    # ... and of the instruction or few-shot demonstrations that sit in the context (Task.instruction_spans):
    # the share of their words kept in place, and the share of them kept whole; None where there are none.
    instruction_kept: float | None
    instruction_whole: float | None


class JudgeVerdict(TypedDict):
    """An LLM judge on one prediction (tasks/judge.py): its verdict and its words."""

    verdict: float | None  # p(right) from the logits, or 1/0 from the reply; None: the reply names both or neither
    reply: str  # what the judge wrote: its rationale, in BERGEN's protocol a word or a few
    by: str  # "logits" or "reply": where the verdict came from
    match: float  # `match` of the same prediction (0 or 1), for the judge's agreement with it
    cached: bool  # the reply came from the cache


class JudgeSummary(TypedDict):
    """A cell's judge: what it was, how often it could not decide, and how often it agrees with `match`."""

    protocol: str
    reader: dict[str, Any]  # the judge's reader settings (its model)
    judged: int
    unknown: int
    agreement_with_match: float | None  # share of decided examples where verdict == match, 0..1
    kappa: float | None  # Cohen's kappa of the two (None when either never varies)
    table: dict[str, int]  # judge_right_match_right, judge_right_match_wrong, ... (decided examples)


class _Example(TypedDict):
    id: str
    question: str
    gold: list[str]
    prediction: str | None  # None in a reader-free cell
    scores: dict[str, float | None]  # the task's metrics, 0..1 (empty in a reader-free cell; llm_judge None: undecided)
    original_tokens: int  # the context's tokens, in the budget's tokenizer
    compressed_tokens: int
    kept_ratio: float
    compress_seconds: float
    compressor_extras: dict[str, Any]  # what the method reports about itself
    cached: Cached


class ExampleRecord(_Example, Diagnostics, total=False):
    """One example of a cell: a line of predictions.jsonl (the diagnostics are always written)."""
    prompt_tokens: int  # after truncation and the chat template
    new_tokens: int
    truncated: bool
    prefill_seconds: float | None
    generate_seconds: float | None
    kv_kept_ratio: float  # a KV press: the share of KV entries kept
    kv_cache_mib: float | None  # ... the cache left after the pressed prefill
    kv_full_mib: float | None  # ... the same tokens' cache unpressed
    prefill_peak_mib: float | None  # ... how far memory rose during that prefill
    dataset: str  # suites (LongBench): the example's dataset
    context: str  # the compressed context the reader got
    prompt_hash: str | None  # the reader request's digest
    raw_prediction: str  # the answer before the compressor's restore()
    reasoning: str  # a two-step task's first answer, which the second step read (LongBench v2's CoT)
    judge: JudgeVerdict  # with judge=...: the judge's verdict (also scores["llm_judge"])


class _CompressedEntry(TypedDict):
    text: str
    original_tokens: int
    compressed_tokens: int
    seconds: float


class CompressedEntry(_CompressedEntry, total=False):
    """The cache's value for one compressed example (stage "compressed")."""

    extras: dict[str, Any]
    batch_examples: int


class _GenerationEntry(TypedDict):
    text: str
    prompt_tokens: int
    new_tokens: int


class GenerationEntry(_GenerationEntry, total=False):
    """The cache's value for one reader answer (stage "generation": core.requests.Generation's fields)."""

    truncated: bool
    prefill_seconds: float | None
    decode_seconds: float | None
    kv_kept_ratio: float | None
    kv_cache_mib: float | None
    kv_full_mib: float | None
    prefill_peak_mib: float | None
    option_probs: dict[str, float] | None


class CellMetrics(TypedDict, total=False):
    """A cell's metrics.json: means over its examples (percentages x100 where LongBench reports
    them so), its identity, seconds, memory and what ran it."""

    schema: int
    task: str
    compressor: str
    reader: str
    requested: dict[str, Any]  # the compressor's knobs as configured
    n_examples: int
    metrics: dict[str, float | None]
    kept_ratio: float | None
    kept_ratio_of_totals: float | None
    compression_x: float | None
    char_ratio: float | None
    kept_ratio_cl100k: float | None
    prompt_ratio_cl100k: float | None
    original_tokens_mean: float | None
    compressed_tokens_mean: float | None
    empty_contexts: int
    answer_in_context: float | None
    answer_in_context_yes_no: int
    evidence_recall: float | None
    entities_kept: float | None
    dates_kept: float | None
    numbers_kept: float | None
    question_terms_kept: float | None
    instruction_kept: float | None
    instruction_whole: float | None
    truncated: int
    kv_kept_ratio: float | None
    kv_memory: dict[str, float | None] | None
    seconds: dict[str, float | None]
    cache_hits: dict[str, int]
    environment: dict[str, Any]
    memory: dict[str, Any]
    energy: dict[str, Any]
    compressor_info: dict[str, Any]
    identity: dict[str, Any]
    status: str  # finished, or compressed (stage=compress)
    cwd: str
    skipped: bool  # this run found the cell finished and left it
    judge: JudgeSummary  # with judge=...


@dataclass
class ServedRequest:
    """One request pcbench-serving sent (a row of its requests.csv): seconds from sending it (to the
    first token, to the end, per output token after the first), tokens as the server counted them,
    or why it failed."""

    id: str
    ttft: float | None = None
    e2e: float | None = None
    tpot: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def schema_problem(metrics: dict[str, Any]) -> str | None:
    """What keeps this pcbench from reading a metrics.json of another schema, or None."""
    schema = metrics.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        return f"schema is {schema!r}, not a version number"
    if schema > SCHEMA:
        return (f"written with record schema {schema} by a newer pcbench; this one reads schemas 1 to {SCHEMA}: "
                "upgrade pcbench to read it")
    return None


def conforms(value: Any, shape: Any) -> bool:
    """Does a value read back from disk have the TypedDict `shape`: its required keys present, and
    every key it declares of the declared type (int is not bool; a float may be written as an int)."""
    if not isinstance(value, dict) or not shape.__required_keys__ <= value.keys():
        return False
    hints = _hints(shape)
    return all(_of_type(value[k], hints[k]) for k in hints if k in value)


@functools.cache
def _hints(shape: Any) -> dict[str, Any]:
    """The shape's declared types, resolved once: every cache read checks its entry against them."""
    return typing.get_type_hints(shape)


def _of_type(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_of_type(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if typing.is_typeddict(hint):
        return conforms(value, hint)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)
