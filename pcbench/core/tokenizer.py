"""The tokenizer protocol (text <-> ids, no special tokens) and its Hugging Face implementation."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol


class Tokenizer(Protocol):
    """The reader's tokenizer, seen as plain text <-> ids (no special tokens)."""

    name: str

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def count(self, texts: list[str]) -> list[int]: ...


class HFTokenizer:
    def __init__(self, tokenizer: Any, name: str) -> None:
        self.hf = tokenizer
        self.name = name

    def encode(self, text: str) -> list[int]:
        return list(self.hf(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=True)

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self.hf(list(texts), add_special_tokens=False)["input_ids"]]


@lru_cache(maxsize=8)  # a sweep in one process builds a reader per cell; tokenizers are read-only
def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False) -> HFTokenizer:
    from transformers import AutoTokenizer

    from pcbench.core.local_models import resolve

    hf = AutoTokenizer.from_pretrained(resolve(name_or_path), revision=revision, trust_remote_code=trust_remote_code)
    return HFTokenizer(hf, name_or_path)
