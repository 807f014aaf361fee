"""The ceiling: keep exactly the gold evidence, to show what perfect selection would score."""

from __future__ import annotations

from dataclasses import dataclass

from compressors.base import Compressed, Compressor, Env
from compressors.units import LEVELS
from core.errors import PcbenchError
from core.example import PASSAGE_SEPARATOR, Example, Passage, render_passages

TASKS_WITH_EVIDENCE = "hotpotqa, nq, niah"


@dataclass
class Oracle(Compressor):
    # query_aware stays True: the gold evidence is chosen for this question, more so than any scorer.
    level: str = "sentence"  # sentence: the gold sentences under their titles; passage: gold passages whole

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise PcbenchError(f"compressor.level={self.level!r} is not allowed; allowed: {', '.join(LEVELS)}")

    def compress(self, example: Example, env: Env) -> Compressed:
        if self.level == "passage":
            # A passage that lists evidence holds it, even when the task did not set its flag.
            kept = [p for p in example.passages if p.gold or p.evidence]
            text = render_passages(kept)
        else:
            kept = [p for p in example.passages if p.evidence]
            text = PASSAGE_SEPARATOR.join(_render_evidence(p) for p in kept)
        if not kept:
            what = "gold passages" if self.level == "passage" else "gold evidence sentences"
            raise PcbenchError(
                f"oracle (level={self.level}): example {example.id!r} has no {what}; "
                f"oracle needs a task with gold evidence ({TASKS_WITH_EVIDENCE})"
            )
        return Compressed(text, {"kept_units": len(kept)})


def _render_evidence(passage: Passage) -> str:
    # Evidence may be listed in any order; put it back in reading order (unknown spans last).
    position = {s: passage.text.find(s) for s in passage.evidence}
    ordered = sorted(passage.evidence, key=lambda s: position[s] if position[s] >= 0 else len(passage.text))
    body = " ".join(s.strip() for s in ordered if s.strip())
    return f"{passage.title}\n{body}" if passage.title else body
