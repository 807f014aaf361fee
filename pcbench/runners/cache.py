"""A content-addressed on-disk cache shared by runs, sweeps and processes.

Every entry is keyed by a SHA-256 of everything that can change it (full compressor or reader
settings, example content, tokenizer), so a changed knob can never reuse a stale entry. Each file
holds `{"format": N, "key": <the key dict>, "value": ...}`: the key it was made from sits beside
the value, so `pcbench-cache show HASH` says what an entry is and `prune --compressor`
can find a method's entries.

Writes go to a temporary file that is renamed into place: a killed run leaves either a whole entry
or none, and two processes writing the same entry both write identical bytes, so the rename is
harmless. Deletes (prune) are single unlinks: a reader sees the whole file or no file.

An entry is a miss, never a crash, when it is unreadable (not UTF-8, not JSON, wrong shape: one
warning per process) or was written by a newer format (one warning; it is left in place for the
newer code and never overwritten by this one).

    pcbench-cache stats                   # entries and bytes per stage
    pcbench-cache prune --older-than 30   # also --compressor bm25, --stage scores, --dry-run
    pcbench-cache prune --runs multirun   # no filter: only killed writers' temporary files

Temporary files (`.tmp-*`) older than an hour are leftovers of killed writers: every `prune`
removes them (`--runs FOLDER` also the cell folders' `.metrics.json.*.tmp`), and opening a cache
does so in the background at most once an hour.
    pcbench-cache show 3fa2...            # the stored key and value of a hash (or a prefix)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pcbench.conf import CONF_DIR
from pcbench.core.errors import PcbenchError
from pcbench.core.files import temporary_beside
from pcbench.core.notices import warn_once
from pcbench.core.redact import redact_value

log = logging.getLogger(__name__)

# Bump when the entry layout or the meaning of a stored value changes. Code of format N reads
# entries of format <= N (format 1 had no "format" field and the hash as "key") and leaves newer
# ones alone.
FORMAT = 2

# Entries read or written in this process, so a local sweep (cells run one after another in one
# process) does not re-read the same scores from disk for every rate. Bounded, least recent out.
_MEMORY: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_MEMORY_SIZE = 50_000
_MISS = object()
# A temporary file this old was left by a killed writer: live writers rename theirs within
# seconds (one JSON entry), so an hour leaves a wide margin on slow shared file systems.
STALE_SECONDS = 3600
# How often a cache open may look for such leftovers: at most once an hour per cache, across
# every process sharing it (a marker file's mtime says when it last happened).
SWEEP_MARKER = ".last-temporary-sweep"
# What proves a folder is a cache before anything under it is deleted: the Cache Directory Tagging
# convention's file (backup tools skip such folders too), written when a cache is first opened.
CACHE_TAG = "CACHEDIR.TAG"
TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
ENTRY_NAME = re.compile(r"^([0-9a-f]{2})[0-9a-f]{62}\.json$")


class CacheKeyError(TypeError):
    """A cache key holding something JSON cannot represent (its repr would change run to run)."""


def default_root() -> Path:
    """Where the cache lives unless `cache_dir=` says otherwise (conf/config.yaml's rule)."""
    return Path(os.environ.get("PCBENCH_CACHE") or Path.home() / ".cache" / "pcbench")


def digest(parts: Any) -> str:
    """SHA-256 of the canonical JSON of `parts`; CacheKeyError for anything JSON cannot hold.

    `default=str` used to turn such objects into reprs with memory addresses: a different key in
    every process, so silent misses. Refusing names the culprit instead.
    """
    try:
        blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, allow_nan=True, default=_refuse)
    except CacheKeyError:
        raise CacheKeyError(f"cache key holds {_culprit(parts, 'key')}, which JSON cannot represent; "
                            "put plain str/int/float/bool/None/list/dict values in the key") from None
    except TypeError as exc:  # e.g. dict keys of mixed types that sort_keys cannot order
        raise CacheKeyError(f"cache key cannot be serialised: {exc}") from None
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _refuse(obj: Any) -> Any:
    raise CacheKeyError(type(obj).__name__)


