"""pcbench's LLMLingua and LongLLMLingua against the reference package, `llmlingua` 0.2.2.

The reference is installed by `make bench` into `.bench-env/` (never a dependency of the project)
and run here on the same scorer (the packaged SmolLM2-135M-Instruct, float32, CPU), the same
documents and the same budget as ours:

- inputs: a few HotpotQA contexts (the shared dev distractor 800) and 2k-token essays (the NIAH
  haystack); the documents are what our compressor cuts the context into (`documents()`), given to
  the reference as its `context` list, the question as its `question` (LongLLMLingua only);
- budget: the reference gets `target_token` = our budget in scorer tokens (rate x context tokens),
  so the question never eats into the context's budget in either;
- settings: each YAML's defaults, which are the reference's defaults (LLMLingua) and its recipes'
  (LongLLMLingua: `rank_method=longllmlingua`, `condition_in_question=after_condition`,
  `condition_compare`, `reorder_context=sort`, `dynamic_context_compression_ratio=0.3`);
  `concate_question=False`, so its output is the compressed context alone.

Agreement is measured on kept scorer tokens: each implementation's kept tokens are placed in the
original documents (document, character offset of the token's first non-space character); ours
exactly (the keep mask of its token stage), the reference's by aligning its kept ids (a subsequence
of the ids it tokenized) to those ids, longest matching runs first. Agreement = F1 (Dice) of the two
kept sets, pooled over examples; Jaccard and the fraction of original tokens with the same decision
are given too. Separator tokens between documents are not counted. The aligner is checked on ours:
aligning our kept ids gives our exact positions back (reported as `aligner check`).

Achieved ratios are rendered compressed-context tokens over original-context tokens, both in the
scorer's tokenizer (the reference's tiktoken is pointed at it). Speed: the seconds of all its
compressions per implementation (one process, after a warm-up; ours with an empty score store for
every call, so nothing is reused across rates); run it alone on an idle CPU (`flock`).

Facts for running 0.2.2 here: tiktoken's `encoding_for_model` downloads a file (offline here), so
it is pointed at the scorer's tokenizer; transformers 5 returns a `DynamicCache` where 0.2.2 expects
legacy (key, value) tuples, so the model's forward converts in and out; empty contexts are not
given to it (it crashes on them; ours skips empty passages too).

`run()` returns (name, value, note) rows for `make bench`; `python benchmarks/llmlingua_reference.py`
prints them (`--limit N` HotpotQA examples, `--essays N`).
"""

from __future__ import annotations

import argparse
import sys
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from reference_common import BENCH_ENV, HOTPOT, ROOT  # beside this file

ESSAY_QUESTION = "What is the best thing to do in San Francisco?"
ESSAY_TOKENS = 2048
RATES = (0.5, 0.25)
FAMILIES = ("llmlingua", "longllmlingua")
INSTALL_HINT = "pip install --no-deps --target .bench-env llmlingua==0.2.2 tiktoken"


class LocalEncoding:
    """What llmlingua needs of a tiktoken encoding (`encode`, `decode`), in the scorer's tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str, **_: Any) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids))


# -- the reference ---------------------------------------------------------------------------------


def load_reference(path: str) -> Any:
    """llmlingua 0.2.2's PromptCompressor on the local model folder, adapted to this environment."""
    if not (BENCH_ENV / "llmlingua").is_dir():
        raise RuntimeError(f"llmlingua 0.2.2 is not in {BENCH_ENV}; `{INSTALL_HINT}` (make bench does it)")
    if str(BENCH_ENV) not in sys.path:
        sys.path.append(str(BENCH_ENV))  # after the project's own packages: it shadows nothing
    import tiktoken
    from transformers import AutoTokenizer

    local = LocalEncoding(AutoTokenizer.from_pretrained(path))
    tiktoken.encoding_for_model = lambda name: local  # its start-up download of gpt-3.5-turbo's BPE
    from llmlingua import PromptCompressor

    compressor = PromptCompressor(model_name=path, device_map="cpu")
    compressor.oai_tokenizer = local
    adapt_cache(compressor.model)
    return compressor


def adapt_cache(model: Any) -> None:
    """Legacy (key, value) tuples in, `DynamicCache` to the model, tuples back out (transformers 5)."""
    from transformers import Cache, DynamicCache

    forward = model.forward

    def legacy_forward(*args: Any, past_key_values: Any = None, **kwargs: Any) -> Any:
        if isinstance(past_key_values, list | tuple):
            cache = DynamicCache(config=model.config)
            for layer, (key, value) in enumerate(past_key_values):
                cache.update(key, value, layer)
            past_key_values = cache
        out = forward(*args, past_key_values=past_key_values, **kwargs)
        if isinstance(out.past_key_values, Cache):
            out.past_key_values = tuple((layer.keys, layer.values) for layer in out.past_key_values.layers)
        return out

    model.forward = legacy_forward


