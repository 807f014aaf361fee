"""`pcbench-inspect RUN [--id ID] [--html [FILE]]`: one example of a finished cell.

Shows the question, the gold answers, the prediction and its scores, then the original context
with what the compressor kept and dropped and the gold evidence marked: in the terminal with
colours (dropped text dim and struck through, evidence underlined: green when kept, red when
dropped), or as `[-dropped-]` and `«evidence»` when the output is not a terminal; as an HTML page
with `--html`. For a compressor that writes its output (a summary), nothing is cut from the source,
so the written text is shown beside the source (evidence marked) instead of kept/dropped marks.

The original context is rebuilt from the cell's config.yaml (the task is loaded again, exactly as
the cell loaded it) and the example found by id. What was kept is read from the record's
`context` (the text the reader received): a sentence of the original found whole in it is kept;
the rest is aligned word by word (token pruning keeps parts of sentences), so every level of
compression, reordered or not, is shown on the original text.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from pcbench.core.errors import PcbenchError
from pcbench.core.example import PASSAGE_SEPARATOR, Example
from pcbench.core.records import CellMetrics, ExampleRecord
from pcbench.core.results import read_metrics, read_predictions

_WORD = re.compile(r"\S+")


class InspectError(ValueError):
    """Bad input: one line."""


@dataclass(frozen=True)
class Word:
    start: int
    end: int
    kept: bool
    evidence: bool
    sentence: int  # index of its sentence unit, -1 for titles


def _norm(text: str) -> str:
    return " ".join(text.split())


def sentence_spans(example: Example) -> list[tuple[int, int]]:
    """Character spans of the sentence units in the rendered context (as the compressors cut them)."""
    from pcbench.compressors.units import split_units

    offsets, cursor = {}, 0
    for index, passage in enumerate(example.passages):
        if not passage.text.strip():
            continue  # render_passages leaves empty passages out
        offsets[index] = cursor + (len(passage.title) + 1 if passage.title else 0)
        cursor += len(passage.render()) + len(PASSAGE_SEPARATOR)
    return [(offsets[u.passage] + u.start, offsets[u.passage] + u.end) for u in split_units(example, "sentence")]


def _evidence_spans(context: str, evidence: tuple[str, ...]) -> list[tuple[int, int]]:
    spans = []
    for text in evidence:
        if not text.strip():
            continue
        at = context.find(text)
        if at >= 0:
            spans.append((at, at + len(text)))
            continue
        # Whitespace may differ (evidence_recall compares whitespace-insensitively too).
        pattern = r"\s+".join(re.escape(w) for w in text.split())
        found = re.search(pattern, context)
        if found:
            spans.append(found.span())
    return spans


def mark(example: Example, compressed: str) -> list[Word]:
    """Every word of the original context, kept or dropped, evidence or not."""
    context = example.context
    words = [m.span() for m in _WORD.finditer(context)]
    sentences = sentence_spans(example)
    kept_text = _norm(compressed)
    whole = [bool(_norm(context[s:e])) and _norm(context[s:e]) in kept_text for s, e in sentences]
    # Word alignment for what whole sentences do not explain (token pruning, titles, cut passages).
    matcher = SequenceMatcher(None, [context[s:e] for s, e in words], compressed.split(), autojunk=False)
    aligned = {i for block in matcher.get_matching_blocks() for i in range(block.a, block.a + block.size)}
    evidence = _evidence_spans(context, example.evidence)
    out, k = [], 0
    for i, (start, end) in enumerate(words):
        while k < len(sentences) and sentences[k][1] <= start:
            k += 1
        sentence = k if k < len(sentences) and sentences[k][0] <= start else -1
        kept = (sentence >= 0 and whole[sentence]) or i in aligned
        is_evidence = any(s < end and start < e for s, e in evidence)
        out.append(Word(start, end, kept, is_evidence, sentence))
    return out


def summary(words: list[Word]) -> dict[str, int]:
    by_sentence: dict[int, list[bool]] = {}
    for word in words:
        if word.sentence >= 0:
            by_sentence.setdefault(word.sentence, []).append(word.kept)
    return {
        "sentences": len(by_sentence),
        "kept": sum(all(v) for v in by_sentence.values()),
        "partial": sum(any(v) and not all(v) for v in by_sentence.values()),
        "dropped": sum(not any(v) for v in by_sentence.values()),
        "words": len(words),
        "words_kept": sum(w.kept for w in words),
        "evidence_words": sum(w.evidence for w in words),
        "evidence_kept": sum(w.evidence and w.kept for w in words),
    }


ANSI = {(True, False): "", (False, False): "\x1b[2;9m", (True, True): "\x1b[1;4;32m", (False, True): "\x1b[4;9;31m"}
PLAIN = {(True, False): ("", ""), (False, False): ("[-", "-]"), (True, True): ("«", "»"), (False, True): ("[-«", "»-]")}


def _runs(context: str, words: list[Word]) -> list[tuple[tuple[bool, bool], str, str]]:
    """(state, text, whitespace after) per run of consecutive words sharing a state."""
    runs: list[tuple[tuple[bool, bool], str, str]] = []
    for i, word in enumerate(words):
        gap = context[word.end:words[i + 1].start] if i + 1 < len(words) else context[word.end:]
        state = (word.kept, word.evidence)
        if runs and runs[-1][0] == state:
            _, text, prev_gap = runs[-1]
            runs[-1] = (state, text + prev_gap + context[word.start:word.end], gap)
        else:
            runs.append((state, context[word.start:word.end], gap))
    return runs


def render_text(context: str, words: list[Word], colour: bool) -> str:
    lead = context[:words[0].start] if words else context
    parts = [lead]
    for state, text, gap in _runs(context, words):
        if colour:
            parts.append(f"{ANSI[state]}{text}\x1b[0m{gap}" if ANSI[state] else text + gap)
        else:
            before, after = PLAIN[state]
            parts.append(f"{before}{text}{after}{gap}")
    return "".join(parts)


def render_html(context: str, words: list[Word]) -> str:
    classes = {(True, False): "", (False, False): "drop", (True, True): "ev", (False, True): "ev drop"}
    parts = [html.escape(context[:words[0].start] if words else context)]
    for state, text, gap in _runs(context, words):
        body = html.escape(text)
        parts.append((f'<span class="{classes[state]}">{body}</span>' if classes[state] else body) + html.escape(gap))
    return "".join(parts)


def load_cell(run: Path) -> tuple[CellMetrics, list[ExampleRecord]]:
    metrics_path = run / "metrics.json"
    if not run.is_dir():
        raise InspectError(f"{run} is not a folder; give a cell folder (it holds metrics.json)")
    if not metrics_path.exists():
        failed = " (it failed: see error.txt)" if (run / "error.txt").exists() else ""
        raise InspectError(f"{run} is not a finished cell: no metrics.json{failed}")
    metrics, problem = read_metrics(run)
    if metrics is None:
        raise InspectError(str(problem))
    if metrics.get("status") != "finished":
        raise InspectError(f"{run} is not a finished cell (status: {metrics.get('status')})")
    records, problem = read_predictions(run)
    if problem and not records:
        raise InspectError(problem)
    if problem:  # show what is readable, and say what is not
        print(f"warning: {problem}; showing the {len(records)} records before it", file=sys.stderr)
    return metrics, records


def find_example(run: Path, example_id: str, metrics: CellMetrics) -> Example:
    """The cell's task rebuilt from its config.yaml, and the example with this id."""
    for example in rebuild_examples(run, metrics):
        if example.id == example_id:
            return example
    raise InspectError(f"example {example_id!r} is not in the task rebuilt from {run / 'config.yaml'} "
                       "(data changed since?)")


