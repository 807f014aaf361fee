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
        return [i for piece in bpe_pieces(text) for i in self.encoding.encode_ordinary(piece)]

    def decode(self, ids: list[int]) -> str:
        return str(self.encoding.decode(list(ids))) if ids else ""

    def count(self, texts: list[str]) -> list[int]:
        # One text after another: the package's batch call starts a thread pool per call, which costs
        # more than it saves for the few texts a call here holds.
        return [sum(len(self.encoding.encode_ordinary(piece)) for piece in bpe_pieces(text)) for text in texts]


# bpe-openai refuses a string of 1,000,000 characters or more, and a call giving over 200,000 tokens.
# A piece of at most this many characters gives at most as many tokens, under both limits.
PIECE_CHARS = 150_000


def bpe_pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """`text` cut into pieces of at most `size` characters where OpenAI's pre-tokenizer splits anyway,
    so that encoding the pieces one by one gives exactly the tokens of the whole: after a run of
    newlines before a non-space character, else before a space that starts a word (" word" is one
    pre-token), else (a run of `size` characters with neither) anywhere, where the count can be off
    by a token at the seam."""
    pieces, start = [], 0
    while len(text) - start > size:
        window = text[start:start + size]
        cut = window.rfind("\n", 0, size - 1)
        while cut > 0 and window[cut + 1:cut + 2].isspace():  # the end of a run of blank lines
            cut = window.rfind("\n", 0, cut)
        if cut > 0:
            cut += 1
        else:
            cut = next((i for i in range(size - 1, 0, -1) if window[i] == " " and not window[i - 1].isspace()
                        and not window[i + 1:i + 2].isspace()), size)
        pieces.append(text[start:start + cut])
        start += cut
    if start < len(text) or not pieces:
        pieces.append(text[start:])
    return [piece for piece in pieces if piece]


@lru_cache(maxsize=4)
def openai_tokenizer(name: str) -> OpenAITokenizer:
    return OpenAITokenizer(name)


@lru_cache(maxsize=8)  # a sweep in one process builds a reader per cell; tokenizers are read-only
def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False) -> HFTokenizer:
    from transformers import AutoTokenizer

    from pcbench.core.local_models import resolve

    hf = AutoTokenizer.from_pretrained(resolve(name_or_path), revision=revision, trust_remote_code=trust_remote_code)
    return HFTokenizer(hf, name_or_path)
