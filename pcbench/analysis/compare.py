"""Do two runs of one cell agree? `pcbench-compare RUN_A RUN_B` (or `python -m pcbench.analysis.compare`).

Compares metrics.json and predictions.jsonl record by record (records are written in example order,
so a rerun of one config gives the same file), leaving out what measures the run rather than the
method: timings, peak memory, cache hits, model loading, the environment and the working folder. Exit 0 when
the rest is equal, 1 with the first differences listed, 2 for a folder that is not a finished cell.

    pcbench-compare multirun/a/hotpotqa/bm25/compressor.rate=0.5 /scratch/rerun/hotpotqa/bm25/compressor.rate=0.5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pcbench.core.nested import without_keys
from pcbench.core.records import CellMetrics, ExampleRecord
from pcbench.core.results import read_predictions

# Keys whose values measure the run (wall clock, memory, cache state, where it ran), never the method.
TIMING_KEYS = frozenset({
    "seconds", "compress_seconds", "prefill_seconds", "generate_seconds", "decode_seconds", "batch_examples",
    "cached", "cache_hits", "environment", "cwd", "git", "skipped", "memory", "energy",
})


def comparable(value: Any) -> Any:
    """`value` without its timing keys, at any depth."""
    return without_keys(value, TIMING_KEYS)


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two JSON values differ, as `path: A != B` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                out.append(f"{where}{key}: only in {'B' if key not in a else 'A'}")
            else:
                out += differences(a[key], b[key], f"{where}{key}.")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [line for i, (x, y) in enumerate(zip(a, b)) for line in differences(x, y, f"{where}{i}.")]
    return [] if a == b else [f"{where.rstrip('.')}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}"]


def load(run: Path) -> tuple[CellMetrics, list[ExampleRecord]]:
    try:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{run} has no readable metrics.json ({type(exc).__name__})") from None
    records, problem = read_predictions(run)
    if problem:
        raise ValueError(problem)
    return metrics, records


def compare(a: Path, b: Path) -> list[str]:
    (metrics_a, records_a), (metrics_b, records_b) = load(a), load(b)
    found = [f"metrics.{line}" for line in differences(comparable(metrics_a), comparable(metrics_b))]
    if [r["id"] for r in records_a] != [r["id"] for r in records_b]:
        found.append("predictions: the records' ids or their order differ")
    else:
        for ra, rb in zip(records_a, records_b):
            found += [f"predictions[{ra['id']}].{line}" for line in differences(comparable(ra), comparable(rb))]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcbench-compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="a cell folder")
    parser.add_argument("b", type=Path, help="another cell folder")
    parser.add_argument("--show", type=int, default=20, help="differences listed at most")
    args = parser.parse_args(argv)
    try:
        found = compare(args.a, args.b)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ignored = ", ".join(sorted(TIMING_KEYS))
    if not found:
        print(f"same results (ignoring {ignored})")
        return 0
    for line in found[: args.show]:
        print(line)
    print(f"{len(found)} differences (ignoring {ignored})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
