"""What the benchmarks share: where things are, one cell run in this process, and which words of a text
survive in an output."""

from __future__ import annotations

import os
import re
import sys
import time
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BENCH_ENV = ROOT / ".bench-env"  # the reference packages, installed by `make bench` (never dependencies)
HOTPOT = ROOT.parent / "shared" / "data" / "hotpotqa" / "hotpot_dev_distractor_800.jsonl"


def word_survival(original: str, output: str) -> dict[int, float]:
    """For each word of `original` (a run of non-space characters, by start offset), the share of its
    characters found in `output`, aligned character by character (difflib, no junk heuristic)."""
    kept = [False] * len(original)
    for block in SequenceMatcher(None, original, output, autojunk=False).get_matching_blocks():
        for k in range(block.a, block.a + block.size):
            kept[k] = True
    return {m.start(): sum(kept[m.start():m.end()]) / (m.end() - m.start()) for m in re.finditer(r"\S+", original)}


def cell(overrides: list[str], cache: Path, out: Path) -> tuple[float, dict[str, Any]]:
    """One cell run in this process (as Hydra's local multirun runs it): wall seconds and its metrics."""
    from hydra import compose, initialize_config_dir

    from pcbench.runners.cell import run_cell

    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=[*overrides, f"cache_dir={cache}"])
    names = {"task": "task", "compressor": "compressor", "reader": "reader"}
    for item in overrides:
        key, _, value = item.partition("=")
        if key in names:
            names[key] = value
    start = time.perf_counter()
    metrics = run_cell(cfg, out, names)
    return time.perf_counter() - start, metrics
