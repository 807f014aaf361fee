"""HotpotQA, distractor setting: the 10 given paragraphs are the context of each question.

Each paragraph becomes a Passage whose `sentences` are the dataset's own sentence pieces (they
carry their leading spaces, so "".join gives the paragraph back exactly); a paragraph is gold when
its title is among the supporting facts, and its evidence is the supporting sentences. Oracle
compressors and evidence recall therefore work at the granularity HotpotQA annotates.

Two schemas are read, detected per record, from a local file or the hub:
- official (hotpot_dev_distractor_v1.json, one JSON list; JSONL copies too):
  `_id, question, answer, supporting_facts [[title, sent_id]], context [[title, [sentences]]]`;
- hub ("hotpotqa/hotpot_qa", config "distractor", parquet): `id, ...`, context as
  `{title: [...], sentences: [[...]]}` and supporting_facts as `{title: [...], sent_id: [...]}`.
The old script-based hub id `hotpot_qa` fails with datasets>=4 (scripts are no longer run), hence
the parquet repository as default.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.records import ExampleRecord
from pcbench.tasks.base import Task
from pcbench.tasks.jsonl import (
    drop_unaskable,
    hub_origin,
    hub_rows,
    records_with_origins,
    refuse_duplicate_ids,
    require_keys,
    text_field,
)

log = logging.getLogger(__name__)

# Keys every record needs, in both schemas; a missing or empty `answer` is a record without a gold
# answer (skipped and counted), not a different schema.
REQUIRED = ("question", "context")


@dataclass
class HotpotQATask(Task):
    """path: local official-schema file (.json list or .jsonl); null loads `hub_id` from the hub."""

    path: str | None
    hub_id: str
    revision: str | None  # the hub dataset's commit or tag (part of the cell's identity)
    hub_config: str
    split: str

    def read(self) -> list[Example]:
        if self.path:
            records, source = records_with_origins(self.path), str(self.path)
        else:
            source = f"{self.hub_id}/{self.hub_config}:{self.split}"
            records = [(hub_origin(source, i), record) for i, record in enumerate(self._hub_records())]
        parsed = [read_record(record, origin, index) for index, (origin, record) in enumerate(records)]
        examples = [example for example, _ in parsed]
        unmatched = sum(missing for _, missing in parsed)
        if unmatched:
            log.warning("%s: %d supporting facts name no paragraph or a sentence past its end; they give no "
                        "evidence (evidence recall leaves them out)", source, unmatched)
        refuse_duplicate_ids([e.id for e in examples], [origin for origin, _ in records], source)
        return drop_unaskable(examples, source)

    def _hub_records(self) -> list[dict[str, Any]]:
        return hub_rows(self.hub_id, self.hub_config, self.split, self.revision)

    def summarize(self, rows: list[tuple[Example, ExampleRecord]]) -> dict[str, Any]:
        """Metric means (x100, 2 decimals, as metrics.json) per question type: bridge and comparison differ a lot."""
        by_type: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for example, record in rows:
            for name, value in record.get("scores", {}).items():
                if value is None:  # an undecided llm_judge
                    continue
                by_type[str(example.meta.get("type", "unknown"))][name].append(float(value))
        return {
            "by_type": {
                kind: {name: round(100 * sum(values) / len(values), 2) for name, values in scores.items()}
                for kind, scores in sorted(by_type.items())
            }
        }


def example_from_record(record: dict[str, Any], origin: str, index: int) -> Example:
    """One HotpotQA record, official or hub schema, as an Example.

    origin names the record in errors ("FILE: line 3"); index (0-based) is the id of last resort.
    """
    return read_record(record, origin, index)[0]


def read_record(record: dict[str, Any], origin: str, index: int) -> tuple[Example, int]:
    """The record as an Example, and how many of its supporting facts name no paragraph or a sentence
    past its end (they give no evidence; the official data has a few, and read() counts them)."""
    require_keys(origin, record, REQUIRED, "HotpotQA")
    try:
        paragraphs = _paragraphs(record["context"])
        facts = _supporting_facts(record.get("supporting_facts", []))
        question = text_field(origin, record, "question")
    except SchemaError as err:
        raise PcbenchError(f"{origin}: not in the HotpotQA schema: {err}") from None
    except (KeyError, TypeError, ValueError) as err:
        raise PcbenchError(
            f"{origin}: not in the HotpotQA schema (context or supporting_facts: {type(err).__name__}: {err})"
        ) from None
    gold_titles = {title for title, _ in facts}
    lengths = {title: len(sentences) for title, sentences in paragraphs}
    unmatched = sum(not 0 <= i < lengths.get(t, 0) for t, i in facts)
    passages = []
    for title, sentences in paragraphs:
        if not "".join(sentences).strip():
            continue  # an empty paragraph adds nothing but a stray title
        evidence = tuple(sentences[i] for t, i in facts if t == title and 0 <= i < len(sentences))
        passages.append(
            Passage(
                text="".join(sentences),
                title=title,
                sentences=tuple(sentences),
                gold=title in gold_titles,
                evidence=evidence,
            )
        )
    answer = text_field(origin, record, "answer", empty_if_absent=True).strip()
    example = Example(
        id=str(record.get("_id") or record.get("id") or index),
        question=question,
        passages=tuple(passages),
        answers=(answer,) if answer else (),
        meta={"type": record.get("type"), "level": record.get("level")},
    )
    return example, unmatched


class SchemaError(ValueError):
    """A field of the wrong type, said in words (which field, what it is, what was expected)."""


def _shown(value: Any) -> str:
    import json

    return f"{'null' if value is None else type(value).__name__} {json.dumps(value, default=str)[:40]}"


def _title(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{where} title is {_shown(value)}; expected a string")
    return value


def _sentences(value: Any, where: str) -> list[str]:
    """A paragraph's sentences: a list of strings. A string would be read character by character
    (its words glued), numbers or nulls would be written into the text: refused."""
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise SchemaError(f"{where} sentences are {_shown(value)}; expected a list of strings")
    return value


def _paragraphs(context: Any) -> list[tuple[str, list[str]]]:
    if isinstance(context, dict):  # hub: {"title": [...], "sentences": [[...], ...]}
        pairs = list(zip(context["title"], context["sentences"], strict=True))
    elif isinstance(context, list):
        pairs = []
        for n, item in enumerate(context, start=1):
            if not isinstance(item, list) or len(item) != 2:
                raise SchemaError(f"context paragraph {n} is {_shown(item)}; expected [title, [sentences]]")
            pairs.append((item[0], item[1]))
    else:
        raise SchemaError(f"context is {_shown(context)}; expected a list of [title, [sentences]]")
    return [(_title(t, f"context paragraph {n}"), _sentences(ss, f"context paragraph {n}"))
            for n, (t, ss) in enumerate(pairs, start=1)]


def _supporting_facts(facts: Any) -> list[tuple[str, int]]:
    if isinstance(facts, dict):  # hub: {"title": [...], "sent_id": [...]}
        pairs = list(zip(facts["title"], facts["sent_id"], strict=True))
    elif isinstance(facts, list) and all(isinstance(f, list) and len(f) == 2 for f in facts):
        pairs = [(f[0], f[1]) for f in facts]
    else:
        raise SchemaError(f"supporting_facts are {_shown(facts)}; expected a list of [title, sentence index]")
    for n, (title, sent_id) in enumerate(pairs, start=1):
        _title(title, f"supporting fact {n}")
        if not isinstance(sent_id, int) or isinstance(sent_id, bool):
            raise SchemaError(f"supporting fact {n} sentence index is {_shown(sent_id)}; expected an integer")
    return [(str(t), int(i)) for t, i in pairs]
