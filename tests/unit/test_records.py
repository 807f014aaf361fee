"""core/records: what a cell writes has the declared types, carries its schema version, and a folder
written by a newer pcbench is refused with one line, while one written before the version still reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import HOTPOT, cell, needs_smollm2

from pcbench.core.records import SCHEMA, CompressedEntry, ExampleRecord, GenerationEntry, conforms
from pcbench.core.results import read_metrics

pytestmark = needs_smollm2  # the reader-free cells count tokens with SmolLM2's tokenizer


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    data = tmp_path / "hotpot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in HOTPOT))
    metrics, records = cell(tmp_path, "task=hotpotqa", f"task.path={data}", "reader=none", "compressor=bm25")
    assert metrics["schema"] == SCHEMA
    assert records and all(conforms(r, ExampleRecord) for r in records)
    return tmp_path / "out"


def test_records_written_by_a_generating_cell_have_the_declared_types(tmp_path: Path, tiny: str) -> None:
    data = tmp_path / "hotpot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in HOTPOT))
    metrics, records = cell(tmp_path, "task=hotpotqa", f"task.path={data}", "reader=transformers",
                            f"reader.model={tiny}", "reader.dtype=float32", "task.max_new_tokens=3")
    assert all(conforms(r, ExampleRecord) for r in records)
    assert all(isinstance(r["prediction"], str) and r["new_tokens"] >= 1 for r in records)
    # The conformance check can fail: a wrong type or a missing required key is caught.
    broken = {**records[0], "new_tokens": "3"}
    assert not conforms(broken, ExampleRecord)
    missing = {k: v for k, v in records[0].items() if k != "gold"}
    assert not conforms(missing, ExampleRecord)


def test_cache_entries_are_checked_against_their_declared_shape() -> None:
    assert conforms({"text": "a", "original_tokens": 3, "compressed_tokens": 2, "seconds": 0}, CompressedEntry)
    assert not conforms({"text": "a", "original_tokens": True, "compressed_tokens": 2, "seconds": 0},
                        CompressedEntry)  # a bool is no count
    assert conforms({"text": "a", "prompt_tokens": 3, "new_tokens": 1, "prefill_seconds": None}, GenerationEntry)
    assert not conforms({"text": "a", "prompt_tokens": 3, "new_tokens": 1, "prefill_seconds": "1"}, GenerationEntry)


def test_a_newer_schema_is_refused_in_one_line_and_an_older_folder_reads(finished: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from pcbench.analysis.inspect import main as inspect

    newer = tmp_path / "newer"
    shutil.copytree(finished, newer)
    metrics = json.loads((newer / "metrics.json").read_text())
    (newer / "metrics.json").write_text(json.dumps({**metrics, "schema": SCHEMA + 1}))
    read, problem = read_metrics(newer)
    assert read is None and problem is not None
    assert f"written with record schema {SCHEMA + 1} by a newer pcbench; this one reads schemas 1 to {SCHEMA}" \
        in problem
    assert inspect([str(newer)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "record schema" in err and "\n" not in err

    older = tmp_path / "older"  # written before the schema was recorded: schema 1, the same fields
    shutil.copytree(finished, older)
    (older / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items() if k != "schema"}))
    read, problem = read_metrics(older)
    assert problem is None and read is not None and read["n_examples"] == 3
    assert inspect([str(older)]) == 0


def test_the_original_facts_are_cached_and_not_counted_as_the_compressors_work(tmp_path: Path) -> None:
    """What survives needs the original context's facts once per example, across cells: the harness
    keeps them in its own cache stage, which the compressor's reused-work counters never see."""
    data = tmp_path / "hotpot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in HOTPOT))
    base = ("task=hotpotqa", f"task.path={data}", "reader=none", "compressor=oracle")
    first, _ = cell(tmp_path, *base, out="first")
    assert len(list((tmp_path / "cache" / "facts").rglob("*.json"))) == 3
    again, records = cell(tmp_path, *base, out="again")
    assert again["cache_hits"]["reused_work"] == first["cache_hits"]["reused_work"] == 0
    assert all("numbers_kept" in r for r in records)
