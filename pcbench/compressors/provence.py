"""Provence (Chirkova et al., ICLR 2025): a cross-encoder that reranks passages and prunes their
sentences in one forward pass over (question, passage).

Step by step, and every difference from the reference: docs/methods/trained-pruners.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from pcbench.compressors.base import Compressed, Env
from pcbench.compressors.scored import ScoredCompressor
from pcbench.compressors.units import Unit, group, last_char_anchors, unit_spans
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.core.notices import warn_once
from pcbench.models.encoders import (
    EDGE_SLACK,
    SPECIALS,
    Block,
    PassageTokens,
    Pruner,
    checkpoint_layout,
    load_pruner,
    normalize_question,
    plan_blocks,
    read_config,
    score_blocks,
    ships_code,
)
from pcbench.models.pool import ModelKnobs, ModelSpec, torch_dtype

log = logging.getLogger(__name__)


# The authors' released checkpoints, whose code (process()) is trusted without asking. Any other
# folder or id runs its own code only with compressor.trust_remote_code=true.
PUBLISHED = ("naver/provence-reranker-debertav3-v1", "naver/xprovence-reranker-bgem3-v1",
             "naver/xprovence-reranker-bgem3-v2")


def shadowed(name: str) -> bool:
    """A hub id that a local file or folder of the same name would stand in for when loaded."""
    return Path(name).expanduser().exists()


def load_remote(path: str, spec: ModelSpec, device: str) -> Any:
    """The checkpoint's own model class (its modeling file), which brings `process()`."""
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(path, revision=spec.revision, trust_remote_code=True,
                                          dtype=torch_dtype(spec.dtype))
    except (ImportError, AttributeError, TypeError) as exc:  # code written for another transformers
        reason = " ".join(str(exc).split())[:200]
        raise PcbenchError(f"{spec.key}={spec.name!r}: its modeling code does not load with transformers "
                           f"here ({type(exc).__name__}: {reason}); use compressor.implementation=native") from None
    if not callable(getattr(model, "process", None)):
        raise PcbenchError(f"{spec.key}={spec.name!r}: its remote code has no process() method; "
                           "use compressor.implementation=native")
    return model.to(device).eval()


