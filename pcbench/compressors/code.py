"""LongCodeZip (Shi et al., ASE 2025, "LongCodeZip: Compress Long Context for Code Language
Models"): code is cut into function/class chunks, chunks are ranked by how much each lowers the
perplexity of the query, whole chunks are kept by rank, and (unless `rank_only`) lines inside the
kept chunks are pruned in entropy-defined blocks chosen by a 0/1 knapsack.

Step by step, and every difference from the reference: docs/methods/code.md.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from pcbench.compressors.base import Compressed, Env
from pcbench.compressors.llmlingua import _slack, check_budget_slack
from pcbench.compressors.scored import ScoredCompressor
from pcbench.compressors.selector import fill, fit, greedy
from pcbench.compressors.units import Unit, first_char_anchors, group
from pcbench.core.example import Example, Passage, render_passages
from pcbench.core.knobs import Range
from pcbench.models.causal import CausalLM
from pcbench.models.pool import ModelKnobs

Language = Literal["auto", "python", "python_ast", "brace"]

# A Python chunk opens at a def/class line (the reference splits on these at any indentation).
_PY_OPENER = re.compile(r"^[ \t]*(?:def|class)\s+\S", re.MULTILINE)
_MODIFIERS = (r"(?:(?:public|private|protected|internal|static|final|abstract|sealed|partial|synchronized|"
              r"override|virtual|async|extern|unsafe|native|readonly|export|default|const)\s+)*")
# pcbench's rule for brace languages: a type declaration, or a method/constructor header (a type,
# a name and an opening parenthesis, no `;` on the line), not a statement that looks like one.
_BRACE_TYPE = re.compile(rf"^[ \t]*{_MODIFIERS}(?:class|interface|enum|struct|record)\s+\w+", re.MULTILINE)
_BRACE_METHOD = re.compile(rf"^[ \t]*{_MODIFIERS}[\w.]+(?:<[^()\n]*?>)?(?:\[\])*\s+(\w+)\s*\([^;\n]*$", re.MULTILINE)
_STATEMENTS = frozenset({"if", "for", "foreach", "while", "switch", "catch", "return", "new", "else", "throw",
                         "using", "lock", "do", "try", "await", "yield", "case", "goto", "sizeof", "typeof"})
# Lines that belong to the declaration under them: annotations, attributes, doc comments.
_PREAMBLE = re.compile(r"^[ \t]*(?:@|\[|///|/\*\*|\*)")
# Blocks the fine stage always keeps: their first non-empty line defines something or returns.
_DEFINITIONS = ("def ", "class ", "function ", "fn ", "func ")
# Knapsack sizes the reference solves exactly (dynamic programming); larger ones greedily.
_DP_ITEMS, _DP_CAPACITY = 100, 2000


@dataclass
class CodeZip(ScoredCompressor, ModelKnobs):
    """LongCodeZip (Shi et al., ASE 2025), from its official code: compress long code for code LMs.

    Code is cut into function/class chunks, ranked by how much each lowers the query's perplexity
    under a causal LM, kept by rank up to the budget; then (unless `rank_only`) lines inside kept
    chunks are pruned in entropy-defined blocks chosen by a 0/1 knapsack at `fine_ratio`. Knobs:
    the budget, `language`, `rank_only`, `fine_ratio`, `importance_beta`, `entropy_k`, `line_ppl`,
    `context_budget`, `strict_budget`, `query`, the model block.
    """

    level: Literal["function"]  # type: ignore[assignment]  # chunks are functions/classes
    order: Literal["original"]  # code stays in reading order
    chunk_model: str | None  # the model of the fine stage's line perplexities (null: model)
    batch_size: Annotated[int, Range(1)]
    language: Language
    query: Literal["auto", "question", "last_chunk"]
    context_budget: str  # slack on the coarse budget, in scorer tokens ("+100")
    strict_budget: bool  # the shared honest selector picks chunks (never over the budget)
    rank_only: bool  # coarse stage only
    fine_ratio: Annotated[float, Range(0, 1)] | None  # lines kept in kept chunks (null: the coarse rate)
    importance_beta: Annotated[float, Range(0)]
    min_lines: Annotated[int, Range(1)]  # chunks with fewer lines are never pruned inside
    entropy_k: Annotated[float, Range(0)]  # spike threshold: mean + k x std of line perplexities
    line_ppl: Literal["reference", "one_pass"]  # each line given its prefix (quadratic) | one pass per chunk

    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_budget_slack(self, "its selection comes from the budget")

    # -- chunks and their scores ---------------------------------------------------------------

    def units(self, example: Example, env: Env) -> list[Unit]:
        units: list[Unit] = []
        for index, passage in enumerate(example.passages):
            text = passage.text
            if not text.strip():
                continue
            starts = chunk_starts(text, self.language)
            ends = [*starts[1:], len(text)]
            units.extend(Unit(index, s, e, text[s:e]) for s, e in zip(starts, ends) if text[s:e].strip())
        return units

    def query_of(self, example: Example, units: Sequence[Unit]) -> tuple[str, int | None]:
        """The query text and, when it is the context's last chunk, that chunk's index."""
        if self.query == "question" or (self.query == "auto" and example.question.strip()):
            return example.question, None
        if not units:
            return "", None
        return units[-1].text, len(units) - 1

    def scorer_key(self) -> dict[str, Any]:
        """Chunk scores depend on the model, the chunking and the query only: every budget and
        every selection or fine-stage knob of a sweep reads the same scores."""
        key = self.key()
        return {k: key[k] for k in ("class", "version", "model", "revision", "dtype", "language", "query")}

    def score_batch(self, examples: list[Example], units: list[list[Unit]], env: Env) -> list[list[float]]:
        """Every chunk's drop in query perplexity, all examples' sequences in one batched call."""
        lm = env.causal_lm(self.model_spec())
        seqs: list[list[int]] = []
        plans: list[tuple[int, list[tuple[int, int]]]] = []
        for example, us in zip(examples, units):
            query, own = self.query_of(example, us)
            at = len(seqs)
            seqs.append(lm.encode(query, special=True))
            conditioned = []
            for i, u in enumerate(us):
                if i == own:
                    continue
                conditioned.append((i, len(seqs)))
                seqs.append(lm.encode(u.text + "\n\n" + query, special=True))
            plans.append((at, conditioned))
        nll = lm.surprisal(seqs, self.batch_size, bos=False) if seqs else []
        out = []
        for (at, conditioned), us in zip(plans, units):
            alone = _ppl(nll[at][1:])
            scores = [math.inf] * len(us)  # the query chunk: always first
            for i, s in conditioned:
                skip = len(lm.encode(us[i].text + "\n\n", special=True))
                scores[i] = alone - _ppl(nll[s][skip + 1:])
            out.append(scores)
        return out

    # -- selection ---------------------------------------------------------------------------------

    def select(self, example: Example, units: list[Unit], scores: list[float], env: Env) -> Compressed:
        reader_total = env.count([example.context])[0] if example.context else 0
        limit = self.token_limit(reader_total, env.prompt_overhead(example))
        assert limit is not None
        extras: dict[str, Any] = {"requested": {"rate": self.rate, "target_tokens": self.target_tokens},
                                  "target_reader_tokens": limit, "original_reader_tokens": reader_total,
                                  "units": len(units)}
        if not units:
            return Compressed((), {**extras, "kept_units": 0, "achieved_reader_tokens": 0, "achieved_rate": 0.0})
        lm = env.causal_lm(self.model_spec())
        query, own = self.query_of(example, units)
        marker = _marker(resolve_language(example.context, self.language))
        sizes = [len(lm.encode(u.text, special=True)) for u in units]
        scorer_total = sum(sizes)
        if self.rate is not None and self.budget_scope == "context":
            rate = float(self.rate)
            target: float = int(scorer_total * rate)  # the reference's rule, in its own tokens
        else:
            # The budget in scorer tokens: the reader's limit scaled by how the two tokenizers
            # count this very context (the reference's scripts derive the rate the same way).
            target = limit * scorer_total / max(1, reader_total)
            rate = target / scorer_total if scorer_total else 1.0

        if self.strict_budget:
            kept = self._honest(example, units, scores, limit, marker, env)
        else:
            kept = self._by_rank(scores, sizes, target, own)
        extras["query_chunk"] = own is not None
        extras["query_chunk_kept"] = own is not None and own in kept
        pieces: dict[int, str | None] = {i: None for i in kept}
        if not self.rank_only and kept:
            pieces = self._fine(units, scores, sizes, kept, own, query, rate, marker, env)
            extras["fine_pruned_chunks"] = sum(1 for p in pieces.values() if p is not None)
        passages = self.render_pieces(example, units, pieces, marker)
        if self.strict_budget and env.count([render_passages(passages)])[0] > limit:
            # Markers can cost more than the lines they stand for: the coarse choice fits.
            passages = self.render_pieces(example, units, dict.fromkeys(kept), marker)
            extras["fine_pruned_chunks"] = 0
        achieved = env.count([render_passages(passages)])[0]
        extras.update(kept_units=len(kept), scorer_tokens=scorer_total, target_scorer_tokens=target,
                      achieved_reader_tokens=achieved,
                      achieved_rate=achieved / reader_total if reader_total else 0.0)
        return Compressed(passages, extras)

    def _by_rank(self, scores: list[float], sizes: list[int], target: float, own: int | None) -> list[int]:
        """The reference's budget control: chunks by score while budget + slack lasts, the
        crossing one too; everything when it all fits. The query chunk is kept and paid first."""
        if sum(sizes) <= target:
            return list(range(len(scores)))
        budget = _slack(target if target >= 0 else 100, self.context_budget)
        used = []
        if own is not None:
            used.append(own)
            budget -= sizes[own]
        ranked = sorted((i for i in range(len(scores)) if i != own), key=lambda i: -scores[i])
        for i in ranked:
            if budget < 0:
                break
            budget -= sizes[i]
            used.append(i)
        return sorted(used)

    def _honest(self, example: Example, units: list[Unit], scores: list[float], limit: int, marker: str,
                env: Env) -> list[int]:
        """The shared selector on chunks, measured on the rendered text (markers included)."""
        def measure(candidate: list[int]) -> int:
            return env.count([render_passages(self.render_pieces(example, units, dict.fromkeys(candidate), marker))])[0]

        tokens = env.count([u.text for u in units])
        kept = greedy(scores, tokens, limit)
        kept, used = fit(kept, scores, limit, measure, tokens)
        kept, _ = fill(kept, used, scores, tokens, limit, measure)
        return sorted(kept)

    def render_pieces(self, example: Example, units: Sequence[Unit], pieces: dict[int, str | None],
                      marker: str) -> tuple[Passage, ...]:
        """Each passage as the reference writes its code: kept chunks (or their pruned text) and a
        marker for each unkept one, joined by blank lines, runs of markers collapsed. A passage
        with no kept chunk is left out."""
        out = []
        for index, passage in enumerate(example.passages):
            mine = [i for i, u in enumerate(units) if u.passage == index]
            if not any(i in pieces for i in mine):
                continue
            parts = []
            for i in mine:
                if i in pieces:
                    piece = pieces[i]
                    parts.append(units[i].text if piece is None else piece)
                else:
                    parts.append(marker)
            out.append(Passage(text=_collapse_markers("\n\n".join(parts), marker), title=passage.title))
        return tuple(out)

    # -- fine stage ----------------------------------------------------------------------------

    def _fine(self, units: list[Unit], scores: list[float], sizes: list[int], kept: list[int], own: int | None,
              query: str, rate: float, marker: str, env: Env) -> dict[int, str | None]:
        """Pruned text of each kept chunk (None: kept whole), as the reference's fine stage."""
        pieces: dict[int, str | None] = dict.fromkeys(kept)
        chosen = [i for i in kept if i != own]
        if not chosen:
            return pieces
        lines = {i: len(units[i].text.split("\n")) for i in chosen}
        target_lines = int(sum(lines.values()) * (self.fine_ratio if self.fine_ratio is not None else rate))
        ratios = allocate(chosen, lines, scores, target_lines, self.min_lines, self.importance_beta)
        lm = env.causal_lm(self.model_spec())
        chunk_lm = env.causal_lm(self.model_spec(self.chunk_model)) if self.chunk_model else lm
        for i in chosen:
            if ratios[i] >= 0.999:
                continue
            blocks = self._blocks(units[i].text, chunk_lm, env)
            if len([b for b in blocks if b.strip()]) < self.min_lines:
                continue
            gains = self._block_gains(blocks, query, lm, env)
            target = int(sizes[i] * ratios[i])
            weights = [len(lm.encode(b, special=True)) for b in blocks]
            chosen_blocks = knapsack(weights, gains, target, preserved_blocks(blocks, marker))
            pieces[i] = _join_blocks(blocks, chosen_blocks, marker)
        return pieces

    def _blocks(self, text: str, lm: CausalLM, env: Env) -> list[str]:
        """The chunk cut where a line's perplexity given the lines before it spikes."""
        lines = split_lines(text)
        key = {"stage": "lm_line_ppl", "scorer": {"model": lm.name, "revision": self.revision, "dtype": self.dtype},
               "lines": lines}
        if self.line_ppl == "one_pass":
            key["stage"] = "lm_line_ppl_one_pass"
            ppls = env.store.fetch(key, lambda: line_perplexities_one_pass(lines, lm, self.batch_size))
        else:
            ppls = env.store.fetch(key, lambda: line_perplexities(lines, lm, self.batch_size))
        spikes = find_spikes(ppls, self.entropy_k)
        cuts = [0, *[s + 1 for s in spikes], len(lines)]
        return ["\n".join(lines[a:b]) for a, b in zip(cuts, cuts[1:])]

    def _block_gains(self, blocks: list[str], query: str, lm: CausalLM, env: Env) -> list[float]:
        key = {"stage": "lm_block_gain", "scorer": {"model": lm.name, "revision": self.revision, "dtype": self.dtype},
               "query": query, "blocks": blocks}
        return list(env.store.fetch(key, lambda: block_gains(blocks, query, lm, self.batch_size)))


