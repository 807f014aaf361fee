"""Read cell folders into one tidy table: one row per cell identity.

A cell folder holds `metrics.json` (written atomically, `status: finished` once complete),
`predictions.jsonl` and `config.yaml`; a failed one holds `error.txt`. Rules, so that nothing is
counted twice and nothing half-done is counted at all:

- a folder without metrics.json, or whose status is not "finished" (a killed run, a
  `stage=compress` run, a failure), is skipped with a note;
- reruns of one config (same `identity.config_hash`) are one row: the newest finished;
- cells whose settings are identical although their configs differ are the same experiment and
  also one row; `compressor=none` at several rates is one experiment (none ignores the budget);
- a folder reached through two overlapping roots is read once.

Rows are labelled for grouping: `variant` is the compressor option plus its non-default knobs
other than the budget (`bm25 level=passage`), so a sweep over budgets draws one line per variant;
`task_label` and `reader_label` name the task and the reader the same way.

A KV press is a method, not another reader: under `reader=kvpress` the press joins the variant
(`kv:snapkv`, `bm25 + kv:snapkv`), its budget the budget column, and the reader is named by its
model alone, so text compressors and presses share a panel. Their kept axis is one: `kept_ratio`
is the share of the context's KV entries the reader attends to, the text compressor's kept tokens
times the press's kept entries of what it pressed (`text_kept_ratio` and `kv_kept_ratio` apart).
Soft compression is read the same way: under `reader=pisco` the variant gains `soft:pisco`, and its
`kv_kept_ratio` (memory embeddings over the documents' tokens) multiplies the text's kept ratio.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pcbench.core.knobs import CHANGE_NOTHING
from pcbench.core.records import CellMetrics
from pcbench.core.results import complete, read_metrics

# Knobs that change nothing (core.knobs), and the runner's chunk size: not what tells variants apart.
RUNTIME_KNOBS = CHANGE_NOTHING | {"compress_chunk"}
# Task knobs that name where data lives: shown by file name only, and only when they tell cells apart.
PATH_KNOBS = frozenset({"path", "haystack_dir"})


@dataclass
class Collected:
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _flatten(prefix: str, value: Any, row: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, row)
    elif not isinstance(value, list):
        row[prefix] = value


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_short(v) for v in value) + "]"
    return str(value)


def budget_knobs_of(metrics: CellMetrics) -> frozenset[str]:
    """The knobs that set a cell's budget, as its compressor declared them."""
    return frozenset((metrics.get("compressor_info") or {}).get("budget_knobs") or ())


def knob_label(option: str, knobs: dict[str, Any], skip: frozenset[str] = frozenset()) -> str:
    """`option k=v k2=v2` for the knobs not in `skip` (matched on the last dotted part), sorted."""
    parts = [option]
    for key in sorted(knobs):
        if key.rsplit(".", 1)[-1] in skip or key == "_target_":
            continue
        value = knobs[key]
        if isinstance(value, str) and (key.rsplit(".", 1)[-1] in PATH_KNOBS or _local_path(value)):
            value = Path(value).name
        parts.append(f"{key}={_short(value)}")
    return " ".join(parts)


