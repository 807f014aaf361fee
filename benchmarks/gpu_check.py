"""`make gpu-check`: what only a CUDA GPU can show, in a few minutes, printed as rows.

1. readers: the transformers reader in bfloat16 against float32 on the device (speed; answers compared),
   and the vLLM reader against the transformers reader on the same requests where vLLM is installed
   (prompt tokens and truncation must be equal; answers compared, speed reported);
2. LM token pruning batched across examples on the device: one by one against one batch of
   `--limit` examples (examples/s, the kept text must be the same), for llmlingua, longllmlingua and
   selective_context; then each family and the embedding scorer batched on the device against the
   same on the CPU (examples/s, kept text compared);
3. break-even on the device: per family at 2x, 4x and 10x, compress + read seconds against reading
   the full context with `--reader` (default a 1.5B instruct model from the hub; the packaged
   SmolLM2 when the hub cannot be reached, said in the row), reader in `--reader-dtype`;
4. memory and energy: the largest batch the transformers reader (`--reader`) takes on the device
   before running out of memory, on the longest HotpotQA prompt in full and compressed by bm25 at
   rate 0.5; a SnapKV press at 0.5 on the same reader (the cache it leaves against the unpressed
   cache, and the prefill's peak); each cell's stage energy from NVML;
5. the serving card (docs/serving.md) where vLLM is installed: reader-free HotpotQA cells (none,
   bm25 and LongLLMLingua at rate 0.5, compressed on the device) replayed against vLLM's OpenAI
   server started on the GPU with SmolLM2, at concurrency 1 to 32; the card's rows are printed and
   its files kept in the folder printed.

`--random-weights DIR`, for a GPU machine that reaches neither the hub nor the packaged weights: the
same architectures with random weights, built from the configs and tokenizers in DIR (written here by
`--export-templates DIR`): SmolLM2-135M (the scorer and summariser), all-MiniLM-L6-v2 (the embedding
scorer) and, as the reader, Qwen2.5-1.5B's shape (28 layers, width 1536, 12 heads, 2 KV heads, MLP
8960) with SmolLM2's vocabulary: 1.4B parameters. Seconds hold (the same shapes over the same
tokens); answers and scores do not, so every answer runs to `--new-tokens` tokens (default 20: what
the real SmolLM2 answers on average on the shared HotpotQA file, measured on CPU).

Without CUDA it says so in one line and exits 2. `--device cpu` runs every part that does not need
vLLM on the CPU, which is how its code is checked on a machine without a GPU (not GPU figures).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_common import HOTPOT, cell  # beside this file

LM_FAMILIES = ("llmlingua", "longllmlingua", "selective_context")
READER = "Qwen/Qwen2.5-1.5B-Instruct"
TOKENIZER_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                   "chat_template.jinja")
# Qwen2.5-1.5B-Instruct's shape (its config.json), with the template tokenizer's vocabulary.
QWEN_1_5B: dict[str, Any] = {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                             "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768,
                             "rope_theta": 1000000.0,
                             "rms_norm_eps": 1e-6, "tie_word_embeddings": True}
Row = tuple[str, str, str]


@dataclass
class Setup:
    device: str
    limit: int
    hotpot: Path
    scorer: str  # the LM family's scorer and the summariser: smollm2, or a folder
    embedder: str  # the embedding scorer: minilm, or a folder
    reader: str  # the break-even reader: a hub id or a folder
    reader_dtype: str
    new_tokens: int | None  # every answer's length, when weights are random
    rows_file: Path | None

    def add(self, rows: list[Row], name: str, value: str, note: str) -> None:
        """Print a row at once and keep it (a part that fails later loses nothing printed)."""
        rows.append((name, value, note))
        line = f"  {name:<62}  {value:>18}  {note}"
        print(line, flush=True)
        if self.rows_file is not None:
            with self.rows_file.open("a", encoding="utf-8") as out:
                out.write(line + "\n")

    def task_overrides(self, limit: int) -> list[str]:
        extra = [f"task.max_new_tokens={self.new_tokens}"] if self.new_tokens else []
        return ["task=hotpotqa", f"task.path={self.hotpot}", f"task.limit={limit}", *extra]


def export_templates(folder: Path) -> None:
    """Copy the packaged SmolLM2's config and tokenizer and MiniLM's folder without weights to `folder`."""
    from pcbench.core.local_models import resolve

    smollm2, minilm = Path(resolve("smollm2")), Path(resolve("minilm"))
    (folder / "smollm2").mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (smollm2 / name).exists():
            shutil.copy2(smollm2 / name, folder / "smollm2" / name)
    shutil.copytree(minilm, folder / "minilm", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "README.md", "data_config.json"))
    print(f"templates written to {folder}")


def random_models(templates: Path, out: Path, device: str, reader_layers: int) -> tuple[str, str, str]:
    """(scorer, embedder, reader) folders with random weights in the templates' architectures."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, Qwen2Config

    def save_causal(config: Any, folder: Path, dtype: Any) -> str:
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        model.save_pretrained(folder)
        for name in TOKENIZER_FILES:  # the model's own config.json was just saved: keep it
            if name != "config.json" and (templates / "smollm2" / name).exists():
                shutil.copy2(templates / "smollm2" / name, folder / name)
        del model
        return str(folder)

    base = AutoConfig.from_pretrained(templates / "smollm2")
    scorer = save_causal(base, out / "smollm2-random", torch.float32)
    shape = {**QWEN_1_5B, "num_hidden_layers": reader_layers}
    reader_config = Qwen2Config(vocab_size=base.vocab_size, bos_token_id=base.bos_token_id,
                                eos_token_id=base.eos_token_id, pad_token_id=base.pad_token_id, **shape)
    reader = save_causal(reader_config, out / "qwen2.5-1.5b-shape-random", torch.bfloat16)
    embedder = out / "minilm-random"
    shutil.copytree(templates / "minilm", embedder, dirs_exist_ok=True)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(templates / "minilm")).save_pretrained(embedder)
    return scorer, str(embedder), reader


