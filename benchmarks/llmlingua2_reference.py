"""pcbench's LLMLingua-2 against the reference package, `llmlingua` 0.2.2, on one token classifier.

No LLMLingua-2 weights ship offline, so both run a tiny random XLM-R token classifier (2 labels,
seeded) built here, with a unigram tokenizer made from the benchmark texts' own words; its folder
name holds "xlm-roberta-large", which is how 0.2.2 picks its XLM-R word rules. The reference is
0.2.2's `PromptCompressor(use_llmlingua2=True)`, unmodified but for two harness facts: tiktoken's
start-up download of gpt-3.5-turbo's BPE is replaced by the same BPE from `bpe-openai` (cl100k_base,
offline; the real GPT-3.5 tokenizer), and transformers 5's `torch_dtype` keyword is accepted.

Inputs: HotpotQA dev contexts, each paragraph one `context` element (as BERGEN passes passages);
ours reads the same paragraphs as untitled passages. Settings: rate 0.33 and 0.5, `force_tokens`
[] and the paper's LongBench list (newline, "?", "!", "."); ours its YAML's defaults
(`selection: chunk`) with the same rate and force tokens, and once `selection: global`.

Agreement: kept-word F1. Each output is aligned to its input character by character; a word (a
run of non-space characters) is kept when over half of its characters survive; F1 (Dice) of the two
kept sets, pooled. Word segmentation differs on purpose (see the README): 0.2.2 makes words of the
model's tokens (a punctuation token is a word of its own; a force token that is not one token is
replaced by an added `[NEWi]` token, a new random embedding row) and feeds XLM-R "[CLS]"/"[SEP]"
(unknown tokens for it: its dataset class defaults to mBERT's specials); pcbench uses whitespace
words and the model's own specials.

`run()` returns (name, value, note) rows for `make bench`; `python benchmarks/llmlingua2_reference.py`
prints them (`--limit N` HotpotQA contexts).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from reference_common import BENCH_ENV, HOTPOT, ROOT, word_survival  # beside this file

FORCE = ["\n", "?", "!", "."]


def tiny_classifier(texts: list[str], folder: Path) -> Path:
    """A seeded random 2-layer XLM-R token classifier with a unigram tokenizer over `texts`' words."""
    import string

    import torch
    from transformers import AutoModelForTokenClassification, XLMRobertaConfig, XLMRobertaTokenizerFast

    words = sorted({w.strip(string.punctuation).lower() for t in texts for w in t.split()} - {""})
    chars = string.ascii_letters + string.digits + string.punctuation
    vocab = ([(s, 0.0) for s in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]] + [("▁" + w, -2.0) for w in words]
             + [("▁", -3.0)] + [(c, -5.0) for c in chars] + [("▁" + c, -6.0) for c in chars])
    tokenizer = XLMRobertaTokenizerFast(vocab=vocab)
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=514, pad_token_id=1, num_labels=2,
                              architectures=["XLMRobertaForTokenClassification"])
    AutoModelForTokenClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load_reference(path: str) -> Any:
    if not (BENCH_ENV / "llmlingua").is_dir():
        raise RuntimeError(f"llmlingua 0.2.2 is not in {BENCH_ENV} (make bench installs it)")
    if str(BENCH_ENV) not in sys.path:
        sys.path.append(str(BENCH_ENV))
    import bpe_openai
    import tiktoken

    tiktoken.encoding_for_model = lambda name: bpe_openai.get_encoding("cl100k_base")  # offline, the same BPE
    from llmlingua import PromptCompressor

    return PromptCompressor(model_name=path, device_map="cpu", use_llmlingua2=True)


def kept_words(original: str, output: str) -> set[int]:
    """Start offsets of the words of `original` that keep over half their characters in `output`."""
    return {start for start, share in word_survival(original, output).items() if share > 0.5}


def compare(limit: int = 20) -> list[tuple[str, str, str]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make

    from pcbench.compressors.base import Env
    from pcbench.core.example import Example, Passage
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.pool import Models

    if not HOTPOT.exists():
        raise RuntimeError(f"{HOTPOT} is absent")
    examples = make("task", "hotpotqa", path=str(HOTPOT), limit=limit).load()
    contexts = [[" ".join(p.text.split()) for p in e.passages if p.text.strip()] for e in examples]
    folder = tiny_classifier([t for c in contexts for t in c], Path(tempfile.mkdtemp()) / "tiny-xlm-roberta-large")
    reference = load_reference(str(folder))
    env = Env(load_tokenizer("smollm2"), models=Models())
    rows = []
    for rate in (0.33, 0.5):
        for force in ([], FORCE):
            for selection in ("chunk", "global"):
                if selection == "global" and force:
                    continue
                ours_c = make("compressor", "llmlingua2", model=str(folder), device="cpu", rate=rate,
                              force_tokens=list(force), selection=selection)
                both = mine = theirs = 0
                for paragraphs in contexts:
                    ref = reference.compress_prompt_llmlingua2(list(paragraphs), rate=rate, force_tokens=list(force))
                    ours = ours_c.compress(Example("x", "", tuple(Passage(p) for p in paragraphs), ()), env)
                    by_text = [p.text for p in ours.passages]
                    for k, paragraph in enumerate(paragraphs):
                        a = kept_words(paragraph, by_text[k] if k < len(by_text) else "")
                        b = kept_words(paragraph, ref["compressed_prompt_list"][k])
                        both, mine, theirs = both + len(a & b), mine + len(a), theirs + len(b)
                f1 = 2 * both / (mine + theirs) if mine + theirs else 1.0
                rows.append((f"llmlingua2 vs llmlingua 0.2.2, hotpotqa x{len(contexts)}, rate {rate}, "
                             f"force_tokens {'paper' if force else 'none'}, selection {selection}: kept-word F1",
                             f"{f1:.3f}", f"goal >= 0.95; kept words {mine} ours / {theirs} theirs"))
    return rows


def run(limit: int = 20) -> list[tuple[str, str, str]]:
    try:
        return compare(limit)
    except RuntimeError as exc:
        return [("llmlingua2 vs llmlingua 0.2.2", "skipped", str(exc))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=20, help="HotpotQA contexts")
    args = parser.parse_args()
    for name, value, note in run(args.limit):
        print(f"  {name:<110} {value:>8}  {note}", flush=True)


if __name__ == "__main__":
    main()
