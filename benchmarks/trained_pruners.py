"""Compression throughput of the trained-pruner family: Provence (native), LLMLingua-2, cross-encoder.

For each method, on the same HotpotQA examples (the shared file when present, else built ones):
examples/s and context tokens/s compressed in one batched call, the same one example at a time,
and the ratio of the batched call to one batched forward pass of its model over the same inputs
(goal <= 1.3x: splitting, block planning, aggregation and selection cost little beside the model).

Models: a pruner trained by `pcbench-train` (`model_dir`), else all-MiniLM-L6-v2 with
fresh heads (same speed, meaningless output); the cross-encoder is MiniLM with a fresh 1-label head.
Call `run()` (the lead's `make bench`), or `python benchmarks/trained_pruners.py [MODEL_DIR]`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED_HOTPOT = ROOT.parent / "shared" / "data" / "hotpotqa" / "hotpot_dev_distractor_800.jsonl"


def _examples(n: int) -> list[Any]:
    from pcbench.apps.train import load_examples

    return load_examples("hotpotqa", str(SHARED_HOTPOT), n)


def _minilm_heads(scratch: Path) -> tuple[str, str]:
    """A MiniLM token classifier (+ ranking head) and a MiniLM 1-label cross-encoder, fresh heads."""
    from safetensors.torch import save_file
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    from pcbench.core.local_models import resolve
    from pcbench.models.encoders import RANKING_FILE, ranking_head

    path = resolve("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    pruner, reranker = scratch / "pruner", scratch / "reranker"
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=2)
    model.save_pretrained(pruner)
    tokenizer.save_pretrained(pruner)
    save_file(ranking_head(model.config.hidden_size, model.config.hidden_size, "gelu").state_dict(),
              str(pruner / RANKING_FILE))
    AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).save_pretrained(reranker)
    tokenizer.save_pretrained(reranker)
    return str(pruner), str(reranker)


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(n: int = 32, model_dir: str | None = None) -> dict[str, dict[str, float]]:
    from pcbench.apps.train import _build
    from pcbench.compressors.base import Env
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.encoders import normalize_question
    from pcbench.models.pool import Models

    examples = _examples(n)
    scratch = Path(tempfile.mkdtemp(prefix="pcbench-bench-"))
    pruner_dir, reranker_dir = _minilm_heads(scratch)
    pruner_dir = model_dir or pruner_dir
    env = Env(load_tokenizer("minilm"), models=Models())
    tokens = sum(env.count([e.context for e in examples]))
    methods = {
        "provence": _build("provence", model=pruner_dir, device="cpu"),
        "llmlingua2": _build("llmlingua2", model=pruner_dir, device="cpu"),
        "cross_encoder": _build("cross_encoder", model=reranker_dir, device="cpu", level="sentence"),
    }
    out: dict[str, dict[str, float]] = {}
    for name, compressor in methods.items():
        compressor.compress_batch(examples[:2], env)  # load the model, warm every code path
        batched = _timed(lambda c=compressor: c.compress_batch(examples, env))
        single = _timed(lambda c=compressor: [c.compress(e, env) for e in examples])
        forward = _timed(lambda c=compressor, m=name: _forward(m, c, examples, env, normalize_question))
        out[name] = {"examples_per_s": round(len(examples) / batched, 2), "tokens_per_s": round(tokens / batched),
                     "one_by_one_examples_per_s": round(len(examples) / single, 2),
                     "batched_speedup": round(single / batched, 2), "ratio_to_forward": round(batched / forward, 2)}
    return out


def _forward(method: str, compressor: Any, examples: list[Any], env: Any, normalize: Any) -> None:
    """One batched forward pass of the method's model over the inputs it needs (tokenizing included)."""
    from pcbench.models.encoders import load_cross_encoder, load_pruner
    from pcbench.models.pool import ModelSpec

    if method == "cross_encoder":
        from pcbench.compressors.units import split_units, view

        model = env.models.get(ModelSpec(compressor.model, compressor.revision, compressor.dtype, compressor.device,
                                         compressor.trust_remote_code), load_cross_encoder)
        pairs = [(e.question, view(e, u)) for e in examples for u in split_units(e, "sentence")]
        model.predict(pairs, batch_size=compressor.batch_size, show_progress_bar=False)
        return
    pruner = env.models.get(ModelSpec(compressor.model, compressor.revision, compressor.dtype, compressor.device),
                            load_pruner)
    passages = [(e, p) for e in examples for p in e.passages if p.text.strip()]
    if method == "provence":
        pruner.run([normalize(e.question) for e, _ in passages], [p.render() for _, p in passages],
                   compressor.batch_size, compressor.max_length)
    else:
        pruner.run(None, [p.text for _, p in passages], compressor.batch_size, compressor.max_length, rank=False)


def main() -> None:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = run(model_dir=sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"{'method':<14} {'ex/s':>7} {'tok/s':>8} {'1-by-1 ex/s':>12} {'batched x':>10} {'vs forward':>11}")
    for name, r in results.items():
        print(f"{name:<14} {r['examples_per_s']:>7} {r['tokens_per_s']:>8} {r['one_by_one_examples_per_s']:>12} "
              f"{r['batched_speedup']:>10} {r['ratio_to_forward']:>11}")


if __name__ == "__main__":
    main()