def sentence_score(probs: list[float], rule: str) -> float:
    """The per-sentence statistic whose `>= T` is the keep rule (docs/methods/trained-pruners.md).

    checkpoint: the released process() keeps a token when p > T and a sentence when the share of its
    kept tokens is > T. That share f(T) only falls as T rises, so the rule holds exactly for T below
    the crossing point T* = max_k min(p_(k), k/n) (p_(k) the k-th largest); the score is the largest
    float under T*, so that "score >= T" is "T < T*", strict as the released rule. It is free of T,
    so scores are cached across thresholds and rank sentences under a rate too.
    """
    if not probs:
        return 0.0
    ranked = sorted(probs, reverse=True)
    if rule == "checkpoint":
        n = len(ranked)
        crossing = max(min(p, (k + 1) / n) for k, p in enumerate(ranked))
        return math.nextafter(float(crossing), -math.inf)
    if rule == "openprovence":
        # OpenProvence's process() keeps a sentence when its mean probability is > T: the largest
        # float under the mean makes "score >= T" that strict rule.
        return math.nextafter(float(np.mean(probs)), -math.inf)
    return float(ranked[len(ranked) // 2])


@dataclass
class Provence(ScoredCompressor, ModelKnobs):
    """Provence (Chirkova et al., ICLR 2025): rerank passages and prune their sentences in one pass.

    A cross-encoder reads (question, passage) and gives each sentence a keep probability and the
    passage a reranking score; sentences above `threshold` are kept (or the best under a rate).
    Runs the checkpoint's own `process()` or pcbench's native rule (`implementation`). Knobs:
    `threshold` or the budget, `implementation`, `reorder`, `top_k`, the model block.
    """

    threshold: Annotated[float, Range(0, 1)] | None  # keep probability T (0.1 conservative, 0.5 prunes more)
    level: Literal["sentence", "passage"]  # sentence: prune sentences; passage: rank whole passages (rerank mode)
    implementation: Literal["auto", "remote", "native"]
    sentence_rule: Literal["auto", "checkpoint", "paper", "openprovence"]  # native; auto: checkpoint for naver's
    title: Literal["dataset", "first_sentence", "none"]  # how titles reach the model (see the YAML)
    always_select_title: bool
    reorder: bool  # passages sorted by reranking score (Provence's rerank mode)
    top_k: Annotated[int, Range(1)] | None  # with reorder: keep the k best-ranked passages
    normalize_question: bool  # native: lower case, no punctuation, as Provence's process() does
    max_length: Annotated[int, Range(32)]  # tokens per forward pass (question + block)
    batch_size: Annotated[int, Range(1)]
    dtype: Literal["float32", "bfloat16", "float16"]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.top_k is not None and not self.reorder:
            raise PcbenchError("compressor.top_k keeps the best-ranked passages, so it needs compressor.reorder=true "
                               "(or compressor.top_k=null)")
        if self.reorder and self.order == "score":
            raise PcbenchError("compressor.reorder=true already orders passages (by reranking score); "
                               "set compressor.order=original")
        if self.implementation == "remote" and self.threshold is None:
            raise PcbenchError(_REMOTE_BUDGET)
        if self.level == "passage":
            if self.threshold is not None:
                raise PcbenchError("compressor.level=passage keeps whole passages by their reranking score, which has "
                                   "no fixed scale: set compressor.rate or compressor.target_tokens (and "
                                   "compressor.threshold=null)")
            if self.implementation == "remote":
                raise PcbenchError("compressor.level=passage runs natively (the ranking head); set "
                                   "compressor.implementation=native or auto")

    # --- which implementation -----------------------------------------------------------------

    def trusted(self) -> bool:
        """Run the checkpoint's own code? When the user says so, or for the authors' published ids
        fetched from the hub. Trust follows where the files come from, not what the name says:
        `from_pretrained` reads a local folder of the same name first, so a folder named
        `naver/provence-reranker-debertav3-v1` under the working folder is anyone's code."""
        return self.trust_remote_code or (self.model in PUBLISHED and not shadowed(self.model))

    def key(self) -> dict[str, Any]:
        # trust_remote_code changes nothing elsewhere; here it picks the implementation auto runs.
        return {**super().key(), "trust_remote_code": self.trust_remote_code}

    def _spec(self, trust: bool) -> ModelSpec:
        return self.model_spec(trust_remote_code=trust)

    def backend(self, env: Env) -> tuple[str, Any]:
        """("remote", model with process()) or ("native", Pruner), loaded through the pool.

        `remote` that cannot run (no modeling code, untrusted, nltk's punkt_tab missing, code that
        fails to import) is one line before any example; `auto` then falls back to native with one
        warning saying why.
        """
        implementation = self.implementation
        if implementation != "native":
            config = env.models.get(self._spec(False), read_config)
            has_code = ships_code(config)
            why = None
            if not has_code:
                why = (f"compressor.model={self.model!r} ships no modeling code (no auto_map in its config.json); "
                       "use compressor.implementation=native")
            elif not self.trusted():
                where = (f" (a local folder {Path(self.model).expanduser().resolve()} has naver's name, so it is not "
                         "naver's published checkpoint)") if shadowed(self.model) else ""
                why = (f"compressor.model={self.model!r} ships its own modeling code (auto_map in config.json), which "
                       f"runs only for naver's published checkpoints from the hub or with "
                       f"compressor.trust_remote_code=true{where}; not running it")
            elif self.threshold is None:
                why = _REMOTE_BUDGET
            elif self.level == "passage":
                why = "compressor.level=passage runs natively (the ranking head ranks whole passages)"
            elif env.models.get(self._spec(False), uses_nltk):
                why = _punkt_missing()
            if why is None:
                try:
                    return "remote", env.models.get(self._spec(True), load_remote)
                except PcbenchError as exc:  # its code does not import or load here
                    if implementation == "remote":
                        raise
                    why = str(exc)
            if implementation == "remote":
                raise PcbenchError(why)
            if has_code:
                warn_once(log, why, "compressor.implementation=auto runs pcbench's native Provence: %s", why)
        if not self.always_select_title:
            raise PcbenchError("compressor.always_select_title=false needs the remote implementation: natively a "
                               "kept passage is always rendered with its title, as for every other compressor")
        return "native", env.models.get(self._spec(False), load_pruner)

    def rule(self, env: Env) -> str:
        """The native sentence rule: `auto` is the released code's own for naver's layout (checkpoint)
        and OpenProvence's (openprovence), the paper's for other token classifiers (ours,
        LLMLingua-2-style)."""
        if self.sentence_rule != "auto":
            return self.sentence_rule
        layout = env.models.get(self._spec(False), checkpoint_layout)
        return {"provence": "checkpoint", "open_provence": "openprovence"}.get(layout, "paper")

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        kind, model = self.backend(env)
        if kind == "remote":
            return self._remote(examples, model)
        return super().compress_batch(examples, env)

    # --- native -------------------------------------------------------------------------------

    def score_batch(self, examples: list[Example], units: list[list[Unit]], env: Env) -> list[list[float]]:
        """Per sentence: the rule's keep score; then one reranking score per passage that has
        sentences (appended after the unit scores, so both are cached together)."""
        _, pruner = self.backend(env)
        assert isinstance(pruner, Pruner)
        rule = self.rule(env)
        window = min(self.max_length, pruner.window)
        blocks = []
        for i, (example, us) in enumerate(zip(examples, units)):
            question = normalize_question(example.question) if self.normalize_question else example.question
            room = window - pruner.count([question])[0] - SPECIALS - EDGE_SLACK
            for j in sorted({u.passage for u in us}):
                passage = example.passages[j]
                prefix = f"{passage.title}\n" if passage.title and self.title != "none" else ""
                spans = [(u.start, u.end) for u in us if u.passage == j]
                budget = room - (pruner.count([prefix])[0] if prefix else 0)
                if budget < 8:
                    raise PcbenchError(f"compressor.max_length={self.max_length} leaves no room for the passage "
                                       f"after the question of example {example.id!r}; raise it")
                for start, end in plan_blocks(spans, pruner.offsets(passage.text), budget):
                    # Title tokens are context for the model, not prunable text (skip).
                    blocks.append(Block((i, j), question, prefix + passage.text[start:end], start - len(prefix),
                                        skip=len(prefix)))
        scored = score_blocks(pruner, blocks, self.batch_size, window, rank=True)
        ranks = {owner: tokens.rank for owner, tokens in scored.items() if tokens.rank is not None}
        if self.level == "passage" and len(ranks) < len(scored):
            raise PcbenchError(f"compressor.level=passage ranks passages by the ranking head, and "
                               f"compressor.model={self.model!r} has none; use level=sentence")
        empty = PassageTokens([], [], None)
        out = []
        for i, us in enumerate(units):
            passages = sorted({u.passage for u in us})
            scores = [0.0] * len(us)
            for j in passages:
                members = [k for k, u in enumerate(us) if u.passage == j]
                tokens = scored.get((i, j), empty)
                grouped = group(last_char_anchors(tokens.offsets), tokens.keep, unit_spans([us[k] for k in members]))
                for k, probs in zip(members, grouped):
                    # Rerank mode: a whole passage scores its ranking head's relevance.
                    scores[k] = ranks[(i, j)] if self.level == "passage" else sentence_score(probs, rule)
            out.append(scores + [ranks[(i, j)] for j in passages if (i, j) in ranks])
        return out

    def select(self, example: Example, units: list[Unit], scores: list[float], env: Env) -> Compressed:
        n = len(units)
        unit_scores, extra = scores[:n], scores[n:]
        passages = sorted({u.passage for u in units})
        ranks = dict(zip(passages, extra)) if len(extra) == len(passages) and extra else {}
        info: dict[str, Any] = {"implementation": "native", "sentence_rule": self.rule(env),
                                "threshold": self.threshold, "model": self.model}
        if self.threshold is not None and units:
            kept_chars = sum(len(u.text) for u, s in zip(units, unit_scores) if s >= self.threshold)
            info["char_ratio_before_reorder"] = round(kept_chars / max(1, sum(len(u.text) for u in units)), 4)
        if not self.reorder:
            result = super().select(example, units, unit_scores, env)
            return _finish(result, info, passages, len(passages), ranks, len(example.passages))
        if not ranks:
            raise PcbenchError(f"compressor.reorder=true needs reranking scores, and compressor.model={self.model!r} "
                               "has no ranking head")
        order = sorted(passages, key=lambda j: (-ranks[j], j))[: self.top_k or None]
        where = {j: k for k, j in enumerate(order)}
        sub = replace(example, passages=tuple(example.passages[j] for j in order))
        picked = [k for k, u in enumerate(units) if u.passage in where]
        sub_units = [replace(units[k], passage=where[units[k].passage]) for k in picked]
        result = super().select(sub, sub_units, [unit_scores[k] for k in picked], env)
        return _finish(result, info, passages, len(order), ranks, len(example.passages))

    # --- remote -------------------------------------------------------------------------------

    def _remote(self, examples: list[Example], model: Any) -> list[Compressed]:
        results: list[Compressed | None] = [None] * len(examples)
        todo, contexts, titles, indices = [], [], [], []
        for i, example in enumerate(examples):
            present = [j for j, p in enumerate(example.passages) if p.text.strip()]
            if not present:
                results[i] = Compressed((), {"implementation": "remote", "passages": 0, "kept_passages": 0,
                                             "emptied_passages": 0})
                continue
            todo.append(i)
            indices.append(present)
            ps = [example.passages[j] for j in present]
            contexts.append([p.render() if self.title == "first_sentence" else p.text for p in ps])
            titles.append([p.title for p in ps])
        if todo:
            title: Any = {"dataset": titles, "first_sentence": "first_sentence", "none": None}[self.title]
            # reorder/top_k are applied below from the returned scores (the same sort and cut), so
            # every output stays traceable to its passage and compression is counted before them.
            out = model.process([examples[i].question for i in todo], contexts, title=title,
                                threshold=float(self.threshold or 0.0), always_select_title=self.always_select_title,
                                batch_size=self.batch_size, reorder=False, enable_warnings=False)
            for k, i in enumerate(todo):
                results[i] = self._arrange(examples[i], indices[k], _nested(out["pruned_context"], k),
                                           _nested(out.get("reranking_score"), k))
        return [r for r in results if r is not None]

    def _arrange(self, example: Example, present: list[int], pruned: list[Any], scores: list[Any]) -> Compressed:
        if len(pruned) != len(present):
            raise PcbenchError(f"compressor.model={self.model!r}: process() returned {len(pruned)} passages for "
                               f"{len(present)} given (example {example.id!r})")
        ranks = {j: float(s) for j, s in zip(present, scores)} if scores else {}
        kept: dict[int, Passage] = {}
        for j, text in zip(present, pruned):
            passage = example.passages[j]
            body = _without_title(str(text or ""), passage.title, passage.text).strip()
            if body:
                kept[j] = replace(passage, text=body, sentences=None) if body != passage.text else passage
        original = sum(len(example.passages[j].text) for j in present)
        info = {"implementation": "remote", "sentence_rule": "checkpoint", "threshold": self.threshold,
                "model": self.model,
                "char_ratio_before_reorder": round(sum(len(p.text) for p in kept.values()) / max(1, original), 4)}
        order = present
        if self.reorder:
            if not ranks:
                raise PcbenchError(f"compressor.reorder=true needs reranking scores; {self.model!r} returned none")
            order = sorted(present, key=lambda j: (-ranks[j], j))[: self.top_k or None]
        result = Compressed(tuple(kept[j] for j in order if j in kept))
        return _finish(result, info, present, len(order), ranks, len(example.passages))


_REMOTE_BUDGET = ("the checkpoint's process() only takes a threshold: set compressor.threshold (and null "
                  "compressor.rate / compressor.target_tokens), or compressor.implementation=native to rank sentences "
                  "under a rate or token budget")


def uses_nltk(path: str, spec: ModelSpec, device: str) -> bool:
    """Does the checkpoint's modeling code use nltk (naver's process() splits sentences with it)?"""
    from transformers.utils import cached_file

    config = read_config(path, spec, device)
    modules = {str(target).split(".", 1)[0] for target in (config.get("auto_map") or {}).values()}
    for module in modules:
        file = cached_file(path, f"{module}.py", revision=spec.revision, _raise_exceptions_for_missing_entries=False)
        if file and "nltk" in Path(file).read_text(encoding="utf-8", errors="replace"):
            return True
    return False


def _punkt_missing() -> str | None:
    """Why the checkpoint's process() cannot split sentences here, or None: it calls nltk's
    sent_tokenize, which needs nltk and its punkt_tab data (a separate download)."""
    try:
        import nltk
    except ImportError:
        return ("the checkpoint's process() splits sentences with nltk, which is not installed: pip install nltk "
                "&& python -m nltk.downloader punkt_tab, or compressor.implementation=native")
    try:
        nltk.data.find("tokenizers/punkt_tab")
    except LookupError:
        return ("the checkpoint's process() splits sentences with nltk's punkt_tab, which is not downloaded here: "
                "python -m nltk.downloader punkt_tab, or compressor.implementation=native")
    return None


def _nested(value: Any, k: int) -> list[Any]:
    if value is None:
        return []
    item = value[k]
    return list(item) if isinstance(item, (list, tuple, np.ndarray)) else [item]


def _without_title(text: str, title: str, passage: str) -> str:
    """The pruned text less the title process() put in front of it (rendered apart, never twice).

    Only an added title goes: a kept first sentence that itself begins with the title's words
    ("Modern Tales is a webcomics site...") reads as the passage's own start and stays whole.
    """
    if not title or not text.startswith(title) or not (len(text) == len(title) or text[len(title)] in " \n:."):
        return text
    mine, own = " ".join(text.split()), " ".join(passage.split())
    n = min(len(mine), len(own), 2 * len(title) + 2)
    if mine[:n] == own[:n]:
        return text
    return text[len(title):].lstrip(" \n:.")


def _finish(result: Compressed, info: dict[str, Any], passages: list[int], considered: int,
            ranks: dict[int, float], total: int) -> Compressed:
    """Counts every passage: given, cut by top_k, pruned to "" (dropped), kept."""
    scores = [ranks.get(j) for j in range(total)] if ranks else None
    kept = len(result.passages)
    extras = {**result.extras, **info, "reranking_scores": [None if s is None or math.isnan(s) else round(s, 4)
                                                            for s in scores] if scores else None,
              "passages": len(passages), "dropped_by_top_k": len(passages) - considered,
              "emptied_passages": considered - kept, "kept_passages": kept}
    return Compressed(result.passages, extras)
