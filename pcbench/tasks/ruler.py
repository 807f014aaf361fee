"""RULER needle-in-a-haystack tasks (hsiehjackson/RULER), from generated JSONL or the kvpress mirror.

A RULER `input` is the whole prompt: an instruction line, the haystack, then the question and the
answer prefix ("What is the special magic uuid for K ...? The special magic uuid for K ... is").
Only the haystack goes to the compressor: the input is split into instruction / haystack /
separator / question and the default template glues them back, so an uncompressed prompt is the
original input byte for byte. The needle sentences holding the expected values are marked as
evidence, for oracle compressors and evidence recall.

Scoring is RULER's string_match_all ("ruler_match"): the share of expected values found in the
prediction, case-insensitively, after RULER's postprocessing (control characters -> newlines).
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.tasks.base import Task
from pcbench.tasks.jsonl import drop_unaskable, folder_problem, hub_origin, hub_rows, json_lines, require_keys

log = logging.getLogger(__name__)

# RULER's niah templates open with "Some special magic X are hidden within the following text. ..."
# ("A special magic uuid is hidden ..." in generated files): an instruction, not haystack.
_INSTRUCTION = re.compile(r"\A[^\n]*\bhidden within the following text\b[^\n]*\n")
# The question starts a line with "What is"/"What are" (RULER's niah query templates); the last
# such line is the question, so a "What is" inside an essay haystack cannot be mistaken for it.
_QUESTION_AT_LINE = re.compile(r"(?m)^What (?:is|are)\b")
# kvpress' own split pattern, for inputs where the question does not start a line.
_QUESTION_ANYWHERE = re.compile(r"What (?:is|are all) the special magic")
_NEEDLE_START = "One of the special magic"


class RulerSplit(NamedTuple):
    instruction: str
    haystack: str
    separator: str
    question: str  # the question and the answer prefix, to the end of the input


def split_input(text: str) -> RulerSplit | None:
    """instruction + haystack + separator + question == text; None when no question is found."""
    head = _INSTRUCTION.match(text)
    instruction = head.group(0) if head else ""
    body = text[len(instruction) :]
    matches = list(_QUESTION_AT_LINE.finditer(body)) or list(_QUESTION_ANYWHERE.finditer(body))
    if not matches:
        return None
    start = matches[-1].start()
    before = body[:start]
    haystack = before.rstrip()  # the whitespace run before the question is kept as the separator
    return RulerSplit(instruction, haystack, before[len(haystack) :], body[start:])


def needle_sentences(haystack: str, values: Iterable[str]) -> tuple[str, ...]:
    """The needle sentence ("One of the special magic ... is: VALUE.") around each expected value.

    Falls back to the value's line start when the needle wording differs; every span returned is
    a substring of the haystack.
    """
    spans: list[str] = []
    for value in values:
        if not value:
            continue
        for hit in re.finditer(re.escape(value), haystack):
            line_start = haystack.rfind("\n", 0, hit.start()) + 1
            start = haystack.rfind(_NEEDLE_START, line_start, hit.start())
            start = line_start if start < 0 else start
            end = hit.end() + (1 if haystack[hit.end() : hit.end() + 1] == "." else 0)
            span = haystack[start:end]
            if span not in spans:
                spans.append(span)
    return tuple(spans)


def postprocess_prediction(prediction: str) -> str:
    """RULER's postprocess_pred: strip, control characters become newlines, strip again."""
    return re.sub(r"[\x00-\x1f]", "\n", prediction.strip()).strip()


class RulerPrompt:
    """How a RULER example becomes a prompt: the template over {instruction}, {context} (the
    haystack), {separator} and {question} (question and answer prefix), kept in the example's meta
    by the task that read or generated it; predictions postprocessed as RULER does."""

    template: str
    PLACEHOLDERS: ClassVar[tuple[str, ...]] = ("instruction", "context", "separator", "question", "input")

    def prompt(self, example: Example, context: str) -> str:
        values = {
            "instruction": example.meta.get("instruction", ""),
            "context": context,
            "separator": example.meta.get("separator", ""),
            "question": example.question,
            "input": example.question,
        }
        return self.template.format_map(values)

    def postprocess(self, prediction: str, example: Example) -> str:
        return postprocess_prediction(prediction)


