"""The transformers reader generating under a KV-cache press from NVIDIA's kvpress (`reader=kvpress`).

Text compressors shorten the prompt; a press keeps the whole prompt but evicts key/value entries
of its cache during prefill. Both land on one accuracy-vs-kept axis: each record keeps the
text kept ratio (the compressor's) and `kv_kept_ratio`, the fraction of the pressed tokens' KV
entries the press kept (mean over layers).

The prompt is models/protocol.py's protocol, unchanged (same text, same ids as reader=transformers).
It is split in two, as kvpress's own pipeline does: the first part is prefilled under the press,
the rest is then read on top of the compressed cache at its original positions and decoding
continues greedily with the protocol's stop ids.

- `question_aware: true`: the press sees the question. Everything the task wrote (context, question,
  answer cue) is pressed; only the chat template's closing tokens follow (the last token for a
  raw prompt). This is how most KV-compression papers report.
- `question_aware: false`: the question is read after compression, as kvpress's benchmarks do: the
  split is where the task says its context ends (`Request.context_end`), so the cache is built
  without knowing what will be asked.

kvpress is imported only when a generation runs; kvpress 0.5.5 declares transformers<5.3 (see the
README's Readers section for what runs with the transformers installed here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import Range
from pcbench.core.memory import measure, mib
from pcbench.core.requests import Generation, Request
from pcbench.readers.base import Prompt
from pcbench.readers.transformers_reader import TransformersReader

log = logging.getLogger(__name__)

INSTALL = ("reader=kvpress needs the kvpress package: pip install --no-deps kvpress cachetools fire termcolor "
           "(kvpress pins an older transformers; see docs/readers.md)")

# Prefill presses, built as kvpress's own evaluation builds them (evaluation/evaluate_registry.py's
# PRESS_REGISTRY, same names, same wrappers and arguments), so a cell's numbers compare with
# kvpress's leaderboard: `expected_attention` is AdaKV-wrapped (head-wise budgets) with epsilon 1e-2
# there, and so here. The budget is set as its evaluate.py sets it: compression_ratio on the press
# (through its wrapper), key_channel_compression_ratio on ThinK.
PRESSES: dict[str, Callable[[Any], Any]] = {
    "snapkv": lambda kv: kv.SnapKVPress(),
    "adakv_snapkv": lambda kv: kv.AdaKVPress(kv.SnapKVPress()),
    "expected_attention": lambda kv: kv.AdaKVPress(kv.ExpectedAttentionPress(epsilon=1e-2)),
    "critical_snapkv": lambda kv: kv.CriticalKVPress(kv.SnapKVPress()),
    "critical_adakv_snapkv": lambda kv: kv.CriticalAdaKVPress(kv.SnapKVPress()),
    "critical_expected_attention": lambda kv: kv.CriticalKVPress(kv.ExpectedAttentionPress(use_vnorm=False)),
    "streaming_llm": lambda kv: kv.StreamingLLMPress(),
    "knorm": lambda kv: kv.KnormPress(),
    "tova": lambda kv: kv.TOVAPress(),
    "random": lambda kv: kv.RandomPress(),
    "pyramidkv": lambda kv: kv.PyramidKVPress(),
    "keydiff": lambda kv: kv.KeyDiffPress(),
    "lagkv": lambda kv: kv.LagKVPress(),
    "chunkkv": lambda kv: kv.ChunkKVPress(press=kv.SnapKVPress(), chunk_length=20),
    "block_keydiff": lambda kv: kv.BlockPress(press=kv.KeyDiffPress(), block_size=128),
    "think": lambda kv: kv.ThinKPress(),
    "snap_think": lambda kv: kv.ComposedPress([kv.SnapKVPress(), kv.ThinKPress()]),
}
PressName = Literal["snapkv", "adakv_snapkv", "expected_attention", "critical_snapkv", "critical_adakv_snapkv",
                    "critical_expected_attention", "streaming_llm", "knorm", "tova", "random", "pyramidkv",
                    "keydiff", "lagkv", "chunkkv", "block_keydiff", "think", "snap_think"]
# Presses of kvpress's registry not offered here, and why (README, Readers).
NOT_HERE = {
    "duo_attention, qfilter, kvzap_*": "download their head patterns, filters or scorer weights from the hub",
    "observed_attention": "needs the eager attention weights of the whole prompt",
    "kvzip, fastkvzip, finch, kvcompose": "drive their own forward passes over context and question "
                                          "(kvpress's pipeline), not one prefill under hooks",
    "decoding_*, cam_*": "compress during generation: another experiment than prefill compression",
}


def import_kvpress() -> Any:
    """The kvpress module, or one line naming why it cannot be used here."""
    try:
        import kvpress
    except ImportError as exc:
        if getattr(exc, "name", None) == "kvpress":
            raise PcbenchError(INSTALL) from None
        import transformers

        raise PcbenchError(f"kvpress is installed but does not import with transformers {transformers.__version__} "
                           f"({type(exc).__name__}: {exc}); {_declared()}") from None
    return kvpress


def _declared() -> str:
    """What the installed kvpress declares it needs from transformers, for error lines."""
    try:
        from importlib import metadata

        wanted = [r for r in metadata.requires("kvpress") or [] if r.startswith("transformers")]
        return f"kvpress {metadata.version('kvpress')} declares {wanted[0]}" if wanted else "see kvpress's requirements"
    except Exception:  # noqa: BLE001 - only decorates an error message
        return "see kvpress's requirements"


@dataclass
class KVPressReader(TransformersReader):
    """The transformers reader's knobs, plus: press (a kvpress prefill press), compression_ratio
    (the fraction of pressed KV entries to evict, 0 keeps all), question_aware (see the module doc).
    batch_size only sets how many requests the runner hands over at once: presses run one prompt
    at a time, as kvpress's pipeline does."""

    press: PressName
    compression_ratio: Annotated[float, Range(0, 1, high_open=True)]
    key_channel_compression_ratio: Annotated[float, Range(0, 1, high_open=True)] | None
    question_aware: bool

    NAME: ClassVar[str] = "kvpress"
    # v2: presses built as kvpress's evaluation registry builds them (expected_attention AdaKV-wrapped).
    PROTOCOL: ClassVar[str | None] = "longbench-middle-trunc/greedy/kvpress-v2"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._press: Any = None
        thinks = self.press in ("think", "snap_think")
        if thinks and self.key_channel_compression_ratio is None:
            raise PcbenchError(f"reader.press={self.press} prunes key channels: set "
                               "reader.key_channel_compression_ratio (the fraction of key channels removed, e.g. 0.5)")
        if not thinks and self.key_channel_compression_ratio is not None:
            raise PcbenchError(f"reader.key_channel_compression_ratio is for press=think or snap_think, not "
                               f"{self.press}; set it to null")

    def request_key(self, request: Request) -> dict[str, Any]:
        # Query-agnostic, the split point changes what the press sees: it is part of the key.
        return request.key() if not self.question_aware else super().request_key(request)

    def run(self, requests: list[Request], prompts: list[Prompt]) -> list[Generation]:
        splits = [self.split(r, p) for r, p in zip(requests, prompts)]
        press = self._build_press()  # before loading weights: a missing kvpress fails fast
        model = self._load()
        return [self._run_one(model, press, p, k) for p, k in zip(prompts, splits)]

    # -- the split -------------------------------------------------------------------------------

    def split(self, request: Request, prompt: Prompt) -> int:
        """How many of `prompt.ids` are prefilled under the press (at least 1, never all)."""
        content_end = len(prompt.content)
        if not self.question_aware:
            if request.context_end is None:
                raise PcbenchError("reader.question_aware=false needs the task to say where its context ends "
                                   "(Request.context_end); this task's requests do not")
            tail = request.prompt[request.context_end:]
            if prompt.content.endswith(tail):
                content_end = len(prompt.content) - len(tail)
            else:  # the middle cut reached into the question: there is no clean question part left
                log.warning("a prompt was cut into its question; the press sees all of it")
        start = prompt.text.rfind(prompt.content)
        cut = start + content_end
        hf = self.tokenizer.hf
        encoded = hf(prompt.text, add_special_tokens=not prompt.chat, return_offsets_mapping=True)
        if tuple(encoded["input_ids"]) != prompt.ids:  # offsets must describe the protocol's own ids
            raise PcbenchError(f"{self.model}: its tokenizer's offsets do not match the prompt ids; "
                               f"reader=kvpress needs a fast tokenizer")
        k = sum(1 for s, e in encoded["offset_mapping"] if s < cut or (s == e == 0))
        return max(1, min(k, len(prompt.ids) - 1))

    # -- generation ------------------------------------------------------------------------------

    def _build_press(self) -> Any:
        if self._press is None:
            kvpress = import_kvpress()
            press = PRESSES[self.press](kvpress)
            # As kvpress's evaluate.py sets the budget: ThinK takes the key-channel ratio, a composed
            # press gives each part its own, any other press (wrappers pass it through) compression_ratio.
            for part in getattr(press, "presses", [press]):
                if isinstance(part, kvpress.ThinKPress):
                    part.key_channel_compression_ratio = self.key_channel_compression_ratio
                else:
                    part.compression_ratio = self.compression_ratio
            self._press = press
        return self._press

    def _run_one(self, model: Any, press: Any, prompt: Prompt, k: int) -> Generation:
        import torch
        from transformers import DynamicCache

        device = model.device
        ids = torch.tensor([list(prompt.ids)], device=device)
        stops = self.stop_ids(prompt.stop_at_newline, model.generation_config.eos_token_id)
        sync = device.type == "cuda"
        cache = DynamicCache()
        with torch.inference_mode():
            started = time.perf_counter()
            try:
                # Hooks on every attention layer evict entries as the prefix is read.
                with measure() as prefill, press(model):
                    # cache_position given explicitly: kvpress's hooks read it from the attention
                    # kwargs, and transformers >= 5.3 no longer computes and passes it down itself.
                    model.model(input_ids=ids[:, :k], past_key_values=cache,
                                cache_position=torch.arange(k, device=device))
            except (KeyError, AttributeError, TypeError) as exc:  # kvpress reaching into changed internals
                import transformers

                raise PcbenchError(f"kvpress's {self.press} press fails on transformers "
                                   f"{transformers.__version__} ({type(exc).__name__}: {exc}); "
                                   f"{_declared()}") from None
            kept = kept_entries(model, cache)
            held, full = cache_bytes(cache, k)
            # The rest at its original positions, on top of the compressed cache (kvpress's pipeline).
            # A press that keeps a different length per layer (PyramidKV) leaves no one causal mask
            # for a block of queries: the rest is then read a token at a time (the same attention).
            lengths = {cache.get_seq_length(layer) for layer in range(len(cache.layers))}
            blocks = [(k, ids.shape[1])] if len(lengths) == 1 else [(i, i + 1) for i in range(k, ids.shape[1])]
            for begin, end in blocks:
                positions = torch.arange(begin, end, device=device).unsqueeze(0)
                out = model(input_ids=ids[:, begin:end], past_key_values=cache, position_ids=positions,
                            logits_to_keep=1)
            logits = out.logits[0, -1]
            if prompt.stop_at_newline:  # LongBench's min_new_tokens=1: the first token cannot end it
                logits[stops] = float("-inf")
            new = [int(logits.argmax())]
            if sync:
                torch.cuda.synchronize()
            first = time.perf_counter()
            position = ids.shape[1]
            while new[-1] not in stops and len(new) < prompt.max_new_tokens:
                step, at = torch.tensor([[new[-1]]], device=device), torch.tensor([[position]], device=device)
                out = model(input_ids=step, past_key_values=cache, position_ids=at)
                new.append(int(out.logits[0, -1].argmax()))
                position += 1
            if sync:
                torch.cuda.synchronize()
            ended = time.perf_counter()
        text = self.tokenizer.hf.decode(new, skip_special_tokens=True)
        heads = int(getattr(model.config, "num_key_value_heads", None) or model.config.num_attention_heads)
        ratio = sum(kept) / (len(kept) * heads * k) if kept else None
        return Generation(text, len(prompt.ids), len(new), prompt.truncated, first - started, ended - first,
                          kv_kept_ratio=ratio, kv_cache_mib=mib(held, 4), kv_full_mib=mib(full, 4),
                          prefill_peak_mib=mib(prefill.rise(), 4))


