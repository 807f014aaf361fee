"""`make gpu-check`: what only a CUDA GPU can show, in a few minutes, printed as rows.

1. readers: the vLLM reader against the transformers reader on the same requests (NIAH, and
   HotpotQA where the shared file is present): prompt tokens and truncation must be equal; answers
   are compared (equal count; vLLM's kernels may break near-ties differently) and speed reported;
2. bf16: the transformers reader in bfloat16 against float32 on CUDA: equal answers, speed;
3. batched compressors on CUDA against the same on CPU (examples/s, the kept text compared):
   llmlingua, longllmlingua, selective_context (SmolLM2 scorer) and embedding (MiniLM);
4. break-even on CUDA: per family at 2x, 4x and 10x, compress + read seconds against reading the full
   context with `--reader` (default a 1.5B instruct model from the hub; the packaged SmolLM2 when
   the hub cannot be reached, said in the row).

Without CUDA it says so in one line and exits 2. `--device cpu` runs every part that does not need
vLLM on the CPU (both sides of each comparison on the CPU), which is how its code is checked on a
machine without a GPU; its figures are not GPU figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reference_common import HOTPOT, cell  # beside this file

FAMILIES = ("llmlingua", "longllmlingua", "selective_context", "embedding")
READER = "Qwen/Qwen2.5-1.5B-Instruct"
Row = tuple[str, str, str]


def requests(limit: int) -> list[Any]:
    """The protocol's requests for NIAH (packaged essays) and, where present, HotpotQA."""
    from pcbench.api import load_task

    tasks = [load_task("niah", limit=limit)]
    if HOTPOT.exists():
        tasks.append(load_task("hotpotqa", path=str(HOTPOT), limit=limit))
    return [task.request(e, e.context) for task in tasks for e in task.load()]


def timed_generate(reader: Any, batch: list[Any]) -> tuple[list[Any], float]:
    reader.generate(batch[:1])  # warm-up: weights, allocation, kernels
    start = time.perf_counter()
    out = reader.generate(batch)
    return out, time.perf_counter() - start


def compare_readers(rows: list[Row], device: str, limit: int) -> None:
    from pcbench.api import load_reader

    batch = requests(limit)
    base = load_reader("smollm2", device=device, dtype="float32", max_input_tokens=4000)
    expected, base_s = timed_generate(base, batch)
    rows.append((f"transformers reader, float32, {device}", f"{len(batch) / base_s:.2f} requests/s",
                 f"{len(batch)} requests (NIAH{' + HotpotQA' if HOTPOT.exists() else ''})"))
    half = load_reader("smollm2", device=device, dtype="bfloat16", max_input_tokens=4000)
    got, half_s = timed_generate(half, batch)
    rows.append((f"transformers reader, bfloat16 vs float32, {device}", f"{base_s / half_s:.2f}x faster",
                 f"answers equal {sum(a.text == b.text for a, b in zip(got, expected))}/{len(batch)}; "
                 f"prompt tokens equal {sum(a.prompt_tokens == b.prompt_tokens for a, b in zip(got, expected))}"))
    base.close()
    half.close()
    if device != "cuda":
        rows.append(("vLLM reader vs transformers reader", "skipped", "needs CUDA"))
        return
    try:
        import vllm  # noqa: F401
    except ImportError:
        rows.append(("vLLM reader vs transformers reader", "skipped", "pip install 'pcbench[vllm]'"))
        return
    from pcbench.core.local_models import resolve

    engine = load_reader("vllm", model=str(resolve("smollm2")), dtype="float32", max_input_tokens=4000,
                         max_model_len=8192, gpu_memory_utilization=0.5)
    got, vllm_s = timed_generate(engine, batch)
    same_tokens = sum(a.prompt_tokens == b.prompt_tokens for a, b in zip(got, expected))
    same_cut = sum(a.truncated == b.truncated for a, b in zip(got, expected))
    rows.append(("vLLM reader vs transformers reader (SmolLM2, float32)", f"{base_s / vllm_s:.2f}x faster",
                 f"prompt tokens equal {same_tokens}/{len(batch)} (must be all), truncation equal "
                 f"{same_cut}/{len(batch)} (must be all), answers equal "
                 f"{sum(a.text == b.text for a, b in zip(got, expected))}/{len(batch)}"))
    engine.close()


