"""An attention probe (AttentionRAG, Fang et al. 2025, training-free): a small causal LM reads the
context, then the question, and each unit is scored by the attention the query pays to its tokens.

Step by step, and every difference from the reference: docs/methods/attention.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np

from pcbench.compressors.base import Env
from pcbench.compressors.scored import ScoredCompressor
from pcbench.compressors.units import Unit, aggregate, first_char_anchors
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, passage_starts
from pcbench.core.knobs import Range
from pcbench.models.causal import CausalLM
from pcbench.models.pool import ModelKnobs


@dataclass
class AttentionProbe(ScoredCompressor, ModelKnobs):
    """An attention probe (AttentionRAG, Fang et al. 2025; training-free).

    A small causal LM reads the context, then the question with an answer hint; each unit scores the
    attention the last token (or the question's tokens) pays to its tokens over the chosen `layers`
    and `heads`, aggregated by `aggregation`. Knobs: the budget, `level`, `layers`, `heads`, `query`,
    `answer_hint`, `aggregation`, the model block.
    """

    layers: list[int]  # which layers' attention (negative: from the end)
    heads: list[int] | None  # which heads (None: all)
    query: Literal["last", "question"]
    answer_hint: str | None  # appended after the question (AttentionRAG's recast), e.g. "Answer:"
    aggregation: Literal["sum", "mean", "max"]
    max_tokens: Annotated[int, Range(16)]  # context tokens per forward pass

    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.layers:
            raise PcbenchError("compressor.layers is empty; name at least one layer, e.g. [-1]")

    def score_batch(self, examples: list[Example], units: list[list[Unit]], env: Env) -> list[list[float]]:
        lm = env.causal_lm(self.model_spec())
        return [self._scores(lm, example, us) for example, us in zip(examples, units)]

    def _scores(self, lm: CausalLM, example: Example, units: list[Unit]) -> list[float]:
        context = example.context
        tokens = lm.tokenize(context)
        suffix = f"\n\nQuestion: {example.question}" + (f"\n{self.answer_hint}" if self.answer_hint else "")
        tail = lm.encode(suffix)
        question_at = len(lm.encode("\n\nQuestion: "))  # where the question's own tokens start in the suffix
        lead = [lm.bos_id] if lm.bos_id is not None else []
        weights = np.zeros(len(tokens.ids))
        for start in range(0, len(tokens.ids), self.max_tokens):
            window = tokens.ids[start:start + self.max_tokens]
            ids = lead + window + tail
            first = len(lead) + len(window)  # the suffix's first position
            queries = [len(ids) - 1] if self.query == "last" else list(range(first + question_at, len(ids)))
            try:
                seen = lm.attention(ids, self.layers, queries)  # [layers, heads, queries, positions]
            except PcbenchError as exc:
                raise PcbenchError(f"compressor.{exc}") from None
            if self.heads is not None:
                bad = [h for h in self.heads if not 0 <= h < seen.shape[1]]
                if bad:
                    raise PcbenchError(f"compressor.heads={self.heads}: the model has {seen.shape[1]} heads per layer")
                seen = seen[:, self.heads]
            weights[start:start + len(window)] = seen.mean(axis=(0, 1, 2))[len(lead):len(lead) + len(window)]
        at = dict(passage_starts(example.passages))
        spans = [(at[u.passage] + u.start, at[u.passage] + u.end) for u in units]
        scores = aggregate(first_char_anchors(tokens.offsets, context), weights.tolist(), spans, self.aggregation)
        return [s if np.isfinite(s) else 0.0 for s in scores]
