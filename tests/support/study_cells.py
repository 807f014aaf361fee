"""A small real study for the analysis tests: reader-free NIAH cells run through run_cell.

Built once per test process (each cell takes about a second), then copied by the tests that alter
it. Cells: bm25 at two rates (one variant, a curve), bm25 at passage level (a second variant),
random (the control), none at two rates (one experiment: none ignores the rate) and oracle.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CELLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bm25", ("compressor.rate=0.5",)),
    ("bm25", ("compressor.rate=0.25",)),
    ("bm25", ("compressor.rate=0.5", "compressor.level=passage")),
    ("random", ("compressor.rate=0.5",)),
    ("random", ("compressor.rate=0.25",)),
    ("none", ("compressor.rate=0.5",)),
    ("none", ("compressor.rate=0.25",)),
    ("oracle", ()),
)


def compose_cell(compressor: str, overrides: tuple[str, ...], cache: Path, reader: str = "none") -> object:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        return compose("config", overrides=[f"reader={reader}", f"compressor={compressor}", *overrides,
                                            "task.lengths=[400]", "task.depths=[0,25,50,75,100]",
                                            f"cache_dir={cache}"])


def cell_name(compressor: str, overrides: tuple[str, ...]) -> str:
    return "_".join([compressor, *(o.split(".", 1)[1] for o in overrides)]) or compressor


@functools.cache
def _built() -> Path:
    from pcbench.runners.cell import run_cell

    base = Path(tempfile.mkdtemp(prefix="pcbench-study-"))
    for compressor, overrides in CELLS:
        cfg = compose_cell(compressor, overrides, base / "cache")
        run_cell(cfg, base / "study" / "niah" / compressor / cell_name(compressor, overrides),  # type: ignore[arg-type]
                 {"task": "niah", "compressor": compressor, "reader": "none"})
    return base / "study"


def study(into: Path) -> Path:
    """A fresh copy of the study under `into` (tests may add, break or rerun cells)."""
    target = into / "study"
    shutil.copytree(_built(), target)
    return target
