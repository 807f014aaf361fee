"""Provence on naver's real checkpoint: pcbench's native inference against the checkpoint's own process().

Needs what this machine lacks: the hub (naver/provence-reranker-debertav3-v1, or a local copy given
with --model), `pip install nltk && python -m nltk.downloader punkt_tab`, and preferably a GPU:

    python benchmarks/provence_native_vs_remote.py --limit 200 --model naver/provence-reranker-debertav3-v1

Both run on the same HotpotQA dev examples (the shared 800 file, or --data) at thresholds 0.1 and
0.5, titles given apart (`title: dataset`), no reorder. Printed per threshold: agreement of the kept
sentences (F1 over (example, passage, sentence text) triples; each kept passage text is split into
the passage's own sentences), the mean char ratio of each, and the largest reranking score gap.
The sentence splitters differ (process() uses nltk, native the dataset's sentences or blingfire),
which is the first place to look at when the agreement is below 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
HOTPOT = ROOT.parent / "shared" / "data" / "hotpotqa" / "hotpot_dev_distractor_800.jsonl"


def kept_sentences(example: object, result: object) -> set[tuple[str, int, str]]:
    from pcbench.compressors.units import sentences_of

    kept = set()
    for passage in result.passages:  # type: ignore[attr-defined]
        text = " ".join(passage.text.split())
        for sentence in sentences_of(next(p for p in example.passages if p.title == passage.title)):  # type: ignore[attr-defined]
            if sentence.strip() and " ".join(sentence.split()) in text:
                kept.add((example.id, hash(passage.title), " ".join(sentence.split())))  # type: ignore[attr-defined]
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="naver/provence-reranker-debertav3-v1")
    parser.add_argument("--data", default=str(HOTPOT))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make

    from pcbench.compressors.base import Env
    from pcbench.core.tokenizer import load_tokenizer

    examples = make("task", "hotpotqa", path=args.data, limit=args.limit).load()
    env = Env(load_tokenizer("smollm2"))
    for threshold in (0.1, 0.5):
        out = {}
        for implementation in ("remote", "native"):
            compressor = make("compressor", "provence", model=args.model, device=args.device, threshold=threshold,
                              implementation=implementation, trust_remote_code=implementation == "remote")
            out[implementation] = compressor.compress_batch(examples, env)
        mine = set().union(*(kept_sentences(e, r) for e, r in zip(examples, out["native"])))
        theirs = set().union(*(kept_sentences(e, r) for e, r in zip(examples, out["remote"])))
        f1 = 2 * len(mine & theirs) / (len(mine) + len(theirs)) if mine or theirs else 1.0
        ratio = {k: sum(r.extras["char_ratio_before_reorder"] for r in v) / len(v) for k, v in out.items()}
        gap = max((abs(a - b) for n, r in zip(out["native"], out["remote"])
                   for a, b in zip(n.extras["reranking_scores"] or [], r.extras["reranking_scores"] or [])
                   if a is not None and b is not None), default=float("nan"))
        print(f"threshold {threshold}: kept-sentence F1 native vs process() {f1:.3f}; char ratio native "
              f"{ratio['native']:.3f}, process() {ratio['remote']:.3f}; largest reranking-score gap {gap:.4f}; "
              f"native rule {out['native'][0].extras['sentence_rule']}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
