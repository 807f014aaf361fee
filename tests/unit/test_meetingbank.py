"""MeetingBank as LLMLingua-2 evaluates on it: a question per example or a summary per meeting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import make

from pcbench.core.errors import PcbenchError

SAMPLES = {"0": {"idx": 0, "prompt": "Speaker 1: The council approved the budget of $5 million on May 3rd.",
                 "gpt4_summary": "The council approved a $5 million budget.",
                 "QA_pairs": [{"question": "What was approved?", "answer": "the budget"},
                              {"question": "How much?", "answer": "$5 million"}]}}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "meetingbank.json"
    path.write_text(json.dumps(SAMPLES))  # as LLMLingua's compress.py saves them: {idx: sample}
    return path


def test_qa_asks_each_question_with_the_scripts_prompt_and_scores_qa_score(data: Path) -> None:
    task: Any = make("task", "meetingbank", path=str(data))
    first, second = task.load()
    assert (first.id, second.id) == ("0-q0", "0-q1")
    request = task.request(first, first.context)
    assert request.prompt == ("Write a high-quality answer for the given question using the provided meeting "
                              "transcript (which may be compressed).\nSpeaker 1: The council approved the budget "
                              "of $5 million on May 3rd.\nQuestion:What was approved?\nAnswer:")
    assert request.max_new_tokens == 100 and not request.chat
    assert task.score(" The Budget.\nAnd more", first) == {"match": 1.0}
    assert task.score("\nsomething else\nthe budget", first) == {"match": 0.0}  # the first line only


def test_summary_is_one_example_per_meeting_scored_by_rouge(data: Path) -> None:
    task: Any = make("task", "meetingbank_summary", path=str(data))
    (meeting,) = task.load()
    request = task.request(meeting, meeting.context)
    assert request.prompt.startswith("Summarize the provided meeting transcript (which may be compressed).\n")
    assert request.prompt.endswith("\nSummary:") and request.max_new_tokens == 400
    scores = task.score("The council approved a $5 million budget.", meeting)
    assert scores == {"rouge_1": 1.0, "rouge_2": 1.0, "rouge_l": 1.0, "rouge_lsum": 1.0}
    assert meeting.meta["long_answers"]


def test_a_sample_without_its_fields_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"idx": 1, "prompt": "x"}) + "\n")
    with pytest.raises(PcbenchError, match="QA_pairs"):
        make("task", "meetingbank", path=str(path)).load()
