"""Causal-LM scoring shared by the token-pruning family (LLMLingua, LongLLMLingua, Selective Context).

One `CausalScorer` per (model, revision, dtype, device), loaded once through the harness's model
pool. What it offers:

- `tokenize`: the scorer's own ids with character offsets, so token scores can be summed into
  words, phrases or sentences by offset and kept tokens mapped back to passages;
- `surprisal`: -log p(x_i | x_<i) for many sequences in batched forward passes; a sequence longer
  than the model window is scored in overlapping windows (never an error);
- `step`: one forward pass of new tokens on top of a KV cache (transformers' `DynamicCache`), for
  iterative compression conditioned on an already-compressed prefix; `evict` drops old cache
  entries when the window is full.

Logits are never materialised for a whole batch: the final hidden states go through the output
head in slices and only the target token's log-probability is kept (full-vocabulary fp32 logits
of 2k tokens are ~400 MB for a 49k vocabulary).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import PcbenchError
from core.models import ModelSpec, torch_dtype

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


class CausalScorer:
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

    @staticmethod
    def cache_length(cache: Any | None) -> int:
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


def load_scorer(env: Any, name: str, revision: str | None, dtype: str, device: str) -> CausalScorer:
    """The scorer LM from the harness's pool (loaded once per process)."""
    spec = ModelSpec(name=name, revision=revision, dtype=dtype, device=device, key="compressor.model")
    return env.models.get(spec, _load_causal_lm)


def _load_causal_lm(path: str, spec: ModelSpec, device: str) -> CausalScorer:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    if not getattr(tokenizer, "is_fast", False):
        raise PcbenchError(f"compressor.model={spec.name!r} has no fast tokenizer; token offsets need one")
    model = AutoModelForCausalLM.from_pretrained(path, revision=spec.revision, dtype=torch_dtype(spec.dtype),
                                                 trust_remote_code=spec.trust_remote_code)
    model.to(device).eval()
    return CausalScorer(model, tokenizer, device, spec.name)


# -- helpers shared by the family ------------------------------------------------------------------


def spans_of_tokens(offsets: Sequence[tuple[int, int]], text: str) -> list[int]:
    """Each token's anchor character: its first non-space character (byte-level BPE tokens carry
    the space before a word, which belongs to the previous unit's trailing whitespace)."""
    anchors = []
    for start, end in offsets:
        anchor = start
        while anchor < end - 1 and text[anchor].isspace():
            anchor += 1
        anchors.append(anchor)
    return anchors


def aggregate(anchors: Sequence[int], scores: Sequence[float], bounds: Sequence[tuple[int, int]]) -> list[float]:
    """Sum of token scores per unit; a token belongs to the unit holding its anchor character.

    `bounds` are [start, end) character spans, sorted and disjoint. NaN scores count as 0.
    """
    starts = np.asarray([b[0] for b in bounds], dtype=np.int64)
    ends = np.asarray([b[1] for b in bounds], dtype=np.int64)
    totals = np.zeros(len(bounds))
    if not len(bounds):
        return []
    where = np.searchsorted(starts, np.asarray(anchors, dtype=np.int64), side="right") - 1
    for token, unit in enumerate(where):
        if unit >= 0 and anchors[token] < ends[unit] and not np.isnan(scores[token]):
            totals[unit] += scores[token]
    return [float(t) for t in totals]


def fit_count(order: Sequence[int], render: Callable[[list[int]], str], count: Callable[[list[str]], list[int]],
              limit: int) -> int:
    """The largest k such that the first k items of `order`, rendered, fit in `limit` reader tokens.

    Counts are nearly monotonic in k (a tokenizer may merge across a junction), so a binary search
    finds a k that fits; the caller renders `order[:k]`, which is within the limit by construction.
    """
    low, high = 0, len(order)
    if high and count([render(list(order))])[0] <= limit:
        return high
    while low < high:
        mid = (low + high + 1) // 2
        if count([render(list(order[:mid]))])[0] <= limit:
            low = mid
        else:
            high = mid - 1
    return low
