"""Encoders in the model layer: sentence embedders and cross-encoders (sentence-transformers), dual
encoders (RECOMP's extractive compressors), and token classifiers, the model behind Provence
(native), LLMLingua-2 and the trainer.

A *pruner* is a token-classification encoder (label 1 = keep) plus, optionally, a ranking head
on the first token's final hidden state: one forward pass over (question, text) gives a keep
probability per token and a relevance score for the text, as in Provence (Chirkova et al. 2025).

Two layouts load here, neither running code shipped with the checkpoint:

- ours (and LLMLingua-2's): a plain `AutoModelForTokenClassification` folder with 2 labels; the
  ranking head, when trained, sits beside it in `ranking_head.safetensors`
  (`dense` -> activation -> `classifier`, DeBERTa's ContextPooler shape);
- naver's Provence weights: backbone under its base-model prefix, `token_classifier` (2 labels),
  `pooler.dense` and `classifier` (1 label, the reranking score). They are remapped onto the
  same two modules, so a Provence checkpoint also runs without `trust_remote_code`.

Long texts are cut into blocks at unit ends (sentences, or LLMLingua-2's chunk-end tokens) so
that every block fits the window beside the question: nothing is silently truncated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pcbench.core.errors import PcbenchError
from pcbench.models.pool import ModelSpec, torch_dtype

KEEP = 1  # label index of "keep" in every token classifier here (LLMLingua-2's "preserve")
RANKING_FILE = "ranking_head.safetensors"
# Added around a (question, block) pair by BERT/DeBERTa ([CLS] q [SEP] c [SEP]) or XLM-R
# (<s> q </s></s> c </s>), plus room for a few tokens that merge differently at a block's edge.
SPECIALS = 4
EDGE_SLACK = 4


# -- sentence-transformers models ------------------------------------------------------------------


def load_sentence_transformer(path: str, spec: ModelSpec, device: str) -> Any:
    from sentence_transformers import SentenceTransformer  # slow import, only when used

    return SentenceTransformer(path, device=device, revision=spec.revision, trust_remote_code=spec.trust_remote_code)


def load_cross_encoder(path: str, spec: ModelSpec, device: str) -> Any:
    from sentence_transformers import CrossEncoder  # slow import, only when used

    dtype = torch_dtype(spec.dtype)
    return CrossEncoder(path, device=device, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                        model_kwargs={"dtype": dtype} if dtype != "auto" else None)


# -- dual encoders -------------------------------------------------------------------------------


class DualEncoder:
    """A Contriever-style dual encoder (RECOMP's extractive compressors): a plain `AutoModel` whose
    token states are pooled into one vector per text; question and sentences are encoded apart and
    compared by dot product."""

    def __init__(self, tokenizer: Any, model: Any, device: str) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.device = device

    def encode(self, texts: Sequence[str], batch_size: int, max_length: int, pooling: str) -> np.ndarray:
        """One vector per text, texts batched by length (padding is masked out of the mean, so a
        text's vector does not depend on its batch); each text truncated at `max_length` tokens."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(order), max(1, batch_size)):
            ids = order[start:start + batch_size]
            enc = self.tokenizer([texts[i] for i in ids], padding=True, truncation=True, max_length=max_length,
                                 return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in enc.items()}
            with torch.inference_mode():
                states = self.model(**inputs)[0].float()
            if pooling == "mean":  # RECOMP's mean_pooling: padding masked out
                mask = inputs["attention_mask"][..., None].bool()
                pooled = states.masked_fill(~mask, 0.0).sum(dim=1) / mask.sum(dim=1)
            else:  # the first token's state
                pooled = states[:, 0]
            for row, i in enumerate(ids):
                out[i] = pooled[row].cpu().numpy().astype(np.float64)
        return np.stack([o for o in out if o is not None]) if texts else np.zeros((0, 0))


def load_dual_encoder(path: str, spec: ModelSpec, device: str) -> DualEncoder:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    dtype = torch_dtype(spec.dtype)
    model = AutoModel.from_pretrained(path, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
                                      dtype=dtype if dtype != "auto" else "auto")
    return DualEncoder(tokenizer, model.to(device).eval(), device)


# -- token classifiers ---------------------------------------------------------------------------


def _nn() -> Any:
    import torch.nn as nn

    return nn


def ranking_head(hidden: int, inner: int, activation: str) -> Any:
    """DeBERTa's ContextPooler (first token -> dense -> activation) then a 1-unit classifier."""
    import torch
    from transformers.activations import ACT2FN

    nn = _nn()

    class RankingHead(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(hidden, inner)
            self.classifier = nn.Linear(inner, 1)
            self.activation = activation

        def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
            pooled = ACT2FN[self.activation](self.dense(hidden_states[:, 0]))
            return self.classifier(pooled)[:, 0]

    return RankingHead()


@dataclass
class Scored:
    """One (question, text) pair: keep probability and character span of each text token."""

    keep: np.ndarray
    offsets: list[tuple[int, int]]
    rank: float | None


class Pruner:
    """A loaded token classifier (+ ranking head) and its tokenizer."""

    def __init__(self, tokenizer: Any, model: Any, ranking: Any | None, device: str) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.ranking = ranking
        self.device = device
        positions = int(getattr(model.config, "max_position_embeddings", None) or 512)
        # RoBERTa-style models offset positions by the padding index: two positions are never usable.
        if model.config.model_type in ("roberta", "xlm-roberta", "camembert"):
            positions -= 2
        self.window = positions  # the most tokens one forward pass may hold

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [tuple(o) for o in self.tokenizer(text, add_special_tokens=False,
                                                 return_offsets_mapping=True)["offset_mapping"]]

    def run(self, firsts: Sequence[str] | None, seconds: Sequence[str], batch_size: int,
            max_length: int, rank: bool = True) -> list[Scored]:
        """Keep probabilities for the tokens of each second text, (first, second) pairs batched.

        Pairs go through the model sorted by length, so a batch pads little; results come back in
        the order given. With `firsts` None the seconds are encoded alone (query-agnostic).
        """
        import torch

        order = sorted(range(len(seconds)), key=lambda i: len(seconds[i]))
        out: list[Scored | None] = [None] * len(seconds)
        target = 0 if firsts is None else 1
        ranking = self.ranking if rank else None
        for start in range(0, len(order), max(1, batch_size)):
            ids = order[start:start + batch_size]
            texts = [seconds[i] for i in ids]
            args: tuple[Any, ...] = (texts,) if firsts is None else ([firsts[i] for i in ids], texts)
            enc = self.tokenizer(*args, return_offsets_mapping=True, padding=True, return_tensors="pt",
                                 truncation="only_second" if firsts is not None else True,
                                 max_length=min(max_length, self.window))
            offsets = enc.pop("offset_mapping").tolist()
            inputs = {k: v.to(self.device) for k, v in enc.items()}
            with torch.inference_mode():
                result = self.model(**inputs, output_hidden_states=ranking is not None)
                keep = torch.softmax(result.logits.float(), dim=-1)[..., KEEP].cpu().numpy()
                ranks = None
                if ranking is not None:  # a model whose output carries its ranking (OpenProvence) needs no head
                    own = getattr(result, "ranking", None)
                    ranks = (own if own is not None else ranking(result.hidden_states[-1])).float().cpu().numpy()
            for row, i in enumerate(ids):
                sequence = enc.sequence_ids(row)
                positions = [p for p, s in enumerate(sequence) if s == target]
                out[i] = Scored(keep[row, positions].astype(np.float64),
                                [(int(offsets[row][p][0]), int(offsets[row][p][1])) for p in positions],
                                float(ranks[row]) if ranks is not None else None)
        return [o for o in out if o is not None]


@dataclass
class Block:
    """One piece of a passage that a pruner reads beside the question (plan_blocks cuts them)."""

    owner: tuple[int, int]  # (example, passage) the block belongs to
    first: str | None  # the question, or None to read the block alone
    text: str  # what the model reads: any prefix (a title line), then the block
    shift: int  # added to the model's offsets to land in the passage's text
    skip: int = 0  # characters of prefix: context for the model, not prunable text


@dataclass
class PassageTokens:
    """A passage's tokens as the pruner scored them, blocks joined: offsets into the passage text."""

    offsets: list[tuple[int, int]]
    keep: list[float]
    rank: float | None  # the ranking head's score from the passage's first block, if the model has one


def score_blocks(pruner: Pruner, blocks: Sequence[Block], batch_size: int, max_length: int,
                 rank: bool) -> dict[tuple[int, int], PassageTokens]:
    """Keep probabilities of every passage cut into `blocks`, all blocks batched in one run."""
    firsts = None if all(b.first is None for b in blocks) else [b.first or "" for b in blocks]
    results = pruner.run(firsts, [b.text for b in blocks], batch_size, max_length, rank=rank)
    out: dict[tuple[int, int], PassageTokens] = {}
    for block, result in zip(blocks, results):
        tokens = out.setdefault(block.owner, PassageTokens([], [], None))
        for (start, end), p in zip(result.offsets, result.keep):
            if start >= block.skip:
                tokens.offsets.append((start + block.shift, end + block.shift))
                tokens.keep.append(float(p))
        if tokens.rank is None and result.rank is not None:
            tokens.rank = result.rank
    return out


def read_config(path: str, spec: ModelSpec, device: str) -> dict[str, Any]:
    """The checkpoint's config.json as a dict (from a folder or the hub cache), no code run."""
    from transformers.utils import cached_file

    file = cached_file(path, "config.json", revision=spec.revision)
    if file is None:
        raise OSError(f"no config.json in {path}")
    return json.loads(Path(file).read_text())


def ships_code(config: dict[str, Any]) -> bool:
    return bool(config.get("auto_map"))


def _weights(path: str, revision: str | None) -> dict[str, Any]:
    from transformers.utils import cached_file

    for name in ("model.safetensors", "pytorch_model.bin"):
        try:
            file = cached_file(path, name, revision=revision, _raise_exceptions_for_missing_entries=False)
        except OSError:
            file = None
        if file:
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(file)
            import torch

            return torch.load(file, map_location="cpu", weights_only=True)
    raise OSError(f"no model.safetensors or pytorch_model.bin in {path}")


def load_pruner(path: str, spec: ModelSpec, device: str) -> Pruner:
    """A token classifier with its ranking head where there is one; see the module docstring."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    values = read_config(path, spec, device)
    if values.get("model_type") == OPEN_PROVENCE:
        return _load_open_provence(path, spec, device, values)
    ranking = None
    state = _weights(path, spec.revision) if _is_provence_layout(path, spec) else None
    config = _backbone_config(path, spec, state)
    # No remote code here, ever (naver's config names a model type only its own file defines).
    tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision, config=config, trust_remote_code=False)
    if not getattr(tokenizer, "is_fast", False):
        raise PcbenchError(f"{spec.key}={spec.name!r}: its tokenizer has no fast version, and character "
                           "offsets (needed to map token scores onto sentences and words) come only from fast ones")
    if state is not None:
        # naver's layout: remap the pruning head onto a token classifier, the ranking head apart.
        config.num_labels = 2
        model = AutoModelForTokenClassification.from_config(config)
        prefix = model.base_model_prefix
        body = {k: v for k, v in state.items() if k.startswith(prefix + ".")}
        body.update({"classifier." + k.split(".", 1)[1]: v for k, v in state.items()
                     if k.startswith("token_classifier.")})
        missing, _ = model.load_state_dict(body, strict=False)
        missing = [k for k in missing if "position_ids" not in k]
        if missing:
            raise PcbenchError(f"{spec.key}={spec.name!r}: weights missing for {missing[0]} "
                               f"(and {len(missing) - 1} more)")
        dense, head = state["pooler.dense.weight"], state["classifier.weight"]
        ranking = ranking_head(dense.shape[1], dense.shape[0], getattr(config, "pooler_hidden_act", "gelu"))
        ranking.load_state_dict({"dense.weight": dense, "dense.bias": state["pooler.dense.bias"],
                                 "classifier.weight": head[:1], "classifier.bias": state["classifier.bias"][:1]})
    else:
        model = AutoModelForTokenClassification.from_pretrained(path, revision=spec.revision)
        if model.config.num_labels != 2:
            raise PcbenchError(f"{spec.key}={spec.name!r} classifies tokens into {model.config.num_labels} labels; "
                               "a pruner needs 2 (drop, keep)")
        ranking = _our_ranking_head(path, spec, model.config)
    dtype = torch_dtype(spec.dtype)
    model = model.to(device=device, dtype=dtype if dtype != "auto" else None).eval()
    if ranking is not None:
        ranking = ranking.to(device=device, dtype=next(model.parameters()).dtype).eval()
    return Pruner(tokenizer, model, ranking, device)


# OpenProvence's layout (hotchpotch/open_provence, `OpenProvenceModel`): its config names model type
# "open_provence" and carries the backbone's own config; the weights are `ranking_model.*`, the
# backbone's sequence classifier (one label: the reranking logit), and `pruning_head.classifier`, a
# linear keep/drop layer on the backbone's last hidden states.
OPEN_PROVENCE = "open_provence"


def _open_provence_module(ranking_model: Any, pruning: Any) -> Any:
    import torch
    from transformers.utils import ModelOutput

    nn = _nn()

    class OpenProvenceNative(nn.Module):  # type: ignore[name-defined]
        """Keep/drop logits per token and, as `ranking`, the sigmoid of the reranking logit, as
        OpenProvence's `process()` reports it."""

        def __init__(self) -> None:
            super().__init__()
            self.ranking_model = ranking_model
            self.pruning = pruning
            self.config = ranking_model.config

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    output_hidden_states: bool = False, **_: Any) -> ModelOutput:
            out = self.ranking_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            hidden = out.hidden_states[-1]
            return ModelOutput(logits=self.pruning(hidden.to(self.pruning.weight.dtype)),
                               hidden_states=out.hidden_states, ranking=torch.sigmoid(out.logits[:, 0].float()))

    return OpenProvenceNative()


def _load_open_provence(path: str, spec: ModelSpec, device: str, values: dict[str, Any]) -> Pruner:
    """OpenProvence's checkpoints natively (`values`: its config.json): the backbone rebuilt from the
    config's own copy of its config, the weights read by name, no code of the checkpoint run."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    backbone = dict(values.get("base_model_config") or {})
    if "model_type" not in backbone:
        raise PcbenchError(f"{spec.key}={spec.name!r}: its config names model type {OPEN_PROVENCE!r} but carries no "
                           "base_model_config with a model_type (the backbone cannot be rebuilt without its code)")
    config = AutoConfig.for_model(backbone.pop("model_type"), **backbone)
    config.num_labels = int(values.get("num_labels") or 1)
    ranking_model = AutoModelForSequenceClassification.from_config(config)
    state = _weights(path, spec.revision)
    body = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("ranking_model.")}
    missing, _ = ranking_model.load_state_dict(body, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    head = {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith("pruning_head.classifier.")}
    if missing or set(head) != {"weight", "bias"}:
        first = missing[0] if missing else "pruning_head.classifier"
        raise PcbenchError(f"{spec.key}={spec.name!r}: OpenProvence weights missing for {first}")
    pruning = _nn().Linear(head["weight"].shape[1], head["weight"].shape[0])
    pruning.load_state_dict(head)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision, config=config, trust_remote_code=False)
    if not getattr(tokenizer, "is_fast", False):
        raise PcbenchError(f"{spec.key}={spec.name!r}: its tokenizer has no fast version, and character "
                           "offsets come only from fast ones")
    model = _open_provence_module(ranking_model, pruning)
    dtype = torch_dtype(spec.dtype)
    model = model.to(device=device, dtype=dtype if dtype != "auto" else None).eval()
    # The model's output carries the ranking: the Pruner is given the model itself as its ranker.
    return Pruner(tokenizer, model, model, device)


# The backbone a Provence checkpoint's weights name by their prefix (DeBERTa-v3 for naver's
# Provence; XLM-RoBERTa, bge-m3's, for XProvence).
BACKBONES = {"deberta": "deberta-v2", "roberta": "xlm-roberta", "bert": "bert", "electra": "electra"}


def _backbone_config(path: str, spec: ModelSpec, state: dict[str, Any] | None) -> Any:
    """The checkpoint's config, read without running its code. naver's config.json names its own
    model type ("Provence") that only its modeling file defines (auto_map); natively it is the
    backbone's config, the backbone told by the weights' prefix, with the file's own values."""
    from transformers import CONFIG_MAPPING, AutoConfig

    values = read_config(path, spec, "cpu")
    if values.get("model_type") in CONFIG_MAPPING:
        return AutoConfig.from_pretrained(path, revision=spec.revision)
    prefixes = {key.split(".", 1)[0] for key in (state or {})}
    found = [BACKBONES[p] for p in prefixes if p in BACKBONES]
    if len(found) != 1:
        raise PcbenchError(f"{spec.key}={spec.name!r}: config.json names model type {values.get('model_type')!r}, "
                           "which only its own code defines, and its weights name no known backbone "
                           f"({', '.join(sorted(BACKBONES))}); to run its own code: compressor.implementation=remote "
                           "compressor.trust_remote_code=true (only for code you trust)")
    backbone = found[0]
    if backbone == "xlm-roberta" and int(values.get("vocab_size", 0)) < 200_000:
        backbone = "roberta"
    plain = {k: v for k, v in values.items() if k not in ("model_type", "auto_map", "architectures")}
    return AutoConfig.for_model(backbone, **plain)


def load_pruner_tokenizer(path: str, spec: ModelSpec, device: str) -> Any:
    """A token classifier's tokenizer alone (no weights), for cutting text into its words."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, revision=spec.revision, trust_remote_code=False)


def checkpoint_layout(path: str, spec: ModelSpec, device: str) -> str:
    """provence (naver's weight layout), open_provence (OpenProvence's) or token_classifier (ours,
    LLMLingua-2's): read from config.json and the safetensors keys, no weights loaded."""
    if read_config(path, spec, device).get("model_type") == OPEN_PROVENCE:
        return OPEN_PROVENCE
    return "provence" if _is_provence_layout(path, spec) else "token_classifier"


def _is_provence_layout(path: str, spec: ModelSpec) -> bool:
    """naver's checkpoints name their pruning head `token_classifier`; ours and LLMLingua-2's do not."""
    from transformers.utils import cached_file

    index = cached_file(path, "model.safetensors", revision=spec.revision,
                        _raise_exceptions_for_missing_entries=False)
    if index is None:
        return False
    from safetensors import safe_open

    with safe_open(index, framework="pt") as f:
        return any(k.startswith("token_classifier.") for k in f.keys())  # noqa: SIM118 (safe_open has no __iter__)


def _our_ranking_head(path: str, spec: ModelSpec, config: Any) -> Any | None:
    from transformers.utils import cached_file

    file = cached_file(path, RANKING_FILE, revision=spec.revision, _raise_exceptions_for_missing_entries=False)
    if file is None:
        return None
    from safetensors.torch import load_file

    state = load_file(file)
    head = ranking_head(state["dense.weight"].shape[1], state["dense.weight"].shape[0],
                        getattr(config, "pooler_hidden_act", "gelu"))
    head.load_state_dict(state)
    return head


# --- blocks and units ---------------------------------------------------------------------------

def plan_blocks(spans: Sequence[tuple[int, int]], offsets: Sequence[tuple[int, int]], budget: int) -> list[
        tuple[int, int]]:
    """Character spans of consecutive blocks of `spans`, each at most `budget` tokens.

    `spans` tile a text (units: sentences, chunk-end segments); `offsets` are that text's tokens.
    Units are packed whole; a unit longer than a block is cut between tokens.
    """
    budget = max(1, budget)
    ends = [e for s, e in offsets if e > s]
    blocks: list[tuple[int, int]] = []
    start, used = None, 0
    j = 0
    for s, e in spans:
        n = 0
        while j < len(ends) and ends[j] <= e:
            n += 1
            j += 1
        if n > budget:  # one unit alone overflows: cut it between tokens
            if start is not None:
                blocks.append((start, s))
                start, used = None, 0
            token_ends = ends[j - n:j]
            cut = s
            for k in range(budget, n, budget):
                blocks.append((cut, token_ends[k - 1]))
                cut = token_ends[k - 1]
            blocks.append((cut, e))
            continue
        if start is not None and used + n > budget:
            blocks.append((start, s))
            start, used = None, 0
        if start is None:
            start = s
        used += n
    if start is not None and spans:
        blocks.append((start, spans[-1][1]))
    return blocks


_PUNCT = re.compile(r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]")


def normalize_question(text: str) -> str:
    """Provence's question normalisation: lower case, ASCII punctuation removed, spaces collapsed."""
    return " ".join(_PUNCT.sub("", text.lower()).split())
