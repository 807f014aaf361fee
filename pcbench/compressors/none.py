"""The baseline every other method is compared with: the context as it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pcbench.compressors.base import Compressed, Compressor, Env, Role
from pcbench.core.example import Example


@dataclass
class NoCompression(Compressor):
    """Keeps everything. The budget fields are accepted and ignored, so one sweep such as
    `-m compressor=none,bm25 compressor.rate=0.5,0.25` can hold the baseline; its cells are
    identical, and their generations come from the cache after the first."""

    question_aware: ClassVar[bool] = False
    role: ClassVar[Role] = "baseline"
    uses_budget: ClassVar[bool] = False
    rate: float | None
    target_tokens: int | None
    threshold: float | None

    def compress(self, example: Example, env: Env) -> Compressed:
        return Compressed(example.passages)

    def key(self) -> dict[str, object]:
        # The ignored budget must not split the baseline's cache across a rate sweep.
        return {"class": self.settings()["class"], "version": self.version}
