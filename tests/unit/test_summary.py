"""The abstractive summary compressor on a tiny random llama (SmolLM2's tokenizer), built here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import WordTokenizer, make, needs_smollm2
from support.models import tiny_llama

from pcbench.compressors.base import Env
from pcbench.compressors.summary import fit
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.models.pool import Models

LONG = " ".join(f"Sentence {i} says that the river number {i} flows to the sea in spring." for i in range(40))
EXAMPLES = [
    Example("a", "Where does the river flow?", (Passage(LONG, "Rivers"),), ("the sea",)),
    Example("b", "What is the capital of France?", (Passage("Paris is the capital of France. It is large.", "France"),
                                                    Passage("Dogs bark at night. Cats sleep all day.", "Pets")),
            ("Paris",)),
]


def test_fit_cuts_at_a_sentence_end_then_at_a_word() -> None:
    env = Env(WordTokenizer())
    text = "One two three. Four five six. Seven eight."
    assert fit(text, 10, env) == (text, False)
    assert fit(text, 6, env) == ("One two three. Four five six.", True)
    assert fit(text, 2, env) == ("One two", True)  # no sentence fits: the words that do
    assert fit("", 3, env) == ("", False)


@pytest.mark.parametrize("knobs, match", [
    ({"threshold": 0.5, "rate": None}, r"threshold has no meaning for a summary"),
    ({"generic_prompt": "Summarize."}, r"compressor.generic_prompt must hold \{context\}"),
    ({"focused_prompt": "Text: {context}"}, r"compressor.focused_prompt must hold \{question\}"),
])
def test_bad_knobs_are_one_line(knobs: dict, match: str) -> None:
    with pytest.raises(PcbenchError, match=match):
        make("compressor", "summary", **knobs)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"), layers=2, window=2048)


@needs_smollm2
def test_budget_is_never_exceeded_and_batches_equal_one_by_one(tiny: str) -> None:
    from pcbench.core.tokenizer import load_tokenizer

    env = Env(load_tokenizer("smollm2"), models=Models())
    summary = make("compressor", "summary", model=tiny, device="cpu", rate=0.2, batch_size=4)
    together = summary.compress_batch(EXAMPLES, env)
    alone = [summary.compress(e, env) for e in EXAMPLES]
    assert [r.text for r in together] == [r.text for r in alone]
    for example, result in zip(EXAMPLES, together):
        limit = result.extras["target_reader_tokens"]
        assert limit == round(0.2 * env.count([example.context])[0])
        assert env.count([result.text])[0] <= limit
        assert result.extras["chunks"] == 1 and not result.extras["merged"] and result.extras["question_aware"]
    assert summary.question_aware and not make("compressor", "summary", question_aware=False).question_aware


@needs_smollm2
def test_long_contexts_are_summarised_in_chunks_then_merged(tiny: str) -> None:
    from pcbench.core.tokenizer import load_tokenizer

    env = Env(load_tokenizer("smollm2"), models=Models())
    summary = make("compressor", "summary", model=tiny, device="cpu", rate=0.1, max_input_tokens=128,
                   length_slack=3.0)
    result = summary.compress(EXAMPLES[0], env)
    assert result.extras["chunks"] > 3
    assert env.count([result.text])[0] <= result.extras["target_reader_tokens"]
    assert result.extras["merged"] or not result.extras["cut"]


@needs_smollm2
def test_a_cell_says_evidence_recall_does_not_apply(tmp_path: Path, tiny: str) -> None:
    from conftest import HOTPOT, cell

    data = tmp_path / "hotpot.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in HOTPOT) + "\n")
    metrics, records = cell(tmp_path, "task=hotpotqa", f"task.path={data}", "reader=none", "compressor=summary",
                            f"compressor.model={tiny}", "compressor.device=cpu")
    assert all(r["evidence_recall"] is None and r["evidence_recall_applicable"] is False for r in records)
    assert metrics["evidence_recall"] is None and metrics["compressor_info"]["generates_text"] is True
    assert all(r["compressed_tokens"] <= round(0.25 * r["original_tokens"]) for r in records)
