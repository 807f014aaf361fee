"""The bad-input suite: every command a user can get wrong, and the one line it must give.

Each case is a command (the cell, `pcbench-report`, `pcbench-inspect`, `pcbench-train` or
`pcbench-cache`) run as a user runs it, and what must come back:
- "error": exit 2 and exactly one stderr line `error: ...` holding every needle;
- "warn": the command goes on (exit 0), one stderr line holds every needle (what was skipped and why);
- "ok": it works (exit 0).
A traceback anywhere, or exit 0 where an error was due, fails the case. `python tests/e2e/test_bad_input.py`
runs the whole table and counts the outcomes (one line, traceback, silent, partial).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"_id": "a", "question": "Who wrote it?", "answer": "Ann", "supporting_facts": [["T", 0]],
        "context": [["T", ["Ann wrote it."]], ["U", ["Bob read it."]]]}
TOOLS = {"run": [str(ROOT / "run.py")], "report": ["-m", "pcbench.analysis.report"],
         "inspect": ["-m", "pcbench.analysis.inspect"], "train": ["-m", "pcbench.apps.train"],
         "cache": ["-m", "pcbench.apps.cache"], "serving": ["-m", "pcbench.apps.serving"]}
# What every cell case adds unless it sets its own: a tiny local task, no generation.
CELL = ["task=hotpotqa", "task.path={data}/hotpot.jsonl", "reader=none"]


@dataclass
class Case:
    id: str
    tool: str
    args: list[str]
    expect: str  # "error", "warn" or "ok"
    needles: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None  # relative to the world folder; default the repository root


CASES = [
    # -- top-level keys --------------------------------------------------------------------------
    Case("stage", "run", ["stage=bogus"], "error", ["stage='bogus'", "all, compress"]),
    Case("rerun", "run", ["rerun=maybe"], "error", ["rerun='maybe'", "true or false"]),
    Case("wandb", "run", ["wandb.enabled=maybe"], "error", ["wandb.enabled='maybe'", "true or false"]),
    Case("chunk", "run", ["compress_chunk=0"], "error", ["compress_chunk=0", ">= 1"]),
    Case("cache-empty", "run", ["cache_dir="], "error", ["cache_dir", "folder"]),
    Case("study-path", "run", ["study=../../../tmp/x"], "error", ["study='../../../tmp/x'", "plain name"]),
    Case("duplicate-override", "run", ["compressor=bm25", "compressor.rate=0.5", "compressor.rate=0.3"], "error",
         ["compressor.rate", "more than once"]),
    # -- chain steps are compressors like any other ------------------------------------------------
    Case("step-rate-high", "run", ["compressor=dspc", "compressor.steps.fine.rate=2"], "error",
         ["compressor.steps.fine.rate=2 ", "(0, 1]"]),
    Case("step-rate-neg", "run", ["compressor=dspc", "compressor.steps.fine.rate=-1"], "error",
         ["compressor.steps.fine.rate=-1", "(0, 1]"]),
    Case("step-rate-text", "run", ["compressor=dspc", "compressor.steps.fine.rate=abc"], "error",
         ["compressor.steps.fine.rate='abc'"]),
    Case("step-level", "run", ["compressor=dspc", "compressor.steps.coarse.level=bogus"], "error",
         ["compressor.steps.coarse.level='bogus'", "sentence"]),
    Case("step-budget", "run", ["compressor=dspc", "compressor.steps.fine.target_tokens=100"], "error",
         ["compressor.steps.fine", "compressor.steps.fine.rate=null"]),
    # -- numbers ---------------------------------------------------------------------------------
    Case("rate-nan", "run", ["compressor=bm25", "compressor.rate=nan"], "error", ["compressor.rate=nan", "finite"]),
    Case("rate-inf", "run", ["compressor=bm25", "compressor.rate=inf"], "error", ["compressor.rate=inf", "finite"]),
    Case("threshold-nan", "run", ["compressor=provence", "compressor.threshold=nan"], "error",
         ["compressor.threshold=nan", "finite"]),
    # -- the seeds' last methods ------------------------------------------------------------------
    Case("recomp-top-k-and-rate", "run", ["compressor=recomp_extractive", "compressor.rate=0.5"], "error",
         ["compressor.top_k=1", "rate must be null"]),
    Case("wim-answer-from", "run", ["compressor=wim", "compressor.answer_from=both"], "error",
         ["compressor.answer_from='both'", "context_and_margins"]),
    Case("pisco-no-folder", "run", ["reader=pisco", "reader.model=/nonexistent/pisco"], "error",
         ["reader.model='/nonexistent/pisco'", "no such folder"]),
    # -- devices ---------------------------------------------------------------------------------
    Case("device-banana", "run", ["compressor=selective_context", "compressor.device=banana"], "error",
         ["compressor.device='banana'", "auto, cpu, cuda"]),
    Case("device-cuda", "run", ["compressor=selective_context", "compressor.device=cuda"], "error",
         ["compressor.device='cuda'", "no CUDA"]),
    # -- templates -------------------------------------------------------------------------------
    Case("template-unknown", "run", ["task.template='{foo} {context} {question}'"], "error",
         ["task.template", "{foo}", "{context}"]),
    Case("template-no-context", "run", ["task.template='Answer: {question}'"], "error",
         ["task.template", "{context}"]),
    # -- data ------------------------------------------------------------------------------------
    Case("answer-list", "run", ["task.path={data}/answer_list.jsonl"], "error",
         ["answer_list.jsonl: line 1", "answer"]),
    Case("question-dict", "run", ["task.path={data}/question_dict.jsonl"], "error",
         ["question_dict.jsonl: line 1", "question"]),
    Case("question-null", "run", ["task.path={data}/question_null.jsonl"], "error",
         ["question_null.jsonl: line 1", "question"]),
    Case("nq-answers", "run", ["task=nq", "task.path={data}/nq_bad.jsonl"], "error",
         ["nq_bad.jsonl: line 1", "answers is 5", "list of strings"]),
    Case("duplicate-ids", "run", ["task.path={data}/duplicate_ids.jsonl"], "error",
         ["duplicate_ids.jsonl: line 2", "'a'", "line 1"]),
    Case("empty-tokenizer", "run", ["reader.tokenizer_model={data}/empty_tokenizer"], "error",
         ["empty_tokenizer", "vocabulary"]),
    # -- cells that would share a folder ---------------------------------------------------------
    Case("path-collision", "run", ["-m", "task.path={data}/hotpot.jsonl,{data}/sub/hotpot.jsonl"], "ok"),
    Case("folder-collision", "run", ["-m", "cache_dir={data}/c1,{data}/c2"], "error",
         ["would write one folder", "exclude_keys"]),
    # -- remote code -----------------------------------------------------------------------------
    Case("remote-code", "run", ["compressor=provence", "compressor.model={data}/remote_model"], "error",
         ["remote_model", "trust_remote_code"]),
    # -- endpoints: bounded, credentials never shown ------------------------------------------------
    Case("endpoint-down", "run", ["reader=openai", "reader.model=m", "reader.base_url=http://user:s3cret@127.0.0.1:9/v1",
                                  "reader.max_retries=1"], "error", ["127.0.0.1:9", "retry_seconds=60"]),
    Case("endpoint-no-host", "run", ["reader=openai", "reader.model=m", "reader.base_url=http://no-such-host.invalid/v1"],
         "error", ["no-such-host.invalid", "cannot be resolved"]),
    # -- report ----------------------------------------------------------------------------------
    Case("report-cut", "report", ["{data}/good", "{data}/cut", "--out", "{data}/out1"], "warn",
         ["predictions.jsonl line 2", "cut"]),
    Case("report-no-predictions", "report", ["{data}/good", "{data}/nopred", "--out", "{data}/out2"], "warn",
         ["predictions.jsonl is missing"]),
    Case("report-bad-metrics", "report", ["{data}/good", "{data}/badmetrics", "--out", "{data}/out3"], "warn",
         ["metrics.json is unreadable (JSONDecodeError)"]),
    Case("report-only-damaged", "report", ["{data}/cut", "--out", "{data}/out4"], "error", ["no finished cells"]),
    # -- pcbench-serving -----------------------------------------------------------------------------
    Case("serving-no-server", "serving", ["{data}/good", "--out", "{data}/sv1"], "error", ["--base-url", "--start"]),
    Case("serving-concurrency", "serving", ["{data}/good", "--out", "{data}/sv2", "--base-url", "http://127.0.0.1:9/v1",
                                            "--concurrency", "0"], "error", ["--concurrency='0'", ">= 1"]),
    Case("serving-price", "serving", ["{data}/good", "--out", "{data}/sv3", "--base-url", "http://127.0.0.1:9/v1",
                                      "--price", "cheap"], "error", ["--price='cheap'", "2 non-negative numbers"]),
    Case("serving-cut-cell", "serving", ["{data}/cut", "--out", "{data}/sv4", "--base-url", "http://127.0.0.1:9/v1"],
         "error", ["predictions.jsonl line 2", "cut or not JSON"]),
    Case("serving-no-baseline", "serving", ["{data}/good", "--out", "{data}/sv5", "--base-url",
                                            "http://127.0.0.1:9/v1"], "error", ["no full-context cell", "--baseline"]),
    Case("serving-bad-url", "serving", ["{data}/good", "--out", "{data}/sv6", "--base-url", "localhost:8000"], "error",
         ["base_url='localhost:8000'", "http(s) URL"]),
    Case("report-out-file", "report", ["{data}/good", "--out", "{data}/a_file"], "error", ["a_file", "not a folder"]),
    # -- inspect ---------------------------------------------------------------------------------
    Case("inspect-cut", "inspect", ["{data}/cut/cell"], "warn", ["predictions.jsonl line 2", "cut"]),
    Case("inspect-no-predictions", "inspect", ["{data}/nopred/cell"], "error", ["predictions.jsonl is missing"]),
    Case("inspect-bad-metrics", "inspect", ["{data}/badmetrics/cell"], "error",
         ["metrics.json is unreadable (JSONDecodeError)"]),
    Case("inspect-html-file-in-the-way", "inspect", ["{data}/good/cell", "--html", "{data}/a_file/x.html"], "error",
         ["a_file"]),
    Case("inspect-elsewhere", "inspect", ["{data}/good/cell"], "ok"),
    # -- trainer ---------------------------------------------------------------------------------
    Case("train-threads", "train", ["--out", "{data}/t1", "--threads", "-1"], "error", ["--threads=-1", ">= 1"]),
    Case("train-device", "train", ["--out", "{data}/t2", "--device", "cuda"], "error", ["--device", "no CUDA"]),
    Case("train-out-file", "train", ["--out", "{data}/a_file"], "error", ["a_file", "not a folder"]),
    Case("train-eval-limit", "train", ["--out", "{data}/t3", "--eval-limit", "-1"], "error",
         ["--eval-limit=-1", ">= 1"]),
    Case("train-epochs", "train", ["--out", "{data}/t4", "--epochs", "inf"], "error", ["--epochs=inf", "finite"]),
    # -- cache -----------------------------------------------------------------------------------
    Case("prune-unknown-compressor", "cache", ["--root", "{data}/cache", "prune", "--compressor", "nosuch"], "error",
         ["nosuch", "bm25"]),
    Case("prune-unknown-kind", "cache", ["--root", "{data}/cache", "prune", "--kind", "nosuch"], "error",
         ["nosuch", "compressed"]),
    Case("prune-escape", "cache", ["--root", "{data}/cache", "prune", "--kind", "../victim"], "error",
         ["../victim", "compressed"]),
]


def world(folder: Path) -> Path:
    """The files the cases read: task files good and bad, finished cells, a tokenizer, a model folder."""
    data = folder / "data"
    data.mkdir(parents=True)

    def jsonl(name: str, *records: dict[str, object]) -> None:
        (data / name).write_text("".join(json.dumps(r) + "\n" for r in records))

    jsonl("hotpot.jsonl", GOOD, {**GOOD, "_id": "b"})
    (data / "sub").mkdir()
    jsonl("sub/hotpot.jsonl", {**GOOD, "_id": "c"})
    jsonl("answer_list.jsonl", {**GOOD, "answer": ["Ann"]})
    jsonl("question_dict.jsonl", {**GOOD, "question": {"text": "Who?"}})
    jsonl("question_null.jsonl", {**GOOD, "question": None})
    jsonl("duplicate_ids.jsonl", GOOD, GOOD)
    jsonl("nq_bad.jsonl", {"question": "Who wrote it?", "answers": 5,
                           "ctxs": [{"title": "T", "text": "Ann wrote it.", "hasanswer": True, "isgold": True}]})
    (data / "a_file").write_text("in the way\n")
    (data / "victim").write_text("keep me\n")
    (data / "cache").mkdir()
    empty_tokenizer(data / "empty_tokenizer")
    remote_model(data / "remote_model")
    # One finished reader-free cell, then copies of it damaged in each way the tools must survive.
    # Run from the data folder with a relative task.path: the inspector must find it from elsewhere.
    result = run_case(Case("setup", "run", ["compressor=truncate", "compressor.rate=0.5", "task.path=hotpot.jsonl",
                                            "hydra.run.dir={data}/good/cell"], "ok", cwd="."), data)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("cut", "nopred", "badmetrics"):
        target = data / name / "cell"
        target.mkdir(parents=True)
        for file in (data / "good" / "cell").iterdir():
            if file.is_file():
                (target / file.name).write_bytes(file.read_bytes())
    predictions = (data / "cut" / "cell" / "predictions.jsonl").read_text().splitlines()
    (data / "cut" / "cell" / "predictions.jsonl").write_text(predictions[0] + "\n" + predictions[1][:40])
    (data / "nopred" / "cell" / "predictions.jsonl").unlink()
    (data / "badmetrics" / "cell" / "metrics.json").write_text('{"status": "finished", "n_ex')
    return data


def empty_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(folder)


MARKER = "remote_code_ran"


def remote_model(folder: Path) -> None:
    """A folder whose config asks for its own code, which would leave a marker file if it ran."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "provence", "architectures": ["Provence"],
        "auto_map": {"AutoConfig": "modeling.ProvenceConfig", "AutoModel": "modeling.Provence"}}))
    (folder / "modeling.py").write_text(
        f"from pathlib import Path\nPath({str(folder.parent / MARKER)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\nclass ProvenceConfig(PretrainedConfig):\n"
        "    model_type = 'provence'\n")


