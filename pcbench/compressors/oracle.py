"""The ceiling: keep exactly the gold evidence, to show what perfect selection would score."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from pcbench.compressors.base import Compressed, Compressor, Env, Role
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage

TASKS_WITH_EVIDENCE = "hotpotqa, nq, niah"


@dataclass
class Oracle(Compressor):
    """The ceiling: exactly the gold evidence, to show what perfect selection would score.

    Keeps the gold sentences (`level=sentence`) or gold passages (`level=passage`) the task marks
    (HotpotQA supporting facts, NQ answer sentences, the needle); no budget. A task without gold
    evidence is refused with one line.
    """

    # question_aware stays True: the gold evidence is chosen for this question, more so than any scorer.
    level: Literal["passage", "sentence"]  # sentence: the gold sentences under their titles; passage: whole

    role: ClassVar[Role] = "ceiling"
    uses_budget: ClassVar[bool] = False

    def compress(self, example: Example, env: Env) -> Compressed:
        if self.level == "passage":
            # A passage that lists evidence holds it, even when the task did not set its flag.
            kept = [p for p in example.passages if p.gold or p.evidence]
        else:
            kept = [_evidence_only(p) for p in example.passages if p.evidence]
        if not kept:
            what = "gold passages" if self.level == "passage" else "gold evidence sentences"
            raise PcbenchError(
                f"oracle (level={self.level}): example {example.id!r} has no {what}; "
                f"oracle needs a task with gold evidence ({TASKS_WITH_EVIDENCE})"
            )
        return Compressed(tuple(kept), {"kept_units": len(kept)})


def _evidence_only(passage: Passage) -> Passage:
    # Evidence may be listed in any order; put it back in reading order (unknown spans last).
    position = {s: passage.text.find(s) for s in passage.evidence}
    ordered = sorted(passage.evidence, key=lambda s: position[s] if position[s] >= 0 else len(passage.text))
    return replace(passage, text=" ".join(s.strip() for s in ordered if s.strip()), sentences=None)
