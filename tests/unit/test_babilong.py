"""BABILong: the run script's prompt, files in the hub rows' format, the scorer, evidence, the grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import make

from pcbench.core.errors import PcbenchError
from pcbench.tasks.babilong_metrics import TASK_LABELS, is_right

NOISE = "The ship sailed at dawn. "
ROWS = {"qa1": [{"input": NOISE * 3 + "Mary moved to the bathroom. " + NOISE + "John went to the hallway.",
                 "question": "Where is Mary?", "target": "bathroom",
                 "references": ["Mary moved to the bathroom."]}],
        "qa2": [{"input": "Daniel took the milk. Daniel went to the garden.", "question": "Where is the milk?",
                 "target": "garden"}]}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for length in ("0k", "1k"):
        (tmp_path / length).mkdir()
        for qa, rows in ROWS.items():
            (tmp_path / length / f"{qa}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def task(folder: Path, **knobs: Any) -> Any:
    knobs.setdefault("qa", ["qa1", "qa2"])
    knobs.setdefault("lengths", ["0k", "1k"])
    return make("task", "babilong", path=str(folder), **knobs)


def test_tasks_and_lengths_are_read_from_the_folder_layout(folder: Path) -> None:
    examples = task(folder).load()
    assert [e.id for e in examples] == ["qa1-0k-0", "qa2-0k-0", "qa1-1k-0", "qa2-1k-0"]
    assert task(folder, limit=1, qa=["qa1"]).load()[0].meta == {"qa": "qa1", "length": "0k"}


def test_the_prompt_is_the_default_template_with_each_part_switchable(folder: Path) -> None:
    babilong = task(folder)
    first = babilong.load()[0]
    prompt = babilong.prompt(first, "  Mary moved to the bathroom.  ")
    assert prompt.startswith("I will give you context with the facts about positions of different persons")
    assert "</example>\n\nAlways return your answer in the following format" in prompt
    assert prompt.endswith("\n\n<context>\nMary moved to the bathroom.\n</context>\n\nQuestion: Where is Mary?")
    bare = task(folder, instruction=False, examples=False, post_prompt=False)
    assert bare.prompt(first, "Mary moved.") == "<context>\nMary moved.\n</context>\n\nQuestion: Where is Mary?"
    assert babilong.request(first, first.context).max_new_tokens == 20


def test_supporting_facts_are_the_gold_evidence_where_a_row_has_them(folder: Path) -> None:
    qa1, qa2 = task(folder, lengths=["0k"]).load()
    assert qa1.evidence == ("Mary moved to the bathroom.",) and qa2.evidence == ()


def test_the_scorer_reads_the_first_sentence_and_wants_the_gold_label_alone() -> None:
    labels = TASK_LABELS["qa1"]
    assert is_right("bathroom", "The most recent location of Mary is bathroom.", "Where is Mary?", labels)
    assert not is_right("bathroom", "bathroom or kitchen", "Where is Mary?", labels)
    # Only the first sentence counts; a label the question names never does.
    assert not is_right("bathroom", "I think. It is the bathroom.", "Where is Mary?", labels)
    assert is_right("garden", "The kitchen? no: garden", "Was the milk in the kitchen?", labels)
    # An echoed prompt is cut: after lowercasing, "<context>" still matches, "Question" no longer does.
    assert is_right("office", "office <context> kitchen", "Where is Mary?", labels)
    assert not is_right("office", "office Question: kitchen", "Where is Mary?", labels)
    # qa8's lists: every part, and nothing else.
    assert is_right("apple,milk", "milk, apple", "What is Mary carrying?", TASK_LABELS["qa8"])
    assert not is_right("apple,milk", "milk", "What is Mary carrying?", TASK_LABELS["qa8"])


def test_the_grid_of_tasks_and_lengths(folder: Path) -> None:
    babilong = task(folder)
    examples = babilong.load()
    rows = [(e, {"scores": {"babilong": float(e.meta["qa"] == "qa1")}}) for e in examples]
    assert babilong.summarize(rows) == {"babilong": {"qa1": {"0k": 100.0, "1k": 100.0},
                                                     "qa2": {"0k": 0.0, "1k": 0.0}}}


@pytest.mark.parametrize(("knobs", "needle"), [({"qa": ["qa21"]}, "qa1 ... qa20"), ({"lengths": ["3k"]}, "0k, 1k"),
                                                ({"qa": []}, "empty")])
def test_bad_knobs_are_one_line(folder: Path, knobs: dict[str, Any], needle: str) -> None:
    with pytest.raises(PcbenchError, match=needle):
        task(folder, **knobs)
