"""The tokenizer protocol (text <-> ids, no special tokens), its Hugging Face implementation, and
OpenAI's BPEs (cl100k_base, o200k_base, offline from the `bpe-openai` package): the papers count
LLMLingua-family ratios in GPT-3.5/GPT-4 tokens."""

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


# Short names of OpenAI's encodings, as budgets and records name them.
OPENAI_ENCODINGS = {"cl100k": "cl100k_base", "o200k": "o200k_base"}


class OpenAITokenizer:
    """An OpenAI BPE (cl100k: GPT-3.5/GPT-4, o200k: GPT-4o). Special-token text counts as plain text,
    as every character of a context should."""

    def __init__(self, name: str) -> None:
        import bpe_openai

        self.name = name
        self.encoding = bpe_openai.get_encoding(OPENAI_ENCODINGS.get(name, name))

    def encode(self, text: str) -> list[int]:
        return list(self.encoding.encode_ordinary(text)) if text else []

    def decode(self, ids: list[int]) -> str:
        return str(self.encoding.decode(list(ids))) if ids else ""

    def count(self, texts: list[str]) -> list[int]:
        # One text after another: the package's batch call starts a thread pool per call, which costs
        # more than it saves for the few texts a call here holds.
        return [len(self.encoding.encode_ordinary(text)) if text else 0 for text in texts]


@lru_cache(maxsize=4)
def openai_tokenizer(name: str) -> OpenAITokenizer:
    return OpenAITokenizer(name)


@lru_cache(maxsize=8)  # a sweep in one process builds a reader per cell; tokenizers are read-only
def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False) -> HFTokenizer:
    from transformers import AutoTokenizer

    from pcbench.core.local_models import resolve

    hf = AutoTokenizer.from_pretrained(resolve(name_or_path), revision=revision, trust_remote_code=trust_remote_code)
    return HFTokenizer(hf, name_or_path)
