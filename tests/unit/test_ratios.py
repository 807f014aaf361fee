"""Paper-comparable ratios: records in cl100k tokens (context and whole prompt) and characters, and
budgets requested the papers' way (budget_tokenizer, budget_scope)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import HOTPOT, cell, make, needs_smollm2

from pcbench.compressors.base import Budget
from pcbench.core.errors import PcbenchError
from pcbench.core.tokenizer import openai_tokenizer


def test_cl100k_is_openais_gpt35_tokenizer() -> None:
    cl100k = openai_tokenizer("cl100k")
    # tiktoken's cl100k_base ids for this text (GPT-3.5/GPT-4's tokenizer).
    assert cl100k.encode("Hello world, this is a test.") == [9906, 1917, 11, 420, 374, 264, 1296, 13]
    assert cl100k.decode(cl100k.encode("Émile naît à Paris.")) == "Émile naît à Paris."
    assert cl100k.count(["<|endoftext|> is text here", ""]) == [len(cl100k.encode("<|endoftext|> is text here")), 0]
    assert openai_tokenizer("o200k").count(["Hello world"]) == [2]


@pytest.mark.parametrize("name", ["cl100k", "o200k"])
def test_openai_counts_are_exact_at_any_length(name: str) -> None:
    """bpe-openai refuses 1,000,000 characters and 200,000 tokens per call; pieces cut where the
    pre-tokenizer splits anyway give exactly the whole text's tokens, and any length counts."""
    import random

    from pcbench.core.tokenizer import bpe_pieces

    tokenizer = openai_tokenizer(name)
    rng = random.Random(0)
    words = ["alpha", "beta.", "Gamma,", "42", "2024-12-06", "\n", "\n\n", "  ", "\t", "naïve", "“quoted”", "x" * 30]
    text = " ".join(rng.choice(words) for _ in range(30000))
    whole = list(tokenizer.encoding.encode_ordinary(text))  # under both limits: one call
    for size in (997, 5000, 40000):
        pieces = bpe_pieces(text, size)
        assert "".join(pieces) == text and max(map(len, pieces)) <= size and len(pieces) > 1
        assert [i for p in pieces for i in tokenizer.encoding.encode_ordinary(p)] == whole
        one_line = text.replace("\n", " ")  # no newline to cut at: cut before a word's space
        assert sum(len(tokenizer.encoding.encode_ordinary(p)) for p in bpe_pieces(one_line, size)) == \
            len(tokenizer.encoding.encode_ordinary(one_line))
    million = text * (1_100_000 // len(text) + 1)
    assert len(million) > 1_000_000
    assert tokenizer.count([million]) == [len(tokenizer.encode(million))] and len(tokenizer.encode(million)) > 200_000


def budget(**knobs: object) -> Budget:
    base = {"rate": None, "target_tokens": None, "threshold": None, "budget_tokenizer": "reader",
            "budget_scope": "context"}
    return Budget(**{**base, **knobs})  # type: ignore[arg-type]


def test_a_prompt_budget_keeps_the_instruction_and_question_whole() -> None:
    assert budget(rate=0.5).token_limit(1000, overhead=100) == 500
    # Half of a 1100-token prompt is 550; the 100 tokens of instruction and question stay.
    assert budget(rate=0.5, budget_scope="prompt").token_limit(1000, overhead=100) == 450
    assert budget(target_tokens=300, budget_scope="prompt").token_limit(1000, overhead=100) == 200
    assert budget(rate=0.05, budget_scope="prompt").token_limit(1000, overhead=100) == 0  # never negative


@needs_smollm2
def test_records_hold_the_papers_ratios(tmp_path: Path, hotpot_file: Path) -> None:
    base = ["task=hotpotqa", f"task.path={hotpot_file}", "reader=none", "compressor=bm25", "compressor.rate=0.5"]
    metrics, records = cell(tmp_path, *base)
    cl100k = openai_tokenizer("cl100k")
    for record in records:
        assert {"char_ratio", "kept_ratio_cl100k", "prompt_ratio_cl100k"} <= set(record)
        original = next(r for r in HOTPOT if r["_id"] == record["id"])
        context = "\n\n".join(f"{title}\n{''.join(sentences)}" for title, sentences in original["context"])
        assert record["kept_ratio_cl100k"] == pytest.approx(cl100k.count([record["context"]])[0]
                                                           / cl100k.count([context])[0])
        # The whole prompt keeps its instruction and question: a larger share than the context alone.
        assert record["kept_ratio_cl100k"] < record["prompt_ratio_cl100k"] < 1
    assert metrics["kept_ratio_cl100k"] == pytest.approx(sum(r["kept_ratio_cl100k"] for r in records) / 3)
    assert 0 < metrics["prompt_ratio_cl100k"] < 1


@needs_smollm2
@pytest.mark.parametrize("scope, column", [("context", "kept_ratio_cl100k"), ("prompt", "prompt_ratio_cl100k")])
def test_a_budget_in_cl100k_tokens_holds_in_cl100k_tokens(tmp_path: Path, hotpot_file: Path, scope: str,
                                                         column: str) -> None:
    base = ["task=hotpotqa", f"task.path={hotpot_file}", "reader=none", "compressor=bm25", "compressor.level=word",
            "compressor.rate=0.5", "compressor.budget_tokenizer=cl100k", f"compressor.budget_scope={scope}"]
    _, records = cell(tmp_path, *base)
    cl100k, task = openai_tokenizer("cl100k"), make("task", "hotpotqa", path=str(hotpot_file))
    for record, example in zip(records, task.load()):
        assert record["id"] == example.id
        if scope == "context":
            total, kept, slack = cl100k.count([example.context])[0], cl100k.count([record["context"]])[0], 0
        else:
            # The prompt's other tokens are counted apart from the context: where the two meet, a
            # token or two can differ from counting the joined prompt.
            total, kept = cl100k.count([task.prompt(example, example.context), task.prompt(example, record["context"])])
            slack = 2
        assert kept <= round(0.5 * total) + slack  # the budget's own unit: never over it...
        assert record[column] > 0.4  # ...and close to it
    reader_counted, _ = cell(tmp_path, *base[:-2], out="reader")
    assert reader_counted["cache_hits"]["compress"] == 0  # another budget basis is another result


def test_chain_steps_must_count_alike() -> None:
    chain = make("compressor", "chain", steps={"fine": {"budget_tokenizer": "cl100k"}})
    with pytest.raises(PcbenchError, match=r"compressor.steps count budgets differently \(coarse: "
                                           r"reader/context, fine: cl100k/context\)"):
        chain.budget_basis()
    assert make("compressor", "chain").budget_basis() == ("reader", "context")
