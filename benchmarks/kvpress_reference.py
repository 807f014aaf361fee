"""kvpress's own pipeline on given items: the reference side of benchmarks/kvpress_agreement.py.

Runs in the environment `make kvpress-ref-env` builds (.make/kvpress-ref: the transformers kvpress
0.5.5 declares, <5.3, on top of the project's packages), as kvpress's evaluation/evaluate.py runs a
press: the `kv-press-text-generation` pipeline, greedy, `max_new_tokens` per item; the budget set as
its `_setup_press` sets it (by the press's class: DuoAttention's head ratio, a DMS press's threshold,
ThinK's key channels alone or in a composed press, a decoding press's target size and interval, else
compression_ratio); query-aware, the question is appended to the context and the question left
empty; Finch gets its delimiter token through `update_model_and_tokenizer`, appended to the context
before the question.

Reads a JSON job on stdin ({"model", "items": [{"context", "question", "max_new_tokens"}], "runs":
[{"press", "budget": {knob: value}, "query_aware"}]}) and writes, per run, its answers (a list) or
why it failed (a string), as a JSON list on stdout. The model is loaded once (and once more with
eager attention, for observed_attention).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def setup_press(kvpress: Any, name: str, budget: dict[str, Any]) -> Any:
    """The registry's press with its budget set as evaluate.py's `_setup_press` sets it."""
    from pcbench.readers.kvpress_reader import PRESSES  # the registry's entries, transcribed and tested

    press = PRESSES[name](kvpress)
    if isinstance(press, kvpress.DuoAttentionPress):
        press.head_compression_ratio = budget["head_compression_ratio"]
    elif isinstance(press, kvpress.DMSPress):
        press.threshold = budget["threshold"]
    elif isinstance(press, kvpress.ComposedPress):
        for part in press.presses:
            if isinstance(part, kvpress.ThinKPress):
                part.key_channel_compression_ratio = budget["key_channel_compression_ratio"]
            elif hasattr(part, "compression_ratio"):
                part.compression_ratio = budget["compression_ratio"]
    elif isinstance(press, kvpress.ThinKPress):
        press.key_channel_compression_ratio = budget["key_channel_compression_ratio"]
    elif isinstance(press, kvpress.DecodingPress):
        press.compression_interval = budget.get("compression_interval") or press.compression_interval
        press.target_size = budget.get("target_size") or press.target_size
    elif hasattr(press, "compression_ratio"):
        press.compression_ratio = budget["compression_ratio"]
    return press


def main() -> None:
    import kvpress
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    job = json.load(sys.stdin)
    pipes: dict[bool, Any] = {}

    def pipe_for(eager: bool) -> Any:
        if eager not in pipes:
            kwargs = {"attn_implementation": "eager"} if eager else {}
            model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32, **kwargs).eval()
            tokenizer = AutoTokenizer.from_pretrained(job["model"])
            pipes[eager] = pipeline("kv-press-text-generation", model=model, tokenizer=tokenizer, device="cpu")
        return pipes[eager]

    results: list[list[str] | str] = []
    for run in job["runs"]:
        try:
            press = setup_press(kvpress, run["press"], run["budget"])
            finch = isinstance(press, kvpress.FinchPress)
            # Finch grows the embeddings by its delimiter: its own copy of the model, as ours has.
            pipe = pipe_for(isinstance(press, kvpress.ObservedAttentionPress)) if not finch else None
            if finch:
                model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32).eval()
                pipe = pipeline("kv-press-text-generation", model=model,
                                tokenizer=AutoTokenizer.from_pretrained(job["model"]), device="cpu")
            answers = []
            for item in job["items"]:
                context, question = item["context"], item["question"]
                if finch:
                    press.update_model_and_tokenizer(pipe.model, pipe.tokenizer)
                    context += press.delimiter_token
                if run["query_aware"]:
                    context, question = context + question, ""
                with torch.inference_mode():
                    out = pipe(context, question=question, press=press, max_new_tokens=item["max_new_tokens"])
                answers.append(out["answer"])
            results.append(answers)
        except Exception as exc:  # noqa: BLE001 - a press that fails on kvpress's side too: its reason
            results.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
