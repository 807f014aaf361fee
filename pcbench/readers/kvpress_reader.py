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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import Range
from pcbench.core.memory import measure, mib
from pcbench.core.requests import Generation, Request
from pcbench.models.pool import ModelSpec
from pcbench.readers.base import Prompt
from pcbench.readers.transformers_reader import TransformersReader

log = logging.getLogger(__name__)

INSTALL = ("reader=kvpress needs the kvpress package: pip install --no-deps kvpress cachetools fire termcolor "
           "(kvpress pins an older transformers; see docs/readers.md)")

# Every press of kvpress's evaluation registry (evaluation/evaluate_registry.py's PRESS_REGISTRY, same
# names, same wrappers and arguments), so a cell's numbers compare with kvpress's leaderboard:
# `expected_attention` is AdaKV-wrapped with epsilon 1e-2 there, and so here. `no_press` runs the
# same split and decoding with no press: the leaderboard's baseline in this protocol.
PRESSES: dict[str, Callable[[Any], Any]] = {
    "no_press": lambda kv: None,
    "adakv_snapkv": lambda kv: kv.AdaKVPress(kv.SnapKVPress()),
    "block_keydiff": lambda kv: kv.BlockPress(press=kv.KeyDiffPress(), block_size=128),
    "chunkkv": lambda kv: kv.ChunkKVPress(press=kv.SnapKVPress(), chunk_length=20),
    "critical_adakv_expected_attention": lambda kv: kv.CriticalAdaKVPress(kv.ExpectedAttentionPress(use_vnorm=False)),
    "critical_adakv_snapkv": lambda kv: kv.CriticalAdaKVPress(kv.SnapKVPress()),
    "critical_expected_attention": lambda kv: kv.CriticalKVPress(kv.ExpectedAttentionPress(use_vnorm=False)),
    "critical_snapkv": lambda kv: kv.CriticalKVPress(kv.SnapKVPress()),
    "cur": lambda kv: kv.CURPress(),
    "duo_attention": lambda kv: kv.DuoAttentionPress(),
    "duo_attention_on_the_fly": lambda kv: kv.DuoAttentionPress(on_the_fly_scoring=True),
    "expected_attention": lambda kv: kv.AdaKVPress(kv.ExpectedAttentionPress(epsilon=1e-2)),
    "fastkvzip": lambda kv: kv.FastKVzipPress(),
    "finch": lambda kv: kv.FinchPress(),
    "keydiff": lambda kv: kv.KeyDiffPress(),
    "kvcompose": lambda kv: kv.KVComposePress(),
    "kvcompose_unstructured": lambda kv: kv.KVComposePress(structured=False),
    "kvzip": lambda kv: kv.KVzipPress(),
    "kvzip_plus": lambda kv: kv.KVzipPress(kvzip_plus_normalization=True),
    "kvzap_linear": lambda kv: kv.DMSPress(press=kv.KVzapPress(model_type="linear")),
    "kvzap_mlp": lambda kv: kv.DMSPress(press=kv.KVzapPress(model_type="mlp")),
    "kvzap_mlp_head": lambda kv: kv.KVzapPress(model_type="mlp"),
    "kvzap_mlp_layer": lambda kv: kv.AdaKVPress(kv.KVzapPress(model_type="mlp")),
    "lagkv": lambda kv: kv.LagKVPress(),
    "lukv": lambda kv: kv.LUKVPress(kv.ExpectedAttentionPress(epsilon=2e-2), sink=4, window=1),
    "knorm": lambda kv: kv.KnormPress(),
    "observed_attention": lambda kv: kv.ObservedAttentionPress(),
    "pyramidkv": lambda kv: kv.PyramidKVPress(),
    "qfilter": lambda kv: kv.QFilterPress(),
    "random": lambda kv: kv.RandomPress(),
    "restorekv": lambda kv: kv.RestoreKVPress(),
    "restorekv_plus": lambda kv: kv.RestoreKVPress(kvzip_plus_normalization=True),
    "snap_think": lambda kv: kv.ComposedPress([kv.SnapKVPress(), kv.ThinKPress()]),
    "snapkv": lambda kv: kv.SnapKVPress(),
    "streaming_llm": lambda kv: kv.StreamingLLMPress(),
    "think": lambda kv: kv.ThinKPress(),
    "tova": lambda kv: kv.TOVAPress(),
    "compactor": lambda kv: kv.CompactorPress(),
    "adakv_compactor": lambda kv: kv.AdaKVPress(kv.CompactorPress()),
    "cam_streaming_llm": lambda kv: kv.CAMPress(base_press=kv.StreamingLLMPress()),
    "cam_knorm": lambda kv: kv.CAMPress(base_press=kv.KnormPress()),
    "cam_adakv_snapkv": lambda kv: kv.CAMPress(base_press=kv.AdaKVPress(kv.SnapKVPress())),
    "cam_tova": lambda kv: kv.CAMPress(base_press=kv.TOVAPress()),
    "decoding_knorm": lambda kv: kv.DecodingPress(base_press=kv.KnormPress()),
    "decoding_streaming_llm": lambda kv: kv.DecodingPress(base_press=kv.StreamingLLMPress()),
    "decoding_tova": lambda kv: kv.DecodingPress(base_press=kv.TOVAPress()),
    "decoding_qfilter": lambda kv: kv.DecodingPress(base_press=kv.QFilterPress()),
    "decoding_adakv_expected_attention_e2": lambda kv: kv.DecodingPress(
        base_press=kv.AdaKVPress(kv.ExpectedAttentionPress(epsilon=1e-2))),
    "decoding_adakv_snapkv": lambda kv: kv.DecodingPress(base_press=kv.AdaKVPress(kv.SnapKVPress())),
    "decoding_keydiff": lambda kv: kv.DecodingPress(base_press=kv.KeyDiffPress()),
    "merging_knorm": lambda kv: kv.MergingPress(kv.KnormPress()),
    "merging_snapkv": lambda kv: kv.MergingPress(kv.SnapKVPress()),
    "merging_expected_attention": lambda kv: kv.MergingPress(kv.ExpectedAttentionPress(epsilon=1e-2)),
}
# The knob each kind of press takes its budget from, as kvpress's evaluate.py sets it (_setup_press):
# DuoAttention its share of streaming heads, KVzap (a DMS press) a score threshold, ThinK a share of
# key channels, the decoding presses a cache size kept while generating; the rest compression_ratio.
HEAD_RATIO = frozenset({"duo_attention", "duo_attention_on_the_fly"})
THRESHOLD = frozenset({"kvzap_linear", "kvzap_mlp"})
KEY_CHANNELS = frozenset({"think", "snap_think"})
DECODING = frozenset(name for name in PRESSES if name.startswith(("decoding_", "cam_")))
NO_PRESS = object()  # a built `no_press`: nothing to apply
if TYPE_CHECKING:
    PressName = str
