"""LongBench's metrics, pinned on hand-worked cases against THUDM/LongBench's metrics.py semantics."""

from __future__ import annotations

import pytest

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.tasks import longbench_metrics as lm
from pcbench.tasks.registry import get_metric


def ex(*answers: str, dataset: str = "hotpotqa", all_classes: list[str] | None = None) -> Example:
    meta = {"dataset": dataset, "length": 100, "all_classes": all_classes}
    return Example(id="x", question="q", passages=(Passage(text="c"),), answers=answers, meta=meta)


def test_all_names_are_registered() -> None:
    for name in ["qa_f1", "qa_f1_zh", "rouge", "rouge_zh", "classification", "retrieval", "retrieval_zh"]:
        assert callable(get_metric(name))
    for name in ["count", "code_sim", "longbench"]:
        assert callable(get_metric(name))


# --- qa_f1 ------------------------------------------------------------------------------------


def test_qa_f1_normalises_case_punctuation_and_articles() -> None:
    assert lm.qa_f1_score("The Bob Dylan.", "bob dylan") == 1.0
    assert lm.qa_f1_score("U.S.", "us") == 1.0  # punctuation deleted, not replaced by a space
    # "Bob" vs "Bob Dylan": P = 1/1, R = 1/2 -> F1 = 2/3.
    assert lm.qa_f1_score("Bob", "Bob Dylan") == pytest.approx(2 / 3)
    assert lm.qa_f1_score("the", "a") == 0.0  # both normalise to nothing
    assert lm.qa_f1_score("", "Bob") == 0.0


def test_qa_f1_has_no_yes_no_rule_unlike_hotpotqa() -> None:
    # "yes it is" vs "yes": P = 1/3, R = 1 -> 0.5. HotpotQA's F1 gives 0 here (yes/no must match).
    assert get_metric("qa_f1")("yes it is", ex("yes")) == pytest.approx(0.5)
    assert get_metric("f1")("yes it is", ex("yes")) == 0.0


def test_qa_f1_multiset_overlap_and_max_over_answers() -> None:
    # pred [x, x, y], gold [x, y, y]: overlap min counts x:1, y:1 = 2 -> P = R = 2/3.
    assert lm.qa_f1_score("x x y", "x y y") == pytest.approx(2 / 3)
    assert get_metric("qa_f1")("UT", ex("University of Toronto", "UT")) == 1.0
    assert get_metric("qa_f1")("anything", ex()) == 0.0


# --- qa_f1_zh ---------------------------------------------------------------------------------


def test_qa_f1_zh_uses_jieba_words_without_punctuation() -> None:
    # jieba: 北京天安门。 -> [北京, 天安门, 。] (。 dropped); 我爱北京天安门 -> [我, 爱, 北京, 天安门].
    assert lm._jieba_cut("我爱北京天安门") == ["我", "爱", "北京", "天安门"]
    # common 2: P = 2/2, R = 2/4 -> F1 = 2/3.
    assert lm.qa_f1_zh_score("北京天安门。", "我爱北京天安门") == pytest.approx(2 / 3)
    # Lowercased, ASCII and Chinese punctuation dropped, whitespace pieces dropped.
    assert lm.qa_f1_zh_score("ABC，北京", "abc北京") == 1.0
    assert lm.qa_f1_zh_score("北京 天安门", "北京天安门") == 1.0
    assert get_metric("qa_f1_zh")("。", ex("北京", dataset="multifieldqa_zh")) == 0.0


def test_zh_normalisation_keeps_official_punctuation_set() -> None:
    # The official set has 》 but not 《 (a quirk kept as is); … and 「」 are in it.
    assert lm.normalize_zh("《书》「引」…A b") == "《书引ab"


# --- rouge ------------------------------------------------------------------------------------


def test_rouge_l_from_the_rouge_package() -> None:
    # Summary-level ROUGE-L of `rouge` counts unique words: reference {the, cat, sat, on, mat} = 5,
    # LCS 3 -> R = 3/5, P = 3/3, F = 2PR / (P + R + 1e-8).
    assert lm.rouge_score("the cat sat", "the cat sat on the mat") == pytest.approx(2 * 0.6 / (1.6 + 1e-8))
    assert lm.rouge_score("x y", "a b") == 0.0


def test_rouge_is_zero_when_the_package_raises() -> None:
    assert lm.rouge_score("", "a reference") == 0.0  # "Hypothesis is empty."
    assert lm.rouge_score(".", "a reference") == 0.0
    assert get_metric("rouge")("", ex("ref", dataset="gov_report")) == 0.0


