"""Soft context in the model layer: a decoder that reads each document as a few embeddings in place
of its tokens. PISCO (Louis, Formal, Déjean and Clinchant, 2025; naver/pisco-mistral and its
siblings), as naver's COCOM modeling code (the file its hub checkpoints ship) runs it:

- the checkpoint: `config.json` (model type COCOM: the base decoder's id, `doc_max_length`,
  `compr_rate`, LoRA rank, memory-token settings), `adapters.pth` (two LoRA adapters of that decoder,
  `encoder_adapter` and `decoder_adapter`, as transformers' `get_adapter_state_dict` writes them) and
  `decoder_first_last_layers.pth` (the embedding and output rows, grown by the added tokens);
- compression: each document is read by the decoder under the encoder adapter as
  "<ENC>" + bos + text + eos (padded on the left and truncated to `doc_max_length` + 3 tokens),
  followed by `doc_max_length // compr_rate` memory tokens; the last hidden states at the memory
  tokens are the document's embeddings;
- reading: PISCO's prompt ("Background:" then each document's memory tokens and <SEP>, then
  "Question:" and the question, under the chat template with its system turn) is embedded, the
  memory tokens' rows are replaced by the documents' embeddings, and the decoder under the decoder
  adapter generates greedily.

The adapters are applied with peft (the library the COCOM code uses); no code of the checkpoint runs.
OSCAR's separate compressor network (`compr_model_name` set) is not read here: one line says so.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcbench.core.errors import PcbenchError
from pcbench.core.requests import Generation
from pcbench.models.pool import ModelSpec, torch_dtype

SYSTEM = ("You are a helpful assistant. Your task is to extract relevant information from provided documents and "
          "to answer to questions as briefly as possible.")
ADAPTERS = ("encoder_adapter", "decoder_adapter")


@dataclass(frozen=True)
class MemorySettings:
    """What a COCOM/PISCO config fixes about the memory."""

    decoder: str  # the base decoder's id or folder
    doc_max_length: int
    compr_rate: int
    lora_r: int
    sep: bool
    different_mem_tokens: bool
    kbtc_training: bool

    @property
    def memory_tokens(self) -> int:
        return self.doc_max_length // self.compr_rate


def read_settings(path: str, spec: ModelSpec) -> MemorySettings:
    from transformers.utils import cached_file

    file = cached_file(path, "config.json", revision=spec.revision)
    if file is None:
        raise OSError(f"no config.json in {path}")
    values = json.loads(Path(file).read_text())
    if values.get("model_type") != "COCOM":
        raise PcbenchError(f"{spec.key}={spec.name!r}: config.json names model type {values.get('model_type')!r}; "
                           "a PISCO checkpoint's is 'COCOM'")
    if values.get("compr_model_name"):
        raise PcbenchError(f"{spec.key}={spec.name!r} compresses with a separate network "
                           f"({values['compr_model_name']!r}: OSCAR's layout), which pcbench does not read yet; "
                           "PISCO checkpoints compress with the decoder itself")
    if not values.get("lora") or values.get("training_form") != "both_separately":
        raise PcbenchError(f"{spec.key}={spec.name!r}: pcbench reads PISCO's layout, LoRA adapters trained "
                           "separately for compression and decoding (lora=true, training_form=both_separately)")
    return MemorySettings(str(values["decoder_model_name"]), int(values.get("doc_max_length", 128)),
                          int(values.get("compr_rate", 16)), int(values.get("lora_r", 16)),
                          bool(values.get("sep", False)), bool(values.get("different_mem_tokens", False)),
                          bool(values.get("kbtc_training", False)))


def memory_tokenizer(base: str, settings: MemorySettings, revision: str | None = None) -> Any:
    """The decoder's tokenizer with COCOM's added tokens (create_decoder_tokenizer)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base, revision=revision, use_fast=True, padding_side="left")
    n = settings.memory_tokens
    if settings.different_mem_tokens:
        mem = [f"<MEM{i}>" for i in range(n)]
        tokenizer.add_special_tokens({"additional_special_tokens": [*mem, "<AE>", "<ENC>", "<SEP>"]})
    else:
        tokenizer.add_special_tokens({"additional_special_tokens": ["<MEM>", "<AE>", "<ENC>", "<SEP>"]})
        mem = ["<MEM>"] * n
    if settings.kbtc_training:
        tokenizer.add_special_tokens({"additional_special_tokens": ["<KBTC>"]})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = tokenizer.bos_token_id
    tokenizer.mem_tokens = mem
    tokenizer.mem_token_ids = [tokenizer.convert_tokens_to_ids(t) for t in mem]
    return tokenizer


