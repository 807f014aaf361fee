"""`python -m analysis.report outputs multirun --metric f1`: table, leaderboard and plot of runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.collect import budget_label, collect
from analysis.plot import metric_column, plot_tradeoff

COLUMNS = ["task", "compressor", "reader", "budget", "n_examples", "kept_ratio", "compression_x",
           "answer_in_context", "evidence_recall"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("roots", nargs="+", help="folders holding run folders (outputs/, multirun/)")
    parser.add_argument("--metric", default="f1",
                        help="reader metric (f1, match, ...) or answer_in_context / evidence_recall")
    parser.add_argument("--out", default="report", help="folder for runs.parquet, leaderboard.md, tradeoff.png")
    args = parser.parse_args(argv)

    table = collect(*args.roots)
    if table.empty:
        print(f"error: no metrics.json under {', '.join(args.roots)}", file=sys.stderr)
        return 2
    table["budget"] = table.apply(budget_label, axis=1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out / "runs.parquet")

    try:
        metric = metric_column(table, args.metric)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    columns = [c for c in COLUMNS if c in table and c != metric] + [metric]
    board = table[columns].sort_values(["task", metric], ascending=[True, False])
    (out / "leaderboard.md").write_text(board.to_markdown(index=False, floatfmt=".3g"), encoding="utf-8")
    print(board.to_string(index=False))
    print(f"plot: {plot_tradeoff(table, args.metric, out / 'tradeoff.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
