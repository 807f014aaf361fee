"""LM token pruning (LLMLingua, LongLLMLingua, Selective Context) on a tiny random llama.

The tiny model (2 layers, hidden 32, a 64-token window) uses SmolLM2's real tokenizer, so the
offsets, budgets in reader tokens and window handling are exercised as with the real model, in
well under a second per call. Real SmolLM2 runs are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import make, needs_smollm2, shared
from support.models import tiny_llama

from pcbench.compressors.base import Env
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage

FAMILIES = ("llmlingua", "longllmlingua", "selective_context")
WINDOW = 64

PASSAGES = (
    Passage("Paris is the capital of France. It has many museums and the Eiffel tower. "
            "The Seine runs through the city and its bridges are famous.", "Paris"),
    Passage("The quick brown fox jumps over the lazy dog near the river bank every morning.", "Fox"),
    Passage("Quantum mechanics describes nature at the smallest scales of energy levels of atoms "
            "and subatomic particles, where classical physics fails.", "Quantum"),
)
EXAMPLE = Example("x", "What is the capital of France?", PASSAGES, ("Paris",))

pytestmark = needs_smollm2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A seeded random 2-layer llama with SmolLM2's tokenizer and a 64-token window, saved to disk."""
    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"), layers=2, window=WINDOW)


@pytest.fixture(scope="module")
def env(tiny: str) -> Env:
    from pcbench.core.tokenizer import load_tokenizer

    return Env(load_tokenizer(tiny))  # the reader's tokenizer: SmolLM2's


def build(family: str, model: str, **knobs: Any) -> Any:
    return make("compressor", family, model=model, device="cpu", **knobs)