@dataclass
class RefTrace:
    """What the reference's token stage saw and kept."""

    used: list[int] | None = None
    context: list[str] | None = None
    start: int = 0
    kept_ids: list[int] = field(default_factory=list)


def trace_reference(compressor: Any) -> RefTrace:
    """Record the documents kept by the coarse stage and the ids kept by the token stage."""
    trace = RefTrace()
    budget, iterative = compressor.control_context_budget, compressor.iterative_compress_prompt

    def control_context_budget(*args: Any, **kwargs: Any) -> Any:
        out = budget(*args, **kwargs)
        trace.used = list(out[2])
        return out

    def iterative_compress_prompt(context: list[str], *args: Any, **kwargs: Any) -> Any:
        trace.context, trace.start = list(context), int(kwargs.get("start", 0))
        ids, mask = iterative(context, *args, **kwargs)
        trace.kept_ids = [int(i) for i in ids[0].tolist()]
        return ids, mask

    compressor.control_context_budget = control_context_budget
    compressor.iterative_compress_prompt = iterative_compress_prompt
    return trace


def reference_settings(family: str, question: str) -> dict[str, Any]:
    if family == "llmlingua":
        return {"question": "", "rank_method": "llmlingua"}
    return {"question": question, "rank_method": "longllmlingua", "condition_in_question": "after_condition",
            "condition_compare": True, "reorder_context": "sort", "dynamic_context_compression_ratio": 0.3,
            "concate_question": False}


# -- alignment -----------------------------------------------------------------------------------


