"""Soft compression as a reader: PISCO (Louis et al. 2025, naver/pisco-mistral) reads each document
as `doc_max_length // compr_rate` embeddings (8 for 128 tokens at its rate 16) in place of its tokens.

The documents are the compressed context's passages (any text compressor may run first); the
question goes in apart, under PISCO's own prompt (its training prompt, as BERGEN's LLMCocom and the
checkpoint's generate_from_text use it), not the task's; the task scores the answer as usual.
`documents: chunks` cuts each passage into pieces of at most `doc_max_length` decoder tokens at
sentence ends first, so a long context is compressed whole rather than cut at 128 tokens per
passage (PISCO's own behaviour, `documents: passages`, truncates).

On the kept axis a soft reader stands where a KV press does: `kv_kept_ratio` is the share of the
context's entries the decoder attends to, here memory embeddings over the documents' tokens (in the
decoder's tokenizer), so a text compressor before it multiplies in as with a press
(docs/readers.md). The model and its steps: models/soft.py.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import Range
from pcbench.core.requests import Generation, Request
from pcbench.core.text import split_sentences
from pcbench.core.tokenizer import HFTokenizer
from pcbench.models.pool import MODELS, ModelKnobs, ModelSpec, cannot_load
from pcbench.models.soft import MemoryDecoder, load_memory_decoder, memory_tokenizer, read_settings
from pcbench.readers.base import Prompt, Reader


@dataclass
class PiscoReader(Reader, ModelKnobs):
    """PISCO (Louis et al. 2025): documents compressed into a few embeddings each by the decoder
    itself (its encoder adapter), then read by it (its decoder adapter) in place of their tokens.

    Knobs: `decoder_model` (a local copy of the base decoder the checkpoint names), `documents`
    (passages as given, or chunks that fit `doc_max_length`), `batch_size`, the model block.
    """

    decoder_model: str | None  # the base decoder; null: the id in the checkpoint's config
    documents: Literal["passages", "chunks"]
    batch_size: Annotated[int, Range(1)]
    dtype: Literal["float32", "bfloat16", "float16"]

    MODEL_KEY: ClassVar[str] = "reader.model"
    NAME: ClassVar[str] = "pisco"
    PROTOCOL: ClassVar[str | None] = "pisco-cocom/greedy/v1"
    reads_documents: ClassVar[bool] = True
    max_input_tokens = 2048  # PISCO's prompt is truncated there (a constant, not a knob)

    def spec(self) -> ModelSpec:
        return self.model_spec(options=(("decoder", self.decoder_model),) if self.decoder_model else ())

    def memory(self) -> MemoryDecoder:
        loaded: MemoryDecoder = MODELS.get(self.spec(), load_memory_decoder)
        return loaded

    @property
    def tokenizer(self) -> HFTokenizer:
        """The base decoder's tokenizer with PISCO's added tokens (no weights): what budgets count in."""
        loaded = self.__dict__.get("_tokenizer")
        if loaded is None:
            from pcbench.core.local_models import resolve

            spec = self.spec()
            try:
                settings = read_settings(resolve(self.model), spec)
            except (OSError, ValueError) as exc:
                raise cannot_load(self.MODEL_KEY, self.model, exc) from None
            base = self.decoder_model or settings.decoder
            try:
                tokenizer = memory_tokenizer(resolve(base), settings)
            except (OSError, ValueError) as exc:
                raise cannot_load("reader.decoder_model", base, exc) from None
            loaded = self.__dict__["_tokenizer"] = HFTokenizer(tokenizer, self.model)
        return loaded

    def generate(self, requests: list[Request]) -> list[Generation]:
        if not requests:
            return []
        return self.run(requests, [])

    def run(self, requests: list[Request], prompts: list[Prompt]) -> list[Generation]:
        memory = self.memory()
        # A request with nothing to compress reads one empty document (no background).
        documents = [self._documents(r, memory) or [""] for r in requests]
        out: list[Generation | None] = [None] * len(requests)
        # COCOM batches questions with the same number of documents.
        groups: dict[int, list[int]] = defaultdict(list)
        for i, docs in enumerate(documents):
            groups[len(docs)].append(i)
        for k, members in groups.items():
            for start in range(0, len(members), self.batch_size):
                batch = members[start:start + self.batch_size]
                flat = [d for i in batch for d in documents[i]]
                began = time.perf_counter()
                embeddings = memory.compress(flat, self.batch_size * k)
                compress_seconds = (time.perf_counter() - began) / len(batch)
                made = memory.generate([str(requests[i].question) for i in batch],
                                       [embeddings[n * k:(n + 1) * k] for n in range(len(batch))],
                                       max(r.max_new_tokens for r in (requests[i] for i in batch)))
                # A soft reader's prefill is its compression: the documents read into embeddings.
                for i, generation in zip(batch, made):
                    read = [d for d in documents[i] if d]
                    tokens, entries = sum(memory.count(read)), memory.settings.memory_tokens * len(read)
                    generation.prefill_seconds = compress_seconds
                    generation.kv_kept_ratio = round(entries / tokens, 6) if tokens else None
                    out[i] = generation
        return [g for g in out if g is not None]

    def _documents(self, request: Request, memory: MemoryDecoder) -> list[str]:
        if request.documents is None or request.question is None:
            raise PcbenchError("reader=pisco reads the context's documents and the question apart; the runner "
                               "gives them (this request came without)")
        if self.documents == "passages":
            return list(request.documents)
        return [chunk for document in request.documents for chunk in _chunks(document, memory)]


def _chunks(text: str, memory: MemoryDecoder) -> list[str]:
    """Whole sentences packed into pieces of at most doc_max_length decoder tokens (a longer
    sentence is a piece of its own, which PISCO then truncates)."""
    limit = memory.settings.doc_max_length
    pieces, current, used = [], "", 0
    sentences = split_sentences(text)
    for sentence, n in zip(sentences, memory.count(sentences)):
        if current and used + n > limit:
            pieces.append(current)
            current, used = "", 0
        current += sentence
        used += n
    if current.strip():
        pieces.append(current)
    return [p.strip() for p in pieces if p.strip()]
