"""Reader-free diagnostics: they rank compressors before any reader runs."""

from __future__ import annotations

import bisect
import difflib
import functools
import hashlib
import re
from typing import Any

from pcbench.core.example import Example
from pcbench.core.records import Diagnostics
from pcbench.core.tokenizer import openai_tokenizer
from pcbench.tasks.base import Task
from pcbench.tasks.metrics import contains_answer, normalize_answer

YES_NO = frozenset({"yes", "no"})


def yes_no_only(example: Example) -> bool:
    """Are the gold answers only yes/no (HotpotQA comparison questions)?"""
    answers = {normalize_answer(a) for a in example.answers}
    return bool(answers) and answers <= YES_NO


def answer_in_context(example: Example, context: str) -> bool | None:
    """Does a gold answer string survive compression?

    None when the task has no short answers, and for yes/no answers: "yes" or "no" appearing
    somewhere in the text says nothing about the evidence, so such examples are counted apart
    (metrics.json: answer_in_context_yes_no) instead of being scored by accident.
    """
    if not example.answers or example.meta.get("long_answers") or yes_no_only(example):
        return None
    return contains_answer(context, example.answers)


def evidence_recall(example: Example, context: str) -> float | None:
    """Share of gold evidence spans (sentences or passages) still present, whitespace-insensitive."""
    spans = [s for s in example.evidence if s.strip()]
    return share_whole(spans, context) if spans else None


def share_whole(spans: list[str] | tuple[str, ...], text: str) -> float:
    """The share of `spans` found whole in `text`, whitespace-insensitive."""
    flat = " ".join(text.split())
    return sum(" ".join(s.split()) in flat for s in spans) / len(spans)


def char_ratio(original: str, compressed: str) -> float:
    """Kept share of characters, the unit Provence and BERGEN report."""
    return len(compressed) / len(original) if original else 1.0


@functools.lru_cache(maxsize=4096)
def cl100k_tokens(text: str) -> int:
    return openai_tokenizer("cl100k").count([text])[0]


def paper_ratios(task: Task, example: Example, compressed: str) -> Diagnostics:
    """The kept ratio in the units papers report, beside the reader-token one: characters (Provence,
    BERGEN), cl100k tokens of the context and of the whole prompt, instruction and question
    included (the LLMLingua family's GPT-3.5 tokens)."""
    # The full context's and full prompt's counts do not depend on the budget: a rate sweep counts
    # them once per process (cl100k_tokens is memoised).
    context, prompt = cl100k_tokens(example.context), cl100k_tokens(task.prompt(example, example.context))
    kept, kept_prompt = cl100k_tokens(compressed), cl100k_tokens(task.prompt(example, compressed))
    return {"char_ratio": char_ratio(example.context, compressed),
            "kept_ratio_cl100k": kept / context if context else 1.0,
            "prompt_ratio_cl100k": kept_prompt / prompt if prompt else 1.0}


__all__ = ["answer_in_context", "evidence_recall", "char_ratio", "instruction_survival", "normalize_answer",
           "paper_ratios", "yes_no_only"]


# -- what survives: facts of the original context still in the compressed one ---------------------

# NER labels that name things; numbers are found by pattern, dates and times by their own labels.
NAMED = frozenset({"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
                   "LANGUAGE"})
DATED = frozenset({"DATE", "TIME"})
NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
WORD = re.compile(r"[^\W_]+")
_WORD_END = re.compile(r"\S+")
# Function words a question term never is.
_STOP = frozenset("a an the of in on at to for from by with and or but is are was were be been who whom whose "
                  "which what when where why how did do does that this these those it its as than then".split())


def facts(text: str) -> dict[str, list[str]]:
    """The distinct named entities, dates and numbers of `text` (entities and dates need spaCy's
    English model; without it those lists are empty and `survival` reports None for them)."""
    from pcbench.models.spacy_english import english

    nlp = english(("parser", "lemmatizer", "attribute_ruler", "tagger", "senter"))
    found: dict[str, list[str]] = {"entities": [], "dates": [], "numbers": sorted(set(NUMBER.findall(text))),
                                   "ner": ["yes" if nlp is not None else "no"]}
    if nlp is not None:
        doc = nlp(text[:1_000_000])  # spaCy's own limit; longer contexts are judged on their first million
        found["entities"] = sorted({e.text for e in doc.ents if e.label_ in NAMED})
        found["dates"] = sorted({e.text for e in doc.ents if e.label_ in DATED})
    return found


def facts_key(text: str) -> dict[str, Any]:
    """The store key of `facts(text)`: the text by its hash (a context can be long)."""
    from pcbench.models.spacy_english import SPACY_MODELS

    return {"stage": "facts", "v": 1, "models": list(SPACY_MODELS),
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def _share(items: list[str], text: str) -> float | None:
    return sum(item in text for item in items) / len(items) if items else None


def survival(found: dict[str, list[str]], question: str, original: str, compressed: str) -> Diagnostics:
    """Shares of the original context's facts still in the compressed one (exact substrings): named
    entities, dates, numbers, and the question's content words that the original holds. None where
    the original has none (or, for entities and dates, where spaCy's model is missing)."""
    ner = found.get("ner") == ["yes"]
    lowered, kept = original.lower(), compressed.lower()
    terms = sorted({w for w in WORD.findall(question.lower()) if len(w) > 1 and w not in _STOP and w in lowered})
    return {"entities_kept": _share(found["entities"], compressed) if ner else None,
            "dates_kept": _share(found["dates"], compressed) if ner else None,
            "numbers_kept": _share(found["numbers"], compressed),
            "question_terms_kept": _share(terms, kept)}


def _kept_words(original: str, compressed: str) -> tuple[list[tuple[int, int]], list[bool]]:
    """The original's words (their character spans) and, for each, whether the compressed text keeps
    it: the two word sequences aligned in order (difflib's matching blocks), so a word is kept where
    the compressed text has it at the matching place, not merely somewhere."""
    words = [m.span() for m in _WORD_END.finditer(original)]
    kept = [False] * len(words)
    matcher = difflib.SequenceMatcher(None, [original[a:b] for a, b in words], _WORD_END.findall(compressed),
                                      autojunk=False)
    for block in matcher.get_matching_blocks():
        kept[block.a:block.a + block.size] = [True] * block.size
    return words, kept


def instruction_survival(spans: tuple[str, ...], original: str, compressed: str) -> Diagnostics:
    """How much of the instruction and few-shot demonstrations that sit in the compressed text survives:
    `instruction_kept`, the share of their words kept in place (the original and compressed words
    aligned in order); `instruction_whole`, the share of spans kept whole (whitespace-insensitive).
    None for both where the task marks no such spans (Task.instruction_spans)."""
    spans = tuple(s for s in spans if s.strip())
    if not spans:
        return {"instruction_kept": None, "instruction_whole": None}
    words, kept = _kept_words(original, compressed)
    starts = [a for a, _ in words]
    total = hits = 0
    cursor = 0
    for span in spans:
        begin = original.find(span, cursor)
        if begin < 0:  # out of order, or repeated: search from the start
            begin = original.find(span)
        if begin < 0:
            continue
        cursor = begin + len(span)
        first, last = bisect.bisect_left(starts, begin), bisect.bisect_left(starts, cursor)
        total += last - first
        hits += sum(kept[first:last])
    return {"instruction_kept": hits / total if total else None, "instruction_whole": share_whole(spans, compressed)}
