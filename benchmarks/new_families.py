"""Speed of the attention probes and the summariser (SmolLM2, CPU) on 8 HotpotQA dev examples.

- attention: seconds per example, and the ratio to one forward pass of the same model's decoder (no
  output head) over the same text (context, then the question with the answer hint), one text at a
  time: the least a probe must do;
- sentinel: the same, over Sentinel's prompt, with a probe trained here on 16 examples (speed does not
  depend on how good the probe is; it reads every layer's attention, the attention probe four);
- recomp_abstractive: not timed. RECOMP's compressors are T5 checkpoints on the hub and no T5 weights
  are on this machine offline; a random T5 generates until its length limit, which times nothing real;
- summary (rate 0.25): generated tokens per second, and the ratio of its seconds to generating the
  same number of tokens alone: the model's decode rate measured on the same prompts with an empty
  context (so the ratio is what reading the context and the batching cost on top of the output).

`run()` returns (name, value, note) rows for `make bench`; `python benchmarks/new_families.py` prints them.
"""

from __future__ import annotations

import time
from typing import Any

from lm_pruning import MemoStore  # beside this file
from reference_common import HOTPOT  # beside this file

N = 8


def run() -> list[tuple[str, str, str]]:
    if not HOTPOT.is_file():
        return [("attention, summary: speed", "skipped", f"{HOTPOT} is absent")]
    from pcbench.api import load_compressor, load_task
    from pcbench.compressors.base import Env
    from pcbench.core.requests import Request
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.pool import ModelSpec
    from pcbench.models.protocol import build_prompt

    examples = load_task("hotpotqa", path=str(HOTPOT), limit=N).load()
    env = Env(load_tokenizer("smollm2"))
    lm = env.causal_lm(ModelSpec("smollm2", None, "float32", "auto"))
    lm.surprisal([lm.encode(examples[0].context)[:256]], batch_size=1)  # warm-up
    rows: list[tuple[str, str, str]] = []

    probe = load_compressor("attention", rate=0.25, device="auto")
    texts = [e.context + f"\n\nQuestion: {e.question}\n{probe.answer_hint or ''}" for e in examples]

    body = lm.decoder if lm.decoder is not None else lm.model
    _decoder_seconds(lm, body, texts[:1])  # a first full-length pass pays one-off costs (one run: 3.7 s, not 2.3 s)
    forward = _decoder_seconds(lm, body, texts)
    start = time.perf_counter()
    probe.compress_batch(examples, Env(env.tokenizer, MemoStore()))
    probing = time.perf_counter() - start
    rows.append((f"attention: {N} HotpotQA examples at rate 0.25", f"{probing / N:.2f} s per example",
                 f"{probing / forward:.1f}x one forward pass of its decoder over the same text "
                 f"({forward / N:.2f} s per example)"))

    rows.append(_sentinel(examples, env, lm, body))
    rows.append(("recomp_abstractive: speed", "not timed", "no T5 weights offline (RECOMP's compressors are T5 "
                 "checkpoints on the hub); tested on a tiny random T5"))
    rows.append(("reader=pisco: speed", "not timed", "no PISCO checkpoint offline (naver/pisco-* are 7B decoders "
                 "with adapters on the hub); tested on a tiny random checkpoint in its layout"))

    summary = load_compressor("summary", rate=0.25, device="auto")
    start = time.perf_counter()
    out = summary.compress_batch(examples, Env(env.tokenizer, MemoStore()))
    summarising = time.perf_counter() - start
    written = sum(len(lm.encode(c.text)) for c in out)
    alone_prompts = [build_prompt(lm.tokenizer, Request(summary._prompt(e, ""), max(1, len(lm.encode(c.text)))),
                                  summary.max_input_tokens) for e, c in zip(examples, out)]
    start = time.perf_counter()
    generations: list[Any] = lm.generate(alone_prompts, summary.batch_size)
    alone = time.perf_counter() - start
    rate_alone = sum(g.new_tokens for g in generations) / alone if alone else 0.0
    rows.append((f"summary: {N} HotpotQA examples at rate 0.25", f"{written / summarising:.1f} generated tokens/s",
                 f"{summarising / (written / rate_alone) if rate_alone else float('nan'):.1f}x generating its "
                 f"{written} tokens alone (decode {rate_alone:.1f} tokens/s with an empty context); "
                 f"{summarising / N:.2f} s per example"))
    return rows


def _decoder_seconds(lm: Any, body: Any, texts: list[str]) -> float:
    """Seconds for the decoder alone over each text, one at a time: no output head, no padding."""
    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        for text in texts:
            body(input_ids=torch.tensor([[lm.bos_id, *lm.encode(text)]], device=lm.device))
    return time.perf_counter() - start


def _sentinel(examples: list[Any], env: Any, lm: Any, body: Any) -> tuple[str, str, str]:
    import contextlib
    import io
    import tempfile

    import torch

    from pcbench.api import load_compressor
    from pcbench.apps.train import main as train
    from pcbench.compressors.base import Env
    from pcbench.compressors.sentinel import PROMPT_HEAD, PROMPT_TAIL

    with tempfile.TemporaryDirectory() as folder:
        small = ["--limit", "16", "--eval-limit", "1", "--threads", str(torch.get_num_threads())]
        with contextlib.redirect_stdout(io.StringIO()):  # its training summary, not a bench row
            code = train(["--style", "sentinel", "--path", str(HOTPOT), "--out", folder, *small])
        if code != 0:
            return ("sentinel: speed", "failed", "training its probe failed")
        texts = [PROMPT_HEAD + e.context + PROMPT_TAIL.format(question=e.question) for e in examples]
        forward = _decoder_seconds(lm, body, texts)
        sentinel = load_compressor("sentinel", model=folder, rate=0.25, device="auto")
        start = time.perf_counter()
        sentinel.compress_batch(examples, Env(env.tokenizer, MemoStore()))
        probing = time.perf_counter() - start
    return (f"sentinel: {N} HotpotQA examples at rate 0.25", f"{probing / N:.2f} s per example",
            f"{probing / forward:.1f}x one forward pass of its proxy's decoder over its prompt "
            f"({forward / N:.2f} s per example); all {lm.layer_count} layers' last attention row")


def main() -> None:
    for row in run():
        print(" | ".join(row))


if __name__ == "__main__":
    main()
