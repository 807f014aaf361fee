"""The content-addressed cache: keys cover every knob, writes are atomic, processes can share it."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path

import pytest

from pcbench.apps.cache import main as cache_cli
from pcbench.apps.cache import prune
from pcbench.core.errors import PcbenchError
from pcbench.core.notices import SAID
from pcbench.runners.cache import _MEMORY, FORMAT, SWEEP_MARKER, Cache, CacheKeyError, digest


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


# -- entries carry their key; format versions; unreadable entries ------------------------------


def test_entry_stores_its_key_and_format_beside_the_value(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = {"stage": "scores", "scorer": {"class": "pcbench.compressors.bm25.BM25Compressor"}, "units": ["a"]}
    cache.fetch(key, lambda: [0.5])
    (path,) = tmp_path.rglob("*.json")
    assert path.stem == digest(key) and path.parent.parent.name == "scores"
    assert json.loads(path.read_text()) == {"format": FORMAT, "key": key, "value": [0.5], "checksum": digest([0.5])}


def test_fetch_many_computes_the_misses_once_in_order(tmp_path: Path) -> None:
    cache, calls = Cache(tmp_path), []
    keys = [{"stage": "scores", "i": i} for i in range(5)]
    cache.fetch(keys[1], lambda: "one")
    cache.fetch(keys[3], lambda: "three")

    def compute(missing: list[int]) -> list[str]:
        calls.append(missing)
        return [f"v{i}" for i in missing]

    assert cache.fetch_many(keys, compute) == ["v0", "one", "v2", "three", "v4"]
    assert calls == [[0, 2, 4]]
    assert cache.fetch_many(keys, compute) == ["v0", "one", "v2", "three", "v4"]
    assert calls == [[0, 2, 4]], "no second call: everything was cached"
    assert cache.fetch_many([], compute) == [] and len(calls) == 1
    _MEMORY.clear()
    assert Cache(tmp_path).fetch_many(keys, compute) == ["v0", "one", "v2", "three", "v4"]  # from disk


def test_a_cached_none_is_a_hit(tmp_path: Path) -> None:
    cache, calls = Cache(tmp_path), []
    for _ in range(2):
        assert cache.fetch({"stage": "s"}, lambda: calls.append(1)) is None
    assert len(calls) == 1


def test_newer_format_is_a_miss_said_once_and_never_overwritten(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(tmp_path)
    keys = [{"stage": "scores", "i": i} for i in range(2)]
    newer = {"format": FORMAT + 1, "key": None, "value": "from the future"}
    paths = []
    for key in keys:
        path = tmp_path / "scores" / digest(key)[:2] / f"{digest(key)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(newer))
        paths.append(path)
    SAID.clear()
    with caplog.at_level(logging.WARNING):
        assert [cache.fetch(k, lambda: "recomputed") for k in keys] == ["recomputed", "recomputed"]
    assert caplog.text.count("newer pcbench") == 1
    assert all(json.loads(p.read_text()) == newer for p in paths), "left in place for the newer code"


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"[1, 2]", b'{"key": "x"}', b'{"format": "2", "value": 1}'])
def test_unreadable_entry_is_a_miss_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                 content: bytes) -> None:
    cache = Cache(tmp_path)
    for name in ("ab" * 32, "ac" * 32):
        path = tmp_path / "scores" / name[:2] / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    SAID.clear()
    _MEMORY.clear()
    with caplog.at_level(logging.WARNING):
        assert cache.get("scores", "ab" * 32) is None and cache.get("scores", "ac" * 32) is None
    assert len([r for r in caplog.records if "cache entry" in r.getMessage()]) == 1
    cache.put("scores", "ab" * 32, 7)  # recomputed values replace the broken entry
    _MEMORY.clear()
    assert cache.get("scores", "ab" * 32) == 7


def test_format_one_entries_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "scores" / "ab" / f"{'ab' * 32}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"key": "ab" * 32, "value": [1.0]}))
    _MEMORY.clear()
    assert Cache(tmp_path).get("scores", "ab" * 32) == [1.0]


class Opaque:
    pass


@pytest.mark.parametrize("bad", [Opaque(), {1, 2}, b"bytes"])
def test_keys_json_cannot_represent_are_refused(bad: object) -> None:
    with pytest.raises(CacheKeyError, match=r"cache key holds a \w+ at key\['compressor'\]\['model'\]"):
        digest({"stage": "s", "compressor": {"model": bad}})


def test_cache_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    file = tmp_path / "cache"
    file.write_text("not a folder")
    with pytest.raises(PcbenchError, match=f"cache_dir={file} is a file, not a folder"):
        Cache(file)


# -- pcbench-cache ----------------------------------------------------------------------


def filled(root: Path) -> dict[str, dict]:
    cache = Cache(root)
    keys = {
        "bm25": {"stage": "scores", "scorer": {"class": "pcbench.compressors.bm25.BM25Compressor", "k1": 1.5}, "x": 1},
        "random": {"stage": "compressed", "compressor": {"class": "pcbench.compressors.random_drop.RandomDrop"},
                   "x": 2},
        "chain": {"stage": "compressed", "compressor": {"class": "pcbench.compressors.chain.Chain", "steps": [
            {"class": "pcbench.compressors.bm25.BM25Compressor"}]}, "x": 3},
        "tokens": {"stage": "tokens", "tokenizer": "smollm2", "texts": ["a b"]},
    }
    for name, key in keys.items():
        cache.fetch(key, lambda name=name: {"made": name})
    # Opening a cache sweeps stale temporaries in a thread; wait for it, so that files a test makes
    # afterwards are there for the test's own prune, whatever the thread's timing.
    for thread in threading.enumerate():
        if thread.name == "pcbench-cache-temporaries":
            thread.join()
    return keys


def test_cli_stats_counts_entries_and_bytes_per_kind(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    filled(tmp_path)
    assert cache_cli(["--root", str(tmp_path), "stats"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:-1]}
    assert rows == {"compressed": "2", "scores": "1", "tokens": "1", "total": "4"}


def test_cli_show_prints_the_stored_key_and_value(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    keys = filled(tmp_path)
    hashed = digest(keys["bm25"])
    assert cache_cli(["--root", str(tmp_path), "show", hashed[:10]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["hash"] == hashed and shown["kind"] == "scores"
    assert shown["key"] == keys["bm25"] and shown["value"] == {"made": "bm25"}
    assert cache_cli(["--root", str(tmp_path), "show", "0000"]) == 2
    assert "no cache entry '0000'" in capsys.readouterr().err
    assert cache_cli(["--root", str(tmp_path), "show", "xyz"]) == 2


@pytest.mark.parametrize(("name", "left"), [("bm25", {"random", "tokens"}), ("random", {"bm25", "chain", "tokens"}),
                                            ("RandomDrop", {"bm25", "chain", "tokens"}), ("nope", None)])
def test_cli_prune_by_compressor_matches_option_class_or_module(tmp_path: Path, name: str, left: set | None) -> None:
    keys = filled(tmp_path)
    # An unknown name is refused (it used to say "deleted 0", as if nothing had matched).
    assert cache_cli(["--root", str(tmp_path), "prune", "--compressor", name]) == (2 if left is None else 0)
    remaining = {p.stem for p in tmp_path.rglob("*.json")}
    expected = set(keys) if left is None else left
    assert remaining == {digest(keys[n]) for n in expected}


def test_cli_prune_by_age_and_kind(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    keys = filled(tmp_path)
    old = tmp_path / "tokens" / digest(keys["tokens"])[:2] / f"{digest(keys['tokens'])}.json"
    os.utime(old, (time.time() - 40 * 86400,) * 2)
    assert cache_cli(["--root", str(tmp_path), "prune", "--older-than", "30", "--dry-run"]) == 0
    assert "would delete 1 entries" in capsys.readouterr().out and old.exists()
    assert cache_cli(["--root", str(tmp_path), "prune", "--older-than", "30"]) == 0
    assert not old.exists() and len(list(tmp_path.rglob("*.json"))) == 3
    assert cache_cli(["--root", str(tmp_path), "prune", "--kind", "compressed"]) == 0
    assert {p.parent.parent.name for p in tmp_path.rglob("*.json")} == {"scores"}
    assert cache_cli(["--root", str(tmp_path), "prune"]) == 0  # no filter: no entry goes
    assert "deleted 0 entries" in capsys.readouterr().out and len(list(tmp_path.rglob("*.json"))) == 1


def _keep_writing(root: str, stop: float) -> None:
    cache, i = Cache(root), 0
    while time.time() < stop:
        cache.put("compressed", digest(i), {"text": "x" * 5000, "i": i},
                  {"stage": "compressed", "compressor": {"class": "pcbench.compressors.bm25.BM25Compressor"}, "i": i})
        i += 1


def test_prune_is_safe_while_another_process_writes(tmp_path: Path) -> None:
    Cache(tmp_path)  # the folder is a cache (tagged) before the writer starts
    ctx = mp.get_context("fork")
    writer = ctx.Process(target=_keep_writing, args=(str(tmp_path), time.time() + 1.5))
    writer.start()
    deleted = 0
    while writer.is_alive():
        deleted += prune(tmp_path, compressor="bm25")["deleted"]
    writer.join()
    assert writer.exitcode == 0 and deleted > 0
    for path in tmp_path.rglob("*.json"):
        json.loads(path.read_text())  # whatever is left is whole


# -- temporary files left by killed writers ------------------------------------------------------


def _temporary(folder: Path, name: str, age_seconds: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text('{"format": 2, "key": nul')  # cut short, as a killed writer leaves it
    os.utime(path, (time.time() - age_seconds,) * 2)
    return path


def test_prune_removes_stale_temporaries_and_leaves_live_ones(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, runs = tmp_path / "cache", tmp_path / "multirun"
    keys = filled(root)
    stale = _temporary(root / "scores" / "ab", ".tmp-dead.json", 2 * 3600)
    live = _temporary(root / "scores" / "ab", ".tmp-live.json", 60)  # a writer that is still running
    cell = runs / "study" / "niah" / "bm25" / "compressor=bm25"
    stale_metrics = _temporary(cell, ".metrics.json.x1.tmp", 2 * 3600)
    live_metrics = _temporary(cell, ".metrics.json.x2.tmp", 60)
    assert cache_cli(["--root", str(root), "prune", "--runs", str(runs), "--dry-run"]) == 0
    assert "would delete 1 stale temporary files (older than an hour) and 1 under" in capsys.readouterr().out
    assert stale.exists() and stale_metrics.exists()
    assert cache_cli(["--root", str(root), "prune", "--runs", str(runs)]) == 0
    assert not stale.exists() and not stale_metrics.exists()
    assert live.exists() and live_metrics.exists()
    assert {p.stem for p in root.rglob("*.json") if not p.name.startswith(".")} == {digest(k) for k in keys.values()}


def test_opening_a_cache_removes_stale_temporaries_at_most_hourly(tmp_path: Path) -> None:
    stale = _temporary(tmp_path / "compressed" / "0f", ".tmp-dead.json", 2 * 3600)
    live = _temporary(tmp_path / "compressed" / "0f", ".tmp-live.json", 10)
    Cache(tmp_path)
    for thread in threading.enumerate():  # the walk runs beside the caller; wait for it here
        if thread.name == "pcbench-cache-temporaries":
            thread.join(timeout=30)
    assert not stale.exists() and live.exists() and (tmp_path / SWEEP_MARKER).exists()
    again = _temporary(tmp_path / "compressed" / "0f", ".tmp-dead2.json", 2 * 3600)
    Cache(tmp_path)  # within the hour: no second walk
    assert not any(t.name == "pcbench-cache-temporaries" for t in threading.enumerate()) and again.exists()


# -- entries are checked, not trusted: key against the file's name, value against its checksum ----


def compressed_value(text: str) -> dict[str, object]:
    return {"text": text, "extras": {}, "seconds": 0.1, "original_tokens": 10, "compressed_tokens": 3}


def fresh(tmp_path: Path) -> Cache:
    _MEMORY.clear()  # read from disk, as another process would
    SAID.clear()
    return Cache(tmp_path)


def test_swapped_entries_are_misses_said_once_and_rewritten(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = fresh(tmp_path)
    keys = [{"stage": "compressed", "example": name} for name in ("a", "b")]
    for key, text in zip(keys, ("context of a", "context of b")):
        cache.put("compressed", digest(key), compressed_value(text), key)
    a, b = (tmp_path / "compressed" / digest(k)[:2] / f"{digest(k)}.json" for k in keys)
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    cache = fresh(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert cache.get("compressed", digest(keys[0])) is None
        assert cache.get("compressed", digest(keys[1])) is None
    said = [r.getMessage() for r in caplog.records if "another key" in r.getMessage()]
    assert len(said) == 1, said  # once per process
    values = cache.fetch_many(keys, lambda missing: [compressed_value(f"recomputed {i}") for i in missing])
    assert [v["text"] for v in values] == ["recomputed 0", "recomputed 1"]
    assert fresh(tmp_path).get("compressed", digest(keys[0]))["text"] == "recomputed 0"  # rewritten, now trusted


def test_an_edited_value_is_a_miss(tmp_path: Path) -> None:
    cache = fresh(tmp_path)
    key = {"stage": "tokens", "tokenizer": "t", "texts": ["one two three", "four five"]}
    cache.put("tokens", digest(key), [3, 2], key)
    path = tmp_path / "tokens" / digest(key)[:2] / f"{digest(key)}.json"
    entry = json.loads(path.read_text())
    entry["value"] = [1, 1]  # every text one token: budgets would keep nothing
    path.write_text(json.dumps(entry))
    assert fresh(tmp_path).get("tokens", digest(key)) is None


@pytest.mark.parametrize(("stage", "key", "value"), [
    ("compressed", {"stage": "compressed", "example": "a"}, {"text": 3}),
    ("compressed", {"stage": "compressed", "example": "a"}, ["not", "a", "record"]),
    ("generation", {"stage": "generation", "request": "r"}, {"text": "x", "prompt_tokens": "many"}),
    ("scores", {"stage": "scores", "units": ["a", "b", "c"]}, [0.1, 0.2]),
    ("tokens", {"stage": "tokens", "texts": ["a b"]}, [-1]),
])
def test_a_value_of_the_wrong_shape_is_a_miss(tmp_path: Path, stage: str, key: dict, value: object) -> None:
    path = tmp_path / stage / digest(key)[:2] / f"{digest(key)}.json"
    path.parent.mkdir(parents=True)
    # Written without a checksum (as format-2 entries before checksums were): only the shape can tell.
    path.write_text(json.dumps({"format": FORMAT, "key": key, "value": value}))
    assert fresh(tmp_path).get(stage, digest(key)) is None


def test_credentials_in_a_stored_key_are_masked_and_the_entry_still_reads(tmp_path: Path) -> None:
    cache = fresh(tmp_path)
    key = {"stage": "generation", "reader": {"url": "http://user:s3cret@host:8000/v1"}, "request": "r"}
    value = {"text": "Ann", "prompt_tokens": 5, "new_tokens": 1}
    cache.put("generation", digest(key), value, key)
    (path,) = (tmp_path / "generation").rglob("*.json")
    assert "s3cret" not in path.read_text() and "http://***@host:8000/v1" in path.read_text()
    assert fresh(tmp_path).get("generation", digest(key)) == value


def test_entries_are_created_with_the_users_umask(tmp_path: Path) -> None:
    from pcbench.core.files import FILE_MODE

    cache = fresh(tmp_path)
    cache.put("scores", digest({"k": 1}), [1.0], {"k": 1})
    (path,) = (tmp_path / "scores").rglob("*.json")
    assert path.stat().st_mode & 0o777 == FILE_MODE
    # A group-shared cache (umask 002): entries group-writable and readable (mkstemp alone gives 0600).
    script = ("import sys; from pathlib import Path; from pcbench.runners.cache import Cache, digest; "
              "Cache(sys.argv[1]).put('scores', digest({'k': 2}), [1.0], {'k': 2})")
    import subprocess
    import sys

    subprocess.run(["sh", "-c", 'umask 002 && "$0" -c "$1" "$2"', sys.executable, script, str(tmp_path / "shared")],
                   check=True)
    (shared,) = (tmp_path / "shared" / "scores").rglob("*.json")
    assert shared.stat().st_mode & 0o777 == 0o664


# -- a cache proves it is one before anything under it is deleted -----------------------------------


def test_prune_refuses_a_folder_that_is_not_a_cache_and_deletes_nothing(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    project = tmp_path / "project"
    package = project / "web" / "app" / "package.json"
    package.parent.mkdir(parents=True)
    package.write_text("{}")
    stale = project / "web" / "app" / ".tmp-build.json"
    stale.write_text("{}")
    os.utime(package, (time.time() - 90 * 86400,) * 2)
    os.utime(stale, (time.time() - 2 * 3600,) * 2)
    for argv in (["prune", "--older-than", "0"], ["prune"], ["prune", "--stage", "web"]):
        assert cache_cli(["--root", str(project), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is not a pcbench cache (no CACHEDIR.TAG" in err[0], err
    with pytest.raises(PcbenchError, match="not a pcbench cache"):
        prune(project, older_than_days=0)
    assert package.exists() and stale.exists()


def test_inside_a_cache_only_entry_files_are_entries(tmp_path: Path) -> None:
    keys = filled(tmp_path)
    assert (tmp_path / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    foreign = tmp_path / "scores" / "ab" / "package.json"
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_text("{}")
    os.utime(foreign, (time.time() - 90 * 86400,) * 2)
    assert cache_cli(["--root", str(tmp_path), "prune", "--older-than", "0"]) == 0
    assert foreign.exists() and not any(tmp_path.rglob(f"{digest(keys['bm25'])}.json"))