def _local_path(value: str) -> bool:
    """A folder or file on this machine (`model=multirun/demo-probe`), named in labels by its last
    part; a hub id (`org/name`) that is not also a local path stays whole: it is the model's name."""
    if "/" not in value and "\\" not in value:
        return False
    try:
        return value.startswith(("/", "./", "../", "~")) or Path(value).expanduser().exists()
    except OSError:
        return False


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def cell_folders(*roots: str | Path) -> list[Path]:
    """Every folder under `roots` that looks like a cell (what a cell writes, finished or not)."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        for marker in ("metrics.json", "predictions.jsonl", "error.txt"):
            found.update(p.parent.resolve() for p in root.rglob(marker))
    # A study folder can hold an inspect/ or report/ folder of its own: those hold no predictions.
    return sorted(found)


def read_cell(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(row, None) for a finished cell, else (None, why it was skipped)."""
    error = folder / "error.txt"
    if error.exists():
        first = error.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return None, f"{folder}: failed ({first[0] if first else 'error.txt'})"
    path = folder / "metrics.json"
    if not path.exists():
        return None, f"{folder}: unfinished (no metrics.json)"
    metrics, problem = read_metrics(folder)
    if metrics is None:
        return None, f"{folder}: left out ({problem})"
    status = metrics.get("status")
    if status != "finished":
        why = "no status: written before cells recorded their identity; rerun it" if status is None else status
        return None, f"{folder}: unfinished ({why})"
    problem = complete(folder, metrics.get("n_examples"))
    if problem:  # a cut, garbled or missing predictions.jsonl: its numbers cannot be checked or paired
        return None, f"{folder}: left out ({problem})"
    identity = metrics.get("identity") or {}
    variant = identity.get("variant") or {}
    row: dict[str, Any] = {"path": str(folder), "mtime": path.stat().st_mtime}
    _flatten("", {k: v for k, v in metrics.items() if k not in ("identity", "environment", "status")}, row)
    row["config_hash"] = identity.get("config_hash")
    row["git_commit"] = (identity.get("git") or {}).get("commit")
    row["git_dirty"] = (identity.get("git") or {}).get("dirty")
    environment = metrics.get("environment") or {}
    row["hardware"] = environment.get("hardware")
    row["versions"] = ", ".join(f"{k} {v}" for k, v in environment.items() if k != "hardware" and v) or None
    # The experiment: what changes results (the components' settings). `none` accepts a budget so
    # that rate sweeps can include it, and ignores it: its cells at several rates are one experiment.
    # Each compressor declares its role and budget knobs (compressors/base.py), recorded in the cell.
    info = metrics.get("compressor_info") or {}
    budget_knobs = budget_knobs_of(metrics)
    compressor = dict(identity.get("compressor") or {})
    if not info.get("uses_budget", True):
        compressor = {k: v for k, v in compressor.items() if k not in budget_knobs}
    row["role"] = info.get("role", "method")
    row["result_key"] = _digest({"task": (metrics.get("task"), identity.get("task")),
                                 "compressor": (metrics.get("compressor"), compressor),
                                 "reader": (metrics.get("reader"), identity.get("reader")),
                                 # a judged cell is another result than the same cell unjudged
                                 **({"judge": identity["judge"]} if identity.get("judge") else {})})
    row["identity"] = json.dumps(identity, sort_keys=True, default=str)
    row["variant"] = knob_label(str(metrics.get("compressor")), variant.get("compressor") or {},
                                budget_knobs | RUNTIME_KNOBS)
    row["_task_knobs"] = variant.get("task") or {}
    row["_reader_knobs"] = variant.get("reader") or {}
    return row, None


# The kvpress reader's knobs that choose and budget its press: the method's, not the reader's.
PRESS_KNOBS = frozenset({"press", "compression_ratio", "threshold", "head_compression_ratio", "target_size",
                         "compression_interval", "key_channel_compression_ratio", "question_aware"})
# What sets a press's budget, first match: KVzap's threshold, DuoAttention's head ratio, a decoding
# press's target size, else the compression ratio.
PRESS_BUDGETS = ("threshold", "head_compression_ratio", "target_size", "compression_ratio")


def _press_as_method(row: dict[str, Any], settings: dict[str, Any]) -> None:
    """A kvpress cell's press (`settings`: its reader's) moved from the reader's label to the variant and
    budget, and its kept ratio made the product of the text's and the press's (see the module's docstring)."""
    row["_reader_knobs"] = {k: v for k, v in row["_reader_knobs"].items() if k not in PRESS_KNOBS}
    press = settings.get("press")
    if press in (None, "no_press"):
        return
    _reader_compression(row, f"kv:{press}" + (" question_aware" if settings.get("question_aware") else ""))
    knob = next(k for k in PRESS_BUDGETS if settings.get(k) is not None or k == "compression_ratio")
    press_budget = f"{knob}={_short(settings.get(knob))}"
    row["budget"] = f"{row['budget']} + {press_budget}" if row["budget"] else press_budget


def _soft_as_method(row: dict[str, Any], settings: dict[str, Any]) -> None:
    """A soft-context cell: its reader's compression joins the variant, and its embeddings over the
    tokens they stand for multiply the text's kept ratio (the axis a KV press shares)."""
    row["_reader_knobs"] = {k: v for k, v in row["_reader_knobs"].items() if k != "documents"}
    _reader_compression(row, "soft:pisco" + (" chunks" if settings.get("documents") == "chunks" else ""))


