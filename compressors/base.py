"""What every compressor is: a small configured object that turns an example into shorter text."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from runners.errors import PcbenchError
from tasks.example import Example


class Tokenizer(Protocol):
    """The reader's tokenizer, seen as plain text <-> ids (no special tokens)."""

    name: str

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def count(self, texts: list[str]) -> list[int]: ...


class Store(Protocol):
    """Memoises a pure computation under a key built from everything it depends on."""

    def fetch(self, key: dict[str, Any], compute: Callable[[], Any]) -> Any: ...


class NoStore:
    """A store that remembers nothing: for tests and one-off calls."""

    def fetch(self, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
        return compute()


@dataclass
class Env:
    """What the harness lends a compressor: the reader's tokenizer and a score store."""

    tokenizer: Tokenizer
    store: Store = field(default_factory=NoStore)

    def count(self, texts: list[str]) -> list[int]:
        """Token counts in the reader's tokenizer, memoised: a rate sweep counts the same units again."""
        return self.store.fetch({"stage": "tokens", "tokenizer": self.tokenizer.name, "texts": texts},
                                lambda: self.tokenizer.count(texts))


@dataclass
class Compressed:
    """A compressed context plus whatever the method wants to report about itself."""

    text: str
    extras: dict[str, Any] = field(default_factory=dict)


class Compressor(ABC):
    """Subclasses are dataclasses whose fields are their knobs; defaults live in the YAML."""

    query_aware: ClassVar[bool] = True

    @abstractmethod
    def compress(self, example: Example, env: Env) -> Compressed: ...

    def settings(self) -> dict[str, Any]:
        """Every knob, for cache keys and for the record of what was requested."""
        knobs = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", **knobs}

    def close(self) -> None:  # noqa: B027 - a hook: most compressors hold no model
        """Release models before the reader loads (they may share a device)."""


@dataclass
class Budget:
    """The budget vocabulary shared by every compressor: set exactly one field.

    rate: fraction of tokens kept, 0 < rate <= 1. target_tokens: tokens kept.
    threshold: keep units scoring at least this (methods with a meaningful score scale).
    """

    rate: float | None = None
    target_tokens: int | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        chosen = [n for n in ("rate", "target_tokens", "threshold") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise PcbenchError(
                f"{type(self).__name__}: set exactly one of rate, target_tokens, threshold "
                f"(got {', '.join(chosen) or 'none'}); null the others, e.g. "
                f"compressor.rate=null compressor.target_tokens=2000"
            )
        if self.rate is not None and not 0 < float(self.rate) <= 1:
            raise PcbenchError(f"compressor.rate={self.rate} is outside (0, 1]: rate is the fraction of tokens kept")
        if self.target_tokens is not None and int(self.target_tokens) < 1:
            raise PcbenchError(f"compressor.target_tokens={self.target_tokens} must be a positive integer")

    def token_limit(self, total: int) -> int | None:
        """The number of tokens allowed out of `total`, or None when a threshold decides."""
        if self.rate is not None:
            return int(round(float(self.rate) * total))
        if self.target_tokens is not None:
            return int(self.target_tokens)
        return None

    @staticmethod
    def fields() -> tuple[str, ...]:
        return ("rate", "target_tokens", "threshold")