def task_node(run: Path, metrics: CellMetrics) -> Any:
    """The cell's task config, its relative data path made absolute (cells that ran the same task
    have equal nodes, so a caller can rebuild each task once)."""
    from omegaconf import OmegaConf

    config = run / "config.yaml"
    if not config.exists():
        raise InspectError(f"{config} is missing: the original context cannot be rebuilt")
    try:
        node = OmegaConf.load(config).task
    except Exception as exc:  # YAML's errors (a NUL byte, a cut file), or no task in it
        reason = " ".join(str(exc).split())[:120]
        raise InspectError(f"{config} cannot be read ({type(exc).__name__}: {reason})") from None
    # A relative task.path is relative to where the cell ran (metrics.json's cwd), not to here.
    launched = str(metrics.get("cwd") or "")
    if launched and isinstance(node.get("path"), str) and not Path(node.path).expanduser().is_absolute():
        node.path = str(Path(launched) / node.path)
    return node


def by_id(node: Any) -> Any:
    """The task's node for finding a cell's examples by id: a length-bounded task (whose bounds count
    a reader's tokens) loads all its examples instead, unbounded and unlimited; the ids pick them."""
    if node.get("min_tokens") is None and node.get("max_tokens") is None:
        return node
    node = node.copy()
    node.min_tokens = node.max_tokens = node.limit = None
    return node


