"""Units: sentence pieces that give the text back, and rendering that keeps passage titles."""

from __future__ import annotations

from compressors.units import render_units, split_sentences, split_units
from core.example import Example, Passage

TEXT = "Paris is the capital of France. It has many museums.\nThe river Seine flows through it."


def test_sentences_concatenate_back_to_the_text() -> None:
    pieces = split_sentences(TEXT)
    assert len(pieces) == 3 and "".join(pieces) == TEXT
    assert split_sentences("   ") == []


def test_sentences_of_non_ascii_text() -> None:
    # blingfire returns character offsets; treating them as bytes would cut words in half.
    text = "Le café est très bon. Il fait beau à Paris. Oui."
    assert split_sentences(text) == ["Le café est très bon. ", "Il fait beau à Paris. ", "Oui."]


def test_dataset_sentences_are_used_as_given() -> None:
    passage = Passage("One two. Three four.", "T", sentences=("One two.", " Three four."))
    example = Example("e", "q", (passage,), ())
    assert [u.text for u in split_units(example, "sentence")] == ["One two.", " Three four."]


def test_units_at_both_levels_and_rendering_with_titles() -> None:
    a = Passage("First one. First two.", "A")
    b = Passage("Second one. Second two.", "B")
    example = Example("e", "q", (a, Passage("  "), b), ())
    passages = split_units(example, "passage")
    assert [u.text for u in passages] == ["A\nFirst one. First two.", "B\nSecond one. Second two."]
    assert render_units(example, passages, "passage") == example.context
    sentences = split_units(example, "sentence")
    assert [u.passage for u in sentences] == [0, 0, 2, 2]
    assert render_units(example, sentences, "sentence") == example.context
    assert render_units(example, [sentences[1], sentences[3]], "sentence") == "A\nFirst two.\n\nB\nSecond two."
