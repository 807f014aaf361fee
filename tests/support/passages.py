"""Hand-built examples with a few words per sentence, the compressors' YAML builder, and a store
that counts what it had to compute: for the compressor tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from conftest import make as build

from pcbench.core.example import Example, Passage

FRANCE = Passage("Paris is the capital of France. It has many museums. The river Seine flows through it.", "France")
DOGS = Passage("Dogs bark loudly at night. Many dogs like bones. Puppies sleep a lot.", "Dogs")
SPACE = Passage("The Moon orbits the Earth. Mars is red. Jupiter is the largest planet.", "Space")


def C(option: str, **knobs: Any) -> Any:
    """conf/compressor/<option>.yaml with knobs overridden; naming another budget nulls the YAML's rate."""
    if "target_tokens" in knobs or "threshold" in knobs:
        knobs.setdefault("rate", None)
    return build("compressor", option, **knobs)


def example_of(*passages: Passage, question: str = "What is the capital of France?", id: str = "ex1") -> Example:
    return Example(id, question, tuple(passages), ("Paris",))



class CountingStore:
    """Memoises like the real store and counts how often it had to compute scores."""

    def __init__(self) -> None:
        self.memo: dict[str, Any] = {}
        self.computed = 0

    def fetch(self, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
        return self.fetch_many([key], lambda missing: [compute()])[0]

    def fetch_many(self, keys: list[dict[str, Any]], compute: Callable[[list[int]], list[Any]]) -> list[Any]:
        names = [json.dumps(key, sort_keys=True) for key in keys]
        missing = [i for i, name in enumerate(names) if name not in self.memo]
        if missing:
            self.computed += sum(keys[i]["stage"] == "scores" for i in missing)
            for i, value in zip(missing, compute(missing)):
                self.memo[names[i]] = value
        return [self.memo[name] for name in names]
