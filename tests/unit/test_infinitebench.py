"""InfiniteBench: create_prompt's templates per subtask, get_answer's labels, needles as evidence, scorers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import make

from pcbench.core.errors import PcbenchError
from pcbench.tasks.infinitebench_metrics import SCORERS

NOISE = "The grass is green. The sky is blue. "
FILES: dict[str, list[dict[str, Any]]] = {
    "passkey": [{"id": 0, "context": NOISE * 4 + "The pass key is 71432. Remember it. 71432 is the pass key. " + NOISE,
                 "input": "What is the pass key?", "answer": ["71432"], "options": []}],
    "kv_retrieval": [{"id": 0, "context": 'JSON data:\n{"a1": "b1", "k-9": "v-7", "c3": "d3"}',
                      "input": 'Key: "k-9"\nThe value associated with the specified key is: ', "answer": ["v-7"],
                      "options": []}],
    "longbook_choice_eng": [{"id": 3, "context": "A long book.", "input": "Who walks?",
                             "answer": ["Walking Georgie"], "options": ["Nicky", "Walking Georgie", "Ace", "Bo"]}],
    "code_run": [{"id": 0, "context": "def func_1(x):\n    return x + 2", "input": "func_1(2)", "answer": 4,
                  "options": []}],
    "math_find": [{"id": 0, "context": "[3, 88, 9]", "input": "Find it. The largest number of the list is: ",
                   "answer": 88, "options": []}],
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, rows in FILES.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def task(folder: Path, **knobs: Any) -> Any:
    knobs.setdefault("subtask", list(FILES))
    return make("task", "infinitebench", path=str(folder), **knobs)


def test_each_subtask_is_asked_with_its_template_and_length(folder: Path) -> None:
    bench = task(folder)
    by = {e.meta["subtask"]: e for e in bench.load()}
    passkey = bench.request(by["passkey"], by["passkey"].context)
    assert passkey.prompt.startswith("There is an important info hidden inside a lot of irrelevant text.")
    assert passkey.prompt.endswith("\n\nWhat is the pass key?") and passkey.max_new_tokens == 6
    assert passkey.system == "You are a helpful assistant."
    choice = bench.request(by["longbook_choice_eng"], "A long book.")
    assert "Question: Who walks?" in choice.prompt
    assert choice.prompt.endswith("A. Nicky\nB. Walking Georgie\nC. Ace\nD. Bo")
    code = bench.prompt(by["code_run"], "CODE")
    assert "named func_1." in code and "return value of func_1(2)." in code
    assert bench.prompt(by["math_find"], "[1]").startswith("What is the largest number in the following list?")
    base = task(folder, prompt_style="yarn_mistral")
    assert base.prompt(by["passkey"], "X").endswith("What is the pass key?\n\nThe pass key is")


def test_labels_as_get_answer_gives_them_and_needles_as_evidence(folder: Path) -> None:
    by = {e.meta["subtask"]: e for e in task(folder).load()}
    assert by["longbook_choice_eng"].meta["label"] == ["Walking Georgie", "B"]
    assert by["longbook_choice_eng"].id == "longbook_choice_eng-3"
    assert by["passkey"].evidence == ("The pass key is 71432.", "71432 is the pass key.")
    assert by["kv_retrieval"].evidence == ('"k-9": "v-7"',)
    assert by["code_run"].evidence == ()


def test_the_scorers_read_replies_as_compute_scores_does() -> None:
    assert SCORERS["passkey"]("The pass key is 71432.", ["71432"])
    assert not SCORERS["passkey"]("Key 7 then 71432", ["71432"])  # the first number only
    assert SCORERS["kv_retrieval"]('The value is "v-7".', ["v-7"])
    assert SCORERS["longbook_choice_eng"]("B. Walking Georgie", ["Walking Georgie", "B"])
    assert SCORERS["longbook_choice_eng"]("I think the answer is: B", ["Walking Georgie", "B"])
    assert not SCORERS["longbook_choice_eng"]("I think the answer is: C", ["Walking Georgie", "B"])
    assert SCORERS["code_run"]("The value is 4", 4) and not SCORERS["code_run"]("4 is not it", 4)
    assert SCORERS["math_find"]("88", 88) and not SCORERS["math_find"]("88.5", 88)
    assert SCORERS["longdialogue_qa_eng"]("It is Ace.", ["ACE", "ACE ROTHSTEIN"])
    assert SCORERS["longbook_qa_eng"]("The war", ["fighting in world war 1", "the war"]) == 1.0
    assert 0 < SCORERS["longbook_sum_eng"]("Jennifer makes a choice.", ["Jennifer is an earnest woman."]) < 1


def test_unknown_subtasks_and_styles_are_one_line(folder: Path) -> None:
    with pytest.raises(PcbenchError, match="math_calc is left out"):
        task(folder, subtask=["math_calc"])
    with pytest.raises(PcbenchError, match="prompt_style"):
        task(folder, prompt_style="kimi")
