"""Units a context is cut into (passages or sentences), and how kept units become text again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.example import PASSAGE_SEPARATOR, Example, Passage
from core.text import split_sentences

Level = Literal["passage", "sentence"]
LEVELS: tuple[str, ...] = ("passage", "sentence")


@dataclass(frozen=True)
class Unit:
    text: str
    passage: int  # index of the passage it comes from


def sentences_of(passage: Passage) -> list[str]:
    return list(passage.sentences) if passage.sentences is not None else split_sentences(passage.text)


def split_units(example: Example, level: str) -> list[Unit]:
    if level == "passage":
        return [Unit(p.render(), i) for i, p in enumerate(example.passages) if p.text.strip()]
    if level == "sentence":
        return [Unit(s, i) for i, p in enumerate(example.passages) for s in sentences_of(p) if s.strip()]
    raise ValueError(f"unknown unit level {level!r}; allowed: {', '.join(LEVELS)}")


def render_units(example: Example, units: Sequence[Unit], level: str) -> str:
    """Text of the kept units, in the order given; sentences regroup under their passage title."""
    if level == "passage":
        return PASSAGE_SEPARATOR.join(u.text for u in units)
    groups: dict[int, list[str]] = {}
    for unit in units:  # dicts keep insertion order, so passages appear in the order of `units`
        groups.setdefault(unit.passage, []).append(unit.text)
    pieces = []
    for index, sentences in groups.items():
        body = "".join(sentences).strip()
        title = example.passages[index].title
        pieces.append(f"{title}\n{body}" if title else body)
    return PASSAGE_SEPARATOR.join(pieces)
