"""What a task asks of a reader, and what the reader gives back."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    prompt: str  # the task's rendered prompt, before any chat template
    max_new_tokens: int
    chat: bool = True
    stop_at_newline: bool = False


@dataclass
class Generation:
    text: str
    prompt_tokens: int  # after truncation and chat template
    new_tokens: int
    truncated: bool  # the prompt was cut from the middle to fit the window
    prefill_seconds: float
    decode_seconds: float
