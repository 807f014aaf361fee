"""One cell, top to bottom: load, compress, read, judge (with judge=...), score and record, summarise."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from pcbench.compressors.base import Env
from pcbench.core.energy import Energy, gpu_energy
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, split_passages
from pcbench.core.files import write_atomically
from pcbench.core.memory import peak_memory
from pcbench.core.records import CellMetrics, Diagnostics, ExampleRecord, JudgeVerdict
from pcbench.core.redact import redact
from pcbench.core.requests import Request
from pcbench.core.tokenizer import Tokenizer, openai_tokenizer
from pcbench.models.pool import MODELS
from pcbench.runners.build import CellParts, build_cell
from pcbench.runners.cache import Cache, digest
from pcbench.runners.diagnostics import (
    answer_in_context,
    evidence_recall,
    facts,
    facts_key,
    instruction_survival,
    paper_ratios,
    survival,
)
from pcbench.runners.identity import cell_key, identity
from pcbench.runners.record import Recorder, cell_lock, example_record, finished, judge_summary, summarize
from pcbench.runners.stages import compress_stream, read_all
from pcbench.tasks.base import Task
from pcbench.tasks.judge import JUDGE_METRIC
from pcbench.tasks.registry import get_metric

log = logging.getLogger(__name__)


def run_cell(cfg: DictConfig, out_dir: Path, names: dict[str, str]) -> CellMetrics:
    """Run task x compressor x reader as configured; write predictions.jsonl and metrics.json.

    A folder that already holds this cell's finished results (same config, same component
    versions) is left as it is (`rerun=true` recomputes it). With `stage=compress` only the
    compression stage runs (its results go to the cache, for a later full run, e.g. on a GPU
    node); the cell is then not marked finished.
    """
    start, loading = time.perf_counter(), MODELS.loading_seconds
    parts = build_cell(cfg)
    settings = parts.settings()
    with cell_lock(out_dir):  # one process per cell folder; a second one waits, then finds it finished
        done = finished(out_dir, cell_key(cfg, settings))
        if done is not None and not cfg.rerun:
            log.info("%s holds this cell's finished results: skipped (rerun=true recomputes)", out_dir)
            skipped: CellMetrics = {**done, "skipped": True}
            return skipped
        return Cell(cfg, out_dir, names, parts, settings, start, loading).run()


@dataclass
class Reading:
    """The reader's answer to one example, after the compressor's restore() (`raw`: before it)."""

    generation: dict[str, Any]
    request: Request
    raw: str | None = None
    reasoning: str | None = None  # a two-step task's first answer (LongBench v2's chain of thought)


@dataclass
class Cell:
    """One cell's work once its folder is held; `run` is its table of contents."""

    cfg: DictConfig
    out_dir: Path
    names: dict[str, str]
    parts: CellParts
    settings: dict[str, dict[str, Any]]
    start: float  # perf_counter and the model pool's loading seconds when the cell began
    loading: float
    cache: Cache = field(init=False)
    env: Env = field(init=False)  # what the compressor's budgets are counted in (`budget_env`)
    memory: dict[str, Any] = field(init=False, default_factory=dict)  # each stage's own peak (core/memory.py)
    energy: dict[str, Energy] = field(init=False, default_factory=dict)  # each stage's joules on the GPU

    def __post_init__(self) -> None:
        self.cache = Cache(self.cfg.cache_dir)
        self.env = self.budget_env()

    def run(self) -> CellMetrics:
        examples = load_examples(self.parts.task, self.names, self.parts.reader.tokenizer)
        records = self.records(examples)
        compressed = self.compress(examples)
        if not self.reads:  # reader-free: each record is written as soon as it is compressed
            with self.stage("compress"):
                for i, entry in compressed:
                    records.add(i, entry)
            return self.finish(records)
        with self.stage("compress"):
            contexts = dict(compressed)
        requests = self.requests(examples, contexts)
        with self.stage("read"):
            answered: dict[int, Reading] = {}
            for i, reading in self.read(examples, contexts, requests):
                answered[i] = reading
                if self.parts.judge is None:  # records stream out as answers come
                    records.add(i, contexts[i], reading)
        if self.parts.judge is not None:
            with self.stage("judge"):
                for i, verdict in self.judge(examples, answered):
                    records.add(i, contexts[i], answered[i], verdict)
        return self.finish(records)

    def requests(self, examples: list[Example], contexts: dict[int, dict[str, Any]]) -> list[Request]:
        """The task's request for each compressed context; a reader that reads documents its own way
        (soft context) also gets the context's documents and the bare question."""
        requests = [self.parts.task.request(examples[i], contexts[i]["text"]) for i in range(len(examples))]
        if not self.parts.reader.reads_documents:
            return requests
        return [dataclasses.replace(r, documents=split_passages(contexts[i]["text"]), question=examples[i].question)
                for i, r in enumerate(requests)]

    @property
    def reads(self) -> bool:
        return bool(self.parts.reader.generates and self.cfg.stage == "all")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        with peak_memory(self.memory, name), gpu_energy() as self.energy[name]:
            yield

    def records(self, examples: list[Example]) -> CellRecords:
        """The cell's folder, emptied of older results, with the resolved config beside them."""
        recorder = Recorder(self.out_dir)
        write_atomically(self.out_dir / "config.yaml", redact(OmegaConf.to_yaml(self.cfg, resolve=True)))
        return CellRecords(self.parts, self.cache, examples, recorder)

    def budget_env(self) -> Env:
        """What the compressor gets: budgets counted in the reader's tokenizer, or the one its
        `budget_tokenizer` names, over the context or (`budget_scope=prompt`) the whole prompt."""
        task, compressor, reader = self.parts.task, self.parts.compressor, self.parts.reader
        name, scope = compressor.budget_basis()
        tokenizer = reader.tokenizer if name == "reader" else openai_tokenizer(name)
        env = Env(tokenizer, self.cache, MODELS)
        if scope == "prompt":
            # The prompt's tokens besides the context: the task's instruction and question.
            env.prompt_overhead = lambda example: env.count([task.prompt(example, "")])[0]
        return env

    def compress(self, examples: list[Example]) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, compressed entry) as each is ready; records count tokens in the reader's tokenizer."""
        reader_counts = Env(self.parts.reader.tokenizer, self.cache, MODELS)
        return compress_stream(examples, self.parts.compressor, self.env, self.cache,
                               int(self.cfg.compress_chunk), reader_counts)

    def read(self, examples: list[Example], contexts: dict[int, dict[str, Any]],
             requests: list[Request]) -> Iterator[tuple[int, Reading]]:
        """(index, answer) as each batch is read, the compressor's restore() applied. A task that asks
        twice (LongBench v2's chain of thought: reason, then answer from the reasoning) has its second
        requests read after the first answers, and answers with the second."""
        reader, task = self.parts.reader, self.parts.task
        asked_again: dict[int, tuple[dict[str, Any], Request]] = {}
        for i, generation in read_all(requests, reader, self.cache, reader.batch_size):
            again = task.follow_up(examples[i], generation["text"])
            if again is not None:
                asked_again[i] = (generation, again)
                continue
            yield i, self._reading(Reading(generation, requests[i]), examples[i], contexts[i])
        order = sorted(asked_again)
        for k, second in read_all([asked_again[i][1] for i in order], reader, self.cache, reader.batch_size):
            i = order[k]
            first = asked_again[i][0]
            reading = Reading(two_steps(first, second), requests[i], reasoning=first["text"])
            yield i, self._reading(reading, examples[i], contexts[i])

    def _reading(self, reading: Reading, example: Example, context: dict[str, Any]) -> Reading:
        """The reading with the compressor's restore() applied to its answer."""
        text = reading.generation["text"]
        restored = self.parts.compressor.restore(text, example, context["text"], self.env)
        if restored != text:
            reading.raw, reading.generation = text, {**reading.generation, "text": restored}
        return reading

    def judge(self, examples: list[Example], answered: dict[int, Reading]) -> Iterator[tuple[int, JudgeVerdict]]:
        """(index, verdict) of the judge model on each answer, read and cached as answers are."""
        judge, judge_reader, task = self.parts.judge, self.parts.judge_reader, self.parts.task
        assert judge is not None and judge_reader is not None
        order = sorted(answered)
        requests = [judge.request(examples[i], answered[i].generation["text"]) for i in order]
        match = get_metric("match")
        for k, reply in read_all(requests, judge_reader, self.cache, judge_reader.batch_size):
            i = order[k]
            answer = task.postprocess(answered[i].generation["text"], examples[i])
            probs = reply.get("option_probs")
            yield i, {"verdict": judge.verdict(reply["text"], probs), "reply": reply["text"],
                      "by": "logits" if probs else "reply", "match": float(match(answer, examples[i])),
                      "cached": reply["cached"]}

    def finish(self, records: CellRecords) -> CellMetrics:
        """Summarise the records into metrics.json, beside what the cell cost and what it was."""
        parts, cache = self.parts, self.cache
        parts.reader.close()
        if parts.judge_reader is not None:
            parts.judge_reader.close()
        rows = records.in_order()
        written = [row for _, row in rows]
        metrics = summarize(parts.task, rows, self.settings["compressor"], self.names,
                            time.perf_counter() - self.start, MODELS.loading_seconds - self.loading)
        metrics["memory"] = self.memory
        metrics["energy"] = {stage: dataclasses.asdict(e) for stage, e in self.energy.items()}
        metrics["compressor_info"] = parts.compressor.describe()  # its role and budget knobs, for analysis
        # Work the compressor took from the cache instead of doing it (unit scores, token counts, LM
        # passes that do not depend on the budget): the later cells of a rate sweep reuse the first's,
        # so their compress seconds are not the method's full cost (the speed plot marks them).
        metrics["cache_hits"]["reused_work"] = cache.hits
        metrics["cache_hits"]["computed_work"] = cache.misses
        if parts.judge is not None:
            metrics["judge"] = judge_summary(written, parts.judge.protocol, self.settings["judge"]["reader"])
        metrics["identity"] = identity(self.cfg, self.names, self.settings)
        metrics["status"] = "finished" if self.reads or not parts.reader.generates else "compressed"
        metrics["cwd"] = os.getcwd()  # what relative paths in config.yaml (task.path) are relative to
        records.recorder.finish(metrics, written)
        return cast(CellMetrics, metrics)  # summarize's keys and the task's own (core/records.py)


