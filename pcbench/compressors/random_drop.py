"""The control: keep random units up to the budget, so any method must beat chance."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import ClassVar

from pcbench.compressors.base import Role
from pcbench.compressors.scored import ScoredCompressor
from pcbench.core.example import Example


@dataclass
class RandomDrop(ScoredCompressor):
    """The control: random units kept up to the budget, so any method must beat chance.

    Units are scored from a hash of `seed` and the example id (the same draw in every process) and
    kept by the shared selector. Knobs: the budget, `level`, `order`, `seed`.
    """

    seed: int

    question_aware: ClassVar[bool] = False
    role: ClassVar[Role] = "control"

    def score(self, question: str, units: list[str], example: Example) -> list[float]:
        # Python's hash() of a str is salted per process; sha256 gives the same draw in every run.
        digest = hashlib.sha256(f"{self.seed}\0{example.id}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        return [rng.random() for _ in units]
