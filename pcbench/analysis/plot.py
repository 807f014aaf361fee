"""Figures for a paper: metric against achieved kept ratio, and speed-up against kept ratio.

One panel per (task, reader): rows are tasks, columns readers. In each panel one line per
variant (compressor + non-default knobs) through its budgets, with its 95% bootstrap band;
`none` (the full context) is a dashed horizontal reference with its band, `random` a grey dotted
control, `oracle` a star; the Pareto front of the compressors (no other cell keeps less and
scores more; oracle and none are references, not part of it) is ringed and joined by a dashed
staircase. Colours (a colour-blind-safe palette unless `Style.palette` names another) and marker
shapes are fixed per variant across panels. The x axis is the kept ratio or, with
`Style.x_axis="factor"`, the compression factor (original / kept, log scale). Every figure is written
as PNG and PDF.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from pcbench.analysis.metric import Metric, resolve  # noqa: E402

RATIO_LABEL = "achieved kept ratio (reader tokens kept / original)"
FACTOR_LABEL = "compression factor (original / kept reader tokens, ×)"
X_AXES = ("ratio", "factor")
# Okabe & Ito's palette (distinct under the common colour-vision deficiencies and in greyscale
# print, with the marker shapes), black left out: black draws the references.
COLORBLIND = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442")
# How each role (compressors/base.py, recorded per cell) is drawn: the uncompressed baseline as a
# line, the gold-evidence ceiling as a star, the random control dotted in greys, methods in colour.
SPECIAL = ("baseline", "ceiling", "control")


def roles(table: pd.DataFrame) -> dict[str, str]:
    """Each variant's role (`method` for cells recorded before compressors declared one)."""
    if "role" not in table:
        return {str(v): "method" for v in table["variant"].unique()}
    return {str(v): str(r) for v, r in zip(table["variant"], table["role"].fillna("method"))}


def metric_column(table: pd.DataFrame, metric: str) -> str:
    """The column for a metric name (kept for callers of the first version)."""
    return resolve(table, metric).column


# Inches: the text width of a two-column paper, so the figure goes in at 100% and its text is the
# point sizes below (`pcbench-report --figure-width 3.3` for one column).
FIGURE_WIDTH = 7.0
TITLE_PT, LABEL_PT, SMALL_PT = 8, 8, 7


class StyleError(ValueError):
    """A figure option that cannot be drawn: one line naming it and what is allowed."""


