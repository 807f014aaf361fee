"""Sentence splitting shared by tasks (NQ passages) and compressors (sentence units)."""

from __future__ import annotations

import blingfire


def split_sentences(text: str) -> list[str]:
    """Sentence pieces that concatenate back to `text` exactly (whitespace stays attached)."""
    if not text.strip():
        return []
    _, offsets = blingfire.text_to_sentences_and_offsets(text)  # character offsets
    starts = [start for start, _ in offsets]
    if not starts:
        return [text]
    starts[0] = 0
    ends = starts[1:] + [len(text)]
    return [text[s:e] for s, e in zip(starts, ends) if text[s:e]]