@dataclass
class RulerTask(RulerPrompt, Task):
    """A RULER task.

    path: a RULER JSONL file (`index, input, outputs, length`; `outputs` a list or the string of a
      Python list), or a folder holding <subtask>.jsonl or <subtask>/validation.jsonl (RULER's
      own layout). null loads `hub_id` (config `hub_config`, the context length) and keeps the
      rows whose `task` is `subtask`; that mirror (NVIDIA/kvpress' simonjegou/ruler) stores
      context / question / answer_prefix / answer, which are joined back into RULER's `input`.
    template: over {instruction}, {context} (the haystack), {separator} and {question}; the
      default rebuilds the original input exactly when nothing is compressed.
    chat: false by default because generated RULER inputs already end with the answer prefix (a
      completion prompt, RULER's "base" template); set true to wrap it in the reader's chat format.
    max_new_tokens: 128, RULER's tokens_to_generate for niah tasks.
    """

    path: str | None
    hub_id: str
    revision: str | None  # the hub dataset's commit or tag (part of the cell's identity)
    hub_config: str
    subtask: str
    split: str

    def read(self) -> list[Example]:
        rows = self._local_rows() if self.path is not None else self._hub_rows()
        examples: list[Example] = []
        unsplit = 0
        for position, (where, row) in enumerate(rows):
            example, found = self._example(position, row, where)
            examples.append(example)
            unsplit += not found
        if unsplit:
            log.warning(
                "%d of %d RULER inputs have no 'What is/are ...' question; their whole input is the context "
                "(compressors will see the question too)",
                unsplit,
                len(examples),
            )
        source = str(self.path) if self.path is not None else f"{self.hub_id}/{self.hub_config}"
        return drop_unaskable(examples, source, need_question=False)

    def _file(self) -> Path:
        base = Path(str(self.path)).expanduser()
        if base.is_file():
            return base
        if base.is_dir():
            for candidate in (base / f"{self.subtask}.jsonl", base / self.subtask / "validation.jsonl"):
                if candidate.is_file():
                    return candidate
            if not any(base.iterdir()):
                raise PcbenchError(folder_problem(base, f"{self.subtask}.jsonl or {self.subtask}/validation.jsonl"))
            raise PcbenchError(
                f"task.path={base} holds neither {self.subtask}.jsonl nor {self.subtask}/validation.jsonl"
            )
        raise PcbenchError(f"task.path={base} does not exist (expected a RULER .jsonl file or a folder of them)")

    def _local_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        file = self._file()
        with file.open(encoding="utf-8") as handle:
            for where, row in json_lines(file, handle):
                require_keys(where, row, ("input", "outputs"), "RULER")
                yield where, row

    def _hub_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        data = hub_rows(self.hub_id, self.hub_config, self.split, self.revision,
                        local=f"task.path=<a RULER {self.subtask} .jsonl file>")
        index = 0
        for i, row in enumerate(data):
            if row.get("task") != self.subtask:
                continue
            where = hub_origin(f"{self.hub_id}/{self.hub_config}", i)
            text = f"{row['context']}{row['question']}{row.get('answer_prefix') or ''}"
            yield where, {"index": index, "input": text, "outputs": row["answer"], "length": row.get("length")}
            index += 1

    def _example(self, position: int, row: dict[str, Any], where: str) -> tuple[Example, bool]:
        answers = _outputs(row["outputs"], where)
        if not isinstance(row["input"], str):  # null would be asked as an empty prompt
            shown = "null" if row["input"] is None else type(row["input"]).__name__
            raise PcbenchError(f"{where}: 'input' is {shown}; expected the prompt as a string")
        text = row["input"]
        parts = split_input(text)
        found = parts is not None
        if parts is None:  # keep everything, so the prompt is still exactly the input
            parts = RulerSplit("", text, "", "")
        evidence = needle_sentences(parts.haystack, answers)
        index = row.get("index", position)
        example = Example(
            id=f"{self.subtask}-{index}",
            question=parts.question,
            passages=(Passage(text=parts.haystack, gold=bool(evidence), evidence=evidence),),
            answers=answers,
            meta={
                "task": self.subtask,
                "index": index,
                "length": row.get("length"),
                "instruction": parts.instruction,
                "separator": parts.separator,
            },
        )
        return example, found



def _outputs(raw: Any, where: str) -> tuple[str, ...]:
    """RULER writes `outputs` as a list; some exports store it as the string of a Python list. Anything
    else (a bare string, a number, a mapping, null, a list holding lists or nulls) is refused: taken
    as it came, it would become a gold answer nobody wrote."""
    value = raw
    if isinstance(raw, str):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise PcbenchError(f"{where}: 'outputs' is the string {raw[:40]!r}, which is no list; expected a list "
                               "of strings (or the string of one, as some RULER exports write it)") from None
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in value):
        shown = "null" if value is None else type(value).__name__
        raise PcbenchError(f"{where}: 'outputs' is {shown} {str(value)[:40]!r}; expected a list of strings")
    return tuple(str(v) for v in value)
