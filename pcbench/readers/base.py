"""The reader interface: one batched `generate` over requests, under the shared prompt protocol.

The protocol itself (middle truncation, chat template or raw text, greedy decoding, stop ids)
lives in the model layer (pcbench/models/protocol.py), where compressors that generate use it
too. This base does what every backend shares: the tokenizer named by a knob, loaded once and
lazily; the cache key from the knobs; the opening of every `generate` (nothing to do, or the
prompts built and the cut ones counted). A backend writes `run(prompts)`.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, ClassVar

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import CHANGE_NOTHING, Device
from pcbench.core.requests import Generation, Request
from pcbench.core.tokenizer import HFTokenizer, Tokenizer, load_tokenizer
from pcbench.models.pool import cannot_load
from pcbench.models.protocol import Prompt, build_prompt, has_chat_template, newline_id, stop_ids

log = logging.getLogger(__name__)

__all__ = ["Prompt", "Reader", "newline_id", "reader_tokenizer"]


class Reader(ABC):
    """A backend that answers requests. Subclasses are dataclasses whose fields are their knobs.

    Every reader has `device` (where its model runs: the runner and the model pool free the other
    role's models on that accelerator first) and `batch_size` (how many cache misses the runner
    hands `generate` at once; records and cache entries are written after each call; a backend
    that schedules a whole cell best by itself, vLLM, sets it to ALL). Each is a knob or a class
    constant of the backend; they are declared here without values, since a dataclass reader would
    inherit a value here as its knob's default.
    """

    device: Device
    batch_size: int
    max_input_tokens: int

    generates: ClassVar[bool] = True
    # True: the reader reads the context's documents and the question apart (Request.documents,
    # Request.question), not the task's prompt; the runner fills them in.
    reads_documents: ClassVar[bool] = False
    ALL: ClassVar[int] = 1 << 62
    NAME: ClassVar[str]  # the reader's name in its cache key and records
    # Bump when a change changes outputs for the same knobs, so cached generations expire.
    PROTOCOL: ClassVar[str | None] = None
    TOKENIZER_KNOB: ClassVar[str] = "model"  # the knob that names the tokenizer (a hub id, folder or alias)
    # Knobs that change speed or capacity, never an answer: kept out of the cache key.
    NOT_IN_KEY: ClassVar[frozenset[str]] = CHANGE_NOTHING

    # -- what every backend shares --------------------------------------------------------------

    @property
    def tokenizer(self) -> HFTokenizer:
        """The tokenizer the knob names. Cheap (no weights): compressors count tokens with it even
        when every generation is cached."""
        loaded = self.__dict__.get("_tokenizer")
        if loaded is None:
            knob = self.TOKENIZER_KNOB
            loaded = reader_tokenizer(f"reader.{knob}", str(getattr(self, knob)), getattr(self, "revision", None),
                                      bool(getattr(self, "trust_remote_code", False)))
            self.__dict__["_tokenizer"] = loaded
        return loaded

    def settings(self) -> dict[str, Any]:
        """Everything that changes an output: the cache key. The knobs less NOT_IN_KEY, and the protocol.

        Out by default: batch_size and device, which only move numerics at rounding level (padding
        changes the matmul shapes; CPU and GPU kernels round differently), the same order as
        run-to-run nondeterminism on GPU; keying on them would split one condition across caches.
        trust_remote_code only decides whether a model can load at all.
        """
        knobs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                 if f.name not in self.NOT_IN_KEY}
        protocol = {"protocol": self.PROTOCOL} if self.PROTOCOL else {}
        return {"reader": self.NAME, **knobs, **protocol}

    def generate(self, requests: list[Request]) -> list[Generation]:
        """One Generation per request, in order."""
        if not requests:
            return []
        return self.run(requests, self.prompts(requests))

    @abstractmethod
    def run(self, requests: list[Request], prompts: list[Prompt]) -> list[Generation]:
        """Generate for `prompts` (the protocol's, one per request)."""

    def close(self) -> None:  # noqa: B027 - a hook: models belong to the pool, most readers keep nothing
        pass

    def request_key(self, request: Request) -> dict[str, Any]:
        """The part of a request that can change this reader's answer: its generation cache key.

        `context_end` is left out, since only a query-agnostic KV press reads it; that keeps every
        other reader's keys exactly what they were before the field existed.
        """
        key = request.key()
        key.pop("context_end", None)
        return key

    # -- the shared prompt protocol ------------------------------------------------------------

    def prompts(self, requests: list[Request]) -> list[Prompt]:
        """`prompt` for each request, with one warning for all the prompts that were cut."""
        built = [self.prompt(r) for r in requests]
        cut = sum(p.truncated for p in built)
        if cut:
            log.warning("%d of %d prompts exceed max_input_tokens=%d and were cut from the middle",
                        cut, len(requests), self.max_input_tokens)
        return built

    def prompt(self, request: Request) -> Prompt:
        """`request` under the protocol. The last few hundred are remembered, so the runner's look at
        what a cut prompt kept (its diagnostics) reuses the one the backend read, never a rebuild."""
        built: OrderedDict[Request, Prompt] = self.__dict__.setdefault("_built", OrderedDict())
        prompt = built.get(request)
        if prompt is not None:
            return prompt
        hf = self._hf()
        if request.chat and not has_chat_template(hf) and not self.__dict__.get("_warned_no_template"):
            log.warning("%s has no chat template: chat requests get the raw prompt", self.tokenizer.name)
            self.__dict__["_warned_no_template"] = True
        prompt = built[request] = build_prompt(hf, request, self.max_input_tokens)
        if len(built) > 256:
            built.popitem(last=False)
        return prompt

    def stop_ids(self, stop_at_newline: bool, model_eos: Any = None) -> list[int]:
        """The protocol's stop ids for this reader's tokenizer (models/protocol.py)."""
        return stop_ids(self._hf(), stop_at_newline, model_eos)

    def _hf(self) -> Any:
        tokenizer: Tokenizer = self.tokenizer
        if not isinstance(tokenizer, HFTokenizer):
            raise PcbenchError(f"{type(self).__name__} builds prompts with a Hugging Face tokenizer, got "
                               f"{type(tokenizer).__name__}")
        return tokenizer.hf


def reader_tokenizer(key: str, name: str, revision: str | None = None,
                     trust_remote_code: bool = False) -> HFTokenizer:
    """The tokenizer `name` names, or one PcbenchError line naming `key` (a config knob)."""
    try:
        tokenizer = load_tokenizer(name, revision, trust_remote_code)
    except PcbenchError:
        raise
    except (OSError, ValueError, ImportError) as exc:  # what from_pretrained raises for bad names
        raise cannot_load(key, name, exc) from None
    # A folder without a vocabulary loads, then counts every word as one unknown token: budgets in
    # [UNK]s. A real tokenizer knows some of a plain English sentence.
    probe = "The quick brown fox jumps over the lazy dog."
    ids, unknown = tokenizer.encode(probe), getattr(tokenizer.hf, "unk_token_id", None)
    if not ids or (unknown is not None and all(i == unknown for i in ids)):
        raise PcbenchError(f"{key}={name!r} has no vocabulary: it reads {probe!r} as {len(ids)} unknown tokens; "
                           "give a tokenizer folder with its vocabulary (tokenizer.json, or vocab files)")
    return tokenizer
