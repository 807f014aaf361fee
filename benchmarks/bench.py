"""`make bench`: speed targets measured in one run, printed as ratios.

1. examples/s of the default cell (niah x none x smollm2), from an empty cache;
2. a 5-rate sweep of bm25 and of embedding relative to one rate (target <= 1.3x), compression
   stage only (reader=none), each from an empty cache, so the saving comes from scoring once;
3. a second identical default run relative to the first (target >= 20x faster);
4. honest budgets on the shared HotpotQA 800: mean achieved kept ratio per unit level and rate
   (target: within 0.02 of the request, never over it), counted in the reader's tokens;
5. batched scoring across examples against one example at a time (embedding, MiniLM);
6. the LM token-pruning family (benchmarks/lm_pruning.py) and the trained pruners
   (benchmarks/trained_pruners.py): throughput and the ratio to one forward pass of their model;
   LLMLingua and LongLLMLingua against the reference llmlingua 0.2.2 (benchmarks/llmlingua_reference.py):
   agreement of kept tokens, achieved ratios and speed; `code` against LongCodeZip's own source
   (benchmarks/codezip_reference.py; skipped unless a copy is given: it is not on PyPI);
   `recomp_extractive` against RECOMP's own scoring functions (benchmarks/recomp_reference.py; likewise
   skipped without a copy of its script) and its speed; Provence's native inference on OpenProvence's
   layout against OpenProvence's own process() (benchmarks/openprovence_reference.py; likewise);
   `wim` against Writing in the Margins' own run.py and wim.py (benchmarks/wim_reference.py; likewise),
   with its price in generated tokens and seconds;
7. break-even (benchmarks/break_even.py): per family at 2x, 4x and 10x on HotpotQA, compress + read
   seconds per example against reading the full context with the default reader, and the crossover;
8. reader=kvpress against kvpress's own pipeline (benchmarks/kvpress_agreement.py): equal answers over
   every press of its registry that runs offline, at two budgets each.

Cells run in this process (as Hydra's local multirun does), so interpreter start-up is excluded.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402
from reference_common import cell  # noqa: E402  (beside this file)

SHARED_HOTPOT = ROOT.parent / "shared" / "data" / "hotpotqa" / "hotpot_dev_distractor_800.jsonl"
RATES = (0.1, 0.25, 0.5, 0.75, 0.9)


def sweep_cost(compressor: str, task: list[str], scratch: Path) -> tuple[float, float, float, float]:
    """Whole-cell seconds and compression-stage seconds: one rate, then five rates."""
    base = [f"compressor={compressor}", "reader=none", *task]
    # Warm the process first (imports, tokenizer, model weights), in a cache of its own: both sides of
    # the ratio then pay only for their cells, not the first cell for the process's one-off costs.
    cell([*base, "task.limit=2", "compressor.rate=0.3"], scratch / f"{compressor}-warm", scratch / f"{compressor}-warm")
    # Every cell gets its own folder: a folder holding the same config's results would be skipped.
    one, metrics = cell([*base, "compressor.rate=0.5"], scratch / f"{compressor}-one", scratch / f"{compressor}-one")
    one_stage = metrics["seconds"]["compress_total"]
    five = five_stage = 0.0
    for rate in RATES:
        seconds, metrics = cell([*base, f"compressor.rate={rate}"], scratch / f"{compressor}-five",
                                scratch / f"{compressor}-five-{rate}")
        five += seconds
        five_stage += metrics["seconds"]["compress_total"]
    return one, five, one_stage, five_stage


def budgets(rows: list[tuple[str, str, str]]) -> None:
    from pcbench.compressors.base import Env
    from pcbench.core.build import build
    from pcbench.core.tokenizer import load_tokenizer

    if not SHARED_HOTPOT.exists():
        rows.append(("honest budgets", "skipped", f"{SHARED_HOTPOT} is absent"))
        return
    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=["task=hotpotqa", f"task.path={SHARED_HOTPOT}", "compressor=bm25"])
    data, tokenizer = build(cfg.task, "task").load(), load_tokenizer("smollm2")
    original = tokenizer.count([e.context for e in data])
    for level in ("passage", "sentence", "word"):
        for rate in (0.1, 0.25, 0.5):
            cfg.compressor.level, cfg.compressor.rate = level, rate
            results = build(cfg.compressor, "compressor").compress_batch(data, Env(tokenizer))
            kept = tokenizer.count([r.text for r in results])
            achieved = sum(k / o for k, o in zip(kept, original)) / len(data)
            over = sum(k > round(rate * o) for k, o in zip(kept, original))
            rows.append((f"bm25 {level} rate {rate}: mean kept ratio (HotpotQA {len(data)})", f"{achieved:.4f}",
                         f"target {rate} +- 0.02; {over} over budget"))


def batching(rows: list[tuple[str, str, str]]) -> None:
    from pcbench.compressors.base import Env
    from pcbench.core.build import build
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.pool import Models

    if not SHARED_HOTPOT.exists():
        return
    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=["task=hotpotqa", f"task.path={SHARED_HOTPOT}", "task.limit=30",
                                           "compressor=embedding", "compressor.device=cpu"])
    data, env = build(cfg.task, "task").load(), Env(load_tokenizer("smollm2"), models=Models())
    compressor = build(cfg.compressor, "compressor")
    compressor.compress(data[0], env)  # load the model outside the timings
    start = time.perf_counter()
    for example in data:
        compressor.compress(example, env)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    compressor.compress_batch(data, env)
    together = time.perf_counter() - start
    rows.append((f"embedding: {len(data)} HotpotQA examples batched vs one by one", f"{alone / together:.2f}x faster",
                 f"({alone:.1f} s vs {together:.1f} s)"))


def families(rows: list[tuple[str, str, str]]) -> None:
    import break_even  # beside this file
    import codezip_reference
    import kvpress_agreement
    import llmlingua2_reference
    import llmlingua_reference
    import lm_pruning
    import new_families
    import openprovence_reference
    import recomp_reference
    import selective_context_reference
    import trained_pruners
    import wim_reference

    for row in lm_pruning.run():
        rows.append((f"{row['family']}: 2k-token essay at rate 0.5", f"{row['tokens_per_s']} tokens/s",
                     f"{row['vs_forward_pass']}x one forward pass (goal <= 1.3x); 5-rate sweep "
                     f"{row['sweep_5_rates_vs_1']}x one rate; achieved {row['achieved_rate_at_0.5']}"))
    for row in lm_pruning.batching():
        rows.append((f"{row['family']}: {row['examples']} HotpotQA examples batched vs one by one",
                     f"{row['speedup']}x faster", f"{row['one_by_one_per_s']} -> {row['batched_per_s']} examples/s; "
                     f"same kept text {row['same_kept_text']}/{row['examples']}"))
    rows.extend(llmlingua_reference.run())  # ours against llmlingua 0.2.2 (installed in .bench-env by make bench)
    rows.extend(selective_context_reference.run())  # ours against selective-context 0.1.4 (likewise)
    rows.extend(llmlingua2_reference.run())  # ours against llmlingua 0.2.2's LLMLingua-2, one tiny XLM-R
    rows.extend(codezip_reference.run())  # ours against LongCodeZip's source, where a copy of it is given
    rows.extend(codezip_reference.speed())
    rows.extend(new_families.run())  # the attention probe, Sentinel and the summariser
    rows.extend(recomp_reference.run())  # RECOMP's extractive scorer: agreement where a copy is given, speed
    rows.extend(openprovence_reference.run())  # OpenProvence's process() against ours, where a copy is given
    rows.extend(wim_reference.run())  # Writing in the Margins' own loop against ours, where a copy is given
    rows.extend(break_even.run())  # compress + read against reading everything, per family and rate
    compared = kvpress_agreement.run()  # each setting printed as it is compared
    both = [r for r in compared if "equal" in r]
    unequal = sorted({r["press"] for r in both if r["equal"] < r["n"]})
    failed = sorted({r["press"] for r in compared if "equal" not in r})
    rows.append((f"reader=kvpress vs kvpress's pipeline, {len(compared)} press x budget settings",
                 f"{sum(r['equal'] for r in both)}/{sum(r['n'] for r in both)} equal answers",
                 f"unequal: {', '.join(unequal) or 'none'}; failed on a side: {', '.join(failed) or 'none'}"))
    for name, row in trained_pruners.run().items():
        rows.append((f"{name}: 32 HotpotQA examples, batched", f"{row['examples_per_s']} examples/s",
                     f"{row['tokens_per_s']} tokens/s; {row['batched_speedup']}x faster than one by one; "
                     f"{row['ratio_to_forward']}x one forward pass (goal <= 1.3x)"))


class Rows(list):
    """Rows printed as they are measured, so a long run shows its numbers before it ends."""

    def append(self, row: tuple[str, str, str]) -> None:
        super().append(row)
        name, value, note = row
        print(f"  {name:<62}  {value:>18}  {note}", flush=True)

    def extend(self, rows: object) -> None:
        for row in rows:  # type: ignore[attr-defined]
            self.append(row)


def main() -> None:
    import bm25s  # noqa: F401  (it sets its own logger to DEBUG on import: quiet it after)

    from pcbench.runners.logs import quiet_third_party

    quiet_third_party()
    scratch = Path(tempfile.mkdtemp(prefix="pcbench-bench-"))
    print("pcbench benchmarks (this machine, one run)", flush=True)
    rows = Rows()

    first, metrics = cell([], scratch / "default", scratch / "out")
    n = metrics["n_examples"]
    rows.append(("default cell (niah x none x smollm2), cold", f"{n / first:.3f} examples/s", f"{first:.1f} s"))
    # Another folder: the same folder would be skipped as finished, which is not what is measured here.
    second, _ = cell([], scratch / "default", scratch / "again")
    rows.append(("second identical run vs first (all from the cache)", f"{first / second:.1f}x faster",
                 "target >= 20x"))

    task = (["task=hotpotqa", f"task.path={SHARED_HOTPOT}", "task.limit=200"] if SHARED_HOTPOT.exists()
            else ["task=niah"])
    for compressor in ("bm25", "embedding"):
        one, five, one_stage, five_stage = sweep_cost(compressor, task, scratch)
        rows.append((f"{compressor}: 5-rate sweep vs 1 rate, whole cells ({task[0]})", f"{five / one:.2f}x",
                     f"target <= 1.3x ({one:.1f} s vs {five:.1f} s)"))
        rows.append((f"{compressor}: 5-rate sweep vs 1 rate, compression stage", f"{five_stage / one_stage:.2f}x",
                     f"target <= 1.3x ({one_stage:.1f} s vs {five_stage:.1f} s)"))

    budgets(rows)
    batching(rows)
    families(rows)


if __name__ == "__main__":
    main()
