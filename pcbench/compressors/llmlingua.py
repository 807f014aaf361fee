"""LLMLingua (Jiang et al., EMNLP 2023): budget controller, then iterative token-level compression.

Step by step, and every difference from the reference: docs/methods/token-pruning.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from pcbench.compressors.base import Budget, Compressed, Compressor, Env, SurprisalJob, fetch_surprisals
from pcbench.compressors.units import first_char_anchors, fit_count
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.core.text import split_sentences
from pcbench.models.causal import CausalLM, Tokens
from pcbench.models.pool import ModelKnobs

INF = float("inf")
# The reference keeps this many cache entries at the head (plus the question prefix) when the
# window is full and drops the oldest ones after them.
CACHE_HEAD = 10
BUDGET_SLACK = re.compile(r"^\s*([+\-*/])\s*(\d+(?:\.\d+)?)\s*$")


@dataclass
class Doc:
    """A document for the coarse stage: a passage, or a sentence-respecting piece of a long one."""

    passage: int
    title: str  # the passage title, on its first piece only
    text: str

    def render(self) -> str:
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass
class Plan:
    """What the token-level stage works on: the joined kept documents and where each char goes."""

    docs: list[Doc]
    order: list[int]  # output order of docs (indices into docs)
    text: str  # kept documents joined by blank lines (the reference's input)
    parts: list[tuple[int, int, int, str]]  # (start, end, doc index, "title" | "text") char spans
    ratios: list[float]  # dynamic ratio offset per doc


@dataclass
class Layout:
    """One example ready for the token stage: its budget, its plan and the plan's scorer tokens."""

    extras: dict[str, Any]
    limit: int
    reader_total: int
    target: float  # the budget in scorer tokens
    question: str
    plan: Plan
    tokens: Tokens
    scorer: CausalLM