def task_of(setup: Setup, **knobs: Any) -> Any:
    """HotpotQA from `--hotpot`, or NIAH's packaged essays where the file is absent."""
    from pcbench.api import load_task

    if setup.hotpot.exists():
        return load_task("hotpotqa", path=str(setup.hotpot), limit=setup.limit, **knobs)
    return load_task("niah", limit=setup.limit, **knobs)


def requests(setup: Setup) -> list[Any]:
    """The protocol's requests, answers as long as `--new-tokens` when the weights are random."""
    task = task_of(setup, **({"max_new_tokens": setup.new_tokens} if setup.new_tokens else {}))
    return [task.request(e, e.context) for e in task.load()]


def timed_generate(reader: Any, batch: list[Any]) -> tuple[list[Any], float]:
    reader.generate(batch[:1])  # warm-up: weights, allocation, kernels
    start = time.perf_counter()
    out = reader.generate(batch)
    return out, time.perf_counter() - start


def compare_readers(rows: list[Row], setup: Setup) -> None:
    from pcbench.api import load_reader

    batch = requests(setup)
    device, model = setup.device, setup.reader
    base = load_reader("transformers", model=model, device=device, dtype="float32", max_input_tokens=4000)
    expected, base_s = timed_generate(base, batch)
    setup.add(rows, f"transformers reader, float32, {device}", f"{len(batch) / base_s:.2f} requests/s",
              f"{len(batch)} requests, {Path(model).name}, batch {base.batch_size}")
    base.close()
    half = load_reader("transformers", model=model, device=device, dtype="bfloat16", max_input_tokens=4000)
    got, half_s = timed_generate(half, batch)
    same = sum(a.text == b.text for a, b in zip(got, expected))
    setup.add(rows, f"transformers reader, bfloat16 vs float32, {device}", f"{base_s / half_s:.2f}x faster",
              f"{len(batch) / half_s:.2f} requests/s; answers equal {same}/{len(batch)}; prompt tokens equal "
              f"{sum(a.prompt_tokens == b.prompt_tokens for a, b in zip(got, expected))}/{len(batch)}")
    half.close()
    if device != "cuda":
        setup.add(rows, "vLLM reader vs transformers reader", "skipped", "needs CUDA")
        return
    try:
        import vllm  # noqa: F401
    except ImportError:
        setup.add(rows, "vLLM reader vs transformers reader", "skipped", "vllm is not installed here")
        return
    engine = load_reader("vllm", model=model, dtype="float32", max_input_tokens=4000, max_model_len=8192,
                         gpu_memory_utilization=0.5)
    got, vllm_s = timed_generate(engine, batch)
    same_tokens = sum(a.prompt_tokens == b.prompt_tokens for a, b in zip(got, expected))
    same_cut = sum(a.truncated == b.truncated for a, b in zip(got, expected))
    setup.add(rows, "vLLM reader vs transformers reader (float32)", f"{base_s / vllm_s:.2f}x faster",
              f"prompt tokens equal {same_tokens}/{len(batch)} (must be all), truncation equal "
              f"{same_cut}/{len(batch)} (must be all), answers equal "
              f"{sum(a.text == b.text for a, b in zip(got, expected))}/{len(batch)}")
    engine.close()


