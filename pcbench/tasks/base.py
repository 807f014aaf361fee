"""A task: where examples come from, how a reader request is built, how an answer is scored.

A task class reads one data format; its YAML sets the template, generation length and metrics,
so a new task in a known format is a YAML only.
"""

from __future__ import annotations

import dataclasses
import string
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example
from pcbench.core.knobs import Range, without_later_knobs
from pcbench.core.records import ExampleRecord
from pcbench.core.requests import Request, context_end
from pcbench.tasks.jsonl import refuse_duplicate_ids
from pcbench.tasks.judge import JUDGE_METRIC
from pcbench.tasks.registry import MetricName, get_metric

# Token counts of texts, in the reader's tokenizer (core/tokenizer.py's `count`).
Counter = Callable[[list[str]], list[int]]


@dataclass
class Task(ABC):
    """Generic QA task.

    template: a format string over {context} and {question} ({input} is an alias of question,
    as in LongBench's templates). chat: wrap the prompt in the reader's chat template.
    first_line: score only the first line of the prediction (leading newlines stripped).
    stop_at_newline: also end generation at a newline (LongBench's samsum).
    metrics: names registered in tasks/registry.py (per-example scores in [0, 1]; metrics.json
    reports x100).
    limit: first N examples only (after any seeded shuffling the loader does, and the length filter).
    min_tokens / max_tokens: keep only examples whose context has at least / at most this many
    tokens, counted in the reader's tokenizer (a study of "8K-16K only"); null: no bound.

    Fields carry no defaults: the values come from conf/task/*.yaml, and core/build.py checks
    them against these annotations before the task is built (core/knobs.py).
    """

    name: str
    template: str
    max_new_tokens: Annotated[int, Range(1)]
    chat: bool
    first_line: bool
    stop_at_newline: bool
    metrics: list[MetricName]
    limit: Annotated[int, Range(1)] | None
    # Keyword-only with a null default, unlike the knobs above: a task YAML written before the length
    # filter existed (a user's own task) still builds. The shipped YAMLs set them.
    min_tokens: Annotated[int, Range(0)] | None = field(default=None, kw_only=True)
    max_tokens: Annotated[int, Range(1)] | None = field(default=None, kw_only=True)

    # Bump when a change to reading, prompting or scoring changes results for the same knobs, so
    # finished cells of the old code are recomputed rather than skipped.
    version: ClassVar[int] = 1
    # What a template may name; {context} it must name (a reader that never sees the context
    # would be scored as if it had).
    PLACEHOLDERS: ClassVar[tuple[str, ...]] = ("context", "question", "input")

    def settings(self) -> dict[str, Any]:
        """Every knob and the class version: what a finished cell's results depend on."""
        knobs = without_later_knobs({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", "version": self.version, **knobs}

    def __post_init__(self) -> None:
        self.metrics = list(self.metrics)
        if not self.metrics:
            raise PcbenchError("task.metrics is empty; name at least one metric (see tasks/registry.py)")
        if self.template is not None:
            check_template(self.template, self.PLACEHOLDERS)
        if self.min_tokens is not None and self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise PcbenchError(f"task.min_tokens={self.min_tokens} is above task.max_tokens={self.max_tokens}; "
                               "no example could be kept")

    @abstractmethod
    def read(self) -> list[Example]:
        """All examples of the task, in a fixed order."""

    def load(self, count: Counter | None = None) -> list[Example]:
        """The task's examples: read, within the length bounds (`count` gives contexts' lengths in the
        reader's tokens), the first `limit`."""
        examples = self.read()
        refuse_duplicate_ids([e.id for e in examples], None, f"task {self.name}")
        return self.first_of_each(self.within_length(examples, count))

    def limit_group(self, example: Example) -> Any:
        """What `limit` counts within (a suite's dataset, a grid's cell); one group by default."""
        return None

    def first_of_each(self, examples: list[Example]) -> list[Example]:
        """The first `limit` examples of each limit group, in order (all of them with no limit)."""
        if self.limit is None:
            return examples
        taken: dict[Any, int] = defaultdict(int)
        kept = []
        for example in examples:
            group = self.limit_group(example)
            if taken[group] < int(self.limit):
                kept.append(example)
                taken[group] += 1
        return kept

    def within_length(self, examples: list[Example], count: Counter | None) -> list[Example]:
        """The examples whose context length lies within task.min_tokens and task.max_tokens."""
        if self.min_tokens is None and self.max_tokens is None:
            return examples
        if count is None:
            raise PcbenchError("task.min_tokens and task.max_tokens count the reader's tokens; load the task "
                               "through a cell, or pass load(count=tokenizer.count)")
        low, high = self.min_tokens or 0, self.max_tokens if self.max_tokens is not None else float("inf")
        lengths = count([e.context for e in examples])
        return [e for e, n in zip(examples, lengths) if low <= n <= high]

    def prompt(self, example: Example, context: str) -> str:
        return self.template.format_map({"context": context, "question": example.question, "input": example.question})

    def request(self, example: Example, context: str) -> Request:
        return Request(self.prompt(example, context), self.max_new_tokens, self.chat, self.stop_at_newline,
                       context_end(lambda c: self.prompt(example, c), context))

    def follow_up(self, example: Example, answer: str) -> Request | None:
        """A second request built on the reader's first answer, whose answer is then the one scored
        (LongBench v2's chain of thought); None for a task that asks once."""
        return None

    def postprocess(self, prediction: str, example: Example) -> str:
        if self.first_line:
            return prediction.lstrip("\n").split("\n")[0]
        return prediction

    def score(self, prediction: str, example: Example) -> dict[str, float]:
        answer = self.postprocess(prediction, example)
        # llm_judge comes from the cell's judge model (runners/cell.py), beside these.
        return {name: float(get_metric(name)(answer, example)) for name in self.metrics if name != JUDGE_METRIC}

    def instruction_spans(self, example: Example) -> tuple[str, ...]:
        """The parts of the context that are instruction or few-shot demonstrations rather than evidence
        (the runner reports how much of them survives compression): by default the strings a user's data
        names (task.fields.instruction, kept as meta["instruction"]); none for most tasks."""
        return tuple(str(s) for s in example.meta.get("instruction") or ())

    def summarize(self, rows: list[tuple[Example, ExampleRecord]]) -> dict[str, Any]:
        """Task-specific aggregates beyond metric means (LongBench categories, length buckets).

        rows pairs each example with its record (record["scores"] holds per-metric values).
        """
        return {}


def check_template(template: str, allowed: tuple[str, ...]) -> None:
    """One line for a template that cannot be rendered, or that leaves the context out."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:  # an unmatched brace
        raise PcbenchError(f"task.template cannot be rendered ({exc}); write a literal brace as {{{{ or }}}}") from None
    listed = ", ".join("{" + a + "}" for a in allowed)
    for name in names:
        if name not in allowed:
            raise PcbenchError(f"task.template names {{{name}}}, which this task does not fill; allowed: {listed}")
    if "context" not in names:
        raise PcbenchError(f"task.template has no {{context}}: the reader would never see the compressed context; "
                           f"allowed: {listed}")
