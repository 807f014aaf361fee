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
