"""kvpress's own pipeline on given items: the reference side of benchmarks/kvpress_agreement.py.

Runs in the environment `make kvpress-ref-env` builds (.make/kvpress-ref: the transformers kvpress
0.5.5 declares, <5.3, on top of the project's packages), as kvpress's evaluation/evaluate.py runs a
press: the `kv-press-text-generation` pipeline, greedy, `max_new_tokens` per item; the budget set as
its `_setup_press` sets it (compression_ratio on the press); query-aware, the question is appended to
the context and the question left empty; Finch gets its delimiter token through
`update_model_and_tokenizer`, appended to the context before the question.

Reads a JSON job on stdin ({"model", "press", "ratio", "query_aware", "items": [{"context",
"question", "max_new_tokens"}]}) and writes the answers as a JSON list on stdout.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import kvpress
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from pcbench.readers.kvpress_reader import PRESSES  # the registry's entries, transcribed and tested

    job = json.load(sys.stdin)
    press = PRESSES[job["press"]](kvpress)
    if press is not None and hasattr(press, "compression_ratio"):
        press.compression_ratio = job["ratio"]
    kwargs = {"attn_implementation": "eager"} if isinstance(press, kvpress.ObservedAttentionPress) else {}
    model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32, **kwargs).eval()
    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    pipe = pipeline("kv-press-text-generation", model=model, tokenizer=tokenizer, device="cpu")
    answers = []
    for item in job["items"]:
        context, question = item["context"], item["question"]
        if isinstance(press, kvpress.FinchPress):
            press.update_model_and_tokenizer(pipe.model, pipe.tokenizer)
            context += press.delimiter_token
        if job["query_aware"]:
            context, question = context + question, ""
        with torch.inference_mode():
            out = pipe(context, question=question, press=press, max_new_tokens=item["max_new_tokens"])
        answers.append(out["answer"])
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
