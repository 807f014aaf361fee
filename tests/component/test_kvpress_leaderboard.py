"""The KV presets (conf/experiment/kvpress_leaderboard.yaml, text_kv.yaml), cut to what runs offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import needs_smollm2
from support.models import tiny_llama

needs_kvpress = pytest.mark.skipif(importlib.util.find_spec("kvpress") is None, reason="kvpress is not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_llama(tmp_path_factory.mktemp("tiny-kv"), layers=2, window=1024, head_dim=64, pad=True)


@needs_smollm2
@needs_kvpress
def test_the_leaderboard_preset_runs_a_two_press_two_ratio_cut_offline(tiny: str, tmp_path: Path) -> None:
    """+experiment=kvpress_leaderboard, cut to two presses, two ratios and the baseline on a tiny model,
    runs offline; the report sets the cells in kvpress's leaderboard columns."""
    import pandas as pd
    from conftest import cell

    from pcbench.analysis.report import build_report

    cut = ["+experiment=kvpress_leaderboard", f"reader.model={tiny}", "reader.dtype=float32", "reader.device=cpu",
           "reader.max_input_tokens=400", "task.context_tokens=150", "task.num_samples=2", "task.max_new_tokens=4"]
    runs = [("no_press", 0.0), *((press, ratio) for press in ("knorm", "snapkv") for ratio in (0.25, 0.5))]
    for press, ratio in runs:
        metrics, records = cell(tmp_path, *cut, f"reader.press={press}", f"reader.compression_ratio={ratio}",
                                out=f"runs/{press}-{ratio}")
        assert metrics["n_examples"] == 2
        assert records[0]["kv_kept_ratio"] == pytest.approx(1 - ratio, abs=0.02)
    build_report([str(tmp_path / "runs")], "ruler_match", tmp_path / "report")
    board = pd.read_csv(tmp_path / "report" / "kvpress.csv")
    assert list(board.columns[:6]) == ["dataset", "data_dir", "model", "method", "compression_ratio", "score"]
    assert sorted(zip(board["method"], board["compression_ratio"])) == sorted(runs)
    assert set(board["data_dir"]) == {150} and set(board["dataset"]) == {"ruler_synth"}
    pressed = board[board["method"] != "no_press"]
    assert (pressed["cache_mib"] < pressed["full_cache_mib"]).all() and pressed["prefill_peak_mib"].notna().all()


@needs_smollm2
@needs_kvpress
def test_the_text_and_kv_preset_puts_both_on_one_kept_axis(tiny: str, tmp_path: Path) -> None:
    """+experiment=text_kv, cut to a text compressor, a press and their combination on a tiny model:
    one panel (one reader label), the press a method, and the combination's kept ratio the product."""
    from conftest import cell

    from pcbench.analysis.collect import collect
    from pcbench.analysis.report import build_report

    cut = ["+experiment=text_kv", f"reader.model={tiny}", "reader.device=cpu", "reader.max_input_tokens=600",
           "task.context_tokens=300", "task.num_samples=2", "task.max_new_tokens=4"]
    runs = {"full": ["compressor=none", "reader.press=no_press", "reader.compression_ratio=0.0"],
            "text": ["compressor=bm25", "compressor.rate=0.5", "reader.press=no_press", "reader.compression_ratio=0.0"],
            "kv": ["compressor=none", "reader.press=snapkv", "reader.compression_ratio=0.5"],
            "both": ["compressor=bm25", "compressor.rate=0.5", "reader.press=snapkv", "reader.compression_ratio=0.5"]}
    for name, overrides in runs.items():
        cell(tmp_path, *cut, *overrides, out=f"runs/{name}")
    table = collect(tmp_path / "runs").set_index("variant")
    assert table["reader_label"].nunique() == 1
    assert set(table.index) == {"none", "bm25", "kv:snapkv", "bm25 + kv:snapkv"}
    assert table.loc["none", "role"] == "baseline" and table.loc["kv:snapkv", "role"] == "method"
    assert table.loc["kv:snapkv", "budget"] == "compression_ratio=0.5"
    assert table.loc["kv:snapkv", "kept_ratio"] == pytest.approx(0.5, abs=0.02)
    both = table.loc["bm25 + kv:snapkv"]
    assert both["kept_ratio"] == pytest.approx(both["text_kept_ratio"] * both["kv_kept_ratio"])
    assert both["kept_ratio"] == pytest.approx(0.25, abs=0.03)
    build_report([str(tmp_path / "runs")], "ruler_match", tmp_path / "report")
    assert (tmp_path / "report" / "tradeoff.png").stat().st_size > 0
