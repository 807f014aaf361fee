"""Reader-free diagnostics: answer survival and evidence recall in a compressed context."""

from __future__ import annotations

from core.example import Example, Passage
from runners.diagnostics import answer_in_context, char_ratio, evidence_recall

EXAMPLE = Example("e", "Where is the tower?", (
    Passage("The tower is tall. It stands in Paris.", "Tower", evidence=("It stands in Paris.",), gold=True),
    Passage("Bread is baked daily.", "Food"),
), ("Paris",))


def test_answer_in_context_uses_normalised_substrings() -> None:
    assert answer_in_context(EXAMPLE, "it stands in PARIS!") is True
    assert answer_in_context(EXAMPLE, "Bread is baked daily.") is False


def test_long_answers_are_not_looked_for() -> None:
    summary = Example("s", "Summarise.", (Passage("text"),), ("a long summary",), {"long_answers": True})
    assert answer_in_context(summary, "text") is None


def test_evidence_recall_ignores_whitespace_and_counts_spans() -> None:
    assert evidence_recall(EXAMPLE, "Tower\nIt  stands in\nParis.") == 1.0
    assert evidence_recall(EXAMPLE, "Tower\nThe tower is tall.") == 0.0
    assert evidence_recall(Example("x", "q", (Passage("t"),), ("a",)), "t") is None


def test_char_ratio() -> None:
    assert char_ratio("abcd", "ab") == 0.5 and char_ratio("", "") == 1.0
