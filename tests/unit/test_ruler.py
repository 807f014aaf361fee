"""RulerTask: splitting RULER's input so only the haystack is compressible, evidence, metric, loading."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import datasets
import hydra
import pytest
from conftest import ROOT, make, shared

from pcbench.core.build import build
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.tasks.registry import get_metric
from pcbench.tasks.ruler import RulerTask, needle_sentences, postprocess_prediction, split_input

FILE = "ruler/niah_multikey_3_4096.jsonl"
INSTRUCTION = (
    "A special magic uuid is hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the uuid afterwards.\n"
)
QUESTION = (
    "What is the special magic uuid for k2 mentioned in the provided text? "
    "The special magic uuid for k2 mentioned in the provided text is"
)
HAYSTACK = "One of the special magic uuids for k1 is: v1.\nOne of the special magic uuids for k2 is: v2."
INPUT = f"{INSTRUCTION}{HAYSTACK}\n{QUESTION}"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def ruler(path: Path | str | None = None, **kwargs: Any) -> RulerTask:
    return make("task", "ruler_niah", path=None if path is None else str(path), **kwargs)


def test_split_separates_instruction_haystack_and_question() -> None:
    parts = split_input(INPUT)
    assert parts is not None
    assert parts.instruction == INSTRUCTION
    assert parts.haystack == HAYSTACK
    assert parts.separator == "\n"
    assert parts.question == QUESTION
    assert "".join(parts) == INPUT


def test_split_takes_the_last_what_line() -> None:
    text = "Essay.\nWhat is love? Nobody knows.\nMore essay.\nWhat are all the special magic numbers for k? The"
    parts = split_input(text)
    assert parts is not None and parts.instruction == ""
    assert parts.haystack == "Essay.\nWhat is love? Nobody knows.\nMore essay."
    assert parts.question.startswith("What are all the special magic numbers")


def test_split_falls_back_to_kvpress_pattern_mid_line() -> None:
    parts = split_input("haystack text. What is the special magic number for k? The special magic number is")
    assert parts is not None and parts.haystack == "haystack text." and parts.separator == " "
    assert split_input("no question here") is None


def test_needle_sentences_hold_the_values() -> None:
    assert needle_sentences(HAYSTACK, ["v2"]) == ("One of the special magic uuids for k2 is: v2.",)
    essay = "Some essay text. One of the special magic numbers for x is: 1234. More text."
    assert needle_sentences(essay, ["1234"]) == ("One of the special magic numbers for x is: 1234.",)
    assert needle_sentences("other wording 99 here", ["99"]) == ("other wording 99",)
    assert needle_sentences(HAYSTACK, ["absent", ""]) == ()


def test_uncompressed_prompt_is_the_input_and_evidence_is_marked(tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "r.jsonl", [{"index": 7, "input": INPUT, "outputs": "['v2']", "length": 50}])
    task = ruler(file)
    (ex,) = task.load()
    assert ex.id == "niah_multikey_3-7"
    assert ex.answers == ("v2",)
    assert ex.context == HAYSTACK and ex.question == QUESTION
    assert ex.evidence == ("One of the special magic uuids for k2 is: v2.",)
    assert ex.passages[0].gold
    assert task.prompt(ex, ex.context) == INPUT
    request = task.request(ex, ex.context)
    assert (request.max_new_tokens, request.chat, request.stop_at_newline) == (128, False, False)
    # Compressed to nothing: instruction and question still reach the reader.
    assert task.prompt(ex, "") == f"{INSTRUCTION}\n{QUESTION}"


def test_input_without_question_stays_whole_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = "Just a haystack with no question at all."
    file = write_jsonl(tmp_path / "r.jsonl", [{"index": 0, "input": text, "outputs": ["x"], "length": 9}])
    task = ruler(file)
    with caplog.at_level(logging.WARNING, logger="pcbench.tasks.ruler"):
        (ex,) = task.load()
    assert "1 of 1 RULER inputs" in caplog.text
    assert ex.context == text and ex.question == ""
    assert task.prompt(ex, ex.context) == text
    assert task.prompt(ex, "") == ""


def test_outputs_as_a_list_or_a_list_literal_and_nothing_else(tmp_path: Path) -> None:
    rows = [
        {"index": 0, "input": INPUT, "outputs": ["v1", "v2"]},
        {"index": 1, "input": INPUT, "outputs": "['v1', 'v2']"},
        {"index": 2, "input": INPUT, "outputs": [1234]},
    ]
    examples = ruler(write_jsonl(tmp_path / "r.jsonl", rows)).load()
    assert [e.answers for e in examples] == [("v1", "v2"), ("v1", "v2"), ("1234",)]
    assert len(examples[0].evidence) == 2
    # A bare value, a mapping, null, or a list holding null: taken as it came it would be a gold answer
    # nobody wrote. A null input would be an empty prompt. Each is one line naming file and line.
    for bad, needle in (({"outputs": "v2"}, "'outputs' is the string 'v2', which is no list"),
                        ({"outputs": "1234"}, "'outputs' is int"), ({"outputs": {"a": 1}}, "'outputs' is dict"),
                        ({"outputs": None}, "'outputs' is null"), ({"outputs": ["v", None]}, "'outputs' is list"),
                        ({"input": None}, "'input' is null")):
        path = write_jsonl(tmp_path / "bad.jsonl", [{"index": 0, "input": INPUT, "outputs": ["v"], **bad}])
        with pytest.raises(PcbenchError, match="bad.jsonl: line 1: ") as caught:
            ruler(path).load()
        assert needle in str(caught.value), str(caught.value)


def test_real_file_round_trips_every_prompt() -> None:
    file = shared(FILE)
    raws = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    task = ruler(file)
    examples = task.load()
    assert len(examples) == len(raws) == 500
    for ex, raw in zip(examples, raws):
        assert task.prompt(ex, ex.context) == raw["input"]
        assert "What is" not in ex.context  # the question never reaches the compressor
        assert ex.question.startswith("What is the special magic uuid for")
        assert ex.meta["instruction"].startswith("A special magic uuid is hidden")
        (value,) = ex.answers
        (needle,) = ex.evidence
        assert needle.startswith("One of the special magic uuids for") and needle.endswith(f"{value}.")
        assert needle in ex.context
        assert ex.meta["length"] == raw["length"]


def test_limit_and_folder_layouts(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "niah_multikey_3.jsonl", [{"index": i, "input": INPUT, "outputs": ["v2"]} for i in range(3)])
    assert len(ruler(tmp_path, limit=2).load()) == 2
    nested = tmp_path / "nested"
    (nested / "niah_single_1").mkdir(parents=True)
    write_jsonl(nested / "niah_single_1" / "validation.jsonl", [{"index": 0, "input": INPUT, "outputs": ["v2"]}])
    assert ruler(nested, subtask="niah_single_1").load()[0].id == "niah_single_1-0"


# --- metric -----------------------------------------------------------------------------------


def ex(*answers: str) -> Example:
    return Example(id="x", question="q", passages=(Passage(text="c"),), answers=answers)


def test_ruler_match_is_share_of_values_found_case_insensitively() -> None:
    metric = get_metric("ruler_match")
    assert metric("The uuid is ABC-1.", ex("abc-1")) == 1.0
    assert metric("abc-1 only", ex("abc-1", "def-2")) == 0.5
    assert metric("nothing", ex("abc-1")) == 0.0
    assert metric("anything", ex()) == 0.0


def test_postprocess_turns_control_characters_into_newlines() -> None:
    assert postprocess_prediction("  v1\x00v2\t \n") == "v1\nv2"
    task = make("task", "ruler_niah")
    assert task.score("\x07 V2 ", ex("v2")) == {"ruler_match": 1.0}


# --- errors and hub ---------------------------------------------------------------------------


def test_corrupt_line_and_missing_paths(tmp_path: Path) -> None:
    file = tmp_path / "r.jsonl"
    file.write_text(json.dumps({"index": 0, "input": INPUT, "outputs": ["v2"]}) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(PcbenchError) as err:
        ruler(file).load()
    assert f"{file}: line 2" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PcbenchError, match="missing.jsonl"):
        ruler(tmp_path / "missing.jsonl").load()
    write_jsonl(file, [{"index": 0, "input": INPUT}])
    with pytest.raises(PcbenchError, match="outputs"):
        ruler(file).load()


def test_missing_subtask_in_folder(tmp_path: Path) -> None:
    with pytest.raises(PcbenchError, match="niah_multikey_3.jsonl"):
        ruler(tmp_path).load()


def test_hub_rows_are_joined_back_into_ruler_input(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    context, rest = INPUT.split("What is", 1)
    question, prefix = ("What is" + rest).split("The special magic", 1)
    kvpress_row = {"context": context, "question": question, "answer_prefix": "The special magic" + prefix}

    def fake_load(hub_id: str, config: str, split: str) -> list[dict[str, Any]]:
        calls.append((hub_id, config, split))
        other = {**kvpress_row, "answer": ["zz"], "task": "vt"}
        return [other, {**kvpress_row, "answer": ["v2"], "task": "niah_multikey_3", "max_new_tokens": 128}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    task = ruler()
    (example,) = task.load()
    assert calls == [("simonjegou/ruler", "4096", "test")]
    assert task.prompt(example, example.context) == INPUT
    assert example.answers == ("v2",) and example.id == "niah_multikey_3-0"


def test_hub_failure_says_to_pass_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: Any, **kwargs: Any) -> None:
        raise OSError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(PcbenchError, match="task.path"):
        ruler().load()


# --- Hydra --------------------------------------------------------------------------------------


def test_yaml_composes_and_instantiates(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "pcbench" / "conf" / "task", conf / "task")
    (conf / "config.yaml").write_text("defaults:\n  - task: ruler_niah\n  - _self_\n", encoding="utf-8")
    with hydra.initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = hydra.compose("config", overrides=["task=ruler_niah"])
    task = build(cfg.task, "task")
    assert isinstance(task, RulerTask)
    assert (task.path, task.hub_id, task.hub_config, task.subtask) == (
        None,
        "simonjegou/ruler",
        "4096",
        "niah_multikey_3",
    )
    assert (task.max_new_tokens, task.chat, task.metrics) == (128, False, ["ruler_match"])
