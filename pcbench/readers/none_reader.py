"""The reader that never generates: for reader-free diagnostics (`reader=none`).

Compression ratios, retention and other context-only measures still need a tokenizer to count
tokens; `tokenizer_model` names which one, and no model weights are ever loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pcbench.core.errors import PcbenchError
from pcbench.core.requests import Generation, Request
from pcbench.readers.base import Prompt, Reader


@dataclass
class NoReader(Reader):
    tokenizer_model: str

    generates: ClassVar[bool] = False
    NAME: ClassVar[str] = "none"
    TOKENIZER_KNOB: ClassVar[str] = "tokenizer_model"
    device = "cpu"  # constants, not knobs (no annotation: not dataclass fields)
    batch_size = 1
    max_input_tokens = 0  # it builds no prompt

    def __post_init__(self) -> None:
        if not self.tokenizer_model.strip():
            raise PcbenchError(
                f"reader.tokenizer_model={self.tokenizer_model!r} is empty; give a hub id, a path or 'smollm2'"
            )

    def settings(self) -> dict[str, Any]:
        # Token counts depend on the tokenizer, so it is part of the key even without generation.
        return {"reader": "none", "tokenizer": self.tokenizer_model}

    def run(self, requests: list[Request], prompts: list[Prompt]) -> list[Generation]:
        return self.generate(requests)

    def generate(self, requests: list[Request]) -> list[Generation]:
        raise PcbenchError(
            "reader=none skips generation (it only counts tokens); pick a generating reader, e.g. reader=smollm2"
        )
