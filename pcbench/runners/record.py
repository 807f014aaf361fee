"""What a cell writes: one predictions.jsonl line per example and metrics.json at the end."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from pcbench.core.example import Example
from pcbench.core.files import write_atomically
from pcbench.core.records import SCHEMA, SURVIVAL, CellMetrics, Diagnostics, ExampleRecord, JudgeSummary
from pcbench.core.redact import redact_value
from pcbench.core.results import complete, read_metrics
from pcbench.runners.diagnostics import yes_no_only
from pcbench.tasks.base import Task

log = logging.getLogger(__name__)


def example_record(example: Example, compressed: dict[str, Any], generation: dict[str, Any] | None,
                   scores: dict[str, float | None] | None, diagnostics: Diagnostics) -> ExampleRecord:
    original, kept = compressed["original_tokens"], compressed["compressed_tokens"]
    record: ExampleRecord = {
        "id": example.id,
        "question": example.question,
        "gold": list(example.answers),
        "prediction": generation["text"] if generation else None,
        "scores": scores or {},
        "original_tokens": original,
        "compressed_tokens": kept,
        "kept_ratio": kept / original if original else 1.0,
        **diagnostics,
        "compress_seconds": compressed["seconds"],
        "compressor_extras": compressed.get("extras", {}),
        "cached": {"compress": compressed.get("cached", False)},
    }
    if generation:
        record["prompt_tokens"], record["new_tokens"] = generation["prompt_tokens"], generation["new_tokens"]
        record["truncated"] = generation["truncated"]
        record["prefill_seconds"] = generation["prefill_seconds"]
        record["generate_seconds"] = generation["decode_seconds"]
        if generation.get("kv_kept_ratio") is not None:  # KV-cache presses (reader=kvpress)
            record["kv_kept_ratio"] = generation["kv_kept_ratio"]
            # Generations cached before the memory fields: None, and the cell's kv_memory leaves them out.
            record["kv_cache_mib"] = generation.get("kv_cache_mib")
            record["kv_full_mib"] = generation.get("kv_full_mib")
            record["prefill_peak_mib"] = generation.get("prefill_peak_mib")
        record["cached"]["generate"] = generation.get("cached", False)
    if "dataset" in example.meta:  # suites (LongBench) score and resample per dataset
        record["dataset"] = example.meta["dataset"]
    return record


def _mean(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def kv_memory(records: list[ExampleRecord]) -> dict[str, float | None] | None:
    pairs = [(r.get("kv_cache_mib"), r.get("kv_full_mib")) for r in records]
    pressed = [(h, f) for h, f in pairs if h is not None and f is not None]
    if not pressed:
        return None
    held, full = sum(h for h, _ in pressed), sum(f for _, f in pressed)
    return {"cache_mib_mean": held / len(pressed), "full_cache_mib_mean": full / len(pressed),
            "cache_ratio": held / full if full else None,
            "prefill_peak_mib_mean": _mean([r.get("prefill_peak_mib") for r in records]),
            "prefill_peak_mib_max": max((p for r in records if (p := r.get("prefill_peak_mib")) is not None),
                                        default=None)}


def summarize(task: Task, rows: list[tuple[Example, ExampleRecord]], requested: dict[str, Any],
              cell: dict[str, str], wall_seconds: float, model_load_seconds: float = 0.0) -> dict[str, Any]:
    """Means over examples. Metrics and rates are percentages (x100, 2 decimals, as LongBench).

    kept_ratio is the mean of per-example ratios; kept_ratio_of_totals divides summed tokens.
    """
    records = [r for _, r in rows]
    n = len(records)
    scored = [r for r in records if r["scores"]]
    metric_names = sorted({m for r in scored for m in r["scores"]})
    original = sum(r["original_tokens"] for r in records)
    kept = sum(r["compressed_tokens"] for r in records)
    summary: dict[str, Any] = {
        "schema": SCHEMA,  # core/records.py: what the fields below and predictions.jsonl's mean
        **cell,
        "requested": requested,
        "n_examples": n,
        "metrics": {m: _pct(_mean([r["scores"][m] for r in scored if m in r["scores"]])) for m in metric_names},
        "kept_ratio": _mean([r["kept_ratio"] for r in records]),
        "kept_ratio_of_totals": kept / original if original else None,
        "compression_x": original / kept if kept else None,
        "char_ratio": _mean([r["char_ratio"] for r in records]),
        # The papers' units: the LLMLingua family reports GPT-3.5 (cl100k) tokens, of the context or of
        # the whole prompt (instruction and question included).
        "kept_ratio_cl100k": _mean([r.get("kept_ratio_cl100k") for r in records]),
        "prompt_ratio_cl100k": _mean([r.get("prompt_ratio_cl100k") for r in records]),
        "original_tokens_mean": original / n if n else None,
        "compressed_tokens_mean": kept / n if n else None,
        "empty_contexts": sum(r["compressed_tokens"] == 0 for r in records),
        "answer_in_context": _pct(_mean([r["answer_in_context"] for r in records])),
        # Examples left out of answer_in_context because their gold answers are only yes/no.
        "answer_in_context_yes_no": sum(yes_no_only(example) for example, _ in rows),
        "evidence_recall": _pct(_mean([r["evidence_recall"] for r in records])),
        # What survives (runners/diagnostics.py), means over the examples that have such facts.
        **{name: _pct(_mean([r.get(name) for r in records])) for name in SURVIVAL},
        "truncated": sum(bool(r.get("truncated")) for r in records),
        # Share of KV-cache entries kept by a press (reader=kvpress), beside the text kept ratio.
        "kv_kept_ratio": _mean([r.get("kv_kept_ratio") for r in records]),
        # What the press saves in memory, against what it keeps: the cache left after prefill over the
        # unpressed cache of the same tokens (sums), and the prefill's peak rise, per example.
        "kv_memory": kv_memory(records),
        "seconds": {
            "compress_mean": _mean([r["compress_seconds"] for r in records]),
            # Time this run spent compressing (cache hits cost nothing here; their records keep the
            # seconds measured when they were computed).
            "compress_total": sum(r["compress_seconds"] for r in records if not r["cached"]["compress"]),
            # Loading the compressor's models, kept out of the per-example seconds above.
            "model_load": model_load_seconds,
            "prefill_mean": _mean([r.get("prefill_seconds") for r in scored]),
            "generate_mean": _mean([r.get("generate_seconds") for r in scored]),
            "wall": wall_seconds,
        },
        "cache_hits": {
            "compress": sum(r["cached"]["compress"] for r in records),
            "generate": sum(r["cached"].get("generate", False) for r in records),
        },
    }
    summary.update(task.summarize(rows))
    summary["environment"] = environment()
    return summary


def judge_summary(records: list[ExampleRecord], protocol: str, reader: dict[str, Any]) -> JudgeSummary:
    """How the judge decided over a cell, and how often it agrees with `match` where it decided:
    the share of equal verdicts and Cohen's kappa (agreement beyond what the two rates give by chance)."""
    verdicts = [r["judge"] for r in records if "judge" in r]
    decided = [(v["verdict"] >= 0.5, v["match"] >= 0.5) for v in verdicts if v["verdict"] is not None]
    def side(right: bool) -> str:
        return "right" if right else "wrong"

    table = {f"judge_{side(j)}_match_{side(m)}": decided.count((j, m)) for j in (True, False) for m in (True, False)}
    n = len(decided)
    agreement = kappa = None
    if n:
        agreement = sum(j == m for j, m in decided) / n
        judge_yes, match_yes = sum(j for j, _ in decided) / n, sum(m for _, m in decided) / n
        chance = judge_yes * match_yes + (1 - judge_yes) * (1 - match_yes)
        kappa = (agreement - chance) / (1 - chance) if chance < 1 else None
    return {"protocol": protocol, "reader": reader, "judged": len(verdicts), "unknown": len(verdicts) - n,
            "agreement_with_match": agreement, "kappa": kappa, "table": table}