def _culprit(value: Any, path: str) -> str:
    """`a TYPE at PATH` for the first value json cannot encode (for the error message)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            found = _culprit(inner, f"{path}[{key!r}]")
            if found:
                return found
        return ""
    if isinstance(value, list | tuple):
        for i, inner in enumerate(value):
            found = _culprit(inner, f"{path}[{i}]")
            if found:
                return found
        return ""
    if value is None or isinstance(value, str | int | float | bool):
        return ""
    return f"a {type(value).__name__} at {path}"


class Cache:
    def __init__(self, root: str | Path, enabled: bool = True) -> None:
        self.root = Path(root).expanduser()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        if enabled:
            self._check_root()
            self._sweep_temporaries()

    def _check_root(self) -> None:
        """Fail at start-up with one line, not at the first write after an hour of work."""
        hint = "set cache_dir=FOLDER (or PCBENCH_CACHE) to a writable folder"
        if self.root.exists() and not self.root.is_dir():
            raise PcbenchError(f"cache_dir={self.root} is a file, not a folder; {hint}")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise PcbenchError(f"cache_dir={self.root} is not writable ({exc.strerror or exc}); {hint}") from None
        tag = self.root / CACHE_TAG
        if not is_cache(self.root):
            try:
                tag.write_text(f"{TAG_SIGNATURE}\n# A pcbench cache (https://bford.info/cachedir/): pcbench-cache "
                               "deletes files only under a folder holding this tag.\n", encoding="utf-8")
            except OSError:
                pass  # the probe above wrote: a race with another process writing the same tag

    def _sweep_temporaries(self) -> None:
        """Remove killed writers' `.tmp-*` files, at most hourly per cache and off the caller's path.

        A big cache on a network file system takes a while to list, so the walk runs in a daemon
        thread (it only unlinks files older than STALE_SECONDS, which no live writer owns), and the
        marker is touched first so that the array jobs of a sweep starting together mostly skip it.
        """
        marker = self.root / SWEEP_MARKER
        try:
            if marker.exists() and time.time() - marker.stat().st_mtime < STALE_SECONDS:
                return
            marker.touch()
        except OSError:
            return
        threading.Thread(target=remove_cache_temporaries, args=(self.root,), daemon=True,
                         name="pcbench-cache-temporaries").start()

    def _path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / f"{key}.json"

    # -- reading ---------------------------------------------------------------------------------

    def get(self, stage: str, key: str) -> Any | None:
        """The value stored under a hash, or None when absent, unreadable or of a newer format."""
        value = self._read(stage, key)
        return None if value is _MISS else value

    def _read(self, stage: str, key: str) -> Any:
        if not self.enabled:
            return _MISS
        slot = (str(self.root), stage, key)
        if slot in _MEMORY:
            _MEMORY.move_to_end(slot)
            return _MEMORY[slot]
        path = self._path(stage, key)
        entry = read_entry(path)
        if entry is None:
            return _MISS
        problem = mismatch(stage, path, entry)
        if problem:
            warn_once(log, "mismatch", "cache entry %s %s; recomputing it and rewriting the entry (other such "
                       "entries are recomputed without a warning)", path, problem)
            return _MISS
        self._remember(slot, entry["value"])
        return entry["value"]

    @staticmethod
    def _remember(slot: tuple[str, str, str], value: Any) -> None:
        _MEMORY[slot] = value
        if len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.popitem(last=False)

    # -- writing ---------------------------------------------------------------------------------

    def put(self, stage: str, key: str, value: Any, source: dict[str, Any] | None = None) -> None:
        """Store `value` under the hash `key`; `source` is the key dict it was hashed from."""
        if not self.enabled:
            return
        path = self._path(stage, key)
        if _newer_on_disk(path):
            return  # a newer pcbench wrote it; do not downgrade its entry
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = temporary_beside(path, ".tmp-", ".json")
        except OSError as exc:
            raise PcbenchError(f"cannot write the cache at {path.parent} ({exc.strerror or exc}); "
                               "set cache_dir=FOLDER to a writable folder") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                # "format" first: a reader can tell the version from the first bytes. The checksum
                # lets a read notice an edited value; credentials in the stored key are masked (the
                # file's name is still the hash of the real key).
                shown = redact_value(source)
                value_text = json.dumps(value, ensure_ascii=False)  # serialised once: written and checksummed
                head: dict[str, Any] = {"format": FORMAT, "key": shown, "checksum": _checksum(value_text)}
                if not (shown is source and _plain_keys(source)):  # masked, or JSON would change its keys
                    head["key_verifiable"] = False
                f.write(json.dumps(head, ensure_ascii=False)[:-1] + f', "value": {value_text}}}')
            os.replace(tmp, path)
            self._remember((str(self.root), stage, key), value)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise PcbenchError(f"cannot write cache entry {path} ({exc.strerror or exc})") from None
            raise

    # -- memoisation (the Store protocol of compressors/base.py) ------------------------------

    def fetch(self, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """The cached value for `key` (a dict with a "stage" entry), computing it on a miss."""
        stage = str(key.get("stage", "misc"))
        hashed = digest(key)
        value = self._read(stage, hashed)
        if value is not _MISS:
            self.hits += 1
            return value
        self.misses += 1
        value = compute()
        self.put(stage, hashed, value, key)
        return value

    def fetch_many(self, keys: list[dict[str, Any]], compute: Callable[[list[int]], list[Any]]) -> list[Any]:
        """Values for every key; `compute(indices)` is called once, with the misses only (if any)."""
        hashed = [(str(k.get("stage", "misc")), digest(k)) for k in keys]
        values = [self._read(stage, h) for stage, h in hashed]
        missing = [i for i, v in enumerate(values) if v is _MISS]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = list(compute(missing))
            if len(computed) != len(missing):
                raise ValueError(f"compute returned {len(computed)} values for {len(missing)} missing keys")
            for i, value in zip(missing, computed):
                stage, h = hashed[i]
                self.put(stage, h, value, keys[i])
                values[i] = value
        return values


def read_entry(path: Path) -> dict[str, Any] | None:
    """The entry in `path` as {"format", "key", "value"}, or None (absent, unreadable, newer)."""
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
        warn_once(log, "unreadable", "cache entry %s is unreadable (%s); recomputing it (other unreadable entries "
                   "are recomputed without a warning)", path, type(exc).__name__)
        return None
    fmt = entry.get("format", 1) if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or "value" not in entry or not isinstance(fmt, int) or isinstance(fmt, bool):
        warn_once(log, "unreadable", "cache entry %s does not hold a {format, key, value} object; recomputing it "
                   "(other such entries are recomputed without a warning)", path)
        return None
    if fmt > FORMAT:
        warn_once(log, "newer", "cache entries of format %d (written by a newer pcbench) are ignored by this one "
                   "(format %d): they are recomputed here and left in place", fmt, FORMAT)
        return None
    key = entry.get("key") if fmt >= 2 else None  # format 1 stored only the hash
    return {"format": fmt, "key": key, "value": entry["value"], "checksum": entry.get("checksum"),
            "key_verifiable": entry.get("key_verifiable", True) is not False}


def _checksum(value_text: str) -> str:
    """SHA-256 of a value's JSON text as written; a read re-serialises what it parsed, which gives
    the same text back (json keeps key order and round-trips floats), so any edit shows."""
    return hashlib.sha256(value_text.encode("utf-8")).hexdigest()


def _plain_keys(value: Any) -> bool:
    """Only string dict keys anywhere? (JSON would turn others into strings, and the stored key
    would no longer hash to the file's name.)"""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_keys(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain_keys(v) for v in value)
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(value: Any, n: int | None) -> bool:
    return (isinstance(value, list) and (n is None or len(value) == n)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value))


