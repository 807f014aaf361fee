"""Answer metrics. Each takes (prediction, example) and returns a score in [0, 1].

Normalisation and F1 follow the official HotpotQA scorer (hotpot_evaluate_v1.py); "match" is the
substring accuracy of BERGEN ("M"), LongLLMLingua's NQ accuracy and FlashRAG's `acc`.
Metrics are registered by name in one place, tasks.registry.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pcbench.core.example import Example

Metric = Callable[[str, Example], float]


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD/HotpotQA normalisation: lowercase, drop punctuation and articles, squash spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """HotpotQA F1, including its rule that yes/no/noanswer must match exactly."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    special = {"yes", "no", "noanswer"}
    if (pred in special or ref in special) and pred != ref:
        return 0.0
    common = Counter(pred.split()) & Counter(ref.split())
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred.split()), same / len(ref.split())
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, example: Example) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in example.answers))


def f1(prediction: str, example: Example) -> float:
    return max((token_f1(prediction, g) for g in example.answers), default=0.0)


def contains_answer(text: str, answers: tuple[str, ...] | list[str]) -> bool:
    norm = normalize_answer(text)
    return any(normalize_answer(g) and normalize_answer(g) in norm for g in answers)


def match(prediction: str, example: Example) -> float:
    return float(contains_answer(prediction, example.answers))


@lru_cache(maxsize=1)
def _rouge_l():  # building the scorer loads nltk bits; do it once
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, example: Example) -> float:
    """ROUGE-L F-measure from Google's rouge-score, max over gold answers."""
    scorer = _rouge_l()
    return max((scorer.score(g, prediction)["rougeL"].fmeasure for g in example.answers), default=0.0)


@lru_cache(maxsize=1)
def _rouge_summary() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=False)


def _rouge_kind(kind: str) -> Metric:
    def metric(prediction: str, example: Example) -> float:
        scorer = _rouge_summary()
        return max((scorer.score(g, prediction)[kind].fmeasure for g in example.answers), default=0.0)

    metric.__doc__ = f"{kind} F-measure from Google's rouge-score (as `evaluate`'s rouge), max over gold answers."
    return metric


rouge_1, rouge_2, rouge_lsum = _rouge_kind("rouge1"), _rouge_kind("rouge2"), _rouge_kind("rougeLsum")


def ruler_match(prediction: str, example: Example) -> float:
    """RULER's string_match_all for one item: share of expected values present (case-insensitive)."""
    if not example.answers:
        return 0.0
    pred = prediction.lower()
    return sum(1.0 for value in example.answers if value.lower() in pred) / len(example.answers)