def align(original: list[int], kept: list[int]) -> list[int]:
    """Positions in `original` of the subsequence `kept`: longest matching runs first (difflib),
    then greedy left-to-right inside the gaps between runs."""
    where: list[int | None] = [None] * len(kept)
    matcher = SequenceMatcher(None, original, kept, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            where[b + k] = a + k
    out: list[int] = []
    low = 0
    for j, spot in enumerate(where):
        if spot is not None and spot >= low:
            out.append(spot)
            low = spot + 1
            continue
        nxt = next((w for w in where[j + 1:] if w is not None and w > low), len(original))
        hit = next((i for i in range(low, nxt) if original[i] == kept[j]), None)
        if hit is None:
            hit = next((i for i in range(low, len(original)) if original[i] == kept[j]), None)
        if hit is None:
            raise ValueError("kept ids are not a subsequence of the original ids")
        out.append(hit)
        low = hit + 1
    return out


def anchor(text: str, start: int, end: int) -> int:
    while start < end - 1 and text[start].isspace():
        start += 1
    return start


def units(text: str, offsets: list[tuple[int, int]], positions: list[int], doc_starts: list[int],
          doc_ids: list[int], doc_lengths: list[int]) -> set[tuple[int, int]]:
    """(document, character offset in its rendering) of the tokens at `positions` of `text`, whose
    documents start at `doc_starts`; tokens outside every document (separators) are left out."""
    out = set()
    for p in positions:
        a = anchor(text, *offsets[p])
        j = bisect_right(doc_starts, a) - 1
        if j >= 0 and a < doc_starts[j] + doc_lengths[j]:
            out.add((doc_ids[j], a - doc_starts[j]))
    return out


@dataclass
class Tally:
    ours: int = 0
    theirs: int = 0
    both: int = 0
    universe: int = 0
    same: int = 0
    ours_seconds: float = 0.0
    theirs_seconds: float = 0.0
    ours_ratio: list[float] = field(default_factory=list)
    theirs_ratio: list[float] = field(default_factory=list)
    aligner_errors: int = 0
    aligner_tokens: int = 0

    def add(self, mine: set[tuple[int, int]], ref: set[tuple[int, int]], all_units: set[tuple[int, int]]) -> None:
        self.ours += len(mine)
        self.theirs += len(ref)
        self.both += len(mine & ref)
        self.universe += len(all_units)
        self.same += len(all_units) - len((mine ^ ref) & all_units)

    def f1(self) -> float:
        return 2 * self.both / max(1, self.ours + self.theirs)

    def jaccard(self) -> float:
        return self.both / max(1, self.ours + self.theirs - self.both)


# -- inputs --------------------------------------------------------------------------------------


def hotpot_examples(limit: int) -> list[Any]:
    if not HOTPOT.exists() or limit <= 0:
        return []
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make

    return list(make("task", "hotpotqa", path=str(HOTPOT), limit=limit).load())


def essay_examples(count: int, tokenizer: Any) -> list[Any]:
    """`count` consecutive 2k-token pieces of the packaged essays, one passage each (NIAH's haystack)."""
    from pcbench.core.example import Example, Passage
    from pcbench.tasks.niah import essays_folder

    files = sorted(essays_folder(None).glob("*.txt"))
    text = " ".join(" ".join(f.read_text(encoding="utf-8", errors="replace").split()) for f in files)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out = []
    for n in range(count):
        a, b = n * ESSAY_TOKENS, (n + 1) * ESSAY_TOKENS - 1
        if b >= len(offsets):
            break
        piece = text[offsets[a][0]:offsets[b][1]].strip()
        out.append(Example(f"essay-{n}", ESSAY_QUESTION, (Passage(piece),), ("",)))
    return out


# -- the comparison ------------------------------------------------------------------------------


def ours_once(compressor: Any, example: Any, env_of: Any) -> tuple[Any, dict[str, Any], float]:
    seen: dict[str, Any] = {}
    iterative = type(compressor).iterative

    def traced(*args: Any, **kwargs: Any) -> Any:
        keep, decision = iterative(compressor, *args, **kwargs)
        seen["tokens"], seen["plan"], seen["keep"] = args[2], args[3], keep
        return keep, decision

    compressor.iterative = traced
    start = time.perf_counter()
    out = compressor.compress(example, env_of())
    seconds = time.perf_counter() - start
    del compressor.iterative
    return out, seen, seconds


def our_units(seen: dict[str, Any]) -> tuple[set[tuple[int, int]], list[int], list[int]]:
    """Our kept units, plus the kept ids and their exact positions (for the aligner check)."""
    plan, tokens, keep = seen["plan"], seen["tokens"], seen["keep"]
    starts: dict[int, int] = {}
    for a, _, d, _ in plan.parts:
        starts[d] = min(starts.get(d, a), a)
    order = sorted(starts, key=lambda d: starts[d])
    positions = [i for i in range(len(keep)) if keep[i]]
    kept = units(plan.text, tokens.offsets, positions, [starts[d] for d in order], order,
                 [len(plan.docs[d].render()) for d in order])
    return kept, [tokens.ids[i] for i in positions], positions


def reference_units(trace: RefTrace, tokenizer: Any, prefix_docs: int) -> set[tuple[int, int]]:
    assert trace.context is not None
    docs = trace.context[prefix_docs:]
    used = trace.used if trace.used is not None else list(range(len(docs)))
    joined = "\n\n".join(trace.context)
    enc = tokenizer(joined, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    positions = [trace.start + p for p in align(ids[trace.start:], trace.kept_ids)]
    starts, pos = [], sum(len(c) + 2 for c in trace.context[:prefix_docs])
    for doc in docs:
        starts.append(pos)
        pos += len(doc) + 2
    return units(joined, offsets, positions, starts, used, [len(d) for d in docs])


def all_units(docs: list[Any], tokenizer: Any) -> set[tuple[int, int]]:
    out = set()
    for d, doc in enumerate(docs):
        text = doc.render()
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        out |= {(d, anchor(text, a, b)) for a, b in enc["offset_mapping"]}
    return out


def compare(hotpot: int = 3, essays: int = 2, rates: tuple[float, ...] = RATES,
            families: tuple[str, ...] = FAMILIES) -> dict[tuple[str, str, float], Tally]:
    import torch

    from pcbench.compressors.base import Env
    from pcbench.core import local_models
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.pool import Models, ModelSpec

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make
    from lm_pruning import MemoStore  # beside this file

    torch.manual_seed(0)
    path = str(local_models.resolve("smollm2"))
    models, reader = Models(), load_tokenizer("smollm2")

    def env_of() -> Env:
        return Env(reader, MemoStore(), models)  # a fresh store per call: nothing reused across calls

    scorer = env_of().causal_lm(ModelSpec("smollm2", None, "float32", "cpu"))
    ref = load_reference(path)
    trace = trace_reference(ref)
    tok = scorer.tokenizer
    data = [("hotpotqa", e) for e in hotpot_examples(hotpot)] + [("essays", e) for e in essay_examples(essays, tok)]
    tallies: dict[tuple[str, str, float], Tally] = {}
    warmed: set[str] = set()
    for family in families:
        for rate in rates:
            compressor = make("compressor", family, rate=rate, device="cpu")
            for source, example in data:
                tally = tallies.setdefault((family, source, rate), Tally())
                docs = compressor.documents(example, scorer)
                contexts = [d.render() for d in docs]
                settings = reference_settings(family, example.question)
                original = len(tok(example.context, add_special_tokens=False)["input_ids"])
                limit = compressor.token_limit(original)
                if family not in warmed:  # first calls pay for allocation: not timed
                    compressor.compress(example, env_of())
                    ref.compress_prompt(contexts, target_token=float(limit), **settings)
                    warmed.add(family)
                out, seen, seconds = ours_once(compressor, example, env_of)
                tally.ours_seconds += seconds
                tally.ours_ratio.append(out.extras["achieved_reader_tokens"] / max(1, original))
                trace.__init__()  # type: ignore[misc]
                start = time.perf_counter()
                result = ref.compress_prompt(contexts, target_token=float(limit), **settings)
                tally.theirs_seconds += time.perf_counter() - start
                theirs = len(tok(result["compressed_prompt"], add_special_tokens=False)["input_ids"])
                tally.theirs_ratio.append(theirs / max(1, original))
                mine, kept_ids, positions = our_units(seen) if seen else (set(), [], [])
                if seen:
                    tally.aligner_tokens += len(positions)
                    tally.aligner_errors += sum(a != b for a, b in zip(align(seen["tokens"].ids, kept_ids),
                                                                        positions))
                prefix_docs = 1 if settings.get("condition_in_question", "").endswith("_condition") else 0
                theirs_units = reference_units(trace, tok, prefix_docs) if trace.context is not None else set()
                tally.add(mine, theirs_units, all_units(docs, tok))
    return tallies


def rows_of(tallies: dict[tuple[str, str, float], Tally]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for family in FAMILIES:
        picked = {k: v for k, v in tallies.items() if k[0] == family}
        if not picked:
            continue
        goal = 1.4 if family == "llmlingua" else 2.0
        for (_, source, rate), t in picked.items():
            n = len(t.ours_ratio)
            rows.append((f"{family} vs llmlingua 0.2.2, {source} x{n}, rate {rate}: kept-token agreement (F1)",
                         f"{t.f1():.3f}",
                         f"goal >= 0.95; Jaccard {t.jaccard():.3f}, same decision {t.same / max(1, t.universe):.3f}; "
                         f"kept {t.ours} ours / {t.theirs} theirs"))
            rows.append((f"{family} vs llmlingua 0.2.2, {source} x{n}, rate {rate}: achieved ratio",
                         f"{sum(t.ours_ratio) / n:.3f} / {sum(t.theirs_ratio) / n:.3f}",
                         "ours / theirs, mean, SmolLM2 tokens"))
            rows.append((f"{family} vs llmlingua 0.2.2, {source} x{n}, rate {rate}: speed",
                         f"{t.theirs_seconds / max(1e-9, t.ours_seconds):.2f}x faster",
                         f"goal >= {goal}x ({t.ours_seconds:.1f} s ours vs {t.theirs_seconds:.1f} s theirs)"))
        total = Tally()
        for t in picked.values():
            total.ours += t.ours
            total.theirs += t.theirs
            total.both += t.both
            total.ours_seconds += t.ours_seconds
            total.theirs_seconds += t.theirs_seconds
            total.aligner_errors += t.aligner_errors
            total.aligner_tokens += t.aligner_tokens
        rows.append((f"{family} vs llmlingua 0.2.2, all: kept-token agreement (F1) / speed",
                     f"{total.f1():.3f} / {total.theirs_seconds / max(1e-9, total.ours_seconds):.2f}x",
                     f"goals >= 0.95 / >= {goal}x; aligner check {total.aligner_errors} of "
                     f"{total.aligner_tokens} positions off"))
    return rows


def run(hotpot: int = 3, essays: int = 2) -> list[tuple[str, str, str]]:
    if not (BENCH_ENV / "llmlingua").is_dir():
        return [("llmlingua 0.2.2 reference", "skipped", f"not in {BENCH_ENV}; `{INSTALL_HINT}`")]
    return rows_of(compare(hotpot, essays))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=3, help="HotpotQA examples")
    parser.add_argument("--essays", type=int, default=2, help="2k-token essays")
    parser.add_argument("--family", choices=FAMILIES, action="append", help="one family (repeatable)")
    parser.add_argument("--rate", type=float, action="append", help="one rate (repeatable)")
    args = parser.parse_args()
    if not (BENCH_ENV / "llmlingua").is_dir():
        print(f"llmlingua 0.2.2 is not in {BENCH_ENV}; `{INSTALL_HINT}`")
        return
    tallies = compare(args.limit, args.essays, tuple(args.rate or RATES), tuple(args.family or FAMILIES))
    rows = rows_of(tallies)
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>16}  {note}")


if __name__ == "__main__":
    main()
