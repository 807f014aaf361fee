"""Sweeps through a real SLURM cluster (`hydra/launcher=slurm`): a one-node slurmctld + slurmd on
this machine, started by `.ci/slurm-up` (which `.ci/run` calls). Skipped, with the reason, where no
cluster answers. Reader-free cells on the needle task; `boom` fails like a bug, `slow` takes its time
(test compressors from tests/e2e/test_sweeps.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.sweeps import cells, run

ROOT = Path(__file__).resolve().parents[2]
TINY = ["reader=none", "task.lengths=[400]", "task.depths=[0,100]"]


def cluster() -> str | None:
    """Why no SLURM cluster can run jobs here, or None when one can."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "SLURM is not installed (run .ci/slurm-up as root: it installs slurm-wlm and munge)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s (is slurmctld running? .ci/slurm-up starts it)"
    up = [s for s in states.stdout.split() if s.rstrip("*~#") in {"idle", "mixed", "allocated", "completing"}]
    if states.returncode != 0 or not up:
        return f"no SLURM node is up (sinfo: {(states.stdout + states.stderr).strip() or 'nothing'}); run .ci/slurm-up"
    return None


WHY = cluster()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or "")


def summary_of(result: subprocess.CompletedProcess[str]) -> str:
    """The sweep's summary line: on stdout, or on stderr after failures, where submitit's warnings
    about sacct (this cluster keeps no accounting) may follow it."""
    lines = (result.stdout + "\n" + result.stderr).splitlines()
    return next((line for line in reversed(lines) if line.startswith("sweep: ")), "")


def slurm(tmp_path: Path, *args: str, study: str, popen: bool = False):  # type: ignore[no-untyped-def]
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    return run(tmp_path, "-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
               "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
               "hydra.launcher.timeout_min=20", f"study={study}", *TINY, *args, timeout=900, popen=popen)


def test_a_grid_runs_as_a_job_array_and_a_failing_cell_is_reported(tmp_path: Path) -> None:
    result = slurm(tmp_path, "compressor=truncate,none,boom", study="slurm_grid")
    assert result.returncode == 1, result.stderr[-3000:] + result.stdout[-3000:]  # a bug among the cells
    folders = cells(tmp_path / "sweep")
    assert set(folders) == {"truncate", "none", "boom"}
    for name in ("truncate", "none"):
        assert json.loads((folders[name] / "metrics.json").read_text())["status"] == "finished"
    summary = summary_of(result)
    assert summary.startswith("sweep: 2 done, 0 skipped (already finished), 1 failed: "), summary
    assert str(folders["boom"]) in summary
    assert (folders["boom"] / "error.txt").read_text().startswith("RuntimeError: out of memory (as a GPU says it)")
    # The jobs really went through SLURM: submitit's folder holds their SLURM logs.
    assert list((tmp_path / "sweep").rglob("*_log.out")), "no SLURM job logs"

    # The same command again: the finished cells are skipped, only the failed one is retried.
    stamps = {n: (folders[n] / "metrics.json").stat().st_mtime_ns for n in ("truncate", "none")}
    again = slurm(tmp_path, "compressor=truncate,none,boom", study="slurm_grid")
    assert summary_of(again).startswith("sweep: 0 done, 2 skipped (already finished), 1 failed: ")
    assert stamps == {n: (folders[n] / "metrics.json").stat().st_mtime_ns for n in ("truncate", "none")}


