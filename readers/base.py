"""The reader interface: one batched `generate` over requests."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from compressors.base import Tokenizer


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


class Reader(ABC):
    generates: bool = True
    tokenizer: Tokenizer

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that changes an output (model, revision, dtype, window...): the cache key."""

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[Generation]: ...

    def close(self) -> None:  # noqa: B027 - a hook: readers without a model keep nothing
        pass
