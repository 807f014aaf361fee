"""Reader-free diagnostics: they rank compressors before any reader runs."""

from __future__ import annotations

import functools

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
    if not spans:
        return None
    kept = " ".join(context.split())
    return sum(" ".join(s.split()) in kept for s in spans) / len(spans)


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


__all__ = ["answer_in_context", "evidence_recall", "char_ratio", "normalize_answer", "paper_ratios", "yes_no_only"]
