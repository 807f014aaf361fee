"""RECOMP's abstractive compressor (Xu, Shi & Choi, ICLR 2024): a T5 model distilled from GPT-3.5's
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
from typing import Annotated, ClassVar, Literal

from pcbench.compressors.base import Compressed, Compressor, Env
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example
from pcbench.core.knobs import Range
from pcbench.models.pool import ModelKnobs


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
