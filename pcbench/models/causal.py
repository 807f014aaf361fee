"""A causal LM in the model layer: scoring, greedy generation and attention, one copy of the weights.

One `CausalLM` per (model, revision, dtype, device), loaded once through the model pool
(`causal_lm`) and shared by every user: the token-pruning compressors score with it, the
transformers and kvpress readers generate with it, an attention probe reads its attention. What it
offers:

- `tokenize`: the scorer's own ids with character offsets, so token scores can be summed into
  words, phrases or sentences by offset and kept tokens mapped back to passages;
- `surprisal`: -log p(x_i | x_<i) for many sequences in batched forward passes; a sequence longer
  than the model window is scored in overlapping windows (never an error);
- `step`: one forward pass of new tokens on top of a KV cache (transformers' `DynamicCache`), for
  iterative compression conditioned on an already-compressed prefix; `evict` drops old cache
  entries when the window is full;
- `generate`: greedy batched decoding of protocol prompts (models/protocol.py), with prefill and
  decode seconds;
- `attention`: the attention weights of chosen layers only, for one sequence.

Logits are never materialised for a whole batch: the final hidden states go through the output
head in slices and only the target token's log-probability is kept (full-vocabulary fp32 logits
of 2k tokens are ~400 MB for a 49k vocabulary).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcbench.core.errors import PcbenchError
from pcbench.core.requests import Generation
from pcbench.models.pool import Models, ModelSpec, torch_dtype
from pcbench.models.protocol import Prompt, stop_ids

# Attention cost grows with the square of the window, and a 128k-window model would score a 2k
# context in one window anyway: longer windows buy nothing here.
MAX_WINDOW = 8192
# Rows (batch x positions) sent through the output head at once: 256 x 49k x 4 B = 50 MB.
HEAD_ROWS = 256


@dataclass
class Tokens:
    """A text in the scorer's tokenizer: ids and each token's [start, end) characters."""

    ids: list[int]
    offsets: list[tuple[int, int]]


class CausalLM:
    """A causal LM and its tokenizer, seen as a machine that scores tokens."""

    def __init__(self, model: Any, tokenizer: Any, device: str, name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.name = name
        config = model.config
        window = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.window = int(min(window or 2048, MAX_WINDOW))
        self.bos_id: int | None = tokenizer.bos_token_id
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
        # Calling the decoder and the head apart lets the head run in slices; a model whose
        # decoder cannot be separated is called whole and its logits sliced afterwards.
        self.decoder = decoder if decoder is not None and decoder is not model else None
        self.head = model.get_output_embeddings()
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.logit_scale = getattr(config, "logit_scale", None)

    # -- tokenization ------------------------------------------------------------------------

    def tokenize(self, text: str) -> Tokens:
        """Ids without special tokens, with character offsets (fast tokenizers only)."""
        if not text:
            return Tokens([], [])
        if not getattr(self.tokenizer, "is_fast", False):
            raise PcbenchError(f"compressor.model={self.name!r} has no fast tokenizer; token offsets need one")
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return Tokens(list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]])

    def encode(self, text: str, special: bool = False) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"]) if text else []

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True) if len(ids) else ""

    # -- forward passes ------------------------------------------------------------------------

    def _hidden(self, ids: Any, mask: Any | None, cache: Any | None, use_cache: bool) -> tuple[Any, Any]:
        """Final hidden states (or full logits when the decoder is not separable) and the cache."""
        if self.decoder is not None:
            out = self.decoder(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=use_cache)
            return out.last_hidden_state, out.past_key_values if use_cache else None
        out = self.model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=use_cache)
        return out.logits, out.past_key_values if use_cache else None

    def _nll(self, hidden: Any, targets: Any) -> Any:
        """-log p(target) at each position of hidden [B, T, H] (or logits [B, T, V]); [B, T]."""
        import torch

        batch, length = targets.shape
        out = torch.empty((batch, length), dtype=torch.float32, device=hidden.device)
        step = max(1, HEAD_ROWS // max(1, batch))
        for a in range(0, length, step):
            piece = hidden[:, a:a + step]
            logits = (self.head(piece) if self.decoder is not None else piece).float()
            if self.logit_scale is not None:
                logits = logits * self.logit_scale
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            # Rows flattened to [N, V]: cross-entropy over a contiguous last dimension is ~4x cheaper
            # than over the transposed [B, V, T] layout (0.2 s against 0.9 s for 2k tokens on 2 cores).
            rows = logits.reshape(-1, logits.shape[-1])
            out[:, a:a + step] = torch.nn.functional.cross_entropy(
                rows, targets[:, a:a + step].reshape(-1), reduction="none").view(batch, -1)
        return out

    def surprisal(self, seqs: Sequence[Sequence[int]], batch_size: int, bos: bool = True) -> list[np.ndarray]:
        """-log p(x_i | x_<i) in nats for every token of every sequence (float64 arrays).

        With `bos` and a tokenizer that has a BOS token, the first token is scored after BOS;
        otherwise its entry is NaN (nothing to condition on). Sequences longer than the window
        are cut into windows that overlap by a quarter, the overlap serving only as context.
        """
        import torch

        out = [np.full(len(s), np.nan) for s in seqs]
        lead = [self.bos_id] if bos and self.bos_id is not None else []
        # (sequence, first scored position in the sequence, input ids, index in the input of the
        # first scored token's prediction)
        pieces: list[tuple[int, int, list[int], int]] = []
        overlap = self.window // 4
        for n, seq in enumerate(seqs):
            seq = list(seq)
            if not seq:
                continue
            first = seq[: self.window - len(lead)]
            pieces.append((n, 0, lead + first, 0))
            done = len(first)
            while done < len(seq):
                context = seq[done - overlap: done] if overlap else []
                chunk = seq[done: done + self.window - len(context)]
                pieces.append((n, done, context + chunk, len(context)))
                done += len(chunk)
        order = sorted(range(len(pieces)), key=lambda i: -len(pieces[i][2]))  # similar lengths: less padding
        with torch.inference_mode():
            for b in range(0, len(order), batch_size):
                group = [pieces[i] for i in order[b:b + batch_size]]
                width = max(len(p[2]) for p in group)
                ids = torch.zeros((len(group), width), dtype=torch.long)
                mask = torch.zeros((len(group), width), dtype=torch.long)
                for r, (_, _, inp, _) in enumerate(group):
                    ids[r, :len(inp)] = torch.tensor(inp)
                    mask[r, :len(inp)] = 1
                ids, mask = ids.to(self.device), mask.to(self.device)
                hidden, _ = self._hidden(ids, mask, None, use_cache=False)
                nll = self._nll(hidden[:, :-1], ids[:, 1:]).cpu().numpy().astype(np.float64)
                for r, (n, start, inp, ctx) in enumerate(group):
                    # nll[r, j] scores inp[j + 1]; inp[k] is seq[start + k - ctx - len(lead)] in the
                    # first window, seq[start + k - ctx] in later ones.
                    shift = len(lead) if start == 0 else ctx
                    for k in range(max(1, shift), len(inp)):
                        out[n][start + k - shift] = nll[r, k - 1]
        return out

    def step(self, ids: Sequence[int], cache: Any | None) -> tuple[np.ndarray, Any]:
        """Feed `ids` after the cached prefix; returns (nll of ids[1:], the grown cache).

        nll[j] = -log p(ids[j + 1] | prefix, ids[:j + 1]). The caller keeps the cache within the
        window with `evict`.
        """
        import torch
        from transformers import DynamicCache

        if cache is None:
            cache = DynamicCache(config=self.model.config)
        tensor = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            hidden, cache = self._hidden(tensor, None, cache, use_cache=True)
            nll = self._nll(hidden[:, :-1], tensor[:, 1:])[0].cpu().numpy().astype(np.float64)
        return nll, cache

    def extend(self, ids: Sequence[int], cache: Any | None) -> tuple[Any, Any]:
        """Feed `ids` after the cached prefix (a chunk of a chunked prefill); returns the last
        position's logits (a float row) and the grown cache."""
        import torch
        from transformers import DynamicCache

        if cache is None:
            cache = DynamicCache(config=self.model.config)
        tensor = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            out = self.model(input_ids=tensor, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float(), out.past_key_values

    def greedy_on(self, cache: Any, logits: Any, max_new_tokens: int, eos_id: int | None) -> list[int]:
        """Greedy tokens after a prefilled cache whose last logits are `logits`, up to `max_new_tokens`
        or `eos_id` (kept, as Writing in the Margins' loop keeps it); the cache grows with them."""
        tokens: list[int] = []
        for _ in range(max_new_tokens):
            token = int(logits.argmax())
            tokens.append(token)
            if token == eos_id:
                break
            logits, cache = self.extend([token], cache)
        return tokens

    # -- generation --------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], batch_size: int) -> list[Generation]:
        """Greedy decoding of protocol prompts, `batch_size` at a time; one Generation per prompt, in order.

        One generate() call shares max_new_tokens and stopping rules, so prompts are grouped by
        them; sorting by length inside a group keeps left padding (wasted prefill) small.
        """
        out: list[Generation | None] = [None] * len(prompts)
        groups: dict[tuple[int, bool, tuple[str, ...] | None], list[int]] = defaultdict(list)
        for i, p in enumerate(prompts):
            groups[(p.max_new_tokens, p.stop_at_newline, p.options)].append(i)
        for (max_new, stop_nl, options), members in groups.items():
            members.sort(key=lambda i: len(prompts[i].ids))
            for start in range(0, len(members), max(1, batch_size)):
                batch = members[start:start + batch_size]
                made = self._generate_batch([prompts[i] for i in batch], max_new, stop_nl, options)
                for i, gen in zip(batch, made):
                    out[i] = gen
        return [g for g in out if g is not None]

    def _generate_batch(self, batch: list[Prompt], max_new: int, stop_nl: bool,
                        options: tuple[str, ...] | None = None) -> list[Generation]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        model = self.model
        eos = stop_ids(self.tokenizer, stop_nl, model.generation_config.eos_token_id)
        pad = self.tokenizer.pad_token_id
        pad = eos[0] if pad is None else pad
        width = max(len(p.ids) for p in batch)
        # Left padding: every row's last prompt token sits at the same position, so the new
        # tokens line up from column `width` on.
        input_ids = torch.tensor([[pad] * (width - len(p.ids)) + list(p.ids) for p in batch])
        mask = torch.tensor([[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in batch])
        device = model.device
        # Unset fields are filled from the model's own generation_config; pin the ones that would
        # still move the argmax under greedy decoding (Qwen2.5 ships repetition_penalty=1.05).
        config = GenerationConfig(do_sample=False, num_beams=1, repetition_penalty=1.0, no_repeat_ngram_size=0,
                                  max_new_tokens=max_new, min_new_tokens=1 if stop_nl else 0, eos_token_id=eos,
                                  pad_token_id=pad)
        clock = FirstCallClock(sync=device.type == "cuda")
        with torch.inference_mode():
            started = time.perf_counter()
            output = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                    generation_config=config, logits_processor=LogitsProcessorList([clock]),
                                    output_logits=options is not None, return_dict_in_generate=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            ended = time.perf_counter()
        first = clock.first if clock.first is not None else ended
        # generate() runs one batched forward per step, so per-request time is not observable;
        # split the batch's prefill and decode time evenly over its requests.
        prefill = (first - started) / len(batch)
        decode = (ended - first) / len(batch)
        stops = set(eos)
        probs = self._option_probs(output.logits[0], options) if options is not None else None
        results = []
        for r, (p, row) in enumerate(zip(batch, output.sequences[:, width:].tolist())):
            # Rows that finished early are padded after their EOS; count up to and including it.
            n = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            results.append(Generation(text, len(p.ids), n, p.truncated, prefill, decode,
                                      option_probs=probs[r] if probs is not None else None))
        return results

    def _option_probs(self, first: Any, options: tuple[str, ...]) -> list[dict[str, float]]:
        """Per row, the softmax over each option's first token's logit at the first new token (the
        raw logits, before any processor), as BERGEN's judge reads "Yes" against "No"."""
        import torch

        ids = [self.encode(option)[0] for option in options]
        probs = torch.softmax(first[:, ids].float(), dim=-1).cpu().tolist()
        return [dict(zip(options, row)) for row in probs]

    # -- attention ---------------------------------------------------------------------------------

    def attention(self, ids: Sequence[int], layers: Sequence[int], queries: Sequence[int] | None = None,
                  exact_eager: bool = False) -> np.ndarray:
        """Attention probabilities of `layers` for one sequence: [len(layers), heads, len(queries), len(ids)].

        `queries` are the attending positions (default: the last token). Every layer keeps its fast
        kernel for its output; the chosen layers also compute the softmax of the queries' rows only
        (`_row_attention`: [heads, queries, positions], not the [heads, positions, positions] that
        eager attention materialises), with eager's mask and scaling, so the weights are eager's. A
        model whose kernel is not SDPA or flash attention from transformers' registry runs eager
        attention in the chosen layers instead (`exact_eager=True` forces that path). The weights
        stay the one copy the pool holds.
        """
        import copy

        import torch

        modules = self._attention_modules()
        count = len(modules)
        chosen = [layer + count if layer < 0 else layer for layer in layers]
        bad = [layer for layer in layers if not 0 <= (layer + count if layer < 0 else layer) < count]
        if bad:
            raise PcbenchError(f"layers={list(layers)}: this model has {count} layers (0..{count - 1}, or negative "
                               f"from the end)")
        rows = [q + len(ids) if q < 0 else q for q in queries] if queries is not None else [len(ids) - 1]
        captured: dict[int, Any] = {}
        saved: dict[int, Any] = {}
        hooks = []
        for layer in sorted(set(chosen)):
            module = modules[layer]
            saved[layer] = module.config
            kernel = module.config._attn_implementation
            fast = not exact_eager and _row_kernel_ready(kernel)
            config = copy.copy(module.config)  # shallow: the module reads its kernel choice from its config
            config._attn_implementation = ROW_KERNEL if fast else "eager"
            if fast:  # what `_row_attention` reads; it leaves with the copy
                config.pcbench_row_request = (rows, kernel)
            else:
                hooks.append(module.register_forward_pre_hook(_eager_mask, with_kwargs=True))
            module.config = config

            def keep(_module: Any, _args: Any, output: Any, layer: int = layer, fast: bool = fast) -> None:
                weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
                if weights is not None:
                    captured[layer] = (weights[0] if fast else weights[0][:, rows, :]).float().cpu().numpy()

            hooks.append(module.register_forward_hook(keep))
        tensor = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        try:
            with torch.inference_mode():
                self.model(input_ids=tensor, use_cache=False, logits_to_keep=1)
        finally:
            for hook in hooks:
                hook.remove()
            for layer, config in saved.items():
                modules[layer].config = config
        missing = [layer for layer in chosen if layer not in captured]
        if missing:
            raise PcbenchError(f"{self.name}: its attention layers return no weights (layers {missing})")
        return np.stack([captured[layer] for layer in chosen])

    @property
    def layer_count(self) -> int:
        """The number of decoder layers (what `attention`'s layer indices range over)."""
        return len(self._attention_modules())

    def _attention_modules(self) -> list[Any]:
        """Each decoder layer's self-attention module, in order."""
        decoder = self.decoder if self.decoder is not None else getattr(self.model, "model", self.model)
        layers = getattr(decoder, "layers", None)
        if layers is None:
            raise PcbenchError(f"{self.name}: cannot find its decoder layers for attention")
        found = []
        for layer in layers:
            module = getattr(layer, "self_attn", None)
            if module is None or not hasattr(module, "config"):
                raise PcbenchError(f"{self.name}: its layers have no self-attention module with a config")
            found.append(module)
        return found

    @staticmethod
    def cache_length(
cache: Any | None) -> int:
        return 0 if cache is None else int(cache.get_seq_length())

    @staticmethod
    def crop(cache: Any, length: int) -> Any:
        """Keep the first `length` entries (sliced directly: `DynamicCache.crop`'s meaning changed
        between transformers releases, from a final length to a count removed)."""
        for layer in cache.layers:
            if getattr(layer, "keys", None) is not None and layer.keys.numel():
                layer.keys = layer.keys[..., :length, :]
                layer.values = layer.values[..., :length, :]
        return cache

    @staticmethod
    def evict(cache: Any, keep_head: int, count: int) -> Any:
        """Drop `count` cache entries after the first `keep_head` (the LLMLingua rule for a full window)."""
        import torch

        if count <= 0:
            return cache
        for layer in cache.layers:
            keys, values = layer.keys, layer.values
            layer.keys = torch.cat([keys[..., :keep_head, :], keys[..., keep_head + count:, :]], dim=-2)
            layer.values = torch.cat([values[..., :keep_head, :], values[..., keep_head + count:, :]], dim=-2)
        return cache


def causal_lm(models: Models, spec: ModelSpec) -> CausalLM:
    """The causal LM `spec` names, from the pool: one copy per process whoever asks (reader or compressor)."""
    return models.get(spec, load_causal_lm)


def load_causal_lm(path: str, spec: ModelSpec, device: str) -> CausalLM:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    # device_map puts the weights straight on an accelerator: an 8B model never lands in host RAM first.
    placement: dict[str, Any] = {"device_map": device} if device != "cpu" else {}
    # Loader settings in the spec (an attention kernel a KV press needs) make another copy in the pool.
    loader = {k: v for k, v in spec.options if k == "attn_implementation"}
    model: Any = AutoModelForCausalLM.from_pretrained(path, revision=spec.revision, dtype=torch_dtype(spec.dtype),
                                                      trust_remote_code=spec.trust_remote_code, **placement, **loader)
    if device == "cpu":
        model.to(device)
    model.eval()
    return CausalLM(model, tokenizer, device, spec.name)


ROW_KERNEL = "pcbench_rows"  # the registered attention function that also returns the queries' rows


def _row_kernel_ready(kernel: str) -> bool:
    """Register `_row_attention` once; False where this transformers has no attention registry, or
    `kernel` (the model's own choice) is not in it or is neither SDPA nor flash attention (then
    eager attention serves instead)."""
    try:
        from transformers import AttentionInterface
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    except ImportError:
        return False
    # Kernels that take a tensor mask or none; flex attention's block masks and paged caches are not read here.
    if kernel not in ALL_ATTENTION_FUNCTIONS or not (kernel == "sdpa" or kernel.startswith("flash_attention")):
        return False
    if ROW_KERNEL not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(ROW_KERNEL, _row_attention)
    return True


def _row_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, *args: Any,
                   **kwargs: Any) -> tuple[Any, Any]:
    """The module's own kernel gives the output; the weights returned are the softmax rows of the
    requested queries only, as eager attention computes them: scaled scores (soft-capped where the
    model soft-caps), its additive mask (the causal one where the kernel got none), float32 softmax."""
    import torch
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    rows, kernel = module.config.pcbench_row_request  # set by `CausalLM.attention` on the layer's own config copy
    output, _ = ALL_ATTENTION_FUNCTIONS[kernel](module, query, key, value, attention_mask, *args, **kwargs)
    groups = query.shape[1] // key.shape[1]
    keys = key.repeat_interleave(groups, dim=1) if groups > 1 else key  # = transformers' repeat_kv
    # kvpress wraps every registered kernel and passes dropout (and may pass scaling) by position.
    scaling = kwargs.get("scaling", args[1] if len(args) > 1 else None)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query[:, :, rows, :], keys.transpose(2, 3)) * scaling
    softcap = kwargs.get("softcap")
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    n = keys.shape[-2]
    lowest = torch.finfo(scores.dtype).min
    if attention_mask is None:  # the kernel was told is_causal: a query sees itself and what precedes it
        position = torch.arange(n, device=scores.device)
        after = position[None, :] > torch.tensor(rows, device=scores.device)[:, None]
        scores = scores.masked_fill(after[None, None], lowest)
    else:
        mask = attention_mask[:, :, rows, :n]
        scores = scores.masked_fill(~mask, lowest) if mask.dtype == torch.bool else scores + mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    return output, weights


def _eager_mask(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The additive causal mask eager attention needs. A model built for SDPA passes none (the kernel
    is told `is_causal`) or a boolean one; eager attention adds its mask to the scores."""
    import torch

    hidden: Any = kwargs.get("hidden_states", args[0] if args else None)
    mask = kwargs.get("attention_mask")
    dtype = hidden.dtype
    lowest = torch.finfo(dtype).min
    if mask is None:
        n = hidden.shape[1]
        mask = torch.full((n, n), lowest, dtype=dtype, device=hidden.device).triu(1)[None, None]
    elif mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, lowest)
    return args, {**kwargs, "attention_mask": mask}


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