@dataclass(frozen=True)
class Style:
    """How the figures look. width: inches (the figure is saved that wide, text at 7-8 pt);
    palette: `colorblind` (Okabe-Ito, the default) or any matplotlib colormap name (tab10, tab20,
    viridis, ...); x_axis: `ratio` (achieved kept ratio, linear) or `factor` (compression factor,
    original / kept, log scale); bands: 95% intervals drawn as bands between budgets (interpolated,
    and they overlap where methods are close) instead of error bars at the measured points."""

    width: float = FIGURE_WIDTH
    palette: str = "colorblind"
    x_axis: str = "ratio"
    bands: bool = False  # intervals as bands between the measured points (interpolated) instead of error bars
    pareto_tolerance: float = 0.01  # kept ratios closer than this do not decide the Pareto front

    def __post_init__(self) -> None:
        if not (0 <= self.pareto_tolerance < 1):
            raise StyleError(f"--pareto-tolerance={self.pareto_tolerance:g} is not allowed; give a kept-ratio "
                             "difference in [0, 1), e.g. 0.01")
        if not (0 < self.width <= 40):
            raise StyleError(f"--figure-width={self.width:g} is not allowed; give inches in (0, 40] (7 for a "
                             "page's width, 3.3 for one column)")
        if self.x_axis not in X_AXES:
            raise StyleError(f"--x-axis={self.x_axis} is not allowed; give one of {', '.join(X_AXES)}")
        if self.palette != "colorblind" and self.palette not in plt.colormaps():
            raise StyleError(f"--palette={self.palette} is not allowed; give colorblind or a matplotlib colormap "
                             "name (tab10, tab20, viridis, ...)")

    def colours(self, n: int) -> list[tuple[float, float, float, float]]:
        """n colours, in order; a qualitative palette cycles, a continuous colormap is sampled."""
        from matplotlib.colors import ListedColormap, to_rgba

        if self.palette == "colorblind":
            return [to_rgba(COLORBLIND[i % len(COLORBLIND)]) for i in range(n)]
        cmap = plt.get_cmap(self.palette)
        if isinstance(cmap, ListedColormap) and cmap.N <= 20:
            return [cmap(i % cmap.N) for i in range(n)]
        return [cmap(0.1 + 0.8 * i / max(1, n - 1)) for i in range(n)]

    @property
    def x_label(self) -> str:
        return FACTOR_LABEL if self.x_axis == "factor" else RATIO_LABEL

    def x(self, ratios: Any) -> np.ndarray:
        """Where kept ratios go on the x axis."""
        ratios = np.asarray(ratios, float)
        if self.x_axis == "ratio":
            return ratios
        with np.errstate(divide="ignore"):
            return np.where(ratios > 0, 1.0 / np.where(ratios > 0, ratios, 1.0), np.nan)

    def set_x(self, ax: Axes, ratios: Any) -> None:
        ax.set_xlabel(self.x_label, fontsize=LABEL_PT)
        if self.x_axis == "ratio":
            values = np.asarray(ratios, float)
            values = values[np.isfinite(values)]
            low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
            pad = max(0.03, 0.06 * (high - low))
            ax.set_xlim(max(0.0, low - pad), min(1.05, high + pad))
            return
        factors = self.x(ratios)
        top = np.nanmax(factors) if np.isfinite(factors).any() else 10.0
        ax.set_xscale("log")
        ax.set_xlim(0.9, max(2.0, top * 1.25))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}×" if v in (2, 3, 5, 20, 30, 50) else ""))


def variant_colours(table: pd.DataFrame, style: Style | None = None) -> dict[str, tuple[float, float, float, float]]:
    """A fixed colour per variant, so a method looks the same in every panel and figure."""
    role = roles(table)
    names = sorted(v for v in role if role[v] not in SPECIAL)
    colours = dict(zip(names, (style or Style()).colours(len(names))))
    randoms = sorted(v for v in role if role[v] == "control")
    for i, name in enumerate(randoms):  # controls in greys, darkest first, told apart by shade
        shade = 0.3 + 0.35 * i / max(1, len(randoms) - 1)
        colours[name] = (shade, shade, shade, 1.0)
    for name in role:
        if role[name] in ("baseline", "ceiling"):
            colours[name] = (0.0, 0.0, 0.0, 1.0)
    return colours


def reader_title(reader: str) -> str:
    return "reader-free (no generation)" if reader == "none" else f"reader: {reader}"


# One shape per method, so lines that overlap (bm25 under embedding) still read apart, in print too.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">")


def variant_markers(table: pd.DataFrame) -> dict[str, str]:
    """A fixed marker per method variant (in the same order as its colour); controls keep "x"."""
    role = roles(table)
    names = sorted(v for v in role if role[v] not in SPECIAL)
    return {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(names)}


def pareto_front(ratios: np.ndarray, scores: np.ndarray, upper: np.ndarray | None = None,
                 tolerance: float = 0.0) -> np.ndarray:
    """Indices of the cells no other cell dominates, ordered by ratio. Another cell dominates one when
    it is clearly cheaper (kept ratio lower by more than `tolerance`) and scores no less, or when it is
    no dearer (within `tolerance`) and scores above the cell's whole interval (`upper`, its 95% upper
    bound; the score itself without one). With no tolerance and no intervals this is the classic
    front; with them, kept ratios 0.003 apart and scores inside each other's intervals do not decide."""
    upper = scores if upper is None else np.where(np.isnan(upper), scores, upper)
    front = [i for i in range(len(scores))
             if not any((ratios[j] < ratios[i] - tolerance and scores[j] >= scores[i])
                        or (ratios[j] <= ratios[i] + tolerance and scores[j] > upper[i])
                        for j in range(len(scores)) if j != i)]
    return np.array(sorted(front, key=lambda i: (ratios[i], -scores[i])), dtype=int)


