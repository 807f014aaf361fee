"""What every compressor is: a small configured dataclass that turns examples into shorter ones.

A compressor implements `compress` (one example) or `compress_batch` (several, so a model can
batch across examples); each has a default in terms of the other. The result keeps its structure
(kept passages with their titles), so a later stage can compress it again.

Knobs are the dataclass fields, annotated with what they allow (core.knobs); their values come
from the YAML alone. `version` is bumped when a change to the algorithm changes outputs, so
cached results of the old algorithm are never reused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage, render_passages
from pcbench.core.knobs import CHANGE_NOTHING, Range
from pcbench.core.nested import without_keys
from pcbench.core.tokenizer import Tokenizer
from pcbench.models.causal import CausalLM, causal_lm
from pcbench.models.pool import MODELS, Models, ModelSpec
from pcbench.models.seq2seq import Seq2SeqLM, seq2seq_lm


class Store(Protocol):
    """Memoises pure computations under keys built from everything they depend on."""

    def fetch(self, key: dict[str, Any], compute: Callable[[], Any]) -> Any: ...

    def fetch_many(self, keys: list[dict[str, Any]], compute: Callable[[list[int]], list[Any]]) -> list[Any]:
        """Values for every key; `compute(indices)` is called once, for the misses only."""
        ...


class NoStore:
    """A store that remembers nothing: for tests and one-off calls."""

    def fetch(self, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
        return compute()

    def fetch_many(self, keys: list[dict[str, Any]], compute: Callable[[list[int]], list[Any]]) -> list[Any]:
        return compute(list(range(len(keys)))) if keys else []


# One scoring job for `fetch_surprisals`: its store key, the token sequences it scores, and what it
# makes of their surprisals (one array per sequence) as the value stored under the key.
SurprisalJob = tuple[dict[str, Any], list[list[int]], Callable[[list[Any]], Any]]


def fetch_surprisals(store: Store, scorer: CausalLM, jobs: list[SurprisalJob], batch_size: int,
                     bos: bool) -> list[Any]:
    """The value of every job, the misses scored together: all their sequences go through the
    model in shared padded batches (across examples when the jobs are several examples'), then
    each job reduces its own arrays."""

    def compute(missing: list[int]) -> list[Any]:
        seqs = [seq for i in missing for seq in jobs[i][1]]
        arrays = scorer.surprisal(seqs, batch_size, bos=bos) if seqs else []
        out, pos = [], 0
        for i in missing:
            n = len(jobs[i][1])
            out.append(jobs[i][2](arrays[pos:pos + n]))
            pos += n
        return out

    return store.fetch_many([job[0] for job in jobs], compute)


def no_overhead(example: Example) -> int:
    return 0


@dataclass
class Env:
    """What the harness lends a compressor: the reader's tokenizer, a score store, the model pool.

    `tokenizer` is the one budgets are counted in: the reader's, or the one the compressor's
    `budget_tokenizer` names (cl100k: the papers' GPT-3.5 tokens). `prompt_overhead` gives the
    tokens a prompt holds besides the context (instruction, question), for `budget_scope=prompt`.

    Models come from the pool, so a compressor and the reader that name one model share one copy:
    `causal_lm` scores, generates under the readers' prompt protocol and reads attention;
    `seq2seq` generates from an encoder-decoder; encoders load with `models.get` and their loader.
    """

    tokenizer: Tokenizer
    store: Store = field(default_factory=NoStore)
    models: Models = field(default_factory=lambda: MODELS)
    prompt_overhead: Callable[[Example], int] = no_overhead

    def causal_lm(self, spec: ModelSpec) -> CausalLM:
        return causal_lm(self.models, spec)

    def seq2seq(self, spec: ModelSpec) -> Seq2SeqLM:
        return seq2seq_lm(self.models, spec)

    def count(self, texts: list[str]) -> list[int]:
        """Token counts in the reader's tokenizer, memoised: a rate sweep counts the same units again."""
        return self.store.fetch({"stage": "tokens", "tokenizer": self.tokenizer.name, "texts": texts},
                                lambda: self.tokenizer.count(texts))


@dataclass
class Compressed:
    """The kept passages (titles included) plus whatever the method reports about itself."""

    passages: tuple[Passage, ...]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The context the reader gets."""
        return render_passages(self.passages)

    @classmethod
    def of_text(cls, text: str, extras: dict[str, Any] | None = None) -> Compressed:
        """A result with no passage structure left (a summary, a token-level cut across passages)."""
        return cls((Passage(text),) if text.strip() else (), extras or {})

    def as_example(self, example: Example) -> Example:
        """The example with its context replaced by this result, for a further stage."""
        return replace(example, passages=self.passages)


# What a compressor is in a study: a method, the uncompressed baseline every method is measured
# against, a control (random units at the same budget) or a ceiling (the gold evidence).
Role = Literal["method", "baseline", "control", "ceiling"]


class Compressor:
    """Subclasses are dataclasses whose annotated fields are their knobs (values in the YAML).

    Implement `compress` or `compress_batch` (at least one). Set `question_aware = False` when the
    question is never looked at, so results are keyed without it. `role` and `budget_knobs` say
    what the compressor is in a study and which knobs set its budget (the x axis of a trade-off
    curve, not part of a variant); they are recorded in metrics.json, which analysis reads.
    """

    question_aware: ClassVar[bool] = True
    version: ClassVar[int] = 1
    role: ClassVar[Role] = "method"
    budget_knobs: ClassVar[tuple[str, ...]] = ("rate", "target_tokens", "threshold")
    uses_budget: ClassVar[bool] = True  # False: a budget is accepted (so sweeps can include it) and ignored
    # True: the output is written, not cut from the source (a summary), so evidence recall, which
    # looks for source spans, does not apply to it.
    generates_text: ClassVar[bool] = False

    def compress(self, example: Example, env: Env) -> Compressed:
        return self.compress_batch([example], env)[0]

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        if type(self).compress is Compressor.compress:
            raise NotImplementedError(f"{type(self).__name__} implements neither compress nor compress_batch")
        return [self.compress(example, env) for example in examples]

    def restore(self, prediction: str, example: Example, compressed: str, env: Env) -> str:
        """The reader's answer with compressed spans mapped back to the original text, before it is
        scored (LongLLMLingua's subsequence recovery). Most methods leave it as it is."""
        return prediction

    def settings(self) -> dict[str, Any]:
        """Every knob as requested (nested compressors as their own settings), for the record."""
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", "version": self.version,
                **{f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                   if f.init}}

    def budget_basis(self) -> tuple[str, str]:
        """(the tokenizer budgets are counted in, their scope): ("reader", "context") unless the
        compressor's `budget_tokenizer` and `budget_scope` knobs say otherwise."""
        if isinstance(self, Budget):
            return (self.budget_tokenizer, self.budget_scope)
        return ("reader", "context")

    def describe(self) -> dict[str, Any]:
        """What analysis needs to know of the compressor, recorded in metrics.json."""
        return {"role": self.role, "budget_knobs": list(self.budget_knobs), "uses_budget": self.uses_budget,
                "generates_text": self.generates_text}

    def key(self) -> dict[str, Any]:
        """What the result depends on: the settings less the knobs that change nothing (core.knobs)."""
        return without_keys(self.settings(), CHANGE_NOTHING)


def _plain(value: Any) -> Any:
    if isinstance(value, Compressor):
        return value.settings()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


Rate = Annotated[float, Range(0, 1, low_open=True)]
Tokens = Annotated[int, Range(1)]


@dataclass
class Budget:
    """The budget vocabulary shared by every compressor: set exactly one of rate, target_tokens, threshold.

    rate: fraction of the context's tokens kept, 0 < rate <= 1. target_tokens: tokens kept.
    threshold: keep units scoring at least this (methods with a meaningful score scale).
    budget_tokenizer: what the tokens are: the reader's (pcbench's default), or OpenAI's cl100k /
    o200k, as the LLMLingua papers count (their "2x" is in GPT-3.5 tokens).
    budget_scope: context (the budget is the context's) or prompt (the ratio or target is the whole
    prompt's, instruction and question included, and they are never cut: the context gets the rest,
    as LongLLMLingua's tables count their constraint).
    """

    rate: Rate | None
    target_tokens: Tokens | None
    threshold: float | None
    budget_tokenizer: Literal["reader", "cl100k", "o200k"]
    budget_scope: Literal["context", "prompt"]

    def __post_init__(self) -> None:
        chosen = [n for n in ("rate", "target_tokens", "threshold") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise PcbenchError(
                f"{type(self).__name__}: set exactly one of rate, target_tokens, threshold "
                f"(got {', '.join(chosen) or 'none'}); null the others, e.g. "
                f"compressor.rate=null compressor.target_tokens=2000"
            )

    def token_limit(self, total: int, overhead: int = 0) -> int | None:
        """The context tokens allowed out of `total`, or None when a threshold decides. With
        `budget_scope=prompt`, `overhead` (the prompt's other tokens) counts against the budget."""
        if self.budget_scope == "context":
            overhead = 0
        if self.rate is not None:
            return max(0, int(round(float(self.rate) * (total + overhead))) - overhead)
        if self.target_tokens is not None:
            return max(0, int(self.target_tokens) - overhead)
        return None

    @staticmethod
    def fields() -> tuple[str, ...]:
        return ("rate", "target_tokens", "threshold")
