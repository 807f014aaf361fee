"""Writing in the Margins: its segmenter and classifier parse on worked cases, and the chunked-prefill
loop on a tiny random llama with SmolLM2's tokenizer and chat template. Agreement with WiM's own
code on its BABILong example: benchmarks/wim_reference.py."""

from __future__ import annotations

import pytest
from conftest import WordTokenizer, make

from pcbench.compressors.base import Env
from pcbench.compressors.wim import headers, kept_margin, segments_of
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.models.pool import Models

TEXT = "Mary went to the kitchen. John took the apple there. Sandra moved to the garden. The end came."


def words(text: str) -> int:
    return len(text.split())


def test_segments_pack_sentences_and_the_official_chunker_drops_each_boundary_sentence() -> None:
    # 5, 5, 5, 3 words; at most 10 per segment
    assert segments_of(TEXT, 10, words, drop_boundary_sentence=True) == [
        "Mary went to the kitchen. John took the apple there. ", "The end came. "]
    assert segments_of(TEXT, 10, words, drop_boundary_sentence=False) == [
        "Mary went to the kitchen. John took the apple there. ", "Sandra moved to the garden. The end came. "]
    assert segments_of(TEXT, 100, words, drop_boundary_sentence=True) == [TEXT + " "]


def test_a_margin_is_kept_when_the_reply_before_its_hash_ends_with_yes() -> None:
    assert kept_margin("YES#It mentions Mary.") and kept_margin("```\nYES\n```") and kept_margin(" YES ")
    assert not kept_margin("NO#Not related.") and not kept_margin("Yes#lower case") and not kept_margin("NO#YES")


def test_headers_come_from_the_chat_template(tiny: str) -> None:
    from transformers import AutoTokenizer

    user, generation = headers(AutoTokenizer.from_pretrained(tiny))
    assert user.endswith("<|im_start|>user\n") and generation == "<|im_end|>\n<|im_start|>assistant\n"


def example(text: str = TEXT, id: str = "a") -> Example:
    return Example(id, "Where is Mary?", (Passage(text),), ("kitchen",))


def test_margins_are_written_classified_and_counted(tiny: str) -> None:
    e = Env(WordTokenizer(), models=Models())
    wim = make("compressor", "wim", model=tiny, device="cpu", segment_tokens=12, margin_tokens=4,
               classification_tokens=3, drop_boundary_sentence=False)
    result = wim.compress(example(), e)
    x = result.extras
    assert x["segments"] == x["margins"] == len(x["margin_texts"]) == len(x["margin_kept"]) == 2
    assert x["kept_margins"] == sum(x["margin_kept"])
    assert 2 <= x["generated_tokens"] <= 2 * (4 + 3) and x["prefill_tokens"] > 0
    # the reader gets the segments (as the cache held them), then the kept margins
    assert result.passages[0].text == TEXT
    assert len(result.passages) == 1 + (x["kept_margins"] > 0 and bool("".join(
        m for m, k in zip(x["margin_texts"], x["margin_kept"]) if k).strip()))
    batch = [example(), example(TEXT.replace("Mary", "Anna"), id="b")]
    assert [r.text for r in wim.compress_batch(batch, e)] == [wim.compress(b, e).text for b in batch]
    only = make("compressor", "wim", model=tiny, device="cpu", segment_tokens=12, margin_tokens=4,
                classification_tokens=3, answer_from="margins").compress(example(), e)
    assert TEXT not in only.text


def test_a_context_past_the_model_window_is_one_line(tiny: str) -> None:
    long = " ".join(f"Sentence number {i} is about the kitchen." for i in range(120))
    wim = make("compressor", "wim", model=tiny, device="cpu", margin_tokens=2, classification_tokens=2)
    with pytest.raises(PcbenchError, match="past compressor.model=.*window of 256"):
        wim.compress(example(long), Env(WordTokenizer(), models=Models()))


def test_templates_without_their_placeholders_are_one_line() -> None:
    with pytest.raises(PcbenchError, match=r"compressor.margin_prompt must hold \{query\}"):
        make("compressor", "wim", margin_prompt="Summarise.")
    with pytest.raises(PcbenchError, match=r"compressor.classification_prompt must hold \{answer\}"):
        make("compressor", "wim", classification_prompt="Is it relevant?")
    with pytest.raises(PcbenchError, match="compressor.answer_from"):
        make("compressor", "wim", answer_from="both")