def two_steps(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """One generation record of a two-step answer: the second step's text, the first's prompt (the one
    holding the context), both steps' new tokens and seconds."""
    def total(key: str) -> float | None:
        values = [g.get(key) for g in (first, second)]
        return None if values[0] is None or values[1] is None else float(values[0]) + float(values[1])

    return {**first, "text": second["text"], "new_tokens": first["new_tokens"] + second["new_tokens"],
            "truncated": bool(first.get("truncated") or second.get("truncated")),
            "prefill_seconds": total("prefill_seconds"), "decode_seconds": total("decode_seconds"),
            "cached": bool(first.get("cached") and second.get("cached"))}


# Examples already read in this process, by the task's settings and its file's state: the cells of
# a local sweep share one task, and reading and parsing it again per cell is a fixed cost per rate.
_LOADED: dict[str, list[Example]] = {}


def load_examples(task: Task, names: dict[str, str], tokenizer: Tokenizer) -> list[Example]:
    """The task's examples, once per process; a length bound counts in the reader's `tokenizer`."""
    settings = task.settings()
    path = settings.get("path")
    state = None
    if isinstance(path, str) and Path(path).expanduser().is_file():
        stat = Path(path).expanduser().stat()
        state = [stat.st_mtime_ns, stat.st_size]
    bounded = settings.get("min_tokens") is not None or settings.get("max_tokens") is not None
    key = digest({"task": settings, "file": state, "tokenizer": tokenizer.name if bounded else None})
    if key not in _LOADED:
        if len(_LOADED) >= 8:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = task.load(tokenizer.count)
    examples = list(_LOADED[key])
    if not examples:
        bounds = " and task.min_tokens / task.max_tokens" if bounded else ""
        raise PcbenchError(f"task {names['task']!r} loaded no examples; check task.path and task.limit{bounds}")
    log.info("%s: %d examples, compressor %s, reader %s", names["task"], len(examples), names["compressor"],
             names["reader"])
    return examples


@dataclass
class CellRecords:
    """Scores each example and writes its record as soon as it is ready (a killed cell keeps them)."""

    parts: CellParts
    cache: Cache
    examples: list[Example]
    recorder: Recorder
    rows: dict[int, ExampleRecord] = field(default_factory=dict)

    def add(self, i: int, compressed: dict[str, Any], reading: Reading | None = None,
            verdict: JudgeVerdict | None = None) -> None:
        example, text, task = self.examples[i], compressed["text"], self.parts.task
        generation = reading.generation if reading is not None else None
        # Diagnostics judge what the reader saw: a prompt cut from the middle to fit the window may
        # have lost the needle that compression kept (the question is taken out of the cut prompt,
        # since it may hold an answer itself).
        seen = text
        if reading is not None and reading.generation["truncated"]:
            seen = self.parts.reader.prompt(reading.request).content.replace(example.question, " ")
        diagnostics: Diagnostics = {"answer_in_context": answer_in_context(example, seen),
                                    "evidence_recall": evidence_recall(example, seen),
                                    **paper_ratios(task, example, text)}
        # What survives, judged on the compressed context itself; the original's facts once per example.
        diagnostics.update(survival(self.facts(example), example.question, example.context, text))
        diagnostics.update(instruction_survival(task.instruction_spans(example), example.context, text))
        if self.parts.compressor.generates_text:
            # Written text holds no source spans to find: not applicable, rather than a misleading 0.
            diagnostics["evidence_recall"], diagnostics["evidence_recall_applicable"] = None, False
        scores: dict[str, float | None] | None = None
        if generation is not None:
            scores = {**task.score(generation["text"], example)}
            if verdict is not None:
                scores[JUDGE_METRIC] = verdict["verdict"]
        row: ExampleRecord = {**example_record(example, compressed, generation, scores, diagnostics),
                              "context": text,
                              "prompt_hash": digest(reading.request.key()) if reading is not None else None}
        if reading is not None and reading.raw is not None:
            row["raw_prediction"] = reading.raw  # before the compressor's restore()
        if reading is not None and reading.reasoning is not None:
            row["reasoning"] = reading.reasoning
        if verdict is not None:
            row["judge"] = verdict
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
