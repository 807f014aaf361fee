"""W&B logging, offline: what runners/wandb_log.py writes is read back from the run files."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_smollm2
from support.study_cells import compose_cell, study

from pcbench.analysis.wandb_log import log_to_wandb, study_run_id

BLOCK = 32768  # the .wandb transaction log: 7-byte file header, 32 KiB blocks of (crc, length, type) records


def records(path: Path) -> list[Any]:
    """Every record of a .wandb file, parsed with W&B's own protobuf schema."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending, out = 7, b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            raw = chunk
        elif kind == 2:
            pending = chunk
            continue
        elif kind == 3:
            pending += chunk
            continue
        elif kind == 4:
            raw = pending + chunk
        else:
            continue
        record = pb.Record()
        record.ParseFromString(raw)
        out.append(record)
    return out


def run_files(root: Path) -> Path:
    [run_dir] = [p for p in (root / "wandb").glob("offline-run-*") if p.is_dir()]
    return run_dir


def summary_of(items: list[Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for record in items:
        if record.WhichOneof("record_type") == "summary":
            for update in record.summary.update:
                key = update.key or "/".join(update.nested_key)
                summary[key] = json.loads(update.value_json)
    return summary


@needs_smollm2
def test_cell_and_study_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    root = study(tmp_path)
    cell = root / "niah" / "bm25" / "bm25_rate=0.5"
    cfg = compose_cell("bm25", ("compressor.rate=0.5", "study=study", "wandb.enabled=true"), tmp_path / "cache")
    metrics = json.loads((cell / "metrics.json").read_text())
    log_to_wandb(cfg, metrics, cell)  # type: ignore[arg-type]

    # The cell's run: group = study, a name from its overrides, tags, summary, one row per example.
    run_dir = run_files(cell)
    items = records(next(run_dir.glob("run-*.wandb")))
    [run] = [r.run for r in items if r.WhichOneof("record_type") == "run"]
    assert run.run_group == "study" and run.display_name == "niah/bm25/bm25_rate=0.5"
    assert {"task:niah", "compressor:bm25", "variant:bm25", "budget:rate=0.5", "study:study"} <= set(run.tags)
    summary = summary_of(items)
    assert summary["evidence_recall"] == metrics["evidence_recall"]
    assert summary["kept_ratio"] == pytest.approx(metrics["kept_ratio"])
    [table_file] = list((run_dir / "files" / "media" / "table").glob("examples_*.table.json"))
    table = json.loads(table_file.read_text())
    predictions = [json.loads(line) for line in (cell / "predictions.jsonl").read_text().splitlines()]
    assert len(table["data"]) == len(predictions) == 5
    column = table["columns"].index("context")
    assert [row[column] for row in table["data"]] == [p["context"] for p in predictions]

    # The study's run: a fixed id, the leaderboard of every finished cell and the plots.
    study_dir = run_files(root)
    assert study_dir.name.endswith(study_run_id("pcbench", "study"))
    items = records(next(study_dir.glob("run-*.wandb")))
    [run] = [r.run for r in items if r.WhichOneof("record_type") == "run"]
    assert run.run_group == "study" and run.display_name == "study/leaderboard"
    [board_file] = list((study_dir / "files" / "media" / "table").glob("leaderboard_*.table.json"))
    board = json.loads(board_file.read_text())
    assert len(board["data"]) == 7 and "Δ vs random" in board["columns"]
    images = {p.name.split("_")[0] for p in (study_dir / "files" / "media" / "images").glob("*.png")}
    assert images == {"tradeoff", "speed"}
    assert summary_of(items)["cells"] == 7


def test_a_wandb_failure_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    from omegaconf import OmegaConf

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = OmegaConf.create({"study": "s", "wandb": {"project": "p", "entity": None}})
    log_to_wandb(cfg, {"task": "t"}, tmp_path)  # a folder without predictions.jsonl: the table cannot be made
    assert "W&B logging failed" in caplog.text