else:
    PressName = Literal[tuple(PRESSES)]


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
    """The transformers reader generating under a press of NVIDIA's kvpress (Devoto, Jegou et al.,
    "Expected Attention: KV cache compression...", and the presses its registry collects).

    press: a name of kvpress's evaluation registry (`no_press`: none). Its budget, as kvpress's
    evaluate.py sets it: compression_ratio (the fraction of pressed KV entries to evict, 0 keeps all);
    for ThinK key_channel_compression_ratio, for DuoAttention head_compression_ratio (the share of
    heads made streaming), for KVzap's DMS presses threshold (a score; -3 to -9 on the leaderboard);
    the decoding presses keep target_size entries, pressing every compression_interval new tokens
    (null: the press's own default). question_aware: see the module doc. batch_size only sets how
    many requests the runner hands over at once: presses run one prompt at a time, as kvpress's
    pipeline does."""

    press: PressName
    compression_ratio: Annotated[float, Range(0, 1, high_open=True)]
    key_channel_compression_ratio: Annotated[float, Range(0, 1, high_open=True)] | None
    head_compression_ratio: Annotated[float, Range(0, 1)] | None
    threshold: float | None
    target_size: Annotated[int, Range(1)] | None
    compression_interval: Annotated[int, Range(1)] | None
    question_aware: bool

    NAME: ClassVar[str] = "kvpress"
    # v2: presses built as kvpress's evaluation registry builds them (expected_attention AdaKV-wrapped).
    PROTOCOL: ClassVar[str | None] = "longbench-middle-trunc/greedy/kvpress-v2"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._press: Any = None
        for knob, presses, example in (("key_channel_compression_ratio", KEY_CHANNELS, "0.5"),
                                       ("head_compression_ratio", HEAD_RATIO, "0.5"),
                                       ("threshold", THRESHOLD, "-4")):
            wanted, given = self.press in presses, getattr(self, knob) is not None
            if wanted and not given:
                raise PcbenchError(f"reader.press={self.press} takes its budget from reader.{knob}: set it "
                                   f"(e.g. reader.{knob}={example})")
            if given and not wanted:
                raise PcbenchError(f"reader.{knob} is for press={' or '.join(sorted(presses))}, not "
                                   f"{self.press}; set it to null")
        if self.press == "finch" and not self.question_aware:
            raise PcbenchError("reader.press=finch reads the question with the context (kvpress refuses it "
                               "otherwise): set reader.question_aware=true")
        if (self.target_size is not None or self.compression_interval is not None) and self.press not in DECODING:
            raise PcbenchError(f"reader.target_size and reader.compression_interval are for the decoding presses "
                               f"({', '.join(sorted(DECODING))}), not {self.press}; set them to null")

    def model_spec(self, name: str | None = None, *, trust_remote_code: bool | None = None,
                   key: str | None = None, options: tuple[tuple[str, Any], ...] = ()) -> ModelSpec:
        # ObservedAttention reads the attention weights, which only eager attention returns (kvpress's
        # evaluate.py loads the model so for it): another copy in the pool than the SDPA one.
        if self.press == "observed_attention":
            options = (*options, ("attn_implementation", "eager"))
        # Finch grows the embeddings by its delimiter token: a copy of its own, never the shared one.
        if self.press == "finch":
            options = (*options, ("finch_delimiter", True))
        return super().model_spec(name, trust_remote_code=trust_remote_code, key=key, options=options)

    def request_key(self, request: Request) -> dict[str, Any]:
        # Query-agnostic, the split point changes what the press sees: it is part of the key.
        return request.key() if not self.question_aware else super().request_key(request)

    def run(self, requests: list[Request], prompts: list[Prompt]) -> list[Generation]:
        splits = [self.split(r, p) for r, p in zip(requests, prompts)]
        # Finch reads a delimiter between context and question (kvpress's evaluate.py puts it there).
        delimiters = [self.split(r, p, question_aware=False) for r, p in zip(requests, prompts)] \
            if self.press == "finch" else [None] * len(prompts)
        press = self._build_press()  # before loading weights: a missing kvpress fails fast
        model = self._load()
        if self.press == "finch":
            self._add_delimiter(model, press)
        return [self._run_one(model, press, p, k, d) for p, k, d in zip(prompts, splits, delimiters)]

    def _add_delimiter(self, model: Any, press: Any) -> None:
        """Finch's delimiter token, added to a copy of the tokenizer and to this reader's own copy of the
        model (model_spec keeps it apart in the pool: its embeddings grow by one row), as kvpress's
        `update_model_and_tokenizer` does."""
        import copy

        if getattr(model, "_pcbench_finch_delimiter", None) is None:
            tokenizer = press.update_model_and_tokenizer(model, copy.deepcopy(self.tokenizer.hf))
            model._pcbench_finch_delimiter = tokenizer.convert_tokens_to_ids(press.delimiter_token)
        press.delimiter_token_id = model._pcbench_finch_delimiter

    # -- the split -------------------------------------------------------------------------------

    def split(self, request: Request, prompt: Prompt, question_aware: bool | None = None) -> int:
        """How many of `prompt.ids` are prefilled under the press (at least 1, never all): with the
        question (`question_aware`, this reader's knob by default) or up to where the context ends."""
        content_end = len(prompt.content)
        if not (self.question_aware if question_aware is None else question_aware):
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
        """The press, its budget set as kvpress's evaluate.py sets it (`_setup_press`)."""
        if self._press is None:
            kvpress = import_kvpress()
            press = PRESSES[self.press](kvpress)
            if self.press in HEAD_RATIO:
                press.head_compression_ratio = self.head_compression_ratio
            elif self.press in THRESHOLD:
                press.threshold = self.threshold
            elif self.press in DECODING:
                press.compression_interval = self.compression_interval or press.compression_interval
                press.target_size = self.target_size or press.target_size
            else:
                # A composed press gives each part its own; wrappers pass compression_ratio through.
                for part in getattr(press, "presses", [press] if press is not None else []):
                    if isinstance(part, kvpress.ThinKPress):
                        part.key_channel_compression_ratio = self.key_channel_compression_ratio
                    elif hasattr(part, "compression_ratio"):
                        part.compression_ratio = self.compression_ratio
            self._press = press if press is not None else NO_PRESS
        return None if self._press is NO_PRESS else self._press

    def _run_one(self, model: Any, press: Any, prompt: Prompt, k: int, delimiter: int | None = None) -> Generation:
        import torch
        from transformers import DynamicCache

        kvpress = import_kvpress()
        # As kvpress's pipeline decides: a decoding press (CAM too) presses while generating, not the
        # prefill; a DMS press (KVzap) both when its `decoding` says so; every other press the prefill.
        decoding = isinstance(press, (kvpress.DecodingPress, kvpress.PrefillDecodingPress)) or (
            isinstance(press, kvpress.DMSPress) and press.decoding)
        prefill_press = press is not None and not isinstance(press, kvpress.DecodingPress)
        device = model.device
        ids = torch.tensor([list(prompt.ids)], device=device)
        stops = self.stop_ids(prompt.stop_at_newline, model.generation_config.eos_token_id)
        sync = device.type == "cuda"
        cache = DynamicCache()
        with torch.inference_mode(), self._failing_press():
            started = time.perf_counter()
            # Hooks on every attention layer evict entries as the prefix is read.
            with measure() as prefill, press(model) if prefill_press else nullcontext():
                # cache_position given explicitly: kvpress's hooks read it from the attention
                # kwargs, and transformers >= 5.3 no longer computes and passes it down itself.
                pressed = ids[:, :k]
                if delimiter is not None:  # Finch: its hook finds the token, sizes its window, drops it
                    mark = torch.tensor([[press.delimiter_token_id]], device=device)
                    pressed = torch.cat([ids[:, :delimiter], mark, ids[:, delimiter:k]], dim=1)
                # KVCompose replays the context with the same arguments, which must then leave the
                # replay's positions to the model (after the context), as kvpress's pipeline does.
                filled = {} if isinstance(press, kvpress.KVComposePress) else {
                    "cache_position": torch.arange(k, device=device)}
                model.model(input_ids=pressed, past_key_values=cache, **filled)
            kept = kept_entries(model, cache)
            held, full = cache_bytes(cache, k)
            # The rest at its original positions, on top of the compressed cache (kvpress's pipeline);
            # a press that re-rotates the kept keys to close the gaps (RestoreKV, KeyRerotation) puts
            # it after them instead, as the pipeline does.
            rerotated = isinstance(press, (kvpress.RestoreKVPress, kvpress.KeyRerotationPress)) or (
                isinstance(press, kvpress.FinchPress) and press.rerotate_keys)
            position = cache.get_seq_length() if rerotated else k
            # A press that keeps a different length per layer (PyramidKV) leaves no one causal mask
            # for a block of queries: the rest is then read a token at a time (the same attention).
            lengths = {cache.get_seq_length(layer) for layer in range(len(cache.layers))}
            rest = ids.shape[1] - k
            blocks = [(0, rest)] if len(lengths) == 1 else [(i, i + 1) for i in range(rest)]
            # A decoding press's hooks read each step's cache_position, which transformers >= 5.3 no
            # longer passes down: given here as transformers < 5.3 made it (from the cache's length).
            def slots(n: int) -> dict[str, Any]:
                start = cache.get_seq_length()
                return {"cache_position": torch.arange(start, start + n, device=device)} if decoding else {}

            with press(model) if decoding else nullcontext():
                for begin, end in blocks:
                    positions = torch.arange(position + begin, position + end, device=device).unsqueeze(0)
                    out = model(input_ids=ids[:, k + begin:k + end], past_key_values=cache, position_ids=positions,
                                logits_to_keep=1, **slots(end - begin))
                logits = out.logits[0, -1]
                if prompt.stop_at_newline:  # LongBench's min_new_tokens=1: the first token cannot end it
                    logits[stops] = float("-inf")
                new = [int(logits.argmax())]
                if sync:
                    torch.cuda.synchronize()
                first = time.perf_counter()
                position += rest
                while new[-1] not in stops and len(new) < prompt.max_new_tokens:
                    step, at = torch.tensor([[new[-1]]], device=device), torch.tensor([[position]], device=device)
                    out = model(input_ids=step, past_key_values=cache, position_ids=at, **slots(1))
                    new.append(int(out.logits[0, -1].argmax()))
                    position += 1
            # What the press kept, of the pressed prefix; a decoding press, of everything read (the
            # answer's tokens included), measured after generation.
            measured = position - 1 if decoding else k
            if decoding:
                kept, (held, full) = kept_entries(model, cache), cache_bytes(cache, measured)
            if sync:
                torch.cuda.synchronize()
            ended = time.perf_counter()
        text = self.tokenizer.hf.decode(new, skip_special_tokens=True)
        ratio = sum(kept) / (len(kept) * kv_heads(model) * measured) if kept else None
        return Generation(text, len(prompt.ids), len(new), prompt.truncated, first - started, ended - first,
                          kv_kept_ratio=ratio, kv_cache_mib=mib(held, 4), kv_full_mib=mib(full, 4),
                          prefill_peak_mib=mib(prefill.rise(), 4))

    @contextmanager
    def _failing_press(self) -> Iterator[None]:
        """A press that cannot run here fails with one line saying why: it reaches into transformers
        internals this version changed, it loads weights from the hub this machine cannot reach
        (DuoAttention's patterns, QFilter's filters, KVzap's scorers, FastKVzip's gates), or it needs
        what the model or data lacks (LU-KV's budget curves exist for a few models only)."""
        try:
            yield
        except PcbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - a press's failure, said in one line
            import transformers

            words = " ".join(str(exc).split())[:300]
            offline = type(exc).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled")
            if offline or any(h in words for h in ("huggingface.co", "on the Hub")):
                raise PcbenchError(f"kvpress's {self.press} press loads its weights or patterns from the Hugging "
                                   f"Face hub, which cannot be reached from here ({type(exc).__name__}: "
                                   f"{words[:160]})") from None
            raise PcbenchError(f"kvpress's {self.press} press fails here ({type(exc).__name__}: {words}); "
                               f"transformers {transformers.__version__}, {_declared()}") from None


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


def kv_heads(model: Any) -> int:
    """The KV heads of each layer (grouped-query attention shares them among query heads)."""
    return int(getattr(model.config, "num_key_value_heads", None) or model.config.num_attention_heads)


def kept_entries(model: Any, cache: Any) -> list[int]:
    """Per layer, the KV entries (positions x KV heads) the press kept: what the cache holds, less
    what a head-wise press (AdaKV, CriticalKV) masked in place (kvpress keeps the tensor and hides
    those keys from attention)."""
    heads = kv_heads(model)
    kept = []
    for layer, block in enumerate(model.model.layers):
        masked = getattr(getattr(block, "self_attn", None), "masked_key_indices", None)
        kept.append(cache.get_seq_length(layer) * heads - (len(masked[0]) if masked is not None else 0))
    return kept
