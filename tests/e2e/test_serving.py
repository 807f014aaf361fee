"""pcbench-serving's bookkeeping against a real HTTP server started here (test_openai_reader's
Endpoint, model-free): every prompt of every cell is sent at every level, a refused request is
counted, not dropped, tokens are the server's, latencies are ordered, and the report picks the card
up. tests/e2e/test_vllm.py runs the same card against vLLM's own server; nothing here checks speed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import HOTPOT, cell
from support.http_endpoint import Endpoint, echo

from pcbench.apps import serving
from pcbench.core.errors import PcbenchError


@pytest.fixture
def cells(tmp_path: Path) -> Path:
    data = tmp_path / "hotpot.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in HOTPOT) + "\n")
    base = ["task=hotpotqa", f"task.path={data}", "reader=none"]
    cell(tmp_path, *base, "compressor=none", out="study/none")
    cell(tmp_path, *base, "compressor=truncate", "compressor.rate=0.5", out="study/truncate")
    return tmp_path / "study"


def test_every_prompt_at_every_level_and_a_refusal_is_counted(cells: Path, tmp_path: Path) -> None:
    out = cells / "serving"
    # The first measured request (no warm-up) is refused; everything else is answered.
    with Endpoint(echo, script=["400"]) as server:
        card = serving.run(serving.parse_args([str(cells), "--out", str(out), "--base-url", server.url,
                                               "--concurrency", "1,2", "--warmup", "0", "--price", "1,2"]))
        bodies = [s["body"] for s in server.seen]
    assert len(bodies) == 2 * 2 * len(HOTPOT)  # two cells, two levels, every example
    assert all(b["stream"] is True and b["temperature"] == 0.0 for b in bodies)
    levels = {(f["cell"], f["concurrency"]): f for f in card["levels"]}
    assert set(levels) == {("none", 1), ("none", 2), ("truncate rate=0.5", 1), ("truncate rate=0.5", 2)}
    assert levels[("none", 1)]["errors"] == 1 and sum(f["errors"] for f in card["levels"]) == 1
    with open(out / "requests.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * len(HOTPOT)
    for row in rows:
        if row["error"]:
            assert "HTTP 400" in row["error"]
            continue
        assert 0 < float(row["ttft"]) <= float(row["e2e"])
        assert int(float(row["completion_tokens"])) == 1  # the echo answers one word, and says so in usage
    # The truncated cell's prompts are shorter, as the server counted them.
    assert levels[("truncate rate=0.5", 1)]["input_tokens_mean"] < levels[("none", 2)]["input_tokens_mean"]
    (window,) = [c for c in card["comparisons"] if "window" in c]
    assert [w["concurrency"] for w in window["window"]] == [1, 2]
    assert window["usd_per_1000_queries"] > 0
    assert (out / "card.md").read_text().startswith("# Serving card")
    assert (out / "serving_truncate_rate_0_5.png").stat().st_size > 0
    # The card recomputed from what was measured, with no server: the same figures, nothing sent.
    again = serving.run(serving.parse_args([str(cells), "--out", str(out), "--reanalyse", "--concurrency", "1,2",
                                            "--price", "1,2"]))
    assert again["levels"] == card["levels"] and again["comparisons"] == card["comparisons"]


def test_the_report_shows_the_card(cells: Path, tmp_path: Path) -> None:
    from pcbench.analysis.report import build_report

    with Endpoint(echo) as server:
        serving.run(serving.parse_args([str(cells), "--out", str(cells / "serving"), "--base-url", server.url,
                                        "--concurrency", "1", "--warmup", "1"]))
    report = build_report([str(cells)], "answer_in_context", tmp_path / "report", examples=0)
    page = report.files["html"].read_text()
    assert "Cost under serving" in page and "serving/0/serving_truncate_rate_0_5.png" in page
    assert (tmp_path / "report" / "serving" / "0" / "levels.csv").exists()
    assert "## Cost under serving" in report.files["leaderboard"].read_text()


def test_a_server_that_never_answers_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PcbenchError, match=r"--start='nope' is not a server pcbench starts"):
        with serving.started_server("nope", "smollm2", "python", tmp_path / "log"):
            pass
