"""Peak memory of one stage of a cell (compress, read), apart from the other.

On Linux the process's resident-set high-water mark (VmHWM) is reset before the stage (writing 5
to /proc/self/clear_refs) and read after it, so each stage's peak is its own, not the process's
lifetime maximum. On a CUDA device the same is done with torch's peak-allocation counters. Both are
the whole process: models of the other role that are still loaded count in the RSS (the model pool
frees them on an accelerator before loading). A reader behind an endpoint runs elsewhere: its
stage's figures are this client's, not the server's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _cuda() -> Any:
    torch = sys.modules.get("torch")  # only where the cell already uses it: measuring imports nothing
    return torch if torch is not None and torch.cuda.is_available() else None


@contextmanager
def peak_memory(into: dict[str, Any], stage: str) -> Iterator[None]:
    """Record the stage's peak resident set and CUDA allocation (MiB) in `into[stage]`."""
    resettable = _reset_rss_peak()
    start = _status_kib("VmRSS")
    torch = _cuda()
    if torch is not None:
        torch.cuda.reset_peak_memory_stats()
    try:
        yield
    finally:
        peak = _status_kib("VmHWM") if resettable else None
        torch = _cuda()
        into[stage] = {
            "rss_start_mib": round(start / 1024, 1) if start is not None else None,
            "rss_peak_mib": round(peak / 1024, 1) if peak is not None else None,
            "cuda_peak_mib": round(torch.cuda.max_memory_allocated() / MIB, 1) if torch is not None else None,
        }
