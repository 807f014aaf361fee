"""Sentence splitting shared by tasks (NQ passages) and compressors (sentence units)."""

from __future__ import annotations

import re

import blingfire

# Full stops blingfire leaves inside a sentence: the Devanagari danda and double danda (Hindi,
# Marathi, Nepali...), the Armenian, Ethiopic and Myanmar full stops. A sentence also ends after one.
_MORE_STOPS = re.compile(r"[\u0964\u0965\u0589\u1362\u104b]+\s*")


def split_sentences(text: str) -> list[str]:
    """Sentence pieces that concatenate back to `text` exactly (whitespace stays attached).

    blingfire's sentence breaker (multilingual: Latin, Cyrillic, Arabic and CJK full stops), then
    a cut after the scripts' own full stops it does not know (_MORE_STOPS)."""
    if not text.strip():
        return []
    _, offsets = blingfire.text_to_sentences_and_offsets(text)  # character offsets
    starts = [start for start, _ in offsets]
    if not starts:
        return [text]
    starts[0] = 0
    starts += [m.end() for m in _MORE_STOPS.finditer(text) if m.end() < len(text)]
    starts = sorted(set(starts))
    ends = starts[1:] + [len(text)]
    return [text[s:e] for s, e in zip(starts, ends) if text[s:e]]
