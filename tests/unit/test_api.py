"""The Python API, called the way the README's "Use a compressor in your own code" shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_smollm2

import pcbench
from pcbench.compressors.bm25 import BM25Compressor

ROOT = Path(__file__).resolve().parents[2]

CONTEXT = ("The Eiffel Tower is in Paris. It was finished in 1889. Bread is baked every morning in the city. "
           "Cheese is made from milk. The tower is 330 metres tall.")
PASSAGES = [("Eiffel Tower", "The Eiffel Tower is a landmark in Paris. It opened in 1889."),
            ("Bread", "Bread is baked every morning. Bakers start at four."),
            {"title": "Cheese", "text": "Cheese is made from milk. Some cheeses age for years."}]


def test_a_compressor_by_name_has_its_yaml_defaults_and_overrides() -> None:
    bm25 = pcbench.load_compressor("bm25", rate=0.25)
    assert isinstance(bm25, BM25Compressor)
    assert bm25.rate == 0.25 and bm25.k1 == 1.5 and bm25.level == "sentence"  # k1, level: conf/compressor/bm25.yaml
    switched = pcbench.load_compressor("bm25", rate=None, target_tokens=12)
    assert switched.rate is None and switched.target_tokens == 12
    chain = pcbench.load_compressor("chain", steps={"fine": {"rate": 0.3}})
    assert chain.settings()["steps"]["fine"]["rate"] == 0.3


def cli_error(*overrides: str) -> str:
    """The `error:` line the command line prints for the same bad input."""
    done = subprocess.run([sys.executable, "run.py", "reader=none", *overrides], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert done.returncode == 2
    return done.stderr.strip().removeprefix("error: ")


@pytest.mark.parametrize("name, knobs, overrides", [
    ("bm25", {"rate": 2}, ["compressor=bm25", "compressor.rate=2"]),
    ("bm25", {"levle": "word"}, ["compressor=bm25", "+compressor.levle=word"]),
    ("nope", {}, ["compressor=nope"]),
])
def test_bad_input_is_the_cli_line(name: str, knobs: dict, overrides: list[str]) -> None:
    with pytest.raises(pcbench.PcbenchError) as info:
        pcbench.load_compressor(name, **knobs)
    assert str(info.value) == cli_error(*overrides)


@needs_smollm2
def test_compress_text_and_passages() -> None:
    bm25 = pcbench.load_compressor("bm25", rate=0.5)
    out = pcbench.compress(bm25, CONTEXT, question="When was the Eiffel Tower finished?")
    assert "1889" in out.text and out.text != CONTEXT
    assert out.tokenizer == "smollm2" and 0 < out.kept_ratio <= 0.5
    assert out.kept_ratio == out.compressed_tokens / out.original_tokens

    kept = pcbench.compress("bm25", PASSAGES, question="Where is the Eiffel Tower?")  # a name works too
    assert kept.text.startswith("Eiffel Tower\n") and "Paris" in kept.text
    assert kept.original_tokens > kept.compressed_tokens


@needs_smollm2
def test_many_contexts_at_once_equal_one_by_one() -> None:
    bm25 = pcbench.load_compressor("bm25", rate=0.5)
    questions = ["When was the Eiffel Tower finished?", "What is cheese made from?"]
    together = pcbench.compress_many(bm25, [CONTEXT, PASSAGES], questions, batch_size=2)
    alone = [pcbench.compress(bm25, c, q) for c, q in zip([CONTEXT, PASSAGES], questions)]
    assert together == alone
    with pytest.raises(pcbench.PcbenchError, match="questions: 1 given for 2 contexts"):
        pcbench.compress_many(bm25, [CONTEXT, PASSAGES], ["one"])


@needs_smollm2
def test_the_ratio_counts_the_named_tokenizer() -> None:
    random = pcbench.load_compressor("random", rate=0.5)
    out = pcbench.compress(random, CONTEXT, tokenizer="minilm")
    assert out.tokenizer == "minilm" and out.original_tokens > 0


@needs_smollm2
def test_tasks_readers_and_a_cell(tmp_path: Path) -> None:
    task = pcbench.load_task("niah", lengths=[400], depths=[50])
    (example,) = task.load()
    assert example.answers and example.question
    reader = pcbench.load_reader("none")
    assert reader.tokenizer.count(["hello world"]) == [2]

    metrics = pcbench.run_cell(task="niah", compressor="bm25", reader="none",
                               overrides=["compressor.rate=0.5", "task.lengths=[400]", "task.depths=[50]",
                                          f"cache_dir={tmp_path / 'cache'}"], out_dir=tmp_path / "cell")
    assert metrics["status"] == "finished" and metrics["n_examples"] == 1
    assert json.loads((tmp_path / "cell" / "metrics.json").read_text())["kept_ratio"] == metrics["kept_ratio"]
    again = pcbench.run_cell(task="niah", compressor="bm25", reader="none",
                             overrides=["compressor.rate=0.5", "task.lengths=[400]", "task.depths=[50]",
                                        f"cache_dir={tmp_path / 'cache'}"], out_dir=tmp_path / "cell")
    assert again["skipped"]  # finished with the same config and code: not run again


@needs_smollm2
def test_a_cell_lands_where_the_cli_puts_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pcbench.run_cell(task="niah", compressor="random", reader="none",
                     overrides=["task.lengths=[400]", "task.depths=[50]", f"cache_dir={tmp_path / 'cache'}"])
    (folder,) = [p.parent for p in (tmp_path / "outputs").rglob("metrics.json")]
    assert folder.relative_to(tmp_path).parts[:4] == ("outputs", "default", "niah", "random")
    assert "cache_dir" not in folder.name and "task.lengths=_400_" in folder.name


@needs_smollm2
def test_a_budget_the_papers_way_from_python() -> None:
    gpt35 = pcbench.load_compressor("bm25", rate=0.5, level="word", budget_tokenizer="cl100k")
    out = pcbench.compress(gpt35, CONTEXT, "When was it finished?", tokenizer="cl100k")
    assert out.tokenizer == "cl100k" and out.compressed_tokens <= round(0.5 * out.original_tokens)
    assert out.kept_ratio > 0.4


@pytest.mark.parametrize(("call", "needle"), [
    (lambda: pcbench.compress("bm25", None, "q"), "context 0: a NoneType; give text or a list of passages"),
    (lambda: pcbench.compress("bm25", "Some text.", None), "question 0: a NoneType; give a string"),
    (lambda: pcbench.compress("bm25", [("title", 3)], "q"), "context 0: a passage must be text"),
    (lambda: pcbench.compress("bm25", [{"text": None}], "q"), "a string 'text'"),
    (lambda: pcbench.compress_many("bm25", "one text", ["q"]), "contexts: a str; compress_many takes a list"),
    (lambda: pcbench.compress_many("bm25", ["a", "b"], "q"), "questions: a string"),
    (lambda: pcbench.compress(None, "text", "q"), "compressor: a NoneType; give a name"),
    (lambda: pcbench.compress(42, "text", "q"), "compressor: a int"),
    (lambda: pcbench.load_task(None), "task: None is no task name"),
])
def test_arguments_of_the_wrong_type_are_one_pcbench_error(call: Any, needle: str) -> None:
    """None or a number where text goes was a TypeError deep inside, or the text "None" compressed."""
    with pytest.raises(pcbench.PcbenchError) as caught:
        call()
    assert needle in str(caught.value) and "\n" not in str(caught.value)
