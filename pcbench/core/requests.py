"""What a task asks of a reader, and what the reader gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


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


MARK = "\x00pcbench-context\x00"


def context_end(render: Callable[[str], str], context: str) -> int | None:
    """Where `context` ends in `render(context)` (a task's prompt), found by rendering once more with
    a marker in its place; None when the template does not hold the context exactly once."""
    marked = render(MARK)
    at = marked.find(MARK)
    if at < 0 or marked.count(MARK) != 1:
        return None
    return at + len(context)
