"""Units a context is cut into (passages, sentences, words), with character offsets, and how kept
units become passages again.

A unit is a span of one passage's text. Spans of one level tile their passage (a word carries the
whitespace before it, a sentence the whitespace after it), so a scorer can run one forward pass
over a passage, map its token scores onto units by offset (`aggregate`, `group`), and rendering slices the
original text: nothing is re-tokenised or re-spaced.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from pcbench.core.example import Example, Passage
from pcbench.core.text import split_sentences

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
    """The example's units of `level`, in reading order (a fresh list: callers may reorder it)."""
    return list(_units_of(example.passages, level))


# Units depend only on the passages and the level: a rate sweep in one process splits each example
# once (passages are frozen, so they key the memo; an example's `meta` dict would not).
@functools.lru_cache(maxsize=1024)  # a sweep over a task of up to 1,024 examples
def _units_of(passages: tuple[Passage, ...], level: str) -> tuple[Unit, ...]:
    units: list[Unit] = []
    for index, passage in enumerate(passages):
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
    return tuple(units)


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


# -- token scores onto units: the one toolkit -------------------------------------------------------
#
# A token belongs to the unit that holds its *anchor* character. Two anchor rules exist because the
# reference implementations differ, and each method keeps its reference's:
# - last character (`last_char_anchors`): encoders (Provence, LLMLingua-2, the embedding of spans);
#   tokenizers glue the leading space to a token (" The"), and that space may still belong to the
#   previous sentence;
# - first non-space character (`first_char_anchors`): the causal-LM family (LLMLingua, Selective
#   Context), whose byte-level BPE tokens carry the space before a word.


def last_char_anchors(offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Each token's last character; -1 (no unit) for empty spans, which special tokens have."""
    return [end - 1 if end > start else -1 for start, end in offsets]


def first_char_anchors(offsets: Sequence[tuple[int, int]], text: str) -> list[int]:
    """Each token's first non-space character in `text` (its last one for an all-space token)."""
    anchors = []
    for start, end in offsets:
        anchor = start
        while anchor < end - 1 and text[anchor].isspace():
            anchor += 1
        anchors.append(anchor)
    return anchors


def owners(anchors: Sequence[int], spans: Sequence[tuple[int, int]]) -> list[int]:
    """The index of the span holding each anchor, or -1. `spans` are [start, end) and disjoint."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    starts = np.asarray([spans[i][0] for i in order], dtype=np.int64)
    where = np.searchsorted(starts, np.asarray(list(anchors), dtype=np.int64), side="right") - 1
    out = []
    for anchor, at in zip(anchors, where.tolist()):
        span = order[at] if at >= 0 and anchor >= 0 else -1
        out.append(span if span >= 0 and anchor < spans[span][1] else -1)
    return out


def group(anchors: Sequence[int], values: Sequence[float], spans: Sequence[tuple[int, int]]) -> list[list[float]]:
    """Token values grouped by the span that owns each token (NaN values are left out)."""
    out: list[list[float]] = [[] for _ in spans]
    for owner, value in zip(owners(anchors, spans), values):
        if owner >= 0 and not math.isnan(value):
            out[owner].append(float(value))
    return out


def aggregate(anchors: Sequence[int], values: Sequence[float], spans: Sequence[tuple[int, int]],
              how: Literal["sum", "mean", "max"] = "mean") -> list[float]:
    """Per-span scores from per-token values. Spans with no token get 0 (sum) or -inf (mean, max)."""
    groups = group(anchors, values, spans)
    if how == "sum":
        return [float(sum(g)) for g in groups]
    if how == "max":
        return [max(g) if g else float("-inf") for g in groups]
    return [sum(g) / len(g) if g else float("-inf") for g in groups]


def unit_spans(units: Sequence[Unit]) -> list[tuple[int, int]]:
    return [(u.start, u.end) for u in units]


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


def fit_count(order: Sequence[int], render: Callable[[list[int]], str], count: Callable[[list[str]], list[int]],
              limit: int) -> int:
    """The largest k such that the first k items of `order`, rendered, fit in `limit` reader tokens.

    Counts are nearly monotonic in k (a tokenizer may merge across a junction), so a binary search
    finds a k that fits; the caller renders `order[:k]`, which is within the limit by construction.
    """
    low, high = 0, len(order)
    if high and count([render(list(order))])[0] <= limit:
        return high
    while low < high:
        mid = (low + high + 1) // 2
        if count([render(list(order[:mid]))])[0] <= limit:
            low = mid
        else:
            high = mid - 1
    return low
