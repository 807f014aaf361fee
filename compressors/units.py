"""Units a context is cut into (passages, sentences, words), with character offsets, and how kept
units become passages again.

A unit is a span of one passage's text. Spans of one level tile their passage (a word carries the
whitespace before it, a sentence the whitespace after it), so a scorer can run one forward pass
over a passage, map its token scores onto units by offset (`aggregate`), and rendering slices the
original text: nothing is re-tokenised or re-spaced.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from core.example import Example, Passage
from core.text import split_sentences

Level = Literal["passage", "sentence", "word"]
LEVELS: tuple[str, ...] = ("passage", "sentence", "word")

_WORD = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Unit:
    passage: int  # index into example.passages
    start: int  # character offsets into that passage's text
    end: int
    text: str


def sentences_of(passage: Passage) -> list[str]:
    return list(passage.sentences) if passage.sentences is not None else split_sentences(passage.text)


def _spans(text: str, pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Offsets of consecutive pieces of `text` (pieces that concatenate back to it)."""
    spans, at = [], 0
    for piece in pieces:
        found = text.find(piece, at)
        start = found if found >= 0 else at
        spans.append((start, start + len(piece)))
        at = start + len(piece)
    return spans


def split_units(example: Example, level: str) -> list[Unit]:
    units = []
    for index, passage in enumerate(example.passages):
        text = passage.text
        if not text.strip():
            continue
        if level == "passage":
            spans = [(0, len(text))]
        elif level == "sentence":
            spans = _spans(text, sentences_of(passage))
        elif level == "word":
            spans = [m.span() for m in _WORD.finditer(text)]
        else:
            raise ValueError(f"unknown unit level {level!r}; allowed: {', '.join(LEVELS)}")
        units.extend(Unit(index, s, e, text[s:e]) for s, e in spans if text[s:e].strip())
    return units


def view(example: Example, unit: Unit) -> str:
    """The text a scorer sees for a unit: a whole passage comes with its title (titles carry the
    entity names that retrieval relies on); smaller units are their own text."""
    passage = example.passages[unit.passage]
    if unit.start == 0 and unit.end == len(passage.text):
        return passage.render()
    return unit.text


def render(example: Example, units: Sequence[Unit]) -> tuple[Passage, ...]:
    """The kept units as passages, in the order given: units regroup under their passage (and its
    title) at the passage's first appearance; a passage kept whole is the passage itself."""
    groups: dict[int, list[Unit]] = {}
    for unit in units:  # dicts keep insertion order: passages appear in the order of `units`
        groups.setdefault(unit.passage, []).append(unit)
    kept = []
    for index, members in groups.items():
        passage = example.passages[index]
        if len(members) == 1 and members[0].start == 0 and members[0].end == len(passage.text):
            kept.append(passage)
            continue
        body = "".join(u.text for u in members).strip()
        kept.append(replace(passage, text=body, sentences=None))
    return tuple(kept)


def aggregate(offsets: Sequence[tuple[int, int]], scores: Sequence[float], units: Sequence[Unit],
              how: Literal["sum", "mean", "max"] = "mean") -> list[float]:
    """Per-unit scores from per-token scores of ONE passage, by character offsets.

    A token belongs to the unit holding its last character: tokenizers glue the leading space to
    a token (" The"), and that space may still belong to the previous sentence. Offsets must be in
    increasing order. Units with no token get 0 (sum) or -inf (mean, max).
    """
    bounds = sorted((u.start, u.end, i) for i, u in enumerate(units))
    buckets: list[list[float]] = [[] for _ in units]
    j = 0
    for (start, end), score in zip(offsets, scores):
        if end <= start:
            continue  # special tokens have empty spans
        anchor = end - 1
        while j < len(bounds) and bounds[j][1] <= anchor:
            j += 1
        if j < len(bounds) and bounds[j][0] <= anchor:
            buckets[bounds[j][2]].append(float(score))
    if how == "sum":
        return [sum(b) for b in buckets]
    if how == "max":
        return [max(b) if b else float("-inf") for b in buckets]
    return [sum(b) / len(b) if b else float("-inf") for b in buckets]


def sentence_chunks(example: Example, max_tokens: int, count: Callable[[list[str]], list[int]]) -> list[Unit]:
    """Units of consecutive whole sentences of one passage, up to `max_tokens` tokens each (by `count`)
    (a longer sentence is a chunk of its own: chunks end at sentence ends, never inside one)."""
    out: list[Unit] = []
    sentences = split_units(example, "sentence")
    counts = count([u.text for u in sentences])
    current: list[Unit] = []
    used = 0
    for unit, n in zip(sentences, counts):
        if current and (unit.passage != current[0].passage or used + n > max_tokens):
            out.append(_merge(example, current))
            current, used = [], 0
        current.append(unit)
        used += n
    if current:
        out.append(_merge(example, current))
    return out


def _merge(example: Example, units: list[Unit]) -> Unit:
    text = example.passages[units[0].passage].text
    return Unit(units[0].passage, units[0].start, units[-1].end, text[units[0].start:units[-1].end])
