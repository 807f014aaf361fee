"""The long-context task families end to end on small files in their official formats: a reader-free
cell each, and a real SmolLM2 cell each (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cell, needs_smollm2

LONGBENCH_V2 = [
    {"_id": f"q{i}", "domain": "Single-Document QA", "sub_domain": "Novel", "difficulty": d, "length": "short",
     "question": "Which city did the traveller reach last?", "choice_A": "Paris", "choice_B": "Rome",
     "choice_C": "Oslo", "choice_D": "Lima", "answer": "C",
     "context": " ".join(["The traveller left Paris by train and spent a week in Rome."] * 5
                         + ["At the end of the journey the traveller reached Oslo."]
                         + ["The weather was cold and the museums were closed."] * 5)}
    for i, d in enumerate(["easy", "hard"])
]


@pytest.fixture
def longbench_v2_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(LONGBENCH_V2), encoding="utf-8")
    return path


def test_longbench_v2_reader_free(tmp_path: Path, longbench_v2_file: Path) -> None:
    metrics, records = cell(tmp_path, "task=longbench_v2", f"task.path={longbench_v2_file}", "compressor=bm25",
                            "compressor.rate=0.5", "reader=none")
    assert metrics["n_examples"] == 2 and metrics["kept_ratio"] == pytest.approx(0.5, abs=0.1)
    assert all(r["answer_in_context"] is None for r in records)  # a letter is no span of the text


@pytest.mark.slow
@needs_smollm2
def test_longbench_v2_with_smollm2_reasons_then_answers(tmp_path: Path, longbench_v2_file: Path) -> None:
    metrics, records = cell(tmp_path, "task=longbench_v2", f"task.path={longbench_v2_file}", "task.cot=true",
                            "task.cot_max_new_tokens=24", "task.max_new_tokens=16")
    assert metrics["n_examples"] == 2 and set(metrics["longbench_v2"]) >= {"overall", "easy", "hard", "no_letter"}
    for record in records:
        assert record["reasoning"] and record["prediction"] != record["reasoning"]
        assert record["scores"]["longbench_v2"] in (0.0, 1.0)
        assert record["new_tokens"] > 0


@pytest.fixture
def babilong_folder(tmp_path: Path) -> Path:
    noise = "The ship sailed at dawn and the crew sang. " * 6
    rows = [{"input": noise + "Mary moved to the bathroom. " + noise + "John went to the hallway. " + noise,
             "question": "Where is Mary?", "target": "bathroom", "references": ["Mary moved to the bathroom."]},
            {"input": noise + "Sandra journeyed to the garden. " + noise, "question": "Where is Sandra?",
             "target": "garden", "references": ["Sandra journeyed to the garden."]}]
    (tmp_path / "babilong" / "1k").mkdir(parents=True)
    (tmp_path / "babilong" / "1k" / "qa1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "babilong"


def test_babilong_reader_free_with_its_supporting_facts(tmp_path: Path, babilong_folder: Path) -> None:
    metrics, records = cell(tmp_path, "task=babilong", f"task.path={babilong_folder}", "task.qa=[qa1]",
                            "task.lengths=[1k]", "compressor=oracle", "reader=none")
    assert metrics["n_examples"] == 2 and metrics["evidence_recall"] == 100.0
    assert all(r["answer_in_context"] for r in records) and metrics["kept_ratio"] < 0.2


@pytest.mark.slow
@needs_smollm2
def test_babilong_with_smollm2(tmp_path: Path, babilong_folder: Path) -> None:
    metrics, records = cell(tmp_path, "task=babilong", f"task.path={babilong_folder}", "task.qa=[qa1]",
                            "task.lengths=[1k]")
    assert metrics["n_examples"] == 2 and set(metrics["babilong"]["qa1"]) == {"1k"}
    assert all(r["scores"]["babilong"] in (0.0, 1.0) and r["prediction"] for r in records)


@pytest.fixture
def infinitebench_folder(tmp_path: Path) -> Path:
    noise = "The grass is green. The sky is blue. Here we go. There and back again. " * 8
    rows = [{"id": i, "context": noise + f"The pass key is {key}. Remember it. {key} is the pass key. " + noise,
             "input": "What is the pass key?", "answer": [key], "options": []}
            for i, key in enumerate(["71432", "90210"])]
    (tmp_path / "infinitebench").mkdir()
    (tmp_path / "infinitebench" / "passkey.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "infinitebench"


def test_infinitebench_reader_free_with_its_needles(tmp_path: Path, infinitebench_folder: Path) -> None:
    metrics, records = cell(tmp_path, "task=infinitebench", f"task.path={infinitebench_folder}",
                            "task.subtask=[passkey]", "compressor=oracle", "reader=none")
    assert metrics["n_examples"] == 2 and metrics["evidence_recall"] == 100.0
    assert all(r["answer_in_context"] for r in records)


@pytest.mark.slow
@needs_smollm2
def test_infinitebench_with_smollm2(tmp_path: Path, infinitebench_folder: Path) -> None:
    metrics, records = cell(tmp_path, "task=infinitebench", f"task.path={infinitebench_folder}",
                            "task.subtask=[passkey]")
    assert metrics["n_examples"] == 2 and set(metrics["infinitebench"]) == {"passkey"}
    assert all(r["scores"]["infinitebench"] in (0.0, 1.0) and r["new_tokens"] <= 6 for r in records)


@pytest.fixture
def meetingbank_file(tmp_path: Path) -> Path:
    transcript = ("Speaker 1: Good evening. " * 10 + "Speaker 2: The council approved the budget of five million "
                  "dollars. " + "Speaker 1: Next item. " * 10)
    samples = [{"idx": i, "prompt": transcript, "gpt4_summary": "The council approved a budget.",
                "QA_pairs": [{"question": "What did the council approve?", "answer": "the budget"}]} for i in range(2)]
    path = tmp_path / "meetingbank.json"
    path.write_text(json.dumps(samples))
    return path


def test_meetingbank_reader_free(tmp_path: Path, meetingbank_file: Path) -> None:
    metrics, records = cell(tmp_path, "task=meetingbank", f"task.path={meetingbank_file}", "compressor=bm25",
                            "compressor.rate=0.33", "reader=none")
    assert metrics["n_examples"] == 2 and metrics["kept_ratio"] < 0.5
    assert {r["answer_in_context"] for r in records} <= {True, False}


@pytest.mark.slow
@needs_smollm2
def test_meetingbank_summary_with_smollm2(tmp_path: Path, meetingbank_file: Path) -> None:
    metrics, records = cell(tmp_path, "task=meetingbank_summary", f"task.path={meetingbank_file}",
                            "task.max_new_tokens=24")
    assert metrics["n_examples"] == 2 and 0 <= metrics["metrics"]["rouge_lsum"] <= 100
    assert all(r["prediction"] is not None for r in records)
