"""A user's own QA data: a JSONL, JSON or CSV file, or a hub dataset, with its fields mapped by name."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pcbench.core.errors import PcbenchError, closest
from pcbench.core.example import Example, Passage
from pcbench.tasks.base import Task
from pcbench.tasks.jsonl import drop_unaskable, hub_origin, hub_rows, records_with_origins, refuse_duplicate_ids

log = logging.getLogger(__name__)

# What `fields` may map: record keys (dotted for nested objects: `answers.text`) for the example's
# parts, and the keys read inside each passage object of a list-valued context.
FIELDS = {
    "id": "the example's id (null: its position in the file)",
    "question": "the question",
    "context": "a string, or a list of passages (strings, {title, text} objects or [title, text] pairs)",
    "answers": "a string or a list of strings",
    "evidence": "optional gold evidence: strings found in the context, or 0-based passage indices",
    "instruction": "optional: strings of the context that are instruction or few-shot demonstrations "
                   "(how much of them survives is reported)",
    "title": "a passage object's title key",
    "text": "a passage object's text key (a string or a list of sentences)",
    "gold": "optional: a passage object's key that marks a gold passage (true/false)",
}
REQUIRED_FIELDS = ("question", "context", "answers")


@dataclass
class CustomTask(Task):
    """Any question-answering data: each record's question, context and answers are read from the
    fields `fields` names, the template and metrics come from the YAML, and nothing is assumed
    about where the data came from.

    path: a .jsonl, .json (a list of objects) or .csv file; null reads `hub_id` from the hub at
    `revision` (a commit or tag: pin it, or the numbers change when the dataset does).
    fields: record keys for id, question, context, answers, evidence, and the title, text and gold
    keys inside passage objects (see FIELDS); a dotted key reaches into nested objects.
    list_separator: splits a string answers or evidence value into several, as a CSV cell needs
    (null: one answer).
    meta: record keys kept on each example for metrics that read them (`all_classes` for
    LongBench's `classification`).
    """

    path: str | None
    hub_id: str | None
    hub_config: str | None
    revision: str | None
    split: str
    fields: dict[str, str | None]
    list_separator: str | None
    meta: list[str]

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in self.fields:
            if key not in FIELDS:
                guess = closest(key, FIELDS)
                hint = f" (did you mean {guess!r}?)" if guess else ""
                raise PcbenchError(f"task.fields has no key {key!r}{hint}; allowed: {', '.join(FIELDS)}")
        for key in REQUIRED_FIELDS:
            if not self.fields.get(key):
                raise PcbenchError(f"task.fields.{key} is not set; name the record key that holds {FIELDS[key]}")
        if not self.path and not self.hub_id:
            raise PcbenchError("task=custom needs its data: task.path=FILE (.jsonl, .json or .csv) or "
                               "task.hub_id=NAME (with task.revision=COMMIT)")
        if self.list_separator == "":
            raise PcbenchError("task.list_separator='' splits nothing; give a separator such as '|' or null")

    def read(self) -> list[Example]:
        if self.path:
            source = str(self.path)
            file = Path(self.path).expanduser()
            pairs = _csv_records(file) if _is_csv(self.path) else records_with_origins(file)
        else:
            source = f"{self.hub_id}:{self.split}"
            pairs = [(hub_origin(source, i), row) for i, row in enumerate(self._hub_rows())]
        examples, unmatched = [], 0
        for index, (origin, record) in enumerate(pairs):
            example, misses = self.example(record, origin, index)
            examples.append(example)
            unmatched += misses
        if unmatched:
            log.warning("%s: %d evidence strings appear in no passage; evidence recall leaves them out",
                        source, unmatched)
        refuse_duplicate_ids([e.id for e in examples], [origin for origin, _ in pairs], source)
        return drop_unaskable(examples, source)

    def example(self, record: dict[str, Any], origin: str, index: int) -> tuple[Example, int]:
        """One record as an Example, and how many of its evidence strings no passage holds."""
        question = self._string(record, origin, "question")
        passages = self._passages(record, origin)
        answers = self._strings(record, origin, "answers")
        passages, misses = self._mark_evidence(record, origin, passages)
        id_key = self.fields.get("id")
        example_id = str(index) if not id_key else self._string(record, origin, "id", scalar=True)
        meta = {key: _get(record, key) for key in self.meta if _has(record, key)}
        instruction_key = self.fields.get("instruction")
        if instruction_key and _has(record, instruction_key) and _get(record, instruction_key) is not None:
            meta["instruction"] = list(self._strings(record, origin, "instruction"))
        return Example(id=example_id, question=question, passages=tuple(passages), answers=answers, meta=meta), misses

    # -- reading one field -------------------------------------------------------------------------

    def _value(self, record: dict[str, Any], origin: str, part: str) -> Any:
        key = str(self.fields[part])
        if not _has(record, key):
            found = ", ".join(sorted(map(str, record))) or "(none)"
            raise PcbenchError(f"{origin}: has no field {key!r} (task.fields.{part}); found: {found}")
        return _get(record, key)

    def _string(self, record: dict[str, Any], origin: str, part: str, scalar: bool = False) -> str:
        value = self._value(record, origin, part)
        if scalar and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise PcbenchError(f"{origin}: {self.fields[part]} is {_shown(value)}; expected a string "
                               f"(task.fields.{part})")
        return value

    def _strings(self, record: dict[str, Any], origin: str, part: str) -> tuple[str, ...]:
        value = self._value(record, origin, part)
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(value.split(self.list_separator)) if self.list_separator else (value,)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise PcbenchError(f"{origin}: {self.fields[part]} is {_shown(value)}; expected a string or a list of strings "
                           f"(task.fields.{part})")

    def _passages(self, record: dict[str, Any], origin: str) -> list[Passage]:
        value = self._value(record, origin, "context")
        if isinstance(value, str):
            return [Passage(text=value)]
        if not isinstance(value, list):
            raise PcbenchError(f"{origin}: {self.fields['context']} is {_shown(value)}; expected a string or a "
                               "list of passages (task.fields.context)")
        return [self._passage(item, f"{origin}: passage {n}") for n, item in enumerate(value, start=1)]

    def _passage(self, item: Any, where: str) -> Passage:
        title_key, text_key, gold_key = (self.fields.get(k) or k for k in ("title", "text", "gold"))
        if isinstance(item, str):
            return Passage(text=item)
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):  # [title, text or sentences]
            return _passage_of(item[1], item[0], False, where)
        if isinstance(item, dict):
            if text_key not in item:
                raise PcbenchError(f"{where} has no {text_key!r} key (task.fields.text); found: "
                                   f"{', '.join(sorted(map(str, item))) or '(none)'}")
            title = item.get(title_key)
            if title is not None and not isinstance(title, str):
                raise PcbenchError(f"{where}: {title_key} is {_shown(title)}; expected a string (task.fields.title)")
            gold = item.get(gold_key, False)
            if not isinstance(gold, bool):
                raise PcbenchError(f"{where}: {gold_key} is {_shown(gold)}; expected true or false (task.fields.gold)")
            return _passage_of(item[text_key], title or "", gold, where)
        raise PcbenchError(f"{where} is {_shown(item)}; expected a string, a {{{title_key}, {text_key}}} object "
                           "or a [title, text] pair")

    def _mark_evidence(self, record: dict[str, Any], origin: str,
                       passages: list[Passage]) -> tuple[list[Passage], int]:
        """Passages holding gold evidence marked gold, with their evidence strings (evidence recall
        and the oracle read them); passage indices mark whole passages."""
        key = self.fields.get("evidence")
        if not key or not _has(record, key):  # optional, record by record
            return passages, 0
        value = _get(record, key)
        if value is None:
            return passages, 0
        items: Any
        if isinstance(value, str):  # one string, or several joined by list_separator (a CSV cell)
            items = value.split(self.list_separator) if self.list_separator else [value]
        else:
            items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(items, list) or not all(
                isinstance(i, str) or (isinstance(i, int) and not isinstance(i, bool)) for i in items):
            raise PcbenchError(f"{origin}: {self.fields['evidence']} is {_shown(value)}; expected strings or "
                               "passage indices (task.fields.evidence)")
        marked = list(passages)
        misses = 0
        for item in items:
            if isinstance(item, int):
                if not 0 <= item < len(marked):
                    raise PcbenchError(f"{origin}: evidence names passage {item}; the context has "
                                       f"{len(marked)} (0-based indices)")
                marked[item] = _with(marked[item], gold=True)
                continue
            holders = [i for i, p in enumerate(marked) if item.strip() and item in p.text]
            misses += not holders
            for i in holders:
                marked[i] = _with(marked[i], gold=True, evidence=(*marked[i].evidence, item))
        return marked, misses

    def _hub_rows(self) -> list[dict[str, Any]]:
        if self.revision is None:
            log.warning("task.hub_id=%s has no task.revision: the numbers change when the dataset does; "
                        "pin a commit or tag", self.hub_id)
        return hub_rows(str(self.hub_id), self.hub_config, self.split, self.revision)


def _is_csv(path: str) -> bool:
    return Path(path).suffix.lower() in (".csv", ".tsv")


def _csv_records(file: Path) -> list[tuple[str, dict[str, Any]]]:
    """(origin, row) for each row of a CSV (or TSV) file with a header line."""
    if not file.is_file():
        raise PcbenchError(f"task file not found: {file}")
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if file.suffix.lower() == ".tsv" else ",")
            rows = [(f"{file}: line {reader.line_num}", dict(row)) for row in reader]
    except UnicodeDecodeError as err:
        raise PcbenchError(f"{file}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise PcbenchError(f"{file}: not valid CSV ({err})") from None
    if not rows:
        raise PcbenchError(f"task file holds no rows under its header: {file}")
    return rows


def _has(record: Any, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(record, dict) or part not in record:
            return False
        record = record[part]
    return True


def _get(record: Any, key: str) -> Any:
    for part in key.split("."):
        record = record[part]
    return record


def _shown(value: Any) -> str:
    kind = "null" if value is None else type(value).__name__
    return f"{kind} ({json.dumps(value, default=str)[:60]})"


def _passage_of(text: Any, title: str, gold: bool, where: str) -> Passage:
    if isinstance(text, str):
        return Passage(text=text, title=title, gold=gold)
    if isinstance(text, list) and all(isinstance(s, str) for s in text):  # sentences, joined as HotpotQA's
        return Passage(text="".join(text), title=title, sentences=tuple(text), gold=gold)
    raise PcbenchError(f"{where}: its text is {_shown(text)}; expected a string or a list of sentences")


def _with(passage: Passage, **changes: Any) -> Passage:
    return replace(passage, **changes)
