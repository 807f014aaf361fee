"""LongBench v2: the official prompts, chain of thought in two steps, subsets, retrieved chunks, the scorer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import make

from pcbench.core.errors import PcbenchError
from pcbench.tasks.longbench_v2_metrics import choice_accuracy, extract_choice

ITEMS = [
    {"_id": "q1", "domain": "Single-Document QA", "sub_domain": "Novel", "difficulty": "easy", "length": "short",
     "question": " Who wrote it? ", "choice_A": "Ann", "choice_B": "Bob {x}", "choice_C": "Cy", "choice_D": "Di",
     "answer": "B", "context": "  Bob wrote the book in 1990. It has {braces} and $Q$ in it.  ",
     "retrieved_context": [{"c_idx": 7, "content": "late chunk"}, {"c_idx": 2, "content": "early chunk"},
                           {"c_idx": 5, "content": "unused chunk"}]},
    {"_id": "q2", "domain": "Code Repository Understanding", "sub_domain": "Code", "difficulty": "hard",
     "length": "medium", "question": "Which function?", "choice_A": "f", "choice_B": "g", "choice_C": "h",
     "choice_D": "k", "answer": "D", "context": "def k(): pass"},
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(ITEMS), encoding="utf-8")
    return path


def task(data: Path, **knobs: Any) -> Any:
    return make("task", "longbench_v2", path=str(data), **knobs)


def test_the_zero_shot_prompt_is_the_official_file_filled_by_replacement(data: Path) -> None:
    lb = task(data)
    first, _ = lb.load()
    assert first.answers == ("B",) and first.question == "Who wrote it?"
    prompt = lb.request(first, first.context).prompt
    # Braces stay as they are; a "$Q$" in the text becomes the question, as pred.py's replace chain does.
    assert prompt == ("Please read the following text and answer the question below.\n\n<text>\n"
                      "Bob wrote the book in 1990. It has {braces} and Who wrote it? in it.\n</text>\n\n"
                      "What is the correct answer to this question: Who wrote it?\nChoices:\n(A) Ann\n(B) Bob {x}\n"
                      "(C) Cy\n(D) Di\n\nFormat your response as follows: "
                      "\"The correct answer is (insert answer here)\".")
    request = lb.request(first, first.context)
    assert request.max_new_tokens == 128 and request.chat
    assert request.context_end is not None and prompt[request.context_end:].startswith("\n</text>")
    assert lb.follow_up(first, "The correct answer is (B)") is None


def test_chain_of_thought_reasons_first_then_answers_from_the_reasoning_alone(data: Path) -> None:
    lb = task(data, cot=True)
    first, _ = lb.load()
    request = lb.request(first, first.context)
    assert request.max_new_tokens == 1024 and request.prompt.endswith("(D) Di\n\nLet’s think step by step:")
    second = lb.follow_up(first, "  Bob is named.  ")
    assert second is not None and second.max_new_tokens == 128
    assert "The text is too long and omitted here." in second.prompt and "Bob wrote" not in second.prompt
    assert "Let’s think step by step: Bob is named.\n\nBased on the above" in second.prompt


def test_no_context_asks_the_question_alone(data: Path) -> None:
    lb = task(data, no_context=True)
    first, _ = lb.load()
    assert lb.request(first, first.context).prompt.startswith("What is the correct answer to this question: Who")


def test_retrieved_chunks_are_the_first_n_in_document_order(data: Path) -> None:
    lb = task(data, rag=2, difficulty="easy")
    (first,) = lb.load()
    assert first.context == "Retrieved chunk 1: early chunk\n\nRetrieved chunk 2: late chunk"
    assert lb.request(first, first.context).prompt.startswith(
        "Please read the following retrieved text chunks and answer the question below.\n\n<text>\nRetrieved chunk 1")
    with pytest.raises(PcbenchError, match="retrieved_context"):
        task(data, rag=2).load()  # the second item has none


def test_subsets_by_difficulty_length_and_domain(data: Path) -> None:
    assert [e.id for e in task(data, difficulty="hard").load()] == ["q2"]
    assert [e.id for e in task(data, length="short").load()] == ["q1"]
    assert [e.id for e in task(data, domain="Code Repository Understanding").load()] == ["q2"]
    with pytest.raises(PcbenchError, match="difficulty"):
        task(data, difficulty="medium")


def test_the_letter_is_extracted_as_pred_py_does() -> None:
    assert extract_choice("**The correct answer is (C)**") == "C"
    assert extract_choice("The correct answer is D, since") == "D"
    assert extract_choice("the correct answer is (A)") is None  # case-sensitive, as pred.py
    assert extract_choice("The correct answer is (E)") is None
    # The parenthesised form anywhere wins over an earlier bare letter.
    assert extract_choice("The correct answer is B. The correct answer is (A)") == "A"


def test_the_score_and_result_py_compensation(data: Path) -> None:
    first, _ = task(data).load()
    assert choice_accuracy("The correct answer is (B)", first) == 1.0
    assert choice_accuracy("The correct answer is (A)", first) == 0.0
    assert choice_accuracy("I cannot tell", first) == 0.0
    compensated, _ = task(data, compensated=True).load()
    assert choice_accuracy("I cannot tell", compensated) == 0.25
    assert choice_accuracy("The correct answer is (A)", compensated) == 0.0


def test_result_py_table_by_difficulty_and_length(data: Path) -> None:
    lb = task(data)
    first, second = lb.load()
    rows = [(first, {"scores": {"longbench_v2": 1.0}, "prediction": "The correct answer is (B)"}),
            (second, {"scores": {"longbench_v2": 0.0}, "prediction": "no idea"})]
    assert lb.summarize(rows) == {"longbench_v2": {"overall": 50.0, "easy": 100.0, "hard": 0.0, "short": 100.0,
                                                   "medium": 0.0, "no_letter": 1}}


def test_a_template_knob_is_refused_with_the_right_place_named(data: Path) -> None:
    with pytest.raises(PcbenchError, match="task.templates"):
        task(data, template="{context}")
