"""A cell's folder: one process at a time, finished only when its records are whole, records in
example order, and two runs of one config equal up to timing fields (pcbench-compare)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from pcbench.analysis.compare import compare
from pcbench.runners.record import cell_lock

ROOT = Path(__file__).resolve().parents[2]
HOTPOT = {"question": "Who wrote it?", "answer": "Ann", "supporting_facts": [["T", 0]],
          "context": [["T", ["Ann wrote it. It was long."]], ["U", ["Bob read it.", " Then he slept."]]]}


def data(tmp_path: Path, numbers: tuple[int, ...] = (0, 1, 2, 3)) -> Path:
    path = tmp_path / f"hotpot{''.join(map(str, numbers))}.jsonl"
    path.write_text("".join(json.dumps({**HOTPOT, "_id": f"q{i}", "question": f"Who wrote {i}?"}) + "\n"
                            for i in numbers))
    return path


def command(tmp_path: Path, folder: Path, cache: str = "cache", *extra: str) -> tuple[list[str], dict[str, str]]:
    defaults = ["task=hotpotqa", f"task.path={data(tmp_path)}", "reader=none", "compressor=bm25",
                "compressor.rate=0.5", f"hydra.run.dir={folder}"]
    given = {e.split("=", 1)[0] for e in extra}
    args = [sys.executable, str(ROOT / "run.py"), *(d for d in defaults if d.split("=", 1)[0] not in given), *extra]
    env = {**os.environ, "PCBENCH_CACHE": str(tmp_path / cache), "HF_HUB_OFFLINE": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return args, env


def run(tmp_path: Path, folder: Path, cache: str = "cache", *extra: str) -> subprocess.CompletedProcess[str]:
    args, env = command(tmp_path, folder, cache, *extra)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def ids(folder: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (folder / "predictions.jsonl").read_text().splitlines()]


def test_a_second_process_on_one_cell_waits_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "cell"
    args, env = command(tmp_path, folder)
    with cell_lock(folder):  # another process holds the cell
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        assert process.stdout is not None
        seen: list[str] = []
        for line in process.stdout:  # no clock: read until it says it waits
            seen.append(line)
            if "another process is running this cell" in line:
                break
        assert any("waiting for it" in line for line in seen), "".join(seen)
        assert not (folder / "predictions.jsonl").exists(), "it waited: nothing written while the cell is held"
    rest = process.stdout.read()
    assert process.wait(timeout=300) == 0, rest
    assert ids(folder) == ["q0", "q1", "q2", "q3"]


def test_two_runs_at_once_leave_one_whole_set_of_records(tmp_path: Path) -> None:
    folder = tmp_path / "cell"
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [threading.Thread(target=lambda: results.append(run(tmp_path, folder))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    assert ids(folder) == ["q0", "q1", "q2", "q3"]
    assert sum("already finished" in r.stdout for r in results) == 1  # the second found it done


def test_a_folder_with_cut_records_is_not_finished(tmp_path: Path) -> None:
    folder = tmp_path / "cell"
    assert run(tmp_path, folder).returncode == 0
    assert "already finished" in run(tmp_path, folder).stdout
    lines = (folder / "predictions.jsonl").read_text().splitlines()
    (folder / "predictions.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])
    again = run(tmp_path, folder)
    assert again.returncode == 0 and "already finished" not in again.stdout
    assert ids(folder) == ["q0", "q1", "q2", "q3"]


def test_records_are_in_example_order_and_reruns_compare_equal(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert run(tmp_path, first).returncode == 0
    # Another cache that already holds q2 and q3: the rerun streams them (hits) before q0 and q1.
    assert run(tmp_path, tmp_path / "prefill", "cache2", f"task.path={data(tmp_path, (2, 3))}").returncode == 0
    assert run(tmp_path, second, "cache2").returncode == 0
    assert ids(second) == ["q0", "q1", "q2", "q3"]
    assert compare(first, second) == []
    # A changed knob is a difference, named.
    third = tmp_path / "third"
    assert run(tmp_path, third, "cache", "compressor.rate=0.9").returncode == 0
    assert any("kept_ratio" in line for line in compare(first, third))
    # Another rate of a cached cell computes no budget-free work again: all of it is reused.
    hits = json.loads((third / "metrics.json").read_text())["cache_hits"]
    assert hits["computed_work"] == 0 and hits["reused_work"] > 0
    shown = subprocess.run([sys.executable, "-m", "pcbench.analysis.compare", str(first), str(second)],
                           capture_output=True, text=True, cwd=ROOT)
    assert shown.returncode == 0 and shown.stdout.startswith("same results"), shown.stdout + shown.stderr


def test_report_escapes_knob_values(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for i, template in enumerate(["<script>alert(1)</script> {context} {question}", "{context} {question}"]):
        result = run(tmp_path, runs / f"cell{i}", "cache", f"task.template='{template}'")
        assert result.returncode == 0, result.stderr[-2000:]
    report = subprocess.run([sys.executable, "-m", "pcbench.analysis.report", str(runs), "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, cwd=ROOT)
    assert report.returncode == 0, report.stderr[-2000:]  # reader-free cells: the metric defaults to a diagnostic
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
