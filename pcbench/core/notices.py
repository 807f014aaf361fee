"""Warnings said once per process: the same trouble met a thousand times (unreadable cache entries, a
checkpoint pcbench will not run, an endpoint's odd counts) is one line, not a thousand."""

from __future__ import annotations

import logging
from typing import Any

# (logger name, kind) pairs already said; tests clear it to hear a warning again.
SAID: set[tuple[str, str]] = set()


def warn_once(log: logging.Logger, kind: str, message: str, *args: Any) -> None:
    """`log.warning(message, *args)` the first time `kind` comes up for this logger, else nothing."""
    if (log.name, kind) not in SAID:
        SAID.add((log.name, kind))
        log.warning(message, *args)
