"""Reading task files (JSON Lines or one JSON list) and dropping examples that cannot be asked.

Both layouts are accepted whatever the file is called: the official HotpotQA dev file is one JSON
list, while the shared copies and LongBench are JSON Lines, and users rename files freely. Every
failure is a PcbenchError that names the file and where in it, counted the same way everywhere:
"line N" (1-based) in a JSON Lines file, "record N" (1-based) in a JSON list or a hub split. A
bad path, a truncated download or a file of another task reads as one line at the command line.

Examples with an empty question, an empty context or no gold answer are skipped, not fatal: the
official data has a few, and one bad record should not stop a run over thousands. A record with
no gold answer would score 0 whatever the reader says and pull every mean down. They are counted
and logged as one warning per file so that a file that is mostly broken still gets noticed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example
from pcbench.core.local_models import hub_reachable

log = logging.getLogger(__name__)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All records of a .jsonl file (one object a line, blank lines ignored) or of a .json list."""
    return [record for _, record in records_with_origins(path)]


def records_with_origins(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(origin, record) pairs; origin is "FILE: line N" or "FILE: record N" for error messages."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise PcbenchError(folder_problem(file, "a .jsonl or .json file"))
    if not file.is_file():
        raise PcbenchError(f"task file not found: {file}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise PcbenchError(f"{file}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not text.strip():
        raise PcbenchError(f"task file is empty: {file}")
    # The layout is decided by content, not by the suffix: a list starts with "[".
    records = _json_list(file, text) if text.lstrip().startswith("[") else list(json_lines(file, text.splitlines()))
    if not records:
        raise PcbenchError(f"task file holds no records: {file}")
    return records


def folder_problem(folder: Path, wanted: str) -> str:
    """What is wrong with a folder given where a file (or a folder of files) was expected."""
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    if not entries:
        return f"task.path={folder} is an empty folder; expected {wanted}"
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    return f"task.path={folder} is a folder ({shown}); expected {wanted}"


def _json_list(file: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PcbenchError(f"{file}: line {err.lineno}: not valid JSON ({err.msg})") from None
    except RecursionError:
        raise PcbenchError(f"{file}: nested too deeply to read (brackets inside brackets past Python's "
                           "recursion limit); no task file has such records") from None
    out = []
    for number, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise PcbenchError(f"{file}: record {number} is a {type(record).__name__}, expected a JSON object")
        out.append((f"{file}: record {number}", record))
    return out


def json_lines(file: Path, lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(origin, record) for each non-blank line; origin is "FILE: line N" for later error messages."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PcbenchError(f"{file}: line {lineno}: not valid JSON ({err.msg})") from None
        except RecursionError:
            raise PcbenchError(f"{file}: line {lineno}: nested too deeply to read (brackets inside brackets past "
                               "Python's recursion limit); no task file has such records") from None
        if not isinstance(record, dict):
            raise PcbenchError(f"{file}: line {lineno}: a {type(record).__name__}, expected a JSON object")
        yield f"{file}: line {lineno}", record


def hub_rows(hub_id: str, config: str | None, split: str, revision: str | None = None,
             local: str = "a local file with task.path=...") -> list[dict[str, Any]]:
    """A hub dataset's split as plain dicts; offline, missing or refused, one PcbenchError line that
    says what to pass instead (`local`)."""
    from datasets import load_dataset  # slow import; only the hub path needs it

    where = ", ".join(part for part in (f"config {config}" if config else "", f"split {split}",
                                        f"revision {revision}" if revision else "") if part)
    try:
        hub_reachable()  # offline: fail at once, not after retries
        named = (hub_id,) if config is None else (hub_id, config)
        pinned = {"revision": revision} if revision else {}
        return [dict(row) for row in load_dataset(*named, split=split, **pinned)]
    except Exception as err:  # datasets raises many types (offline, missing config, bad split)
        first = str(err).splitlines()[0] if str(err) else ""
        raise PcbenchError(f"cannot load {hub_id} ({where}) from the hub: {type(err).__name__}: {first}; "
                           f"pass {local}") from None


def hub_origin(source: str, index: int) -> str:
    """The origin of the index-th (0-based) row of a hub split, counted from 1 like file records."""
    return f"{source}: record {index + 1}"


def require_keys(origin: str, record: dict[str, Any], required: Sequence[str], schema: str) -> None:
    """Refuse a record of another schema, naming the keys expected and the keys found.

    Without this a file of another task loads as records with empty questions or contexts, which
    are then all skipped: "skipped 800 of 800" says nothing about the real mistake.
    """
    missing = [key for key in required if key not in record]
    if missing:
        found = ", ".join(sorted(map(str, record))) or "(none)"
        raise PcbenchError(
            f"{origin}: not in the {schema} schema: expected keys {', '.join(required)}; "
            f"missing {', '.join(missing)}; found {found}"
        )


def drop_unaskable(examples: list[Example], source: str, need_question: bool = True) -> list[Example]:
    """The examples with a question, a non-blank context and a gold answer; one warning counts the rest.

    need_question=False for tasks whose question may legitimately sit inside the context (RULER
    inputs without a recognisable question line).
    """
    kept, empty, no_gold = [], 0, 0
    for ex in examples:
        if (need_question and not ex.question.strip()) or not ex.context.strip():
            empty += 1
        elif not any(str(a).strip() for a in ex.answers):
            no_gold += 1
        else:
            kept.append(ex)
    if empty or no_gold:
        reasons = [f"{n} {why}" for n, why in ((empty, "with an empty question or context"),
                                               (no_gold, "with no gold answer")) if n]
        log.warning("%s: skipped %d of %d examples (%s)", source, empty + no_gold, len(examples), ", ".join(reasons))
    return kept


def text_field(origin: str, record: dict[str, Any], key: str, empty_if_absent: bool = False) -> str:
    """record[key] as a string; a list, a mapping, a number or null is refused with file and line
    (str() would turn ["Ann"] into the answer "['Ann']" and null into the question "None")."""
    value = record.get(key)
    if value is None and empty_if_absent:
        return ""
    if not isinstance(value, str):
        shown = "null" if value is None else type(value).__name__
        raise PcbenchError(f"{origin}: {key} is {shown} ({json.dumps(value)[:60]}); expected a string")
    return value


def text_list(origin: str, record: dict[str, Any], key: str) -> tuple[str, ...]:
    """record[key] as answer strings: a string, or a list of strings (null or absent: none); a number,
    a mapping or a list holding anything else is refused with file and line."""
    value = record.get(key)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise PcbenchError(f"{origin}: {key} is {json.dumps(value)[:60]}; expected a string or a list of strings")
    return tuple(items)


def refuse_duplicate_ids(ids: Sequence[str], origins: Sequence[str] | None, source: str) -> None:
    """Example ids must be unique: they pair examples across cells (paired tests) and name them in
    the inspector. `origins` name where each example came from ("FILE: line N"), when known."""
    first: dict[str, int] = {}
    for i, example_id in enumerate(ids):
        if example_id in first:
            j = first[example_id]
            if origins is not None:
                where = f"{origins[i]}: id {example_id!r} was already used at {origins[j].rsplit(': ', 1)[-1]}"
            else:
                where = f"{source}: examples {j + 1} and {i + 1} have the same id {example_id!r}"
            raise PcbenchError(f"{where}; every example needs its own id")
        first[example_id] = i
