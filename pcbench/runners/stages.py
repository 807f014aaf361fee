"""The two cached stages of a cell: compress every example, then read every prompt."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Generator, Iterator
from typing import Any

from tqdm import tqdm

from pcbench.compressors.base import Compressor, Env
from pcbench.core.example import Example
from pcbench.core.requests import Generation, Request
from pcbench.readers.base import Reader
from pcbench.runners.cache import Cache, digest

log = logging.getLogger(__name__)


def fingerprint(example: Example, with_question: bool = True) -> str:
    """Hash of everything in an example (id, question, passages, answers, meta).

    Built by hand rather than with dataclasses.asdict, whose deep copies cost more than the hash.
    A query-agnostic compressor's results are keyed without the question.
    """
    passages = [[p.title, p.text, p.sentences, p.gold, p.evidence] for p in example.passages]
    question = example.question if with_question else None
    return digest([example.id, question, passages, example.answers, example.meta])


def compress_all(examples: list[Example], compressor: Compressor, env: Env, cache: Cache,
                 chunk: int = 32) -> list[dict[str, Any]]:
    """One record per example, in order (see `compress_stream`)."""
    out = dict(compress_stream(examples, compressor, env, cache, chunk))
    return [out[i] for i in range(len(examples))]


def compress_stream(examples: list[Example], compressor: Compressor, env: Env, cache: Cache,
                    chunk: int = 32, counts: Env | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, record) per example as it is ready: compressed text, token counts in the reader's
    tokenizer, seconds. Cache hits come first.

    Cache misses go to the compressor `chunk` examples at a time (`compress_batch`), so a model
    can batch across examples; each example's seconds are its chunk's time (less any model
    loading) divided evenly. Records count tokens with `counts` (the reader's tokenizer; `env`'s when
    None), which may differ from the tokenizer `env` lends the compressor for its budget.
    """
    counts = counts or env
    settings = compressor.key()
    sources = [{"stage": "compressed", "compressor": settings, "example": fingerprint(e, compressor.question_aware),
                "tokenizer": counts.tokenizer.name,
                **({"budget_tokenizer": env.tokenizer.name} if env.tokenizer.name != counts.tokenizer.name else {})}
               for e in examples]
    keys = [digest(source) for source in sources]
    todo = yield from _hits(cache, "compressed", keys)
    bar = tqdm(total=len(todo), desc="compress", unit="ex", leave=False, disable=None)
    for chunk_ids in _chunks(todo, chunk):
        batch = [examples[i] for i in chunk_ids]
        start, loading = time.perf_counter(), env.models.loading_seconds
        results = compressor.compress_batch(batch, env)
        # A model loaded during the chunk is a one-off cost of the process, not of these examples.
        seconds = (time.perf_counter() - start - (env.models.loading_seconds - loading)) / len(batch)
        # One context per lookup: the same key as a scored compressor's budget, so its count is reused.
        originals = [counts.count([e.context])[0] for e in batch]
        kept = counts.tokenizer.count([r.text for r in results])
        bar.update(len(batch))
        for i, result, original, n in zip(chunk_ids, results, originals, kept):
            record = {"text": result.text, "extras": result.extras, "seconds": seconds,
                      "batch_examples": len(batch), "original_tokens": original, "compressed_tokens": n}
            cache.put("compressed", keys[i], record, sources[i])
            yield i, {**record, "cached": False}
    bar.close()


def read_all(requests: list[Request], reader: Reader, cache: Cache, batch_size: int) -> Iterator[
        tuple[int, dict[str, Any]]]:
    """Yield (index, generation record) as batches finish, so records stream to disk.

    Cached generations come first; the rest go to the reader in batches of `batch_size`.
    """
    settings = reader.settings()
    sources = [{"stage": "generation", "reader": settings, "request": reader.request_key(r)} for r in requests]
    keys = [digest(source) for source in sources]
    todo = yield from _hits(cache, "generation", keys)
    todo.sort(key=lambda i: len(requests[i].prompt))  # similar lengths share a batch: less padding
    bar = tqdm(total=len(todo), desc="read", unit="ex", leave=False, disable=None)
    for chunk in _chunks(todo, batch_size):
        generations: list[Generation] = reader.generate([requests[i] for i in chunk])
        for i, generation in zip(chunk, generations):
            record = dataclasses.asdict(generation)
            cache.put("generation", keys[i], record, sources[i])
            yield i, {**record, "cached": False}
        bar.update(len(chunk))
    bar.close()


def _hits(cache: Cache, kind: str, keys: list[str]) -> Generator[tuple[int, dict[str, Any]], None, list[int]]:
    """Yield (index, cached record) for every hit; return the indices of the misses."""
    misses = []
    for i, key in enumerate(keys):
        hit = cache.get(kind, key)
        if hit is None:
            misses.append(i)
        else:
            yield i, {**hit, "cached": True}
    return misses


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


