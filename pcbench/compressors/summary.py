"""Abstractive compression: an instruction LM writes a summary of the context (Jha et al. 2024 compare
query-focused and query-agnostic summaries; the focused ones score several points higher).

Step by step, and every difference from the reference: docs/methods/abstractive.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pcbench.compressors.base import Budget, Compressed, Compressor, Env
from pcbench.compressors.units import fit_count
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example
from pcbench.core.knobs import Range
from pcbench.core.requests import Request
from pcbench.core.text import split_sentences
from pcbench.models.causal import CausalLM
from pcbench.models.pool import ModelKnobs
from pcbench.models.protocol import build_prompt

_WORD_END = re.compile(r"\S+")


@dataclass
class Summary(Compressor, Budget, ModelKnobs):
    """Abstractive compression (as compared by Jha et al. 2024): an instruction LM writes a summary.

    Query-focused by default (`question_aware=false` for a generic one), batched under the readers'
    prompt protocol; the budget sets the generation length and is never exceeded; long contexts are
    summarised in chunks, then merged. Knobs: the budget, `question_aware`, `max_input_tokens`,
    the model block.
    """

    batch_size: Annotated[int, Range(1)]
    # The knob is the attribute the harness reads; field() so the base class's value is no default.
    question_aware: bool = field()  # type: ignore[misc]
    focused_prompt: str
    generic_prompt: str
    merge_prompt: str
    max_input_tokens: Annotated[int, Range(64)]
    length_slack: Annotated[float, Range(1)]

    version: ClassVar[int] = 1
    budget_knobs: ClassVar[tuple[str, ...]] = ("rate", "target_tokens")
    generates_text: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threshold is not None:
            raise PcbenchError("compressor.threshold has no meaning for a summary; set compressor.rate or "
                               "compressor.target_tokens (and compressor.threshold=null)")
        for name in ("focused_prompt", "generic_prompt", "merge_prompt"):
            template = getattr(self, name)
            if "{context}" not in template:
                raise PcbenchError(f"compressor.{name} must hold {{context}} (where the text to summarise goes); "
                                   f"got {template!r}")
        if "{question}" not in self.focused_prompt:
            raise PcbenchError(f"compressor.focused_prompt must hold {{question}}; got {self.focused_prompt!r}")

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        lm = env.causal_lm(self.model_spec())
        plans = [self._plan(example, env, lm) for example in examples]
        # Map: every chunk of every example in one batched generation.
        jobs = [(i, k) for i, plan in enumerate(plans) for k in range(len(plan["chunks"]))]
        written = self._generate(lm, [self._prompt(examples[i], plans[i]["chunks"][k]) for i, k in jobs],
                                 [plans[i]["lengths"][k] for i, k in jobs])
        partial: dict[int, list[str]] = {i: [] for i in range(len(examples))}
        for (i, _), text in zip(jobs, written):
            partial[i].append(text.strip())
        # Reduce: examples summarised in several chunks whose summaries together overflow the budget.
        merging = [i for i, plan in enumerate(plans) if len(plan["chunks"]) > 1
                   and env.count([" ".join(partial[i])])[0] > plan["limit"]]
        merged = self._generate(lm, [self.merge_prompt.format_map({"context": "\n".join(partial[i]),
                                                                   "question": examples[i].question})
                                     for i in merging], [plans[i]["length"] for i in merging])
        finals = {i: " ".join(t for t in partial[i] if t) for i in range(len(examples))}
        finals.update({i: text.strip() for i, text in zip(merging, merged)})
        out = []
        for i, plan in enumerate(plans):
            text, cut = fit(finals[i], plan["limit"], env)
            extras = {"requested": {"rate": self.rate, "target_tokens": self.target_tokens},
                      "target_reader_tokens": plan["limit"], "original_reader_tokens": plan["total"],
                      "chunks": len(plan["chunks"]), "merged": i in merging, "cut": cut, "empty": not text,
                      "question_aware": self.question_aware, "model": self.model}
            out.append(Compressed.of_text(text, extras))
        return out

    # -- planning --------------------------------------------------------------------------------

    def _plan(self, example: Example, env: Env, lm: CausalLM) -> dict[str, Any]:
        context = example.context
        total = env.count([context])[0] if context.strip() else 0
        limit = self.token_limit(total, env.prompt_overhead(example)) or 0
        own = len(lm.encode(context)) if context else 0
        # The budget in the summariser's tokens, by the ratio of the two counts of the context.
        length = max(1, math.ceil(limit * (own / total if total else 1.0) * self.length_slack))
        room = self.max_input_tokens - len(lm.encode(self._prompt(example, "")))
        if room < 16:
            raise PcbenchError(f"compressor.max_input_tokens={self.max_input_tokens} leaves no room for the context "
                               f"beside the prompt of example {example.id!r}; raise it")
        chunks = chunk_text(context, room, lm) if context.strip() else []
        shares = [len(lm.encode(c)) / own if own else 0.0 for c in chunks]
        return {"limit": limit, "total": total, "length": length, "chunks": chunks,
                "lengths": [max(1, math.ceil(length * s)) for s in shares]}

    def _prompt(self, example: Example, context: str) -> str:
        template = self.focused_prompt if self.question_aware else self.generic_prompt
        return template.format_map({"context": context, "question": example.question})

    def _generate(self, lm: CausalLM, prompts: list[str], lengths: list[int]) -> list[str]:
        if not prompts:
            return []
        built = [build_prompt(lm.tokenizer, Request(p, n), self.max_input_tokens) for p, n in zip(prompts, lengths)]
        return [g.text for g in lm.generate(built, self.batch_size)]


def chunk_text(text: str, room: int, lm: CausalLM) -> list[str]:
    """`text` in chunks of whole sentences up to `room` summariser tokens (a longer sentence alone)."""
    chunks: list[str] = []
    current, used = "", 0
    for sentence in split_sentences(text):
        n = len(lm.encode(sentence))
        if current and used + n > room:
            chunks.append(current)
            current, used = "", 0
        current, used = current + sentence, used + n
    if current.strip():
        chunks.append(current)
    return chunks


def fit(text: str, limit: int, env: Env) -> tuple[str, bool]:
    """`text` if it fits `limit` budget tokens, else its longest prefix ending at a sentence end that
    fits (a word end when no sentence does); (text, whether it was cut)."""
    if not text or env.count([text])[0] <= limit:
        return text, False
    ends = [len(s) for s in _cumulative(split_sentences(text))]
    fitting = [e for e in ends if env.count([text[:e].strip()])[0] <= limit]
    if fitting:
        return text[:fitting[-1]].strip(), True
    words = [m.end() for m in _WORD_END.finditer(text)]
    k = fit_count(range(len(words)), lambda kept: text[:words[len(kept) - 1]] if kept else "", env.count, limit)
    return (text[:words[k - 1]].strip() if k else ""), True


def _cumulative(pieces: list[str]) -> list[str]:
    out, acc = [], ""
    for piece in pieces:
        acc += piece
        out.append(acc)
    return out
