"""LongBenchTask: official templates and per-dataset protocol, loading, errors, aggregation, YAMLs."""

from __future__ import annotations

import json
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
from pcbench.tasks.longbench import LongBenchTask
from pcbench.tasks.longbench_protocol import ALL, CATEGORIES, ENGLISH, LONGBENCH_E, MAX_NEW_TOKENS, TEMPLATES

SAMPLE = "longbench/sample"
NO_CHAT = {"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"}
FIRST_LINE = {"trec", "triviaqa", "samsum", "lsht"}


def task(**kwargs: Any) -> LongBenchTask:
    """A LongBench task from conf/task/longbench/hotpotqa.yaml with knobs overridden (checked as in a run)."""
    kwargs.setdefault("name", "lb")
    return make("task", "longbench/hotpotqa", **kwargs)


def example(dataset: str, length: int = 100, all_classes: list[str] | None = None, answer: str = "a") -> Example:
    meta = {"dataset": dataset, "length": length, "language": "en", "all_classes": all_classes}
    return Example(id=dataset, question="Q?", passages=(Passage(text="C."),), answers=(answer,), meta=meta)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def row(**kwargs: Any) -> dict[str, Any]:
    base = {"input": "Q?", "context": "C.", "answers": ["a"], "length": 10, "dataset": "hotpotqa"}
    base.update({"language": "en", "all_classes": None, "_id": None})
    return {**base, **kwargs}


# --- official tables --------------------------------------------------------------------------


def test_templates_match_official_json_byte_for_byte() -> None:
    official = json.loads(shared("longbench/config/dataset2prompt.json").read_text(encoding="utf-8"))
    assert list(TEMPLATES) == list(official)
    for name, template in official.items():
        assert TEMPLATES[name].encode("utf-8") == template.encode("utf-8"), name


def test_max_lengths_match_official_json() -> None:
    official = json.loads(shared("longbench/config/dataset2maxlen.json").read_text(encoding="utf-8"))
    assert MAX_NEW_TOKENS == official


def test_template_quirks_survive_without_the_shared_files() -> None:
    assert len(TEMPLATES) == 21 and len(ENGLISH) == 16 and len(LONGBENCH_E) == 13
    assert TEMPLATES["narrativeqa"].count("asconcisely") == 2
    assert TEMPLATES["passage_count"].endswith("The final answer is: ")
    assert TEMPLATES["passage_retrieval_en"].endswith("The answer is: ")
    assert "\n\n Answer the question based on the above article" in TEMPLATES["qasper"]
    assert TEMPLATES["lcc"] == "Please complete the code given below. \n{context}Next line of code:\n"
    assert sum(len(v) for v in CATEGORIES.values()) == 21


# --- prompts on the real sample items ---------------------------------------------------------


@pytest.mark.parametrize("dataset", ENGLISH)  # the 16 tasks of the shared sample
def test_prompt_equals_official_format_of_the_raw_sample(dataset: str) -> None:
    folder = shared(SAMPLE)
    official = json.loads(shared("longbench/config/dataset2prompt.json").read_text(encoding="utf-8"))
    maxlen = json.loads(shared("longbench/config/dataset2maxlen.json").read_text(encoding="utf-8"))
    raws = [json.loads(line) for line in (folder / f"{dataset}.jsonl").read_text(encoding="utf-8").splitlines()]
    lb = task(dataset=dataset, path=str(folder))
    examples = lb.load()
    assert len(examples) == len(raws) > 0
    for ex, raw in zip(examples, raws):
        request = lb.request(ex, ex.context)
        assert ex.context == raw["context"]  # the compressor gets exactly the official context
        assert ex.question == raw["input"]
        assert request.prompt == official[dataset].format(**raw)
        assert request.max_new_tokens == maxlen[dataset]
        assert request.chat is (dataset not in NO_CHAT)
        assert request.stop_at_newline is (dataset == "samsum")
        assert ex.answers == tuple(raw["answers"])
        assert ex.meta["dataset"] == dataset and ex.meta["length"] == raw["length"]


def test_compressed_context_goes_where_the_context_was() -> None:
    ex = example("hotpotqa")
    prompt = task(dataset="hotpotqa").prompt(ex, "SHORT")
    assert prompt == TEMPLATES["hotpotqa"].format(context="SHORT", input="Q?")
    # Question-free templates ignore the input.
    assert task(dataset="gov_report").prompt(example("gov_report"), "R") == TEMPLATES["gov_report"].format(context="R")


