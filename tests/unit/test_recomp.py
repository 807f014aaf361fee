"""RECOMP's abstractive compressor on a tiny T5 built in the tests (no T5 weights ship offline)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import WordTokenizer, make

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
