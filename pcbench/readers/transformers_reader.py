"""A local Hugging Face causal LM as the reader: the shared LongBench protocol, greedy batched decoding.

The prompt protocol (middle truncation, chat or raw, stop ids) and the decoding loop are the model
layer's (models/protocol.py, models/causal.py); the model comes from the pool, so it stays warm
across the cells of a local sweep and is shared with a compressor that names the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import Range
from pcbench.core.requests import Generation, Request
from pcbench.models.causal import CausalLM, causal_lm, load_causal_lm
from pcbench.models.pool import MODELS, ModelKnobs
from pcbench.readers.base import Prompt, Reader


@dataclass
class TransformersReader(Reader, ModelKnobs):
    """Knobs are the fields; their values come from conf/reader/*.yaml (smollm2, transformers).

    The model block (ModelKnobs), where device also takes cuda:N. max_input_tokens: the prompt
    budget before the chat template (LongBench's model2maxlen); at least 2, or the kept halves of a
    cut prompt would be empty.
    """

    batch_size: Annotated[int, Range(1)]
    max_input_tokens: Annotated[int, Range(2)]

    MODEL_KEY: ClassVar[str] = "reader.model"
    NAME: ClassVar[str] = "transformers"
    PROTOCOL: ClassVar[str | None] = "longbench-middle-trunc/greedy/v1"

    def __post_init__(self) -> None:
        # The device is checked once, by its annotation (core/knobs.py: Device), before anything is built.
        if not self.model.strip():
            raise PcbenchError(f"reader.model={self.model!r} is empty; give a hub id, a local path or 'smollm2'")

    def run(self, requests: list[Request], prompts: list[Prompt]) -> list[Generation]:
        return self.lm().generate(prompts, self.batch_size)

    def lm(self) -> CausalLM:
        """The model, from the pool: loaded on first use, warm for the next cell."""
        return causal_lm(MODELS, self.model_spec())

    @property
    def loaded(self) -> bool:
        """Whether the pool holds this reader's weights (a cell whose answers are all cached loads none)."""
        return MODELS.has(self.model_spec(), load_causal_lm)

    def _load(self) -> Any:
        """The Hugging Face model itself (kvpress reaches into it)."""
        return self.lm().model