def _n_label(rows: pd.DataFrame) -> str:
    counts = sorted({int(n) for n in rows["n_examples"].dropna()})
    if not counts:
        return "n=?"
    return f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}–{counts[-1]}"


def _drawable(rows: pd.DataFrame, style: Style) -> pd.DataFrame:
    """On a compression-factor axis a cell that kept nothing (an empty summary) has no place."""
    return rows if style.x_axis == "ratio" else rows[rows["kept_ratio"].astype(float) > 0]


def _grid(table: pd.DataFrame, width: float) -> tuple[Figure, np.ndarray, list[str], list[str]]:
    """Panels (task x reader) sharing `width` inches; the legend goes below them, so the saved
    figure is `width` wide and its text prints at TITLE_PT / LABEL_PT / SMALL_PT when included at 100%."""
    tasks = sorted(table["task_label"].unique())
    readers = sorted(table["reader_label"].unique())
    panel = width / len(readers)
    fig, axes = plt.subplots(len(tasks), len(readers), figsize=(width, 0.72 * panel * len(tasks)), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.tick_params(which="both", labelsize=SMALL_PT)
    return fig, axes, tasks, readers


def _save(fig: Figure, out: Path) -> Path:
    """PNG and PDF at exactly the figure's size (no tight bounding box: the width is the paper's), with
    TrueType (Type 42) fonts in the PDF, which ACL's and IEEE's checks require (Type 3 is refused)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
        fig.savefig(png, dpi=150)
        fig.savefig(out.with_suffix(".pdf"))
    plt.close(fig)
    return png


def _legend(fig: Figure, axes: np.ndarray) -> None:
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:  # below the panels, inside the figure: it keeps its width, and grows taller by the legend's rows
        columns = max(1, min(3, len(handles), int(fig.get_figwidth() / 2.2)))
        rows = -(-len(handles) // columns)
        fig.set_figheight(fig.get_figheight() + 0.16 * rows + 0.1)
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=columns,
                   fontsize=SMALL_PT, frameon=False)


def _bounds(rows: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    lo, hi = f"{column}.lo", f"{column}.hi"
    if lo not in rows or rows[lo].isna().all():
        return None
    return rows[lo].to_numpy(float), rows[hi].to_numpy(float)


def _draw_variant(ax: Axes, rows: pd.DataFrame, column: str, name: str, colour: tuple[float, ...],
                  marker: str = "o", style: Style | None = None) -> None:
    rows = rows.sort_values("kept_ratio")
    x, y = (style or Style()).x(rows["kept_ratio"]), rows[column].to_numpy(float)
    bounds = _bounds(rows, column)
    family = roles(rows).get(name, "method")
    if family == "baseline":
        ax.axhline(y.mean(), color="black", linestyle="--", linewidth=1.2, label=f"{name} (full context)", zorder=2)
        if bounds is not None:
            ax.axhspan(np.nanmin(bounds[0]), np.nanmax(bounds[1]), color="black", alpha=0.07, zorder=1)
        return
    if family == "ceiling":
        ax.scatter(x, y, marker="*", s=180, color="gold", edgecolor="black", linewidth=0.8,
                   label=f"{name} (gold evidence)", zorder=5)
        if bounds is not None:
            ax.errorbar(x, y, yerr=[np.clip(y - bounds[0], 0, None), np.clip(bounds[1] - y, 0, None)], fmt="none",
                        ecolor="black", capsize=3, zorder=4)
        return
    control = family == "control"
    ax.plot(x, y, label=f"{name} (control)" if control else name, color=colour, marker="x" if control else marker,
            markersize=6 if control else 5, linestyle=":" if control else "-", linewidth=1.6, zorder=3)
    if bounds is not None:
        if (style or Style()).bands and len(x) > 1:
            ax.fill_between(x, bounds[0], bounds[1], color=colour, alpha=0.15, linewidth=0, zorder=2)
        else:  # at the measured points only: nothing is claimed between two budgets
            below, above = np.clip(y - bounds[0], 0, None), np.clip(bounds[1] - y, 0, None)
            ax.errorbar(x, y, yerr=[below, above], fmt="none", ecolor=colour, capsize=2.5, linewidth=1.0,  # type: ignore[arg-type]
                        zorder=3)


def _panels(rows_all: pd.DataFrame, axes: Any, tasks: list[str], readers: list[str]) -> Iterator[
        tuple[Any, str, str, pd.DataFrame]]:
    """(axis, task, reader, rows) for every panel of the grid that has rows; empty panels are hidden."""
    for r, task in enumerate(tasks):
        for c, reader in enumerate(readers):
            rows = rows_all[(rows_all["task_label"] == task) & (rows_all["reader_label"] == reader)]
            if rows.empty:
                axes[r, c].set_axis_off()
                continue
            yield axes[r, c], task, reader, rows


def plot_tradeoff(table: pd.DataFrame, metric: str | Metric, out: Path, style: Style | None = None) -> Path:
    """Metric against achieved kept ratio (or compression factor); writes out.png and out.pdf,
    returns the PNG's path."""
    style = style or Style()
    found = metric if isinstance(metric, Metric) else resolve(table, metric)
    column = found.column
    rows_all = _drawable(table.dropna(subset=[column, "kept_ratio"]), style)
    fig, axes, tasks, readers = _grid(rows_all, style.width)
    colours, markers = variant_colours(rows_all, style), variant_markers(rows_all)
    for ax, task, reader, rows in _panels(rows_all, axes, tasks, readers):
        # The front of what a compressor achieves: oracle uses the gold labels, none compresses
        # nothing and random is the control, so they are references drawn apart, not points of it.
        methods = rows[~rows["variant"].map(roles(rows)).isin(["baseline", "ceiling", "control"])]
        upper = methods[f"{column}.hi"].to_numpy(float) if f"{column}.hi" in methods else None
        front = pareto_front(methods["kept_ratio"].to_numpy(float), methods[column].to_numpy(float), upper,
                             style.pareto_tolerance)
        if len(front) > 1:
            fx = style.x(methods["kept_ratio"].to_numpy(float)[front])
            fy = np.maximum.accumulate(methods[column].to_numpy(float)[front])
            # A staircase: what is attainable at a ratio is the best score at that ratio or below.
            ax.step(fx, fy, where="post", color="black", alpha=0.35, linewidth=1.2, linestyle=(0, (4, 2)), zorder=1)
            ax.scatter(fx, fy, s=130, facecolors="none", edgecolors="black", linewidths=1.0, alpha=0.6,
                       label="Pareto front", zorder=6)
        for name, group in rows.groupby("variant"):
            _draw_variant(ax, group, column, str(name), colours[str(name)], markers.get(str(name), "o"), style)
        ax.set_title(f"{task} · {reader_title(reader)} · {_n_label(rows)}", fontsize=TITLE_PT)
        style.set_x(ax, _placed(rows)["kept_ratio"])
        ax.set_ylabel(found.label, fontsize=LABEL_PT)
        ax.set_ylim(*_score_range(rows, column))
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return _save(fig, out)


def _placed(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows drawn at their kept ratio: the full context is a horizontal line (or the 1x line), so
    it does not stretch the x axis to 1 when every method kept far less."""
    placed = rows[rows["variant"].map(roles(rows)) != "baseline"]
    return placed if not placed.empty else rows


def _score_range(rows: pd.DataFrame, column: str) -> tuple[float, float]:
    """The y range of a 0-100 score fitted to what is drawn (points and intervals), padded, within [-3, 103]."""
    values = [rows[column].to_numpy(float)]
    bounds = _bounds(rows, column)
    if bounds is not None:
        values += list(bounds)
    drawn = np.concatenate(values)
    drawn = drawn[np.isfinite(drawn)]
    if not drawn.size:
        return -3.0, 103.0
    low, high = float(drawn.min()), float(drawn.max())
    pad = max(3.0, 0.08 * (high - low))
    return max(-3.0, low - pad), min(103.0, high + pad)


def reused_cached_work(rows: pd.DataFrame) -> pd.Series:
    """Cells whose compression took all its budget-free work (scores, counts) from the cache,
    computing none of it: the later cells of a rate sweep, which the first cell paid for."""
    if "cache_hits.reused_work" not in rows or "cache_hits.computed_work" not in rows:
        return pd.Series(False, index=rows.index)
    reused = rows["cache_hits.reused_work"].fillna(0).astype(float)
    return (reused > 0) & (rows["cache_hits.computed_work"].fillna(1).astype(float) == 0)


def plot_speed(table: pd.DataFrame, out: Path, style: Style | None = None) -> Path:
    """Speed-up against kept ratio or compression factor (compress + read time against the
    uncompressed cell). For reader-free cells, which read nothing, the compression time per example
    instead."""
    style = style or Style()
    if "speedup" not in table:  # a table the report did not make: the same paired figure, from the records
        from pcbench.analysis.speed import speed_table
        from pcbench.analysis.stats import read_records

        speed = speed_table(table, {path: read_records(path) for path in table["path"]})
        table = table.merge(speed[["path", "speedup"]], on="path", how="left")
    else:
        table = table.copy()
    read = table["speedup"].notna().any()
    column = "speedup" if read else "compress_ms"
    if not read:
        table[column] = 1000 * table["seconds.compress_mean"].astype(float)
    rows_all = _drawable(table.dropna(subset=[column, "kept_ratio"]), style)
    fig, axes, tasks, readers = _grid(rows_all, style.width)
    colours, markers = variant_colours(rows_all, style), variant_markers(rows_all)
    for ax, task, reader, rows in _panels(rows_all, axes, tasks, readers):
        for name, group in rows.groupby("variant"):
            group = group.sort_values("kept_ratio")
            family = roles(group).get(str(name), "method")
            if family == "baseline":
                continue  # the 1x line; reader-free, it compresses nothing, so it has no time to show
            ax.plot(style.x(group["kept_ratio"]), group[column], color=colours[str(name)],
                    marker="*" if family == "ceiling" else "x" if family == "control" else markers.get(str(name), "o"),
                    markersize=9 if family == "ceiling" else 5,
                    linestyle=":" if family == "control" else "-" if len(group) > 1 else "none", label=str(name))
            reused = reused_cached_work(group)
            if reused.any():  # hollow ring: this cell's compression reused cached work (see below)
                ax.scatter(style.x(group.loc[reused, "kept_ratio"]), group.loc[reused, column], s=110,
                           facecolors="none", edgecolors=colours[str(name)], linewidths=1.2, zorder=4)
        if read:
            ax.axhline(1.0, color="black", linestyle="--", linewidth=1.2, label="none (full context) = 1×")
            ax.set_ylabel("speed-up over full context (×, compress + read)", fontsize=LABEL_PT)
        else:
            ax.set_ylabel("compression time per example (ms)", fontsize=LABEL_PT)
        ax.set_yscale("log")
        # Plain numbers (0.4, 4, 40), not 4x10^-1; minor ticks labelled only when few decades show.
        ax.yaxis.set_major_formatter(FuncFormatter(plain_number))
        ax.yaxis.set_minor_formatter(FuncFormatter(minor_label(_placed(rows)[column].to_numpy(float))))
        ax.set_title(f"{task} · {reader_title(reader)} · {_n_label(rows)}", fontsize=TITLE_PT)
        if reused_cached_work(rows).any():  # said once, in the legend below the panels
            ax.scatter([], [], s=110, facecolors="none", edgecolors="#555", linewidths=1.2,
                       label="ringed: reused an earlier cell's cached work (not its full cost)")
        style.set_x(ax, _placed(rows)["kept_ratio"])
        ax.grid(alpha=0.3, which="both")
    _legend(fig, axes)
    return _save(fig, out)


def plain_number(value: float, _: Any = None) -> str:
    """0.04, 0.4, 4, 40, 4000: a log axis's tick in plain digits, never 4e-02 or 4x10^-1."""
    if value == 0 or not np.isfinite(value):
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:g}"
    digits = -int(np.floor(np.log10(abs(value))))  # 0.04 -> 2 decimals
    return f"{value:.{digits}f}"


def minor_label(values: np.ndarray) -> Any:
    """Labels for the minor ticks of a log axis: 2 and 5 times each power of ten where the data span
    at most two decades (more would crowd the axis), in plain digits; none otherwise."""
    finite = values[np.isfinite(values) & (values > 0)]
    decades = np.log10(finite.max() / finite.min()) if finite.size else 0.0

    def label(value: float, _: Any = None) -> str:
        if decades > 2 or value <= 0:
            return ""
        mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
        return plain_number(value) if mantissa in (2.0, 5.0) else ""

    return label


def plot_heatmaps(table: pd.DataFrame, metric: str | Metric, out: Path, style: Style | None = None) -> Path | None:
    """The needle-in-a-haystack grid of every cell that has one (NIAH's `by_length_depth`): the
    metric per context length (rows) and needle depth (columns), 0-100, one panel per cell; None
    when no cell has such a grid for the metric (other tasks, reader-free cells)."""
    found = metric if isinstance(metric, Metric) else resolve(table, metric)
    prefix, suffix = "by_length_depth.", f".{found.name}"
    where: dict[tuple[str, str], str] = {}  # (length, depth) -> column
    for column in table.columns:
        if column.startswith(prefix) and column.endswith(suffix):
            length, _, depth = column[len(prefix):-len(suffix)].partition(".")
            where[(length, depth)] = column
    lengths = sorted({n for n, _ in where}, key=float)
    depths = sorted({d for _, d in where}, key=float)
    panels: list[tuple[str, list[str], list[str], np.ndarray]] = []
    order = [c for c in ("task_label", "reader_label", "variant", "kept_ratio") if c in table]
    for _, row in table.sort_values(order).iterrows():
        values = np.array([[float(row[where[(n, d)]]) if (n, d) in where else np.nan for d in depths]
                           for n in lengths], float)
        if not values.size or np.isnan(values).all():
            continue
        title = f"{row['variant']} · kept {row['kept_ratio']:.2f}"
        if table["reader_label"].nunique() > 1:
            title += f" · {reader_title(str(row['reader_label']))}"
        panels.append((title, lengths, depths, values))
    if not panels:
        return None
    width = (style or Style()).width
    cols = max(1, min(len(panels), int(width / 2.3)))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, rows * 0.8 * width / cols + 0.3), squeeze=False,
                             layout="constrained")
    image = None
    for k, (ax, (title, lengths, depths, values)) in enumerate(zip(axes.flat, panels)):
        image = ax.imshow(values, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(depths)), [f"{float(d):g}%" for d in depths], fontsize=SMALL_PT)
        ax.set_yticks(range(len(lengths)), lengths, fontsize=SMALL_PT)
        for (r, c), value in np.ndenumerate(values):
            if not np.isnan(value):
                ax.text(c, r, f"{value:.0f}", ha="center", va="center", fontsize=SMALL_PT,
                        color="white" if value < 60 else "black")
        ax.set_title(title, fontsize=SMALL_PT)
        if k + cols >= len(panels):  # the lowest panel of its column
            ax.set_xlabel("needle depth", fontsize=SMALL_PT)
        if k % cols == 0:
            ax.set_ylabel("context tokens", fontsize=SMALL_PT)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(f"{found.label} by context length and needle depth", fontsize=TITLE_PT)
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat), shrink=0.8).ax.tick_params(labelsize=SMALL_PT)
    return _save(fig, out)
