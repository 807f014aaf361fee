"""Reader-free diagnostics: answer survival and evidence recall in a compressed context."""

from __future__ import annotations

from pcbench.core.example import Example, Passage
from pcbench.runners.diagnostics import (
    answer_in_context,
    char_ratio,
    evidence_recall,
    instruction_survival,
    yes_no_only,
)

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


def test_yes_no_answers_are_not_looked_for_and_counted_apart() -> None:
    from pcbench.runners.record import summarize
    from pcbench.tasks.base import Task

    comparison = Example("c", "Are both cities in France?", (Passage("Yes, no, maybe."),), ("yes",))
    assert yes_no_only(comparison) and answer_in_context(comparison, "yes indeed") is None
    assert not yes_no_only(EXAMPLE) and answer_in_context(EXAMPLE, "Paris") is True
    assert not yes_no_only(Example("n", "q", (Passage("t"),), ()))

    class Plain(Task):
        def read(self) -> list[Example]:
            return []

    task = Plain("t", "{context}{question}", 8, True, False, False, ["em"], None)
    rows = []
    for example, kept in ((comparison, None), (EXAMPLE, True)):
        record = {"scores": {}, "original_tokens": 10, "compressed_tokens": 5, "kept_ratio": 0.5, "char_ratio": 0.5,
                  "answer_in_context": kept, "evidence_recall": None, "compress_seconds": 0.0,
                  "cached": {"compress": False}}
        rows.append((example, record))
    metrics = summarize(task, rows, {}, {"task": "t"}, 1.0)
    assert metrics["answer_in_context"] == 100.0 and metrics["answer_in_context_yes_no"] == 1


DEMOS = "Question: Who wrote it ?\nType: Individual\nQuestion: Why is it so ?\nType: Reason"
SPANS = ("Question: Who wrote it ?\nType: Individual", "Question: Why is it so ?\nType: Reason")


def test_instruction_survival_counts_words_kept_in_place_and_spans_kept_whole() -> None:
    # The first demonstration whole (7 words); of the second, its question without the label
    # (6 of 8 words): 13 of 15 words, 1 of 2 spans whole.
    kept = "Question: Who wrote it ?\nType: Individual\nQuestion: Why is it so ?"
    assert instruction_survival(SPANS, DEMOS, kept) == {"instruction_kept": 13 / 15, "instruction_whole": 0.5}
    # "Question:" and "?" recur, but an in-order alignment counts each kept word once, where it was kept:
    # the second demonstration's label alone keeps 2 of its 8 words, and none of the first's.
    assert instruction_survival(SPANS, DEMOS, "Type: Reason") == {"instruction_kept": 2 / 15, "instruction_whole": 0.0}
    assert instruction_survival(SPANS, DEMOS, DEMOS) == {"instruction_kept": 1.0, "instruction_whole": 1.0}


def test_no_instruction_spans_is_none_not_zero() -> None:
    assert instruction_survival((), DEMOS, "") == {"instruction_kept": None, "instruction_whole": None}
