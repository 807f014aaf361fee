"""A local Hugging Face causal LM as the reader: the shared LongBench protocol, greedy batched decoding.

The prompt protocol (middle truncation, chat or raw, stop ids) is readers/base.py's; this file
only runs the prompts it builds through `model.generate`.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from core.errors import PcbenchError
from core.knobs import Range
from core.models import cannot_load, free_accelerator_memory
from core.requests import Generation, Request
from core.tokenizer import HFTokenizer
from readers.base import Prompt, Reader, reader_tokenizer

log = logging.getLogger(__name__)

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass
class TransformersReader(Reader):
    """Knobs are the fields; their values come from conf/reader/*.yaml (smollm2, transformers).

    model: a hub id, a local folder, or a packaged alias (smollm2). device: auto, cpu, mps, cuda
    or cuda:N. max_input_tokens: the prompt budget before the chat template (LongBench's
    model2maxlen); at least 2, or the kept halves of a cut prompt would be empty.
    """

    model: str
    revision: str | None
    dtype: Literal["bfloat16", "float32", "float16", "auto"]
    device: str
    batch_size: Annotated[int, Range(1)]
    max_input_tokens: Annotated[int, Range(2)]
    trust_remote_code: bool

    generates: ClassVar[bool] = True
    # Bump when a change here changes outputs for the same knobs, so cached generations expire.
    PROTOCOL: ClassVar[str] = "longbench-middle-trunc/greedy/v1"

    def __post_init__(self) -> None:
        # Loaded state, kept out of the dataclass fields so that fields() lists only knobs.
        self._tokenizer: HFTokenizer | None = None
        self._model: Any = None
        self._warned_no_template = False
        if not self.model.strip():
            raise PcbenchError(f"reader.model={self.model!r} is empty; give a hub id, a local path or 'smollm2'")
        # A pattern, which an annotation cannot say: cuda:N takes any device index.
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise PcbenchError(f"reader.device={self.device!r} is not allowed; allowed: auto, cpu, mps, cuda, cuda:N")

    # -- the Reader interface -------------------------------------------------------------

    @property
    def tokenizer(self) -> HFTokenizer:  # type: ignore[override]
        # Cheap (no weights): compressors count tokens with it even when every generation is cached.
        if self._tokenizer is None:
            self._tokenizer = reader_tokenizer("reader.model", self.model, self.revision, self.trust_remote_code)
        return self._tokenizer

    def settings(self) -> dict[str, Any]:
        """The cache key: everything that changes what the model writes.

        In: the model name as given (not the resolved folder, which differs per machine), the
        revision, dtype (bf16 and fp32 greedy outputs do diverge), the window and the protocol.
        Out: batch_size and device. Both only move numerics at rounding level (padding changes
        the matmul shapes; CPU and GPU kernels round differently), the same order as run-to-run
        nondeterminism on GPU, and keying on them would split one experimental condition across
        caches. trust_remote_code only decides whether a model can load at all.
        """
        return {
            "reader": "transformers",
            "model": self.model,
            "revision": self.revision,
            "dtype": self.dtype,
            "max_input_tokens": self.max_input_tokens,
            "protocol": self.PROTOCOL,
        }

    def generate(self, requests: list[Request]) -> list[Generation]:
        if not requests:
            return []
        prompts = self.prompts(requests)
        model = self._load()
        out: list[Generation | None] = [None] * len(requests)
        # One generate() call shares max_new_tokens and stopping rules, so group by them; sorting
        # by length inside a group keeps left padding (wasted prefill) small.
        groups: dict[tuple[int, bool], list[int]] = defaultdict(list)
        for i, p in enumerate(prompts):
            groups[(p.max_new_tokens, p.stop_at_newline)].append(i)
        for (max_new, stop_nl), members in groups.items():
            members.sort(key=lambda i: len(prompts[i].ids))
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                for i, gen in zip(batch, self._run_batch(model, [prompts[i] for i in batch], max_new, stop_nl)):
                    out[i] = gen
        return [g for g in out if g is not None]

    def close(self) -> None:
        if self._model is None:
            return
        self._model = None
        free_accelerator_memory()

    # -- internals --------------------------------------------------------------------------

    def _device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        import torch
        from transformers import AutoModelForCausalLM

        from core.local_models import resolve

        dtype: Any = self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)
        started = time.perf_counter()
        # device_map puts the weights straight on the device: an 8B model never lands in host RAM first.
        try:
            model = AutoModelForCausalLM.from_pretrained(
                resolve(self.model),
                revision=self.revision,
                dtype=dtype,
                device_map=self._device(),
                trust_remote_code=self.trust_remote_code,
            )
        except (OSError, ValueError, ImportError) as exc:  # a wrong name or path, offline, no remote code
            raise cannot_load("reader.model", self.model, exc) from None
        model.eval()
        log.info("loaded %s (%s) on %s in %.1f s", self.model, model.dtype, model.device, time.perf_counter() - started)
        self._model = model
        return model

    def _run_batch(self, model: Any, batch: list[Prompt], max_new: int, stop_nl: bool) -> list[Generation]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        eos = self.stop_ids(stop_nl, model.generation_config.eos_token_id)
        pad = self.tokenizer.hf.pad_token_id
        pad = eos[0] if pad is None else pad
        width = max(len(p.ids) for p in batch)
        # Left padding: every row's last prompt token sits at the same position, so the new
        # tokens line up from column `width` on.
        input_ids = torch.tensor([[pad] * (width - len(p.ids)) + list(p.ids) for p in batch])
        mask = torch.tensor([[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in batch])
        device = model.device
        # Unset fields are filled from the model's own generation_config; pin the ones that would
        # still move the argmax under greedy decoding (Qwen2.5 ships repetition_penalty=1.05).
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            max_new_tokens=max_new,
            min_new_tokens=1 if stop_nl else 0,
            eos_token_id=eos,
            pad_token_id=pad,
        )
        clock = FirstCallClock(sync=device.type == "cuda")
        with torch.inference_mode():
            started = time.perf_counter()
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                generation_config=config,
                logits_processor=LogitsProcessorList([clock]),
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            ended = time.perf_counter()
        first = clock.first if clock.first is not None else ended
        # generate() runs one batched forward per step, so per-request time is not observable;
        # split the batch's prefill and decode time evenly over its requests.
        prefill = (first - started) / len(batch)
        decode = (ended - first) / len(batch)
        new = output[:, width:].tolist()
        stops = set(eos)
        results = []
        for p, row in zip(batch, new):
            # Rows that finished early are padded after their EOS; count up to and including it.
            n = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
            text = self.tokenizer.hf.decode(row[:n], skip_special_tokens=True)
            results.append(Generation(text, len(p.ids), n, p.truncated, prefill, decode))
        return results


class FirstCallClock:
    """A logits processor that changes nothing and records when it is first called.

    generate() calls logits processors right after each forward; the first call follows the
    prefill forward (which also yields the first token's logits), so start -> first call is the
    prefill time and first call -> end is the decode time of the remaining tokens.
    """

    def __init__(self, sync: bool) -> None:
        self.sync = sync
        self.first: float | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.first is None:
            if self.sync:
                import torch

                torch.cuda.synchronize()  # CUDA is asynchronous: wait for the prefill to really end
            self.first = time.perf_counter()
        return scores