def compare_compressors(rows: list[Row], setup: Setup) -> None:
    from pcbench.api import load_compressor
    from pcbench.compressors.base import Env
    from pcbench.core.tokenizer import load_tokenizer

    examples = list(task_of(setup).load())
    tokenizer = load_tokenizer(setup.scorer)
    device = setup.device

    def timed(compressor: Any, batched: bool) -> tuple[list[str], float]:
        start = time.perf_counter()
        if batched:
            texts = [r.text for r in compressor.compress_batch(examples, Env(tokenizer))]
        else:
            texts = [compressor.compress(e, Env(tokenizer)).text for e in examples]
        return texts, time.perf_counter() - start

    for family in LM_FAMILIES:
        compressor = load_compressor(family, rate=0.25, device=device, model=setup.scorer)
        compressor.compress_batch(examples[:2], Env(tokenizer))  # warm-up: model load, allocation
        alone, alone_s = timed(compressor, batched=False)
        together, together_s = timed(compressor, batched=True)
        same = sum(a == b for a, b in zip(alone, together))
        setup.add(rows, f"{family}: batch of {len(examples)} vs one by one, {device}",
                  f"{alone_s / together_s:.2f}x faster",
                  f"{len(examples) / alone_s:.2f} -> {len(examples) / together_s:.2f} examples/s; "
                  f"same kept text {same}/{len(examples)} (must be all)")
    if device == "cpu":
        return
    for family in (*LM_FAMILIES, "embedding"):
        model = setup.embedder if family == "embedding" else setup.scorer
        seconds, texts = {}, {}
        for where in ("cpu", device):
            compressor = load_compressor(family, rate=0.25, device=where, model=model)
            compressor.compress_batch(examples[:2], Env(tokenizer))  # warm-up
            texts[where], seconds[where] = timed(compressor, batched=True)
        same = sum(a == b for a, b in zip(texts["cpu"], texts[device]))
        setup.add(rows, f"{family}: {len(examples)} examples batched, {device} vs cpu",
                  f"{seconds['cpu'] / seconds[device]:.2f}x faster",
                  f"{len(examples) / seconds['cpu']:.2f} -> {len(examples) / seconds[device]:.2f} examples/s; "
                  f"same kept text {same}/{len(examples)}")


def break_even(rows: list[Row], setup: Setup) -> None:
    import break_even as table  # beside this file

    if not setup.hotpot.exists():
        setup.add(rows, "break-even", "skipped", f"{setup.hotpot} is absent")
        return
    scratch = Path(tempfile.mkdtemp(prefix="pcbench-gpu-break-even-"))
    model, device = setup.reader, setup.device
    try:
        if not Path(model).exists():  # a hub id: can it load here?
            from pcbench.api import load_reader
            from pcbench.core.requests import Request

            load_reader("transformers", model=model, device=device).generate([Request("Hello", 1)])
    except Exception as exc:  # the hub unreachable, or the model too big: say which reader ran instead
        setup.add(rows, "break-even reader", "smollm2", f"{model} could not load ({type(exc).__name__}: {exc})"[:200])
        model = "smollm2"
    limit = min(setup.limit, table.LIMIT)  # as many examples as the CPU table
    task = [*setup.task_overrides(limit), "reader=transformers", f"reader.model={model}", "reader.batch_size=1",
            f"reader.device={device}", f"reader.dtype={setup.reader_dtype}"]
    cell([*task, "compressor=none", "task.limit=1"], scratch / "warm", scratch / "warm")
    _, metrics = cell([*task, "compressor=none"], scratch / "none", scratch / "none")
    full = table.per_example(metrics)
    where = f"{Path(model).name}, {setup.reader_dtype}, {device}"
    for number, family in enumerate(table.FAMILIES):
        extra = [f"compressor={family}"]
        if family != "bm25":
            scorer = setup.embedder if family == "embedding" else setup.scorer
            extra += [f"compressor.device={device}", f"compressor.model={scorer}"]
        measured: table.Measured = {}
        try:
            cell([*task, *extra, "compressor.rate=0.3", "task.limit=1"], scratch / f"{family}-warm",
                 scratch / f"{family}-warm")
            for rate in table.RATES:
                name = f"{family}-{rate}"
                _, metrics = cell([*task, *extra, f"compressor.rate={rate}"], scratch / name, scratch / name)
                measured[(family, rate)] = table.per_example(metrics)
        except Exception as exc:  # one family failing must not cost the others' rows
            setup.add(rows, f"break-even: {family}", "failed", f"{type(exc).__name__}: {exc}"[:160])
            continue
        # Each family's rows as soon as they are measured; the full read's row once, first.
        for name, value, note in table.rows_of(full, measured, limit, where)[0 if number == 0 else 1:]:
            setup.add(rows, name, value, note)