def test_ids_use_official_id_else_dataset_and_line_index() -> None:
    folder = shared(SAMPLE)
    trec = task(dataset="trec", path=str(folder)).load()
    assert [e.id for e in trec[:2]] == ["trec-0", "trec-1"]
    news = task(dataset="multi_news", path=str(folder)).load()
    raws = [json.loads(line) for line in (folder / "multi_news.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e.id for e in news] == [r["_id"] for r in raws]


def test_full_multi_news_file_as_single_path() -> None:
    file = shared("longbench/multi_news_full.jsonl")
    examples = task(dataset="multi_news", path=str(file)).load()
    assert len(examples) == 200
    assert len({e.id for e in examples}) == 200


def test_english_suite_reads_every_sample_and_limit_is_per_dataset() -> None:
    folder = shared(SAMPLE)
    suite = task(dataset=list(ENGLISH), path=str(folder))
    examples = suite.load()
    assert len(examples) == 187
    assert len({e.id for e in examples}) == 187
    assert [e.meta["dataset"] for e in examples][:1] == ["narrativeqa"]
    limited = task(dataset=list(ENGLISH), path=str(folder), limit=2).load()
    assert len(limited) == 32
    assert {e.meta["dataset"] for e in limited} == set(ENGLISH)


# --- per-example protocol ---------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ALL)
def test_chat_first_line_and_generation_length_per_dataset(dataset: str) -> None:
    suite = task(dataset=list(ALL))  # one cell running everything still treats each item its own way
    ex = example(dataset)
    request = suite.request(ex, ex.context)
    assert request.chat is (dataset not in NO_CHAT)
    assert request.max_new_tokens == MAX_NEW_TOKENS[dataset]
    assert request.stop_at_newline is (dataset == "samsum")
    cut = suite.postprocess("\n\nfirst\nsecond", ex)
    assert cut == ("first" if dataset in FIRST_LINE else "\n\nfirst\nsecond")


def test_first_line_rule_changes_the_score() -> None:
    classes = ["Date", "Individual", "Location"]
    trec = example("trec", all_classes=classes, answer="Individual")
    lb = task(dataset="trec")
    # Only "Individual" survives the cut: 1.0; the whole text would name two classes (0.5).
    assert lb.score("\nIndividual\nDate", trec) == {"longbench": 1.0}
    assert lb.score("Date\nIndividual", trec) == {"longbench": 0.0}
    hotpot = example("hotpotqa", answer="Bob Dylan")
    assert task(dataset="hotpotqa").score("Bob\nDylan", hotpot) == {"longbench": 1.0}  # no cut for QA


def test_overrides_apply_to_every_dataset() -> None:
    lb = task(dataset=["hotpotqa", "trec"], template="{input}|{context}", max_new_tokens=5, chat=True)
    request = lb.request(example("trec"), "ctx")
    assert (request.prompt, request.max_new_tokens, request.chat) == ("Q?|ctx", 5, True)
    assert task(dataset="hotpotqa", first_line=True).postprocess("a\nb", example("hotpotqa")) == "a"


def test_unknown_datasets_are_refused_with_the_allowed_list() -> None:
    with pytest.raises(PcbenchError, match="hotpotqa"):
        task(dataset="hotpot")
    with pytest.raises(PcbenchError, match="LongBench-E"):
        task(dataset="narrativeqa", longbench_e=True)
    with pytest.raises(PcbenchError, match="empty"):
        task(dataset=[])


# --- read errors ------------------------------------------------------------------------------


def test_corrupt_line_names_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "hotpotqa.jsonl"
    file.write_text(json.dumps(row()) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(PcbenchError) as err:
        task(dataset="hotpotqa", path=str(tmp_path)).load()
    message = str(err.value)
    assert f"{file}: line 3" in message and "not valid JSON" in message
    assert "\n" not in message


def test_missing_paths_and_fields_are_named(tmp_path: Path) -> None:
    with pytest.raises(PcbenchError, match="nowhere"):
        task(dataset="hotpotqa", path=str(tmp_path / "nowhere")).load()
    with pytest.raises(PcbenchError, match="musique.jsonl"):
        task(dataset="musique", path=str(tmp_path)).load()
    with pytest.raises(PcbenchError, match="hotpotqa_e.jsonl"):
        task(dataset="hotpotqa", longbench_e=True, path=str(tmp_path)).load()
    one = write_rows(tmp_path / "hotpotqa.jsonl", [row()])
    with pytest.raises(PcbenchError, match="one file"):
        task(dataset=["hotpotqa", "musique"], path=str(one)).load()
    write_rows(one, [{"input": "q", "answers": ["a"]}])
    with pytest.raises(PcbenchError, match=r"hotpotqa\.jsonl: line 1: not in the LongBench schema.*missing context"):
        task(dataset="hotpotqa", path=str(tmp_path)).load()


# --- hub loading ------------------------------------------------------------------------------


def test_hub_loading_uses_the_parquet_mirror_and_e_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_load(hub_id: str, name: str, split: str) -> list[dict[str, Any]]:
        calls.append((hub_id, name, split))
        return [row(_id="abc", length=5000), row()]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    examples = task(dataset="hotpotqa", longbench_e=True).load()
    assert calls == [("Xnhyacinth/LongBench", "hotpotqa_e", "test")]
    assert [e.id for e in examples] == ["abc", "hotpotqa_e-1"]
    assert examples[0].meta["length"] == 5000


def test_hub_failure_says_to_pass_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("hub unreachable\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(PcbenchError) as err:
        task(dataset="qasper").load()
    assert "task.path" in str(err.value) and "Xnhyacinth/LongBench" in str(err.value)
    assert "\n" not in str(err.value)


# --- aggregation ------------------------------------------------------------------------------

# GPT-3.5-Turbo-16k on the 16 English and code datasets (THUDM/LongBench README, LongBench/README.md).
GPT35 = {
    "narrativeqa": 23.6,
    "qasper": 43.3,
    "multifieldqa_en": 52.3,
    "hotpotqa": 51.6,
    "2wikimqa": 37.7,
    "musique": 26.9,
    "gov_report": 29.5,
    "qmsum": 23.4,
    "multi_news": 26.7,
    "trec": 68.0,
    "triviaqa": 91.4,
    "samsum": 41.7,
    "passage_count": 4.5,
    "passage_retrieval_en": 71.0,
    "lcc": 54.7,
    "repobench-p": 53.6,
}


def rows_for(scores: dict[str, float]) -> list[tuple[Example, dict[str, Any]]]:
    return [(example(d), {"scores": {"longbench": s / 100}}) for d, s in scores.items()]


def test_avg_is_mean_of_category_means_gpt35_gives_44() -> None:
    summary = task(dataset=list(ENGLISH)).summarize(rows_for(GPT35))
    assert summary["datasets"] == GPT35
    assert summary["categories"] == {
        "single_doc_qa": 39.73,  # (23.6 + 43.3 + 52.3) / 3
        "multi_doc_qa": 38.73,
        "summarization": 26.53,
        "few_shot": 67.03,
        "synthetic": 37.75,
        "code": 54.15,
    }
    assert summary["avg"] == 43.99 and round(summary["avg"], 1) == 44.0  # reference 1.4
    assert summary["avg_flat"] == 43.74 and round(summary["avg_flat"], 1) == 43.7
    assert "avg_en" not in summary and "length_buckets" not in summary


def test_per_dataset_score_is_100x_mean_rounded() -> None:
    rows = [(example("hotpotqa"), {"scores": {"longbench": v}}) for v in (1.0, 0.0, 0.0)]
    rows.append((example("musique"), {"scores": {}}))  # no score: left out, not counted as 0
    summary = task(dataset=["hotpotqa", "musique"]).summarize(rows)
    assert summary["datasets"] == {"hotpotqa": 33.33}
    assert summary["categories"] == {"multi_doc_qa": 33.33}
    assert task(dataset="hotpotqa").summarize([]) == {}


def test_chinese_datasets_add_an_english_only_avg() -> None:
    summary = task(dataset=list(ALL)).summarize(rows_for({**GPT35, "multifieldqa_zh": 61.2, "lsht": 29.2}))
    assert summary["categories"]["single_doc_qa"] == pytest.approx((23.6 + 43.3 + 52.3 + 61.2) / 4, abs=0.005)
    assert summary["avg_en"] == 43.99


def test_longbench_e_length_buckets() -> None:
    lengths_scores = [(1000, 1.0), (3999, 0.0), (4000, 1.0), (7999, 1.0), (8000, 0.5), (20000, 0.0)]
    rows = [(example("hotpotqa", length=n), {"scores": {"longbench": s}}) for n, s in lengths_scores]
    rows.append((example("trec", length=100), {"scores": {"longbench": 1.0}}))
    summary = task(dataset=["hotpotqa", "trec"], longbench_e=True).summarize(rows)
    assert summary["length_buckets"] == {
        "hotpotqa": {"0-4k": 50.0, "4-8k": 100.0, "8k+": 25.0},
        "trec": {"0-4k": 100.0},  # empty buckets are left out, not NaN
    }
    assert summary["length_buckets_avg"] == {"0-4k": 75.0, "4-8k": 100.0, "8k+": 25.0}
    assert summary["datasets"] == {"hotpotqa": 58.33, "trec": 100.0}


# --- Hydra configs ----------------------------------------------------------------------------

YAMLS = sorted(p.stem for p in (ROOT / "pcbench" / "conf" / "task" / "longbench").glob("*.yaml")
               if not p.name.startswith("_"))  # _base.yaml is what the others extend


def standin_conf(tmp_path: Path) -> Path:
    """conf/task only, under a root config that needs no other group (those belong to others)."""
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "pcbench" / "conf" / "task", conf / "task")
    (conf / "config.yaml").write_text("defaults:\n  - task: longbench/hotpotqa\n  - _self_\n", encoding="utf-8")
    return conf


def test_every_dataset_and_suite_has_a_yaml() -> None:
    expected = set(ALL) | {f"{d}_e" for d in LONGBENCH_E} | {"en", "all", "e"}
    assert set(YAMLS) == expected


@pytest.mark.parametrize("stem", YAMLS)
def test_yaml_composes_under_task_and_instantiates(stem: str, tmp_path: Path) -> None:
    with hydra.initialize_config_dir(config_dir=str(standin_conf(tmp_path)), version_base=None):
        cfg = hydra.compose("config", overrides=[f"task=longbench/{stem}"])
    assert cfg.task._target_ == "pcbench.tasks.longbench.LongBenchTask"
    lb = build(cfg.task, "task")
    assert isinstance(lb, LongBenchTask)
    assert lb.path is None and lb.hub_id == "Xnhyacinth/LongBench" and lb.metrics == ["longbench"]
    suites = {"en": ENGLISH, "all": ALL, "e": LONGBENCH_E}
    if stem in suites:
        assert lb.datasets == tuple(suites[stem]) and lb.longbench_e is (stem == "e")
    else:
        assert lb.datasets == (stem.removesuffix("_e"),) and lb.longbench_e is stem.endswith("_e")
        assert lb.name == f"longbench_{stem}"


@pytest.mark.parametrize("dataset", ENGLISH)
def test_yaml_with_path_override_reads_the_sample(dataset: str, tmp_path: Path) -> None:
    folder = shared(SAMPLE)
    with hydra.initialize_config_dir(config_dir=str(standin_conf(tmp_path)), version_base=None):
        cfg = hydra.compose("config", overrides=[f"task=longbench/{dataset}", f"task.path={folder}", "task.limit=2"])
    examples = build(cfg.task, "task").load()
    assert len(examples) == 2 and {e.meta["dataset"] for e in examples} == {dataset}


def test_yaml_composes_in_the_real_config() -> None:
    conf = ROOT / "pcbench" / "conf"
    needed = [conf / "compressor" / "none.yaml", conf / "reader" / "smollm2.yaml"]
    if not all(p.exists() for p in needed):
        pytest.skip("conf/config.yaml's default compressor/reader configs are not in this checkout yet")
    with hydra.initialize_config_dir(config_dir=str(conf), version_base=None):
        cfg = hydra.compose("config", overrides=["task=longbench/hotpotqa"])
    assert build(cfg.task, "task").datasets == ("hotpotqa",)


def test_repeated_ids_and_null_fields_are_one_line(tmp_path: Path) -> None:
    """A file repeating an `_id` (ids pair examples across cells) and a null input or context (it was
    asked as an empty question) are refused with the file and line."""
    write_rows(tmp_path / "hotpotqa.jsonl", [row(_id="x"), row(_id="y"), row(_id="x")])
    with pytest.raises(PcbenchError, match=r"hotpotqa\.jsonl: line 3: id 'x' was already used at line 1"):
        task(dataset="hotpotqa", path=str(tmp_path)).load()
    for field in ("input", "context"):
        write_rows(tmp_path / "hotpotqa.jsonl", [row(), row(**{field: None})])
        with pytest.raises(PcbenchError, match=rf"line 2: input and context must be strings.*{field} (is )?null"):
            task(dataset="hotpotqa", path=str(tmp_path)).load()
    write_rows(tmp_path / "hotpotqa.jsonl", [row(input="")])  # "" is a dataset without a question: fine
    assert task(dataset="hotpotqa", path=str(tmp_path)).load()[0].question == ""


def test_the_few_shot_datasets_demonstrations_are_their_instruction_spans() -> None:
    trec = Example("t", "Question: Why ?\nType:", (Passage(text="Question: Who ?\nType: Individual\nQuestion: "
                                                                "When ?\nType: Date"),), ("Reason",),
                   {"dataset": "trec"})
    assert task().instruction_spans(trec) == ("Question: Who ?\nType: Individual", "Question: When ?\nType: Date")
    assert task().instruction_spans(example("hotpotqa")) == ()
