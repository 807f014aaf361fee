"""Does `reader=kvpress` answer as kvpress's own evaluation does? Part of `make bench`.

The same model, the same examples, the same press and ratio on both sides: our reader in this process
(the project's transformers), and kvpress's `kv-press-text-generation` pipeline as its evaluate.py
drives it (benchmarks/kvpress_reference.py), in the environment `make kvpress-ref-env` builds with the
transformers kvpress 0.5.5 declares (<5.3: on the project's 5.23 its own pipeline stops at a
KeyError on `cache_position`, the kind of release break users meet, kvpress #147). The presses of the
leaderboard (evaluation/leaderboard.sh) that run offline: its query-agnostic list with the question
read after compression, its query-aware list with the question pressed; two ratios each.

Examples: RULER-style multi-key needles made by the `ruler_synth` task (a few hundred tokens), read by
SmolLM2-135M-Instruct (the offline model; `--model DIR` for another). Printed: per press and ratio, how
many answers are equal and ruler_match on each side.

    python benchmarks/kvpress_agreement.py [--examples 4] [--ratios 0.25,0.5] [--presses snapkv,knorm]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
REFERENCE_PYTHON = ROOT / ".make" / "kvpress-ref" / "bin" / "python"

# kvpress's evaluation/leaderboard.sh: loop 1 (the question read after compression), loop 2 (pressed).
# Left out: duo_attention*, qfilter, kvzap_* (hub weights and data: they cannot run offline), and
# random, whose draws kvpress's registry leaves unseeded (RandomPress(): no two runs agree).
AGNOSTIC = ("knorm", "snapkv", "expected_attention", "streaming_llm", "tova", "observed_attention",
            "pyramidkv", "lagkv", "keydiff", "adakv_compactor", "cur", "kvzip")
AWARE = ("snapkv", "adakv_snapkv", "finch", "chunkkv")


def examples(n: int) -> list[Any]:
    from conftest import make

    task = make("task", "ruler_synth", num_samples=n, context_tokens=300, limit=None)
    return [(task, e) for e in task.load()]


def ours(model: str, press: str, ratio: float, aware: bool, requests: list[Any]) -> list[str]:
    from conftest import make

    reader = make("reader", "kvpress", model=model, device="cpu", dtype="float32", press=press,
                  compression_ratio=ratio, question_aware=aware, max_input_tokens=7500)
    answers = [g.text for g in reader.generate(requests)]
    reader.close()
    return answers


def reference(model: str, press: str, ratio: float, aware: bool, requests: list[Any]) -> list[str] | str:
    items = [{"context": r.prompt[: r.context_end], "question": r.prompt[r.context_end:],
              "max_new_tokens": r.max_new_tokens} for r in requests]
    job = {"model": model, "press": press, "ratio": ratio, "query_aware": aware, "items": items}
    done = subprocess.run([str(REFERENCE_PYTHON), str(ROOT / "benchmarks" / "kvpress_reference.py")],
                          input=json.dumps(job), capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return " ".join(done.stderr.strip().splitlines()[-1:])[:200] or f"exit {done.returncode}"
    answers: list[str] = json.loads(done.stdout)
    return answers


def run(n: int = 4, ratios: tuple[float, ...] = (0.25, 0.5), presses: tuple[str, ...] | None = None,
        model: str | None = None) -> list[dict[str, Any]]:
    from pcbench.core.local_models import resolve

    folder = model or str(resolve("smollm2"))
    cases = examples(n)
    # kvpress's pipeline always applies the chat template (RULER's own protocol reads raw text), and
    # its answers here need no more than a number: both sides get the same templated requests.
    requests = [dataclasses.replace(task.request(e, e.context), chat=True, max_new_tokens=32) for task, e in cases]
    rows = []
    for aware, names in ((False, AGNOSTIC), (True, AWARE)):
        for press in names:
            if presses and press not in presses:
                continue
            for ratio in ratios:
                mine = ours(folder, press, ratio, aware, requests)
                theirs = reference(folder, press, ratio, aware, requests)
                row: dict[str, Any] = {"press": press, "question_aware": aware, "ratio": ratio, "n": len(mine)}
                if isinstance(theirs, str):
                    row["reference_failed"] = theirs
                else:
                    row["equal"] = sum(a == b for a, b in zip(mine, theirs))
                    row["ours_match"] = score(cases, mine)
                    row["kvpress_match"] = score(cases, theirs)
                    row["first_difference"] = next(([a, b] for a, b in zip(mine, theirs) if a != b), None)
                print(json.dumps(row), flush=True)
                rows.append(row)
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
    print(f"equal answers: {equal}/{total} over {sum('equal' in r for r in rows)} press x ratio settings; "
          f"reference failed in {sum('reference_failed' in r for r in rows)}")


if __name__ == "__main__":
    main()