def environment() -> dict[str, str | None]:
    """Versions that can move a number, recorded beside it."""

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    packages = ("pcbench", "torch", "transformers", "sentence-transformers", "bm25s", "datasets")
    return {"python": platform.python_version(), **{p: version(p) for p in packages}, "hardware": hardware()}


def hardware() -> str:
    """The machine the seconds were measured on: CPU model and count, and the GPU if one is used."""
    cpu = platform.processor() or platform.machine()
    try:  # the model name, where Linux says it
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} CPUs"
    torch = sys.modules.get("torch")  # only when the cell used it: recording imports nothing heavy
    if torch is not None and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return text


class Recorder:
    """Appends records as they finish, so a killed run keeps what it had written.

    A cell is finished when its metrics.json exists with status "finished" and predictions.jsonl
    holds every record (`finished`); starting a cell removes any older metrics.json first, so a
    half-rerun folder is never taken as finished. At the end predictions.jsonl is rewritten in
    example order (records stream in as they finish: cache hits first, reads by prompt length),
    so two runs of one config give the same file up to timing fields; both it and metrics.json are
    replaced whole (a kill leaves the old file or the new one).
    """

    def __init__(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        (out_dir / "metrics.json").unlink(missing_ok=True)
        (out_dir / "error.txt").unlink(missing_ok=True)
        self.predictions = open(out_dir / "predictions.jsonl", "w", encoding="utf-8")

    def write(self, record: ExampleRecord) -> None:
        self.predictions.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.predictions.flush()

    def finish(self, metrics: dict[str, Any], records: list[ExampleRecord]) -> None:
        self.predictions.close()
        write_atomically(self.out_dir / "predictions.jsonl",
                         "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        write_json_atomically(self.out_dir / "metrics.json", redact_value(metrics))


def write_json_atomically(path: Path, value: Any) -> None:
    write_atomically(path, json.dumps(value, indent=2, ensure_ascii=False))


def finished(out_dir: Path, cell_key: str) -> CellMetrics | None:
    """The metrics of a finished cell in `out_dir` made from the same config and code, else None.

    Finished means metrics.json says so and predictions.jsonl holds one readable record for each of
    its examples: a folder whose records were cut, garbled or mixed with another run's is redone.
    """
    metrics, _ = read_metrics(out_dir)  # a damaged or foreign file: not finished, so the cell is redone
    if metrics is None or metrics.get("status") != "finished":
        return None
    if (metrics.get("identity") or {}).get("cell_key") != cell_key:
        return None
    return metrics if complete(out_dir, metrics.get("n_examples")) is None else None


@contextmanager
def cell_lock(out_dir: Path) -> Iterator[None]:
    """Hold the cell's folder for this process: a second process started on the same cell (a
    resubmitted array, the same command twice) waits here, says so, and then finds it finished."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): run unguarded
        yield
        return
    with open(out_dir / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.warning("another process is running this cell in %s; waiting for it to end", out_dir)
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("the other process is done with %s", out_dir)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
