"""analysis: real (reader-free) cells into one row per identity, a leaderboard with intervals, plots, HTML."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import needs_smollm2
from support.study_cells import study

from pcbench.analysis.collect import collect_cells
from pcbench.analysis.plot import pareto_front
from pcbench.analysis.report import main

pytestmark = needs_smollm2


def test_one_row_per_identity_with_variant_labels(tmp_path: Path) -> None:
    root = study(tmp_path)
    collected = collect_cells(root)
    table = collected.table
    # none at rate 0.5 and 0.25 is one experiment (none ignores the rate): one row, noted.
    assert len(table) == 7
    assert sorted(table["variant"].unique()) == ["bm25", "bm25 level=passage", "none", "oracle", "random"]
    assert (table["variant"] == "bm25").sum() == 2 and set(table["task_label"]) == {"niah"}
    assert set(table["reader_label"]) == {"none"}
    assert any("identical settings" in note for note in collected.notes)
    assert table["config_hash"].is_unique

    # A rerun of one config (a copy of the folder, newer) is one row: the newest finished.
    bm25 = root / "niah" / "bm25" / "bm25_rate=0.5"
    rerun = root / "niah" / "bm25" / "bm25_rate=0.5-again"
    shutil.copytree(bm25, rerun)
    os.utime(rerun / "metrics.json", (2e9, 2e9))
    # Unfinished and failed cells are skipped with a note; the same root given twice counts once.
    killed = root / "niah" / "bm25" / "killed"
    killed.mkdir()
    shutil.copy(bm25 / "predictions.jsonl", killed)
    compressed_only = root / "niah" / "bm25" / "compress-stage"
    shutil.copytree(bm25, compressed_only)
    metrics = json.loads((compressed_only / "metrics.json").read_text())
    (compressed_only / "metrics.json").write_text(json.dumps({**metrics, "status": "compressed"}))
    failed = root / "niah" / "bm25" / "failed"
    failed.mkdir()
    (failed / "error.txt").write_text("PcbenchError: compressor.rate=1.5 is outside (0, 1]\n")

    again = collect_cells(root, root / "niah")
    assert len(again.table) == 7
    kept = again.table[again.table["variant"] == "bm25"]["path"]
    assert str(rerun.resolve()) in set(kept) and str(bm25.resolve()) not in set(kept)
    notes = "\n".join(again.notes)
    assert "reruns of one config" in notes
    assert f"{killed.resolve()}: unfinished (no metrics.json)" in notes
    assert f"{compressed_only.resolve()}: unfinished (compressed)" in notes
    assert "failed (PcbenchError: compressor.rate=1.5" in notes


def test_report_files_leaderboard_and_intervals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = study(tmp_path)
    out = tmp_path / "report"
    assert main([str(root), "--metric", "evidence_recall", "--out", str(out)]) == 0
    table = pd.read_parquet(out / "runs.parquet")
    assert len(table) == 7
    # Every metric mean has its interval, and the interval holds the mean.
    for column in ("evidence_recall", "answer_in_context"):
        assert (table[f"{column}.lo"] <= table[column] + 1e-6).all()
        assert (table[column] <= table[f"{column}.hi"] + 1e-6).all()
    # Paired tests against the matched baselines: random at 0.25 is matched with bm25 at 0.25.
    bm25_low = table[(table["variant"] == "bm25") & (table["budget"] == "rate=0.25")].iloc[0]
    random_low = table[(table["variant"] == "random") & (table["budget"] == "rate=0.25")].iloc[0]
    assert bm25_low["vs_random.path"] == random_low["path"]
    assert bm25_low["vs_random.n"] == 5
    assert bm25_low["vs_random.diff"] == pytest.approx(bm25_low["evidence_recall"] - random_low["evidence_recall"],
                                                       abs=0.01)
    assert table.loc[table["compressor"] == "none", "vs_none.diff"].isna().all()
    board = (out / "leaderboard.md").read_text()
    assert "evidence_recall [95% CI]" in board and "Δ vs random" in board and "mean rank" in board
    assert "bm25 level=passage" in board
    for name in ("tradeoff.png", "tradeoff.pdf", "speed.png", "speed.pdf"):
        assert (out / name).stat().st_size > 1000
    page = (out / "report.html").read_text()
    assert "<table" in page and 'src="tradeoff.png"' in page
    # Per-example truth: flips against the full context and rate adherence, in the page and as CSV.
    assert "Flips against the full context" in page and "Rate adherence" in page and "What survives" in page
    flipped = pd.read_csv(out / "flips.csv")
    assert len(flipped) == 6 and (flipped[["right_to_wrong", "wrong_to_right", "both_right", "both_wrong"]]
                                  .sum(axis=1) == flipped["n"]).all()
    assert len(pd.read_csv(out / "rate_adherence.csv")) == 5  # the cells that asked for a rate
    assert "## Flips against the full context" in board and "## Rate adherence" in board
    assert "reaches 50 (of 100, --flip-threshold)" in board
    # The paired interval and p agree in every row: 0 outside exactly when p < 0.05.
    for name in ("none", "random"):
        rows = table[table[f"vs_{name}.p"].notna()]
        assert ((rows[f"vs_{name}.p"] < 0.05) == ~((rows[f"vs_{name}.lo"] <= 0) & (0 <= rows[f"vs_{name}.hi"]))).all()
        assert (rows[f"vs_{name}.p_holm"] >= rows[f"vs_{name}.p"]).all()
    # Cell links point at copies inside the report (a copied or published report keeps them).
    link = re.search(r'href="(cells/[^"]+/metrics.json)">bm25_rate=0.5<', page)
    assert link is not None and (out / link.group(1)).is_file() and "../study" not in page
    printed = capsys.readouterr()
    assert "note:" in printed.err and "html:" in printed.out
    # For a paper: one CSV row per cell, methods x tasks in LaTeX, and where the numbers came from.
    csv = pd.read_csv(out / "table.csv")
    # By default the report's metric, then the diagnostics the runs hold, one row per cell and metric.
    assert len(csv) == 14 and set(csv["metric"]) == {"evidence_recall", "answer_in_context"}
    assert (csv["ci_low"] <= csv["value"] + 1e-6).all() and (csv["value"] <= csv["ci_high"] + 1e-6).all()
    tex = (out / "table.tex").read_text()
    assert r"\begin{tabular}{lrr}" in tex and r"\toprule" in tex and "bm25 (rate=0.25)" in tex
    assert r"\multicolumn{2}{c}{niah}" in tex and r"\cmidrule(lr){2-3}" in tex
    assert r"method & evidence\_recall & answer\_in\_context \\" in tex
    assert main([str(root), "--metric", "evidence_recall", "--out", str(out), "--table-metrics", "evidence_recall",
                 "--examples", "0"]) == 0
    assert r"\begin{tabular}{lr}" in (out / "table.tex").read_text() and len(pd.read_csv(out / "table.csv")) == 7
    assert main([str(root), "--out", str(out), "--table-metrics", "f1"]) == 2
    assert "bm25 level=passage (rate=0.5)" in tex and "(kept 0." in tex
    assert "<h2>Provenance</h2>" in page and "transformers" in page and "cells&#x27; commits" in page
    assert "cells&#x27; hardware" in page and "CPUs" in page and "not recorded" not in page
    assert "compress ms/example" in page and "## Speed" in board and len(pd.read_csv(out / "speed.csv")) == 7
    # Sortable tables, and inspect pages of the examples the cells disagree on most, linked per cell.
    # cells, flips, rate adherence, what survives, paper, variants, speed
    assert page.count('class="dataframe sortable"') == 7 and "aria-sort" in page
    assert "<h2>Methods x tasks</h2>" in page
    pages = sorted((out / "examples").rglob("*.html"))
    assert pages and len({p.name for p in pages}) <= 3  # the same (at most 3) examples in every cell
    assert len({p.parent for p in pages}) == 7  # one folder per cell
    first = pages[0]
    assert f'href="{first.relative_to(out)}"' in page
    shown = first.read_text()
    assert "<th>question</th>" in shown and "gold evidence kept" in shown


def test_report_formats() -> None:
    from pcbench.analysis.boards import TEX_ESCAPES, p_value

    assert p_value(0.0) == "p<0.001" and p_value(0.0004) == "p<0.001" and p_value(0.0123) == "p=0.012"
    import re

    escaped = re.sub(r"[\\&%$#_{}~^]", lambda m: TEX_ESCAPES[m.group()], "a_b & {c} \\ 50%")
    assert escaped == r"a\_b \& \{c\} \textbackslash{} 50\%"


def test_bad_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = study(tmp_path)
    out = tmp_path / "report"
    assert main([str(root), "--metric", "f1", "--out", str(out)]) == 2  # no reader ran
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no metric 'f1' in these runs; found: answer_in_context, evidence_recall, entities_kept, "
                   "dates_kept, numbers_kept, question_terms_kept"]
    assert main([str(root), "--out", str(out)]) == 0  # the default metric (auto) suits a reader-free study
    assert "answer_in_context" in (out / "leaderboard.md").read_text()
    capsys.readouterr()
    assert main([str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: no finished cells under")
    for flag, value, said in (("--flip-threshold", "0", "--flip-threshold=0 is not allowed"),
                              ("--pareto-tolerance", "1.5", "--pareto-tolerance=1.5 is not allowed")):
        assert main([str(root), "--out", str(out), flag, value]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {said}"), err


def test_figures_are_exactly_as_wide_as_asked_with_truetype_fonts(tmp_path: Path) -> None:
    """Saved at the figure's own size (no tight bounding box), the legend inside below the panels: a
    figure included at 100% is --figure-width inches wide and prints its 7-8 pt text as such; the PDFs
    embed TrueType (Type 42) fonts, not the Type 3 fonts that ACL's and IEEE's checks reject."""
    import re

    import matplotlib.pyplot as plt

    root = study(tmp_path)
    for width in (3.3, 7.0):
        out = tmp_path / f"report-{width}"
        assert main([str(root), "--out", str(out), "--figure-width", str(width)]) == 0
        for name in ("tradeoff", "speed"):
            assert plt.imread(out / f"{name}.png").shape[1] == round(150 * width), (name, width)
            pdf = (out / f"{name}.pdf").read_bytes()
            box = re.search(rb"/MediaBox \[ *0 0 ([0-9.]+) ([0-9.]+) *\]", pdf)
            assert box is not None and abs(float(box.group(1)) - 72 * width) < 0.5, (name, width)
            assert b"/Subtype /Type3" not in pdf and b"/Subtype /CIDFontType2" in pdf, name
    assert main([str(root), "--out", str(tmp_path / "bad"), "--figure-width", "0"]) == 2
    assert main([str(root), "--out", str(tmp_path / "bad"), "--figure-width", "1e6"]) == 2


def test_log_ticks_are_plain_numbers_and_axes_fit_the_data() -> None:
    import numpy as np

    from pcbench.analysis.plot import _score_range, minor_label, plain_number

    assert [plain_number(v) for v in (0.04, 0.4, 0.6, 4, 40, 4000)] == ["0.04", "0.4", "0.6", "4", "40", "4,000"]
    label = minor_label(np.array([0.3, 2.5]))  # one decade: 2 and 5 times each power of ten labelled
    assert [label(v) for v in (0.2, 0.5, 0.6, 2.0, 3.0)] == ["0.2", "0.5", "", "2", ""]
    assert minor_label(np.array([0.01, 500.0]))(0.5) == ""  # more than two decades: majors only
    rows = pd.DataFrame({"m": [40.0, 60.0], "m.lo": [30.0, 50.0], "m.hi": [50.0, 70.0]})
    low, high = _score_range(rows, "m")
    assert 20 < low < 30 and 70 < high < 80  # fitted to points and intervals, not 0-100


def test_intervals_are_error_bars_at_measured_points_unless_bands_are_asked(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection

    from pcbench.analysis.plot import Style, _draw_variant

    rows = pd.DataFrame({"variant": ["bm25", "bm25"], "role": ["method", "method"], "kept_ratio": [0.25, 0.5],
                         "m": [40.0, 60.0], "m.lo": [30.0, 50.0], "m.hi": [50.0, 70.0]})
    for bands, kind in ((False, LineCollection), (True, PolyCollection)):
        fig, ax = plt.subplots()
        _draw_variant(ax, rows, "m", "bm25", (0.0, 0.0, 1.0, 1.0), style=Style(bands=bands))
        assert any(isinstance(c, kind) for c in ax.collections), bands
        assert not any(isinstance(c, PolyCollection) for c in ax.collections) if not bands else True
        plt.close(fig)


def test_labels_name_a_local_folder_by_its_last_part_and_keep_hub_ids(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pcbench.analysis.collect import knob_label

    (tmp_path / "multirun" / "demo-probe").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert knob_label("sentinel", {"model": "multirun/demo-probe"}) == "sentinel model=demo-probe"
    assert knob_label("provence", {"model": "naver/provence-reranker-debertav3-v1"}) == (
        "provence model=naver/provence-reranker-debertav3-v1")
    assert knob_label("x", {"model": "/abs/folder/probe"}) == "x model=probe"


def test_figure_options_palette_and_compression_factor_axis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A colour-blind-safe palette by default, any matplotlib colormap by name; the x axis in kept
    ratio or compression factor (1/ratio, log); a bad option is one line naming what is allowed."""
    from matplotlib.colors import to_rgba

    from pcbench.analysis.plot import COLORBLIND, Style, variant_colours, variant_markers

    table = pd.DataFrame({"variant": ["bm25", "embedding", "none", "random"],
                          "role": ["method", "method", "baseline", "control"]})
    colours = variant_colours(table)
    assert colours["bm25"] == to_rgba(COLORBLIND[0]) and colours["embedding"] == to_rgba(COLORBLIND[1])
    assert variant_colours(table, Style(palette="tab10"))["bm25"] != colours["bm25"]
    assert variant_markers(table)["bm25"] != variant_markers(table)["embedding"]
    assert list(Style(x_axis="factor").x([0.5, 0.25, 1.0, 0.0])[:3]) == [2.0, 4.0, 1.0]
    root = study(tmp_path)
    out = tmp_path / "factor"
    assert main([str(root), "--out", str(out), "--x-axis", "factor", "--palette", "viridis", "--examples", "0"]) == 0
    assert (out / "tradeoff.png").exists() and not (out / "examples").exists()
    capsys.readouterr()
    for flag, value, allowed in (("--x-axis", "log", "ratio, factor"), ("--palette", "rainbowish", "colorblind"),
                                 ("--examples", "-1", "give 0")):
        assert main([str(root), "--out", str(tmp_path / "bad"), flag, value]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and value in err[0] and allowed in err[0], err


def test_needle_grid_heatmap_per_cell(tmp_path: Path) -> None:
    """NIAH cells carry their length x depth grid; the report draws one panel per cell that has the
    metric in it, and none for a reader-free study (its grid holds no reader metric)."""
    import matplotlib.pyplot as plt

    from pcbench.analysis.metric import Metric
    from pcbench.analysis.plot import Style, plot_heatmaps

    grid = {f"by_length_depth.{n}.{d}.match": v for n, d, v in
            [(1000, 0, 100.0), (1000, 50, 0.0), (2000, 0, 50.0), (2000, 12.5, 100.0)]}
    table = pd.DataFrame([{"task_label": "niah", "reader_label": "smollm2", "variant": name, "kept_ratio": ratio,
                           **grid} for name, ratio in (("bm25", 0.25), ("none", 1.0))])
    png = plot_heatmaps(table, Metric("match", "metrics.match", "score"), tmp_path / "heatmap", Style(7.0))
    assert png is not None and png.exists() and (tmp_path / "heatmap.pdf").exists()
    assert 0.85 * 7.0 <= plt.imread(png).shape[1] / 150 <= 1.15 * 7.0
    assert plot_heatmaps(table, Metric("f1", "metrics.f1", "score"), tmp_path / "none") is None
    out = tmp_path / "report"
    assert main([str(study(tmp_path)), "--out", str(out)]) == 0  # reader-free: no grid to draw
    assert not (out / "heatmap.png").exists() and "Needle grid" not in (out / "report.html").read_text()


def test_pareto_front() -> None:
    import numpy as np

    ratios = np.array([0.1, 0.2, 0.3, 0.5, 1.0, 0.05])
    scores = np.array([40.0, 35.0, 60.0, 60.0, 80.0, 10.0])
    # 0.2 (35 < 40 at 0.1) and 0.5 (no better than 60 at 0.3) are dominated.
    assert list(pareto_front(ratios, scores)) == [5, 0, 2, 4]
    # The demo's case: embedding keeps 0.003 less than bm25 and scores 66.7 against 75.0, both inside the
    # other's interval. Without tolerance bm25 falls off the front behind a cell at 0.2456 scoring 75.0;
    # with a 0.01 tolerance and the intervals, neither falls: noise does not decide.
    ratios = np.array([0.2442, 0.2470, 0.2456])
    scores, upper = np.array([66.7, 75.0, 75.0]), np.array([91.7, 100.0, 100.0])
    assert list(pareto_front(ratios, scores)) == [0, 2]
    assert list(pareto_front(ratios, scores, upper, 0.01)) == [0, 2, 1]
    # A clearly cheaper cell that scores no less still dominates, and so does one above the whole interval.
    assert list(pareto_front(np.array([0.1, 0.3]), np.array([50.0, 50.0]), np.array([70.0, 70.0]), 0.01)) == [0]
    assert list(pareto_front(np.array([0.25, 0.25]), np.array([20.0, 90.0]), np.array([40.0, 99.0]), 0.01)) == [1]


def test_speed_plot_rings_cells_that_reused_an_earlier_cells_work() -> None:
    from pcbench.analysis.plot import reused_cached_work

    rows = pd.DataFrame({"cache_hits.reused_work": [59, 180, 0], "cache_hits.computed_work": [121, 0, 0]})
    # The first cell of a sweep computed its scores (some reuse within the cell); the second took
    # them all from the cache; a cell with no cached work at all is not ringed.
    assert reused_cached_work(rows).tolist() == [False, True, False]
    assert not reused_cached_work(pd.DataFrame({"kept_ratio": [0.5]})).any()  # cells written before these counts


def test_methods_get_distinct_markers_and_controls_stay_off_the_front(tmp_path: Path) -> None:
    from pcbench.analysis.plot import variant_markers

    table = collect_cells(study(tmp_path)).table
    markers = variant_markers(table)
    methods = [v for v in markers]
    assert len(set(markers.values())) == len(methods) and "random" not in markers  # controls keep "x"


def test_speed_table_per_cell_with_intervals() -> None:
    """ms per example, tokens/s and the speed-up over the full context on the shared examples, each
    with its bootstrap interval; the full context and the gold evidence carry no compression cost."""
    from pcbench.analysis.speed import speed_board, speed_table

    def records(compress: list[float], read: list[float]) -> list[dict[str, object]]:
        return [{"id": str(i), "compress_seconds": c, "prefill_seconds": r / 2, "generate_seconds": r / 2,
                 "original_tokens": 1000} for i, (c, r) in enumerate(zip(compress, read))]

    table = pd.DataFrame({"path": ["none", "bm25"], "variant": ["none", "bm25"], "role": ["baseline", "method"],
                          "task_label": "t", "reader_label": "r", "budget": ["", "rate=0.5"], "kept_ratio": [1.0, 0.5]})
    found = speed_table(table, {"none": records([0.0] * 4, [4.0, 4.0, 2.0, 2.0]),
                                "bm25": records([0.1, 0.1, 0.3, 0.3], [0.9, 0.9, 0.7, 0.7])})
    bm25 = found[found["variant"] == "bm25"].iloc[0]
    assert bm25["compress_ms"] == pytest.approx(200.0)
    assert bm25["compress_ms.lo"] <= 200.0 <= bm25["compress_ms.hi"] and bm25["compress_ms.hi"] > bm25["compress_ms.lo"]
    assert bm25["tokens_per_s"] == pytest.approx(4000 / 0.8)
    assert bm25["total_s"] == pytest.approx(1.0) and bm25["speedup"] == pytest.approx(3.0)
    assert bm25["speedup.lo"] <= 3.0 <= bm25["speedup.hi"]
    none = found[found["variant"] == "none"].iloc[0]
    assert math.isnan(none["compress_ms"]) and math.isnan(none["speedup"]) and none["total_s"] == pytest.approx(3.0)
    board = speed_board(found)
    assert board.loc[board["variant"] == "bm25", "speed-up vs none"].iloc[0].startswith("3.00× [")
    assert board.loc[board["variant"] == "none", "compress ms/example [95% CI]"].iloc[0] == "–"


def test_numbers_are_parsed_once_without_contexts_and_reparsed_when_the_file_changes(tmp_path: Path) -> None:
    from pcbench.core.results import read_numbers

    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps({"id": "a", "context": "long text", "scores": {"em": 1.0}}) + "\n")
    records, problem = read_numbers(tmp_path)
    assert problem is None and records == [{"id": "a", "scores": {"em": 1.0}}]
    records[0]["id"] = "changed by a caller"  # must not reach the next caller
    assert read_numbers(tmp_path)[0][0]["id"] == "a"
    path.write_text(json.dumps({"id": "a", "scores": {"em": 0.0}}) + "\n" + '{"id": "b", "sc')  # a cut last line
    records, problem = read_numbers(tmp_path)
    assert records == [{"id": "a", "scores": {"em": 0.0}}] and problem and "line 2 is cut" in problem


