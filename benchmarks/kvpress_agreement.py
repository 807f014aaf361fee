"""Does `reader=kvpress` answer as kvpress's own evaluation does? Part of `make bench`.

The same model, the same examples, the same press and ratio on both sides: our reader in this process
(the project's transformers), and kvpress's `kv-press-text-generation` pipeline as its evaluate.py
drives it (benchmarks/kvpress_reference.py), in the environment `make kvpress-ref-env` builds with the
transformers kvpress 0.5.5 declares (<5.3: on the project's 5.23 its own pipeline stops at a
KeyError on `cache_position`, the kind of release break users meet, kvpress #147). The presses of the
registry that run offline, with the question read after compression, and the leaderboard's query-aware
list (evaluation/leaderboard.sh) with it pressed; two ratios each (two target sizes for the decoding
presses).

Examples: RULER-style multi-key needles made by the `ruler_synth` task (a few hundred tokens), read by
SmolLM2-135M-Instruct (the offline model; `--model DIR` for another). Printed: per press and ratio, how
many answers are equal and ruler_match on each side.

    python benchmarks/kvpress_agreement.py [--examples 4] [--ratios 0.25,0.5] [--presses snapkv,knorm]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
REFERENCE_PYTHON = ROOT / ".make" / "kvpress-ref" / "bin" / "python"

# Every press of kvpress's registry (evaluation/evaluate_registry.py, readers/kvpress_reader.PRESSES) that
# runs offline, in the leaderboard's two loops (evaluation/leaderboard.sh): the question read after
# compression, and pressed (its query-aware list; Finch only there, as kvpress requires). Left out,
# with the reason the table prints: the presses that load weights, filters or data from the hub, and
# random, whose draws kvpress's registry leaves unseeded (RandomPress(): no two runs agree).
OFFLINE_NOT = {
    **dict.fromkeys(("qfilter", "decoding_qfilter", "fastkvzip", "restorekv", "restorekv_plus",
                     "duo_attention_on_the_fly", "kvzap_linear", "kvzap_mlp", "kvzap_mlp_head", "kvzap_mlp_layer"),
                    "loads weights, filters or data from the hub"),
    **dict.fromkeys(("duo_attention", "lukv"), "head patterns or budget curves exist for a few hub models only"),
    "random": "unseeded in kvpress's registry",
    "no_press": "the baseline (checked in tests: equal to reader=transformers)",
}
AWARE = ("snapkv", "adakv_snapkv", "finch", "chunkkv")
# A decoding press keeps target_size entries, pressing every compression_interval new tokens: the
# examples' ~350 tokens cut to 256 and 128 while 32 are generated.
DECODING_BUDGETS = ({"target_size": 256, "compression_interval": 8}, {"target_size": 128, "compression_interval": 8})


def settings(ratios: tuple[float, ...], presses: tuple[str, ...] | None) -> list[tuple[str, bool, dict[str, Any]]]:
    """(press, question pressed, budget knobs) for every setting compared."""
    from pcbench.readers.kvpress_reader import DECODING, KEY_CHANNELS, PRESSES

    chosen = [p for p in PRESSES if p not in OFFLINE_NOT and (not presses or p in presses)]
    out = []
    for aware, names in ((False, [p for p in chosen if p != "finch"]), (True, [p for p in chosen if p in AWARE])):
        for press in names:
            if press in DECODING:
                budgets = [dict(b) for b in DECODING_BUDGETS]
            elif press in KEY_CHANNELS:  # ThinK prunes key channels; snap_think's SnapKV part takes the ratio too
                budgets = [{"key_channel_compression_ratio": r, "compression_ratio": r} for r in ratios]
            else:
                budgets = [{"compression_ratio": r} for r in ratios]
            out.extend((press, aware, budget) for budget in budgets)
    return out


def examples(n: int) -> list[Any]:
    from conftest import make

    task = make("task", "ruler_synth", num_samples=n, context_tokens=300, limit=None)
    return [(task, e) for e in task.load()]


def ours(model: str, press: str, aware: bool, budget: dict[str, Any], requests: list[Any]) -> list[str] | str:
    from conftest import make

    from pcbench.core.errors import PcbenchError
    from pcbench.readers.kvpress_reader import KEY_CHANNELS

    knobs = dict(budget)
    if press not in KEY_CHANNELS:
        knobs.pop("key_channel_compression_ratio", None)
    try:
        reader = make("reader", "kvpress", model=model, device="cpu", dtype="float32", press=press,
                      question_aware=aware, max_input_tokens=7500, **knobs)
        answers = [g.text for g in reader.generate(requests)]
    except PcbenchError as exc:
        return str(exc)[:200]
    reader.close()
    return answers


def reference(model: str, runs: list[tuple[str, bool, dict[str, Any]]], requests: list[Any]) -> list[list[str] | str]:
    """kvpress's pipeline on every run, in one process of its environment."""
    items = [{"context": r.prompt[: r.context_end], "question": r.prompt[r.context_end:],
              "max_new_tokens": r.max_new_tokens} for r in requests]
    job = {"model": model, "items": items,
           "runs": [{"press": p, "query_aware": a, "budget": b} for p, a, b in runs]}
    # This checkout's pcbench (the registry's transcription), installed or not.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([str(REFERENCE_PYTHON), str(ROOT / "benchmarks" / "kvpress_reference.py")],
                          input=json.dumps(job), capture_output=True, text=True, timeout=7200, env=env)
    if done.returncode != 0:
        why = " ".join(done.stderr.strip().splitlines()[-1:])[:200] or f"exit {done.returncode}"
        return [why] * len(runs)
    answers: list[list[str] | str] = json.loads(done.stdout)
    return answers


