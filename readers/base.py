"""The reader interface (one batched `generate` over requests) and the prompt protocol every backend shares.

The protocol follows LongBench's pred.py so that scores are comparable with published tables, and
lives here so that the transformers, vLLM, kvpress and OpenAI-compatible readers apply it
byte-for-byte the same way:

1. a prompt longer than `max_input_tokens` (in the reader's tokenizer) keeps its first and last
   `int(max_input_tokens / 2)` tokens, each half decoded back to text and the strings joined;
2. then, per request (`Request.chat`), the tokenizer's chat template wraps the cut text as one user
   turn with the generation prompt, or the raw text is used (LongBench's trec, triviaqa, samsum,
   lsht, lcc, repobench-p);
3. decoding is greedy and stops at any EOS id of the model and tokenizer, plus the newline token
   when `Request.stop_at_newline` (LongBench's samsum), which also forces at least one new token.

`Reader.prompt(request)` returns the exact text and ids the model will see (`Prompt`); backends
only differ in how they run them.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from core.errors import PcbenchError
from core.models import cannot_load
from core.requests import Generation, Request
from core.tokenizer import HFTokenizer, Tokenizer, load_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """One request after the protocol: what the model reads, exactly."""

    content: str  # the (possibly cut) task prompt: the user turn, before any template
    text: str  # what the model reads as text: `content` inside the chat template, or `content` itself
    ids: tuple[int, ...]  # `text` in the reader's tokenizer, special tokens (template, BOS) included
    chat: bool  # the chat template was applied
    truncated: bool  # the prompt was cut from the middle to fit max_input_tokens
    max_new_tokens: int
    stop_at_newline: bool


def middle_truncate(hf: Any, prompt: str, max_tokens: int) -> tuple[str, bool]:
    """LongBench pred.py's cut: keep the first and last int(max_tokens / 2) tokens, as text.

    The halves are decoded separately and the strings joined, so the re-tokenised join can differ
    from max_tokens by a token or two at the seam; LongBench accepts that and so do we.
    """
    ids = hf(prompt, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return prompt, False
    half = int(max_tokens / 2)
    return hf.decode(ids[:half], skip_special_tokens=True) + hf.decode(ids[-half:], skip_special_tokens=True), True


class Reader(ABC):
    """A backend that answers requests. Generating readers also set `max_input_tokens` (a knob)
    and a Hugging Face `tokenizer`, and build their prompts with `prompt`/`prompts` below."""

    generates: bool = True
    tokenizer: Tokenizer
    max_input_tokens: int
    # `batch_size` (a knob or a class attribute; 1 when absent) is how many cache misses the runner
    # hands `generate` at once; records and cache entries are written after each call. A backend
    # that schedules a whole cell best by itself (vLLM) sets it to ALL. (No default here: dataclass
    # readers would inherit it as their knob's default.)
    ALL = 1 << 62

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that changes an output (model, revision, dtype, window...): the cache key."""

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[Generation]: ...

    def close(self) -> None:  # noqa: B027 - a hook: readers without a model keep nothing
        pass

    def request_key(self, request: Request) -> dict[str, Any]:
        """The part of a request that can change this reader's answer: its generation cache key.

        `context_end` is left out, since only a query-agnostic KV press reads it; that keeps every
        other reader's keys exactly what they were before the field existed.
        """
        key = dataclasses.asdict(request)
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
        hf = self._hf()
        content, truncated = middle_truncate(hf, request.prompt, self.max_input_tokens)
        has_template = bool(getattr(hf, "chat_template", None))
        if request.chat and not has_template and not getattr(self, "_warned_no_template", False):
            log.warning("%s has no chat template: chat requests get the raw prompt", self.tokenizer.name)
            self._warned_no_template = True
        if request.chat and has_template:
            text = hf.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                          add_generation_prompt=True)
            # The template writes its own BOS and control tokens; adding specials would double BOS.
            ids = hf(text, add_special_tokens=False)["input_ids"]
        else:
            # A base model (no template) or a raw request: the tokenizer's usual BOS handling.
            text = content
            ids = hf(content, add_special_tokens=True)["input_ids"]
        return Prompt(content, text, tuple(ids), request.chat and has_template, truncated, request.max_new_tokens,
                      request.stop_at_newline)

    def stop_ids(self, stop_at_newline: bool, model_eos: Any = None) -> list[int]:
        """Token ids that end a generation: the model's EOS ids (its generation config may list
        several, e.g. Llama 3.1's end_of_text, eom, eot), the tokenizer's, and for samsum the newline
        (LongBench: eos_token_id=[eos, tokenizer.encode("\\n", add_special_tokens=False)[-1]])."""
        hf = self._hf()
        ids: list[int] = []
        for source in (model_eos, hf.eos_token_id):
            if source is None:
                continue
            ids.extend(source if isinstance(source, list) else [source])
        if stop_at_newline:
            ids.append(newline_id(hf))
        return list(dict.fromkeys(ids))

    def _hf(self) -> Any:
        tokenizer = self.tokenizer
        if not isinstance(tokenizer, HFTokenizer):
            raise PcbenchError(f"{type(self).__name__} builds prompts with a Hugging Face tokenizer, got "
                               f"{type(tokenizer).__name__}")
        return tokenizer.hf


def newline_id(hf: Any) -> int:
    return int(hf.encode("\n", add_special_tokens=False)[-1])


def reader_tokenizer(key: str, name: str, revision: str | None = None,
                     trust_remote_code: bool = False) -> HFTokenizer:
    """The tokenizer `name` names, or one PcbenchError line naming `key` (a config knob)."""
    try:
        return load_tokenizer(name, revision, trust_remote_code)
    except PcbenchError:
        raise
    except (OSError, ValueError, ImportError) as exc:  # what from_pretrained raises for bad names
        raise cannot_load(key, name, exc) from None