@pytest.mark.parametrize("damage", ["identity", "count", "list", "nul-config"])
def test_damaged_result_files_are_left_out_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       damage: str) -> None:
    """A metrics.json of the wrong shape (edited, cut, written by something else), or a config.yaml
    holding a NUL byte: the report leaves the cell out (or its example pages) with a note, the
    inspector says so in one line, and a rerun of the cell recomputes it rather than trusting it."""
    from pcbench.analysis.inspect import main as inspect_main
    from pcbench.runners.record import finished

    root = study(tmp_path)
    cell = root / "niah" / "bm25" / "bm25_rate=0.5"
    metrics = json.loads((cell / "metrics.json").read_text())
    real_key = metrics["identity"]["cell_key"]
    assert finished(cell, real_key) is not None
    if damage == "identity":
        metrics["identity"] = "not an object"
    elif damage == "count":
        metrics["n_examples"] = "many"
    elif damage == "list":
        metrics = [metrics]
    if damage == "nul-config":
        (cell / "config.yaml").write_bytes(b"task:\x00 broken\n")
    else:
        (cell / "metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "report"
    assert main([str(root), "--out", str(out), "--metric", "evidence_recall"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "bm25_rate=0.5" in err  # named in a note
    code = inspect_main([str(cell), "--color", "never"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    if damage != "nul-config":
        assert finished(cell, real_key) is None
