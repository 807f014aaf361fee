"""Sentinel: attention features of a proxy LM, a trained logistic-regression probe, selection.

A tiny random llama with SmolLM2's real tokenizer is the proxy; the probe is trained by
`pcbench-train --style sentinel` on a small HotpotQA-format file written here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make, needs_smollm2
from support.models import tiny_llama

from pcbench.compressors.base import Env
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage

pytestmark = needs_smollm2

CITIES = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Egypt", "Cairo"),
          ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Chile", "Santiago"), ("Norway", "Oslo"), ("Cuba", "Havana")]


def hotpot_records() -> list[dict[str, Any]]:
    out = []
    for i, (country, city) in enumerate(CITIES):
        context = [[country, [f"{country} is a country.", f" Its capital is {city}.", " It has many towns."]],
                   ["Weather", ["Rain falls often in autumn.", " Snow falls in winter in the north."]]]
        out.append({"_id": f"q{i}", "question": f"What is the capital of {country}?", "answer": city,
                    "supporting_facts": [[country, 1]], "context": context, "type": "bridge", "level": "easy"})
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_llama(tmp_path_factory.mktemp("tiny-proxy"), layers=2)


@pytest.fixture(scope="module")
def probe(tiny: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pcbench.apps.train import main

    folder = tmp_path_factory.mktemp("probe")
    data = folder / "hotpot.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in hotpot_records()))
    assert main(["--style", "sentinel", "--proxy", tiny, "--path", str(data), "--out", str(folder / "out"),
                 "--heldout", "0.2", "--device", "cpu"]) == 0
    return folder / "out"


EXAMPLE = Example("x", "What is the capital of Germany?", (
    Passage("Germany is a country. Its capital is Berlin. It has many towns.", "Germany",
            sentences=("Germany is a country.", " Its capital is Berlin.", " It has many towns.")),
    Passage("Rain falls often in autumn. Snow falls in winter in the north.", "Weather")), ("Berlin",))


def test_training_writes_a_probe_and_its_held_out_evaluation(probe: Path, tiny: str) -> None:
    saved = json.loads((probe / "sentinel.json").read_text())
    assert saved["proxy"] == tiny and saved["layers"] == 2 and saved["heads"] == 4
    assert len(saved["coef"]) == len(saved["mean"]) == len(saved["scale"]) == 8
    summary = json.loads((probe / "training.json").read_text())
    assert summary["train_questions"] == 8 and summary["train_gold_sentences"] == 8
    report = summary["evaluation"]
    assert report["questions"] == 2 and report["gold_sentences"] == 2 and "T=0.5" in report


def test_features_follow_the_reference_rule(tiny: str) -> None:
    """Per sentence and (layer, head): the mean over its tokens of the last position's attention,
    renormalised within the context, computed here directly from the model's attention."""
    from pcbench.compressors.sentinel import PROMPT_HEAD, PROMPT_TAIL, sentence_features
    from pcbench.compressors.units import first_char_anchors, split_units
    from pcbench.core.example import passage_starts
    from pcbench.core.tokenizer import load_tokenizer
    from pcbench.models.pool import ModelSpec

    lm = Env(load_tokenizer(tiny)).causal_lm(ModelSpec(tiny, None, "float32", "cpu"))
    units = split_units(EXAMPLE, "sentence")
    got = sentence_features(lm, EXAMPLE, units, 4096)
    prompt = PROMPT_HEAD + EXAMPLE.context + PROMPT_TAIL.format(question=EXAMPLE.question)
    tokens = lm.tokenize(prompt)
    lead = [lm.bos_id] if lm.bos_id is not None else []
    attention = lm.attention(lead + tokens.ids, [0, 1])[:, :, 0, len(lead):]  # [layers, heads, tokens]
    anchors = np.asarray(first_char_anchors(tokens.offsets, prompt)) - len(PROMPT_HEAD)
    context = (anchors >= 0) & (anchors < len(EXAMPLE.context))
    renormed = attention[:, :, context] / attention[:, :, context].sum(axis=-1, keepdims=True)
    starts = dict(passage_starts(EXAMPLE.passages))
    for k, unit in enumerate(units):
        a = starts[unit.passage] + unit.start
        mine = (anchors[context] >= a) & (anchors[context] < starts[unit.passage] + unit.end)
        assert np.allclose(got[k], renormed[:, :, mine].mean(axis=-1).reshape(-1), atol=1e-6)


def test_the_trained_probe_compresses_under_the_budget(probe: Path) -> None:
    from pcbench.core.tokenizer import load_tokenizer

    env = Env(load_tokenizer("smollm2"))
    compressor = make("compressor", "sentinel", model=str(probe), device="cpu", rate=0.4)
    out = compressor.compress(EXAMPLE, env)
    assert out.text and out.extras["kept_units"] >= 1
    assert env.count([out.text])[0] <= out.extras["budget_tokens"]
    kept_all = make("compressor", "sentinel", model=str(probe), device="cpu", rate=None, threshold=0.0)
    assert kept_all.compress(EXAMPLE, env).extras["kept_units"] == 5  # probabilities are all >= 0
    # The cache key follows the probe's content, not its folder's name.
    assert "probe" in compressor.scorer_key()


def test_bad_probe_and_level_are_one_line(tmp_path: Path, probe: Path) -> None:
    from pcbench.core.tokenizer import load_tokenizer

    with pytest.raises(PcbenchError, match="holds no sentinel.json"):
        make("compressor", "sentinel", model=str(tmp_path), device="cpu").compress(
            EXAMPLE, Env(load_tokenizer("smollm2")))
    with pytest.raises(PcbenchError, match="compressor.level='word' is not allowed for sentinel"):
        make("compressor", "sentinel", model=str(probe), level="word")
