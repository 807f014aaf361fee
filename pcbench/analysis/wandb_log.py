"""Optional W&B logging (`wandb.enabled=true`), fed from the files a cell wrote: never the only copy.

Per cell, one W&B run:
- group = the study (`study=`, the name of the sweep folder), so a study's cells sit together;
- tags: task, compressor, reader, variant, budget, study;
- name: `<task>/<compressor>/<cell folder>`, the folder being named by the cell's overrides
  (runners/identity.py), so names are unique within a study and say what differs;
- config: the resolved config plus the cell's identity (config hash, git commit);
- summary: metrics.json's numbers, flattened (`metrics/f1`, `seconds/wall`, ...);
- `examples`: a table with one row per example of predictions.jsonl.

Per study, one more run (job_type "study", a fixed id per project and study, resumed each time a
cell finishes): the leaderboard table and the trade-off and speed plots of every finished cell of
the study so far (analysis.report over the study folder), so the last cell to finish leaves the
study's complete picture.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pcbench.core.records import CellMetrics
from pcbench.core.redact import redact_value
from pcbench.core.results import read_predictions

log = logging.getLogger(__name__)

# Per-example fields shown in the W&B table (the compressed context too: what the reader saw).
EXAMPLE_COLUMNS = ("id", "question", "gold", "prediction", "original_tokens", "compressed_tokens", "kept_ratio",
                   "answer_in_context", "evidence_recall", "char_ratio", "compress_seconds", "prefill_seconds",
                   "generate_seconds", "truncated", "context")


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}/{key}" if prefix else str(key), inner, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) or value is None:
        out[prefix] = value
    return out


def study_root(out_dir: Path, study: str) -> Path:
    """The study folder above a cell (multirun/<study>/<task>/<compressor>/<cell>); the cell's
    parent's parent's parent when no ancestor carries the study's name."""
    for parent in out_dir.resolve().parents:
        if parent.name == study:
            return parent
    parents = out_dir.resolve().parents
    return parents[2] if len(parents) > 2 else out_dir.resolve().parent


def run_name(out_dir: Path, root: Path) -> str:
    """`<task>/<compressor>/<cell folder>`: the cell's path inside its study."""
    try:
        return out_dir.resolve().relative_to(root).as_posix()
    except ValueError:
        return out_dir.name


def example_rows(out_dir: Path) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of the per-example table, from predictions.jsonl."""
    records, problem = read_predictions(out_dir)
    if problem:  # the cell just wrote it whole; anything else is worth the warning log_to_wandb gives
        raise OSError(problem)
    scores = sorted({k for r in records for k in (r.get("scores") or {})})
    columns = [c for c in EXAMPLE_COLUMNS if any(c in r for r in records)] + [f"score/{s}" for s in scores]
    rows = []
    for r in records:
        row = []
        for column in columns:
            value = (r.get("scores") or {}).get(column[6:]) if column.startswith("score/") else r.get(column)
            row.append(" | ".join(map(str, value)) if isinstance(value, list) else value)
        rows.append(row)
    return columns, rows


def _tags(metrics: CellMetrics, study: str) -> list[str]:
    from pcbench.analysis.collect import RUNTIME_KNOBS, budget_knobs_of, budget_label, knob_label

    requested = {f"requested.{k}": v for k, v in (metrics.get("requested") or {}).items()}
    variant = ((metrics.get("identity") or {}).get("variant") or {}).get("compressor") or {}
    tags = [f"task:{metrics.get('task')}", f"compressor:{metrics.get('compressor')}", f"reader:{metrics.get('reader')}",
            f"variant:{knob_label(str(metrics.get('compressor')), variant, budget_knobs_of(metrics) | RUNTIME_KNOBS)}",
            f"study:{study}"]
    budget = budget_label(requested)
    if budget:
        tags.append(f"budget:{budget}")
    return [t[:64] for t in tags]  # W&B refuses tags over 64 characters


def log_cell(cfg: DictConfig, metrics: CellMetrics, out_dir: Path) -> None:
    import wandb

    study = str(cfg.get("study", "default"))
    root = study_root(out_dir, study)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    config: dict[str, Any] = {str(k): redact_value(v) for k, v in container.items()}
    config["identity"] = {k: v for k, v in (metrics.get("identity") or {}).items() if k in ("config_hash", "git")}
    run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, dir=str(out_dir), group=study,
                     job_type="cell", name=run_name(out_dir, root), tags=_tags(metrics, study), config=config,
                     reinit="finish_previous", settings=quiet_settings())
    try:
        run.summary.update(_flat("", {k: v for k, v in metrics.items() if k not in ("identity", "environment")}, {}))
        columns, rows = example_rows(out_dir)
        run.log({"examples": wandb.Table(columns=list[str | int](columns), data=rows)})
    finally:
        run.finish()


def study_run_id(project: str, study: str) -> str:
    return "study-" + hashlib.sha256(f"{project}/{study}".encode()).hexdigest()[:16]


def log_study(cfg: DictConfig, root: Path, metric: str | None = None) -> None:
    """The study's leaderboard and plots, from every finished cell under `root`, into the study run
    (its W&B files under `root`/wandb)."""

    from pcbench.analysis.collect import collect
    from pcbench.analysis.metric import available
    from pcbench.analysis.report import build_report

    study = str(cfg.get("study", "default"))
    table = collect(root)
    if table.empty:
        return
    names = available(table)
    # The reader's first metric when a reader ran, else the reader-free evidence measures.
    preferred = [m for m in (metric, "f1", "longbench", "match", "evidence_recall", "answer_in_context") if m]
    chosen = next((m for m in preferred if m in names), names[0] if names else None)
    if chosen is None:
        return
    with tempfile.TemporaryDirectory(prefix="pcbench-study-") as tmp:
        report = build_report([str(root)], chosen, Path(tmp))
        _log_study_run(cfg, study, root, report)


def _log_study_run(cfg: DictConfig, study: str, root: Path, report: Any) -> None:
    import wandb

    from pcbench.analysis.boards import cells_board, variants_board

    run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, dir=str(root),
                     id=study_run_id(str(cfg.wandb.project), study), resume="allow", group=study, job_type="study",
                     name=f"{study}/leaderboard", tags=[f"study:{study}"[:64], "leaderboard"],
                     reinit="finish_previous", settings=quiet_settings())
    try:
        cells = cells_board(report.table, report.metric).astype(str)
        variants = variants_board(report.table, report.metric).astype(str)
        run.log({
            "leaderboard": wandb.Table(dataframe=cells),
            "variants": wandb.Table(dataframe=variants),
            "tradeoff": wandb.Image(str(report.files["tradeoff"])),
            "speed": wandb.Image(str(report.files["speed"])),
        })
        run.summary.update({"cells": len(report.table), "metric": report.metric.name})
    finally:
        run.finish()


def quiet_settings() -> Any:
    """W&B without its console banner (about 30 lines a cell): the cell's own line says what ran."""
    import wandb

    return wandb.Settings(silent=True, quiet=True)


def log_to_wandb(cfg: DictConfig, metrics: CellMetrics, out_dir: Path) -> None:
    """The cell's run, then the study's leaderboard run; a W&B failure is a warning, never a lost cell."""
    try:
        if not metrics.get("skipped"):  # a finished cell found again was logged when it ran
            log_cell(cfg, metrics, out_dir)
        log_study(cfg, study_root(out_dir, str(cfg.get("study", "default"))))
    except Exception as exc:  # a logging outage must not cost the finished cell
        log.warning("W&B logging failed (%s); results are in %s", exc, out_dir)
