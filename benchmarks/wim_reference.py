"""pcbench's `wim` against Writing in the Margins' own code (writer/writing-in-the-margins: `run.py`'s
`main`, `wim.py`'s `WIMInference`), on its own BABILong example, with SmolLM2 on both sides.

WiM is not a package: put its checkout's `run.py`, `wim.py`, `templates/` and `examples/` under
`.bench-env/wim/` (or set WIM_SRC to the checkout); without them this comparison is skipped with that
line. Its `main` runs unmodified, taken out of `run.py` (so the module's imports of fire, rich, nltk
and tiktoken are not run), with:

- harness, not algorithm: the model and tokenizer it loads by id are the packaged SmolLM2 folder
  (float32, CPU, its own `load_model` and `AutoTokenizer` calls); `print` collects its step summaries;
  the headers are SmolLM2's chat-template strings (the ones its shell scripts write per model);
- transformers 5: `DynamicCache` has no `key_cache` / `value_cache` lists any more, so
  `WIMInference.shrink_kv_cache_from_end` is given the same cut on the cache's layers;
- segmentation: its `chunk_text_to_segments` runs as written, but `sent_tokenize` (NLTK's punkt data
  is not on this machine) and tiktoken's "gpt-4" encoding (not installed) are pcbench's sentences and
  cl100k from `bpe-openai`, so both sides cut the same segments; what is compared is the inference.

Compared, segment by segment: the margin, whether it is kept, and the whole set of kept margins.
Greedy decoding on both sides (`run.py`'s default).

`run()` returns (name, value, note) rows for `make bench`; `python benchmarks/wim_reference.py`
prints them (`--segment-tokens N`, default 2048: four segments of the 8k example).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

from reference_common import BENCH_ENV  # beside this file

SOURCE = Path(os.environ.get("WIM_SRC", BENCH_ENV / "wim"))


def reference(segment_tokens: int) -> tuple[list[dict[str, Any]], float]:
    """WiM's own main() on examples/babilong_8k.json: its step summaries and its seconds."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pcbench.core.local_models import resolve
    from pcbench.core.text import split_sentences
    from pcbench.core.tokenizer import openai_tokenizer

    sys.path.insert(0, str(SOURCE))
    import wim  # the reference's own module, beside run.py

    def shrink_kv_cache_from_end(self: Any, new_size: int, kv_cache: Any) -> None:  # transformers 5's layers
        for layer in kv_cache.layers:
            layer.keys = layer.keys[:, :, :new_size, :]
            layer.values = layer.values[:, :, :new_size, :]

    wim.WIMInference.shrink_kv_cache_from_end = shrink_kv_cache_from_end
    cl100k = openai_tokenizer("cl100k")
    tiktoken = types.SimpleNamespace(encoding_for_model=lambda name: types.SimpleNamespace(
        encode=lambda text: [0] * cl100k.count([text])[0]))
    steps: list[dict[str, Any]] = []
    tree = ast.parse((SOURCE / "run.py").read_text(encoding="utf-8"))
    # Its module-level names (the template and example folders) and every function, main included.
    wanted: list[ast.stmt] = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.Assign))]
    namespace: dict[str, Any] = {
        "torch": torch, "json": json, "os": os, "AutoTokenizer": AutoTokenizer,
        "AutoModelForCausalLM": AutoModelForCausalLM, "WIMInference": wim.WIMInference, "tiktoken": tiktoken,
        "sent_tokenize": lambda text: [s.strip() for s in split_sentences(text) if s.strip()],
        "print": lambda value=None, *rest: steps.append(value) if isinstance(value, dict) else None}
    exec(compile(ast.Module(wanted, []), str(SOURCE / "run.py"), "exec"), namespace)  # noqa: S102 - its own code
    user, generation = headers_of(resolve("smollm2"))
    here = Path.cwd()
    os.chdir(SOURCE)  # its templates/ and examples/ are read relative to the working folder
    try:
        started = time.perf_counter()
        with torch.no_grad():
            namespace["main"](model_id=resolve("smollm2"), attn_implementation="sdpa",
                              input_file="babilong_8k.json", user_header=user, generation_header=generation,
                              dtype="float32", min_tokens_segment=segment_tokens,
                              max_new_tokens_extractive_summary=100, max_new_tokens_final_answer=50,
                              max_new_tokens_classification=10, do_sample=False, early_stopping=True,
                              print_step_summary=True)
        seconds = time.perf_counter() - started
    finally:
        os.chdir(here)
    return [s for s in steps if "step" in s], seconds


def headers_of(model: str) -> tuple[str, str]:
    from transformers import AutoTokenizer

    from pcbench.compressors.wim import headers

    return headers(AutoTokenizer.from_pretrained(model))


def run(segment_tokens: int = 2048) -> list[tuple[str, str, str]]:
    if not (SOURCE / "run.py").is_file() or not (SOURCE / "wim.py").is_file():
        return [("wim vs Writing in the Margins' run.py", "skipped",
                 f"WiM's checkout (run.py, wim.py, templates/, examples/) is not at {SOURCE} (copy it from "
                 "github.com/writer/writing-in-the-margins, or set WIM_SRC)")]
    from pcbench.api import load_compressor
    from pcbench.compressors.base import Env
    from pcbench.core.example import Example, Passage
    from pcbench.core.tokenizer import load_tokenizer

    theirs, their_seconds = reference(segment_tokens)
    data = json.loads((SOURCE / "examples" / "babilong_8k.json").read_text(encoding="utf-8"))
    example = Example("babilong_8k", data["query"], (Passage(data["context"]),), (data["target"],))
    ours = load_compressor("wim", segment_tokens=segment_tokens, device="cpu")
    started = time.perf_counter()
    result = ours.compress(example, Env(load_tokenizer("smollm2")))
    our_seconds = time.perf_counter() - started
    margins, kept = result.extras["margin_texts"], result.extras["margin_kept"]
    # run.py prints each margin stripped
    same_margin = sum(a.strip() == b["margin"] for a, b in zip(margins, theirs))
    same_verdict = sum(a == b["classification_result"] for a, b in zip(kept, theirs))
    n = max(len(theirs), len(margins))
    return [(f"wim vs Writing in the Margins' own code, its BABILong 8k example, {segment_tokens}-token segments",
             f"same margins {same_margin}/{n}, same keep verdicts {same_verdict}/{n}",
             f"SmolLM2, greedy, CPU; {len(margins)} vs {len(theirs)} segments; {result.extras['generated_tokens']} "
             f"generated tokens (the method's price); {our_seconds:.0f} s ours vs {their_seconds:.0f} s theirs")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segment-tokens", type=int, default=2048)
    for name, value, note in run(parser.parse_args().segment_tokens):
        print(f"{name}: {value}  ({note})")
