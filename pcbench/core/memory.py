"""Peak memory of a block of work (a cell's compress or read stage, one press's prefill), apart from
what came before it.

On Linux the process's resident-set high-water mark (VmHWM) is reset before the block (writing 5 to
/proc/self/clear_refs) and read after it; on a CUDA device the same is done with torch's
peak-allocation counters. Blocks nest: an inner block's reset first hands the peak so far to the
blocks around it, so each keeps its own true peak. Both figures are the whole process's: models of
the other role that are still loaded count in the RSS. A reader behind an endpoint runs elsewhere:
its stage's figures are this client's, not the server's.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


def _cuda() -> Any:
    torch = sys.modules.get("torch")  # only where the cell already uses it: measuring imports nothing
    return torch if torch is not None and torch.cuda.is_available() else None


@dataclass(eq=False)  # open blocks are told apart by identity, never by equal figures
class Meter:
    """One block's figures (bytes); `rss_peak` and `cuda_peak` are None where they cannot be read."""

    rss_start: int | None = None
    rss_peak: int | None = None
    cuda_start: int | None = None
    cuda_peak: int | None = None

    def rise(self) -> int | None:
        """How far the block's peak rose above what was held when it began: the CUDA allocation
        where a GPU is in use, else the resident set."""
        if self.cuda_peak is not None and self.cuda_start is not None:
            return max(0, self.cuda_peak - self.cuda_start)
        if self.rss_peak is not None and self.rss_start is not None:
            return max(0, self.rss_peak - self.rss_start)
        return None


_OPEN: list[Meter] = []  # the blocks being measured, outermost first


def _carry() -> None:
    """Hand the peaks reached so far to every open block, before a reset would lose them."""
    hwm = _status_kib("VmHWM")
    torch = _cuda()
    cuda = torch.cuda.max_memory_allocated() if torch is not None else None
    for meter in _OPEN:
        if hwm is not None and meter.rss_peak is not None:
            meter.rss_peak = max(meter.rss_peak, hwm * 1024)
        if cuda is not None and meter.cuda_peak is not None:
            meter.cuda_peak = max(meter.cuda_peak, cuda)


@contextmanager
def measure() -> Iterator[Meter]:
    """Measure the peak memory of the block it wraps."""
    _carry()
    meter = Meter()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        rss = _status_kib("VmRSS")
        meter.rss_start = meter.rss_peak = rss * 1024 if rss is not None else None
    except OSError:  # not Linux, or not allowed: no RSS figures
        pass
    torch = _cuda()
    if torch is not None:
        torch.cuda.reset_peak_memory_stats()
        meter.cuda_start = meter.cuda_peak = torch.cuda.memory_allocated()
    _OPEN.append(meter)
    try:
        yield meter
    finally:
        _carry()
        _OPEN.remove(meter)


@contextmanager
def peak_memory(into: dict[str, Any], stage: str) -> Iterator[None]:
    """Record the stage's peak resident set and CUDA allocation (MiB) in `into[stage]`."""
    with measure() as meter:
        yield
    into[stage] = {
        "rss_start_mib": mib(meter.rss_start),
        "rss_peak_mib": mib(meter.rss_peak),
        "cuda_peak_mib": mib(meter.cuda_peak),
    }


def mib(value: int | None, digits: int = 1) -> float | None:
    return None if value is None else round(value / MIB, digits)


def out_of_memory(exc: BaseException) -> bool:
    """Is this the allocator refusing (CUDA, or the CPU allocator under a memory limit)?"""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def largest_batch(attempt: Callable[[int], object], limit: int = 1024) -> tuple[int, bool]:
    """The largest n <= limit for which `attempt(n)` runs without running out of memory, found by
    doubling and then bisecting, and whether the limit was reached without running out (the true
    largest may then be higher). 0 when even one does not fit."""

    def fits(n: int) -> bool:
        try:
            attempt(n)
            return True
        except Exception as exc:  # noqa: BLE001 - only an allocator's refusal is an answer; the rest propagate
            if not out_of_memory(exc):
                raise
            del exc
            gc.collect()
            torch = _cuda()
            if torch is not None:
                torch.cuda.empty_cache()
            return False

    good, n = 0, 1
    while True:
        if not fits(n):
            bad = n
            break
        good = n
        if n == limit:
            return good, True
        n = min(2 * n, limit)
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good, False
