"""The command line: Hydra's flags work, bad input is one `error:` line (exit 2), sweeps are checked first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import needs_smollm2

ROOT = Path(__file__).resolve().parents[2]
TINY_NIAH = ["task.lengths=[300]", "task.depths=[50]"]
HOTPOT = {"_id": "a", "question": "Who?", "answer": "Ann", "supporting_facts": [["T", 0]],
          "context": [["T", ["Ann did it."]]]}


def run(tmp_path: Path, *args: str, flags: Sequence[str] = (), prefix: Sequence[str] = (),
        cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python run.py FLAGS ARGS` with run/sweep folders and the cache under tmp_path.

    Flags that take a value (-p, -cd, --cfg) go first: Hydra's argparse wants the overrides in one run.
    """
    env = {**os.environ, "PCBENCH_CACHE": str(cache or tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    dirs = [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    return subprocess.run([*prefix, sys.executable, "run.py", *flags, *args, *dirs], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2 and a stderr of exactly one line, `error: ...`, holding every needle."""
    assert result.returncode == 2, result.stderr[-2000:] + result.stdout[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def unprivileged() -> list[str]:
    """A command prefix under which chmod 555 really makes a folder read-only (root ignores modes)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be simulated")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


# -- Hydra's own flags ----------------------------------------------------------------------------


def extra_conf(tmp_path: Path) -> Path:
    folder = tmp_path / "extra" / "task"
    folder.mkdir(parents=True)
    text = (ROOT / "pcbench" / "conf" / "task" / "niah.yaml").read_text().replace("name: niah", "name: my_niah")
    (folder / "my_niah.yaml").write_text(text)
    return tmp_path / "extra"


@pytest.mark.parametrize(("flags", "args", "needles"), [
    (["--cfg", "job"], [], ["task:", "_target_: pcbench.tasks.niah.NeedleTask", "compressor:", "reader:"]),
    (["-c", "job", "-p", "compressor"], ["compressor=bm25"], ["# @package compressor", "BM25Compressor"]),
    (["--cfg", "hydra", "-p", "hydra.sweeper"], [], ["PcbenchSweeper"]),
    (["--cfg", "all"], [], ["hydra:", "job_logging:", "task:"]),
    (["-cn", "config", "--cfg", "job", "-p", "reader"], [], ["model: smollm2"]),
    (["--info", "defaults"], [], ["hydra/sweeper/pcbench", "hydra/job_logging/pcbench", "task/niah"]),
    (["--help"], [], ["compressor:", "bm25", "reader:", "smollm2"]),
    (["--cfg", "hydra", "-p", "hydra.sweeper"], ["+experiment=hotpotqa_rates"], ["params:", "compressor.rate"]),
    # The README's way to pick a model: `???` in the YAML must not read as "no such key".
    (["--cfg", "job", "-p", "reader"], ["reader=transformers", "reader.model=org/some-model"],
     ["model: org/some-model"]),
])
def test_hydra_flags_work(tmp_path: Path, flags: list[str], args: list[str], needles: list[str]) -> None:
    result = run(tmp_path, *args, flags=flags)
    assert result.returncode == 0, result.stderr[-3000:]
    for needle in needles:
        assert needle in result.stdout, result.stdout[-3000:]
    assert not (tmp_path / "run").exists(), "showing a config runs nothing"


def test_config_dir_flag_adds_options(tmp_path: Path) -> None:
    result = run(tmp_path, "task=my_niah", flags=["-cd", str(extra_conf(tmp_path)), "--cfg", "job", "-p", "task"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "name: my_niah" in result.stdout


# -- composition errors: one line naming the bad value and what is allowed ------------------------


@pytest.mark.parametrize(("args", "needles"), [
    (["compressor=nope"], ["unknown compressor 'nope'", "allowed:", "bm25", "truncate"]),
    (["task=longbench/nope"], ["unknown task 'longbench/nope'", "longbench/hotpotqa", "niah"]),
    (["reader=gpt9"], ["unknown reader 'gpt9'", "smollm2", "transformers"]),
    (["+experiment=nope"], ["unknown experiment 'nope'", "hotpotqa_rates"]),
    (["-m", "compressor=none,nope"], ["unknown compressor 'nope'"]),
    (["compressor=bm25", "compressor.ratee=0.5"], ["compressor has no key 'ratee'", "allowed: rate,", "k1"]),
    (["seeed=1"], ["the config has no key 'seeed'", "study", "cache_dir"]),
    (["task.lengths=[300"], ["cannot parse 'task.lengths=[300'"]),
    (["task=3"], ["Config group override must be a string"]),
])
def test_composition_errors_are_one_line(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    result = run(tmp_path, *args)
    one_line_error(result, *needles)
    assert "HYDRA_FULL_ERROR" not in result.stderr + result.stdout


def test_composition_errors_are_one_line_with_flags_too(tmp_path: Path) -> None:
    one_line_error(run(tmp_path, "compressor=nope", flags=["--cfg", "job"]), "unknown compressor 'nope'")
    one_line_error(run(tmp_path, flags=["-cn", "nope"]), "Cannot find primary config 'nope'")


# -- knob values: checked against the component's annotations before anything loads ---------------


@pytest.mark.parametrize(("args", "needles"), [
    (["compressor=bm25", "compressor.rate=abc"], ["compressor.rate='abc' is not allowed", "(0, 1]"]),
    (["compressor=bm25", "compressor.rate=1.5"], ["compressor.rate=1.5", "(0, 1]"]),
    (["task.limit=abc"], ["task.limit='abc' is not allowed", "an integer >= 1 or null"]),
    (["task.limit=0"], ["task.limit=0", "an integer >= 1"]),
    (["compressor=bm25", "+compressor.foo=1"], ["compressor has no key 'foo'", "k1"]),
    (["reader=transformers"], ["reader.model has no value", "reader.model=..."]),
    (["reader=transformers", "reader.model=x", "reader.dtype=fp8"], ["reader.dtype='fp8'", "float32, bfloat16"]),
    (["task=nq", "task.gold_position=20"], ["task.gold_position=20", "0..19"]),
])
def test_bad_values_are_one_line_before_anything_loads(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    result = run(tmp_path, "reader=none", *args) if "reader=" not in " ".join(args) else run(tmp_path, *args)
    one_line_error(result, *needles)
    assert not list((tmp_path / "run").glob("*.jsonl")), "nothing ran"


# -- bad input found while running: files, models, folders ---------------------------------------


@needs_smollm2
def test_bad_files_are_one_line(tmp_path: Path) -> None:
    one_line_error(run(tmp_path, "task=hotpotqa", "task.path=/nowhere/hotpot.jsonl", "reader=none"),
                   "task file not found: /nowhere/hotpot.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run(tmp_path, "task=hotpotqa", f"task.path={empty}", "reader=none"), "is an empty folder")
    hotpot = tmp_path / "hotpot.jsonl"
    hotpot.write_text(json.dumps(HOTPOT) + "\n")
    one_line_error(run(tmp_path, "task=nq", f"task.path={hotpot}", "reader=none"),
                   f"{hotpot}: line 1: not in the NQ-open", "expected keys question, answers, ctxs", "found _id")
    hotpot.write_text(json.dumps(HOTPOT) + "\n{not json\n")
    one_line_error(run(tmp_path, "task=hotpotqa", f"task.path={hotpot}", "reader=none"), f"{hotpot}: line 2")


@needs_smollm2
@pytest.mark.parametrize(("args", "needles"), [
    (["reader=none", "reader.tokenizer_model=/nowhere/tokenizer"], ["reader.tokenizer_model='/nowhere/tokenizer'"]),
    (["reader=transformers", "reader.model=/nowhere/model"], ["reader.model='/nowhere/model'"]),
    (["reader=none", "compressor=embedding", "compressor.model=/nowhere/encoder"], ["compressor.model", "/nowhere"]),
])
def test_missing_model_paths_are_one_line(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    one_line_error(run(tmp_path, *args, *TINY_NIAH), *needles)


def test_read_only_output_folder_is_one_line(tmp_path: Path) -> None:
    folder = read_only_folder(tmp_path)
    result = subprocess.run([*unprivileged(), sys.executable, "run.py", "reader=none", f"hydra.run.dir={folder}/run"],
                            cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", "PCBENCH_CACHE": str(tmp_path / "c")},
                            capture_output=True, text=True, timeout=300)
    one_line_error(result, f"{folder}/run", "Permission denied", "hydra.run.dir=")


def test_read_only_cache_folder_is_one_line(tmp_path: Path) -> None:
    folder = read_only_folder(tmp_path)
    result = run(tmp_path, "reader=none", *TINY_NIAH, prefix=unprivileged(), cache=folder)
    one_line_error(result, f"cache_dir={folder} is not writable", "cache_dir=FOLDER")


def test_cache_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    file = tmp_path / "cache-file"
    file.write_text("x")
    one_line_error(run(tmp_path, "reader=none", *TINY_NIAH, cache=file), f"cache_dir={file} is a file")


# -- sweeps ------------------------------------------------------------------------------------------


def test_a_bad_value_in_a_later_cell_fails_before_the_first_runs(tmp_path: Path) -> None:
    result = run(tmp_path, "-m", "reader=none", *TINY_NIAH, "task.limit=1,2,abc")
    one_line_error(result, "sweep job #2 of 3", "task.limit=abc", "task.limit='abc' is not allowed")
    assert not list(tmp_path.rglob("metrics.json")) and "[#0]" not in result.stdout


@needs_smollm2
def test_local_multirun_sweep_writes_every_cell_with_one_line_each(tmp_path: Path) -> None:
    result = run(tmp_path, "-m", "compressor=none,bm25", "compressor.rate=0.5,0.25", "reader=none", *TINY_NIAH)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = sorted((tmp_path / "sweep").rglob("metrics.json"))
    assert len(cells) == 4
    metrics = [json.loads(p.read_text()) for p in cells]
    kept = {m["compressor"] + str(m["requested"].get("rate")): m["kept_ratio"] for m in metrics}
    assert kept["none0.5"] == kept["none0.25"] == 1.0
    assert kept["bm250.25"] < kept["bm250.5"] < 1.0
    # One headline per finished cell, numbered like Hydra's job folders, with progress and an ETA.
    headlines = [line for line in result.stdout.splitlines() if line.startswith("[#")]
    assert [h.split("]")[0].split(" ", 1)[0] for h in headlines] == ["[#0", "[#1", "[#2", "[#3"]
    assert [h.split("]")[0].split(" ", 1)[1].split(",")[0] for h in headlines] == ["1/4", "2/4", "3/4", "4/4"]
    assert "ETA" in headlines[0] and "ETA" not in headlines[-1]
    assert all("niah x " in h and "kept=" in h and "n=1" in h for h in headlines)
    for log_file in (tmp_path / "sweep").rglob("run.log"):
        text = log_file.read_text()
        assert "\r" not in text and "\x1b[" not in text
        assert "examples, compressor" in text
        assert "[bm25s]" not in text and "DEBUG" not in text  # library chatter stays out


@needs_smollm2
def test_a_cell_failing_at_run_time_lets_the_others_finish(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    result = run(tmp_path, "-m", "reader=none", "task=hotpotqa", f"task.path={missing}", "task.limit=1,2")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all("task file not found" in e for e in errors)
    assert errors[0].startswith("error: sweep job #0") and "Traceback" not in result.stderr
    # The sweep ends with its summary (last line), and each failed cell's folder says why.
    summary = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert summary.startswith("sweep: 0 done, 0 skipped (already finished), 2 failed: "), summary
    notes = sorted((tmp_path / "sweep").rglob("error.txt"))
    assert len(notes) == 2 and all(n.read_text().startswith("task file not found") for n in notes)
    assert not list((tmp_path / "sweep").rglob("metrics.json"))


@needs_smollm2
def test_transformers_reader_with_a_model_runs(tmp_path: Path) -> None:
    result = run(tmp_path, "reader=transformers", "reader.model=smollm2", "reader.dtype=float32", *TINY_NIAH)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["reader"] == "transformers" and metrics["n_examples"] == 1 and "match" in metrics["metrics"]
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("niah x none x transformers: ")]
    assert "match=" in line and "kept=1.000" in line


@needs_smollm2
def test_sweeps_run_and_are_checked_under_the_submitit_launcher(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    bad = run(tmp_path, "--multirun", "hydra/launcher=submitit_local", "reader=none", *TINY_NIAH, "task.limit=1,abc")
    one_line_error(bad, "sweep job #1 of 2", "task.limit='abc' is not allowed")
    assert not (tmp_path / "sweep").exists(), "nothing was submitted"
    good = run(tmp_path, "--multirun", "hydra/launcher=submitit_local", "reader=none", *TINY_NIAH,
               "compressor=none,truncate")
    assert good.returncode == 0, good.stderr[-3000:]
    assert len(list((tmp_path / "sweep").rglob("metrics.json"))) == 2
    # The cells ran in other processes: their headlines come back through the sweeper.
    assert sorted(line[:4] for line in good.stdout.splitlines() if line.startswith("[#")) == ["[#0]", "[#1]"]


def test_an_error_line_ending_in_a_colon_carries_its_cause() -> None:
    """Hydra's `Error in call to target 'X':` keeps its reason in the chained exception."""
    from hydra.errors import InstantiationException

    from pcbench.runners.cli import one_line

    try:
        try:
            raise TypeError("super(type, obj): obj must be an instance or subtype of type")
        except TypeError as cause:
            raise InstantiationException("Error in call to target 'x.Sweeper':") from cause
    except InstantiationException as exc:
        line = one_line(exc)
    assert line == ("Error in call to target 'x.Sweeper': TypeError: super(type, obj): obj must be an instance "
                    "or subtype of type")
    assert one_line(InstantiationException("Error in call to target 'x.Y':\nValueError('bad')")) == (
        "Error in call to target 'x.Y': ValueError('bad')")


def pcbench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The `pcbench` entry point itself (what the console script runs), from a folder outside the checkout."""
    code = "import sys; from pcbench.app import entry; sys.argv[0] = 'pcbench'; sys.exit(entry())"
    env = {**os.environ, "PCBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_list_names_every_option_with_a_line_from_its_yaml(tmp_path: Path) -> None:
    from pcbench.runners.catalog import options

    result = pcbench(tmp_path, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    blocks = {block.splitlines()[0]: block.splitlines()[1:] for block in result.stdout.split("\n\n")}
    for heading, group in (("compressors", "compressor"), ("tasks", "task"), ("readers", "reader"),
                           ("presets", "experiment")):
        rows = blocks[f"{heading} ({group}=NAME):"]
        assert [row.split()[0] for row in rows] == options(group)
        assert all(len(row.split()) > 2 for row in rows), rows  # a description follows each name
    assert any(line.split()[:1] == ["bm25"] and "BM25" in line for line in lines)
    assert "longbench/_base" not in result.stdout  # a base, not an option
    only_readers = pcbench(tmp_path, "list", "readers")
    assert only_readers.returncode == 0 and "compressors (" not in only_readers.stdout
    one_line_error(pcbench(tmp_path, "list", "tsks"), "cannot list 'tsks'; did you mean 'tasks'?")


def test_version_is_pcbench_s_own(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = pcbench(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"pcbench {version('pcbench')}"


def test_help_says_what_to_type(tmp_path: Path) -> None:
    result = pcbench(tmp_path, "--help")
    assert result.returncode == 0
    assert "pcbench list [compressors|tasks|readers|presets]" in result.stdout
    assert "compressor: attention, bm25" in result.stdout


@pytest.mark.parametrize(("args", "needles", "absent"), [
    (["task=hotpot"], ["unknown task 'hotpot'; did you mean 'hotpotqa'?"], ["niah,"]),
    (["task=longbench/qaspr"], ["did you mean 'longbench/qasper'?"], []),
    (["compressor=llmlingu2"], ["did you mean 'llmlingua2'?"], []),
    (["task.limt=3"], ["task has no key 'limt'; did you mean 'limit'?"], ["+task.limt"]),
    (["compressor=bm25", "compressor.ratee=0.5"], ["did you mean 'rate'?"], ["+compressor.ratee"]),
])
def test_a_likely_typo_gets_a_did_you_mean_and_no_hint_to_add_it(tmp_path: Path, args: list[str],
                                                                  needles: list[str], absent: list[str]) -> None:
    line = one_line_error(run(tmp_path, *args), *needles)
    for text in absent:
        assert text not in line


def test_ctrl_c_is_one_line_exit_130_and_keeps_what_finished(tmp_path: Path) -> None:
    """Ctrl-C in a sweep (Python raises KeyboardInterrupt; here raised at the second cell, so the
    test does not race a signal): no traceback, exit 130, how far it got; the rerun skips the first."""
    code = ("import os, sys\nimport pcbench.app as app\nreal, calls = app.run_cell, []\n"
            "def run_cell(*args, **kwargs):\n    calls.append(1)\n"
            "    if str(len(calls)) == os.environ.get('INTERRUPT_AT'):\n        raise KeyboardInterrupt\n"
            "    return real(*args, **kwargs)\n"
            "app.run_cell = run_cell\nsys.argv[0] = 'pcbench'\nsys.exit(app.entry())\n")
    env = {**os.environ, "PCBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "INTERRUPT_AT": "2"}
    env.pop("HYDRA_FULL_ERROR", None)
    args = ["-m", "reader=none", "compressor=bm25", "compressor.rate=0.5,0.25", *TINY_NIAH, "study=ctrl"]
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 130, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and lines[-1].startswith("interrupted: sweep: 1 of 2 cells ended"), lines
    again = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env={**env, "INTERRUPT_AT": ""},
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "sweep: 1 done, 1 skipped (already finished), 0 failed" in again.stdout


def test_a_sweep_with_credentials_leaves_no_trace_of_them(tmp_path: Path) -> None:
    """A password in the URL, a key in its query and a key in the environment: no file under the
    sweep (multirun.yaml, .hydra/ files in Hydra's escaped form, folder names, config, error.txt,
    run.log) and no line of output holds any of them; the endpoint (a closed port on 127.0.0.1)
    fails each cell."""
    password, query_key, env_key = "PassW0rdXYZ", "QueryTokenXYZ", "sk-EnvKeyXYZ123"
    url = f"http://ann:{password}@127.0.0.1:9/v1?api_key={query_key}"
    env = {**os.environ, "PCBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "MY_KEY": env_key}
    env.pop("HYDRA_FULL_ERROR", None)
    # Quoted, as Hydra needs a value holding `=` to be: the override is kept in that form.
    result = subprocess.run([sys.executable, "run.py", "-m", "reader=openai", f"reader.base_url='{url}'",
                             "reader.model=m", "reader.api_key_env=MY_KEY", "reader.max_retries=0",
                             "reader.retry_seconds=5", *TINY_NIAH, "task.limit=1,2",
                             f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "2 failed" in result.stderr
    written = [p for p in (tmp_path / "sweep").rglob("*") if p.is_file()]
    assert any(p.name == "multirun.yaml" for p in written) and any(p.name == "overrides.yaml" for p in written)
    for secret in (password, query_key, env_key):
        assert secret not in result.stdout + result.stderr, secret
        for path in written:
            assert secret not in str(path.relative_to(tmp_path)), path
            assert secret not in path.read_text(encoding="utf-8", errors="replace"), (secret, path)


def test_a_study_that_is_a_path_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    env = {**os.environ, "PCBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    for args in (["study=../../escaped", "reader=none"], ["-m", "study=ok,../../escaped", "reader=none"]):
        result = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=work, env=env,
                                capture_output=True, text=True, timeout=300)
        one_line_error(result, "study='../../escaped' is not allowed; allowed: a plain name")
        assert not (tmp_path / "escaped").exists() and not list(work.rglob("*")), list(work.rglob("*"))


def test_an_empty_out_is_refused_by_the_report_and_the_trainer(tmp_path: Path) -> None:
    for module in ("pcbench.analysis.report", "pcbench.apps.train"):
        extra = [str(tmp_path)] if module.endswith("report") else []
        result = subprocess.run([sys.executable, "-m", module, *extra, "--out", ""], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
        one_line_error(result, "--out='' is empty")
        assert not list(tmp_path.iterdir())
