"""The `code` compressor (LongCodeZip): its chunks, its selection rules, and runs on a tiny random
llama with SmolLM2's tokenizer (and once on SmolLM2 itself, on a LongBench lcc file)."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from conftest import SHARED_DATA, make, needs_smollm2

from pcbench.compressors.base import Env
from pcbench.compressors.code import (
    _collapse_markers,
    allocate,
    chunk_starts,
    find_spikes,
    knapsack,
    preserved_blocks,
    split_lines,
)
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.models.pool import Models

# The reference's Python pattern, verbatim (longcodezip/__init__.py, split_code_by_functions): the
# chunks it makes are the fact our line rule must reproduce.
REFERENCE_PYTHON = re.compile(r'(^|\n)(\s*)(def|class)\s+[^\n]+(\n(?!\s*(?:def|class)\s)[^\n]*)*', re.MULTILINE)

PYTHON = '''import os
import sys<SPACES>

CONSTANT = 3


class Shape:
    """A shape."""

    def area(self):
        return 0

    def name(self):
        return "shape"
def helper(x):
    y = x + 1

    return y * CONSTANT
<SPACES>
async def not_a_chunk_opener():
    pass
class Square(Shape):
    def __init__(self, side):
        self.side = side
    def area(self):
        return self.side ** 2
'''.replace("<SPACES>", "   ")  # lines ending in spaces, and a line of spaces only

JAVA = '''package demo;

import java.util.List;

/** A store. */
public class Store {
    private int count;

    @Override
    public String toString() {
        return "Store";
    }

    public Store(int count) {
        this.count = count;
    }

    private static Map<String, List<Integer>> index(List<String> names) {
        if (names.isEmpty()) {
            return null;
        }
        for (String n : names) {
            System.out.println(n);
        }
        return new HashMap<>();
    }
}
'''


def reference_starts(code: str) -> list[int]:
    found = [m.start() for m in REFERENCE_PYTHON.finditer(code)]
    return ([0] if not found or found[0] > 0 else []) + found


def test_python_chunks_are_the_reference_patterns() -> None:
    variants = [PYTHON, "\n\n" + PYTHON, PYTHON.replace("import os\nimport sys   \n", ""),
                "x = 1   \n\ndef f():\n  pass\n", "def f():\n    pass\n",
                "x = 1\n", "class A:\n    pass\n\n\n\nclass B:\n    x = 'def y'\n"]
    shared = SHARED_DATA / "longbench" / "sample" / "lcc.jsonl"
    if shared.is_file():
        variants += [json.loads(line)["context"] for line in shared.read_text().splitlines()]
    for code in variants:
        if not re.search(r"^[ \t]*(?:def|class)\s", code, re.MULTILINE):
            continue
        assert chunk_starts(code, "python") == reference_starts(code)


def test_python_ast_chunks_keep_decorators_and_comments_and_ignore_defs_in_strings_and_bodies() -> None:
    code = ('import os\n\n\n# The helper.\n@cache\ndef helper(x):\n    def inner():\n        return 1\n'
            '    return """\ndef not_code():\n"""\n\nclass A:\n    x = 1\n\n    @property\n    def y(self):\n'
            '        return 2\n')
    starts = chunk_starts(code, "python_ast")
    chunks = [code[a:b] for a, b in zip(starts, [*starts[1:], len(code)])]
    assert "".join(chunks) == code
    assert [c.strip().splitlines()[0] for c in chunks] == ["import os", "# The helper.", "class A:", "@property"]
    # The line rule cuts at the nested def and the one in the string, and leaves the decorators behind.
    assert len(chunk_starts(code, "python")) == 6


def test_python_ast_parses_a_file_cut_off_mid_code_and_falls_back_to_the_line_rule() -> None:
    cut = "def f():\n    return 1\n\n\nclass B:\n    def g(self):\n        return (1 +\n"
    starts = chunk_starts(cut, "python_ast")
    heads = [cut[a:b].strip().splitlines()[0] for a, b in zip(starts, [*starts[1:], len(cut)])]
    # Parsed up to `class B:`; the cut class parses nowhere, so the line rule cuts it.
    assert heads == ["def f():", "class B:", "def g(self):"]
    pasted = "def f():\n    return 1\n  stray indent\ndef g():\n    pass\n\n@wrap\ndef h():\n    pass\n"
    starts = chunk_starts(pasted, "python_ast")  # parsing resumes after the stretch that does not parse
    heads = [pasted[a:b].strip().splitlines()[0] for a, b in zip(starts, [*starts[1:], len(pasted)])]
    assert heads == ["def f():", "def g():", "@wrap"]
    broken = "def f(:\n    pass\ndef g():\n    pass\n"  # nothing parses: the reference's line rule
    assert chunk_starts(broken, "python_ast") == chunk_starts(broken, "python")


def test_brace_code_is_cut_at_declarations_with_their_annotations() -> None:
    starts = chunk_starts(JAVA, "auto")  # no def/class line: the brace rule
    chunks = [JAVA[a:b] for a, b in zip(starts, [*starts[1:], len(JAVA)])]
    assert "".join(chunks) == JAVA
    heads = [c.strip().splitlines()[0] for c in chunks]
    assert heads == ["package demo;", "/** A store. */", "@Override", "public Store(int count) {",
                     "private static Map<String, List<Integer>> index(List<String> names) {"]


def test_blank_lines_become_a_space_line_and_spikes_need_both_neighbours_lower() -> None:
    assert split_lines("a\n\nb\n\n\nc") == ["a", " ", "b", " ", "", "c"]
    # Threshold: mean + 0 x std of the positive values = 2.2; line 2 rises 4 over both neighbours.
    assert find_spikes([1.0, 1.0, 5.0, 1.0, 3.0, 2.0], 0.0) == [2]
    assert find_spikes([1.0, 2.0], 0.2) == []  # too few values: the fixed 0.5 threshold, no inner line
    assert find_spikes([0.0, 2.0, float("inf")], 0.0) == [1]  # an infinite neighbour counts as equal


def test_knapsack_is_exact_and_keeps_what_must_stay() -> None:
    weights, values = [3, 4, 5, 2, 6, 1], [4.0, 5.0, 6.0, 1.0, 9.0, -2.0]
    for target in range(0, 22):
        got = knapsack(weights, values, target, preserved={0})
        assert 0 in got
        room = max(0, target - weights[0])
        best = max((sum(values[i] for i in c) for r in range(6) for c in itertools.combinations(range(1, 6), r)
                    if sum(weights[i] for i in c) <= room), default=0.0)
        assert sum(values[i] for i in got - {0}) == pytest.approx(max(best, 0.0))
        assert sum(weights[i] for i in got - {0}) <= max(room, 0) or got == {0}
    assert knapsack([5, 5], [1.0, 1.0], 4, preserved={1}) == {1}  # nothing left: only the preserved


def test_fine_ratios_follow_the_coarse_scores_and_meet_the_line_target() -> None:
    lines = {0: 10, 1: 10, 2: 3}
    ratios = allocate([0, 1, 2], lines, [1.0, 3.0, 2.0], target_lines=13, min_lines=5, beta=0.5)
    assert ratios[2] == 1.0  # small: whole
    assert ratios[1] > ratios[0]  # better coarse score, more lines kept
    assert ratios[0] * 10 + ratios[1] * 10 == pytest.approx(10, abs=1)
    # No room left for the large chunks: the reference falls back to keeping them whole.
    assert allocate([0, 2], lines, [1.0, 2.0], target_lines=2, min_lines=5, beta=0.5) == {2: 1.0, 0: 1.0}
    assert allocate([0, 1], lines, [1.0, 1.0], target_lines=10, min_lines=5, beta=0.5) == {0: 0.5, 1: 0.5}


def test_markers_collapse_and_definitions_are_preserved() -> None:
    assert _collapse_markers("a\n# ... \n\n    # ... \nb\n# ... ", "# ... ") == "a\n# ... \n\nb\n# ... "
    blocks = ["    x = 1\n    y = 2", "    # why\n    z = 3", "    return x", "\n    def inner():", "    q = 1"]
    assert preserved_blocks(blocks, "# ... ") == {1, 2, 3}
    assert preserved_blocks(["    // note", "    return;", "  x++;"], "// ... ") == {0}


def env() -> Env:
    from pcbench.core.tokenizer import load_tokenizer

    return Env(load_tokenizer("smollm2"), models=Models())


EXAMPLES = [
    Example("py", "", (Passage(PYTHON),), ("x",)),
    Example("java", "", (Passage(JAVA),), ("x",)),
    Example("asked", "How is the area of a square computed?", (Passage(PYTHON),), ("x",)),
]


@needs_smollm2
def test_on_a_tiny_model_the_reference_rule_keeps_the_query_chunk_and_batches(tiny: str) -> None:  # noqa: F811
    e = env()
    # No slack: these files are ~120 tokens, and the reference's +100 would keep everything.
    code = make("compressor", "code", model=tiny, device="cpu", rate=0.3, batch_size=3, context_budget="+0")
    together = code.compress_batch(EXAMPLES, e)
    alone = [code.compress(x, e) for x in EXAMPLES]
    assert [r.text for r in together] == [r.text for r in alone]
    py, java, asked = together
    assert py.extras["query_chunk_kept"] and "return self.side ** 2" in py.text  # the code being completed
    assert py.extras["kept_units"] < py.extras["units"]
    assert "# ... " in py.text and "// ... " in java.text
    assert not asked.extras["query_chunk"]  # a question: every chunk competes
    # Only chunks the reference rule kept: each kept line is one of the file's lines or a marker.
    for example, result in zip(EXAMPLES, together):
        lines = set(example.context.split("\n"))
        assert all(line in lines or line.strip() in {"# ...", "// ..."} or not line.strip()
                   for line in result.text.split("\n"))


@needs_smollm2
def test_a_strict_budget_is_never_exceeded_and_one_pass_line_scores_run(tiny: str) -> None:  # noqa: F811
    e = env()
    for rate in (0.2, 0.4, 0.7):
        for rank_only in (True, False):
            code = make("compressor", "code", model=tiny, device="cpu", rate=rate, strict_budget=True,
                        rank_only=rank_only, line_ppl="one_pass", min_lines=2)
            for example, result in zip(EXAMPLES, code.compress_batch(EXAMPLES, e)):
                assert e.count([result.text])[0] <= round(rate * e.count([example.context])[0])


@needs_smollm2
def test_the_fine_stage_prunes_inside_kept_chunks(tiny: str) -> None:  # noqa: F811
    e = env()
    coarse = make("compressor", "code", model=tiny, device="cpu", rate=0.9, rank_only=True)
    fine = make("compressor", "code", model=tiny, device="cpu", rate=0.9, fine_ratio=0.3, min_lines=2)
    [kept] = coarse.compress_batch([EXAMPLES[2]], e)
    [pruned] = fine.compress_batch([EXAMPLES[2]], e)
    assert pruned.extras["fine_pruned_chunks"] >= 1
    assert e.count([pruned.text])[0] < e.count([kept.text])[0]


def test_bad_knobs_are_one_line() -> None:
    with pytest.raises(PcbenchError, match="compressor.threshold=0.5 is not allowed for CodeZip"):
        make("compressor", "code", rate=None, threshold=0.5)
    with pytest.raises(PcbenchError, match="compressor.context_budget='lots' is not allowed"):
        make("compressor", "code", context_budget="lots")
    with pytest.raises(PcbenchError, match="compressor.language"):
        make("compressor", "code", language="cobol")


@pytest.mark.slow
@needs_smollm2
def test_smollm2_compresses_a_longbench_lcc_file() -> None:
    shared = SHARED_DATA / "longbench" / "sample" / "lcc.jsonl"
    if not shared.is_file():
        pytest.skip(f"{shared} is absent")
    row = json.loads(shared.read_text().splitlines()[0])
    example = Example("lcc-0", row["input"], (Passage(row["context"]),), tuple(row["answers"]))
    e = env()
    result = make("compressor", "code", device="cpu", rate=0.3, rank_only=True, strict_budget=True).compress(example, e)
    assert 0 < e.count([result.text])[0] <= round(0.3 * e.count([example.context])[0])
    assert result.extras["query_chunk_kept"] and "def language_status" in result.text
