"""NQ-open with one gold passage among distractors: the "lost in the middle" multi-document setting.

Liu et al. (2023) and LongLLMLingua put the gold Wikipedia passage among 20 documents at a chosen
position. The shared file (and the hub copy below) hold only each question's gold passage, so the
distractors are other questions' gold passages: real Wikipedia text, drawn with a fixed seed, never
one that contains any of this question's answers as whole tokens after SQuAD normalisation (that
would make it a second gold passage and blur the position effect). The draw for a question depends
only on the seed, the question and the whole file, not on `limit`, so a 50-example smoke run sees
the same contexts as the full run.

Local file schema: `question, answers[], ctxs[{title, text, hasanswer, isgold}]`; the gold passage is
the ctx flagged isgold (else the first with hasanswer, else the first). Its evidence is the
sentences that state an answer (see with_answer_sentences), so a sentence-level oracle works.
Hub: "florin-hf/nq_open_gold" (NQ-open with its gold documents, from "The Power of Noise", arXiv
2401.14887; splits train/validation/test) has `example_id, question, answers, text` and no ctxs:
each row's `text` becomes its one gold ctx. The hub is not reachable from this project's build
machines, so that mapping is tested on a hand-made row only.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.core.records import ExampleRecord
from pcbench.core.text import split_sentences
from pcbench.tasks.base import Task
from pcbench.tasks.jsonl import (
    drop_unaskable,
    hub_origin,
    hub_rows,
    records_with_origins,
    require_keys,
    text_field,
    text_list,
)
from pcbench.tasks.metrics import normalize_answer

# The local file's schema (ctxs: [{title, text, hasanswer, isgold}]); an empty `answers` list is a
# record without a gold answer (skipped and counted), not a different schema.
REQUIRED = ("question", "answers", "ctxs")


@dataclass
class NQTask(Task):
    """num_documents: gold passage + (num_documents - 1) distractors; 1 gives the oracle setting.

    gold_position: 0-based index of the gold passage among the documents, or "random" (drawn per
    question with the seed; summarize() then reports accuracy per position).
    """

    path: str | None
    hub_id: str
    revision: str | None  # the hub dataset's commit or tag (part of the cell's identity)
    split: str
    num_documents: Annotated[int, Range(1)]
    gold_position: Annotated[int, Range(0)] | Literal["random"]
    seed: int

    def __post_init__(self) -> None:
        super().__post_init__()
        # Out of range is an error, not a clamp: a silent clamp would report a position never tested.
        if self.gold_position != "random" and not self.gold_position < self.num_documents:
            raise PcbenchError(
                f'task.gold_position={self.gold_position!r} must be "random" or an integer in '
                f"0..{self.num_documents - 1} (num_documents={self.num_documents})"
            )

    def read(self) -> list[Example]:
        if self.path:
            source = str(self.path)
            pairs = records_with_origins(self.path)
            for origin, record in pairs:
                require_keys(origin, record, REQUIRED, "NQ-open (multi-document)")
                check_ctxs(origin, record["ctxs"])
            records, origins = [record for _, record in pairs], [origin for origin, _ in pairs]
        else:
            records, source = [record_from_hub_row(row) for row in self._hub_rows()], f"{self.hub_id}:{self.split}"
            origins = [hub_origin(source, i) for i in range(len(records))]
        golds = [_gold_passage(record) for record in records]
        pool = _Pool([g for g in golds if g is not None])
        examples = []
        for index, (record, gold) in enumerate(zip(records, golds, strict=True)):
            question = text_field(origins[index], record, "question", empty_if_absent=True).strip()
            answers = text_list(origins[index], record, "answers")
            example_id = str(record.get("id") or record.get("example_id") or f"nq-{index}")
            if gold is None or not question:
                # No passage or no question: kept empty here so drop_unaskable counts it with the rest.
                examples.append(Example(example_id, question, (), answers))
                continue
            gold = with_answer_sentences(gold, answers)
            rng = random.Random(f"{self.seed}\0{question}")
            distractors = pool.draw(rng, self.num_documents - 1, gold, answers, source, example_id)
            position = rng.randrange(self.num_documents) if self.gold_position == "random" else self.gold_position
            passages = (*distractors[:position], gold, *distractors[position:])
            meta = {"gold_position": position, "num_documents": self.num_documents}
            examples.append(Example(example_id, question, passages, answers, meta))
        return drop_unaskable(examples, source)

    def _hub_rows(self) -> list[dict[str, Any]]:
        return hub_rows(self.hub_id, None, self.split, self.revision)

    def summarize(self, rows: list[tuple[Example, ExampleRecord]]) -> dict[str, Any]:
        """Metric means (x100, 2 decimals, as metrics.json) per gold position: the lost-in-the-middle curve."""
        by_position: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for example, record in rows:
            if "gold_position" in example.meta:
                for name, value in record.get("scores", {}).items():
                    if value is None:  # an undecided llm_judge
                        continue
                    by_position[int(example.meta["gold_position"])][name].append(float(value))
        return {
            "by_gold_position": {
                str(position): {name: round(100 * sum(values) / len(values), 2) for name, values in scores.items()}
                for position, scores in sorted(by_position.items())
            }
        }


def record_from_hub_row(row: dict[str, Any]) -> dict[str, Any]:
    """A florin-hf/nq_open_gold row (gold document in `text`) in the local file's schema."""
    if "ctxs" in row:
        return row
    text = str(row.get("text") or "")
    ctx = {"title": str(row.get("title") or ""), "text": text, "isgold": True}
    return {
        "id": row.get("example_id"),
        "question": row.get("question", ""),
        "answers": row.get("answers", []),
        "ctxs": [ctx] if text.strip() else [],
    }


