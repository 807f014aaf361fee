"""One cell, top to bottom: load, compress, read, score, record."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from compressors.base import Env
from core.errors import PcbenchError
from core.models import MODELS, pick_device
from runners.build import build_cell
from runners.cache import Cache, digest
from runners.diagnostics import answer_in_context, char_ratio, evidence_recall
from runners.identity import config_hash, identity
from runners.record import Recorder, example_record, finished, summarize
from runners.stages import compress_stream, read_all

log = logging.getLogger(__name__)


def run_cell(cfg: DictConfig, out_dir: Path, names: dict[str, str]) -> dict[str, Any]:
    """Run task x compressor x reader as configured; write predictions.jsonl and metrics.json.

    A folder that already holds this config's finished results is left as it is (`rerun=true`
    recomputes it). With `stage=compress` only the compression stage runs (its results go to the
    cache, for a later full run, e.g. on a GPU node); the cell is then not marked finished.
    """
    start = time.perf_counter()
    task, compressor, reader = build_cell(cfg)
    done = finished(out_dir, config_hash(cfg))
    if done is not None and not cfg.get("rerun", False):
        log.info("%s holds this config's finished results: skipped (rerun=true recomputes)", out_dir)
        return {**done, "skipped": True}
    cache = Cache(cfg.cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    examples = task.load()
    if not examples:
        raise PcbenchError(f"task {names['task']!r} loaded no examples; check task.path and task.limit")
    log.info("%s: %d examples, compressor %s, reader %s", names["task"], len(examples), names["compressor"],
             names["reader"])

    recorder = Recorder(out_dir)
    rows: dict[int, dict[str, Any]] = {}
    compressed: dict[int, dict[str, Any]] = {}
    reading = reader.generates and cfg.get("stage", "all") == "all"
    requests: list[Any] = []

    def record(i: int, generation: dict[str, Any] | None, prompt_hash: str | None = None) -> None:
        example, text = examples[i], compressed[i]["text"]
        # Diagnostics judge what the reader saw: a prompt cut from the middle to fit the window may
        # have lost the needle that compression kept (the question is taken out of the cut prompt,
        # since it may hold an answer itself).
        seen = text
        if generation and generation["truncated"]:
            seen = reader.prompt(requests[i]).content.replace(example.question, " ")
        diagnostics = {"answer_in_context": answer_in_context(example, seen),
                       "evidence_recall": evidence_recall(example, seen),
                       "char_ratio": char_ratio(example.context, text)}
        if generation:
            restored = compressor.restore(generation["text"], example, text, env)
            if restored != generation["text"]:
                generation = {**generation, "text": restored, "raw_text": generation["text"]}
        scores = task.score(generation["text"], example) if generation else None
        rows[i] = {**example_record(example, compressed[i], generation, scores, diagnostics),
                   "context": text, "prompt_hash": prompt_hash}
        if generation and "raw_text" in generation:
            rows[i]["raw_prediction"] = generation["raw_text"]  # before the compressor's restore()
        recorder.write(rows[i])

    env, loading = Env(reader.tokenizer, cache, MODELS), MODELS.loading_seconds
    stream = compress_stream(examples, compressor, env, cache, int(cfg.compress_chunk))
    if reading:
        compressed.update(stream)
        # Compressor models stay warm for the next cell of a sweep, unless the reader needs their accelerator.
        device = pick_device(str(getattr(reader, "device", "cpu")))
        if device != "cpu":
            MODELS.release(device.split(":")[0])
        requests = [task.request(examples[i], compressed[i]["text"]) for i in range(len(examples))]
        hashes = [digest(vars(r)) for r in requests]
        for i, generation in read_all(requests, reader, cache, getattr(reader, "batch_size", 1)):
            record(i, generation, hashes[i])
    else:
        for i, result in stream:  # reader-free: each record is written as soon as it is compressed
            compressed[i] = result
            record(i, None)
    reader.close()

    metrics = summarize(task, [(examples[i], rows[i]) for i in sorted(rows)], compressor.settings(), names,
                        time.perf_counter() - start, MODELS.loading_seconds - loading)
    metrics["identity"] = identity(cfg, names, {"compressor": compressor.settings(), "reader": reader.settings()})
    metrics["status"] = "finished" if reading or not reader.generates else "compressed"
    recorder.finish(metrics)
    return metrics