# -- the pieces, one rule each -------------------------------------------------------------------------


def resolve_language(code: str, language: str) -> str:
    if language != "auto":
        return language
    return "python" if _PY_OPENER.search(code) else "brace"


def _openers(text: str, language: str) -> list[int]:
    """Offsets of the lines that open a chunk."""
    if language == "python_ast":
        found = _ast_openers(text)
        if found is not None:
            return found
        language = "python"  # no prefix parses: the reference's line rule
    if language == "python":
        return [m.start() for m in _PY_OPENER.finditer(text)]
    found = [m.start() for m in _BRACE_TYPE.finditer(text)]
    found += [m.start() for m in _BRACE_METHOD.finditer(text) if not _statement(m.group(0))]
    return sorted(set(found))


# How far back from a syntax error a cut file is tried at top-level lines.
_AST_CUTS = 20
_DEFINITIONS_AST = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _ast_openers(text: str) -> list[int] | None:
    """Python's own parse: a chunk opens at each top-level function or class and at each method or
    nested class of a class, with its decorators and the comment lines right above it; a `def`
    inside a string or a function opens nothing. Code that does not parse as a whole (a file cut
    off mid-code, as LongBench's lcc ends where the completion starts; several files pasted
    together, as in repobench-p) is parsed in pieces cut at top-level lines, each piece opening a
    chunk; a stretch no cut makes parsable gets the line rule. None when no piece parses."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    tops = [k for k, line in enumerate(lines) if line[:1].strip() and not line.startswith("#")]
    starts: list[int] = []
    parsed_any, first = False, 0
    while first < len(lines):
        tree, end = _parse_piece(text, offsets, tops, first)
        if first:
            starts.append(offsets[first])
        if tree is None:  # up to the next top-level line after the error: the reference's line rule
            end = next((k for k in tops if k > end), len(lines))
            piece = text[offsets[first]:offsets[end]]
            starts += [offsets[first] + m.start() for m in _PY_OPENER.finditer(piece)]
        else:
            parsed_any = True
            for k in _opening_lines(tree.body):
                k += first
                while k > first and lines[k - 1].lstrip().startswith("#"):  # its comment block goes with it
                    k -= 1
                starts.append(offsets[k])
        first = end
    return sorted(set(starts)) if parsed_any else None


def _parse_piece(text: str, offsets: list[int], tops: list[int], first: int) -> tuple[ast.Module | None, int]:
    """The longest piece from line `first` that parses, ending at the text's end or at a top-level
    line at most `_AST_CUTS` such lines before the first error: (its tree, its end line), or (None,
    the error's line)."""
    try:
        return ast.parse(text[offsets[first]:]), len(offsets) - 1
    except (SyntaxError, ValueError) as error:
        failing = min(len(offsets) - 2, first + (getattr(error, "lineno", None) or 1) - 1)
    for k in reversed([k for k in tops if first < k <= failing][-_AST_CUTS:]):
        try:
            return ast.parse(text[offsets[first]:offsets[k]]), k
        except (SyntaxError, ValueError):
            continue
    return None, max(failing, first)


def _opening_lines(body: list[ast.stmt]) -> list[int]:
    """0-based lines of the definitions that open chunks: a class's methods and nested classes too."""
    found = []
    for node in body:
        if isinstance(node, _DEFINITIONS_AST):
            found.append(min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1)
            if isinstance(node, ast.ClassDef):
                found += _opening_lines(node.body)
    return found


def _statement(line: str) -> bool:
    first = re.match(r"\s*(\w+)", line)
    return bool(first and first.group(1) in _STATEMENTS)


def chunk_starts(text: str, language: str) -> list[int]:
    """Where chunks start: 0, then at each opener the newline ending the last non-blank line
    before it (and, for brace languages, before its annotations and doc comment)."""
    language = resolve_language(text, language)
    starts = [0]
    for at in _openers(text, language):
        line_start = at
        if language == "brace":
            while line_start > 0:
                previous = text.rfind("\n", 0, line_start - 1) + 1
                if not _PREAMBLE.match(text[previous:line_start - 1]):
                    break
                line_start = previous
        head = text[:line_start].rstrip()
        start = text.find("\n", len(head)) if head else 0  # the newline ending the last non-blank line
        if start > starts[-1]:
            starts.append(start)
    return starts


def _marker(language: str) -> str:
    return "# ... " if language in ("python", "python_ast") else "// ... "


def _collapse_markers(code: str, marker: str) -> str:
    """Drop a marker line that follows another marker line (blank lines between do not count)."""
    content = marker.strip()
    out, last_was_marker = [], False
    for line in code.split("\n"):
        stripped = line.strip()
        if not stripped:
            out.append(line)
        elif stripped == content:
            if not last_was_marker:
                out.append(line)
            last_was_marker = True
        else:
            out.append(line)
            last_was_marker = False
    return "\n".join(out)


def _ppl(nll: np.ndarray) -> float:
    """exp(mean token loss); 1.0 for nothing scored, as the reference's empty loss gives."""
    values = np.asarray(nll, dtype=np.float64)
    if not len(values):
        return 1.0
    mean = float(values.mean())
    return math.exp(mean) if math.isfinite(mean) else math.inf


def split_lines(text: str) -> list[str]:
    """The reference's lines for entropy chunking: a blank line between two lines becomes ' '."""
    return [" " if line == "\0" else line for line in text.replace("\n\n", "\n\0\n").split("\n")]


def line_perplexities(lines: list[str], lm: CausalLM, batch_size: int) -> list[float]:
    """log2 perplexity of each line given the lines before it (0 for an empty line)."""
    seqs: list[list[int]] = []
    plans: list[tuple[int, int] | None] = []
    for i, line in enumerate(lines):
        if not line:
            plans.append(None)
            continue
        context = "\n".join(lines[:i])
        skip = len(lm.encode(context + "\n", special=True)) if context else 1
        plans.append((len(seqs), skip))
        seqs.append(lm.encode(context + "\n" + line if context else line, special=True))
    nll = lm.surprisal(seqs, batch_size, bos=False) if seqs else []
    out = []
    for plan in plans:
        if plan is None:
            out.append(0.0)
            continue
        at, skip = plan
        target = nll[at][skip:]
        out.append(float(np.mean(target)) / math.log(2) if len(target) else math.inf)
    return out


def line_perplexities_one_pass(lines: list[str], lm: CausalLM, batch_size: int) -> list[float]:
    """The same numbers from one forward pass over the joined lines (tokens go to the line of their
    first non-space character): linear instead of quadratic, but tokens at line starts differ from
    the reference's separate tokenisations, so the numbers are close, not equal."""
    text = "\n".join(lines)
    tokens = lm.tokenize(text)
    if not tokens.ids:
        return [0.0 if not line else math.inf for line in lines]
    [nll] = lm.surprisal([tokens.ids], batch_size, bos=True)
    spans, at = [], 0
    for line in lines:
        spans.append((at, at + len(line)))
        at += len(line) + 1
    groups = group(first_char_anchors(tokens.offsets, text), nll.tolist(), spans)
    return [0.0 if not line else (float(np.mean(g)) / math.log(2) if g else math.inf)
            for line, g in zip(lines, groups)]


def find_spikes(ppls: Sequence[float], k: float) -> list[int]:
    """Lines whose perplexity rises above both neighbours, by at least mean + k x std over one."""
    valid = np.array([p for p in ppls if math.isfinite(p) and p > 0])
    threshold = float(valid.mean() + k * valid.std()) if len(valid) >= 3 else 0.5
    spikes = []
    for i in range(1, len(ppls) - 1):
        current = ppls[i]
        if not math.isfinite(current):
            continue
        left = ppls[i - 1] if math.isfinite(ppls[i - 1]) else current
        right = ppls[i + 1] if math.isfinite(ppls[i + 1]) else current
        up_left, up_right = current - left, current - right
        if (up_left >= threshold or up_right >= threshold) and up_left >= 0 and up_right >= 0:
            spikes.append(i)
    return spikes


def block_gains(blocks: list[str], query: str, lm: CausalLM, batch_size: int) -> list[float]:
    """Each block's drop in query perplexity (-inf for a blank block; 0s without a query)."""
    if not query.strip():
        return [0.0] * len(blocks)
    seqs = [lm.encode(query, special=True)]
    plans: list[tuple[int, int] | None] = []
    for block in blocks:
        if not block.strip():
            plans.append(None)
            continue
        plans.append((len(seqs), len(lm.encode(block + "\n\n", special=True))))
        seqs.append(lm.encode(block + "\n\n" + query, special=True))
    nll = lm.surprisal(seqs, batch_size, bos=False)
    alone = _ppl(nll[0][1:])
    if not math.isfinite(alone):
        return [0.0] * len(blocks)
    out = []
    for plan in plans:
        if plan is None:
            out.append(-math.inf)
            continue
        at, skip = plan
        given = _ppl(nll[at][skip:])
        out.append(alone - given if math.isfinite(given) else -math.inf)
    return out


def allocate(chosen: list[int], lines: dict[int, int], scores: Sequence[float], target_lines: int,
             min_lines: int, beta: float) -> dict[int, float]:
    """The share of lines each kept chunk keeps: chunks under `min_lines` lines keep all; the rest
    share what is left, more for higher coarse scores (min-max scaled, `beta`), rescaled to the total."""
    small = [i for i in chosen if lines[i] < min_lines]
    large = [i for i in chosen if lines[i] >= min_lines]
    ratios = dict.fromkeys(small, 1.0)
    in_large = sum(lines[i] for i in large)
    room = max(0, target_lines - sum(lines[i] for i in small))
    if not large or in_large == 0:
        return ratios
    if room <= 0 or room >= in_large:
        # room <= 0: the reference sets no ratio for these chunks and falls back to keeping them whole.
        return {**ratios, **dict.fromkeys(large, 1.0)}
    base = room / in_large
    valid = [scores[i] for i in large if math.isfinite(scores[i])]
    if not valid or max(valid) == min(valid):
        return {**ratios, **dict.fromkeys(large, base)}
    low, high = min(valid), max(valid)
    rates = []
    for i in large:
        norm = (scores[i] - low) / (high - low) if math.isfinite(scores[i]) else 0.0
        rates.append(min(1.0, max(0.0, base * (1 + beta * (norm - 0.5) * 2))))
    kept = sum(r * lines[i] for r, i in zip(rates, large))
    if kept > 0 and abs(kept - room) > 1:
        rates = [min(1.0, max(0.0, r * room / kept)) for r in rates]
    return {**ratios, **dict(zip(large, rates))}


def preserved_blocks(blocks: Sequence[str], marker: str) -> set[int]:
    """Blocks whose first non-empty line defines something, is a comment (the marker's comment
    sign), or returns."""
    comment = marker.split()[0]
    keep = set()
    for b, block in enumerate(blocks):
        for line in block.split("\n"):
            if line.strip():
                if any(word in line for word in _DEFINITIONS) or line.strip().startswith(comment) or "return " in line:
                    keep.add(b)
                break
    return keep


def knapsack(weights: Sequence[int], values: Sequence[float], target: int, preserved: set[int]) -> set[int]:
    """The preserved blocks plus the others that maximise total value within what they leave of
    `target` tokens: exactly (dynamic programming) for up to 100 items and 2000 tokens, else
    greedily by value per token, as the reference."""
    room = max(0, target - sum(weights[i] for i in preserved))
    if room <= 0:
        return set(preserved)
    items = [(i, weights[i], values[i] if math.isfinite(values[i]) else 0.0)
             for i in range(len(weights)) if i not in preserved]
    items.sort(key=lambda item: item[2] / max(item[1], 1), reverse=True)
    if len(items) <= _DP_ITEMS and room <= _DP_CAPACITY:
        picked = _knapsack_exact(items, room)
    else:
        picked, used = set(), 0
        for i, w, _ in items:
            if used + w <= room:
                picked.add(i)
                used += w
    return set(preserved) | picked


def _knapsack_exact(items: list[tuple[int, int, float]], capacity: int) -> set[int]:
    best = np.zeros((len(items) + 1, capacity + 1))
    for n, (_, w, v) in enumerate(items, start=1):
        best[n] = best[n - 1]
        if w <= capacity:
            take = np.full(capacity + 1, -np.inf)
            take[w:] = best[n - 1, :capacity + 1 - w] + v
            best[n] = np.maximum(best[n], take)
    picked, room = set(), capacity
    for n in range(len(items), 0, -1):
        if best[n, room] != best[n - 1, room]:
            i, w, _ = items[n - 1]
            picked.add(i)
            room -= w
    return picked


def _join_blocks(blocks: Sequence[str], chosen: set[int], marker: str) -> str:
    """Chosen blocks joined by blank lines, a marker (indented like the first indented block)
    for each gap and after the last chosen block when blocks follow it."""
    indent = ""
    for block in blocks:
        for line in block.split("\n"):
            if line.strip():
                indent = line[:len(line) - len(line.lstrip())]
                break
        if indent:
            break
    gap = f"{indent}{marker}"
    out: list[str] = []
    last = -1
    for b in sorted(chosen):
        if last != -1 and b > last + 1 and (not out or out[-1] != gap):
            out.append(gap)
        out.append(blocks[b])
        last = b
    if last != -1 and last < len(blocks) - 1 and (not out or out[-1] != gap):
        out.append(gap)
    return "\n\n".join(out)
