"""Stages in sequence: each compresses what the previous one kept (coarse to fine).

Every step gets the previous result as an example (passages and titles kept), so a passage
ranker can feed a sentence scorer or a token pruner. Each step's budget applies to its own input:
passage-level bm25 at rate 0.5, then a token pruner at rate 0.5 keeps about a quarter of the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcbench.compressors.base import Compressed, Compressor, Env
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example


@dataclass
class Chain(Compressor):
    """Coarse to fine (DSPC-style when configured as `dspc`): steps in sequence, each
    compressing what the previous one kept.

    `steps` maps a name to a compressor config; each step's budget applies to its own input, so
    bm25 passages at 0.5 then a token pruner at 0.5 keep about a quarter. Knobs: `steps`.
    """

    steps: dict[str, Compressor]  # name -> step, run in the order given

    def __post_init__(self) -> None:
        if not self.steps or not all(isinstance(s, Compressor) for s in self.steps.values()):
            raise PcbenchError("compressor.steps must map names to compressor nodes (each with a _target_)")

    @property
    def question_aware(self) -> bool:  # type: ignore[override]
        return any(step.question_aware for step in self.steps.values())

    def budget_basis(self) -> tuple[str, str]:
        """The steps' common basis: they all count in the one tokenizer the harness lends."""
        bases = {name: step.budget_basis() for name, step in self.steps.items()}
        if len(set(bases.values())) > 1:
            listed = ", ".join(f"{name}: {tokenizer}/{scope}" for name, (tokenizer, scope) in bases.items())
            raise PcbenchError(f"compressor.steps count budgets differently ({listed}); give every step the same "
                               "budget_tokenizer and budget_scope")
        return next(iter(bases.values()))

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        current = list(examples)
        extras: list[dict[str, Any]] = [{} for _ in examples]
        results: list[Compressed] = []
        for name, step in self.steps.items():
            results = step.compress_batch(current, env)
            for extra, result in zip(extras, results):
                extra[name] = result.extras
            current = [result.as_example(example) for result, example in zip(results, current)]
        return [Compressed(r.passages, extra) for r, extra in zip(results, extras)]