def _count_of(key: Any, field: str) -> int | None:
    inner = key.get(field) if isinstance(key, dict) else None
    return len(inner) if isinstance(inner, list) else None


# What a value of each of the harness's stages looks like, given its stored key. Other stages (a
# compressor's own) are checked by their checksum only.
SHAPES: dict[str, Callable[[Any, Any], bool]] = {
    "compressed": lambda v, k: isinstance(v, dict) and isinstance(v.get("text"), str)
    and isinstance(v.get("extras", {}), dict) and _is_int(v.get("original_tokens"))
    and _is_int(v.get("compressed_tokens")) and isinstance(v.get("seconds"), int | float),
    "generation": lambda v, k: isinstance(v, dict) and isinstance(v.get("text"), str)
    and _is_int(v.get("prompt_tokens")) and _is_int(v.get("new_tokens")),
    # One count per text, one score per unit (keys that list them: the compressors' own).
    "tokens": lambda v, k: _count_of(k, "texts") is None or (
        _numbers(v, _count_of(k, "texts")) and all(_is_int(n) and n >= 0 for n in v)),
    "scores": lambda v, k: _count_of(k, "units") is None or _numbers(v, _count_of(k, "units")),
}


def mismatch(stage: str, path: Path, entry: dict[str, Any]) -> str | None:
    """Why an entry cannot be trusted (None when it can): a file whose stored key does not hash to its
    name (files swapped or copied over), a value that changed since it was written (its checksum),
    or a value of the wrong shape for its stage."""
    key = entry["key"]
    if key is not None and entry["key_verifiable"]:
        try:
            if digest(key) != path.stem:
                return "holds another key than its name says (a moved or swapped file)"
        except CacheKeyError:
            return "holds a key that cannot be hashed"
    if entry["checksum"] is not None and _checksum(json.dumps(entry["value"], ensure_ascii=False)) != entry["checksum"]:
        return "holds a value changed since it was written (its checksum differs)"
    shape = SHAPES.get(stage)
    if shape is not None and not shape(entry["value"], key):
        return f"holds a value of the wrong shape for stage {stage!r}"
    return None