def _reader_compression(row: dict[str, Any], label: str) -> None:
    """A reader's own compression (a press, soft context) as part of the method: `label` joins the
    variant, and the share of entries the reader kept multiplies the text's kept ratio."""
    row["variant"] = label if row["variant"] == "none" else f"{row['variant']} + {label}"
    row["role"] = "method"
    kv = row.get("kv_kept_ratio")
    if kv is not None and not pd.isna(kv) and row.get("kept_ratio") is not None:
        row["kept_ratio"] = float(row["kept_ratio"]) * float(kv)


def _reader_label(option: str, knobs: dict[str, Any]) -> str:
    knobs = {k: v for k, v in knobs.items() if k not in RUNTIME_KNOBS}
    model = knobs.pop("model", None)
    if isinstance(model, str):  # a hub id or a folder: its last part names the model
        # kvpress's reader keeps its name: its full-context answers are not the transformers reader's
        name = model.rstrip("/").rsplit("/", 1)[-1]
        option = f"{name} (kvpress)" if option == "kvpress" else name
    return knob_label(option, knobs)


def _task_labels(rows: list[dict[str, Any]]) -> None:
    """task + the non-default task knobs that differ between the cells of that task (a knob all
    cells share, e.g. one limit, tells nothing apart and would clutter every title)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_task.setdefault(str(row.get("task")), []).append(row)
    for task, group in by_task.items():
        keys = sorted({k for r in group for k in r["_task_knobs"]})
        varying = [k for k in keys if len({_short(r["_task_knobs"].get(k)) for r in group}) > 1]
        for row in group:
            row["task_label"] = knob_label(task, {k: row["_task_knobs"].get(k) for k in varying})


def _newest(rows: list[dict[str, Any]], key: str, what: str, notes: list[str]) -> list[dict[str, Any]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[key] if row[key] is not None else row["path"], []).append(row)
    kept = []
    for group in groups.values():
        group.sort(key=lambda r: r["mtime"], reverse=True)
        kept.append(group[0])
        if len(group) > 1:
            dropped = ", ".join(r["path"] for r in group[1:])
            notes.append(f"{len(group)} cells are {what}: kept the newest {group[0]['path']}; left out {dropped}")
    return kept


def collect_cells(*roots: str | Path) -> Collected:
    """Finished cells under `roots`, one row per identity, with notes on what was left out."""
    notes: list[str] = []
    rows = []
    for folder in cell_folders(*roots):
        row, note = read_cell(folder)
        if row is None:
            notes.append(str(note))
        else:
            rows.append(row)
    rows = _newest(rows, "config_hash", "reruns of one config", notes)
    rows = _newest(rows, "result_key", "one experiment (identical settings)", notes)
    _task_labels(rows)
    for row in rows:
        row["budget"] = budget_label(row)
        row["text_kept_ratio"] = row.get("kept_ratio")
        reader = json.loads(row["identity"]).get("reader") or {}
        kvpress = reader.get("reader") == "kvpress"
        if kvpress:
            _press_as_method(row, reader)
        elif reader.get("reader") == "pisco":
            _soft_as_method(row, reader)
        row["reader_label"] = _reader_label("kvpress" if kvpress else str(row.get("reader")), row.pop("_reader_knobs"))
        row.pop("_task_knobs")
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["task_label", "reader_label", "variant", "kept_ratio"]).reset_index(drop=True)
    return Collected(table, notes)


def collect(*roots: str | Path) -> pd.DataFrame:
    """Every finished cell under `roots`; nested dicts become dotted columns (metrics.f1, requested.rate)."""
    return collect_cells(*roots).table


def budget_label(row: pd.Series | dict[str, Any]) -> str:
    """The requested budget verbatim, e.g. 'rate=0.5' or 'threshold=0.1' ('' for none)."""
    for knob in ("rate", "target_tokens", "threshold", "reduce_ratio"):
        value = row.get(f"requested.{knob}")
        if value is not None and not pd.isna(value):
            return f"{knob}={value:g}" if isinstance(value, float) else f"{knob}={value}"
    return ""


def parquet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Columns pyarrow can store: an object column mixing types (a knob that is a number in one
    compressor and a string in another) becomes strings, None kept."""
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column] if v is not None and not (isinstance(v, float) and pd.isna(v))}
            if not (len(kinds) <= 1 and kinds <= {str, bool, int, float} or kinds <= {int, float}):
                out[column] = [None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
                               for v in out[column]]
    return out
