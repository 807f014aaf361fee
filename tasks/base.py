"""A task: where examples come from, how a reader request is built, how an answer is scored.

A task class reads one data format; its YAML sets the template, generation length and metrics,
so a new task in a known format is a YAML only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from core.errors import PcbenchError
from core.example import Example
from core.requests import Request
from tasks.registry import get_metric


@dataclass
class Task(ABC):
    """Generic QA task.

    template: a format string over {context} and {question} ({input} is an alias of question,
    as in LongBench's templates). chat: wrap the prompt in the reader's chat template.
    first_line: score only the first line of the prediction (leading newlines stripped).
    stop_at_newline: also end generation at a newline (LongBench's samsum).
    metrics: names from tasks.metrics (per-example scores in [0, 1]; metrics.json reports x100).
    limit: first N examples only (after any seeded shuffling the loader does).
    """

    name: str
    template: str = "{context}\n\nQuestion: {question}\nAnswer:"
    max_new_tokens: int = 32
    chat: bool = True
    first_line: bool = False
    stop_at_newline: bool = False
    metrics: list[str] = field(default_factory=lambda: ["match", "em", "f1"])
    limit: int | None = None

    def __post_init__(self) -> None:
        self.metrics = list(self.metrics)
        for name in self.metrics:
            get_metric(name)  # fail at start-up, not after an hour of generation
        if self.limit is not None and int(self.limit) < 1:
            raise PcbenchError(f"task.limit={self.limit} must be a positive integer or null (all examples)")

    @abstractmethod
    def read(self) -> list[Example]:
        """All examples of the task, in a fixed order."""

    def load(self) -> list[Example]:
        examples = self.read()
        return examples[: int(self.limit)] if self.limit is not None else examples

    def prompt(self, example: Example, context: str) -> str:
        return self.template.format_map({"context": context, "question": example.question, "input": example.question})

    def request(self, example: Example, context: str) -> Request:
        return Request(self.prompt(example, context), self.max_new_tokens, self.chat, self.stop_at_newline)

    def postprocess(self, prediction: str, example: Example) -> str:
        if self.first_line:
            return prediction.lstrip("\n").split("\n")[0]
        return prediction

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        answer = self.postprocess(prediction, example)
        return {name: float(get_metric(name)(answer, example)) for name in self.metrics}

    def summarize(self, rows: list[tuple[Example, dict[str, Any]]]) -> dict[str, Any]:
        """Task-specific aggregates beyond metric means (LongBench categories, length buckets).

        rows pairs each example with its record (record["scores"] holds per-metric values).
        """
        return {}
