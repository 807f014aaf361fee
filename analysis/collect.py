"""Read finished cells (folders holding metrics.json) into one tidy table, one row per cell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


def _flatten(prefix: str, value: Any, row: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, row)
    elif not isinstance(value, list):
        row[prefix] = value


def collect(*roots: str | Path) -> pd.DataFrame:
    """Every cell under `roots`; nested dicts become dotted columns (metrics.f1, requested.rate)."""
    rows = []
    for root in roots:
        for path in sorted(Path(root).rglob("metrics.json")):
            row: dict[str, Any] = {"path": str(path.parent)}
            _flatten("", json.loads(path.read_text(encoding="utf-8")), row)
            rows.append(row)
    return pd.DataFrame(rows)


def budget_label(row: pd.Series) -> str:
    """The requested budget verbatim, e.g. 'rate=0.5' or 'threshold=0.1' ('' for none)."""
    for knob in ("rate", "target_tokens", "threshold"):
        value = row.get(f"requested.{knob}")
        if value is not None and not pd.isna(value):
            return f"{knob}={value:g}" if isinstance(value, float) else f"{knob}={value}"
    return ""
