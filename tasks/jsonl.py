"""Reading task files (JSON Lines or one JSON list) and dropping examples that cannot be asked.

Both layouts are accepted whatever the file is called: the official HotpotQA dev file is one JSON
list, while the shared copies and LongBench are JSON Lines, and users rename files freely. Every
failure is a PcbenchError that names the file (and the line, where there is one), so a bad path or
a truncated download reads as one line at the command line instead of a traceback.

Examples with an empty question or an empty context are skipped, not fatal: the official data has
a few, and one bad record should not stop a run over thousands. They are counted and logged as one
warning per file so that a file that is mostly broken still gets noticed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from core.errors import PcbenchError
from core.example import Example

log = logging.getLogger(__name__)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All records of a .jsonl file (one object a line, blank lines ignored) or of a .json list."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise PcbenchError(f"task file not found: {file}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise PcbenchError(f"{file}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not text.strip():
        raise PcbenchError(f"task file is empty: {file}")
    # The layout is decided by content, not by the suffix: a list starts with "[".
    records = _json_list(file, text) if text.lstrip().startswith("[") else _json_lines(file, text)
    if not records:
        raise PcbenchError(f"task file holds no records: {file}")
    return records


def _json_list(file: Path, text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PcbenchError(f"{file}: line {err.lineno}: not valid JSON ({err.msg})") from None
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise PcbenchError(f"{file}: item {index} is a {type(record).__name__}, expected a JSON object")
    return data


def _json_lines(file: Path, text: str) -> list[dict[str, Any]]:
    return [record for _, record in json_lines(file, text.splitlines())]


def json_lines(file: Path, lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(origin, record) for each non-blank line; origin is "FILE:LINE" for later error messages."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PcbenchError(f"{file}: line {lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise PcbenchError(f"{file}: line {lineno}: a {type(record).__name__}, expected a JSON object")
        yield f"{file}:{lineno}", record


def drop_unaskable(examples: list[Example], source: str) -> list[Example]:
    """The examples that have a question and a non-blank context; one warning counts the rest."""
    kept = [ex for ex in examples if ex.question.strip() and ex.context.strip()]
    skipped = len(examples) - len(kept)
    if skipped:
        log.warning("%s: skipped %d of %d examples with an empty question or context", source, skipped, len(examples))
    return kept
