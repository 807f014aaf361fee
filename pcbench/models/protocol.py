"""The prompt protocol every generating backend shares, readers and compressors alike.

It follows LongBench's pred.py so that scores are comparable with published tables, and lives in
the model layer so that the transformers, vLLM, kvpress and OpenAI-compatible readers, and any
compressor that generates (a summariser), apply it byte-for-byte the same way:

1. a prompt longer than `max_input_tokens` (in the model's tokenizer) keeps its first and last
   `int(max_input_tokens / 2)` tokens, each half decoded back to text and the strings joined;
2. then, per request (`Request.chat`), the tokenizer's chat template wraps the cut text as one user
   turn (after the request's system turn, if it has one) with the generation prompt, or the raw text
   is used (LongBench's trec, triviaqa, samsum, lsht, lcc, repobench-p);
3. decoding is greedy and stops at any EOS id of the model and tokenizer, plus the newline token
   when `Request.stop_at_newline` (LongBench's samsum), which also forces at least one new token.

`build_prompt` returns the exact text and ids the model will see (`Prompt`); backends only differ
in how they run them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pcbench.core.requests import Request

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """One request after the protocol: what the model reads, exactly."""

    content: str  # the (possibly cut) task prompt: the user turn, before any template
    text: str  # what the model reads as text: `content` inside the chat template, or `content` itself
    ids: tuple[int, ...]  # `text` in the model's tokenizer, special tokens (template, BOS) included
    chat: bool  # the chat template was applied
    truncated: bool  # the prompt was cut from the middle to fit max_input_tokens
    max_new_tokens: int
    stop_at_newline: bool
    system: str | None = None  # the request's system turn (inside `text` already where templated)
    options: tuple[str, ...] | None = None  # answers whose first-token probabilities to report


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


def build_prompt(hf: Any, request: Request, max_input_tokens: int) -> Prompt:
    """`request` under the protocol, in the Hugging Face tokenizer `hf`."""
    content, truncated = middle_truncate(hf, request.prompt, max_input_tokens)
    template = has_chat_template(hf)
    if request.chat and template:
        system = [{"role": "system", "content": request.system}] if request.system else []
        text = hf.apply_chat_template([*system, {"role": "user", "content": content}], tokenize=False,
                                      add_generation_prompt=True)
        # The template writes its own BOS and control tokens; adding specials would double BOS.
        ids = hf(text, add_special_tokens=False)["input_ids"]
    else:
        # A base model (no template) or a raw request: the tokenizer's usual BOS handling.
        text = f"{request.system}\n\n{content}" if request.system else content
        ids = hf(text, add_special_tokens=True)["input_ids"]
    return Prompt(content, text, tuple(ids), request.chat and template, truncated, request.max_new_tokens,
                  request.stop_at_newline, request.system, request.options)


def has_chat_template(hf: Any) -> bool:
    return bool(getattr(hf, "chat_template", None))


def stop_ids(hf: Any, stop_at_newline: bool, model_eos: Any = None) -> list[int]:
    """Token ids that end a generation: the model's EOS ids (its generation config may list
    several, e.g. Llama 3.1's end_of_text, eom, eot), the tokenizer's, and for samsum the newline
    (LongBench: eos_token_id=[eos, tokenizer.encode("\\n", add_special_tokens=False)[-1]])."""
    ids: list[int] = []
    for source in (model_eos, hf.eos_token_id):
        if source is None:
            continue
        ids.extend(source if isinstance(source, list) else [source])
    if stop_at_newline:
        ids.append(newline_id(hf))
    return list(dict.fromkeys(ids))


def newline_id(hf: Any) -> int:
    return int(hf.encode("\n", add_special_tokens=False)[-1])
