"""The test sweeps' runner: `python run.py -m ...` in a subprocess with the test-only compressors
(`boom` fails as a bug or an out-of-memory error would, `slow` takes its time, `gated` waits for a
file), and what the tests read back from a sweep folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ["reader=none", "task.lengths=[400]", "task.depths=[0,100]"]
# Files a finished cell writes once; run.log is appended to by every visit (a skip says so there).
RESULTS = ("config.yaml", "metrics.json", "predictions.jsonl")

HELPERS = '''
"""Compressors for tests/e2e/test_sweeps.py."""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pcbench.compressors.base import Compressed, Compressor


@dataclass
class Boom(Compressor):
    question_aware: ClassVar[bool] = False
    message: str

    def compress(self, example, env):
        raise RuntimeError(self.message)


@dataclass
class Slow(Compressor):
    question_aware: ClassVar[bool] = False
    seconds: float

    def compress(self, example, env):
        time.sleep(self.seconds)
        return Compressed(example.passages)


@dataclass
class Gated(Compressor):
    """The first example at once; every later one waits until the file `gate` exists."""
    question_aware: ClassVar[bool] = False
    gate: str

    def compress(self, example, env):
        first = Path(self.gate + ".first")
        if not first.exists():
            first.touch()
            return Compressed(example.passages)
        while not Path(self.gate).exists():
            time.sleep(0.2)
        return Compressed(example.passages)
'''


def extra(tmp_path: Path) -> Path:
    """A config dir (added with -cd) holding the test compressors and a variants preset."""
    conf = tmp_path / "extra"
    (conf / "compressor").mkdir(parents=True, exist_ok=True)
    (conf / "experiment").mkdir(exist_ok=True)
    (tmp_path / "helpers").mkdir(exist_ok=True)
    (tmp_path / "helpers" / "pcbench_test_compressors.py").write_text(HELPERS)
    (conf / "compressor" / "boom.yaml").write_text(
        "_target_: pcbench_test_compressors.Boom\nmessage: out of memory (as a GPU says it)\n")
    (conf / "compressor" / "slow.yaml").write_text("_target_: pcbench_test_compressors.Slow\nseconds: 0.4\n")
    (conf / "compressor" / "gated.yaml").write_text("_target_: pcbench_test_compressors.Gated\ngate: ???\n")
    (conf / "experiment" / "tiny_variants.yaml").write_text("""# @package _global_
defaults:
  - override /reader: none
task:
  lengths: [400]
  depths: [0, 100]
hydra:
  sweeper:
    params:
      task.seed: 1
    variants:
      - [compressor=truncate, compressor.side=head]
      - [compressor=truncate, compressor.side=tail, compressor.rate=0.5]
      - [compressor=none]
    waiting_for:
      abstractive: no abstractive compressor yet
      recomp: needs its trained models
""")
    return conf


def run(tmp_path: Path, *args: str, sweep: str = "sweep", timeout: int = 400,
        popen: bool = False) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    env = {**os.environ, "PCBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "helpers"), os.environ.get("PYTHONPATH", "")])}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "run.py", "-cd", str(extra(tmp_path)), *args,
               f"hydra.sweep.dir={tmp_path / sweep}", f"hydra.run.dir={tmp_path / 'run'}"]
    if popen:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def cells(root: Path) -> dict[str, Path]:
    """Cell folders under a sweep, by compressor (multirun/<study>/<task>/<compressor>/<cell>)."""
    return {p.parent.parent.name: p.parent for p in root.rglob("run.log")}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {name: ((folder / name).stat().st_mtime_ns, (folder / name).stat().st_size) for name in RESULTS}


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]