def cache_bytes(cache: Any, pressed: int) -> tuple[int, int]:
    """The bytes the cache holds after the pressed prefill, and what the same `pressed` tokens would
    hold unpressed. Held is what the tensors take: head-wise presses mask entries in place and ThinK
    zeroes key channels, so neither frees memory although both lower `kv_kept_ratio`."""
    held = full = 0
    for layer in cache.layers:
        for tensor in (layer.keys, layer.values):
            held += tensor.nelement() * tensor.element_size()
            per_position = tensor.nelement() // max(1, tensor.shape[-2]) * tensor.element_size()
            full += per_position * pressed
    return held, full


def kept_entries(model: Any, cache: Any) -> list[int]:
    """Per layer, the KV entries (positions x KV heads) the press kept: what the cache holds, less
    what a head-wise press (AdaKV, CriticalKV) masked in place (kvpress keeps the tensor and hides
    those keys from attention)."""
    heads = int(getattr(model.config, "num_key_value_heads", None) or model.config.num_attention_heads)
    kept = []
    for layer, block in enumerate(model.model.layers):
        masked = getattr(getattr(block, "self_attn", None), "masked_key_indices", None)
        kept.append(cache.get_seq_length(layer) * heads - (len(masked[0]) if masked is not None else 0))
    return kept
