"""Reading a cell's predictions.jsonl: every readable record, and what is wrong with the rest.

The runner (is a folder finished?) and the analysis tools (report, inspect, paired tests) read the
file the same way: a cut last line (a killed writer), a garbled line or a repeated id is named by
its line, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_predictions(folder: Path) -> tuple[list[dict[str, Any]], str | None]:
    """(the records that parse, None) or (those records, "FILE line N: why") at the first bad line."""
    path = folder / "predictions.jsonl"
    records: list[dict[str, Any]] = []
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
                records.append(record)
    except FileNotFoundError:
        return [], f"{path} is missing"
    except (OSError, UnicodeDecodeError) as exc:
        return records, f"{path} is unreadable ({type(exc).__name__})"
    return records, None


def complete(folder: Path, expected: Any) -> str | None:
    """None when predictions.jsonl holds exactly `expected` readable records, else what is wrong."""
    records, problem = read_predictions(folder)
    if problem:
        return problem
    if len(records) != expected:
        return f"{folder / 'predictions.jsonl'} holds {len(records)} records, metrics.json counts {expected}"
    return None
