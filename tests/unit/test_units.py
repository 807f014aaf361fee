"""Units: spans with offsets that tile their passage, rendering that slices the original text."""

from __future__ import annotations

from pcbench.compressors.units import (
    aggregate,
    first_char_anchors,
    last_char_anchors,
    owners,
    render,
    split_units,
    unit_spans,
    view,
)
from pcbench.core.example import Example, Passage
from pcbench.core.text import split_sentences

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
    units = split_units(example, "sentence")
    assert [u.text for u in units] == ["One two.", " Three four."]
    assert [(u.start, u.end) for u in units] == [(0, 8), (8, 20)]


def test_offsets_slice_the_passage_at_every_level() -> None:
    example = Example("e", "q", (Passage("   "), Passage(TEXT, "France")), ())
    for level in ("passage", "sentence", "word"):
        units = split_units(example, level)
        assert all(u.passage == 1 and TEXT[u.start:u.end] == u.text for u in units)
        assert "".join(u.text for u in units).strip() == TEXT.strip()
    words = split_units(example, "word")
    assert [u.text for u in words[:3]] == ["Paris", " is", " the"]


def test_rendering_keeps_titles_and_regroups_units() -> None:
    a = Passage("First one. First two.", "A")
    b = Passage("Second one. Second two.", "B")
    example = Example("e", "q", (a, Passage("  "), b), ())
    passages = split_units(example, "passage")
    assert [view(example, u) for u in passages] == ["A\nFirst one. First two.", "B\nSecond one. Second two."]
    assert render(example, passages) == (a, b)
    sentences = split_units(example, "sentence")
    assert [u.passage for u in sentences] == [0, 0, 2, 2]
    assert render(example, [sentences[1], sentences[3]]) == (Passage("First two.", "A"), Passage("Second two.", "B"))
    words = split_units(example, "word")
    assert render(example, [words[0], words[2], words[3]])[0].text == "First First two."


def test_token_scores_aggregate_into_units_by_offset() -> None:
    text = "Paris is big. Rome is old."
    example = Example("e", "q", (Passage(text),), ())
    sentences = split_units(example, "sentence")
    # Tokens as a BPE tokenizer reports them: the leading space glued to the token.
    offsets = [(0, 5), (5, 8), (8, 12), (12, 13), (13, 18), (18, 21), (21, 25), (25, 26)]
    scores = [1, 2, 3, 4, 10, 20, 30, 40]
    spans = unit_spans(sentences)
    assert aggregate(last_char_anchors(offsets), scores, spans, "sum") == [10.0, 100.0]
    assert aggregate(last_char_anchors(offsets), scores, spans, "mean") == [2.5, 25.0]
    assert aggregate(last_char_anchors([(0, 0), *offsets[:4]]), [99, *scores[:4]], spans, "max") == [4.0, float("-inf")]
    # The causal-LM rule anchors a token on its first non-space character: the same owners here...
    assert owners(first_char_anchors(offsets, text), spans) == owners(last_char_anchors(offsets), spans)
    # ...but not for a token that runs across a unit's end (".R" glued): first char -> the left unit.
    glued = [(0, 12), (12, 15), (15, 26)]
    assert owners(first_char_anchors(glued, text), spans) == [0, 0, 1]
    assert owners(last_char_anchors(glued), spans) == [0, 1, 1]


def test_units_are_split_once_per_passages_and_level_and_handed_out_as_fresh_lists() -> None:
    example = Example("q", "Where?", (Passage(TEXT, "Paris"),), ("Paris",), meta={"unhashable": []})
    first = split_units(example, "sentence")
    first.reverse()  # a caller reordering its list must not reorder the next caller's
    again = split_units(Example("q2", "Other?", example.passages, ()), "sentence")
    assert [u.text for u in again] == split_sentences(TEXT)
    assert [u.text for u in split_units(example, "passage")] == [TEXT]  # the level is part of the key


def test_sentences_end_at_the_full_stops_of_other_scripts() -> None:
    """XProvence prunes 100+ languages: a Hindi, Armenian or Chinese paragraph is cut into sentences,
    and the pieces still concatenate back to the text."""
    from pcbench.core.text import split_sentences

    cases = {"मुंबई भारत का शहर है। यह बड़ा है।": ["मुंबई भारत का शहर है। ", "यह बड़ा है।"],
             "Հայաստանը երկիր է։ Այն փոքր է։": ["Հայաստանը երկիր է։ ", "Այն փոքր է։"],
             "北京是中国的首都。上海很大！": ["北京是中国的首都。", "上海很大！"],
             "دبي مدينة كبيرة. هي في الإمارات؟ نعم!": ["دبي مدينة كبيرة. ", "هي في الإمارات؟ ", "نعم!"]}
    for text, sentences in cases.items():
        assert split_sentences(text) == sentences