def check_ctxs(origin: str, ctxs: Any) -> None:
    """`ctxs`: a list of {title, text, ...} objects with string text (and title, when given)."""
    if not isinstance(ctxs, list):
        raise PcbenchError(f"{origin}: ctxs is {type(ctxs).__name__}; expected a list of {{title, text}} objects")
    for n, ctx in enumerate(ctxs, start=1):
        if not isinstance(ctx, dict):
            raise PcbenchError(f"{origin}: ctxs entry {n} is {type(ctx).__name__}; expected a {{title, text}} object")
        for key in ("text", "title"):
            if key in ctx and ctx[key] is not None and not isinstance(ctx[key], str):
                raise PcbenchError(f"{origin}: ctxs entry {n} {key} is {type(ctx[key]).__name__}; expected a string")


def _gold_passage(record: dict[str, Any]) -> Passage | None:
    ctxs = [c for c in record.get("ctxs") or [] if str(c.get("text") or "").strip()]
    if not ctxs:
        return None
    gold = next((c for c in ctxs if c.get("isgold")), None) or next((c for c in ctxs if c.get("hasanswer")), ctxs[0])
    return Passage(text=str(gold["text"]), title=str(gold.get("title") or ""), gold=True)


def with_answer_sentences(gold: Passage, answers: tuple[str, ...]) -> Passage:
    """The gold passage with its answer-bearing sentences as evidence (whole tokens, normalised).

    NQ annotates a passage, not sentences; the sentences that state an answer are what a sentence-level
    oracle should keep and what evidence recall should look for. Sentences come from the compressors'
    own splitter so that evidence lines up with the units they select. No such sentence (an answer
    split across sentences, or absent) falls back to the whole passage.
    """
    golds = [f" {a} " for a in (normalize_answer(a) for a in answers) if a]
    hits = tuple(s for s in split_sentences(gold.text) if any(a in f" {normalize_answer(s)} " for a in golds))
    return replace(gold, evidence=hits or (gold.text,))


class _Pool:
    """Distinct gold passages of the whole file, with normalised text for the answer check."""

    def __init__(self, golds: list[Passage]) -> None:
        unique = {(p.title, p.text): p for p in golds}  # several questions share a gold passage
        self.passages = [Passage(text=p.text, title=p.title) for p in unique.values()]
        # Padded with spaces so that answers match whole tokens only (DPR's has_answer is token-level too):
        # a plain substring test would reject every passage for answers such as "S" or "5".
        self.normalized = [f" {normalize_answer(p.render())} " for p in self.passages]

    def draw(
        self, rng: random.Random, count: int, gold: Passage, answers: tuple[str, ...], source: str, example_id: str
    ) -> list[Passage]:
        """`count` distinct passages, none equal to `gold` and none containing an answer as whole tokens."""
        golds = [f" {a} " for a in (normalize_answer(a) for a in answers) if a]
        chosen: list[Passage] = []
        seen: set[int] = set()
        while len(chosen) < count:
            if len(seen) == len(self.passages):
                raise PcbenchError(
                    f"{source}: example {example_id} needs {count} distractors but only {len(chosen)} passages "
                    "lack its answers; lower task.num_documents or use a larger file"
                )
            # Rejection sampling: each question needs ~20 of thousands, so a full shuffle would waste time.
            index = rng.randrange(len(self.passages))
            if index in seen:
                continue
            seen.add(index)
            candidate = self.passages[index]
            if (candidate.title, candidate.text) == (gold.title, gold.text):
                continue
            if any(answer in self.normalized[index] for answer in golds):
                continue
            chosen.append(candidate)
        return chosen
