"""An LLM judge: the `llm_judge` score, read through any reader backend (conf/judge/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pcbench.core.example import Example
from pcbench.core.knobs import Range
from pcbench.core.requests import Request

JUDGE_METRIC = "llm_judge"


@dataclass
class BergenJudge:
    """BERGEN's pointwise QA judge (Rau et al., "BERGEN: A Benchmarking Library for Retrieval-Augmented
    Generation", 2024; naver/bergen `config/evaluator/default_qa.yaml`, `models/evaluators/vllm.py`).

    The judge model gets BERGEN's system turn and question, the gold answers (as the Python list
    BERGEN formats) and the reader's prediction, and decodes greedily up to `max_new_tokens` (BERGEN:
    10). With `use_logits` (BERGEN's default, and what its transformers evaluator does) the verdict is
    p(Yes): the softmax over the first tokens of "No" and "Yes" at the first new token, so every
    answer gets one. A backend that sees no logits (vLLM, an endpoint) takes BERGEN's vLLM path, as
    does `use_logits: false`: the verdict is the one option the reply names ("Yes" 1, "No" 0), and a
    reply that names both or neither is undecided (None), left out of the mean as BERGEN leaves it.
    A chat template without a system turn gets the system text before the user turn (BERGEN switches
    to a one-turn variant of the prompt there).
    """

    protocol: Literal["bergen"]
    max_new_tokens: Annotated[int, Range(1)]
    use_logits: bool

    OPTIONS: ClassVar[dict[str, float]] = {"Yes": 1.0, "No": 0.0}
    version: ClassVar[int] = 1

    def settings(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "max_new_tokens": self.max_new_tokens, "use_logits": self.use_logits,
                "version": self.version}

    def request(self, example: Example, prediction: str) -> Request:
        rubric = ", ".join(self.OPTIONS)
        system = f"You are an evaluation tool. Answer with one of {rubric}."
        user = (f"Here is a question, a golden answer and an AI-generated answer. Can you judge whether the "
                f"AI-generated answer is correct according to the question and golden answer, simply answer "
                f"with one of {rubric}.\n Question: {example.question}. \nGolden answer: {list(example.answers)} "
                f"\n Generated answer: {prediction}")
        options = tuple(sorted(self.OPTIONS)) if self.use_logits else None  # BERGEN sorts them
        return Request(user, self.max_new_tokens, chat=True, system=system, options=options)

    def verdict(self, reply: str, option_probs: dict[str, float] | None = None) -> float | None:
        """p(Yes) from the first token's option probabilities where the backend gave them; else 1.0
        or 0.0 when the reply names exactly one option (a substring, as BERGEN's parser reads it)."""
        if option_probs:
            return sum(p * self.OPTIONS[option] for option, p in option_probs.items())
        named = [value for option, value in self.OPTIONS.items() if option in reply]
        return named[0] if len(named) == 1 else None
