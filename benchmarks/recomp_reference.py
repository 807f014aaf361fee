"""pcbench's `recomp_extractive` against RECOMP's own scoring code (carriex/recomp,
`run_extractive_compressor.py`: `mean_pooling` and `get_contriever_scores`), and its speed.

RECOMP is not a package: put its `run_extractive_compressor.py` at `.bench-env/recomp/` (or set
RECOMP_SRC to the file); without it the agreement is skipped with that line. Its two functions are
taken out of the file and run unmodified (the module's imports, pandas and rank_bm25, are not run).

- model: RECOMP's checkpoints are on the hub, which this machine cannot reach; both sides read the
  packaged all-MiniLM-L6-v2 as a plain BERT (`AutoModel`), the architecture of Contriever and so of
  fangyuan/*_extractive_compressor, with trained weights (a random model would tie scores);
- inputs: the shared HotpotQA dev file's first N questions; each example's sentences (pcbench's
  splitter, the units both sides score) are RECOMP's `retrieved_docs`, its `top_k=-1` (all of them);
- compared: every sentence's score (largest absolute difference) and the kept sentences at top 1
  and top 2 (RECOMP's settings on NQ/TriviaQA and HotpotQA).

`run()` returns (name, value, note) rows for `make bench`; `python benchmarks/recomp_reference.py`
prints them (`--limit N`).
"""

from __future__ import annotations

import argparse
import ast
import os
import time
from pathlib import Path
from typing import Any

from reference_common import BENCH_ENV, HOTPOT  # beside this file

SOURCE = Path(os.environ.get("RECOMP_SRC", BENCH_ENV / "recomp" / "run_extractive_compressor.py"))


def reference_functions() -> dict[str, Any]:
    """RECOMP's `mean_pooling` and `get_contriever_scores`, defined on their own."""
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    wanted: list[ast.stmt] = [n for n in tree.body if isinstance(n, ast.FunctionDef)
                              and n.name in ("mean_pooling", "get_contriever_scores")]
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(wanted, []), str(SOURCE), "exec"), namespace)  # noqa: S102 - the reference's own code
    return namespace


def run(limit: int = 50) -> list[tuple[str, str, str]]:
    if not HOTPOT.is_file():
        return [("recomp_extractive", "skipped", f"{HOTPOT} is absent")]
    import torch

    from pcbench.api import load_compressor, load_task
    from pcbench.compressors.base import Env
    from pcbench.compressors.units import split_units, view
    from pcbench.core.local_models import resolve
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.encoders import load_dual_encoder
    from pcbench.models.pool import ModelSpec

    examples = load_task("hotpotqa", path=str(HOTPOT), limit=limit).load()
    model = resolve("minilm")
    env = Env(load_tokenizer("smollm2"))
    rows: list[tuple[str, str, str]] = []
    ours: dict[int, Any] = {k: load_compressor("recomp_extractive", model=model, device="cpu", top_k=k) for k in (1, 2)}
    if SOURCE.is_file():
        functions = reference_functions()
        encoder = load_dual_encoder(model, ModelSpec(model), "cpu")
        units = [split_units(e, "sentence") for e in examples]
        scores = ours[1].score_batch(examples, units, env)
        worst, same = 0.0, {1: 0, 2: 0}
        for example, us, mine in zip(examples, units, scores):
            row = {"query": example.question, "retrieved_docs": [{"text": view(example, u)} for u in us]}
            with torch.inference_mode():
                theirs = functions["get_contriever_scores"](encoder.model, encoder.tokenizer, row, "cpu", -1)
            worst = max(worst, max(abs(a - b) for a, b in zip(mine, theirs)))
            for k in (1, 2):
                by_them = sorted(sorted(range(len(theirs)), key=lambda i: (-theirs[i], i))[:k])
                same[k] += by_them == sorted(sorted(range(len(mine)), key=lambda i: (-mine[i], i))[:k])
        n = len(examples)
        rows.append((f"recomp_extractive vs RECOMP's get_contriever_scores, {n} HotpotQA questions",
                     f"top-1 equal {same[1]}/{n}, top-2 equal {same[2]}/{n}",
                     f"largest score difference {worst:.2e} (MiniLM weights as the dual encoder; float32, CPU)"))
    else:
        rows.append(("recomp_extractive vs RECOMP's code", "skipped",
                     f"RECOMP's run_extractive_compressor.py is not at {SOURCE} (copy it from "
                     "github.com/carriex/recomp, or set RECOMP_SRC)"))
    # Speed: batched across examples against one at a time (fresh scores each time: no store).
    ours[1].compress_batch(examples[:2], env)  # warm-up: load the model
    start = time.perf_counter()
    together = ours[1].compress_batch(examples, env)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    alone = [ours[1].compress(e, env) for e in examples]
    single = time.perf_counter() - start
    same_text = sum(a.text == b.text for a, b in zip(together, alone))
    n = len(examples)
    rows.append((f"recomp_extractive: {n} HotpotQA examples, top 1", f"{n / batched:.1f} examples/s",
                 f"batched {single / batched:.2f}x faster than one by one; same kept text {same_text}/{n} "
                 "(MiniLM-L6 as the encoder: Contriever, BERT-base, is about 4x its compute)"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=50)
    for name, value, note in run(parser.parse_args().limit):
        print(f"{name}: {value}  ({note})")
