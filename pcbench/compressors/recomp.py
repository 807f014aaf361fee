"""RECOMP (Xu, Shi & Choi, ICLR 2024): its two compressors.

Extractive (`RecompExtractive`): a Contriever dual encoder trained to rank the retrieved documents'
sentences by how much each helps the reader (fangyuan/nq_extractive_compressor,
fangyuan/tqa_extractive_compressor, fangyuan/hotpotqa_extractive_compressor). As RECOMP's
`run_extractive_compressor.py` scores them: question and sentences encoded apart (truncated at the
tokenizer's 512), token states mean-pooled over the attention mask, the score a raw dot product; the
paper's prompts then hold the top sentences (top-1 on NQ and TriviaQA, top-2 on HotpotQA, the `top_k`
knob). Choices of other harnesses are knobs: BERGEN's `RecompExtractiveCompressor` takes the top k
of each document (`scope=passage`) and embeds each sentence behind its document's title
(`title_in_sentence=true`); FlashRAG's refiner allows CLS pooling (`pooling=cls`). With `top_k=null`
the shared selector keeps the best sentences under a rate, a token target or a score threshold.

Abstractive (`RecompAbstractive`): a T5 model distilled from GPT-3.5's
query-focused summaries writes a summary of the retrieved documents for the question.

As the published models are run (fangyuan/nq_abstractive_compressor, fangyuan/tqa_abstractive_compressor,
fangyuan/hotpotqa_abstractive): one input per example, "Question: {question}\\n Document: {context}\\n
Summary: " (the YAML's `template`), truncated at `max_input_tokens` of the T5 tokenizer as their scripts
do, then greedy decoding up to `max_new_tokens`. The model may write nothing ("selective
augmentation"): the reader then gets no context; the record counts it (`extras.empty`), it is no error.
There is no budget: RECOMP decides the length itself (a budget given on the command line is an
unknown knob). Batched across the examples the harness hands over.

Knobs: model, revision, dtype, device, batch_size, template, max_input_tokens, max_new_tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pcbench.compressors.base import Budget, Compressed, Compressor, Env
from pcbench.compressors.scored import ScoredCompressor, question_similarities
from pcbench.compressors.selector import best_first
from pcbench.compressors.units import Unit, view
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example
from pcbench.core.knobs import Range
from pcbench.models.encoders import load_dual_encoder
from pcbench.models.pool import ModelKnobs


@dataclass
class RecompExtractive(ScoredCompressor, ModelKnobs):
    """RECOMP's extractive compressor (Xu, Shi and Choi, ICLR 2024): a trained Contriever dual
    encoder ranks sentences by the dot product of their mean-pooled embeddings with the question's.

    Keeps the `top_k` best sentences (RECOMP's mode; per document with `scope=passage`, BERGEN's),
    or, with `top_k=null`, the best under the shared budget (rate, target_tokens, threshold).
    Knobs: `top_k`, `scope`, `title_in_sentence`, `pooling`, `max_length`, `batch_size`, the budget,
    `level`, `order`, the model block.
    """

    top_k: Annotated[int, Range(1)] | None
    scope: Literal["context", "passage"]  # the top k of the whole context (RECOMP) or of each passage (BERGEN)
    title_in_sentence: bool  # embed "title sentence" (BERGEN) rather than the sentence alone (RECOMP)
    pooling: Literal["mean", "cls"]
    max_length: Annotated[int, Range(8)]
    batch_size: Annotated[int, Range(1)]

    budget_knobs: ClassVar[tuple[str, ...]] = ("top_k", "rate", "target_tokens", "threshold")

    def __post_init__(self) -> None:
        if self.top_k is None:
            super().__post_init__()
            return
        chosen = [n for n in Budget.fields() if getattr(self, n) is not None]
        if chosen:
            raise PcbenchError(f"compressor.top_k={self.top_k} keeps the k best sentences, so {chosen[0]} must be "
                               f"null; for a budget instead: compressor.top_k=null compressor.{chosen[0]}=...")

    def scorer_key(self) -> dict[str, Any]:
        return {k: v for k, v in super().scorer_key().items() if k not in ("top_k", "scope")}

    def score_batch(self, examples: list[Example], units: list[list[Unit]], env: Env) -> list[list[float]]:
        encoder = env.models.get(self.model_spec(), load_dual_encoder)
        texts: list[str] = []
        for example, us in zip(examples, units):
            texts.append(example.question)
            for unit in us:
                title = example.passages[unit.passage].title
                text = view(example, unit)
                texts.append(f"{title} {text}" if self.title_in_sentence and title and text == unit.text else text)
        return question_similarities(encoder.encode(texts, self.batch_size, self.max_length, self.pooling), units)

    def select(self, example: Example, units: list[Unit], scores: list[float], env: Env) -> Compressed:
        if self.top_k is None:
            return super().select(example, units, scores, env)
        k = int(self.top_k)
        if self.scope == "context":
            kept = best_first(scores)[:k]
        else:
            kept = []
            for passage in sorted({u.passage for u in units}):
                members = [i for i, u in enumerate(units) if u.passage == passage]
                kept += [members[j] for j in best_first([scores[i] for i in members])[:k]]
        return Compressed(self.render(example, units, sorted(kept), scores),
                          {"units": len(units), "kept_units": len(kept)})


@dataclass
class RecompAbstractive(Compressor, ModelKnobs):
    """RECOMP's abstractive compressor (Xu, Shi and Choi, ICLR 2024): a distilled T5 summariser.

    One input per example, RECOMP's "Question: ... Document: ... Summary: " template, truncated at
    `max_input_tokens`, greedy decoding; it decides the length (no budget) and may write nothing.
    Knobs: `template`, `max_input_tokens`, `max_new_tokens`, the model block.
    """

    dtype: Literal["float32", "bfloat16", "float16"]
    batch_size: Annotated[int, Range(1)]
    template: str
    max_input_tokens: Annotated[int, Range(16)]
    max_new_tokens: Annotated[int, Range(1)]

    version: ClassVar[int] = 1
    budget_knobs: ClassVar[tuple[str, ...]] = ()
    uses_budget: ClassVar[bool] = False
    generates_text: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for placeholder in ("{context}", "{question}"):
            if placeholder not in self.template:
                raise PcbenchError(f"compressor.template must hold {placeholder}; got {self.template!r}")

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        lm = env.seq2seq(self.model_spec())
        inputs = [self.template.format_map({"context": e.context, "question": e.question}) for e in examples]
        written = lm.generate(inputs, self.max_new_tokens, self.batch_size, self.max_input_tokens)
        return [Compressed.of_text(w.text, {"empty": not w.text.strip(), "input_tokens": w.input_tokens,
                                            "input_truncated": w.truncated, "new_tokens": w.new_tokens,
                                            "model": self.model})
                for w in written]