def _newer_on_disk(path: Path) -> bool:
    """Is there an entry of a newer format at `path`? Reads only its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(64).decode("utf-8", errors="replace")
    except OSError:
        return False
    prefix = '{"format": '
    if not head.startswith(prefix):
        return False
    digits = "".join(ch for ch in head[len(prefix):].split(",")[0] if ch.isdigit())
    return bool(digits) and int(digits) > FORMAT


# -- the command line: stats, prune, show ------------------------------------------------------


def is_cache(root: Path) -> bool:
    """Does `root` hold a cache's tag (CACHE_TAG)? Nothing is deleted under a folder that does not."""
    try:
        return (root / CACHE_TAG).read_text(encoding="utf-8", errors="replace").startswith(TAG_SIGNATURE)
    except OSError:
        return False


def require_cache(root: Path) -> None:
    """One line, and nothing deleted, for a --root that is not a cache (a project folder, a typo)."""
    if not is_cache(root):
        raise PcbenchError(f"{root} is not a pcbench cache (no {CACHE_TAG} in it), so nothing was deleted; give the "
                           "cache folder (--root, PCBENCH_CACHE or ~/.cache/pcbench). A cache made before pcbench "
                           "0.2.0 gets its tag the next time a cell uses it")


def entries(root: Path, stage: str | None = None) -> Iterator[tuple[str, Path]]:
    """(stage, path) of every entry file under root: `STAGE/ab/ab<62 hex>.json`, so nothing else that
    a folder holds (a package.json, temporary files of running writers) is ever taken for one."""
    if not root.is_dir():
        return
    stages = [root / stage] if stage else sorted(p for p in root.iterdir() if p.is_dir())
    for folder in stages:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*/*.json")):
            match = ENTRY_NAME.match(path.name)
            if match is not None and match.group(1) == path.parent.name:
                yield folder.name, path


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # pruned by another process meanwhile
        return 0


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def stats(root: Path) -> list[tuple[str, int, int]]:
    """(stage, entries, bytes) per stage, sorted by stage."""
    table: dict[str, list[int]] = {}
    for stage, path in entries(root):
        row = table.setdefault(stage, [0, 0])
        row[0] += 1
        row[1] += _size(path)
    return [(stage, n, size) for stage, (n, size) in sorted(table.items())]


def _classes(value: Any) -> Iterator[str]:
    """Every "class" (or "_target_") string anywhere in a stored key: nested compressors included."""
    if isinstance(value, dict):
        for k, inner in value.items():
            if k in ("class", "_target_") and isinstance(inner, str):
                yield inner
            else:
                yield from _classes(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _classes(inner)


def compressor_targets(name: str, conf_dir: Path | None = None) -> set[str]:
    """What `--compressor NAME` matches: the name itself, and the class its conf/compressor YAML builds."""
    names = {name.lower()}
    conf = (conf_dir or CONF_DIR) / "compressor" / f"{name}.yaml"
    if conf.is_file():
        for line in conf.read_text(encoding="utf-8").splitlines():
            if line.startswith("_target_:"):
                names.add(line.split(":", 1)[1].strip().strip("'\"").lower())
    return names


def matches_compressor(key: Any, wanted: set[str]) -> bool:
    for target in _classes(key):
        full = target.lower()
        module, _, cls = full.rpartition(".")
        if wanted & {full, cls, module.rpartition(".")[2]}:
            return True
    return False


def check_stage(root: Path, stage: str) -> None:
    """`--stage` names one of the cache's stage folders, never a path (`../x` would reach outside)."""
    present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if stage not in present:
        raise PcbenchError(f"--stage={stage!r} is not a stage of the cache {root}; "
                           f"allowed: {', '.join(present) or '(none: the cache is empty)'}")


def check_compressor(name: str, conf_dir: Path | None = None) -> None:
    """`--compressor` names a conf/compressor option, or a compressor module or class of pcbench."""
    from pcbench.runners.catalog import options as group_options

    options = group_options("compressor", conf_dir or CONF_DIR)
    code = Path(__file__).resolve().parents[1] / "compressors"
    modules = {p.stem.lower() for p in code.glob("*.py")}
    classes = {m.lower() for p in code.glob("*.py") for m in re.findall(r"^class (\w+)", p.read_text(), re.M)}
    wanted = name.lower().rsplit(".", 1)[-1]
    if name.lower() not in {o.lower() for o in options} and wanted not in modules | classes:
        raise PcbenchError(f"--compressor={name!r} is no compressor of pcbench; allowed: {', '.join(options)} "
                           "(or a compressor class or module name)")


def prune(root: Path, older_than_days: float | None = None, compressor: str | None = None, stage: str | None = None,
          dry_run: bool = False) -> dict[str, int]:
    """Delete matching entries (all filters must match); returns counts for the report.

    Safe while other processes run: each delete is one unlink (readers see the whole file or a
    miss), files that vanish meanwhile are skipped, and running writers' temporary files are left
    alone unless older than an hour (leftovers of killed runs).
    """
    require_cache(root)
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    wanted = compressor_targets(compressor) if compressor else None
    report = {"deleted": 0, "bytes": 0, "kept": 0, "no_stored_key": 0, "stale_temporary": 0}
    for _, path in entries(root, stage):
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if cutoff is not None and mtime >= cutoff:
            report["kept"] += 1
            continue
        if wanted is not None:
            entry = read_entry(path)
            if entry is None or entry["key"] is None:
                report["no_stored_key"] += 1  # format-1 or unreadable: cannot tell which compressor
                continue
            if not matches_compressor(entry["key"], wanted):
                report["kept"] += 1
                continue
        size = _size(path)
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
        report["deleted"] += 1
        report["bytes"] += size
    report["stale_temporary"] += remove_cache_temporaries(root, dry_run)
    return report


def remove_stale_temporaries(folder: Path, pattern: str, dry_run: bool = False,
                              max_age: float = STALE_SECONDS) -> int:
    """Delete files in `folder` matching `pattern` last written more than `max_age` seconds ago.

    For temporary files of atomic writes (cache entries, metrics.json) whose writer was killed
    before its rename; a younger one may belong to a live writer and is left alone. Returns how
    many went (would go, with dry_run).
    """
    cutoff, removed = time.time() - max_age, 0
    try:
        candidates = list(folder.glob(pattern))
    except OSError:
        return 0
    for path in candidates:
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                if not dry_run:
                    path.unlink()
                removed += 1
        except FileNotFoundError:  # its writer renamed it, or another process removed it
            continue
        except OSError:
            continue
    return removed


def remove_cache_temporaries(root: Path, dry_run: bool = False) -> int:
    """Stale `.tmp-*` files of every stage folder of a cache (see remove_stale_temporaries); none
    under a folder that is not a tagged cache."""
    if not root.is_dir() or not is_cache(root):
        return 0
    return remove_stale_temporaries(root, "*/*/.tmp-*", dry_run)


