"""Writing in the Margins (Russak et al. 2024, arXiv 2408.14906; writer/writing-in-the-margins).

As its `run.py` and `wim.py` run it, on the model layer's causal LM (`model`; the paper uses the
reader's own model, so give it the reader's: compressor.model=<reader.model>):

1. the context is cut into segments: NLTK sentences (pcbench: blingfire's), each followed by one
   space, packed until the next would pass `segment_tokens` cl100k tokens (4096); the official
   chunker then starts a new segment *without* that sentence, so one sentence is lost at each
   boundary (`drop_boundary_sentence: true`, as it runs; false keeps it);
2. one KV cache per example: the system message ("{user_header}\\n```"), then segment after
   segment (chunked prefill). After each segment the margin prompt is prefilled and a margin
   (an extractive summary, up to `margin_tokens`) generated; the cache is cut back to the segment;
3. each margin is classified in a fresh cache with the classification prompt (up to
   `classification_tokens`), kept when the reply before its first "#" ends with "YES";
4. the answer: WiM asks the question after the whole context and the kept margins. Here the cell's
   reader answers (any backend) from the compressed context: the segments as the cache held them,
   then the kept margins joined as WiM joins them (`answer_from: context_and_margins`), or the
   margins alone (`margins`, the paper's RAG-like pattern), under the task's own prompt.

Every piece is tokenized on its own with the tokenizer's defaults, as `prefill_text_with_kv_cache`
does; the headers come from the model's chat template (the strings WiM's shell scripts write by hand
per model). Decoding is greedy (`run.py`'s default; its shell scripts sample at top-p 0.9). The
margins and classifications are the method's price: their tokens are in the record
(`extras.generated_tokens`, `extras.prefill_tokens`) and their time in `compress_seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pcbench.compressors.base import Compressed, Compressor, Env
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.core.text import split_sentences
from pcbench.core.tokenizer import openai_tokenizer
from pcbench.models.causal import CausalLM
from pcbench.models.pool import ModelKnobs

_MARK = "\x00WIM\x00"


def headers(tokenizer: Any) -> tuple[str, str]:
    """(user header, generation header): the chat template's text before a user message and between
    it and the assistant's turn; ("", "") for a model without a template."""
    if not getattr(tokenizer, "chat_template", None):
        return "", ""
    text = tokenizer.apply_chat_template([{"role": "user", "content": _MARK}], tokenize=False,
                                         add_generation_prompt=True)
    before, _, after = str(text).partition(_MARK)
    return before, after


def segments_of(text: str, limit: int, count: Any, drop_boundary_sentence: bool) -> list[str]:
    """WiM's `chunk_text_to_segments`: sentences (stripped, each followed by a space) packed while the
    running cl100k count stays within `limit`."""
    segments, current, used = [], "", 0
    for sentence in (s.strip() for s in split_sentences(text)):
        if not sentence:
            continue
        tokens = count(sentence)
        if used + tokens > limit:
            segments.append(current)
            current, used = "", 0
            if drop_boundary_sentence:  # the official chunker moves on without this sentence
                continue
        current += sentence + " "
        used += tokens
    if current:
        segments.append(current)
    return segments


def kept_margin(reply: str) -> bool:
    """WiM's `parse_classifier_output`: the reply before its first "#" ends with YES."""
    return reply.replace("```", "").strip().split("#")[0].endswith("YES")


@dataclass
class WritingInTheMargins(Compressor, ModelKnobs):
    """Writing in the Margins (Russak et al. 2024): chunked prefill where the model writes a margin
    note per segment, classifies it as relevant or not, and the reader answers with the kept ones.

    Knobs: `segment_tokens`, `drop_boundary_sentence`, `margin_tokens`, `classification_tokens`,
    `answer_from`, the four prompt templates, the model block.
    """

    segment_tokens: Annotated[int, Range(1)]
    drop_boundary_sentence: bool
    margin_tokens: Annotated[int, Range(1)]
    classification_tokens: Annotated[int, Range(1)]
    answer_from: Literal["context_and_margins", "margins"]
    system_message: str
    margin_prompt: str
    classification_prompt: str
    dtype: Literal["float32", "bfloat16", "float16"]

    version: ClassVar[int] = 1
    budget_knobs: ClassVar[tuple[str, ...]] = ()
    uses_budget: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if "{query}" not in self.margin_prompt:
            raise PcbenchError(f"compressor.margin_prompt must hold {{query}}; got {self.margin_prompt!r}")
        if "{answer}" not in self.classification_prompt:
            raise PcbenchError(f"compressor.classification_prompt must hold {{answer}} (the margin); "
                               f"got {self.classification_prompt!r}")

    def compress(self, example: Example, env: Env) -> Compressed:
        lm = env.causal_lm(self.model_spec())
        user, generation = headers(lm.tokenizer)

        def fill(template: str, **values: str) -> str:
            # Placeholders replaced as WiM's apply_special_tokens does (a brace in a question is text).
            for name, value in {"user_header": user, "generation_header": generation,
                                "query": example.question, **values}.items():
                template = template.replace("{" + name + "}", value)
            return template

        cl100k = openai_tokenizer("cl100k")
        segments = segments_of(example.context, self.segment_tokens, lambda s: cl100k.count([s])[0],
                               self.drop_boundary_sentence)
        eos = lm.tokenizer.eos_token_id
        margins: list[str] = []
        verdicts: list[bool] = []
        generated = prefill = 0
        cache: Any = None
        _, cache = self._prefill(lm, fill(self.system_message), cache)
        prefill += CausalLM.cache_length(cache)
        for segment in segments:
            before = CausalLM.cache_length(cache)
            _, cache = self._prefill(lm, segment, cache)
            end_of_segment = CausalLM.cache_length(cache)
            if end_of_segment > lm.window:
                raise PcbenchError(f"example {example.id!r}: WiM holds the whole context in one cache, "
                                   f"{end_of_segment} tokens, past compressor.model={self.model!r}'s "
                                   f"window of {lm.window}; give a longer-context model")
            logits, cache = self._prefill(lm, fill(self.margin_prompt), cache)
            prefill += CausalLM.cache_length(cache) - before
            tokens = lm.greedy_on(cache, logits, self.margin_tokens, eos)
            generated += len(tokens)
            margin = lm.decode(tokens)
            cache = CausalLM.crop(cache, end_of_segment)
            logits, side = self._prefill(lm, fill(self.classification_prompt, answer=margin), None)
            prefill += CausalLM.cache_length(side)
            reply = lm.greedy_on(side, logits, self.classification_tokens, eos)
            generated += len(reply)
            margins.append(margin)
            verdicts.append(kept_margin(lm.decode(reply)))
        kept = [m for m, keep in zip(margins, verdicts) if keep]
        notes = "".join(kept)  # WiM joins the kept margins with nothing between them
        passages = [Passage("".join(segments).strip())] if self.answer_from == "context_and_margins" else []
        if notes.strip():
            passages.append(Passage(notes.strip()))
        return Compressed(tuple(p for p in passages if p.text), {
            "segments": len(segments), "margins": len(margins), "kept_margins": len(kept),
            "margin_texts": margins, "margin_kept": verdicts, "generated_tokens": generated,
            "prefill_tokens": prefill})

    @staticmethod
    def _prefill(lm: CausalLM, text: str, cache: Any) -> tuple[Any, Any]:
        """One piece onto the cache, tokenized on its own with the tokenizer's defaults (as WiM's
        prefill_text_with_kv_cache calls the tokenizer)."""
        return lm.extend(lm.encode(text, special=True), cache)
