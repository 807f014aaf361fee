"""The reader that never generates: for reader-free diagnostics (`reader=none`).

Compression ratios, retention and other context-only measures still need a tokenizer to count
tokens; `tokenizer_model` names which one, and no model weights are ever loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from core.errors import PcbenchError
from core.requests import Generation, Request
from core.tokenizer import HFTokenizer
from readers.base import Reader, reader_tokenizer


@dataclass
class NoReader(Reader):
    tokenizer_model: str

    generates: ClassVar[bool] = False

    def __post_init__(self) -> None:
        # Loaded state, kept out of the dataclass fields so that fields() lists only knobs.
        self._tokenizer: HFTokenizer | None = None
        if not self.tokenizer_model.strip():
            raise PcbenchError(
                f"reader.tokenizer_model={self.tokenizer_model!r} is empty; give a hub id, a path or 'smollm2'"
            )

    @property
    def tokenizer(self) -> HFTokenizer:  # type: ignore[override]
        if self._tokenizer is None:
            self._tokenizer = reader_tokenizer("reader.tokenizer_model", self.tokenizer_model)
        return self._tokenizer

    def settings(self) -> dict[str, Any]:
        # Token counts depend on the tokenizer, so it is part of the key even without generation.
        return {"reader": "none", "tokenizer": self.tokenizer_model}

    def generate(self, requests: list[Request]) -> list[Generation]:
        raise PcbenchError(
            "reader=none skips generation (it only counts tokens); pick a generating reader, e.g. reader=smollm2"
        )
