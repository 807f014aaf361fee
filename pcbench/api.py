"""The Python API: compressors, tasks and readers by name, compression of your own contexts, one cell.

    import pcbench

    bm25 = pcbench.load_compressor("bm25", rate=0.25)       # conf/compressor/bm25.yaml + overrides
    out = pcbench.compress(bm25, context, question="Who wrote it?")
    out.text, out.kept_ratio, out.extras

Everything goes through the same composition and knob checks as the command line: a bad name or
value raises `PcbenchError` whose message is the CLI's `error:` line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pcbench.compressors.base import Compressor, Env, NoStore
from pcbench.conf import CONF_DIR
from pcbench.core.build import build
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.core.records import CellMetrics
from pcbench.core.tokenizer import OPENAI_ENCODINGS, Tokenizer, openai_tokenizer
from pcbench.readers.base import Reader, reader_tokenizer
from pcbench.runners.cache import Cache
from pcbench.runners.cli import one_line
from pcbench.runners.compose import compose

# A context: plain text, or passages given as text, (title, text) pairs or {"title", "text"} maps.
PassageLike = str | tuple[str, str] | Mapping[str, str]
Context = str | Sequence[PassageLike]


@dataclass(frozen=True)
class Compression:
    """One compressed context: the text a reader would get and how much of the original it keeps."""

    text: str
    kept_ratio: float  # compressed_tokens / original_tokens, in `tokenizer`
    original_tokens: int
    compressed_tokens: int
    tokenizer: str
    extras: dict[str, Any] = field(default_factory=dict)  # what the method reports about itself


def load_compressor(name: str, **knobs: Any) -> Compressor:
    """The compressor `name` (a conf/compressor option) with its YAML defaults and `knobs` on top.

    `load_compressor("bm25", rate=0.25)`, `load_compressor("chain", steps={"fine": {"rate": 0.3}})`;
    a budget is switched with the others nulled: `load_compressor("bm25", rate=None, target_tokens=500)`.
    """
    return _load("compressor", name, knobs)


def load_task(name: str, **knobs: Any) -> Any:
    """The task `name` (a conf/task option, e.g. "hotpotqa" or "longbench/qasper"); `.load()` gives examples."""
    return _load("task", name, knobs)


def load_reader(name: str, **knobs: Any) -> Reader:
    """The reader `name` (a conf/reader option); `.generate(requests)` answers; models load on first use."""
    return _load("reader", name, knobs)


def compress(compressor: Compressor | str, context: Context, question: str = "", *,
             tokenizer: str = "smollm2", cache_dir: str | Path | None = None) -> Compression:
    """Compress one context for `question`; budgets and the kept ratio count `tokenizer`'s tokens
    (the reader's, in a cell: a hub id, a local folder or the packaged alias smollm2)."""
    return compress_many(compressor, [context], [question], tokenizer=tokenizer, cache_dir=cache_dir)[0]


def compress_many(compressor: Compressor | str, contexts: Sequence[Context], questions: Sequence[str] | None = None,
                  *, tokenizer: str = "smollm2", cache_dir: str | Path | None = None,
                  batch_size: int = 32) -> list[Compression]:
    """`compress` for many contexts at once: a model-based compressor scores `batch_size` of them
    per call. `cache_dir` keeps scores and results on disk across calls (none by default).

    `tokenizer` (a hub id, folder, the alias smollm2, or cl100k / o200k) counts the kept ratio, and
    the budget unless the compressor's `budget_tokenizer` names another; with `budget_scope=prompt`
    the question's tokens count against the budget (there is no task template here)."""
    method = load_compressor(compressor) if isinstance(compressor, str) else compressor
    if not isinstance(method, Compressor):
        raise PcbenchError(f"compressor: a {type(method).__name__}; give a name (\"bm25\") or load_compressor(...)")
    if isinstance(contexts, str) or not isinstance(contexts, Sequence):
        raise PcbenchError(f"contexts: a {type(contexts).__name__}; compress_many takes a list of contexts "
                           "(compress takes one)")
    if isinstance(questions, str):
        raise PcbenchError("questions: a string; compress_many takes a list of questions, one per context")
    asked = list(questions) if questions is not None else [""] * len(contexts)
    if len(asked) != len(contexts):
        raise PcbenchError(f"questions: {len(asked)} given for {len(contexts)} contexts; give one per context")
    counter = named_tokenizer(tokenizer)
    basis, scope = method.budget_basis()
    store = Cache(str(cache_dir)) if cache_dir is not None else NoStore()
    env = Env(counter if basis == "reader" else openai_tokenizer(basis), store)
    if scope == "prompt":
        env.prompt_overhead = lambda example: env.count([example.question])[0]
    examples = [_example(i, context, question) for i, (context, question) in enumerate(zip(contexts, asked))]
    out: list[Compression] = []
    for start in range(0, len(examples), max(1, batch_size)):
        batch = examples[start:start + batch_size]
        results = method.compress_batch(batch, env)
        originals = counter.count([e.context for e in batch])
        kept = counter.count([r.text for r in results])
        out.extend(Compression(r.text, n / total if total else 1.0, total, n, counter.name, dict(r.extras))
                   for r, total, n in zip(results, originals, kept))
    return out


def run_cell(task: str = "niah", compressor: str = "none", reader: str = "smollm2",
             overrides: Sequence[str] = (), out_dir: str | Path | None = None) -> CellMetrics:
    """One cell exactly as `pcbench task=... compressor=... reader=... OVERRIDES` runs it; its metrics.

    `overrides` are command-line overrides (`"compressor.rate=0.25"`, `"task.limit=5"`). Results land
    in `out_dir` (default: outputs/<study>/<task>/<compressor>/<overrides>, as the CLI names it).
    """
    from pcbench.runners.cell import run_cell as run
    from pcbench.runners.identity import cell_dir

    chosen = [f"task={task}", f"compressor={compressor}", f"reader={reader}"]
    cfg = _compose([*chosen, *overrides])
    names = {"task": task, "compressor": compressor, "reader": reader}
    if out_dir is None:
        # Named as the CLI names it: the overrides less conf/config.yaml's excluded keys.
        excluded = OmegaConf.load(CONF_DIR / "config.yaml").hydra.job.config.override_dirname.exclude_keys
        named = ",".join(sorted(o for o in [*chosen, *overrides] if o.split("=", 1)[0] not in excluded))
        out_dir = Path("outputs") / str(cfg.study) / task / compressor / cell_dir(named)
    return run(cfg, Path(out_dir), names)


def named_tokenizer(name: str) -> Tokenizer:
    return openai_tokenizer(name) if name in OPENAI_ENCODINGS else reader_tokenizer("tokenizer", name)


def _load(group: str, name: str, knobs: Mapping[str, Any]) -> Any:
    if not isinstance(name, str) or not name.strip():
        raise PcbenchError(f"{group}: {name!r} is no {group} name; give one of `pcbench list` (e.g. \"bm25\")")
    node = _compose([f"{group}={name}"])[group]
    OmegaConf.set_struct(node, False)  # an unknown knob reaches the knob check, which lists the allowed ones
    try:
        merged = OmegaConf.merge(node, dict(knobs))
    except Exception as exc:  # a value OmegaConf cannot hold
        raise PcbenchError(f"{group} {name!r}: {' '.join(str(exc).split())}") from None
    assert isinstance(merged, DictConfig)
    return build(merged, group)


def _compose(overrides: list[str]) -> DictConfig:
    try:
        return compose(overrides)
    except Exception as exc:
        message = one_line(exc)
        if message is None:
            raise
        raise PcbenchError(message) from None


def _example(index: int, context: Context, question: str) -> Example:
    """One context and question as an Example; anything else than the types documented is one
    PcbenchError naming the argument (str() would turn None into the text "None")."""
    if not isinstance(question, str):
        raise PcbenchError(f"question {index}: a {type(question).__name__}; give a string (\"\" for none)")
    if isinstance(context, str):
        items: Sequence[PassageLike] = [context]
    elif isinstance(context, Sequence) and not isinstance(context, bytes | bytearray):
        items = context
    else:
        raise PcbenchError(f"context {index}: a {type(context).__name__}; give text or a list of passages")
    return Example(id=str(index), question=question, passages=tuple(_passage(p, index) for p in items), answers=())


def _passage(item: PassageLike, index: int = 0) -> Passage:
    if isinstance(item, str):
        return Passage(item)
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(v, str) for v in item):
        return Passage(item[1], title=item[0])
    if isinstance(item, Mapping) and isinstance(item.get("text"), str) and isinstance(item.get("title", ""), str):
        return Passage(item["text"], title=item.get("title", ""))
    raise PcbenchError(f"context {index}: a passage must be text, a (title, text) pair of strings or a map with "
                       f"a string 'text' (and 'title'); got {type(item).__name__} {str(item)[:40]!r}")


__all__ = ["Compression", "compress", "compress_many", "load_compressor", "load_reader", "load_task",
           "run_cell"]
