"""One cell, top to bottom: load, compress, read, score, record."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from pcbench.compressors.base import Compressor, Env
from pcbench.core.energy import gpu_energy
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example
from pcbench.core.files import write_atomically
from pcbench.core.memory import peak_memory
from pcbench.core.records import CellMetrics, Diagnostics, ExampleRecord
from pcbench.core.redact import redact
from pcbench.core.requests import Request
from pcbench.core.tokenizer import openai_tokenizer
from pcbench.models.pool import MODELS
from pcbench.readers.base import Reader
from pcbench.runners.build import build_cell
from pcbench.runners.cache import Cache, digest
from pcbench.runners.diagnostics import answer_in_context, evidence_recall, facts, facts_key, paper_ratios, survival
from pcbench.runners.identity import cell_key, identity
from pcbench.runners.record import Recorder, cell_lock, example_record, finished, summarize
from pcbench.runners.stages import compress_stream, read_all
from pcbench.tasks.base import Task

log = logging.getLogger(__name__)


def run_cell(cfg: DictConfig, out_dir: Path, names: dict[str, str]) -> CellMetrics:
    """Run task x compressor x reader as configured; write predictions.jsonl and metrics.json.

    A folder that already holds this cell's finished results (same config, same component
    versions) is left as it is (`rerun=true` recomputes it). With `stage=compress` only the
    compression stage runs (its results go to the cache, for a later full run, e.g. on a GPU
    node); the cell is then not marked finished.
    """
    start, loading = time.perf_counter(), MODELS.loading_seconds
    task, compressor, reader = build_cell(cfg)
    settings = {"task": task.settings(), "compressor": compressor.settings(), "reader": reader.settings()}
    with cell_lock(out_dir):  # one process per cell folder; a second one waits, then finds it finished
        done = finished(out_dir, cell_key(cfg, settings))
        if done is not None and not cfg.rerun:
            log.info("%s holds this cell's finished results: skipped (rerun=true recomputes)", out_dir)
            skipped: CellMetrics = {**done, "skipped": True}
            return skipped
        return run_components(cfg, out_dir, names, (task, compressor, reader), settings, (start, loading))


def run_components(cfg: DictConfig, out_dir: Path, names: dict[str, str], parts: tuple[Task, Compressor, Reader],
                   settings: dict[str, dict[str, Any]], started: tuple[float, float]) -> CellMetrics:
    """The cell's work once its folder is held: compress, read, score, record."""
    (task, compressor, reader), (start, loading) = parts, started

    examples = load_examples(task, names)
    cache = Cache(cfg.cache_dir)
    env, counts = lent_env(task, compressor, reader, cache), Env(reader.tokenizer, cache, MODELS)
    records = CellRecords(task, compressor, reader, env, cache, examples, start_folder(out_dir, cfg))
    stream = compress_stream(examples, compressor, env, cache, int(cfg.compress_chunk), counts)
    reading = reader.generates and cfg.stage == "all"
    memory: dict[str, Any] = {}  # each stage's own peak (core/memory.py)
    energy: dict[str, Any] = {}  # each stage's joules on the GPU (core/energy.py)
    if reading:
        with peak_memory(memory, "compress"), gpu_energy() as energy["compress"]:
            compressed = dict(stream)
        requests = [task.request(examples[i], compressed[i]["text"]) for i in range(len(examples))]
        with peak_memory(memory, "read"), gpu_energy() as energy["read"]:
            for i, generation in read_all(requests, reader, cache, reader.batch_size):
                records.add(i, compressed[i], generation, requests[i])
    else:
        with peak_memory(memory, "compress"), gpu_energy() as energy["compress"]:
            for i, result in stream:  # reader-free: each record is written as soon as it is compressed
                records.add(i, result)
    reader.close()

    metrics = summarize(task, records.in_order(), settings["compressor"], names, time.perf_counter() - start,
                        MODELS.loading_seconds - loading)
    metrics["memory"] = memory
    metrics["energy"] = {stage: dataclasses.asdict(e) for stage, e in energy.items()}
    metrics["compressor_info"] = compressor.describe()  # its role and budget knobs, for analysis
    # Work the compressor took from the cache instead of doing it (unit scores, token counts, LM
    # passes that do not depend on the budget): the later cells of a rate sweep reuse the first's,
    # so their compress seconds are not the method's full cost (the speed plot marks them).
    metrics["cache_hits"]["reused_work"] = cache.hits
    metrics["cache_hits"]["computed_work"] = cache.misses
    metrics["identity"] = identity(cfg, names, settings)
    metrics["status"] = "finished" if reading or not reader.generates else "compressed"
    metrics["cwd"] = os.getcwd()  # what relative paths in config.yaml (task.path) are relative to
    records.recorder.finish(metrics, [row for _, row in records.in_order()])
    return cast(CellMetrics, metrics)  # summarize's keys and the task's own (core/records.py)


