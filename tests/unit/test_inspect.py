"""analysis.inspect: one example of a real cell, kept/dropped units and evidence marked."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import needs_smollm2
from support.study_cells import study

from pcbench.analysis.inspect import main, mark, summary
from pcbench.core.example import Example, Passage


@needs_smollm2
def test_inspect_a_real_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cell = study(tmp_path) / "niah" / "bm25" / "bm25_rate=0.5"
    records = [json.loads(line) for line in (cell / "predictions.jsonl").read_text().splitlines()]
    record = records[2]
    assert main([str(cell), "--id", record["id"], "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert f"id: {record['id']}  (3 of 5)" in out
    # bm25 kept whole sentences: as many as its extras say, none partly.
    extras = record["compressor_extras"]
    assert f"sentences: {extras['kept_units']} kept, 0 partly, {extras['units'] - extras['kept_units']} dropped" in out
    # The needle is the evidence; bm25 found it, so it is marked as kept evidence, and dropped text is marked.
    assert "«The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.»" in out
    assert "[-" in out and "-]" in out
    # Removing the dropped text from the shown context gives back the compressed context (up to whitespace:
    # kept sentences are joined as the compressor rendered them).
    body = out.split("-" * 80 + "\n", 1)[1]
    kept_only = re.sub(r"\[-.*?-\]", " ", body, flags=re.S).replace("«", "").replace("»", "")
    assert "".join(kept_only.split()) == "".join(record["context"].split())

    colour = main([str(cell), "--id", record["id"], "--color", "always"])
    assert colour == 0 and "\x1b[1;4;32m" in capsys.readouterr().out

    page = tmp_path / "one.html"
    assert main([str(cell), "--html", str(page)]) == 0
    text = page.read_text()
    assert 'class="drop"' in text and 'class="ev"' in text and records[0]["question"] in text


@needs_smollm2
def test_bad_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cell = study(tmp_path) / "niah" / "bm25" / "bm25_rate=0.5"
    assert main([str(cell), "--id", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no example 'nope' in") and err.count("\n") == 1
    unfinished = tmp_path / "unfinished"
    shutil.copytree(cell, unfinished)
    metrics = json.loads((unfinished / "metrics.json").read_text())
    (unfinished / "metrics.json").write_text(json.dumps({**metrics, "status": "compressed"}))
    assert main([str(unfinished)]) == 2
    assert capsys.readouterr().err == f"error: {unfinished} is not a finished cell (status: compressed)\n"
    (unfinished / "metrics.json").unlink()
    assert main([str(unfinished)]) == 2
    assert "no metrics.json" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_word_level_pruning_and_titles_are_marked_on_the_original() -> None:
    example = Example(
        id="x", question="q", answers=("Paris",),
        passages=(Passage(title="France", text="Paris is the capital. It is large and old.",
                          evidence=("Paris is the capital.",), gold=True),
                  Passage(title="Spain", text="Madrid is the capital of Spain.")))
    # A token pruner kept some words of each sentence, and the first title.
    words = mark(example, "France\nParis capital. large\n\nMadrid Spain.")
    shown = {example.context[w.start:w.end]: w for w in words}
    assert shown["France"].kept and not shown["Spain"].kept
    assert shown["Paris"].kept and shown["Paris"].evidence and not shown["is"].kept
    assert shown["capital."].evidence and not shown["old."].evidence
    counts = summary(words)
    assert counts["sentences"] == 3 and counts["partial"] == 3 and counts["kept"] == 0
    assert counts["evidence_words"] == 4 and counts["evidence_kept"] == 2


@needs_smollm2
def test_written_text_is_shown_beside_the_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A compressor that writes its output (a summary) cuts nothing from the source: the inspector shows
    the written text and the source whole, with the evidence marked and no dropped marks. The cell is
    a real one whose records say what a summariser's would (its compressor writes, its context is prose)."""
    written = tmp_path / "written"
    shutil.copytree(study(tmp_path) / "niah" / "bm25" / "bm25_rate=0.5", written)
    metrics = json.loads((written / "metrics.json").read_text())
    metrics["compressor_info"] = {**metrics["compressor_info"], "generates_text": True}
    (written / "metrics.json").write_text(json.dumps(metrics))
    records = [json.loads(line) for line in (written / "predictions.jsonl").read_text().splitlines()]
    summary_text = "The author's advice for San Francisco: a sandwich in Dolores Park on a sunny day."
    records[0]["context"] = summary_text
    (written / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    assert main([str(written), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "written by the compressor (what the reader got):\n" + summary_text in out
    assert "not cut from the source" in out and "evidence recall does not apply" in out
    source = out.split("source:\n", 1)[1]
    assert "[-" not in source  # nothing marked dropped
    assert "«The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.»" in source
    page = tmp_path / "written.html"
    assert main([str(written), "--html", str(page)]) == 0
    text = page.read_text()
    assert summary_text.replace("'", "&#x27;") in text and 'class="drop"' not in text.split("</p>", 1)[1]


def test_control_characters_in_the_data_never_reach_the_terminal(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A context holding a window-title and a clear-screen sequence: shown as U+FFFD, one for one."""
    import os
    import subprocess
    import sys

    hostile = "Ann wrote it.\x1b]0;pwned\x07 Then\x1b[2J Bob read it.\x9b31m"
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"id": "q1", "question": "Who wrote it?\x1b[5m", "context": hostile,
                                "answers": ["Ann"]}) + "\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PCBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(root / "run.py"), "task=custom", f"task.path={data}",
                             "compressor=bm25", "compressor.rate=0.5", "reader=none",
                             f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert main([str(tmp_path / "run"), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\x9b") and "\ufffd]0;pwned\ufffd" in out and "Ann wrote it." in out
