"""One cell, top to bottom: load, compress, read, score, record."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from compressors.base import Env
from core.models import MODELS, pick_device
from core.errors import PcbenchError
from runners.build import build
from runners.cache import Cache
from runners.diagnostics import answer_in_context, char_ratio, evidence_recall
from runners.record import Recorder, example_record, summarize
from runners.stages import compress_all, read_all

log = logging.getLogger(__name__)


def run_cell(cfg: DictConfig, out_dir: Path, names: dict[str, str]) -> dict[str, Any]:
    """Run task x compressor x reader as configured; write predictions.jsonl and metrics.json."""
    start = time.perf_counter()
    task, compressor, reader = build(cfg.task, "task"), build(cfg.compressor, "compressor"), build(cfg.reader, "reader")
    cache = Cache(cfg.cache_dir)
    (out_dir / "config.yaml").parent.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    examples = task.load()
    if not examples:
        raise PcbenchError(f"task {names['task']!r} loaded no examples; check task.path and task.limit")
    log.info("%s: %d examples, compressor %s, reader %s", names["task"], len(examples), names["compressor"],
             names["reader"])

    env = Env(reader.tokenizer, cache, MODELS)
    compressed = compress_all(examples, compressor, env, cache, int(cfg.compress_chunk))
    if reader.generates:
        # Compressor models stay warm for the next cell of a sweep, unless the reader needs their accelerator.
        device = pick_device(str(getattr(reader, "device", "cpu")))
        if device != "cpu":
            MODELS.release(device.split(":")[0])

    recorder = Recorder(out_dir)
    rows: dict[int, dict[str, Any]] = {}

    def record(i: int, generation: dict[str, Any] | None) -> None:
        example, text = examples[i], compressed[i]["text"]
        diagnostics = {"answer_in_context": answer_in_context(example, text),
                       "evidence_recall": evidence_recall(example, text),
                       "char_ratio": char_ratio(example.context, text)}
        scores = task.score(generation["text"], example) if generation else None
        rows[i] = example_record(example, compressed[i], generation, scores, diagnostics)
        recorder.write(rows[i])

    if reader.generates:
        requests = [task.request(example, c["text"]) for example, c in zip(examples, compressed)]
        for i, generation in read_all(requests, reader, cache, getattr(reader, "batch_size", 1)):
            record(i, generation)
    else:
        for i in range(len(examples)):
            record(i, None)
    reader.close()

    metrics = summarize(task, [(examples[i], rows[i]) for i in sorted(rows)], compressor.settings(), names,
                        time.perf_counter() - start)
    recorder.finish(metrics)
    return metrics
