"""Reading a cell's predictions.jsonl: every readable record, and what is wrong with the rest.

The runner (is a folder finished?) and the analysis tools (report, inspect, paired tests) read the
file the same way: a cut last line (a killed writer), a garbled line or a repeated id is named by
its line, never a traceback.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, cast

from pcbench.core.records import CellMetrics, ExampleRecord, schema_problem


def read_predictions(folder: Path) -> tuple[list[ExampleRecord], str | None]:
    """(the records that parse, None) or (those records, "FILE line N: why") at the first bad line."""
    path = folder / "predictions.jsonl"
    records: list[ExampleRecord] = []
    seen: set[Any] = set()
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    return records, f"{path} line {number} is cut or not JSON"
                if not isinstance(record, dict) or "id" not in record:
                    return records, f"{path} line {number} is not a record (an object with an id)"
                if record["id"] in seen:
                    return records, f"{path} line {number} repeats id {record['id']!r} (two runs wrote this folder)"
                seen.add(record["id"])
                records.append(cast(ExampleRecord, record))
    except FileNotFoundError:
        return [], f"{path} is missing"
    except (OSError, UnicodeDecodeError) as exc:
        return records, f"{path} is unreadable ({type(exc).__name__})"
    return records, None


def read_numbers(folder: Path) -> tuple[list[ExampleRecord], str | None]:
    """`read_predictions` less each record's compressed context (large; numbers never need it),
    memoised on the file's inode, size and modification time: a report checks each cell is complete and
    then computes its statistics from one parse. Each call hands out fresh dicts."""
    path = folder / "predictions.jsonl"
    try:
        stat = path.stat()
    except OSError:
        return read_predictions(folder)
    records, problem = _numbers(str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return [cast(ExampleRecord, dict(record)) for record in records], problem


@functools.lru_cache(maxsize=4096)
def _numbers(path: str, inode: int, mtime_ns: int, size: int) -> tuple[tuple[ExampleRecord, ...], str | None]:
    records, problem = read_predictions(Path(path).parent)
    for record in records:
        record.pop("context", None)
    return tuple(records), problem


def complete(folder: Path, expected: Any) -> str | None:
    """None when predictions.jsonl holds exactly `expected` readable records, else what is wrong."""
    records, problem = read_numbers(folder)
    if problem:
        return problem
    if len(records) != expected:
        return f"{folder / 'predictions.jsonl'} holds {len(records)} records, metrics.json counts {expected}"
    return None


# What a finished metrics.json holds, by key, as the readers of it rely on: a file of another shape
# (edited by hand, cut, written by something else) is left out with a note, never a traceback.
_MAPPINGS = ("identity", "environment", "compressor_info", "requested", "seconds", "cache_hits")


def read_metrics(folder: Path) -> tuple[CellMetrics | None, str | None]:
    """(metrics, None) for a readable metrics.json of the expected shape, else (None, what is wrong)."""
    path = folder / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{path} is missing"
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return None, f"{path} is unreadable ({type(exc).__name__})"
    problem = metrics_problem(metrics)
    return (None, f"{path}: {problem}") if problem else (cast(CellMetrics, metrics), None)


def metrics_problem(metrics: Any) -> str | None:
    """What is wrong with the shape of a metrics.json's content, or None."""
    if not isinstance(metrics, dict):
        return f"not an object but a {type(metrics).__name__}"
    newer = schema_problem(metrics)
    if newer:
        return newer
    if not isinstance(metrics.get("status", ""), str):
        return "status is not a string"
    n = metrics.get("n_examples", 0)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return f"n_examples is {n!r}, not a count"
    for key in _MAPPINGS:
        if key in metrics and metrics[key] is not None and not isinstance(metrics[key], dict):
            return f"{key} is a {type(metrics[key]).__name__}, not an object"
    identity = metrics.get("identity") or {}
    for key, value in identity.items():
        if key in ("task", "compressor", "reader", "variant", "git") and value is not None \
                and not isinstance(value, dict):
            return f"identity.{key} is a {type(value).__name__}, not an object"
    return None