def rebuild_examples(run: Path, metrics: CellMetrics, node: Any = None) -> list[Example]:
    """The examples of the cell's task, loaded again exactly as the cell loaded them."""
    from pcbench.core.build import build

    try:
        return build(by_id(node if node is not None else task_node(run, metrics)), "task").load()
    except PcbenchError as exc:
        raise InspectError(f"cannot rebuild the task of {run}: {exc}") from None


def _header(run: Path, metrics: CellMetrics, record: ExampleRecord, position: str,
            counts: dict[str, int], written: bool) -> list[tuple[str, str]]:
    scores = ", ".join(f"{k}={'undecided' if v is None else f'{v:.3g}'}"
                       for k, v in (record.get("scores") or {}).items()) or "–"
    evidence = "no gold evidence"
    if written:
        kept = (f"{record.get('compressed_tokens')}/{record.get('original_tokens')} reader tokens written "
                f"(ratio {record.get('kept_ratio', 0):.3f}); not cut from the source, so nothing is marked dropped")
        evidence = (f"evidence recall does not apply to written text; answer in context: "
                    f"{record.get('answer_in_context')}")
    else:
        kept = (f"{record.get('compressed_tokens')}/{record.get('original_tokens')} reader tokens "
                f"(ratio {record.get('kept_ratio', 0):.3f}); sentences: {counts['kept']} kept, "
                f"{counts['partial']} partly, {counts['dropped']} dropped of {counts['sentences']}")
        if counts["evidence_words"]:
            evidence = (f"{counts['evidence_kept']}/{counts['evidence_words']} evidence words kept "
                        f"(evidence_recall {record.get('evidence_recall')})")
    rows = [
        ("cell", f"{run}  ({metrics.get('task')} · {metrics.get('compressor')} · {metrics.get('reader')})"),
        ("id", f"{record['id']}  ({position})"),
        ("question", str(record.get("question"))),
        ("gold", " | ".join(map(str, record.get("gold") or []))),
        ("prediction", "(reader-free cell)" if record.get("prediction") is None else str(record["prediction"])),
        ("scores", scores),
        ("kept", kept),
        ("evidence", evidence),
    ]
    judge = record.get("judge")
    if judge is not None:  # the LLM judge's own words beside its verdict
        verdict = {1.0: "right", 0.0: "wrong", None: "undecided"}.get(judge["verdict"], str(judge["verdict"]))
        rows.insert(6, ("judge", f"{verdict}: {judge['reply']!r}"))
    return rows


