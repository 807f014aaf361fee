"""A content-addressed on-disk cache shared by runs, sweeps and processes.

Every entry is keyed by a SHA-256 of everything that can change it (full compressor or reader
settings, example content, tokenizer), so a changed knob can never reuse a stale entry. Writes go
to a temporary file that is renamed into place: a killed run leaves either a whole entry or none,
and two processes writing the same entry both write identical bytes, so the rename is harmless.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Entries read or written in this process, so a local sweep (cells run one after another in one
# process) does not re-read the same scores from disk for every rate. Bounded, least recent out.
_MEMORY: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_MEMORY_SIZE = 50_000


def digest(parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Cache:
    def __init__(self, root: str | Path, enabled: bool = True) -> None:
        self.root = Path(root)
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def _path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / f"{key}.json"

    def get(self, stage: str, key: str) -> Any | None:
        if not self.enabled:
            return None
        slot = (str(self.root), stage, key)
        if slot in _MEMORY:
            _MEMORY.move_to_end(slot)
            return _MEMORY[slot]
        try:
            with open(self._path(stage, key), encoding="utf-8") as f:
                value = json.load(f)["value"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None  # absent, or unreadable: recompute and overwrite
        self._remember(slot, value)
        return value

    @staticmethod
    def _remember(slot: tuple[str, str, str], value: Any) -> None:
        _MEMORY[slot] = value
        if len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.popitem(last=False)

    def put(self, stage: str, key: str, value: Any) -> None:
        if not self.enabled:
            return
        path = self._path(stage, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"key": key, "value": value}, f, ensure_ascii=False)
            os.replace(tmp, path)
            self._remember((str(self.root), stage, key), value)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def fetch(self, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """The cached value for `key` (a dict with a "stage" entry), computing it on a miss."""
        stage = str(key.get("stage", "misc"))
        hashed = digest(key)
        value = self.get(stage, hashed)
        if value is not None:
            self.hits += 1
            return value
        self.misses += 1
        value = compute()
        self.put(stage, hashed, value)
        return value
