"""The real offline default (SmolLM2-135M-Instruct) end to end, on a few examples."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import needs_smollm2, shared
from hydra import compose, initialize_config_dir

from pcbench.runners.cell import run_cell

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [needs_smollm2, pytest.mark.slow]


def cell(tmp_path: Path, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=[*overrides, f"cache_dir={tmp_path / 'cache'}"])
    return run_cell(cfg, tmp_path / "out", {"task": "t", "compressor": "c", "reader": "smollm2"})


def test_smollm2_finds_the_needle(tmp_path: Path) -> None:
    metrics = cell(tmp_path, "task.lengths=[500]", "task.depths=[50]")
    assert metrics["n_examples"] == 1 and metrics["metrics"]["match"] == 100.0


def test_smollm2_on_hotpotqa_with_oracle_evidence(tmp_path: Path) -> None:
    path = shared("hotpotqa/hotpot_dev_distractor_800.jsonl")
    metrics = cell(tmp_path, "task=hotpotqa", f"task.path={path}", "task.limit=4", "compressor=oracle")
    assert metrics["n_examples"] == 4 and metrics["evidence_recall"] == 100.0
    assert metrics["kept_ratio"] < 0.4 and set(metrics["metrics"]) == {"em", "f1", "match"}
