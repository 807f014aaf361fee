"""An encoder-decoder (T5, BART) in the model layer: batched greedy generation from plain inputs.

RECOMP's abstractive compressors are T5 models that read "Question: ... Document: ..." and write a
summary; a compressor builds the input text, this runs it. Loaded once per process through the pool.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pcbench.models.pool import Models, ModelSpec, torch_dtype


@dataclass(frozen=True)
class Written:
    """One output: its text, how many tokens the input had (after truncation) and the model wrote."""

    text: str
    input_tokens: int
    new_tokens: int
    truncated: bool
    seconds: float


class Seq2SeqLM:
    def __init__(self, model: Any, tokenizer: Any, device: str, name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.name = name

    def generate(self, inputs: Sequence[str], max_new_tokens: int, batch_size: int,
                 max_input_tokens: int) -> list[Written]:
        """Greedy outputs for `inputs`, in order; an input longer than `max_input_tokens` keeps its head
        (the encoder's usual truncation, as RECOMP's scripts do)."""
        import torch

        out: list[Written | None] = [None] * len(inputs)
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        for start in range(0, len(order), max(1, batch_size)):
            batch = order[start:start + batch_size]
            texts = [inputs[i] for i in batch]
            full = [len(ids) for ids in self.tokenizer(texts)["input_ids"]]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=max_input_tokens).to(self.device)
            started = time.perf_counter()
            with torch.inference_mode():
                ids = self.model.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
            seconds = (time.perf_counter() - started) / len(batch)
            eos = self.model.generation_config.eos_token_id
            stops = set(eos if isinstance(eos, list) else [eos])
            for row, i, n in zip(ids.tolist(), batch, full):
                # The decoder's start token, then the output up to its EOS; a row that ended early is
                # padded after it.
                new = row[1:]
                new = new[:next((k + 1 for k, t in enumerate(new) if t in stops), len(new))]
                used = min(n, max_input_tokens)
                out[i] = Written(self.tokenizer.decode(new, skip_special_tokens=True).strip(), used, len(new),
                                 n > max_input_tokens, seconds)
        return [w for w in out if w is not None]


def seq2seq_lm(models: Models, spec: ModelSpec) -> Seq2SeqLM:
    return models.get(spec, load_seq2seq_lm)


def load_seq2seq_lm(path: str, spec: ModelSpec, device: str) -> Seq2SeqLM:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    model = AutoModelForSeq2SeqLM.from_pretrained(path, revision=spec.revision, dtype=torch_dtype(spec.dtype),
                                                  trust_remote_code=spec.trust_remote_code)
    model.to(device).eval()
    return Seq2SeqLM(model, tokenizer, device, spec.name)
