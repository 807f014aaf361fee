"""`pcbench-cache`: what the content-addressed cache holds, and pruning it.

    pcbench-cache stats                   # entries and bytes per kind
    pcbench-cache prune --older-than 30   # also --compressor bm25, --kind scores, --dry-run
    pcbench-cache prune --runs multirun   # no filter: only killed writers' temporary files
    pcbench-cache show 3fa2...            # the stored key and value of a hash (or a prefix)

Temporary files (`.tmp-*`) older than an hour are leftovers of killed writers: every `prune`
removes them (`--runs FOLDER` also the cell folders' `.metrics.json.*.tmp`). The store itself is
pcbench/runners/cache.py.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pcbench.conf import CONF_DIR
from pcbench.core.errors import PcbenchError
from pcbench.runners.cache import (
    default_root,
    entries,
    read_entry,
    remove_cache_temporaries,
    remove_run_temporaries,
    require_cache,
)


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
    """(kind, entries, bytes) per kind of entry, sorted by kind."""
    table: dict[str, list[int]] = {}
    for kind, path in entries(root):
        row = table.setdefault(kind, [0, 0])
        row[0] += 1
        row[1] += _size(path)
    return [(kind, n, size) for kind, (n, size) in sorted(table.items())]


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


def check_kind(root: Path, kind: str) -> None:
    """`--kind` names one of the cache's kind folders, never a path (`../x` would reach outside)."""
    present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if kind not in present:
        raise PcbenchError(f"--kind={kind!r} is not a kind of entry in the cache {root}; "
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


def prune(root: Path, older_than_days: float | None = None, compressor: str | None = None, kind: str | None = None,
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
    for _, path in entries(root, kind):
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
    commands.add_parser("stats", help="entries and bytes per kind of entry")
    pruning = commands.add_parser("prune", help="delete entries (all given filters must match)")
    pruning.add_argument("--older-than", type=float, metavar="DAYS", help="last written more than DAYS ago")
    pruning.add_argument("--compressor", metavar="NAME",
                         help="made by this compressor: a conf/compressor option (bm25), a class or module name")
    # --stage: the flag's name before kinds had their own word; kept so that scripts keep working.
    pruning.add_argument("--kind", "--stage", dest="kind",
                         help="only this kind of entry (compressed, scores, generation, tokens, ...)")
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
        width = max([len("kind"), *(len(s) for s, _, _ in rows)])
        print(f"{'kind':<{width}}  {'entries':>9}  {'size':>10}")
        for kind, n, size in rows:
            print(f"{kind:<{width}}  {n:>9}  {human(size):>10}")
        print(f"{'total':<{width}}  {sum(n for _, n, _ in rows):>9}  {human(sum(s for _, _, s in rows)):>10}")
        print(f"cache: {root}")
        return 0
    if args.command == "prune":
        if args.older_than is not None and (not math.isfinite(args.older_than) or args.older_than < 0):
            raise PcbenchError(f"--older-than={args.older_than} is not allowed; allowed: a number of days >= 0")
        if args.kind is not None:
            check_kind(root, args.kind)
        if args.compressor is not None:
            check_compressor(args.compressor)
        require_cache(root)
        verb = "would delete" if args.dry_run else "deleted"
        if args.older_than is None and args.compressor is None and args.kind is None:
            # No filter: entries are all kept (deleting every entry takes an explicit --older-than 0);
            # only killed writers' leftovers go.
            line = f"{verb} 0 entries (give --older-than DAYS, --compressor NAME or --kind KIND to delete some)"
            stale = remove_cache_temporaries(root, args.dry_run)
        else:
            report = prune(root, args.older_than, args.compressor, args.kind, args.dry_run)
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
        shown = ", ".join(f"{kind}/{path.stem[:12]}" for kind, path in found[:5])
        raise PcbenchError(f"{args.hash!r} matches {len(found)} entries ({shown}); give more digits")
    kind, path = found[0]
    entry = read_entry(path)
    if entry is None:
        raise PcbenchError(f"{path} is unreadable or written by a newer pcbench")
    print(json.dumps({"hash": path.stem, "kind": kind, "path": str(path), **entry}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
