"""What a task asks of a reader, and what the reader gives back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    prompt: str  # the task's rendered prompt, before any chat template
    max_new_tokens: int
    chat: bool = True
    stop_at_newline: bool = False
    # Where the compressible context ends in `prompt` (characters): what follows is the question
    # and answer cue. Only readers that treat the two apart (a query-agnostic KV press) read it,
    # and only they key their cache on it (Reader.request_key); None when the task does not say.
    context_end: int | None = None
    # A system turn before the prompt, for chat templates that hold one (an LLM judge's instruction,
    # tasks/judge.py); tasks leave it None.
    system: str | None = None
    # Answers whose first token's probabilities the reader should report (an LLM judge's "Yes"/"No",
    # read from the first new token's logits as BERGEN does); only readers that see logits can.
    options: tuple[str, ...] | None = None
    # The context's documents and the bare question, for a reader that reads documents its own way
    # (a soft-context reader compresses each document into embeddings and asks under its own prompt);
    # the runner fills them only for such a reader.
    documents: tuple[str, ...] | None = None
    question: str | None = None

    def key(self) -> dict[str, Any]:
        """The request's fields as a cache key: the optional ones only when set, so keys made
        before those fields existed stay what they were."""
        fields = dataclasses.asdict(self)
        for name in ("system", "options", "documents", "question"):
            if fields[name] is None:
                del fields[name]
        return fields


@dataclass
class Generation:
    text: str
    prompt_tokens: int  # after truncation and chat template
    new_tokens: int
    truncated: bool  # the prompt was cut from the middle to fit the window
    prefill_seconds: float | None  # None where the backend cannot observe it (an HTTP endpoint)
    decode_seconds: float | None
    # Fraction of the prompt's KV-cache entries a KV press kept (reader=kvpress); None otherwise.
    kv_kept_ratio: float | None = None
    # A press's memory (MiB): the cache it leaves after the pressed prefill, what the same tokens'
    # cache holds unpressed, and how far memory rose during that prefill (CUDA allocation on a GPU,
    # else the resident set; core/memory.py).
    kv_cache_mib: float | None = None
    kv_full_mib: float | None = None
    prefill_peak_mib: float | None = None
    # The request's `options`: the softmax over their first tokens' logits at the first new token;
    # None where the request named none or the backend sees no logits.
    option_probs: dict[str, float] | None = None


MARK = "\x00pcbench-context\x00"


def context_end(render: Callable[[str], str], context: str) -> int | None:
    """Where `context` ends in `render(context)` (a task's prompt), found by rendering once more with
    a marker in its place; None when the template does not hold the context exactly once."""
    marked = render(MARK)
    at = marked.find(MARK)
    if at < 0 or marked.count(MARK) != 1:
        return None
    return at + len(context)
