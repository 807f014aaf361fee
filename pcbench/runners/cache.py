"""A content-addressed on-disk cache shared by runs, sweeps and processes.

Every entry is keyed by a SHA-256 of everything that can change it (full compressor or reader
settings, example content, tokenizer), so a changed knob can never reuse a stale entry. Each file
holds `{"format": N, "key": <the key dict>, "value": ...}`: the key it was made from sits beside
the value, so `pcbench-cache show HASH` says what an entry is and `prune --compressor`
can find a method's entries. Entries are filed by their *kind*, a folder per kind (`compressed`,
`generation`, `scores`, `tokens`, `facts`, a compressor's own); a key names its kind under "stage",
the word stored keys have always used, so no cache written before is lost to a rename.

Writes go to a temporary file that is renamed into place: a killed run leaves either a whole entry
or none, and two processes writing the same entry both write identical bytes, so the rename is
harmless. Deletes (prune) are single unlinks: a reader sees the whole file or no file.

An entry is a miss, never a crash, when it is unreadable (not UTF-8, not JSON, wrong shape: one
warning per process) or was written by a newer format (one warning; it is left in place for the
newer code and never overwritten by this one).


Temporary files (`.tmp-*`) older than an hour are leftovers of killed writers: every `prune`
removes them (`--runs FOLDER` also the cell folders' `.metrics.json.*.tmp`), and opening a cache
does so in the background at most once an hour.

Its admin command, `pcbench-cache` (stats, prune, show), is pcbench/apps/cache.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pcbench.core.errors import PcbenchError
from pcbench.core.files import temporary_beside
from pcbench.core.notices import warn_once
from pcbench.core.records import CompressedEntry, GenerationEntry, conforms
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

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    # -- reading ---------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Any | None:
        """The value stored under a hash, or None when absent, unreadable or of a newer format."""
        value = self._read(kind, key)
        return None if value is _MISS else value

    def _read(self, kind: str, key: str) -> Any:
        if not self.enabled:
            return _MISS
        slot = (str(self.root), kind, key)
        if slot in _MEMORY:
            _MEMORY.move_to_end(slot)
            return _MEMORY[slot]
        path = self._path(kind, key)
        entry = read_entry(path)
        if entry is None:
            return _MISS
        problem = mismatch(kind, path, entry)
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

    def put(self, kind: str, key: str, value: Any, source: dict[str, Any] | None = None) -> None:
        """Store `value` under the hash `key`; `source` is the key dict it was hashed from."""
        if not self.enabled:
            return
        path = self._path(kind, key)
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
            self._remember((str(self.root), kind, key), value)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise PcbenchError(f"cannot write cache entry {path} ({exc.strerror or exc})") from None
            raise

    # -- memoisation (the Store protocol of compressors/base.py) ------------------------------

    def fetch(self, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """The cached value for `key` (a dict whose "stage" entry names its kind), computing it on a miss."""
        kind = str(key.get("stage", "misc"))
        hashed = digest(key)
        value = self._read(kind, hashed)
        if value is not _MISS:
            self.hits += 1
            return value
        self.misses += 1
        value = compute()
        self.put(kind, hashed, value, key)
        return value

    def fetch_many(self, keys: list[dict[str, Any]], compute: Callable[[list[int]], list[Any]]) -> list[Any]:
        """Values for every key; `compute(indices)` is called once, with the misses only (if any)."""
        hashed = [(str(k.get("stage", "misc")), digest(k)) for k in keys]
        values = [self._read(kind, h) for kind, h in hashed]
        missing = [i for i, v in enumerate(values) if v is _MISS]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = list(compute(missing))
            if len(computed) != len(missing):
                raise ValueError(f"compute returned {len(computed)} values for {len(missing)} missing keys")
            for i, value in zip(missing, computed):
                kind, h = hashed[i]
                self.put(kind, h, value, keys[i])
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


# What a value of each of the harness's kinds of entry looks like, given its stored key. Other kinds
# (a compressor's own) are checked by their checksum only.
SHAPES: dict[str, Callable[[Any, Any], bool]] = {
    "compressed": lambda v, k: conforms(v, CompressedEntry),
    "generation": lambda v, k: conforms(v, GenerationEntry),
    # One count per text, one score per unit (keys that list them: the compressors' own).
    "tokens": lambda v, k: _count_of(k, "texts") is None or (
        _numbers(v, _count_of(k, "texts")) and all(_is_int(n) and n >= 0 for n in v)),
    "scores": lambda v, k: _count_of(k, "units") is None or _numbers(v, _count_of(k, "units")),
}


def mismatch(kind: str, path: Path, entry: dict[str, Any]) -> str | None:
    """Why an entry cannot be trusted (None when it can): a file whose stored key does not hash to its
    name (files swapped or copied over), a value that changed since it was written (its checksum),
    or a value of the wrong shape for its kind."""
    key = entry["key"]
    if key is not None and entry["key_verifiable"]:
        try:
            if digest(key) != path.stem:
                return "holds another key than its name says (a moved or swapped file)"
        except CacheKeyError:
            return "holds a key that cannot be hashed"
    if entry["checksum"] is not None and _checksum(json.dumps(entry["value"], ensure_ascii=False)) != entry["checksum"]:
        return "holds a value changed since it was written (its checksum differs)"
    shape = SHAPES.get(kind)
    if shape is not None and not shape(entry["value"], key):
        return f"holds a value of the wrong shape for kind {kind!r}"
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


def entries(root: Path, kind: str | None = None) -> Iterator[tuple[str, Path]]:
    """(kind, path) of every entry file under root: `KIND/ab/ab<62 hex>.json`, so nothing else that
    a folder holds (a package.json, temporary files of running writers) is ever taken for one."""
    if not root.is_dir():
        return
    kinds = [root / kind] if kind else sorted(p for p in root.iterdir() if p.is_dir())
    for folder in kinds:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*/*.json")):
            match = ENTRY_NAME.match(path.name)
            if match is not None and match.group(1) == path.parent.name:
                yield folder.name, path


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
    """Stale `.tmp-*` files of every kind folder of a cache (see remove_stale_temporaries); none
    under a folder that is not a tagged cache."""
    if not root.is_dir() or not is_cache(root):
        return 0
    return remove_stale_temporaries(root, "*/*/.tmp-*", dry_run)


def remove_run_temporaries(roots: list[Path], dry_run: bool = False) -> int:
    """Stale `.metrics.json.*.tmp` files (runners/record.py's atomic write) in cell folders under roots."""
    return sum(remove_stale_temporaries(root, "**/.metrics.json.*.tmp", dry_run) for root in roots if root.is_dir())
