"""Sentinel (Zhang et al., 2025, "Attention Probing of Proxy Models for LLM Context Compression with an
Understanding Perspective"): a small proxy LM reads the context and the question; each sentence is
described by the attention the last position pays to it in every layer and head, and a logistic
regression trained on gold evidence turns that vector into a relevance probability.

Step by step, and every difference from the reference: docs/methods/trained-pruners.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np

from pcbench.compressors.base import Env
from pcbench.compressors.scored import ScoredCompressor
from pcbench.compressors.units import Unit, first_char_anchors
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, passage_starts
from pcbench.core.knobs import Range
from pcbench.models.causal import CausalLM
from pcbench.models.pool import ModelKnobs

PROBE_FILE = "sentinel.json"
PROMPT_HEAD = "Given the following information: "
PROMPT_TAIL = ("\nAnswer the following question based on the given information with one or few words: {question}"
               "\nAnswer:")


@dataclass
class Probe:
    """A trained Sentinel probe: standardise, then a logistic regression over L x H features."""

    proxy: str
    layers: int
    heads: int
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    trained: dict[str, Any] = field(default_factory=dict)  # how and on what it was trained

    def probability(self, features: np.ndarray) -> np.ndarray:
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / PROBE_FILE
        path.write_text(json.dumps(self.__dict__, indent=1), encoding="utf-8")
        return path


def load_probe(location: str) -> Probe:
    """The probe in `location` (a folder holding sentinel.json, or the file itself): one line if not."""
    path = Path(location).expanduser()
    path = path / PROBE_FILE if path.is_dir() else path
    if not path.is_file():
        raise PcbenchError(f"compressor.model={location!r} holds no {PROBE_FILE}; train one with "
                           "`pcbench-train --style sentinel --out DIR` and give DIR")
    try:
        probe = Probe(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise PcbenchError(f"compressor.model={location!r}: {path.name} is not a Sentinel probe ({exc})") from None
    if not len(probe.coef) == len(probe.mean) == len(probe.scale) == probe.layers * probe.heads:
        raise PcbenchError(f"compressor.model={location!r}: the probe's sizes disagree "
                           f"({len(probe.coef)} weights for {probe.layers} layers x {probe.heads} heads)")
    return probe


def sentence_features(lm: CausalLM, example: Example, units: list[Unit], max_tokens: int) -> np.ndarray:
    """[units, layers x heads]: per unit, the mean over its tokens of the last position's attention,
    renormalised within the context, for every layer and head (layer-major, as the reference).

    The prompt is tokenized as one string, as the reference does, so the tokens at the context's
    edges are the prompt's own; context tokens are found by their characters' offsets."""
    context = example.context
    tail = PROMPT_TAIL.format(question=example.question)
    bounds = lm.tokenize(context).offsets
    lead = [lm.bos_id] if lm.bos_id is not None else []
    anchors: list[int] = []  # context character of each context token seen, over all windows
    rows: list[np.ndarray] = []  # its [layers x heads] attention
    for start in range(0, max(1, len(bounds)), max_tokens):
        piece = bounds[start:start + max_tokens]
        c0, c1 = (piece[0][0], piece[-1][1]) if piece else (0, len(context))
        if start + max_tokens >= len(bounds):
            c1 = len(context)
        prompt = PROMPT_HEAD + context[c0:c1] + tail
        tokens = lm.tokenize(prompt)
        at = first_char_anchors(tokens.offsets, prompt)
        inside = [i for i, a in enumerate(at) if len(PROMPT_HEAD) <= a < len(PROMPT_HEAD) + c1 - c0]
        if not inside:
            continue
        seen = lm.attention(lead + tokens.ids, list(range(lm.layer_count)))[:, :, 0, len(lead):]
        seen = seen[:, :, inside]  # [layers, heads, context tokens]
        seen = seen / np.clip(seen.sum(axis=-1, keepdims=True), 1e-8, None)
        rows.extend(seen.reshape(-1, len(inside)).T)
        anchors.extend(at[i] - len(PROMPT_HEAD) + c0 for i in inside)
    width = rows[0].shape[0] if rows else 0
    out = np.zeros((len(units), width))
    starts = dict(passage_starts(example.passages))
    where = np.asarray(anchors)
    for k, unit in enumerate(units):
        a, b = starts[unit.passage] + unit.start, starts[unit.passage] + unit.end
        mine = np.flatnonzero((where >= a) & (where < b)) if len(where) else np.zeros(0, dtype=int)
        if len(mine):
            out[k] = np.mean([rows[i] for i in mine], axis=0)
    return out


@dataclass
class Sentinel(ScoredCompressor, ModelKnobs):
    """Sentinel (Zhang et al. 2025), from its official code: a trained probe over a proxy LM's attention.

    A proxy causal LM reads Sentinel's prompt; each sentence's features are the last position's
    attention to it in every layer and head; a logistic regression trained on gold evidence
    (`pcbench-train --style sentinel`) gives its probability. Knobs: the budget (or `threshold` on
    the probability), `model` (the probe's folder), `level`.
    """

    proxy: str | None  # the proxy LM; None: the one the probe was trained with
    max_tokens: Annotated[int, Range(16)]  # context tokens per forward pass

    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.level != "sentence":
            raise PcbenchError(f"compressor.level={self.level!r} is not allowed for sentinel; allowed: sentence "
                               "(its probe scores sentences)")

    def probe(self) -> Probe:
        return load_probe(self.model)

    def scorer_key(self) -> dict[str, Any]:
        # The folder's name is not its content: a probe retrained into the same folder scores anew.
        digest = hashlib.sha256(json.dumps(self.probe().__dict__, sort_keys=True).encode()).hexdigest()[:16]
        return {**super().scorer_key(), "probe": digest}

    def score_batch(self, examples: list[Example], units: list[list[Unit]], env: Env) -> list[list[float]]:
        probe = self.probe()
        lm = env.causal_lm(self.model_spec(self.proxy or probe.proxy))
        out = []
        for example, us in zip(examples, units):
            features = sentence_features(lm, example, us, self.max_tokens)
            if features.shape[1] != probe.layers * probe.heads:
                raise PcbenchError(f"compressor.model={self.model!r}: its probe reads {probe.layers} layers x "
                                   f"{probe.heads} heads, the proxy gives {features.shape[1]} features; "
                                   f"use the proxy it was trained with ({probe.proxy})")
            out.append([float(p) for p in probe.probability(features)])
        return out