def compare_compressors(rows: list[Row], device: str, limit: int) -> None:
    from pcbench.api import load_compressor, load_task
    from pcbench.compressors.base import Env
    from pcbench.core.tokenizer import load_tokenizer

    task = load_task("hotpotqa", path=str(HOTPOT), limit=limit) if HOTPOT.exists() else load_task("niah", limit=limit)
    examples = list(task.load())
    tokenizer = load_tokenizer("smollm2")
    for family in FAMILIES:
        seconds, texts = {}, {}
        for where in dict.fromkeys(["cpu", device]):
            compressor = load_compressor(family, rate=0.25, device=where)
            compressor.compress_batch(examples[:1], Env(tokenizer))  # warm-up: model load, allocation
            start = time.perf_counter()
            texts[where] = [r.text for r in compressor.compress_batch(examples, Env(tokenizer))]
            seconds[where] = time.perf_counter() - start
        same = sum(a == b for a, b in zip(texts["cpu"], texts[device]))
        rows.append((f"{family}: {len(examples)} examples batched, {device} vs cpu",
                     f"{seconds['cpu'] / seconds[device]:.2f}x faster",
                     f"{len(examples) / seconds['cpu']:.2f} -> {len(examples) / seconds[device]:.2f} examples/s; "
                     f"same kept text {same}/{len(examples)}"))


def break_even(rows: list[Row], device: str, limit: int, reader: str) -> None:
    import break_even as table  # beside this file

    if not HOTPOT.exists():
        rows.append(("break-even", "skipped", f"{HOTPOT} is absent"))
        return
    scratch = Path(tempfile.mkdtemp(prefix="pcbench-gpu-break-even-"))
    model = reader
    try:
        from pcbench.api import load_reader
        from pcbench.core.requests import Request

        load_reader("transformers", model=reader, device=device).generate([Request("Hello", 1)])
    except Exception as exc:  # the hub unreachable, or the model too big: say which reader ran instead
        rows.append(("break-even reader", "smollm2", f"{reader} could not load ({type(exc).__name__}: {exc})"[:200]))
        model = "smollm2"
    task = ["task=hotpotqa", f"task.path={HOTPOT}", f"task.limit={limit}", "reader=transformers",
            f"reader.model={model}", "reader.batch_size=1", f"reader.device={device}"]
    cell([*task, "compressor=none", "task.limit=1"], scratch / "warm", scratch / "warm")
    _, metrics = cell([*task, "compressor=none"], scratch / "none", scratch / "none")
    full = table.per_example(metrics)[1]
    measured: table.Measured = {}
    for family in table.FAMILIES:
        extra = [f"compressor={family}", f"compressor.device={device}"] if family != "bm25" else ["compressor=bm25"]
        cell([*task, *extra, "compressor.rate=0.3", "task.limit=1"], scratch / f"{family}-warm",
             scratch / f"{family}-warm")
        for rate in table.RATES:
            name = f"{family}-{rate}"
            _, metrics = cell([*task, *extra, f"compressor.rate={rate}"], scratch / name, scratch / name)
            measured[(family, rate)] = table.per_example(metrics)
    rows.extend(table.rows_of(full, measured, limit, f"{model}, {device}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: check the script's code on a machine without a GPU (not GPU figures)")
    parser.add_argument("--limit", type=int, default=8, help="examples per task")
    parser.add_argument("--reader", default=READER, help="the break-even reader (hub id or folder)")
    parser.add_argument("--part", action="append", choices=("readers", "compressors", "break-even"),
                        help="one part (repeatable; default all)")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU here (torch.cuda.is_available() is False); "
              "`--device cpu` checks the script's code on the CPU", file=sys.stderr)
        sys.exit(2)
    parts = args.part or ["readers", "compressors", "break-even"]
    rows: list[Row] = []
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    print(f"pcbench gpu-check on {where}", flush=True)
    if "readers" in parts:
        compare_readers(rows, args.device, args.limit)
    if "compressors" in parts:
        compare_compressors(rows, args.device, args.limit)
    if "break-even" in parts:
        break_even(rows, args.device, min(args.limit, 8), args.reader)
    for name, value, note in rows:
        print(f"  {name:<62}  {value:>18}  {note}", flush=True)


if __name__ == "__main__":
    main()