def memory(rows: list[Row], setup: Setup) -> None:
    from pcbench.api import compress, load_reader
    from pcbench.core.memory import largest_batch

    if not setup.hotpot.exists():
        setup.add(rows, "memory", "skipped", f"{setup.hotpot} is absent")
        return
    task = task_of(setup, **({"max_new_tokens": setup.new_tokens} if setup.new_tokens else {}))
    examples = task.load()
    longest = max(examples, key=lambda e: len(e.context))
    compressed = compress("bm25", longest.context, longest.question, tokenizer=setup.reader).text
    reader = load_reader("transformers", model=setup.reader, device=setup.device, dtype=setup.reader_dtype,
                         batch_size=1)
    limit = 512 if setup.device == "cuda" else 4  # on the CPU only the code is checked
    for name, context in (("full", longest.context), ("bm25 rate 0.5", compressed)):
        request = task.request(longest, context)

        def attempt(n: int, request: Any = request) -> None:
            reader.batch_size = n
            reader.generate([request] * n)

        largest, capped = largest_batch(attempt, limit)
        tokens = len(reader.prompt(request).ids)
        setup.add(rows, f"largest batch, {name}", f"{'>=' if capped else ''}{largest}",
                  f"{tokens}-token prompt, {Path(setup.reader).name} {setup.reader_dtype} on {setup.device}")
    reader.close()
    scratch = Path(tempfile.mkdtemp(prefix="pcbench-gpu-memory-"))
    press = [*setup.task_overrides(setup.limit), "compressor=none", "reader=kvpress", f"reader.model={setup.reader}",
             f"reader.device={setup.device}", f"reader.dtype={setup.reader_dtype}", "reader.press=snapkv",
             "reader.compression_ratio=0.5"]
    _, metrics = cell(press, scratch / "cache", scratch / "snapkv")
    kv = metrics["kv_memory"] or {}
    setup.add(rows, "snapkv 0.5: cache left / unpressed cache", f"{kv.get('cache_ratio') or 0:.3f}",
              f"{kv.get('cache_mib_mean') or 0:.1f} of {kv.get('full_cache_mib_mean') or 0:.1f} MiB per prompt")
    setup.add(rows, "snapkv 0.5: prefill peak rise", f"{kv.get('prefill_peak_mib_max') or 0:.1f} MiB max",
              f"mean {kv.get('prefill_peak_mib_mean') or 0:.1f} MiB; the cache left is what decoding holds")
    for stage, energy in metrics["energy"].items():
        value = f"{energy['joules']:.1f} J" if energy["joules"] is not None else "none"
        setup.add(rows, f"snapkv 0.5 cell: {stage} energy", value, energy["why_none"] or "NVML, this process's GPU")


