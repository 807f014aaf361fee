"""pcbench's `code` compressor against LongCodeZip's own code (YerbaPage/LongCodeZip,
`longcodezip/__init__.py`, commit 71248b7).

LongCodeZip is not on PyPI, so `make bench` cannot install it: put its `longcodezip/__init__.py` at
`.bench-env/longcodezip/__init__.py` (or set LONGCODEZIP_SRC to the file); without it this
comparison is skipped with that line. It runs unmodified, on the same scorer as ours (the packaged
SmolLM2-135M-Instruct, float32, CPU):

- harness, not algorithm: its `__init__` downloads Qwen models, so the objects are built without it
  and given SmolLM2's tokenizer and model (as `load_model` would set them: pad = eos, left padding),
  its caches and position limit; the EntropyChunking helper gets the same model. `loguru` (only
  for logging) is given a silent stand-in when it is not installed;
- inputs: the Python files of the shared LongBench sample (lcc, repobench-p), each cut at its last
  chunk: the `--chunks` chunks before it (10) are what is compressed, the last chunk is the query (LongCodeZip's
  "current function" that is being completed). Ours gets the same code as one passage and the query
  as the question (`query: question`), so both compress the same text for the same query;
- settings: rate r with `rank_only` true and false, the reference's other defaults; ours
  `compressor.rate=r`, the YAML's defaults (reader = scorer = SmolLM2's tokenizer, so the budget
  conversion is the identity up to rounding).

Agreement: the share of files whose compressed code is identical, and kept-line F1 (lines of the
input found in the output, pooled).

`run()` returns (name, value, note) rows for `make bench`; `python benchmarks/codezip_reference.py`
prints them (`--limit N` files, `--rates 0.3,0.5`). `speed()` (`--speed`) times the compressor itself:
seconds per file, the ratio to one forward pass of its model, a 5-rate sweep against one rate.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

from reference_common import BENCH_ENV, ROOT  # beside this file

LONGBENCH = ROOT.parent / "shared" / "data" / "longbench" / "sample"
SOURCE = Path(os.environ.get("LONGCODEZIP_SRC", BENCH_ENV / "longcodezip" / "__init__.py"))


def load_reference(tokenizer: Any, model: Any) -> Any:
    if not SOURCE.is_file():
        raise RuntimeError(f"LongCodeZip's source is not at {SOURCE}: copy longcodezip/__init__.py from "
                           "github.com/YerbaPage/LongCodeZip there (or set LONGCODEZIP_SRC)")
    try:
        import loguru  # noqa: F401
    except ImportError:  # logging only
        silent = types.SimpleNamespace(**{name: (lambda *a, **k: None)
                                          for name in ("remove", "add", "debug", "info", "warning", "error")})
        sys.modules["loguru"] = types.SimpleNamespace(logger=silent)  # type: ignore[assignment]
    spec = importlib.util.spec_from_file_location("longcodezip_reference", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    chunker = module.EntropyChunking.__new__(module.EntropyChunking)
    chunker.tokenizer, chunker.model, chunker.device = tokenizer, model, "cpu"
    reference = module.LongCodeZip.__new__(module.LongCodeZip)
    reference.model_name, reference.device, reference.model_config = "smollm2", "cpu", {}
    reference.model, reference.tokenizer, reference.entropy_chunking = model, tokenizer, chunker
    reference.cache = {k: {} for k in ("token_length", "encodings", "perplexity", "conditional_ppl",
                                       "context_rankings")}
    reference.max_cache_size = 1000
    reference.max_position_embeddings = getattr(model.config, "max_position_embeddings", 4096)
    reference.cache_bos_num, reference.prefix_bos_num, reference.context_idxs = 10, 100, []
    return reference


def files(limit: int, chunks: int) -> list[tuple[str, str, str]]:
    """(name, code before the last chunk, last chunk) of the sample's Python files, the code cut to
    the `chunks` chunks before the last (both implementations score each line given all the lines
    before it in its chunk: quadratic, so whole files take hours on a CPU)."""
    from pcbench.compressors.code import chunk_starts, resolve_language

    out = []
    for task in ("lcc", "repobench-p"):
        path = LONGBENCH / f"{task}.jsonl"
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text().splitlines()):
            code = json.loads(line)["context"]
            if resolve_language(code, "auto") != "python":
                continue
            starts = chunk_starts(code, "python")
            if len(starts) < 4:
                continue
            out.append((f"{task}-{n}", code[starts[max(0, len(starts) - 1 - chunks)]:starts[-1]], code[starts[-1]:]))
    return out[:limit]


def kept_lines(original: str, output: str) -> set[int]:
    present = set(output.split("\n"))
    return {i for i, line in enumerate(original.split("\n")) if line.strip() and line in present}


def run(limit: int = 6, rates: tuple[float, ...] = (0.3,), chunks: int = 10) -> list[tuple[str, str, str]]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from pcbench.api import load_compressor
        from pcbench.compressors.base import Env
        from pcbench.core.example import Example, Passage
        from pcbench.core.local_models import resolve
        from pcbench.core.tokenizer import load_tokenizer
        from pcbench.models.pool import Models

        path = resolve("smollm2")
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        reference = load_reference(tokenizer, model)
    except RuntimeError as exc:
        return [("code vs LongCodeZip", "skipped", str(exc))]
    data = files(limit, chunks)
    if not data:
        return [("code vs LongCodeZip", "skipped", f"no Python files in {LONGBENCH}")]
    env = Env(load_tokenizer("smollm2"), models=Models())
    rows = []
    for rank_only in (True, False):
        for rate in rates:
            same, both, ours_n, theirs_n = 0, 0, 0, 0
            ours = load_compressor("code", rate=rate, rank_only=rank_only, query="question", device="cpu")
            for name, code, query in data:
                got = ours.compress(Example(name, query, (Passage(code),), ()), env).text
                with torch.inference_mode():
                    want = reference.compress_code_file(code, query=query, rate=rate, rank_only=rank_only)
                want_code = want["compressed_code"]
                same += got == want_code
                a, b = kept_lines(code, got), kept_lines(code, want_code)
                both, ours_n, theirs_n = both + len(a & b), ours_n + len(a), theirs_n + len(b)
            f1 = 2 * both / (ours_n + theirs_n) if ours_n + theirs_n else 1.0
            mode = "coarse only" if rank_only else "coarse + fine"
            rows.append((f"code vs LongCodeZip, {mode}, rate {rate}: identical output",
                         f"{same}/{len(data)}", f"kept-line F1 {f1:.3f}; Python files of the LongBench sample, "
                         f"{chunks} chunks before the query"))
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows


def speed(rates: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7)) -> list[tuple[str, str, str]]:
    """Seconds per file of `code` (coarse only; coarse + fine with each line scoring), the ratio to
    one batched forward pass of its model over the same code, and a 5-rate sweep against one rate
    (budget-free chunk scores and line perplexities cached, as the harness's cache does)."""
    import time

    from lm_pruning import MemoStore  # beside this file

    from pcbench.api import load_compressor
    from pcbench.compressors.base import Env
    from pcbench.core.example import Example, Passage
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.pool import ModelSpec

    path = LONGBENCH / "lcc.jsonl"
    if not path.is_file():
        return [("code: speed", "skipped", f"{path} is absent")]
    code = json.loads(path.read_text().splitlines()[0])["context"]  # a 2.3k-token Python file
    example = Example("lcc-0", "", (Passage(code),), ())
    env = Env(load_tokenizer("smollm2"))
    scorer = env.causal_lm(ModelSpec("smollm2", None, "float32", "auto"))
    ids = scorer.encode(code)
    scorer.surprisal([ids[:256]], batch_size=1)  # warm-up
    start = time.perf_counter()
    scorer.surprisal([ids], batch_size=8)
    forward = time.perf_counter() - start
    rows = []
    for name, knobs in (("coarse only", {"rank_only": True}),
                        ("coarse + fine, line_ppl=one_pass", {"line_ppl": "one_pass"}),
                        ("coarse + fine, line_ppl=reference", {})):
        start = time.perf_counter()
        load_compressor("code", rate=0.3, device="auto", **knobs).compress(example, Env(env.tokenizer, MemoStore()))
        single = time.perf_counter() - start
        shared = Env(env.tokenizer, MemoStore())
        start = time.perf_counter()
        for rate in rates:
            load_compressor("code", rate=rate, device="auto", **knobs).compress(example, shared)
        sweep = time.perf_counter() - start
        rows.append((f"code, {name}: {len(ids)}-token lcc file at rate 0.3", f"{single:.1f} s",
                     f"{single / forward:.1f}x one forward pass ({forward:.2f} s); 5-rate sweep {sweep / single:.2f}x "
                     "one rate"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--rates", default="0.3")
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--speed", action="store_true", help="only the speed rows")
    args = parser.parse_args()
    if args.speed:
        for row in speed():
            print(" | ".join(row))
        return
    for row in run(args.limit, tuple(float(r) for r in args.rates.split(",")), args.chunks):
        print(" | ".join(row))


if __name__ == "__main__":
    main()
