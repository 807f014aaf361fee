"""The attention probe on a tiny random llama with SmolLM2's tokenizer (built in test_models)."""

from __future__ import annotations

import pytest
from conftest import make, needs_smollm2

from pcbench.compressors.base import Env
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.models.pool import Models

pytestmark = needs_smollm2

EXAMPLES = [
    Example("a", "Where is the tower?", (Passage("The tower is in Paris. It is tall. Bread is baked daily.", "Tower"),
                                         Passage("Dogs bark at night. Cats sleep.", "Pets")), ("Paris",)),
    Example("b", "What do cats do?", (Passage("Cats sleep all day. Dogs run. Birds sing in trees.", "Animals"),),
            ("sleep",)),
]


def env() -> Env:
    from pcbench.core.tokenizer import load_tokenizer

    return Env(load_tokenizer("smollm2"), models=Models())


def test_units_are_scored_by_attention_and_kept_under_the_budget(tiny: str) -> None:  # noqa: F811
    e = env()
    probe = make("compressor", "attention", model=tiny, device="cpu", rate=0.5, layers=[-2, -1])
    together = probe.compress_batch(EXAMPLES, e)
    alone = [probe.compress(x, e) for x in EXAMPLES]
    assert [r.text for r in together] == [r.text for r in alone]
    for example, result in zip(EXAMPLES, together):
        assert 0 < e.count([result.text])[0] <= round(0.5 * e.count([example.context])[0])
    # With sum over units, the scores are the attention mass the context gets: positive, at most 1.
    one = make("compressor", "attention", model=tiny, device="cpu", layers=[0], heads=[0], rate=0.5)
    units = one.units(EXAMPLES[0], e)
    [scores] = one.score_batch([EXAMPLES[0]], [units], e)
    assert len(scores) == len(units) and all(s > 0 for s in scores) and sum(scores) <= 1 + 1e-6


def test_long_contexts_are_read_in_windows(tiny: str) -> None:  # noqa: F811
    e = env()
    windowed = make("compressor", "attention", model=tiny, device="cpu", max_tokens=16, query="question",
                    answer_hint=None, layers=[-1])
    units = windowed.units(EXAMPLES[0], e)
    [scores] = windowed.score_batch([EXAMPLES[0]], [units], e)
    assert len(scores) == len(units) and all(s > 0 for s in scores)


def test_bad_layers_and_heads_are_one_line(tiny: str) -> None:  # noqa: F811
    with pytest.raises(PcbenchError, match="compressor.layers is empty"):
        make("compressor", "attention", layers=[])
    with pytest.raises(PcbenchError, match=r"compressor.layers=\[9\]: this model has 3 layers"):
        make("compressor", "attention", model=tiny, device="cpu", layers=[9]).compress(EXAMPLES[1], env())
    with pytest.raises(PcbenchError, match=r"compressor.heads=\[7\]: the model has 4 heads"):
        make("compressor", "attention", model=tiny, device="cpu", heads=[7], layers=[-1]).compress(EXAMPLES[1], env())
