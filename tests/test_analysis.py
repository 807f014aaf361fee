"""analysis.report turns real (reader-free) cells into a table, a leaderboard and a plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import needs_smollm2
from hydra import compose, initialize_config_dir

from analysis.report import main
from runners.cell import run_cell

ROOT = Path(__file__).resolve().parents[1]


@needs_smollm2
def test_report_over_a_small_sweep(tmp_path: Path) -> None:
    for compressor, rate in (("bm25", 0.5), ("bm25", 0.25), ("random", 0.5)):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
            cfg = compose("config", overrides=["reader=none", f"compressor={compressor}", f"compressor.rate={rate}",
                                               "task.lengths=[400]", "task.depths=[0,100]",
                                               f"cache_dir={tmp_path / 'cache'}"])
        run_cell(cfg, tmp_path / "runs" / f"{compressor}-{rate}",
                 {"task": "niah", "compressor": compressor, "reader": "none"})

    out = tmp_path / "report"
    assert main([str(tmp_path / "runs"), "--metric", "evidence_recall", "--out", str(out)]) == 0
    table = pd.read_parquet(out / "runs.parquet")
    assert len(table) == 3 and set(table["budget"]) == {"rate=0.5", "rate=0.25"}
    assert (out / "tradeoff.png").stat().st_size > 0
    assert "bm25" in (out / "leaderboard.md").read_text()
    assert main([str(tmp_path / "runs"), "--metric", "f1", "--out", str(out)]) == 2  # no reader ran
    assert main([str(tmp_path / "nowhere"), "--out", str(out)]) == 2
