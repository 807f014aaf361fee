"""A clean terminal: logs that do not tear progress bars, quiet libraries, one line per cell.

Hydra configures logging from conf/hydra/job_logging/pcbench.yaml, which uses the pieces here:

- `TqdmHandler` writes each record with `tqdm.write`, which lifts the progress bars, prints the
  line and redraws them, instead of printing into the middle of a bar;
- `ThirdPartyFilter` lets INFO and DEBUG through only from the project's own packages (and
  Hydra's); everything else needs WARNING. A filter on the handlers, not logger levels, because
  libraries reset their own levels at import (bm25s sets DEBUG), which no earlier config can
  undo. `hydra.job_logging.filters.quiet.level=INFO` lets library INFO through again;
- `extra={"console": False}` keeps a record out of the terminal (run.log still gets it): the
  failure of a cell is printed once, as the `error:` line;
- `PlainFormatter` (run.log) drops carriage returns and ANSI colour codes, so the file reads as
  plain lines whatever a library puts in a message.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from tqdm import tqdm

from pcbench.core.records import CellMetrics
from pcbench.core.redact import redact

# Loggers whose INFO lines are the harness's own report of what it does.
OWN = ("pcbench", "run", "__main__", "hydra")
# Libraries known to log below WARNING by default (bm25s even sets DEBUG on import).
NOISY = ("bm25s", "transformers", "sentence_transformers", "urllib3", "httpx", "httpcore", "filelock", "datasets",
         "jieba", "huggingface_hub", "fsspec", "matplotlib", "PIL", "numexpr", "submitit", "torch")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _own(name: str) -> bool:
    return any(name == own or name.startswith(own + ".") for own in OWN)


class ThirdPartyFilter(logging.Filter):
    """Passes records of the project's loggers at any level and others' at `level` or above."""

    def __init__(self, level: str | int = "WARNING") -> None:
        super().__init__()
        self.level = logging.getLevelName(level) if isinstance(level, str) else level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or _own(record.name)


class TqdmHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """A console handler that prints through tqdm, so bars are redrawn below the line, not torn."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "console", True) is False:  # e.g. an error the command line prints itself
            return
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # logging must never take the run down
            self.handleError(record)


class RunLogHandler(logging.FileHandler):
    """run.log. A line it cannot write (a full disk) is dropped without logging's own traceback on
    the terminal: the cell's `error:` line says what went wrong."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


class ConsoleFormatter(logging.Formatter):
    """Formats as usual with credentials in URLs masked (core/redact.py)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class PlainFormatter(logging.Formatter):
    """Formats as usual, then removes carriage returns and colour codes (for run.log); credentials in
    URLs are masked."""

    def format(self, record: logging.LogRecord) -> str:
        text = _ANSI.sub("", redact(super().format(record)))
        return "\n".join(part.split("\r")[-1] for part in text.split("\n"))  # what a terminal would show


def quiet_third_party(level: int = logging.WARNING) -> None:
    """Raise the noisy libraries' logger levels, so their DEBUG records are not even built.

    The handler filter already hides them; this saves the formatting work and also quiets
    handlers that libraries attach themselves (jieba prints to stderr with its own handler).
    """
    for name in NOISY:
        logger = logging.getLogger(name)
        if logger.level < level:
            logger.setLevel(level)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def headline(metrics: CellMetrics) -> str:
    """One line per finished cell: what ran and the numbers worth reading first."""
    cell = f"{metrics.get('task')} x {metrics.get('compressor')} x {metrics.get('reader')}"
    parts = [f"{name}={_number(value)}" for name, value in (metrics.get("metrics") or {}).items() if value is not None]
    kept = metrics.get("kept_ratio")
    if kept is not None:
        parts.append(f"kept={kept:.3f}")
    for name, value in (("answer_in_context", metrics.get("answer_in_context")),
                        ("evidence_recall", metrics.get("evidence_recall"))):
        if value is not None:
            parts.append(f"{name}={_number(value)}")
    parts.append(f"n={metrics.get('n_examples')}")
    wall = (metrics.get("seconds") or {}).get("wall")
    if wall is not None:
        parts.append(f"{wall:.1f}s")
    return f"{cell}: {' '.join(parts)}"