def test_a_cancelled_array_resubmitted_runs_only_the_missing_cells(tmp_path: Path) -> None:
    # One cell at a time, each a few seconds per example: cancel once the first has finished.
    args = ["compressor=slow", "compressor.seconds=3", "task.seed=1,2,3", "hydra.launcher.array_parallelism=1"]
    process = slurm(tmp_path, *args, study="slurm_cancel", popen=True)
    assert isinstance(process, subprocess.Popen)
    sweep = tmp_path / "sweep"

    def done() -> list[Path]:
        return [m.parent for m in sweep.rglob("metrics.json") if json.loads(m.read_text()).get("status") == "finished"]

    deadline = time.monotonic() + 600  # a ceiling for a hung cluster, not a timing assumption
    while not done() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    first = done()
    assert len(first) == 1, process.communicate()[1][-3000:] if process.poll() is not None else "no cell finished"
    subprocess.run(["scancel", "--name", "pcbench-slurm_cancel"], check=True)
    # submitit learns that a job was cancelled from sacct; this cluster keeps no accounting (no
    # slurmdbd), so the submitting process would wait on: stop it as its user would (Ctrl-C).
    os.killpg(process.pid, signal.SIGINT)
    process.communicate(timeout=120)

    def queued() -> str:
        return subprocess.run(["squeue", "-h", "-n", "pcbench-slurm_cancel"], capture_output=True,
                              text=True).stdout.strip()

    # A cancelled job stays listed while slurmd cleans it up (state CG, completing): wait for that
    # state to pass, as for the first cell above (the deadline is a ceiling for a hung cluster).
    deadline = time.monotonic() + 300
    while queued() and time.monotonic() < deadline:
        time.sleep(1)
    assert not queued(), "jobs still queued after scancel"
    before = done()
    assert len(before) < 3, "the array finished before it was cancelled"
    stamps = {cell: (cell / "metrics.json").stat().st_mtime_ns for cell in before}

    resubmitted = slurm(tmp_path, *args, study="slurm_cancel")
    assert resubmitted.returncode == 0, resubmitted.stderr[-3000:]
    summary = summary_of(resubmitted)
    assert summary.startswith(f"sweep: {3 - len(before)} done, {len(before)} skipped (already finished)"), summary
    assert len(done()) == 3
    # The finished cells were not recomputed.
    assert stamps == {cell: (cell / "metrics.json").stat().st_mtime_ns for cell in before}
    assert all("finished results: skipped" in (cell / "run.log").read_text() for cell in before)


def test_a_cell_signalled_to_stop_is_requeued_and_finishes_from_the_cache(tmp_path: Path) -> None:
    """SLURM warns a job `signal_delay_s` before its time limit with submitit's signal (USR2); the job
    then checkpoints and requeues itself, and the requeued cell takes what it finished from the cache.
    The test sends that signal itself while the cell waits on a gate after its first example, then
    opens the gate, so nothing depends on how long a step takes. (Sent this early, submitit reads the
    signal as a preemption rather than a time-out; both requeue the same way.)"""
    gate = tmp_path / "gate"
    args = ["compressor=gated", f"compressor.gate={gate}", "compress_chunk=1"]
    process = slurm(tmp_path, *args, study="slurm_requeue", popen=True)
    assert isinstance(process, subprocess.Popen)
    sweep = tmp_path / "sweep"

    def compressed() -> int:
        return sum(len(p.read_text().splitlines()) for p in sweep.rglob("predictions.jsonl"))

    deadline = time.monotonic() + 600  # a ceiling for a hung cluster, not a timing assumption
    while compressed() < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert compressed() == 1, process.communicate()[1][-3000:] if process.poll() is not None else "nothing compressed"
    job = subprocess.run(["squeue", "-h", "-n", "pcbench-slurm_requeue", "-o", "%i"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert job, "the job is not in the queue"
    subprocess.run(["scancel", "--signal=USR2", job[0]], check=True)
    gate.touch()
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-3000:]
    assert summary_of(subprocess.CompletedProcess([], 0, stdout, stderr)).startswith("sweep: 1 done"), stderr[-2000:]
    [metrics_file] = list(sweep.rglob("metrics.json"))
    metrics = json.loads(metrics_file.read_text())
    assert metrics["status"] == "finished" and metrics["n_examples"] == 2
    # The requeued run took the example compressed before the signal from the cache.
    assert metrics["cache_hits"]["compress"] == 1
    logs = "\n".join(p.read_text() for p in sorted(sweep.rglob("*_log.*")))
    assert "Caught signal SIGUSR2" in logs and "DUE TO JOB REQUEUE" in logs, logs[-2000:]
