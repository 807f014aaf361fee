"""Walking nested JSON-like values (dicts and lists), the one way settings and records are pruned."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def without_keys(value: Any, keys: Collection[str]) -> Any:
    """`value` with every dict entry whose key is in `keys` left out, at any depth."""
    if isinstance(value, dict):
        return {k: without_keys(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without_keys(v, keys) for v in value]
    return value
