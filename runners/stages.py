"""The two cached stages of a cell: compress every example, then read every prompt."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

from compressors.base import Compressor, Env
from core.example import Example
from core.requests import Generation, Request
from readers.base import Reader
from runners.cache import Cache, digest

log = logging.getLogger(__name__)


def fingerprint(example: Example) -> str:
    """Hash of everything in an example (id, question, passages, answers, meta).

    Built by hand rather than with dataclasses.asdict, whose deep copies cost more than the hash.
    """
    passages = [[p.title, p.text, p.sentences, p.gold, p.evidence] for p in example.passages]
    return digest([example.id, example.question, passages, example.answers, example.meta])


def compress_all(examples: list[Example], compressor: Compressor, env: Env, cache: Cache) -> list[dict[str, Any]]:
    """One record per example: compressed text, token counts in the reader's tokenizer, seconds."""
    settings = compressor.settings()
    out = []
    for example in tqdm(examples, desc="compress", unit="ex", leave=False, disable=None):
        key = {"stage": "compressed", "compressor": settings, "example": fingerprint(example),
               "tokenizer": env.tokenizer.name}
        hashed = digest(key)
        record = cache.get("compressed", hashed)
        if record is None:
            start = time.perf_counter()
            result = compressor.compress(example, env)
            seconds = time.perf_counter() - start
            original = env.count([example.context])[0]
            kept = env.tokenizer.count([result.text])[0]
            record = {"text": result.text, "extras": result.extras, "seconds": seconds,
                      "original_tokens": original, "compressed_tokens": kept}
            cache.put("compressed", hashed, record)
            record = {**record, "cached": False}
        else:
            record = {**record, "cached": True}
        out.append(record)
    return out


def read_all(requests: list[Request], reader: Reader, cache: Cache, batch_size: int) -> Iterator[
        tuple[int, dict[str, Any]]]:
    """Yield (index, generation record) as batches finish, so records stream to disk.

    Cached generations come first; the rest go to the reader in batches of `batch_size`.
    """
    settings = reader.settings()
    keys = [digest({"stage": "generation", "reader": settings, "request": dataclasses.asdict(r)}) for r in requests]
    todo = []
    for i, key in enumerate(keys):
        hit = cache.get("generation", key)
        if hit is None:
            todo.append(i)
        else:
            yield i, {**hit, "cached": True}
    todo.sort(key=lambda i: len(requests[i].prompt))  # similar lengths share a batch: less padding
    bar = tqdm(total=len(todo), desc="read", unit="ex", leave=False, disable=None)
    for chunk in _chunks(todo, batch_size):
        generations: list[Generation] = reader.generate([requests[i] for i in chunk])
        for i, generation in zip(chunk, generations):
            record = dataclasses.asdict(generation)
            cache.put("generation", keys[i], record)
            yield i, {**record, "cached": False}
        bar.update(len(chunk))
    bar.close()


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


