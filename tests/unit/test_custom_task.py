"""task=custom: a user's own file or hub dataset, fields mapped by name; bad input is one line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import make

from pcbench.core.errors import PcbenchError

ROOT = Path(__file__).resolve().parents[2]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def one_cell(tmp_path: Path, data: Path, *overrides: str) -> dict[str, Any]:
    """A reader-free cell of task=custom on `data` through run.py; its first record."""
    env = {**os.environ, "PCBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "task=custom", f"task.path={data}", *overrides,
                             "reader=none", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads((tmp_path / "run" / "predictions.jsonl").read_text().splitlines()[0]))


def custom(path: Path, **knobs: Any) -> Any:
    return make("task", "custom", path=str(path), **knobs)


def test_a_string_context_and_answers_as_a_string_or_a_list(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "qa.jsonl", [
        {"question": "Who?", "context": "Ann did it.", "answers": ["Ann", "ann"]},
        {"question": "Where?", "context": "In Rome.", "answers": "Rome"},
    ])
    first, second = custom(data).load()
    assert (first.id, first.question, first.context, first.answers) == ("0", "Who?", "Ann did it.", ("Ann", "ann"))
    assert second.answers == ("Rome",) and second.id == "1"


def test_passages_in_every_layout_with_evidence_by_string_and_by_index(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "qa.jsonl", [
        {"qid": 7, "q": "Where is the mill?", "docs": [{"name": "Mill", "body": "The mill is on the Dee."},
                                                      {"name": "Town", "body": "A market."}],
         "gold": {"text": ["Dee"]}, "support": ["The mill is on the Dee."]},
        {"qid": 8, "q": "Who?", "docs": [["A", [" Ann did it.", " Bob saw."]], "plain text"],
         "gold": {"text": ["Ann"]}, "support": [0]},
    ])
    task = custom(data, fields={"id": "qid", "question": "q", "context": "docs", "answers": "gold.text",
                                "evidence": "support", "title": "name", "text": "body"})
    mill, ann = task.load()
    assert mill.id == "7" and mill.answers == ("Dee",)
    assert [p.title for p in mill.passages] == ["Mill", "Town"] and mill.passages[0].gold
    assert mill.evidence == ("The mill is on the Dee.",) and not mill.passages[1].gold
    assert ann.passages[0].sentences == (" Ann did it.", " Bob saw.")
    assert ann.passages[0].text == " Ann did it. Bob saw."
    assert ann.passages[1].text == "plain text" and ann.evidence == (" Ann did it. Bob saw.",)


def test_a_gold_flag_inside_passages_marks_them(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "nq.jsonl", [
        {"question": "Who?", "answers": ["Ann"], "ctxs": [{"title": "x", "text": "No.", "isgold": False},
                                                         {"title": "y", "text": "Ann did.", "isgold": True}]}])
    (example,) = custom(data, fields={"context": "ctxs", "gold": "isgold"}).load()
    assert [p.gold for p in example.passages] == [False, True] and example.evidence == ("Ann did.",)


def test_csv_with_a_list_separator_and_a_tsv(tmp_path: Path) -> None:
    (tmp_path / "qa.csv").write_text('question,context,answers\n"Who, then?","Ann did it.","Ann|ann"\n')
    (example,) = custom(tmp_path / "qa.csv", list_separator="|").load()
    assert example.question == "Who, then?" and example.answers == ("Ann", "ann")
    (tmp_path / "qa.tsv").write_text("question\tcontext\tanswers\nWho?\tAnn did it.\tAnn\n")
    assert custom(tmp_path / "qa.tsv").load()[0].answers == ("Ann",)


def test_meta_keys_reach_the_metrics_that_read_them(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "c.jsonl", [
        {"question": "Kind?", "context": "A text.", "answers": ["sports"], "all_classes": ["sports", "news"]}])
    task = custom(data, meta=["all_classes"], metrics=["classification"])
    (example,) = task.load()
    assert example.meta == {"all_classes": ["sports", "news"]}
    assert task.score("sports", example) == {"classification": 1.0}


def test_instruction_strings_are_the_spans_whose_survival_is_reported(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "c.jsonl", [
        {"question": "Kind?", "context": "Label each text.\nA text.", "answers": ["news"], "guide": "Label each text."},
        {"question": "Kind?", "context": "A text.", "answers": ["news"]}])
    task = custom(data, fields={"question": "question", "context": "context", "answers": "answers",
                                "instruction": "guide"})
    first, second = task.load()
    assert task.instruction_spans(first) == ("Label each text.",)
    assert task.instruction_spans(second) == ()


def test_evidence_found_nowhere_is_counted_in_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_jsonl(tmp_path / "qa.jsonl", [
        {"question": "Who?", "context": "Ann did it.", "answers": ["Ann"], "ev": ["Bob did it.", "Ann did it."]},
        {"question": "Who?", "context": "Cy did it.", "answers": ["Cy"]}])  # no evidence: none, not an error
    with caplog.at_level(logging.WARNING):
        first, second = custom(data, fields={"evidence": "ev"}).load()
    assert first.evidence == ("Ann did it.",) and second.evidence == ()
    assert "1 evidence strings appear in no passage" in caplog.text


@pytest.mark.parametrize(("records", "knobs", "needles"), [
    ([{"q": "Who?", "context": "c", "answers": ["a"]}], {}, ["line 1: has no field 'question' (task.fields.question)",
                                                            "found: answers, context, q"]),
    ([{"question": ["Who?"], "context": "c", "answers": ["a"]}], {}, ["question is list", "expected a string"]),
    ([{"question": "Who?", "context": 3, "answers": ["a"]}], {}, ["context is int", "list of passages"]),
    ([{"question": "Who?", "context": [{"body": "x"}], "answers": ["a"]}], {}, ["passage 1 has no 'text' key"]),
    ([{"question": "Who?", "context": [{"text": "x", "title": 5}], "answers": ["a"]}], {}, ["title is int"]),
    ([{"question": "Who?", "context": "c", "answers": [1, 2]}], {}, ["answers is list", "list of strings"]),
    ([{"question": "Who?", "context": ["c"], "answers": ["a"], "ev": [3]}], {"fields": {"evidence": "ev"}},
     ["evidence names passage 3; the context has 1"]),
    ([{"id": "x", "question": "Who?", "context": "c", "answers": ["a"]}] * 2, {"fields": {"id": "id"}},
     ["line 2: id 'x' was already used at line 1"]),
])
def test_bad_records_are_one_line_naming_file_line_and_field(tmp_path: Path, records: list[dict[str, Any]],
                                                             knobs: dict[str, Any], needles: list[str]) -> None:
    data = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(PcbenchError) as caught:
        custom(data, **knobs).load()
    message = str(caught.value)
    assert "\n" not in message and str(data) in message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(("knobs", "needle"), [
    ({"fields": {"questoin": "q"}}, "task.fields has no key 'questoin' (did you mean 'question'?)"),
    ({"fields": {"answers": None}}, "task.fields.answers is not set"),
    ({"path": None}, "task=custom needs its data: task.path=FILE"),
    ({"list_separator": ""}, "task.list_separator='' splits nothing"),
    ({"template": "{question}"}, "task.template has no {context}"),
])
def test_bad_knobs_are_one_line(tmp_path: Path, knobs: dict[str, Any], needle: str) -> None:
    with pytest.raises(PcbenchError) as caught:
        make("task", "custom", **{"path": str(tmp_path / "qa.jsonl"), **knobs})
    assert needle in str(caught.value)


def test_a_cell_on_own_data_from_the_command_line(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "qa.jsonl", [
        {"question": "Where is the mill?", "answers": ["Dee"], "evidence": ["The mill is on the Dee."],
         "context": [{"title": "Mill", "text": "The mill is on the Dee."}, {"title": "Town", "text": "A market."}]}])
    record = one_cell(tmp_path, data, "task.fields.evidence=evidence", "compressor=oracle")
    assert record["context"] == "Mill\nThe mill is on the Dee." and record["evidence_recall"] == 1.0


def test_a_hub_dataset_is_read_at_its_pinned_revision_with_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub path (not reachable here): load_dataset gets the name, config, split and revision, and
    SQuAD-style nested answers map with a dotted key. The rows are SQuAD's schema, written by hand."""
    import datasets

    calls: list[dict[str, Any]] = []

    def fake_load(hub_id: str, config: str | None = None, *, split: str,
                  revision: str | None = None) -> list[dict[str, Any]]:
        calls.append({"id": hub_id, "config": config, "split": split, "revision": revision})
        return [{"id": "5733be28", "question": "To whom did the Virgin Mary appear?", "context": "It is a replica. "
                 "The Virgin Mary appeared to Saint Bernadette Soubirous in 1858.",
                 "answers": {"text": ["Saint Bernadette Soubirous"], "answer_start": [46]}}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    task = make("task", "custom", path=None, hub_id="rajpurkar/squad", split="validation", revision="7b6d24c",
                fields={"id": "id", "answers": "answers.text"})
    (example,) = task.load()
    assert calls == [{"id": "rajpurkar/squad", "config": None, "split": "validation", "revision": "7b6d24c"}]
    assert example.id == "5733be28" and example.answers == ("Saint Bernadette Soubirous",)


def test_a_hub_failure_is_one_line_naming_the_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("hub unreachable\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(PcbenchError) as caught:
        make("task", "custom", path=None, hub_id="org/data", revision="abc123").load()
    assert "org/data" in str(caught.value) and "revision abc123" in str(caught.value) and "\n" not in str(caught.value)


def test_a_million_character_context_runs_through_a_cell(tmp_path: Path) -> None:
    """RULER at 256k, NIAH at 1M and LongBench v2 give such contexts: every count (the reader's, the
    papers' cl100k ratios) works at that length, reader-free, through compression and the record."""
    sentences = [f"Record {i} of the archive notes that the harbour was quiet that year." for i in range(16000)]
    sentences[12345] = "The lighthouse keeper was named Ada Quill."
    context = " ".join(sentences)
    assert len(context) > 1_000_000
    data = write_jsonl(tmp_path / "long.jsonl", [{"question": "Who was the lighthouse keeper?", "context": context,
                                                  "answers": ["Ada Quill"]}])
    record = one_cell(tmp_path, data, "compressor=bm25", "compressor.rate=0.01")
    assert record["answer_in_context"] == 1.0 and 0 < record["kept_ratio"] <= 0.01
    assert 0 < record["kept_ratio_cl100k"] < 0.05 and record["original_tokens"] > 200_000


def test_list_separator_splits_an_evidence_cell_too(tmp_path: Path) -> None:
    """As the knob says (answers or evidence): a CSV evidence cell `A.|B.` is two evidence strings."""
    (tmp_path / "qa.csv").write_text('question,context,answers,ev\n'
                                     '"Who?","Ann did it. Bob saw it. Cy left.","Ann","Ann did it.|Bob saw it."\n')
    (example,) = custom(tmp_path / "qa.csv", list_separator="|", fields={"evidence": "ev"}).load()
    assert example.evidence == ("Ann did it.", "Bob saw it.")