def run_case(case: Case, data: Path) -> subprocess.CompletedProcess[str]:
    args = [a.replace("{data}", str(data)) for a in case.args]
    if case.tool == "run":
        defaults = [a.replace("{data}", str(data)) for a in CELL]
        keys = {a.split("=", 1)[0] for a in args}
        args = [a for a in defaults if a.split("=", 1)[0] not in keys] + args
        dirs = [f"hydra.run.dir={data}/runs/{case.id}", f"hydra.sweep.dir={data}/sweeps/{case.id}"]
        args += [d for d in dirs if d.split("=", 1)[0] not in keys]
        args = [a for a in args if a.startswith("-")] + [a for a in args if not a.startswith("-")]
    env = {**os.environ, "PCBENCH_CACHE": str(data / "cache"), "HF_HUB_OFFLINE": "1", **case.env}
    env.pop("HYDRA_FULL_ERROR", None)
    cwd = str(data / case.cwd) if case.cwd else str(ROOT)
    return subprocess.run([sys.executable, *TOOLS[case.tool], *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def outcome(case: Case, result: subprocess.CompletedProcess[str]) -> str:
    """"one line" when the case behaves as it must, else "traceback", "silent" or "partial"."""
    text = result.stdout + result.stderr
    if "Traceback" in text:
        return "traceback"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if case.expect == "error":
        if result.returncode == 0:
            return "silent"
        good = (result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")
                and all(n.replace("{data}", "") in lines[0] for n in case.needles))
        return "one line" if good else "partial"
    if result.returncode != 0:
        return "partial"
    if case.expect == "warn":
        return "one line" if any(all(n in line for n in case.needles) for line in lines) else "silent"
    return "one line"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return world(tmp_path_factory.mktemp("bad-input"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, data: Path) -> None:
    result = run_case(case, data)
    assert outcome(case, result) == "one line", (result.returncode, result.stderr[-3000:], result.stdout[-1500:])
    assert not (data.parent / MARKER).exists(), "a model folder's own code ran without being trusted"
    assert (data / "victim").read_text() == "keep me\n"
    if case.id == "path-collision":  # two task files: two folders, both finished
        finished = list((data / "sweeps" / case.id).rglob("metrics.json"))
        assert len(finished) == 2, finished
    if case.id == "endpoint-down":
        written = "".join(p.read_text() for p in (data / "runs" / case.id).rglob("*") if p.is_file())
        assert "s3cret" not in written + result.stderr + result.stdout



@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB file system of its own (tmpfs), where the run folder can fill the disk; skipped
    where this process may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("a full disk needs a small file system of its own: mount -t tmpfs is not allowed here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("free", [0, 2048, 8192, 16384, 65536])
def test_full_disk_under_the_run_folder(free: int, small_disk: Path, data: Path) -> None:
    """Whichever write meets the full disk (Hydra's config copies, run.log, records, metrics, error.txt),
    the cell says so in one line (exit 2), and leaves no empty error.txt or finished-looking folder."""
    filler = small_disk / "filler"
    with filler.open("wb") as f:
        try:
            f.write(b"x" * (1 << 20))
        except OSError:
            pass
    stat = os.statvfs(small_disk)
    room = stat.f_bavail * stat.f_frsize
    if free:
        filler.write_bytes(b"x" * max(0, filler.stat().st_size + room - free - 4096))
    case = Case(f"full-{free}", "run", ["compressor=truncate", "compressor.rate=0.5",
                                         f"hydra.run.dir={small_disk}/cell"], "error", ["No space left on device"])
    result = run_case(case, data)
    metrics = small_disk / "cell" / "metrics.json"
    if result.returncode == 0 and "Traceback" not in result.stderr:  # it fitted: then it finished whole
        assert json.loads(metrics.read_text())["status"] == "finished"
        return
    assert outcome(case, result) == "one line", (result.returncode, result.stderr[-3000:], result.stdout[-1500:])
    error = small_disk / "cell" / "error.txt"
    assert not error.exists() or error.read_text().strip(), "an empty error.txt"
    assert not metrics.exists()


if __name__ == "__main__":  # the table's outcome counts, for before/after comparisons
    import tempfile
    from collections import Counter

    with tempfile.TemporaryDirectory() as tmp:
        where = world(Path(tmp))
        counts: Counter[str] = Counter()
        for case in CASES:
            got = outcome(case, run_case(case, where))
            counts[got] += 1
            print(f"{case.id:32} {got}", flush=True)
        print(dict(counts))
