"""The content-addressed cache: keys cover every knob, writes are atomic, processes can share it."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

from runners.cache import _MEMORY, Cache, digest


def test_key_changes_with_any_knob_and_not_with_dict_order() -> None:
    a = {"stage": "compressed", "compressor": {"rate": 0.5, "model": "m"}, "example": "x"}
    b = {"example": "x", "compressor": {"model": "m", "rate": 0.5}, "stage": "compressed"}
    assert digest(a) == digest(b)
    assert digest(a) != digest({**a, "compressor": {"rate": 0.5, "model": "other"}})


def test_fetch_computes_once_then_reads(tmp_path: Path) -> None:
    cache, calls = Cache(tmp_path), []
    key = {"stage": "scores", "x": 1}
    for _ in range(3):
        assert cache.fetch(key, lambda: calls.append(1) or [1.0, 2.0]) == [1.0, 2.0]
    assert len(calls) == 1 and cache.hits == 2 and cache.misses == 1
    # A second Cache on the same folder (another run) sees the entry.
    assert Cache(tmp_path).get("scores", digest(key)) == [1.0, 2.0]


def test_torn_or_corrupt_entry_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.put("generation", "ab" * 32, {"text": "ok"})
    path = next(tmp_path.rglob("*.json"))
    path.write_text('{"key": "abab", "value": {"te')  # as if a writer died mid-file
    _MEMORY.clear()  # read from disk, as another process would
    assert cache.get("generation", "ab" * 32) is None
    assert not list(tmp_path.rglob(".tmp-*")), "no temporary files left behind"


def test_disabled_cache_stores_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path, enabled=False)
    cache.put("s", "k" * 64, 1)
    assert cache.get("s", "k" * 64) is None and not any(tmp_path.iterdir())


def _writer(root: str, worker: int) -> None:
    cache = Cache(root)
    for i in range(200):
        cache.put("shared", digest(i), {"value": i, "payload": "x" * 2000})


def test_two_processes_sharing_a_cache_never_corrupt_it(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    cache = Cache(tmp_path)
    for i in range(200):
        assert cache.get("shared", digest(i)) == {"value": i, "payload": "x" * 2000}
    for path in tmp_path.rglob("*.json"):
        json.loads(path.read_text())  # every file is whole
