"""BABILong (Kuratov et al. 2024): bAbI's facts hidden in PG19 text, asked as booydar/babilong's run script
asks them. The protocol and every difference: docs/tasks.md."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.records import ExampleRecord
from pcbench.tasks.babilong_metrics import TASK_LABELS
from pcbench.tasks.base import Task
from pcbench.tasks.jsonl import drop_unaskable, hub_origin, hub_rows, records_with_origins, require_keys

LENGTHS = ("0k", "1k", "2k", "4k", "8k", "16k", "32k", "64k", "128k", "256k", "512k", "1M", "10M")


@dataclass
class BabilongTask(Task):
    """BABILong's tasks (qa1-qa20) at the given lengths, from the hub (config = length, split = task, at
    `revision`) or local files in the hub rows' format (input, question, target; a folder holding
    <length>/<qa>.jsonl, or one .jsonl with `path`, a single task and length).

    instruction / examples / post_prompt: the run script's --use_instruction, --use_examples and
    --use_post_prompt (prompts.py's DEFAULT_PROMPTS, in `prompts`); the template is prompts.py's
    DEFAULT_TEMPLATE, the whole stripped. A row's `references` (the generator's supporting facts), when
    present, are the gold evidence.
    """

    path: str | None
    hub_id: str
    revision: str | None
    qa: list[str]
    lengths: list[str]
    instruction: bool
    examples: bool
    post_prompt: bool
    prompts: dict[str, dict[str, str]]

    PLACEHOLDERS: ClassVar[tuple[str, ...]] = ("context", "question", "instruction", "examples", "post_prompt")

    def __post_init__(self) -> None:
        self.qa, self.lengths = [str(q) for q in self.qa], [str(n) for n in self.lengths]
        self.prompts = {str(k): {str(a): str(b) for a, b in dict(v).items()} for k, v in dict(self.prompts).items()}
        unknown = [q for q in self.qa if q not in TASK_LABELS]
        if unknown or not self.qa:
            raise PcbenchError(f"task.qa={self.qa}: unknown {unknown or 'empty'}; allowed: qa1 ... qa20")
        lengths = [n for n in self.lengths if n not in LENGTHS]
        if lengths or not self.lengths:
            raise PcbenchError(f"task.lengths={self.lengths}: unknown {lengths or 'empty'}; "
                               f"allowed: {', '.join(LENGTHS)}")
        missing = [q for q in self.qa if q not in self.prompts]
        if missing:
            raise PcbenchError(f"task.prompts has no {', '.join(missing)}; each task needs instruction, examples "
                               "and post_prompt (prompts.py's DEFAULT_PROMPTS)")
        if self.path is not None and Path(self.path).expanduser().is_file() and len(self.qa) * len(self.lengths) > 1:
            raise PcbenchError(f"task.path={self.path} is one file: give one task and one length (task.qa=[qa1] "
                               "task.lengths=[4k]), or a folder holding <length>/<qa>.jsonl")
        super().__post_init__()

    def read(self) -> list[Example]:
        examples = []
        for length in self.lengths:
            for qa in self.qa:
                for index, (where, row) in enumerate(self._rows(qa, length)):
                    examples.append(self._example(qa, length, index, where, row))
        return drop_unaskable(examples, str(self.path or self.hub_id))

    def limit_group(self, example: Example) -> Any:
        return (example.meta["qa"], example.meta["length"])  # the first N of each task and length

    def _rows(self, qa: str, length: str) -> list[tuple[str, dict[str, Any]]]:
        if self.path is None:
            source = f"{self.hub_id}/{length}:{qa}"
            rows = hub_rows(self.hub_id, length, qa, self.revision, local="task.path=<folder of <length>/<qa>.jsonl>")
            return [(hub_origin(source, i), row) for i, row in enumerate(rows)]
        root = Path(self.path).expanduser()
        file = root if root.is_file() else root / length / f"{qa}.jsonl"
        if not file.is_file():
            raise PcbenchError(f"BABILong file not found: {file} (task.path holds <length>/<qa>.jsonl)")
        return records_with_origins(file)

    def _example(self, qa: str, length: str, index: int, where: str, row: dict[str, Any]) -> Example:
        require_keys(where, row, ("input", "question", "target"), "BABILong")
        references = [str(r) for r in row.get("references") or []]
        context = str(row["input"])
        return Example(
            id=f"{qa}-{length}-{index}", question=str(row["question"]),
            passages=(Passage(text=context, gold=bool(references),
                              evidence=tuple(r for r in references if r in context)),),
            answers=(str(row["target"]),), meta={"qa": qa, "length": length})

    def prompt(self, example: Example, context: str) -> str:
        parts = self.prompts[example.meta["qa"]]
        values = {"instruction": parts["instruction"] if self.instruction else "",
                  "examples": parts["examples"] if self.examples else "",
                  "post_prompt": parts["post_prompt"] if self.post_prompt else "",
                  "context": context.strip(), "question": example.question}
        return self.template.format_map(values).strip()

    def summarize(self, rows: list[tuple[Example, ExampleRecord]]) -> dict[str, Any]:
        """Accuracy per task and length (x100), the leaderboard's grid."""
        grid: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for example, record in rows:
            score = (record.get("scores") or {}).get("babilong")
            if score is not None:
                grid[example.meta["qa"]][example.meta["length"]].append(float(score))
        table = {qa: {n: round(100 * sum(v) / len(v), 1) for n, v in by.items()} for qa, by in grid.items()}
        return {"babilong": dict(sorted(table.items(), key=lambda kv: int(re.sub(r"\D", "", kv[0]))))} if table else {}