def run(n: int = 4, ratios: tuple[float, ...] = (0.25, 0.5), presses: tuple[str, ...] | None = None,
        model: str | None = None) -> list[dict[str, Any]]:
    from pcbench.core.local_models import resolve

    folder = model or str(resolve("smollm2"))
    cases = examples(n)
    # kvpress's pipeline always applies the chat template (RULER's own protocol reads raw text), and
    # its answers here need no more than a number: both sides get the same templated requests.
    requests = [dataclasses.replace(task.request(e, e.context), chat=True, max_new_tokens=32) for task, e in cases]
    runs = settings(ratios, presses)
    theirs_all = reference(folder, runs, requests)
    rows = []
    for (press, aware, budget), theirs in zip(runs, theirs_all):
        mine = ours(folder, press, aware, budget, requests)
        row: dict[str, Any] = {"press": press, "question_aware": aware, "budget": budget, "n": len(requests)}
        if isinstance(mine, str) or isinstance(theirs, str):
            row["ours_failed"], row["reference_failed"] = (x if isinstance(x, str) else None for x in (mine, theirs))
        else:
            row["equal"] = sum(a == b for a, b in zip(mine, theirs))
            row["ours_match"] = score(cases, mine)
            row["kvpress_match"] = score(cases, theirs)
            row["first_difference"] = next(([a, b] for a, b in zip(mine, theirs) if a != b), None)
        print(json.dumps(row), flush=True)
        rows.append(row)
    for press, why in OFFLINE_NOT.items():
        if not presses or press in presses:
            print(json.dumps({"press": press, "not_compared": why}), flush=True)
    return rows


def score(cases: list[Any], answers: list[str]) -> float:
    return round(100 * sum(task.score(a, e)["ruler_match"] for (task, e), a in zip(cases, answers)) / len(cases), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--ratios", default="0.25,0.5")
    parser.add_argument("--presses", default=None, help="comma-separated; default: the leaderboard's lists")
    parser.add_argument("--model", default=None, help="a local causal LM folder (default: SmolLM2-135M-Instruct)")
    args = parser.parse_args()
    if not REFERENCE_PYTHON.exists():
        sys.exit(f"{REFERENCE_PYTHON} is missing: `make kvpress-ref-env` builds kvpress's reference environment")
    rows = run(args.examples, tuple(float(r) for r in args.ratios.split(",")),
               tuple(args.presses.split(",")) if args.presses else None, args.model)
    equal = sum(r.get("equal", 0) for r in rows)
    total = sum(r["n"] for r in rows if "equal" in r)
    print(f"equal answers: {equal}/{total} over {sum('equal' in r for r in rows)} press x budget settings; "
          f"failed on a side in {sum('equal' not in r for r in rows)}")


if __name__ == "__main__":
    main()
