"""The one record every task is converted to before anything else touches it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Passage:
    """One document of a context.

    `sentences`, when the dataset ships them (HotpotQA), are the exact pieces of `text`
    (joined with "" they give `text` back); otherwise compressors split `text` themselves.
    `gold` marks a passage that holds the evidence; `evidence` lists gold sentences or spans.
    """

    text: str
    title: str = ""
    sentences: tuple[str, ...] | None = None
    gold: bool = False
    evidence: tuple[str, ...] = ()

    def render(self) -> str:
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class Example:
    """A question over a context made of passages, with its gold answers.

    `meta` carries what a task's prompt or metric needs beyond these fields
    (LongBench's `all_classes`, `length`, ...); it is part of the cache key.
    """

    id: str
    question: str
    passages: tuple[Passage, ...]
    answers: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def context(self) -> str:
        return render_passages(self.passages)

    @property
    def evidence(self) -> tuple[str, ...]:
        """Gold evidence strings: gold sentences where known, else whole gold passages."""
        spans: list[str] = []
        for passage in self.passages:
            if passage.evidence:
                spans.extend(passage.evidence)
            elif passage.gold:
                spans.append(passage.text)
        return tuple(spans)


PASSAGE_SEPARATOR = "\n\n"


def render_passages(passages: tuple[Passage, ...] | list[Passage]) -> str:
    return PASSAGE_SEPARATOR.join(p.render() for p in passages if p.text.strip())


def split_passages(context: str) -> tuple[str, ...]:
    """A rendered context's passages again (`render_passages` joined them with PASSAGE_SEPARATOR; a
    passage with blank lines of its own comes back in several pieces)."""
    return tuple(piece for piece in context.split(PASSAGE_SEPARATOR) if piece.strip())


def passage_starts(passages: tuple[Passage, ...] | list[Passage]) -> list[tuple[int, int]]:
    """(index, where its text starts in the rendered context) for each non-empty passage, in
    `render_passages`' layout: a scorer that reads the whole context maps offsets back with it."""
    out: list[tuple[int, int]] = []
    pos = 0
    for i, passage in enumerate(passages):
        if not passage.text.strip():
            continue
        if out:
            pos += len(PASSAGE_SEPARATOR)
        start = pos + (len(passage.title) + 1 if passage.title else 0)
        out.append((i, start))
        pos = start + len(passage.text)
    return out
