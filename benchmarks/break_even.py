"""Does compressing pay for itself? Compress seconds + read seconds against reading the full context.

Per family at 2x, 4x and 10x compression (rate 0.5, 0.25, 0.1) on the shared HotpotQA file, with the
default reader (SmolLM2, transformers, on this machine's CPU), one example at a time (reader batch 1,
so read seconds are one request's latency, as a user waiting for an answer sees it):

- full: reading the uncompressed context (compressor=none): prefill + generate seconds per example;
- each family: its compression seconds per example, from an empty cache (each cell pays for all of
  its scoring, nothing shared with another rate), plus reading what it kept.

A family pays at a rate where compress + read < full. The break-even compression budget is
full - read(compressed): the seconds a compressor may spend per example and still pay. The
crossover is the lowest compression at which the family pays (or "never, up to 10x").
Model loading is left out on both sides (readers and scorers stay warm across a sweep).

`run()` returns (name, value, note) rows for `make bench`; `python benchmarks/break_even.py`
prints them (`--limit N` examples, `--family F` repeatable).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from reference_common import HOTPOT, cell  # beside this file

FAMILIES = ("bm25", "embedding", "selective_context", "llmlingua", "longllmlingua", "summary")
RATES = (0.5, 0.25, 0.1)
LIMIT = 4


class PerExample(NamedTuple):
    """Seconds per example: compressing, and reading (prefill + generate) what was kept."""

    compress: float
    prefill: float
    generate: float

    @property
    def read(self) -> float:
        return self.prefill + self.generate


def per_example(metrics: dict[str, Any]) -> PerExample:
    seconds = metrics["seconds"]
    return PerExample(*(float(seconds.get(f"{stage}_mean") or 0.0) for stage in ("compress", "prefill", "generate")))


Measured = dict[tuple[str, float], PerExample]  # (family, rate) -> seconds per example


def measure(families: tuple[str, ...] = FAMILIES, limit: int = LIMIT) -> tuple[PerExample, Measured]:
    """The full read's seconds per example, and (compress, read) per family and rate."""
    scratch = Path(tempfile.mkdtemp(prefix="pcbench-break-even-"))
    task = ["task=hotpotqa", f"task.path={HOTPOT}", f"task.limit={limit}", "reader=smollm2",
            "reader.batch_size=1", "reader.device=cpu"]
    # Warm the reader first (weights, first-call allocation), in a cache and folder of its own.
    cell([*task, "compressor=none", "task.limit=1"], scratch / "warm", scratch / "warm")
    _, metrics = cell([*task, "compressor=none"], scratch / "none", scratch / "none")
    full = per_example(metrics)
    out: Measured = {}
    for family in families:
        # Warm the family's models on one example at another rate, in a cache of its own.
        cell([*task, f"compressor={family}", "compressor.rate=0.3", "task.limit=1"],
             scratch / f"{family}-warm", scratch / f"{family}-warm")
        for rate in RATES:
            name = f"{family}-{rate}"
            _, metrics = cell([*task, f"compressor={family}", f"compressor.rate={rate}"],
                              scratch / name, scratch / name)
            out[(family, rate)] = per_example(metrics)
    return full, out


def rows_of(full: PerExample, measured: Measured, limit: int,
            reader: str = "SmolLM2, CPU") -> list[tuple[str, str, str]]:
    rows = [(f"break-even: full context read (HotpotQA x{limit}, {reader})", f"{full.read:.2f} s/example",
             f"prefill {full.prefill:.2f} + generate {full.generate:.2f}, reader batch 1")]
    for family in dict.fromkeys(f for f, _ in measured):
        pays: list[float] = []
        for rate in RATES:
            if (family, rate) not in measured:
                continue
            seconds = measured[(family, rate)]
            total = seconds.compress + seconds.read
            if total < full.read:
                pays.append(rate)
            rows.append((f"break-even: {family} at {1 / rate:.0f}x", f"{total:.2f} s vs {full.read:.2f} s",
                         f"compress {seconds.compress:.2f} + read {seconds.read:.2f} (prefill {seconds.prefill:.2f} "
                         f"+ generate {seconds.generate:.2f}); {'pays' if total < full.read else 'does not pay'}; "
                         f"pays while compressing under {max(0.0, full.read - seconds.read):.2f} s/example "
                         f"({total / full.read:.2f}x the full read)"))
        crossover = f"from {1 / max(pays):.0f}x" if pays else "never, up to 10x"
        rows.append((f"break-even: {family}, crossover", crossover, "lowest compression at which it pays"))
    return rows


def run(families: tuple[str, ...] = FAMILIES, limit: int = LIMIT) -> list[tuple[str, str, str]]:
    if not HOTPOT.exists():
        return [("break-even", "skipped", f"{HOTPOT} is absent")]
    full, measured = measure(families, limit)
    return rows_of(full, measured, limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=LIMIT, help="HotpotQA examples")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="one family (repeatable)")
    args = parser.parse_args()
    for name, value, note in run(tuple(args.family or FAMILIES), args.limit):
        print(f"  {name:<48}  {value:>20}  {note}")


if __name__ == "__main__":
    main()
