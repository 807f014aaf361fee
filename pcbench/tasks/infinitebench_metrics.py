"""InfiniteBench's scorers, as OpenBMB/InfiniteBench's src/compute_scores.py computes them (`get_score_one`
per task). The gold label is the one `get_answer` in src/eval_utils.py gives: for the two choice tasks,
[the option's text, its letter]."""

from __future__ import annotations

import functools
import re
from typing import Any

from pcbench.core.example import Example
from pcbench.tasks.longbench_metrics import normalize_en, normalize_zh, token_f1

# compute_scores.py's normalisation and F1 are LongBench's metrics.py's, character for character.


def qa_f1(pred: str, labels: list[str]) -> float:
    return max((token_f1(normalize_en(pred).split(), normalize_en(g).split()) for g in labels), default=0.0)


def qa_f1_zh(pred: str, labels: list[str]) -> float:
    """One character, one token (LongBench's Chinese F1 cuts words with jieba instead)."""
    return max((token_f1(list(normalize_zh(pred)), list(normalize_zh(g))) for g in labels), default=0.0)


def first_int(text: str) -> str:
    """The first run of digits ("" for none)."""
    found = re.search(r"[0-9]+", text)
    return found.group(0) if found else ""


def _words(text: str, separators: str) -> list[str]:
    for c in separators:
        text = text.replace(c, " ")
    return text.split()


def _first(label: Any) -> Any:
    return label[0] if isinstance(label, list) else label


def retrieval(pred: str, label: Any) -> bool:
    """kv_retrieval: the value is one of the reply's words. The hub's rows hold it in a one-item list,
    compute_scores.py's stored labels as a string: both read as the string."""
    return bool(_first(label) in _words(pred, "\n:\"'.,?!{}"))


def digits(pred: str, label: Any) -> bool:  # passkey, number_string
    return bool(_first(label) == first_int(pred))


def code_run(pred: str, label: Any) -> bool:
    words = _words(pred.strip(), "\n.`'\":")
    if not words:
        return False
    try:
        return bool(_first(label) == int(words[-1]))
    except ValueError:
        return False


def _after_prefix(pred: str, prefixes: tuple[str, ...], accepted: list[str]) -> bool | None:
    """Whether what follows the first answer prefix found starts with an accepted answer; None when
    no prefix is in the reply."""
    for prefix in prefixes:
        at = pred.find(prefix)
        if at == -1:
            continue
        if len(pred) < at + len(prefix) + 1:  # the reply ends with the prefix
            return False
        rest = pred[at + len(prefix) + 1:]
        return any(rest.startswith(s) for s in accepted)
    return None


def _squeeze(text: str) -> str:
    while "  " in text:
        text = text.replace("  ", " ")
    return text


def code_debug(pred: str, label: list[str]) -> bool:
    pred = pred.strip()
    name, letter = label[0], label[1]
    if pred[:2] in (f"{letter}.", f"{letter}:"):
        return True
    for c in ("\n", "`", "'", '"', "-", "*", "Option", "option"):
        pred = pred.replace(c, " ")
    found = _after_prefix(_squeeze(pred), ("answer is:", "is:", "answer:", "correct option is:"), [letter, name])
    return bool(found)


def choice(pred: str, label: list[str]) -> bool:  # longbook_choice_eng
    pred = pred.strip()
    if pred == "":
        return False
    if pred[0] in "ABCD":
        return pred[0] in label
    if pred in label:
        return True
    pred = _squeeze("".join(" " if c in "\n\"'.,?!{}" else c for c in pred))
    found = _after_prefix(pred, ("answer is:", "answer:", "answer is", "option is"), label)
    if found is not None:
        return found
    # The first word that is a letter (or a piece of "ABCD", as `word in "ABCD"` reads).
    return next((word in label for word in pred.split() if word in "ABCD"), False)


def dialogue(pred: str, label: Any) -> bool:  # longdialogue_qa_eng
    return bool(_first(label) in [w.upper() for w in _words(pred.strip(), "\n:\"'.,?!{}")])


def math_find(pred: str, label: Any) -> bool:
    label = _first(label)
    number = re.search(r"\d+\.\d+|\d+", pred)
    if number is None:
        return False
    if isinstance(label, bool) or not isinstance(label, int | float):
        raise TypeError(f"math_find's label must be a number, got {type(label).__name__}")
    if isinstance(label, int):
        # compute_scores.py calls int() on the match and stops on a decimal one; here that is wrong.
        return "." not in number.group(0) and int(number.group(0)) == label
    return float(number.group(0)) == label


@functools.cache
def _rouge_lsum() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=False)


def summary(pred: str, label: Any) -> float:
    """longbook_sum_eng: `evaluate`'s rouge, rougeLsum F-measure, the best over the references."""
    references = [label] if isinstance(label, str) else list(label)
    return max(float(_rouge_lsum().score(r, pred)["rougeLsum"].fmeasure) for r in references)


SCORERS = {
    "passkey": digits, "number_string": digits, "kv_retrieval": retrieval, "longbook_sum_eng": summary,
    "longbook_choice_eng": choice, "longbook_qa_eng": qa_f1, "longbook_qa_chn": qa_f1_zh,
    "longdialogue_qa_eng": dialogue, "math_find": math_find, "code_run": code_run, "code_debug": code_debug,
}


def infinitebench(prediction: str, example: Example) -> float:
    """The official scorer of the example's own task (meta["subtask"]) on its label (meta["label"])."""
    return float(SCORERS[str(example.meta["subtask"])](prediction, example.meta["label"]))
