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
from pcbench.core.local_models import hub_reachable
from pcbench.tasks.base import Task
from pcbench.tasks.jsonl import (
    drop_unaskable,
    hub_origin,
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
    hub_config: str
    split: str

    def read(self) -> list[Example]:
        if self.path:
            records, source = records_with_origins(self.path), str(self.path)
        else:
            source = f"{self.hub_id}/{self.hub_config}:{self.split}"
            records = [(hub_origin(source, i), record) for i, record in enumerate(self._hub_records())]
        examples = [example_from_record(record, origin, index) for index, (origin, record) in enumerate(records)]
        refuse_duplicate_ids([e.id for e in examples], [origin for origin, _ in records], source)
        return drop_unaskable(examples, source)

    def _hub_records(self) -> list[dict[str, Any]]:
        from datasets import load_dataset  # slow import; only the hub path needs it

        try:
            hub_reachable()  # offline: fail at once, not after retries
            dataset = load_dataset(self.hub_id, self.hub_config, split=self.split)
        except Exception as err:  # datasets raises many types (offline, missing config, bad split)
            raise PcbenchError(
                f"cannot load {self.hub_id} ({self.hub_config}, split {self.split}) from the hub: "
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}; "
                "pass a local file with task.path=..."
            ) from None
        return list(dataset)

    def summarize(self, rows: list[tuple[Example, dict[str, Any]]]) -> dict[str, Any]:
        """Metric means (x100, 2 decimals, as metrics.json) per question type: bridge and comparison differ a lot."""
        by_type: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for example, record in rows:
            for name, value in record.get("scores", {}).items():
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
    require_keys(origin, record, REQUIRED, "HotpotQA")
    try:
        paragraphs = _paragraphs(record["context"])
        facts = _supporting_facts(record.get("supporting_facts", []))
        question = text_field(origin, record, "question")
    except (KeyError, TypeError, ValueError) as err:
        raise PcbenchError(
            f"{origin}: not in the HotpotQA schema (context or supporting_facts: {type(err).__name__}: {err})"
        ) from None
    gold_titles = {title for title, _ in facts}
    passages = []
    for title, sentences in paragraphs:
        if not "".join(sentences).strip():
            continue  # an empty paragraph adds nothing but a stray title
        # A supporting fact whose sent_id is out of range is skipped: the official data has a few.
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
    return Example(
        id=str(record.get("_id") or record.get("id") or index),
        question=question,
        passages=tuple(passages),
        answers=(answer,) if answer else (),
        meta={"type": record.get("type"), "level": record.get("level")},
    )


def _paragraphs(context: Any) -> list[tuple[str, list[str]]]:
    if isinstance(context, dict):  # hub: {"title": [...], "sentences": [[...], ...]}
        return [(str(t), [str(s) for s in ss]) for t, ss in zip(context["title"], context["sentences"], strict=True)]
    return [(str(title), [str(s) for s in sentences]) for title, sentences in context]


def _supporting_facts(facts: Any) -> list[tuple[str, int]]:
    if isinstance(facts, dict):  # hub: {"title": [...], "sent_id": [...]}
        return [(str(t), int(i)) for t, i in zip(facts["title"], facts["sent_id"], strict=True)]
    return [(str(title), int(sent_id)) for title, sent_id in facts]