def long_example(words: int = 600) -> Example:
    text = " ".join(f"Sentence {i} tells about topic {i % 7} and its many details." for i in range(words // 9))
    return Example("long", "Which topic?", (Passage(text, "Long"),), ("topic",))


# -- golden outputs -----------------------------------------------------------------------------

GOLDEN = {
    "llmlingua": "is of has many the E its\n\nquick brown fox near morning\n\nmechanics describes natureatomic.",
    # The token stage runs over the documents in output order (reorder_context=sort), as llmlingua 0.2.2 does.
    # Segments and ratios laid out as 0.2.2's, the question tokenized with the context after it.
    "longllmlingua": ("Quantum\nQuantum mechanics nature at smallest scales of energy levels of atoms and subatomic "
                      "particles, where classical fails.\n\nfox over lazy near river\n\n."),
    # The package's rule: each sentence scored alone, a unit's mean self-information.
    "selective_context": ("Paris\nParis the capital France many museums and its bridges\n\nFox\njumps every .\n\n"
                          "Quantum\ndescribes nature at subatomic particles where"),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_fixed_kept_tokens_for_a_fixed_input_and_seed(family: str, tiny: str, env: Env) -> None:
    out = build(family, tiny, rate=0.4).compress(EXAMPLE, env)
    assert out.text == GOLDEN[family]


def test_selective_context_one_pass_sum_is_the_earlier_rule(tiny: str, env: Env) -> None:
    """scoring=context unit_score=sum: the whole context in one pass, units summed (pcbench's rule
    before it followed the package), kept token for token."""
    out = build("selective_context", tiny, rate=0.4, scoring="context", unit_score="sum").compress(EXAMPLE, env)
    assert out.text == ("Paris\nthe Eiffel tower\n\nFox\nThe quick brown fox the lazy dog the river bank\n\n"
                        "Quantum\nthe smallest scales subatomic particles")


def test_selective_context_splits_sentences_as_the_package() -> None:
    from pcbench.compressors.selective_context import reference_sentences

    text = "Dr. Smith met Mr. Jones, e.g. at noon. Was it late? No!  Then they left."
    assert [text[a:b] for a, b in reference_sentences(text)] == [
        "Dr. Smith met Mr. Jones, e.g. at noon.", "Was it late?", "No!  Then they left."]


# -- budgets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_kept_length_grows_with_rate(family: str, tiny: str, env: Env) -> None:
    strict = {} if family == "selective_context" else {"strict_budget": True}
    kept = [env.count([build(family, tiny, rate=r, **strict).compress(EXAMPLE, env).text])[0]
            for r in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert kept == sorted(kept) and kept[0] < kept[-1], kept


@pytest.mark.parametrize("family", ("llmlingua", "longllmlingua"))
def test_faithful_rule_records_requested_and_achieved(family: str, tiny: str, env: Env) -> None:
    out = build(family, tiny, rate=0.3).compress(EXAMPLE, env)
    total = env.count([EXAMPLE.context])[0]
    assert out.extras["requested"]["rate"] == 0.3
    assert out.extras["target_reader_tokens"] == round(0.3 * total)
    assert out.extras["achieved_reader_tokens"] == env.count([out.text])[0]
    assert 0 < out.extras["achieved_reader_tokens"] < total


class CountingStore:
    """A store that remembers everything and lists, per call that computed LM scores, their stages."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.computes: list[list[str]] = []

    def fetch(self, key: dict[str, Any], compute: Any) -> Any:
        return self.fetch_many([key], lambda missing: [compute()])[0]

    def fetch_many(self, keys: list[dict[str, Any]], compute: Any) -> list[Any]:
        slots = [json.dumps(k, sort_keys=True) for k in keys]
        missing = [i for i, slot in enumerate(slots) if slot not in self.values]
        if missing:
            if keys[0]["stage"].startswith("lm_"):  # not token counts or spaCy's phrases
                self.computes.append([keys[i]["stage"] for i in missing])
            self.values.update({slots[i]: v for i, v in zip(missing, compute(missing))})
        return [self.values[slot] for slot in slots]


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_across_examples_keeps_the_same_tokens_as_one_by_one(family: str, tiny: str, env: Env) -> None:
    """Budget-free scores of several examples share forward passes (the coarse ranking, the first
    full pass, Selective Context's self-information); what each example keeps does not change, with
    a store that remembers nothing (the batch hands its scores on) and with one that does."""
    from dataclasses import replace

    examples = [EXAMPLE, long_example(200), Example("e", "Empty?", (), ("x",)),
                Example("f", "Where is the fox?", PASSAGES[1:], ("river",))]
    compressor = build(family, tiny, rate=0.4)
    alone = [compressor.compress(e, env).text for e in examples]
    assert [r.text for r in compressor.compress_batch(examples, env)] == alone  # env has no store
    store = CountingStore()
    assert [r.text for r in compressor.compress_batch(examples, replace(env, store=store))] == alone
    # One shared computation per budget-free stage, for all three examples with a context.
    assert store.computes == {"llmlingua": [["lm_doc_ppl"] * 2, ["lm_surprisal"] * 3],
                              "longllmlingua": [["lm_conditioned_ppl"] * 3, ["lm_surprisal"] * 6],
                              "selective_context": [["lm_self_info_sentences"] * 3]}[family]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("budget", [{"rate": 0.15}, {"rate": 0.45}, {"rate": 0.8},
                                    {"rate": None, "target_tokens": 20}])
def test_strict_budget_is_never_exceeded(family: str, budget: dict[str, Any], tiny: str, env: Env) -> None:
    strict = {} if family == "selective_context" else {"strict_budget": True}  # its rate rule is exact already
    for example in (EXAMPLE, long_example()):
        out = build(family, tiny, **budget, **strict).compress(example, env)
        total = env.count([example.context])[0]
        limit = budget["target_tokens"] if budget.get("target_tokens") else round(budget["rate"] * total)
        assert env.count([out.text])[0] <= limit
        assert out.extras["achieved_reader_tokens"] == env.count([out.text])[0]


def test_strict_budget_lands_close_to_the_budget(tiny: str, env: Env) -> None:
    out = build("llmlingua", tiny, rate=0.5, strict_budget=True).compress(long_example(), env)
    target = out.extras["target_reader_tokens"]
    assert target - 3 <= out.extras["achieved_reader_tokens"] <= target


def test_selective_context_reduce_ratio_removes_that_share_of_units(tiny: str, env: Env) -> None:
    out = build("selective_context", tiny, rate=None, reduce_ratio=0.35, level="sentence").compress(EXAMPLE, env)
    units, kept = out.extras["units"], out.extras["kept_units"]
    assert kept == units - int(0.35 * units) or abs(kept - 0.65 * units) <= 1


# -- edge inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_and_one_token_contexts(family: str, tiny: str, env: Env) -> None:
    compressor = build(family, tiny, rate=0.5)
    empty = Example("e", "Why?", (Passage(""),), ("x",))
    assert compressor.compress(empty, env).text == ""
    one = Example("o", "Why?", (Passage("Hello"),), ("x",))
    assert compressor.compress(one, env).text in ("", "Hello")
    assert compressor.compress(Example("n", "Why?", (), ("x",)), env).passages == ()


@pytest.mark.parametrize("family", FAMILIES)
def test_context_longer_than_the_scorer_window_is_scored_in_windows(family: str, tiny: str, env: Env) -> None:
    example = long_example(900)
    from pcbench.models.pool import ModelSpec

    scorer = env.causal_lm(ModelSpec(tiny, None, "float32", "cpu"))
    ids = scorer.encode(example.context)
    assert len(ids) > 5 * WINDOW
    out = build(family, tiny, rate=0.3).compress(example, env)
    assert 0 < env.count([out.text])[0] < env.count([example.context])[0]
    [surprisal] = scorer.surprisal([ids], batch_size=4, bos=True)
    assert len(surprisal) == len(ids) and not any(v != v for v in surprisal)  # every token scored, no NaN


def test_windowed_surprisal_matches_one_pass_inside_the_window(tiny: str, env: Env) -> None:
    from pcbench.models.pool import ModelSpec

    scorer = env.causal_lm(ModelSpec(tiny, None, "float32", "cpu"))
    ids = scorer.encode(EXAMPLE.context)[: WINDOW - 1]
    a, b = scorer.surprisal([ids, ids[:20]], batch_size=2, bos=True)
    assert abs(a[:20] - b).max() < 1e-4  # padding in a batch changes nothing


def test_kv_cache_step_matches_a_full_pass(tiny: str, env: Env) -> None:
    from pcbench.models.pool import ModelSpec

    scorer = env.causal_lm(ModelSpec(tiny, None, "float32", "cpu"))
    ids = scorer.encode(EXAMPLE.context)[:40]
    [full] = scorer.surprisal([ids], batch_size=1, bos=False)
    first, cache = scorer.step(ids[:25], None)
    second, _ = scorer.step(ids[24:], scorer.crop(cache, 24))
    assert abs(first - full[1:25]).max() < 1e-4
    assert abs(second - full[25:]).max() < 1e-4


def test_question_prefix_is_tokenized_with_the_context_after_it(tiny: str, env: Env) -> None:
    """llmlingua 0.2.2 tokenizes "question\n\n" + context as one string and finds the question's
    tokens by decoding; a blank line before a word is two newline tokens there, one at a string's end."""
    from pcbench.compressors.llmlingua import LLMLingua
    from pcbench.models.pool import ModelSpec

    scorer = env.causal_lm(ModelSpec(tiny, None, "float32", "cpu"))
    question = "In what 2 countries did both X-Large and A Bathing Ape have stores?"
    text = "X-Large\nX-Large is a store."
    prefix = LLMLingua.question_ids(scorer, question, text)
    assert prefix + scorer.encode(text) == scorer.encode(question + "\n\n" + text)
    assert prefix != scorer.encode(question + "\n\n")  # the case that used to differ


def test_segments_and_ratios_are_laid_out_as_the_reference_lays_them_out() -> None:
    """get_dynamic_compression_ratio's arithmetic: each document counts its own tokens + 2, the count
    starts at 1 (the first segment is one token short), ratios = budget / counts + the offset."""
    from pcbench.compressors.llmlingua import Doc, Plan

    class Words:  # a tokenizer of one token per word: the lengths are plain to read
        def encode(self, text: str) -> list[int]:
            return [0] * len(text.split())

    docs = [Doc(0, "", "w " * 150), Doc(1, "", "w " * 300), Doc(2, "", "w " * 40)]
    plan = Plan(docs, [0, 1, 2], "", [], [0.1, 0.0, -0.1])
    compressor = make("compressor", "longllmlingua", rate=0.5, device="cpu")
    tau = 100 / (152 + 302 + 42 + 1)
    r0, r1, r2 = tau + 0.1, tau, tau - 0.1
    assert compressor.segment_ratios(Words(), plan, 100.0, 200) == [
        [(152, r0), (47, r1)], [(200, r1)], [(55, r1), (42, r2)]]


def test_selective_context_is_query_agnostic_and_longllmlingua_is_not(tiny: str, env: Env) -> None:
    other = Example("x", "What do quantum particles do?", PASSAGES, ("Paris",))
    sc = build("selective_context", tiny, rate=0.4)
    assert sc.compress(EXAMPLE, env).text == sc.compress(other, env).text
    assert type(sc).question_aware is False
    assert type(build("llmlingua", tiny, rate=0.4)).question_aware is False
    assert type(build("longllmlingua", tiny, rate=0.4)).question_aware is True


def test_longllmlingua_cuts_a_long_passage_into_sentence_documents(tiny: str, env: Env) -> None:
    from pcbench.models.pool import ModelSpec

    compressor = build("longllmlingua", tiny, max_document_tokens=40)
    docs = compressor.documents(long_example(), env.causal_lm(ModelSpec(tiny, None, "float32", "cpu")))
    assert len(docs) > 3 and all(d.passage == 0 for d in docs)
    assert "".join(d.text for d in docs) == long_example().passages[0].text
    assert docs[0].title == "Long" and all(not d.title for d in docs[1:])


def test_subsequence_recovery_restores_original_spans(tiny: str, env: Env) -> None:
    from pcbench.compressors.longllmlingua import recover
    from pcbench.models.pool import ModelSpec

    scorer = env.causal_lm(ModelSpec(tiny, None, "float32", "cpu"))
    got = recover(scorer, "Paris is the capital of France and big", "Paris capital France",
                  "It is Paris capital France")
    assert got == "It is Paris is the capital of France"


def test_longllmlingua_restores_the_answer_before_scoring_only_with_recovery(tiny: str, env: Env) -> None:
    example = Example("r", "What is Paris?", (Passage("Paris is the capital of France and big"),), ("capital",))
    on, off = build("longllmlingua", tiny), build("longllmlingua", tiny, recovery=False)
    answer = "It is Paris capital France"
    assert on.restore(answer, example, "Paris capital France", env) == "It is Paris is the capital of France"
    assert off.restore(answer, example, "Paris capital France", env) == answer
    assert build("llmlingua", tiny).restore(answer, example, "Paris capital France", env) == answer


def test_phrase_units_are_noun_chunks_or_words_with_the_fallback_recorded(tiny: str, env: Env) -> None:
    out = build("selective_context", tiny, rate=0.5, level="phrase").compress(EXAMPLE, env)
    assert out.extras["level"] in ("phrase", "word")
    assert ("fallback" in out.extras) == (out.extras["level"] == "word")


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_a_scorer_that_cannot_be_loaded_is_one_line_naming_id_and_key(family: str, env: Env,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PcbenchError) as error:
        build(family, "/nonexistent/pcbench-no-such-model").compress(EXAMPLE, env)
    message = str(error.value)
    assert "\n" not in message and "/nonexistent/pcbench-no-such-model" in message and "compressor.model" in message


@pytest.mark.parametrize(("family", "knobs", "words"), [
    ("selective_context", {"level": "clause"}, "compressor.level"),
    ("llmlingua", {"rate": 1.5}, "compressor.rate"),
    ("longllmlingua", {"rate": 0.0}, "compressor.rate"),
    ("selective_context", {"batch_size": "many"}, "compressor.batch_size"),
    ("llmlingua", {"iterative_size": "big"}, "compressor.iterative_size"),
    ("longllmlingua", {"reorder_context": "random"}, "compressor.reorder_context"),
    ("llmlingua", {"context_budget": "__import__('os')"}, "compressor.context_budget"),
    ("llmlingua", {"rate": None, "threshold": 2.0}, "threshold"),
    ("selective_context", {"reduce_ratio": 0.3}, "reduce_ratio"),
])
def test_bad_knobs_are_one_line_each(family: str, knobs: dict[str, Any], words: str) -> None:
    with pytest.raises(PcbenchError) as error:
        make("compressor", family, **knobs)
    assert "\n" not in str(error.value) and words in str(error.value)


# -- real runs (SmolLM2) ----------------------------------------------------------------------------


def _hotpot(n: int) -> list[Example]:
    path = shared("hotpotqa/hotpot_dev_distractor_800.jsonl")
    return make("task", "hotpotqa", path=str(path), limit=n).load()


def _longbench() -> Example:
    path: Path = shared("longbench/sample/hotpotqa.jsonl")
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    # The first ~1.5k tokens: the one-passage LongBench shape at a cost that keeps the suite short.
    return Example("lb", row["input"], (Passage(row["context"][:6000]),), tuple(row["answers"]))


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_real_run_with_smollm2(family: str) -> None:
    from pcbench.core.tokenizer import load_tokenizer

    env = Env(load_tokenizer("smollm2"))
    compressor = make("compressor", family, rate=0.5)
    examples = _hotpot(2) + [_longbench()]
    for example in examples:
        out = compressor.compress(example, env)
        total = env.count([example.context])[0]
        achieved = env.count([out.text])[0]
        assert 0.1 * total < achieved < 0.95 * total, (family, example.id, achieved, total)
        assert out.extras["achieved_reader_tokens"] == achieved
