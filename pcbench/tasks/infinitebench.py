"""InfiniteBench (Zhang et al. 2024): tasks over 100K+ token contexts, asked as OpenBMB/InfiniteBench's
`create_prompt` asks them and scored by its `compute_scores.py`. The protocol and every difference:
docs/tasks.md."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.core.records import ExampleRecord
from pcbench.core.requests import Request, context_end
from pcbench.tasks.base import Task
from pcbench.tasks.infinitebench_metrics import SCORERS
from pcbench.tasks.jsonl import drop_unaskable, hub_origin, hub_rows, records_with_origins, require_keys

CHOICE = frozenset({"longbook_choice_eng", "code_debug"})
# The retrieval tasks' needles: where the gold sits in the context (the gold evidence).
NEEDLE_TASKS = frozenset({"passkey", "number_string", "kv_retrieval"})


@dataclass
class InfiniteBenchTask(Task):
    """InfiniteBench's subtasks, from the hub (split = the subtask, at `revision`) or a folder of the
    official <subtask>.jsonl files. prompt_style: which of prompt.py's template sets (gpt4: the chat
    models' one); system: the system turn with chat. max_new_tokens null: the per-subtask table."""

    template: str | None  # type: ignore[assignment]  # null: the subtask's template of prompt_style
    max_new_tokens: Annotated[int, Range(1)] | None  # type: ignore[assignment]
    subtask: list[str]
    path: str | None
    hub_id: str
    revision: str | None
    prompt_style: str
    system: str | None
    max_new_tokens_by_subtask: dict[str, int]
    templates: dict[str, dict[str, str]]

    def __post_init__(self) -> None:
        self.subtask = [str(s) for s in ([self.subtask] if isinstance(self.subtask, str) else self.subtask)]
        self.templates = {str(k): {str(a): str(b) for a, b in dict(v).items()} for k, v in dict(self.templates).items()}
        self.max_new_tokens_by_subtask = {str(k): int(v) for k, v in dict(self.max_new_tokens_by_subtask).items()}
        unknown = [s for s in self.subtask if s not in SCORERS]
        if unknown or not self.subtask:
            raise PcbenchError(f"task.subtask={self.subtask}: unknown {unknown or 'empty'}; allowed: "
                               f"{', '.join(SCORERS)} (math_calc is left out: docs/tasks.md)")
        if self.prompt_style not in self.templates:
            raise PcbenchError(f"task.prompt_style={self.prompt_style!r}; allowed: {', '.join(self.templates)}")
        missing = [s for s in self.subtask if s not in self.templates[self.prompt_style]]
        if missing:
            raise PcbenchError(f"task.templates.{self.prompt_style} has no {', '.join(missing)}")
        super().__post_init__()

    # -- reading ---------------------------------------------------------------------------------

    def read(self) -> list[Example]:
        examples = []
        for subtask in self.subtask:
            examples += [self._example(subtask, i, where, row) for i, (where, row) in enumerate(self._rows(subtask))]
        return drop_unaskable(examples, str(self.path or self.hub_id), need_question=False)

    def limit_group(self, example: Example) -> Any:
        return example.meta["subtask"]  # the first N of each subtask

    def _rows(self, subtask: str) -> list[tuple[str, dict[str, Any]]]:
        if self.path is None:
            source = f"{self.hub_id}:{subtask}"
            rows = hub_rows(self.hub_id, None, subtask, self.revision, local="task.path=<folder of <subtask>.jsonl>")
            return [(hub_origin(source, i), row) for i, row in enumerate(rows)]
        file = Path(self.path).expanduser() / f"{subtask}.jsonl"
        if not file.is_file():
            raise PcbenchError(f"InfiniteBench file not found: {file} (task.path holds <subtask>.jsonl)")
        return records_with_origins(file)

    def _example(self, subtask: str, index: int, where: str, row: dict[str, Any]) -> Example:
        require_keys(where, row, ("context", "input", "answer"), "InfiniteBench")
        options = [str(o) for o in row.get("options") or []]
        label = gold_label(subtask, row["answer"], options, where)
        answers = tuple(str(a) for a in (label if isinstance(label, list) else [label]))
        context = str(row["context"])
        evidence = needles(subtask, context, answers[0]) if subtask in NEEDLE_TASKS else ()
        return Example(
            id=f"{subtask}-{row.get('id', index)}", question=str(row["input"]),
            passages=(Passage(text=context, gold=bool(evidence), evidence=evidence),), answers=answers,
            meta={"subtask": subtask, "label": label, "options": options,
                  # Summaries, letters and computed values are no spans of the context.
                  "long_answers": subtask not in NEEDLE_TASKS | {"longbook_qa_eng", "longbook_qa_chn",
                                                                "longdialogue_qa_eng", "math_find"}})

    # -- asking ----------------------------------------------------------------------------------

    def prompt(self, example: Example, context: str) -> str:
        """create_prompt: the subtask's template, filled with what that subtask fills."""
        subtask, question = example.meta["subtask"], example.question
        template = self.template if self.template is not None else self.templates[self.prompt_style][subtask]
        values: dict[str, Any] = {"context": context, "input": question, "question": question}
        options = example.meta["options"]
        if len(options) >= 4:
            values.update({f"OPTION_{letter}": options[i] for i, letter in enumerate("ABCD")})
        if subtask == "code_run":
            call = re.findall(r"func_[0-9]+\(\-?[0-9]+\)", question)
            if not call:
                raise PcbenchError(f"example {example.id}: code_run's input names no func_N(x) call: {question!r}")
            values.update(func_call=call[0], func=call[0].split("(")[0])
        if subtask == "math_find":
            target = re.findall(r"The .+ of", question)
            if not target:
                raise PcbenchError(f"example {example.id}: math_find's input names no 'The ... of': {question!r}")
            values["prefix"] = f"What is {target[0].lower()[:-3]} in the following list?"
        return template.format(**values)

    def request(self, example: Example, context: str) -> Request:
        subtask = example.meta["subtask"]
        length = self.max_new_tokens if self.max_new_tokens is not None else self.max_new_tokens_by_subtask[subtask]
        return Request(self.prompt(example, context), int(length), self.chat, self.stop_at_newline,
                       context_end(lambda c: self.prompt(example, c), context),
                       system=self.system if self.chat else None)

    def summarize(self, rows: list[tuple[Example, ExampleRecord]]) -> dict[str, Any]:
        """The score of each subtask (x100), as compute_scores.py prints one per task."""
        by: dict[str, list[float]] = defaultdict(list)
        for example, record in rows:
            score = (record.get("scores") or {}).get("infinitebench")
            if score is not None:
                by[example.meta["subtask"]].append(float(score))
        return {"infinitebench": {s: round(100 * sum(v) / len(v), 2) for s, v in by.items()}} if by else {}


def gold_label(subtask: str, answer: Any, options: list[str], where: str) -> Any:
    """eval_utils.py's get_answer: the choice tasks' [option text, letter]; the rest as the row has it."""
    if subtask not in CHOICE:
        return answer
    if isinstance(answer, list) and len(answer) == 2 and answer[1] in ("A", "B", "C", "D"):
        return [str(answer[0]), str(answer[1])]
    text = answer[0] if isinstance(answer, list) and len(answer) == 1 else answer
    if not isinstance(text, str) or text not in options:
        raise PcbenchError(f"{where}: answer {answer!r} is not one of the options {options}")
    return [text, "ABCD"[options.index(text)]]


def needles(subtask: str, context: str, gold: str) -> tuple[str, ...]:
    """Where the retrieval tasks' gold sits: kv_retrieval's JSON pair, passkey's and number_string's
    sentence."""
    if subtask == "kv_retrieval":
        pattern = r'"[^"]+": "' + re.escape(gold) + '"'
    else:
        pattern = r"[^.\n]*" + re.escape(gold) + r"[^.\n]*\.?"
    return tuple(dict.fromkeys(m.group(0).strip() for m in re.finditer(pattern, context)))