def remove_run_temporaries(roots: list[Path], dry_run: bool = False) -> int:
    """Stale `.metrics.json.*.tmp` files (runners/record.py's atomic write) in cell folders under roots."""
    return sum(remove_stale_temporaries(root, "**/.metrics.json.*.tmp", dry_run) for root in roots if root.is_dir())


def find(root: Path, hash_or_prefix: str) -> list[tuple[str, Path]]:
    """Entries whose hash starts with `hash_or_prefix` (at least 4 hex digits)."""
    prefix = hash_or_prefix.strip().lower()
    if len(prefix) < 4 or any(ch not in "0123456789abcdef" for ch in prefix):
        raise PcbenchError(f"{hash_or_prefix!r} is not a cache hash; give at least 4 hex digits of one")
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted((folder / prefix[:2]).glob(f"{prefix}*.json")):
            found.append((folder.name, path))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcbench-cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="cache folder (default: $PCBENCH_CACHE or ~/.cache/pcbench, as cache_dir=)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("stats", help="entries and bytes per stage")
    pruning = commands.add_parser("prune", help="delete entries (all given filters must match)")
    pruning.add_argument("--older-than", type=float, metavar="DAYS", help="last written more than DAYS ago")
    pruning.add_argument("--compressor", metavar="NAME",
                         help="made by this compressor: a conf/compressor option (bm25), a class or module name")
    pruning.add_argument("--stage", help="only this stage (compressed, scores, generation, tokens, ...)")
    pruning.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    pruning.add_argument("--runs", type=Path, nargs="+", metavar="FOLDER",
                         help="also remove stale .metrics.json.*.tmp files under these result folders (multirun)")
    showing = commands.add_parser("show", help="the stored key and value of an entry")
    showing.add_argument("hash", help="the entry's hash, or a unique prefix of it")
    args = parser.parse_args(argv)
    root = (args.root or default_root()).expanduser()
    try:
        return _run(args, root)
    except PcbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, root: Path) -> int:
    if root.exists() and not root.is_dir():
        raise PcbenchError(f"{root} is a file, not a cache folder")
    if args.command == "stats":
        rows = stats(root)
        width = max([len("stage"), *(len(s) for s, _, _ in rows)])
        print(f"{'stage':<{width}}  {'entries':>9}  {'size':>10}")
        for stage, n, size in rows:
            print(f"{stage:<{width}}  {n:>9}  {human(size):>10}")
        print(f"{'total':<{width}}  {sum(n for _, n, _ in rows):>9}  {human(sum(s for _, _, s in rows)):>10}")
        print(f"cache: {root}")
        return 0
    if args.command == "prune":
        if args.older_than is not None and (not math.isfinite(args.older_than) or args.older_than < 0):
            raise PcbenchError(f"--older-than={args.older_than} is not allowed; allowed: a number of days >= 0")
        if args.stage is not None:
            check_stage(root, args.stage)
        if args.compressor is not None:
            check_compressor(args.compressor)
        require_cache(root)
        verb = "would delete" if args.dry_run else "deleted"
        if args.older_than is None and args.compressor is None and args.stage is None:
            # No filter: entries are all kept (deleting every entry takes an explicit --older-than 0);
            # only killed writers' leftovers go.
            line = f"{verb} 0 entries (give --older-than DAYS, --compressor NAME or --stage STAGE to delete some)"
            stale = remove_cache_temporaries(root, args.dry_run)
        else:
            report = prune(root, args.older_than, args.compressor, args.stage, args.dry_run)
            line = f"{verb} {report['deleted']} entries ({human(report['bytes'])}); kept {report['kept']}"
            if report["no_stored_key"]:
                line += f"; kept {report['no_stored_key']} that store no key (older format, or written without one)"
            stale = report["stale_temporary"]
        stale_runs = remove_run_temporaries(args.runs or [], args.dry_run)
        line += f"; {verb} {stale} stale temporary files (older than an hour)"
        if args.runs:
            line += f" and {stale_runs} under {', '.join(str(r) for r in args.runs)}"
        print(line)
        return 0
    found = find(root, args.hash)
    if not found:
        raise PcbenchError(f"no cache entry {args.hash!r} under {root}")
    if len(found) > 1:
        shown = ", ".join(f"{stage}/{path.stem[:12]}" for stage, path in found[:5])
        raise PcbenchError(f"{args.hash!r} matches {len(found)} entries ({shown}); give more digits")
    stage, path = found[0]
    entry = read_entry(path)
    if entry is None:
        raise PcbenchError(f"{path} is unreadable or written by a newer pcbench")
    print(json.dumps({"hash": path.stem, "stage": stage, "path": str(path), **entry}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