# Examples already read in this process, by the task's settings and its file's state: the cells of
# a local sweep share one task, and reading and parsing it again per cell is a fixed cost per rate.
_LOADED: dict[str, list[Example]] = {}


def load_examples(task: Task, names: dict[str, str]) -> list[Example]:
    settings = task.settings()
    path = settings.get("path")
    state = None
    if isinstance(path, str) and Path(path).expanduser().is_file():
        stat = Path(path).expanduser().stat()
        state = [stat.st_mtime_ns, stat.st_size]
    key = digest({"task": settings, "file": state})
    if key not in _LOADED:
        if len(_LOADED) >= 8:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = task.load()
    examples = list(_LOADED[key])
    if not examples:
        raise PcbenchError(f"task {names['task']!r} loaded no examples; check task.path and task.limit")
    log.info("%s: %d examples, compressor %s, reader %s", names["task"], len(examples), names["compressor"],
             names["reader"])
    return examples


def lent_env(task: Task, compressor: Compressor, reader: Reader, cache: Cache) -> Env:
    """What the compressor gets: budgets counted in the reader's tokenizer, or the one its
    `budget_tokenizer` names, over the context or (`budget_scope=prompt`) the whole prompt."""
    name, scope = compressor.budget_basis()
    tokenizer = reader.tokenizer if name == "reader" else openai_tokenizer(name)
    env = Env(tokenizer, cache, MODELS)
    if scope == "prompt":
        # The prompt's tokens besides the context: the task's instruction and question.
        env.prompt_overhead = lambda example: env.count([task.prompt(example, "")])[0]
    return env


def start_folder(out_dir: Path, cfg: DictConfig) -> Recorder:
    """The cell's folder, emptied of older results, with the resolved config beside them."""
    recorder = Recorder(out_dir)
    write_atomically(out_dir / "config.yaml", redact(OmegaConf.to_yaml(cfg, resolve=True)))
    return recorder


@dataclass
class CellRecords:
    """Scores each example and writes its record as soon as it is ready (a killed cell keeps them)."""

    task: Task
    compressor: Compressor
    reader: Reader
    env: Env
    cache: Cache
    examples: list[Example]
    recorder: Recorder
    rows: dict[int, ExampleRecord] = field(default_factory=dict)

    def add(self, i: int, compressed: dict[str, Any], generation: dict[str, Any] | None = None,
            request: Request | None = None) -> None:
        example, text = self.examples[i], compressed["text"]
        # Diagnostics judge what the reader saw: a prompt cut from the middle to fit the window may
        # have lost the needle that compression kept (the question is taken out of the cut prompt,
        # since it may hold an answer itself).
        seen = text
        if generation and generation["truncated"] and request is not None:
            seen = self.reader.prompt(request).content.replace(example.question, " ")
        diagnostics: Diagnostics = {"answer_in_context": answer_in_context(example, seen),
                                    "evidence_recall": evidence_recall(example, seen),
                                    **paper_ratios(self.task, example, text)}
        # What survives, judged on the compressed context itself; the original's facts once per example.
        diagnostics.update(survival(self.facts(example), example.question, example.context, text))
        if self.compressor.generates_text:
            # Written text holds no source spans to find: not applicable, rather than a misleading 0.
            diagnostics["evidence_recall"], diagnostics["evidence_recall_applicable"] = None, False
        raw = None
        if generation:
            restored = self.compressor.restore(generation["text"], example, text, self.env)
            if restored != generation["text"]:
                raw, generation = generation["text"], {**generation, "text": restored}
        scores = self.task.score(generation["text"], example) if generation else None
        row: ExampleRecord = {**example_record(example, compressed, generation, scores, diagnostics),
                              "context": text, "prompt_hash": digest(vars(request)) if request is not None else None}
        if raw is not None:
            row["raw_prediction"] = raw  # before the compressor's restore()
        self.rows[i] = row
        self.recorder.write(row)

    def facts(self, example: Example) -> dict[str, list[str]]:
        """The original context's facts, once per example across cells. The harness's own cache stage,
        read and written as stages.py does its own: not counted as the compressor's reused work."""
        key = facts_key(example.context)
        hashed = digest(key)
        found: dict[str, list[str]] | None = self.cache.get("facts", hashed)
        if found is None:
            found = facts(example.context)
            self.cache.put("facts", hashed, found, key)
        return found

    def in_order(self) -> list[tuple[Example, ExampleRecord]]:
        return [(self.examples[i], self.rows[i]) for i in sorted(self.rows)]