def serving(rows: list[Row], setup: Setup) -> None:
    import importlib.util

    from pcbench.apps import serving as card

    if importlib.util.find_spec("vllm") is None:
        setup.add(rows, "serving card", "skipped", "vLLM is not installed (pip install vllm)")
        return
    scratch = Path(tempfile.mkdtemp(prefix="pcbench-gpu-serving-"))
    task = [*setup.task_overrides(max(setup.limit, 16)), "reader=none"]
    cell([*task, "compressor=none"], scratch / "cache", scratch / "cells" / "none")
    cell([*task, "compressor=bm25", "compressor.rate=0.5"], scratch / "cache", scratch / "cells" / "bm25")
    cell([*task, "compressor=longllmlingua", "compressor.rate=0.5", f"compressor.device={setup.device}",
          f"compressor.model={setup.scorer}"], scratch / "cache", scratch / "cells" / "longllmlingua")
    args = card.parse_args([str(scratch / "cells"), "--out", str(scratch / "card"), "--start", "vllm",
                            "--start-model", "smollm2", "--start-dtype", "bfloat16", "--concurrency", "1,2,4,8,16,32",
                            "--warmup", "2"])
    result = card.run(args)
    for figures in result["levels"]:
        setup.add(rows, f"serving {figures['cell']} @ {figures['concurrency']}",
                  f"{figures['e2e_p50_s'] or 0:.3f} s p50", f"TTFT p50 {figures['ttft_p50_s'] or 0:.3f} s, "
                  f"{figures['requests_per_s'] or 0:.2f} req/s, {figures['errors']} errors")
    for comparison in result["comparisons"]:
        if "window" in comparison:
            setup.add(rows, f"serving window {comparison['method']}", str(comparison["pays_at_concurrency"]),
                      f"latency pays at these concurrencies; card in {scratch / 'card'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: check the script's code on a machine without a GPU (not GPU figures)")
    parser.add_argument("--limit", type=int, default=8, help="HotpotQA examples")
    parser.add_argument("--hotpot", type=Path, default=HOTPOT, help="a HotpotQA file in the official schema")
    parser.add_argument("--reader", default=READER, help="the break-even reader (hub id or folder)")
    parser.add_argument("--reader-dtype", default=None, help="the reader's dtype (default bfloat16 on cuda, "
                        "float32 on cpu)")
    parser.add_argument("--random-weights", type=Path, metavar="DIR",
                        help="random weights in the real architectures, from the templates in DIR")
    parser.add_argument("--reader-layers", type=int, default=QWEN_1_5B["num_hidden_layers"],
                        help="layers of the random-weight reader (fewer: a quicker code check)")
    parser.add_argument("--new-tokens", type=int, default=20, help="answer length when weights are random")
    parser.add_argument("--export-templates", type=Path, metavar="DIR",
                        help="write the packaged models' configs and tokenizers to DIR, and exit")
    parser.add_argument("--rows", type=Path, help="also append each row to this file as it comes")
    parser.add_argument("--part", action="append",
                        choices=("readers", "compressors", "break-even", "memory", "serving"),
                        help="one part (repeatable; default all)")
    args = parser.parse_args()
    if args.export_templates:
        export_templates(args.export_templates)
        return
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU here (torch.cuda.is_available() is False); "
              "`--device cpu` checks the script's code on the CPU", file=sys.stderr)
        sys.exit(2)
    setup = Setup(args.device, args.limit, args.hotpot, "smollm2", "minilm", args.reader,
                  args.reader_dtype or ("bfloat16" if args.device == "cuda" else "float32"), None, args.rows)
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    print(f"pcbench gpu-check on {where}; torch {torch.__version__}", flush=True)
    if args.random_weights:
        start = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix="pcbench-gpu-models-"))
        setup.scorer, setup.embedder, setup.reader = random_models(args.random_weights, scratch, args.device,
                                                                   args.reader_layers)
        setup.new_tokens = args.new_tokens
        print(f"random-weight models built in {time.perf_counter() - start:.0f} s; answers run to "
              f"{args.new_tokens} tokens", flush=True)
    rows: list[Row] = []
    parts = {"readers": compare_readers, "compressors": compare_compressors, "break-even": break_even,
             "memory": memory, "serving": serving}
    for part in args.part or list(parts):
        start = time.perf_counter()
        try:
            parts[part](rows, setup)
        except Exception as exc:  # one part failing must not cost the others' figures
            setup.add(rows, f"{part}: failed", type(exc).__name__, str(exc).splitlines()[0][:160] if str(exc) else "")
        print(f"[{part}: {time.perf_counter() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
