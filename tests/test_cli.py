"""The command line: bad input is one clear line (exit 2), never a traceback; sweeps run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_smollm2

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PCBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "run.py", *args, f"hydra.run.dir={tmp_path / 'run'}",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(("args", "needles"), [
    (["compressor=nope"], ["unknown compressor 'nope'", "allowed:", "bm25"]),
    (["task=longbench/nope"], ["unknown task 'longbench/nope'", "longbench/hotpotqa"]),
    (["reader=gpt9"], ["unknown reader 'gpt9'", "smollm2"]),
    (["-m", "compressor=none,nope"], ["unknown compressor 'nope'"]),
    (["compressor=bm25", "compressor.ratee=0.5"], ["compressor 'bm25' has no key 'ratee'", "rate"]),
    (["seeed=1"], ["unknown setting 'seeed'", "seed"]),
])
def test_unknown_options_and_keys_are_refused_before_anything_runs(tmp_path: Path, args: list[str],
                                                                   needles: list[str]) -> None:
    one_line_error(run(tmp_path, *args), *needles)


@needs_smollm2
@pytest.mark.parametrize(("args", "needles"), [
    (["compressor=bm25", "compressor.rate=1.5", "reader=none"], ["rate=1.5", "(0, 1]"]),
    (["compressor=bm25", "compressor.rate=0", "reader=none"], ["rate=0", "(0, 1]"]),
    (["compressor=bm25", "+compressor.foo=1", "reader=none"], ["no knob 'foo'", "k1"]),
    (["task=hotpotqa", "task.path=/nowhere/hotpot.jsonl", "reader=none"], ["/nowhere/hotpot.jsonl"]),
])
def test_bad_values_are_one_line(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    one_line_error(run(tmp_path, *args), *needles)


@needs_smollm2
def test_corrupt_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    good = {"_id": "a", "question": "q?", "answer": "x", "supporting_facts": [], "context": [["T", ["x."]]]}
    data.write_text(json.dumps(good) + "\n{not json\n")
    one_line_error(run(tmp_path, "task=hotpotqa", f"task.path={data}", "reader=none"), str(data), "line 2")


@needs_smollm2
def test_local_multirun_sweep_writes_every_cell(tmp_path: Path) -> None:
    result = run(tmp_path, "-m", "compressor=none,bm25", "compressor.rate=0.5,0.25", "reader=none",
                 "task.lengths=[300]", "task.depths=[50]")
    assert result.returncode == 0, result.stderr[-3000:]
    cells = sorted((tmp_path / "sweep").rglob("metrics.json"))
    assert len(cells) == 4
    kept = {json.loads(p.read_text())["compressor"] + str(json.loads(p.read_text())["requested"].get("rate")):
            json.loads(p.read_text())["kept_ratio"] for p in cells}
    assert kept["none0.5"] == kept["none0.25"] == 1.0
    assert kept["bm250.25"] < kept["bm250.5"] < 1.0
