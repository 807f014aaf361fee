"""Keep a fixed share of the context's tokens from its start, its end, or both ends.

The cheapest baseline, and the one LongBench applies to over-long prompts (`middle`), so
compression methods should at least beat it at the same kept ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pcbench.compressors.base import Budget, Compressed, Compressor, Env
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example


@dataclass
class Truncate(Compressor, Budget):
    """A positional baseline (LongBench's own rule for over-long prompts is `side=middle`).

    Keeps the first (`side=head`), last (`tail`) or both ends (`middle`) of the context, cut in the
    reader's tokens to the budget; no model, no question. Knobs: the budget, `side`.
    """

    side: Literal["head", "tail", "middle"]  # head keeps the start, tail the end, middle both ends

    question_aware: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threshold is not None:
            raise PcbenchError(
                f"compressor.threshold={self.threshold} is not allowed for truncate: it scores nothing; "
                "use rate or target_tokens"
            )

    def compress(self, example: Example, env: Env) -> Compressed:
        context = example.context
        ids = env.tokenizer.encode(context)
        limit = self.token_limit(len(ids), env.prompt_overhead(example))
        assert limit is not None  # rate or target_tokens, never threshold (checked above)
        if limit >= len(ids):
            # The passages themselves: a decode round trip may change whitespace for nothing.
            return Compressed(example.passages, {"tokens": len(ids), "kept_tokens": len(ids)})
        if self.side == "head":
            kept = ids[:limit]
        elif self.side == "tail":
            kept = ids[len(ids) - limit:]
        else:
            # LongBench's rule: the first half and the last half; an odd token goes to the head.
            tail = limit // 2
            kept = ids[: limit - tail] + ids[len(ids) - tail:]
        # One decode of the joined ids, so the junction of head and tail gets the tokenizer's own
        # spacing instead of two strings glued together. The cut crosses passages: no structure left.
        text = env.tokenizer.decode(kept) if kept else ""
        return Compressed.of_text(text, {"tokens": len(ids), "kept_tokens": len(kept)})
