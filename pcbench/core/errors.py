"""The one exception type that the command line turns into a single readable line, and its hint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PcbenchError(Exception):
    """Bad input or configuration: the message names the bad value and what is allowed."""


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a mistyped word most likely meant (`hotpot` -> `hotpotqa`), or None.

    A name under a folder (`longbench/qaspr`) is compared with the names under the same folder.
    """
    pool = [str(c) for c in candidates]
    head, _, tail = word.rpartition("/")
    if head:
        same_folder = {c.rpartition("/")[2]: c for c in pool if c.rpartition("/")[0] == head}
        found = difflib.get_close_matches(tail, list(same_folder), n=1, cutoff=0.6)
        return same_folder[found[0]] if found else None
    found = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return found[0] if found else None