HTML_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; }}
@media (max-width: 700px) {{ body {{ margin: 0.6em; }} }}
nav {{ margin-bottom: 1em; font-size: 14px; }} nav a {{ margin-right: 0.8em; }}
th {{ text-align: left; vertical-align: top; padding-right: 1em; }}
.ctx {{ white-space: pre-wrap; font-family: Georgia, serif; line-height: 1.5; border-top: 1px solid #ccc; }}
.drop {{ color: #999; text-decoration: line-through; }}
.ev {{ background: #d7f5d0; text-decoration: underline; }} .ev.drop {{ background: #f9d0d0; }}
</style></head><body>{nav}<table>{rows}</table>
<p>Legend: kept text plain, <span class="drop">dropped</span>, <span class="ev">gold evidence kept</span>,
<span class="ev drop">gold evidence dropped</span>.</p>{written}<div class="ctx">{context}</div></body></html>
"""
# For written text (a summary): what the reader got, above the source it was written from.
WRITTEN_HTML = """<h3>written by the compressor (what the reader got)</h3><div class="ctx">{text}</div>
<h3>source</h3>"""


def safe_name(example_id: str) -> str:
    """An example id as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", example_id)


def marked(metrics: CellMetrics, record: ExampleRecord, example: Example) -> tuple[list[Word], bool]:
    """The example's words marked kept/dropped/evidence, and whether the compressor wrote its text
    (then nothing was cut: the source is shown whole, its evidence marked)."""
    written = bool((metrics.get("compressor_info") or {}).get("generates_text"))
    words = mark(example, str(record.get("context") or ""))
    if written:
        words = [replace(w, kept=True) for w in words]
    return words, written


def html_page(run: Path, metrics: CellMetrics, record: ExampleRecord, example: Example, position: str,
              nav: str = "") -> str:
    """The whole inspect page of one example of a cell. The cell is named by its folder's name, not
    its path, so a page copied elsewhere (a published report) says nothing about this machine; `nav`
    is HTML put above it (the report's links back and across cells)."""
    words, written = marked(metrics, record, example)
    header = _header(Path(run.name), metrics, record, position, summary(words), written)
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in header)
    shown = WRITTEN_HTML.format(text=html.escape(str(record.get("context") or ""))) if written else ""
    return HTML_PAGE.format(title=html.escape(f"{record.get('id')}: {run.name}"), rows=rows, written=shown,
                            context=render_html(example.context, words), nav=nav)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a cell folder (holds metrics.json, predictions.jsonl, config.yaml)")
    parser.add_argument("--id", help="the example id (default: the first record)")
    parser.add_argument("--html", nargs="?", const="", default=None, metavar="FILE",
                        help="write an HTML page (default inspect-<id>.html in the current folder)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    args = parser.parse_args(argv)
    run = Path(args.run)
    try:
        metrics, records = load_cell(run)
        if not records:
            raise InspectError(f"{run}/predictions.jsonl holds no records")
        ids = [str(r.get("id")) for r in records]
        if args.id is None:
            index = 0
        elif args.id in ids:
            index = ids.index(args.id)
        else:
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise InspectError(f"no example {args.id!r} in {run} ({len(ids)} examples: {shown})")
        record = records[index]
        if "context" not in record:
            raise InspectError(f"{run} records no compressed context (written before records held it); rerun the cell")
        example = find_example(run, ids[index], metrics)
    except InspectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    position = f"{index + 1} of {len(records)}"
    if args.html is not None:
        path = Path(args.html or f"inspect-{safe_name(ids[index])}.html")
        try:
            path.write_text(html_page(run, metrics, record, example, position), encoding="utf-8")
        except OSError as exc:
            print(f"error: --html={path} cannot be written ({exc.strerror or type(exc).__name__}); "
                  "give a file in a writable folder", file=sys.stderr)
            return 2
        print(f"html: {path}")
        return 0
    words, written = marked(metrics, record, example)
    header = _header(run, metrics, record, position, summary(words), written)
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    for key, value in header:
        print(f"{key:>10}: {visible(value)}")
    legend = ("kept plain · \x1b[2;9mdropped\x1b[0m · \x1b[1;4;32mevidence kept\x1b[0m · "
              "\x1b[4;9;31mevidence dropped\x1b[0m") if colour else "kept plain · [-dropped-] · «evidence»"
    print(f"{'legend':>10}: {legend}")
    if written:
        print("-" * 80 + "\nwritten by the compressor (what the reader got):\n" + visible(str(record["context"] or "")))
        print("-" * 80 + "\nsource:")
    else:
        print("-" * 80)
    print(render_text(visible(example.context), words, colour))
    return 0


# Terminal control characters (C0 but newline and tab, DEL, C1): in data they could retitle the window,
# clear the screen or recolour the output, so each is shown as U+FFFD, one character for one, which
# keeps the kept/dropped marks' offsets.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    return CONTROL.sub("\ufffd", text)


if __name__ == "__main__":
    sys.exit(main())