def test_rouge_zh_joins_jieba_words_with_spaces() -> None:
    # 我 爱 北京 天安门 vs 北京 天安门: LCS 2, P = 2/4, R = 2/2 -> F = 2 * 0.5 / (1.5 + 1e-8).
    assert lm.rouge_zh_score("我爱北京天安门", "北京天安门") == pytest.approx(1.0 / (1.5 + 1e-8))
    assert get_metric("rouge_zh")("我爱北京天安门", ex("北京天安门", dataset="vcsum")) == pytest.approx(1 / 1.5)


# --- classification ---------------------------------------------------------------------------


def test_classification_partial_credit_is_one_over_k() -> None:
    classes = ["Food", "Date", "Speed"]
    assert lm.classification_score("Date", "Date", classes) == 1.0
    assert lm.classification_score("Date or Food", "Date", classes) == 0.5
    assert lm.classification_score("Food, Speed, Date", "Date", classes) == pytest.approx(1 / 3)
    assert lm.classification_score("Food", "Date", classes) == 0.0
    assert lm.classification_score("", "Date", classes) == 0.0


def test_classification_drops_classes_that_are_substrings_of_the_gold() -> None:
    # "ci" is inside gold "city" but not equal: removed, so "city country" leaves k = 2.
    assert lm.classification_score("city country ci", "city", ["ci", "country", "city"]) == 0.5


def test_classification_mirrors_the_remove_while_iterating_quirk() -> None:
    classes = ["ci", "cit", "city", "country"]
    prediction, gold = "city country", "city"  # names all four classes as substrings
    # Official loop: "ci" is removed at index 0, "cit" slides into index 0 and is never examined,
    # so matches end as [cit, city, country]: k = 3.
    assert lm.classification_score(prediction, gold, classes) == pytest.approx(1 / 3)
    # A loop without the quirk would have removed "cit" too (k = 2): the quirk changes the score.
    clean = [c for c in classes if c in prediction and not (c in gold and c != gold)]
    assert 1 / len(clean) == 0.5


def test_classification_metric_reads_all_classes_from_meta() -> None:
    example = ex("Date", dataset="trec", all_classes=["Food", "Date"])
    assert get_metric("classification")("Food Date", example) == 0.5
    assert get_metric("classification")("Date", ex("Date", dataset="trec")) == 0.0  # no classes, no credit


# --- retrieval / count ------------------------------------------------------------------------


def test_retrieval_share_of_digit_runs_equal_to_the_paragraph_number() -> None:
    assert lm.retrieval_score("Paragraph 19", "Paragraph 19") == 1.0
    assert lm.retrieval_score("Paragraph 19 or Paragraph 3", "Paragraph 19") == 0.5
    assert lm.retrieval_score("Paragraph 190", "Paragraph 19") == 0.0  # whole digit runs only
    assert lm.retrieval_score("I do not know", "Paragraph 19") == 0.0
    assert lm.retrieval_zh_score("段落3", "段落3") == 1.0
    assert lm.retrieval_zh_score("段落3和段落30", "段落3") == 0.5
    assert get_metric("retrieval")("19", ex("Paragraph 19", dataset="passage_retrieval_en")) == 1.0


def test_count_share_of_digit_runs_equal_to_the_count() -> None:
    assert lm.count_score("46", "46") == 1.0
    assert lm.count_score("There are 46 unique paragraphs out of 50", "46") == 0.5
    assert lm.count_score("forty-six", "46") == 0.0
    assert get_metric("count")("1, 2, 46", ex("46", dataset="passage_count")) == pytest.approx(1 / 3)


# --- code_sim ---------------------------------------------------------------------------------


def test_code_sim_takes_first_line_without_backtick_hash_or_slashes() -> None:
    gold = "    if e.text == language:"
    assert lm.code_sim_score("\n```python\n# comment\n    if e.text == language:\n", gold) == 1.0
    assert lm.code_sim_score("x = 1  # set\ny = 2", "y = 2") == 1.0  # first line has '#'
    assert lm.code_sim_score("// only\n`code`", gold) == 0.0  # no clean line: empty candidate
    # fuzzywuzzy's ratio: difflib 2*3/8 = 0.75, as an integer percent.
    assert lm.code_sim_score("abcd", "abce") == 0.75
    assert lm.code_sim_score("abc", "abcd") == 0.86  # round(100 * 6/7) = 86


# --- dispatch ---------------------------------------------------------------------------------


def test_longbench_metric_dispatches_on_the_dataset() -> None:
    metric = get_metric("longbench")
    assert metric("Bob", ex("Bob Dylan", dataset="hotpotqa")) == pytest.approx(2 / 3)
    assert metric("Paragraph 2", ex("Paragraph 2", dataset="passage_retrieval_en")) == 1.0
    assert metric("x = 1", ex("x = 1", dataset="lcc")) == 1.0
    with pytest.raises(PcbenchError, match="meta\\['dataset'\\]"):
        metric("a", ex("a", dataset="nope"))
