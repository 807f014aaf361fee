"""The reader interface: one batched `generate` over requests."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from core.requests import Generation, Request
from core.tokenizer import Tokenizer


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