@dataclass
class LLMLingua(Compressor, Budget, ModelKnobs):
    """LLMLingua (Jiang et al., EMNLP 2023): budget controller, then iterative token-level compression.

    A small causal LM's perplexity ranks whole documents to the budget (plus `context_budget`
    slack), then tokens of the kept documents are dropped segment by segment where their
    self-information, conditioned on what was kept, is lowest. Knobs: the budget, the coarse and
    sentence filters, `iterative_size`, `context_budget`, the model block.
    """

    batch_size: Annotated[int, Range(1)]
    iterative_size: Annotated[int, Range(1)]
    context_budget: str
    token_budget_ratio: Annotated[float, Range(0, low_open=True)]
    use_context_level_filter: bool
    use_sentence_level_filter: bool
    use_token_level_filter: bool
    keep_first_sentence: Annotated[int, Range(0)]
    high_priority_bonus: float
    token_score: Literal["next", "own"]
    strict_budget: bool

    question_aware: ClassVar[bool] = False
    # 2: segments, ratios and the question's tokens as llmlingua 0.2.2's; dropped tokens take their judged slot
    version: ClassVar[int] = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_budget_slack(self, "its thresholds come from the budget")

    # -- what LongLLMLingua changes ----------------------------------------------------------------

    def condition(self) -> str:
        """Where the question conditions the coarse ranking: none | before | after."""
        return "none"

    def question_prefix(self) -> bool:
        """Token-level scores conditioned on the question put before the context."""
        return False

    def compare(self) -> bool:
        return False

    def reorder(self) -> str:
        return "original"

    def dynamic_ratio(self) -> float:
        return 0.0

    def documents(self, example: Example, scorer: CausalLM) -> list[Doc]:
        return [Doc(i, p.title, p.text) for i, p in enumerate(example.passages) if p.text.strip()]

    # -- the algorithm -------------------------------------------------------------------------------

    def scorer(self, env: Env) -> CausalLM:
        return env.causal_lm(self.model_spec())

    def scorer_key(self) -> dict[str, Any]:
        return {"model": self.model, "revision": self.revision, "dtype": self.dtype}

    def compress(self, example: Example, env: Env) -> Compressed:
        return self.compress_batch([example], env)[0]

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        """The budget-free scores of all examples first, in shared forward passes (the coarse
        ranking, then the token stage's first full pass), then each example's segment-by-segment
        token stage, which waits on its own previous segment and so cannot batch."""
        live = [i for i, e in enumerate(examples) if e.context.strip()]
        scorer = self.scorer(env) if live else None
        docs: dict[int, list[Doc]] = {i: self.documents(examples[i], scorer) for i in live} if scorer else {}
        ranked: dict[int, list[tuple[int, float]]] = {}
        if scorer is not None and self.use_context_level_filter:
            todo = [i for i in live if len(docs[i]) > 1]
            jobs = [self.rank_job(docs[i], self.question_of(examples[i]), scorer) for i in todo]
            values = fetch_surprisals(env.store, scorer, jobs, self.batch_size, bos=False)
            ranked = {i: self.ranking(v) for i, v in zip(todo, values)}
        layouts = [self.layout(e, env, scorer, docs.get(i, []), ranked.get(i)) for i, e in enumerate(examples)]
        streams: dict[int, tuple[list[list[int]], list[Any]]] = {}
        if scorer is not None and self.use_token_level_filter:
            seqs = {i: self.stream_ids(scorer, lay) for i, lay in enumerate(layouts)
                    if isinstance(lay, Layout) and lay.tokens.ids}
            jobs = [job for ids in seqs.values() for job in self.first_pass_jobs(ids)]
            firsts = iter(fetch_surprisals(env.store, scorer, jobs, self.batch_size, bos=False))
            streams = {i: (ids, [next(firsts) for _ in ids]) for i, ids in seqs.items()}
        return [lay if isinstance(lay, Compressed) else self.finish(lay, example, env, streams.get(i))
                for i, (lay, example) in enumerate(zip(layouts, examples))]

    def question_of(self, example: Example) -> str:
        return example.question if self.condition() != "none" or self.question_prefix() else ""

    def layout(self, example: Example, env: Env, scorer: CausalLM | None, docs: list[Doc],
               ranked: list[tuple[int, float]] | None) -> Layout | Compressed:
        """Budget, coarse stage and the joined text the token stage runs on (or the empty result);
        `docs` are the example's documents and `ranked` their ranking (None: not ranked)."""
        reader_total = env.count([example.context])[0] if example.context else 0
        limit = self.token_limit(reader_total, env.prompt_overhead(example))
        assert limit is not None
        extras: dict[str, Any] = {"requested": {"rate": self.rate, "target_tokens": self.target_tokens},
                                  "target_reader_tokens": limit, "original_reader_tokens": reader_total}
        if not example.context.strip() or scorer is None:
            return Compressed((), {**extras, "achieved_reader_tokens": 0, "documents": 0})
        doc_tokens = [len(scorer.encode(d.render())) for d in docs]
        scorer_total = len(scorer.encode(example.context))
        # The budget in scorer tokens: the reader's limit scaled by how the two tokenizers count
        # this very context (the same number when reader and scorer share a tokenizer).
        target = limit * scorer_total / max(1, reader_total)
        question = self.question_of(example)

        used = list(range(len(docs)))
        if ranked is not None:
            used = self.control_context_budget(ranked, doc_tokens, target)
        else:
            ranked = [(i, 0.0) for i in used]
        order = self.output_order(used, ranked)
        dyn = self.dynamic_ratios(used, ranked)
        if self.use_sentence_level_filter:
            docs = self.sentence_filter(docs, used, question, target, scorer, env)
        plan = self.plan(docs, used, order, dyn)
        extras.update(documents=len(docs), kept_documents=len(used))
        return Layout(extras, limit, reader_total, target, question, plan, scorer.tokenize(plan.text), scorer)

    def finish(self, lay: Layout, example: Example, env: Env,
               streams: tuple[list[list[int]], list[Any]] | None) -> Compressed:
        """The token stage (on `streams`: its sequences and their first-pass surprisals), then the
        kept tokens rendered back into passages."""
        plan, tokens, scorer, extras, limit = lay.plan, lay.tokens, lay.scorer, lay.extras, lay.limit
        if streams is not None:
            keep, priority = self.iterative(scorer, env, tokens, plan, lay.target, streams)
        else:
            keep = np.ones(len(tokens.ids), dtype=bool)
            priority = np.full(len(tokens.ids), INF)
        anchors = first_char_anchors(tokens.offsets, plan.text)
        owner = self.owners(anchors, plan)

        def render(kept: list[int]) -> tuple[Passage, ...]:
            return self.render(plan, tokens, owner, sorted(kept), scorer, example)

        kept_idx = [i for i in range(len(keep)) if keep[i]]
        passages = render(kept_idx)
        faithful = env.count([Compressed(passages).text])[0]
        extras.update(scorer_tokens=len(tokens.ids), kept_scorer_tokens=len(kept_idx),
                      faithful_reader_tokens=faithful)
        if self.strict_budget:
            # Kept tokens best first, then dropped ones best first: trimming removes the weakest
            # kept tokens, topping up restores the strongest dropped ones, until the budget fits.
            order_all = sorted(range(len(keep)), key=lambda i: (not keep[i], -priority[i], i))
            k = fit_count(order_all, lambda idx: Compressed(render(idx)).text, env.count, limit)
            passages = render(order_all[:k])
            extras["kept_scorer_tokens"] = k
        achieved = env.count([Compressed(passages).text])[0]
        extras.update(achieved_reader_tokens=achieved,
                      achieved_rate=achieved / lay.reader_total if lay.reader_total else 0.0)
        return Compressed(passages, extras)

    # -- coarse stage --------------------------------------------------------------------------------

    def rank_job(self, docs: list[Doc], question: str, scorer: CausalLM) -> SurprisalJob:
        """LLMLingua's document score: the perplexity of each document alone (mean surprisal,
        tokenized as the tokenizer does by default); budget-free, so cached across rates."""
        texts = [d.render() for d in docs]
        key = {"stage": "lm_doc_ppl", "scorer": self.scorer_key(), "texts": texts}
        return key, [scorer.encode(t, special=True) for t in texts], lambda arrays: [_mean(a) for a in arrays]

    def ranking(self, scores: list[float]) -> list[tuple[int, float]]:
        return sorted(enumerate(scores), key=lambda x: -x[1])  # the most perplexing first

    def control_context_budget(self, ranked: list[tuple[int, float]], doc_tokens: list[int],
                               target: float) -> list[int]:
        """Whole documents in rank order while the budget (plus slack) lasts; the crossing one too."""
        budget = _slack(target if target >= 0 else 100, self.context_budget)
        used: list[int] = []
        for idx, _ in ranked:
            budget -= doc_tokens[idx]
            used.append(idx)
            if budget < 0:
                break
        return used

    def output_order(self, used: list[int], ranked: list[tuple[int, float]]) -> list[int]:
        return sorted(used) if self.reorder() == "original" else list(used)

    def dynamic_ratios(self, used: list[int], ranked: list[tuple[int, float]]) -> dict[int, float]:
        """Ratio offsets per kept document: the best-ranked gets +d, the worst -d, linearly between."""
        d = abs(self.dynamic_ratio())
        n = len(used)
        if d <= 0 or n < 2:
            return {i: 0.0 for i in used}
        offsets = [i * d / (n - 1) for i in range(-(n - 1), n, 2)][::-1]
        return dict(zip(used, offsets))  # `used` is in rank order here

    def sentence_filter(self, docs: list[Doc], used: list[int], question: str, target: float,
                        scorer: CausalLM, env: Env) -> list[Doc]:
        """Sentences of kept documents by perplexity (highest first, or lowest question perplexity
        when conditioned), up to token_budget_ratio x budget; the first `keep_first_sentence`
        sentences get `high_priority_bonus`."""
        pieces = [(d, s) for d in sorted(used) for s in split_sentences(docs[d].text)]
        if len(pieces) < 2:
            return docs
        scores = self.sentence_scores([s for _, s in pieces], question, scorer, env)
        sign = -1.0 if self.condition() == "none" else 1.0  # ppl: high first; question ppl: low first
        for i in range(min(self.keep_first_sentence, len(scores))):
            scores[i] += -sign * self.high_priority_bonus
        lengths = [len(scorer.encode(s, special=True)) for _, s in pieces]
        budget = (target if target >= 0 else 100) * self.token_budget_ratio
        keep = [False] * len(pieces)
        for i in sorted(range(len(pieces)), key=lambda i: (sign * scores[i], i)):
            budget -= lengths[i]
            keep[i] = True
            if budget < 0:
                break
        out = list(docs)
        for d in sorted(used):
            kept = "".join(s for (doc, s), k in zip(pieces, keep) if doc == d and k)
            out[d] = Doc(docs[d].passage, docs[d].title, kept.strip())
        return out

    def sentence_scores(self, sentences: list[str], question: str, scorer: CausalLM, env: Env) -> list[float]:
        key = {"stage": "lm_sentence_ppl", "scorer": self.scorer_key(), "texts": sentences}
        return list(env.store.fetch(key, lambda: [
            _mean(s) for s in scorer.surprisal([scorer.encode(t, special=True) for t in sentences],
                                              self.batch_size, bos=False)]))

    # -- token-level stage ---------------------------------------------------------------------------

    def plan(self, docs: list[Doc], used: list[int], order: list[int], dyn: dict[int, float]) -> Plan:
        """The kept documents joined in output order, as the reference compresses them: with
        `reorder_context` other than original, the token stage runs over the reordered documents
        (so the conditioning prefix, the segments and the last uncompressed segment follow it)."""
        pieces, parts, pos = [], [], 0
        kept = [i for i in order if docs[i].render().strip()]
        for n, i in enumerate(kept):
            if n:
                pos += 2  # the blank line between documents
            if docs[i].title:
                parts.append((pos, pos + len(docs[i].title), i, "title"))
                pos += len(docs[i].title) + 1
            parts.append((pos, pos + len(docs[i].text), i, "text"))
            pos += len(docs[i].text)
            pieces.append(docs[i].render())
        return Plan(docs, kept, "\n\n".join(pieces), parts,
                    [dyn.get(i, 0.0) for i in range(len(docs))])

    def owners(self, anchors: list[int], plan: Plan) -> list[tuple[int, str] | None]:
        """(doc, part) of each token, None for separators (rendering puts them back)."""
        starts = [p[0] for p in plan.parts]
        out: list[tuple[int, str] | None] = []
        for a in anchors:
            j = int(np.searchsorted(starts, a, side="right")) - 1
            out.append((plan.parts[j][2], plan.parts[j][3]) if j >= 0 and a < plan.parts[j][1] else None)
        return out

    def iterative(self, scorer: CausalLM, env: Env, tokens: Tokens, plan: Plan, target: float,
                  streams: tuple[list[list[int]], list[Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Keep flags and decision scores for every context token (scorer tokens of plan.text);
        `streams`: the sequences of `stream_ids` and their first-pass surprisals."""
        ids = tokens.ids
        n = len(ids)
        window = scorer.window
        seqs, first = streams
        prefix = seqs[0][:len(seqs[0]) - n]
        size = max(1, min(self.iterative_size, window // 4))
        head = min(CACHE_HEAD + len(prefix), window // 4)
        cond = _Stream(scorer, seqs[0], head, np.asarray(first[0], dtype=np.float64))
        plain = _Stream(scorer, seqs[1], min(CACHE_HEAD, window // 4),
                        np.asarray(first[1], dtype=np.float64)) if self.compare() else None
        segments = self.segment_ratios(scorer, plan, target, size)
        alive = list(range(n))  # original index of each current context position
        decision = np.full(n, INF)
        keep = np.ones(n, dtype=bool)
        p = len(prefix)
        start = p
        for step, runs in enumerate(segments):
            end = start + size
            if step == 0:
                end = min(end, len(cond.ids))
            elif end > len(cond.ids):
                break  # the reference never compresses a last segment shorter than iterative_size
            if step:
                cond.advance(end, start)
                if plain is not None:
                    plain.advance(end - p, start - p)
            a = start
            for length, r in runs:  # runs of one ratio inside the segment (documents' dynamic ratios)
                b = min(a + length, len(cond.ids))
                if b <= a:
                    continue
                scores = self._scores(cond, plain, p)
                # The threshold's distribution: every current score (contrast with compare).
                dist = (plain.sur - cond.sur[p:])[1:] if plain is not None else cond.sur[1:]
                thr = _threshold(dist[~np.isnan(dist)], r)
                mine = scores[a:b]
                drop = [i for i in range(a, b) if not (np.isnan(mine[i - a]) or mine[i - a] > thr)]
                for i in range(a, b):
                    decision[alive[i - p]] = INF if np.isnan(scores[i]) else scores[i]
                for i in drop:
                    keep[alive[i - p]] = False
                if drop:
                    follow = self.token_score == "next"
                    cond.remove(drop, follow)
                    if plain is not None:
                        plain.remove([i - p for i in drop], follow)
                    gone = set(drop)
                    alive = [o for j, o in enumerate(alive) if j + p not in gone]
                a = b - len(drop)
            start = a
        return keep, decision

    @staticmethod
    def question_ids(scorer: CausalLM, question: str, text: str) -> list[int]:
        """The tokens of "question\n\n" as they fall when the context follows them, which is how
        the reference tokenizes its condition (one string, the prefix found by decoding): a blank
        line before a word is often two newline tokens there, one token at the end of a string."""
        prefix = question + "\n\n"
        joint = scorer.encode(prefix + text[:100])
        for i in range(max(1, len(scorer.encode(prefix)) - 3), len(joint) + 1):
            if scorer.decode(joint[:i]) == prefix:
                return joint[:i]
        return scorer.encode(prefix)

    def segment_ratios(self, scorer: CausalLM, plan: Plan, target: float,
                       size: int) -> list[list[tuple[int, float]]]:
        """Per segment, runs of (tokens, ratio), laid out as llmlingua 0.2.2's
        `get_dynamic_compression_ratio` lays them out: each kept document counts its tokens alone
        plus 2 (the blank line after it), the ratio is the budget over those counts (+1) plus the
        document's dynamic offset, and the count starts at 1, so the first segment is one token
        short of `iterative_size`. The counts are estimates of the joined text's tokens (off by
        about one per document), and runs follow them as the reference's do."""
        lengths = [len(scorer.encode(plan.docs[d].render())) + 2 for d in plan.order]
        tau = target / (sum(lengths) + 1)
        out: list[list[tuple[int, float]]] = []
        current: list[tuple[int, float]] = []
        filled = 1
        for length, d in zip(lengths, plan.order):
            r = min(1.0, max(0.0, tau + plan.ratios[d]))
            if filled + length < size:
                filled += length
                current.append((length, r))
                continue
            out.append(current + [(size - filled, r)])
            filled += length - size
            if filled > size:
                out.extend([[(size, r)]] * (filled // size))
                filled %= size
            current = [(filled, r)] if filled else []
        if current:
            out.append(current)
        return out

    def stream_ids(self, scorer: CausalLM, lay: Layout) -> list[list[int]]:
        """The sequences the token stage scores: the context after the question prefix (the
        reference conditions on "question\n\n"; a prefix beyond a quarter of the window keeps its
        end, nearest the context, so segments still fit), and with `compare` the context alone."""
        prefix: list[int] = []
        if self.question_prefix() and lay.question:
            prefix = self.question_ids(scorer, lay.question, lay.plan.text)[-max(1, scorer.window // 4):]
        return [prefix + lay.tokens.ids] + ([list(lay.tokens.ids)] if self.compare() else [])

    def first_pass_jobs(self, seqs: list[list[int]]) -> list[SurprisalJob]:
        """Surprisal of every token of each uncompressed sequence (budget-free: cached across rates)."""
        return [({"stage": "lm_surprisal", "scorer": self.scorer_key(), "ids": _pack(ids)}, [ids],
                 lambda arrays: [float(x) for x in arrays[0]]) for ids in seqs]

    def _scores(self, cond: _Stream, plain: _Stream | None, p: int) -> np.ndarray:
        """The keep score of each position of the conditioned sequence (NaN: always kept).

        `next`: the surprisal of the following token (the reference's alignment); `own`: the
        token's own. With `compare`, unconditioned minus question-conditioned surprisal.
        """
        sur = cond.sur
        if plain is not None:
            contrast = np.full(len(sur), np.nan)
            contrast[p:] = plain.sur - sur[p:]
            contrast[:p] = np.nan
            sur = contrast
        if self.token_score == "next":
            shifted = np.full(len(sur), np.nan)
            shifted[:-1] = sur[1:]
            sur = shifted
        out = sur.copy()
        out[:p] = np.nan  # the question prefix is never dropped
        return out

    # -- output --------------------------------------------------------------------------------------

    def render(self, plan: Plan, tokens: Tokens, owner: list[tuple[int, str] | None], kept: list[int],
               scorer: CausalLM, example: Example) -> tuple[Passage, ...]:
        """Kept tokens decoded per document part; documents of one passage merge unless sorted."""
        groups: dict[tuple[int, str], list[int]] = {}
        for i in kept:
            if owner[i] is not None:
                groups.setdefault(owner[i], []).append(tokens.ids[i])  # type: ignore[arg-type]
        by_doc = {d: (scorer.decode(groups.get((d, "title"), [])).strip(),
                      scorer.decode(groups.get((d, "text"), [])).strip()) for d in plan.order}
        out: list[tuple[int, str, str]] = []  # (passage index, title, text)
        merge = self.reorder() == "original"
        for d in plan.order:
            title, text = by_doc[d]
            passage = plan.docs[d].passage
            if not text:
                continue
            if merge and out and out[-1][0] == passage:  # pieces of one passage read as one again
                out[-1] = (passage, out[-1][1] or title, out[-1][2] + " " + text)
            else:
                out.append((passage, title, text))
        return tuple(Passage(text, title, gold=example.passages[i].gold) for i, title, text in out)


class _Stream:
    """A token sequence under compression, its current surprisals and a KV cache of its prefix.

    `sur[i]` is the surprisal of token i given the tokens before it (as last computed); NaN where
    nothing precedes it. `advance(end, settle)` rescores [fed, end) on top of the cache (the
    compressed prefix), then keeps only the cache before `settle` (the next segment's start).
    """

    def __init__(self, scorer: CausalLM, ids: list[int], head: int, first: np.ndarray) -> None:
        self.scorer = scorer
        self.ids = list(ids)
        self.sur = first.copy()
        self.cache: Any = None
        self.fed = 0  # positions [0, fed) are in the cache (some may have been evicted)
        self.head = head

    def advance(self, end: int, settle: int) -> None:
        chunk = self.ids[self.fed:end]
        if len(chunk) < 1:
            return
        scorer = self.scorer
        if self.cache is not None:
            over = scorer.cache_length(self.cache) + len(chunk) - scorer.window
            if over > 0:
                scorer.evict(self.cache, self.head, over)
        nll, self.cache = scorer.step(chunk, self.cache)
        self.sur[self.fed + 1:end] = nll
        length = scorer.cache_length(self.cache)
        scorer.crop(self.cache, length - (end - settle))
        self.fed = settle

    def remove(self, positions: list[int], follow: bool = False) -> None:
        """Drop the tokens at `positions`. With `follow`, each dropped token takes the surprisal
        slot after it (the one it was judged on) rather than its own, as llmlingua 0.2.2 drops
        `loss[j]` with token j: the next kept token then holds the first dropped token's surprisal
        until it is rescored, which is what later thresholds see."""
        gone = set(positions)
        keep = [i for i in range(len(self.ids)) if i not in gone]
        self.ids = [self.ids[i] for i in keep]
        slots = {i + 1 for i in gone} if follow else gone
        self.sur = self.sur[[i for i in range(len(self.sur)) if i not in slots]]


def _threshold(values: np.ndarray, ratio: float) -> float:
    """The score at the `ratio` quantile from the top (the reference's estimate)."""
    if ratio >= 1.0 or not len(values):
        return -INF
    ordered = np.sort(values)[::-1]
    return float(ordered[max(0, min(len(ordered) - 1, int(len(ordered) * ratio) - 1))])


def check_budget_slack(compressor: Any, why: str) -> None:
    """The checks of a compressor whose budget control has LLMLingua's slack: no threshold (`why`
    says what decides instead), a slack of an operator and a number, a model named."""
    if compressor.threshold is not None:
        raise PcbenchError(f"compressor.threshold={compressor.threshold} is not allowed for "
                           f"{type(compressor).__name__}: {why}; use rate or target_tokens")
    if not BUDGET_SLACK.match(str(compressor.context_budget)):
        raise PcbenchError(f"compressor.context_budget={compressor.context_budget!r} is not allowed; "
                           "allowed: an operator and a number, e.g. '+100' or '*1.5'")
    if not compressor.model:
        raise PcbenchError("compressor.model is empty; allowed: smollm2, a hub id or a local path")


def _slack(target: float, spec: str) -> float:
    match = BUDGET_SLACK.match(spec)
    assert match is not None  # checked in __post_init__
    op, value = match.group(1), float(match.group(2))
    return {"+": target + value, "-": target - value, "*": target * value,
            "/": target / value if value else INF}[op]


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else 0.0


def _pack(ids: list[int]) -> str:
    """Ids as a compact string for a cache key."""
    return ",".join(map(str, ids))
