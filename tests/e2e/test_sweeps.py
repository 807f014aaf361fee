"""Robust sweeps: variants, failed cells that do not stop a sweep, submitit, skip and resume after a kill.

Every sweep here is real (`python run.py -m ...` in a subprocess, reader-free, a few tiny cells).
Two compressors exist only for these tests, written into a temporary module: `boom` fails the way
a bug or an out-of-memory error would (a plain RuntimeError), `slow` keeps everything but takes
its time, so a run can be killed mid-cell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import needs_smollm2
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from support.sweeps import ROOT, TINY, cells, last_line, run, snapshot

from hydra_plugins.pcbench_sweeper.sweeper import expand, waiting_line
from pcbench.runners.record import finished


def longbench_file(tmp_path: Path) -> Path:
    """Two LongBench-format rows: a real task without gold evidence, so `oracle` fails on it at run time."""
    rows = [{"input": "Who wrote the book?", "context": f"Passage 1:\nAnn wrote the book in 199{i}. It sold well.",
             "answers": ["Ann"], "length": 10, "dataset": "hotpotqa", "language": "en", "all_classes": None,
             "_id": f"x{i}"} for i in range(2)]
    path = tmp_path / "hotpotqa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- variants: the pure expansion --------------------------------------------------------------


def parse(*overrides: str) -> list:
    return OverridesParser.create().parse_overrides(list(overrides))


def test_variants_cross_the_grid_and_keep_their_own_keys() -> None:
    grid = parse("task=hotpotqa,nq", "compressor.rate=0.25")
    variants = [parse("compressor=provence", "compressor.threshold=0.1", "compressor.rate=null"),
                parse("compressor=llmlingua2", "compressor.rate=0.5,0.33")]
    jobs = [sorted(job) for job in expand(grid, variants)]
    assert jobs == [sorted(j) for j in [
        ["compressor=provence", "compressor.threshold=0.1", "compressor.rate=null", "task=hotpotqa"],
        ["compressor=provence", "compressor.threshold=0.1", "compressor.rate=null", "task=nq"],
        ["compressor=llmlingua2", "compressor.rate=0.5", "task=hotpotqa"],
        ["compressor=llmlingua2", "compressor.rate=0.5", "task=nq"],
        ["compressor=llmlingua2", "compressor.rate=0.33", "task=hotpotqa"],
        ["compressor=llmlingua2", "compressor.rate=0.33", "task=nq"],
    ]], "the grid's rate never reaches a variant that sets its own"


def test_identical_cells_are_kept_once_and_no_variants_is_the_plain_grid() -> None:
    grid = parse("compressor.rate=0.25,0.5")
    # Both grid rates are overridden by the variant: one cell, not two copies of it.
    assert expand(grid, [parse("compressor=none", "compressor.rate=null")]) == [
        ["compressor=none", "compressor.rate=null"]]
    assert expand(grid, []) == [["compressor.rate=0.25"], ["compressor.rate=0.5"]]
    assert expand([], [parse("compressor=bm25"), parse("compressor=none")]) == [["compressor=bm25"],
                                                                                ["compressor=none"]]


def test_waiting_for_is_one_line() -> None:
    assert waiting_line({"abstractive": "not built", "recomp": "needs models"}) == (
        "preset waits for compressors not built yet: abstractive (not built), recomp (needs models)")


@needs_smollm2
def test_a_variants_preset_runs_every_variant_for_real(tmp_path: Path) -> None:
    result = run(tmp_path, "-m", "+experiment=tiny_variants")
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    output = result.stdout + result.stderr
    assert output.count("preset waits for compressors not built yet: abstractive (no abstractive compressor "
                        "yet), recomp (needs its trained models)") == 1
    assert "checked 3 cells" in output
    assert last_line(result.stdout) == "sweep: 3 done, 0 skipped (already finished), 0 failed"
    found = {}
    folders = [p.parent for p in (tmp_path / "sweep").rglob("run.log")]
    assert len(folders) == 3
    for folder in folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        records = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        side = metrics["requested"].get("side", "none")
        found[side] = {r["id"]: r["answer_in_context"] for r in records}
        assert metrics["requested"].get("rate") in (0.5, None) and metrics["task"] == "niah"
    # head keeps the needle at depth 0 only, tail the one at depth 100 only: the pairing took effect.
    assert set(found) == {"head", "tail", "none"}
    assert sorted(found["head"].values()) == sorted(found["tail"].values()) == [False, True]
    assert found["head"] != found["tail"] and all(found["none"].values())


# -- submitit_local: a real grid, skip on rerun, failed cells --------------------------------------


@needs_smollm2
def test_submitit_grid_finishes_then_a_rerun_skips_every_cell(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    args = ["-m", "hydra/launcher=submitit_local", *TINY, "compressor=none,truncate"]
    first = run(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
    assert last_line(first.stdout) == "sweep: 2 done, 0 skipped (already finished), 0 failed"
    folders = cells(tmp_path / "sweep")
    assert len(folders) == 2
    for folder in folders.values():
        assert json.loads((folder / "metrics.json").read_text())["status"] == "finished"
    before = {name: snapshot(folder) for name, folder in folders.items()}
    second = run(tmp_path, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert last_line(second.stdout) == "sweep: 0 done, 2 skipped (already finished), 0 failed"
    assert second.stdout.count("(already finished: skipped)") == 2
    assert {name: snapshot(folder) for name, folder in folders.items()} == before, "results untouched"


@needs_smollm2
def test_failed_cells_under_submitit_leave_error_txt_and_the_others_finish(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    data = longbench_file(tmp_path)
    result = run(tmp_path, "-m", "hydra/launcher=submitit_local", "reader=none", "task=longbench/hotpotqa",
                 f"task.path={data}", "compressor=none,oracle,boom")
    # A bug among the failures: exit 1 (bad input alone would be 2).
    assert result.returncode == 1, result.stderr[-3000:] + result.stdout[-3000:]
    folders = cells(tmp_path / "sweep")
    assert set(folders) == {"none", "oracle", "boom"} and len(list((tmp_path / "sweep").rglob("run.log"))) == 3
    assert json.loads((folders["none"] / "metrics.json").read_text())["status"] == "finished"
    summary = last_line(result.stderr)
    assert summary.startswith("sweep: 1 done, 0 skipped (already finished), 2 failed: "), summary
    assert str(folders["oracle"]) in summary and str(folders["boom"]) in summary
    oracle = (folders["oracle"] / "error.txt").read_text()
    assert oracle.strip() == ("oracle (level=sentence): example 'x0' has no gold evidence sentences; oracle needs "
                              "a task with gold evidence (hotpotqa, nq, niah)")
    boom = (folders["boom"] / "error.txt").read_text()
    assert boom.startswith("RuntimeError: out of memory (as a GPU says it)\n")
    assert "Traceback (most recent call last)" in boom and "pcbench_test_compressors.py" in boom
    assert "Traceback" in (folders["boom"] / "run.log").read_text()
    for name in ("oracle", "boom"):
        assert not (folders[name] / "metrics.json").exists()
    assert "Traceback" not in result.stderr + result.stdout, "tracebacks live in error.txt and run.log"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "sweep job #1" in errors[0] and "sweep job #2" in errors[1]
    # A rerun retries exactly the failed cells: the finished one is skipped.
    again = run(tmp_path, "-m", "hydra/launcher=submitit_local", "reader=none", "task=longbench/hotpotqa",
                f"task.path={data}", "compressor=none,oracle")
    assert again.returncode == 2 and last_line(again.stderr).startswith("sweep: 0 done, 1 skipped")


@needs_smollm2
def test_a_bug_in_a_local_sweep_goes_on_and_a_single_run_shows_its_traceback(tmp_path: Path) -> None:
    result = run(tmp_path, "-m", *TINY, "compressor=boom,none")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert last_line(result.stderr).startswith("sweep: 1 done, 0 skipped (already finished), 1 failed: ")
    folders = cells(tmp_path / "sweep")
    assert "Traceback" in (folders["boom"] / "error.txt").read_text()
    assert json.loads((folders["none"] / "metrics.json").read_text())["status"] == "finished"
    single = run(tmp_path, *TINY, "compressor=boom")
    assert single.returncode == 1 and "Traceback" in single.stderr and "RuntimeError: out of memory" in single.stderr
    assert (tmp_path / "run" / "error.txt").read_text().startswith("RuntimeError: out of memory")


# -- a killed cell -----------------------------------------------------------------------------------


@needs_smollm2
def test_a_killed_cell_is_not_finished_and_a_rerun_recomputes_only_the_rest(tmp_path: Path) -> None:
    depths = "task.depths=[0,10,20,30,40,50,60,70,80,90,100]"  # 11 examples, 0.4 s each
    args = ["reader=none", "task.lengths=[400]", depths, "compressor=slow", "compress_chunk=1"]
    process = run(tmp_path, *args, popen=True)
    assert isinstance(process, subprocess.Popen)
    predictions = tmp_path / "run" / "predictions.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if predictions.exists() and len(predictions.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the cell ended before it could be killed: " + process.communicate()[1][-2000:]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = len(predictions.read_text().splitlines())
    assert 2 <= written < 11
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert finished(tmp_path / "run", "any") is None
    rerun = run(tmp_path, *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["n_examples"] == 11
    # What the killed run compressed comes from the cache (a kill between the cache write and the
    # record leaves one more entry than records); the rest is computed now.
    hits = metrics["cache_hits"]["compress"]
    assert written <= hits <= written + 1 and hits < 11
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(records) == 11 and sum(r["cached"]["compress"] for r in records) == hits


# -- the SLURM preset ---------------------------------------------------------------------------------


def test_slurm_preset_sets_resources_array_and_requeue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher's own launch(), down to the sbatch script submitit writes (sbatch itself is not called)."""
    slurm = pytest.importorskip("submitit.slurm.slurm")
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    fake_bin = tmp_path / "bin"  # submitit looks for srun before building a SLURM executor
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    scripts: list[str] = []
    requeues: list[int] = []

    def capture(self: object, command: str) -> None:
        scripts.append(self._make_submission_file_text(command, "uid"))  # type: ignore[attr-defined]
        requeues.append(self.max_num_timeout)  # type: ignore[attr-defined]
        raise RuntimeError("captured")

    monkeypatch.setattr(slurm.SlurmExecutor, "_submit_command", capture)
    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=2",
                 "study=rates", f"hydra.sweep.dir={tmp_path / 'rates'}"]
    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # the launcher's interpolations read it, as in a real sweep
        launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher" and launcher.params["max_num_timeout"] == 3
    launcher.config = cfg
    with pytest.raises(RuntimeError, match="captured"):
        launcher.launch([[f"compressor.rate=0.{i + 1}"] for i in range(40)], initial_job_idx=0)
    (script,) = scripts
    assert requeues == [3], "timeouts are requeued up to max_num_timeout times"
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=64GB", "#SBATCH --time=240", "#SBATCH --array=0-39%32", "#SBATCH --signal=USR2@120",
                 "#SBATCH --job-name=pcbench-rates"):
        assert line in script, script