class MemoryDecoder:
    """A loaded PISCO checkpoint: the decoder with its two adapters, and its tokenizer."""

    def __init__(self, decoder: Any, tokenizer: Any, settings: MemorySettings, device: str) -> None:
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.settings = settings
        self.device = device

    def count(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []

    def compress(self, documents: list[str], batch_size: int) -> Any:
        """(n, memory tokens, hidden): each document's embeddings (COCOM's compr_decoder)."""
        import torch

        tokenizer, n_mem = self.tokenizer, self.settings.memory_tokens
        texts = ["<ENC>" + (tokenizer.bos_token or "") + text + tokenizer.eos_token for text in documents]
        out = []
        self.decoder.set_adapter("encoder_adapter")
        for start in range(0, len(texts), max(1, batch_size)):
            enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding="max_length",
                            max_length=self.settings.doc_max_length + 3, truncation=True, add_special_tokens=False)
            memory = torch.tensor([tokenizer.mem_token_ids] * enc["input_ids"].size(0))
            ids = torch.cat([enc["input_ids"], memory], dim=1).to(self.device)
            mask = torch.cat([enc["attention_mask"], torch.ones_like(memory)], dim=1).to(self.device)
            with torch.inference_mode():
                hidden = self.decoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
            where = torch.isin(ids, torch.tensor(tokenizer.mem_token_ids, device=ids.device))
            out.append(hidden[where].reshape(hidden.size(0), n_mem, hidden.size(-1)))
        return torch.cat(out, dim=0)

    def prompt(self, question: str, documents: int) -> str:
        """PISCO's prompt (blend_prompt_and_memory_tokens): each document's memory tokens and <SEP>."""
        from jinja2.exceptions import TemplateError

        slots = ("".join(self.tokenizer.mem_tokens) + "<SEP>") * documents
        user = f"Background:\n{slots}\n\nQuestion:{question}".replace(":\\ ", ": ")
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        try:
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        except TemplateError as exc:  # a template without a system turn (Gemma): one user turn, as COCOM does
            if "System role not supported" not in str(exc):
                raise
            merged = [{"role": "user", "content": SYSTEM + "\n" + user}]
            return str(self.tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True))

    def generate(self, questions: list[str], memories: list[Any], max_new_tokens: int) -> list[Generation]:
        """Greedy answers, each from its question and its documents' embeddings ((k, memory, hidden),
        the same k across the call, as COCOM batches)."""
        import torch

        k = memories[0].size(0)
        tokenizer, n_mem = self.tokenizer, self.settings.memory_tokens
        prompts = [self.prompt(q, k) for q in questions]
        enc = tokenizer(prompts, return_tensors="pt", padding="longest", add_special_tokens=False, truncation=True,
                        max_length=2048)
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        with torch.inference_mode():
            embeds = self.decoder.get_input_embeddings()(ids)
            first = torch.argmax((ids == tokenizer.mem_token_ids[0]).int(), dim=1)
            slot = n_mem + 1 if self.settings.sep else n_mem  # COCOM's slot length, as its config says
            for row, memory in enumerate(memories):
                for j in range(k):
                    at = int(first[row]) + j * slot
                    embeds[row, at:at + n_mem] = memory[j].to(embeds.dtype)
            self.decoder.set_adapter("decoder_adapter")
            started = time.perf_counter()
            output = self.decoder.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=False, top_p=None,
                                           max_new_tokens=max_new_tokens)
            seconds = (time.perf_counter() - started) / len(questions)
        texts = tokenizer.batch_decode(output, skip_special_tokens=True)
        eos = tokenizer.eos_token_id
        return [Generation(text, int(mask[r].sum()), next((i + 1 for i, t in enumerate(output[r].tolist()) if t == eos),
                                                          len(output[r])), False, None, seconds)
                for r, text in enumerate(texts)]


def load_memory_decoder(path: str, spec: ModelSpec, device: str) -> MemoryDecoder:
    """A PISCO checkpoint natively: its base decoder (from the config, or `decoder` in the spec's
    options for a local copy), its grown embedding rows and its two adapters (COCOM.from_pretrained)."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from transformers.utils import cached_file
    from transformers.utils import logging as transformers_logging

    from pcbench.core.local_models import resolve

    settings = read_settings(path, spec)
    options = dict(spec.options)
    base = resolve(str(options.get("decoder") or settings.decoder))
    tokenizer = memory_tokenizer(base, settings)
    dtype = torch_dtype(spec.dtype)
    decoder: Any = AutoModelForCausalLM.from_pretrained(base, dtype=dtype if dtype != "auto" else "auto")
    decoder.resize_token_embeddings(len(tokenizer))
    decoder.generation_config.top_p = None  # as COCOM's __init__ sets them
    decoder.generation_config.temperature = None
    decoder.generation_config.pad_token_id = tokenizer.pad_token_id
    layers = cached_file(path, "decoder_first_last_layers.pth", revision=spec.revision,
                         _raise_exceptions_for_missing_entries=False)
    if layers is not None:
        decoder.load_state_dict(torch.load(layers, map_location="cpu", weights_only=True), strict=False)
    adapters_file = cached_file(path, "adapters.pth", revision=spec.revision,
                                _raise_exceptions_for_missing_entries=False)
    if adapters_file is None:
        raise PcbenchError(f"{spec.key}={spec.name!r}: no adapters.pth (PISCO's two LoRA adapters)")
    adapters = torch.load(adapters_file, map_location="cpu", weights_only=True)
    missing = [name for name in ADAPTERS if name not in adapters]
    if missing:
        raise PcbenchError(f"{spec.key}={spec.name!r}: adapters.pth holds {sorted(adapters)}, not {missing[0]}")
    config = LoraConfig(task_type="CAUSAL_LM", r=settings.lora_r, lora_alpha=2 * settings.lora_r,
                        target_modules="all-linear", lora_dropout=0.1)
    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # loading the second adapter lists the first's weights as "missing"
    try:
        for name in ADAPTERS:
            decoder.load_adapter(peft_config=config, adapter_name=name, adapter_state_dict=adapters[name])
    finally:
        transformers_logging.set_verbosity(level)
    return MemoryDecoder(decoder.to(device).eval(), tokenizer, settings, device)
