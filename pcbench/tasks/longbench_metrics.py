"""LongBench v1's answer metrics, written to match THUDM/LongBench's metrics.py score for score.

Each metric takes (prediction, example) and returns the max over example.answers of the
official per-answer score, as eval.py does. Quirks are kept on purpose, because parity with
published numbers matters more than tidiness: qa_f1 has no yes/no rule (unlike HotpotQA's scorer),
classification removes items from the list it iterates, retrieval/count score every digit run.
The first-line cut of trec/triviaqa/samsum/lsht is the task's job (LongBenchTask.postprocess).
"""

from __future__ import annotations

import re
import string
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example
from pcbench.tasks.longbench_protocol import METRICS
from pcbench.tasks.metrics import Metric

# Official normalize_zh_answer's punctuation: ASCII plus this CJK/fullwidth set (note the final ".").
_CN_PUNCTUATION = (
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》"
    "「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
)
_EN_PUNCTUATION = frozenset(string.punctuation)
_ZH_PUNCTUATION = frozenset(string.punctuation + _CN_PUNCTUATION)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_DIGITS = re.compile(r"\d+")


def normalize_en(text: str) -> str:
    """lower -> drop ASCII punctuation -> drop a/an/the -> collapse whitespace (official order)."""
    text = "".join(ch for ch in text.lower() if ch not in _EN_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_zh(text: str) -> str:
    """lower -> drop ASCII and Chinese punctuation -> delete all whitespace."""
    return "".join("".join(ch for ch in text.lower() if ch not in _ZH_PUNCTUATION).split())


def token_f1(prediction_tokens: Sequence[str], gold_tokens: Sequence[str]) -> float:
    """Multiset-overlap F1; 0 when nothing is shared (also covers empty token lists)."""
    same = sum((Counter(prediction_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba  # imported late: only Chinese datasets need it

    jieba.setLogLevel(60)  # silence "Building prefix dict..." on stderr
    return jieba


def _jieba_cut(text: str) -> list[str]:
    return list(_jieba().cut(text, cut_all=False))


def qa_f1_score(prediction: str, gold: str) -> float:
    return token_f1(normalize_en(prediction).split(), normalize_en(gold).split())


def qa_f1_zh_score(prediction: str, gold: str) -> float:
    pred = [t for t in (normalize_zh(t) for t in _jieba_cut(prediction)) if t]
    ref = [t for t in (normalize_zh(t) for t in _jieba_cut(gold)) if t]
    return token_f1(pred, ref)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge import Rouge

    return Rouge()


def rouge_score(prediction: str, gold: str) -> float:
    """ROUGE-L F of the `rouge` PyPI package; 0 when it raises (e.g. an empty prediction)."""
    try:
        scores = _rouge().get_scores([prediction], [gold], avg=True)
    except Exception:  # the official code uses a bare except: any failure scores 0
        return 0.0
    return float(scores["rouge-l"]["f"])


def rouge_zh_score(prediction: str, gold: str) -> float:
    return rouge_score(" ".join(_jieba_cut(prediction)), " ".join(_jieba_cut(gold)))


def classification_score(prediction: str, gold: str, all_classes: Sequence[str]) -> float:
    """1/k if the gold label survives among the k classes named in the prediction, else 0.

    The official loop drops classes that are substrings of the gold label (but not equal to it)
    while iterating the same list, so the element right after a removed one is never examined.
    The index walk below reproduces exactly what Python's list iterator does there.
    """
    matches = [name for name in all_classes if name in prediction]
    index = 0
    while index < len(matches):
        term = matches[index]
        if term in gold and term != gold:
            matches.remove(term)  # list.remove drops the first equal item, as in the original
        index += 1
    # The original's fallback branch (difflib best match) sits behind `if list != 0`, which is
    # always true, so it never runs; it is left out here for the same result.
    return 1.0 / len(matches) if gold in matches else 0.0


def _digit_share(prediction: str, target: str) -> float:
    numbers = _DIGITS.findall(prediction)
    if not numbers:
        return 0.0
    return sum(1 for n in numbers if n == target) / len(numbers)


def retrieval_score(prediction: str, gold: str) -> float:
    found = re.findall(r"Paragraph (\d+)", gold)
    # The official code indexes [0] and would crash on a malformed gold; 0 keeps a run alive.
    return _digit_share(prediction, found[0]) if found else 0.0


def retrieval_zh_score(prediction: str, gold: str) -> float:
    found = re.findall(r"段落(\d+)", gold)
    return _digit_share(prediction, found[0]) if found else 0.0


def count_score(prediction: str, gold: str) -> float:
    return _digit_share(prediction, str(gold))


@lru_cache(maxsize=1)
def _fuzz_ratio() -> Callable[[str, str], int]:
    # fuzzywuzzy warns at import when python-Levenshtein is absent and falls back to difflib.
    # LongBench's own environment did not pin python-Levenshtein, so the difflib path is the
    # reference one; installing python-Levenshtein can change some code_sim scores slightly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from fuzzywuzzy import fuzz
    return fuzz.ratio


def code_sim_score(prediction: str, gold: str) -> float:
    """fuzz.ratio/100 between the gold line and the first predicted line free of ` # //."""
    candidate = ""
    for line in prediction.lstrip("\n").split("\n"):
        if "`" not in line and "#" not in line and "//" not in line:
            candidate = line
            break
    return _fuzz_ratio()(candidate, gold) / 100


def _best(score: Callable[[str, str], float], prediction: str, example: Example) -> float:
    return max((float(score(prediction, gold)) for gold in example.answers), default=0.0)


def _max_over_golds(score: Callable[[str, str], float]) -> Callable[[str, Example], float]:
    return lambda prediction, example: _best(score, prediction, example)


# Every official metric scores one gold at a time; eval.py keeps the best over an item's golds.
LONGBENCH_METRICS: dict[str, Metric] = {
    name: _max_over_golds(score)
    for name, score in {
        "qa_f1": qa_f1_score,
        "qa_f1_zh": qa_f1_zh_score,
        "rouge": rouge_score,
        "rouge_zh": rouge_zh_score,
        "retrieval": retrieval_score,
        "retrieval_zh": retrieval_zh_score,
        "count": count_score,
        "code_sim": code_sim_score,
    }.items()
}


def classification(prediction: str, example: Example) -> float:
    classes = example.meta.get("all_classes") or []
    return _best(lambda p, g: classification_score(p, g, classes), prediction, example)


LONGBENCH_METRICS["classification"] = classification


def longbench(prediction: str, example: Example) -> float:
    """The official metric of the example's own dataset (meta["dataset"]), so one key serves a suite."""
    dataset = example.meta.get("dataset")
    if dataset not in METRICS:
        raise PcbenchError(
            f"metric 'longbench' needs example.meta['dataset'] in {sorted(METRICS)}; got {dataset!r} "
            f"(example {example.id})"
        )
    return LONGBENCH_METRICS[METRICS[dataset]](prediction, example)
