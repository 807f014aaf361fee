"""LongBench v2's scorer, as THUDM/LongBench's pred.py (`extract_answer`, `judge`) and result.py (`compensated`)."""

from __future__ import annotations

import re

from pcbench.core.example import Example


def extract_choice(response: str) -> str | None:
    """pred.py's `extract_answer`: the letter of "The correct answer is (X)" or "... is X", asterisks
    (markdown bold) removed first; None when the reply says neither."""
    response = response.replace("*", "")
    found = re.search(r"The correct answer is \(([A-D])\)", response) or re.search(
        r"The correct answer is ([A-D])", response)
    return found.group(1) if found else None


def choice_accuracy(prediction: str, example: Example) -> float:
    """pred.py's `judge` (the extracted letter equals the gold one); with result.py's `compensated`,
    a reply naming no letter counts 0.25, a guess's expected score."""
    chosen = extract_choice(prediction)
    if chosen is None and example.meta.get("compensated"):
        return 0.25
    return float(chosen is not None and chosen in example.answers)
