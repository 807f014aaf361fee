"""reader=kvpress: the split between pressed and unpressed tokens, the missing-package line, and, where
kvpress imports, real presses on a tiny Llama with SmolLM2's tokenizer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import make, needs_smollm2
from support.models import tiny_llama

from pcbench.core.errors import PcbenchError
from pcbench.core.requests import Request, context_end
from pcbench.readers.kvpress_reader import PRESSES, KVPressReader

# Checked without importing: kvpress patches transformers' attention functions on import. Installed
# but broken (a transformers it cannot follow) fails these tests rather than skipping them.
needs_kvpress = pytest.mark.skipif(importlib.util.find_spec("kvpress") is None, reason="kvpress is not installed")

TEMPLATE = "Read the notes.\n\n{context}\n\nQuestion: {question}\nAnswer:"


def request(context: str, question: str = "what opens the blue door?", max_new: int = 6) -> Request:
    def render(c: str) -> str:
        return TEMPLATE.format(context=c, question=question)

    return Request(render(context), max_new, context_end=context_end(render, context))


NOTES = "The red key opens the blue door. The green key opens nothing at all. " * 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    # Head-wise presses (AdaKV) hide keys behind a key no query can reach, found per head: it needs
    # head dimensions beyond the number of queries read after the press (8 would be too few).
    return tiny_llama(tmp_path_factory.mktemp("tiny-kv"), layers=2, window=1024, head_dim=64, pad=True)


def press_reader(tiny: str, **knobs: object) -> KVPressReader:
    return make("reader", "kvpress", **{"model": tiny, "device": "cpu", "max_input_tokens": 400, **knobs})


def test_context_end_marks_the_context() -> None:
    r = request("some notes")
    assert r.prompt[: r.context_end].endswith("some notes") and r.prompt[r.context_end:].startswith("\n\nQuestion")
    assert context_end(lambda c: "no context here", "x") is None
    assert context_end(lambda c: c + c, "x") is None  # twice: no single place


@needs_smollm2
def test_split_puts_the_question_after_the_press_only_when_query_agnostic(tiny: str) -> None:
    aware, agnostic = press_reader(tiny, question_aware=True), press_reader(tiny, question_aware=False)
    r = request(NOTES)
    prompt = aware.prompt(r)
    hf = aware.tokenizer.hf
    k_aware, k_agnostic = aware.split(r, prompt), agnostic.split(r, prompt)
    # Aware: everything the task wrote is pressed; only the template's closing tokens follow.
    assert hf.decode(list(prompt.ids[k_aware:])).startswith("<|im_end|>")
    # Agnostic: the question and answer cue follow, the context is pressed.
    assert hf.decode(list(prompt.ids[k_agnostic:]), skip_special_tokens=True).lstrip().startswith("Question:")
    assert "blue door" in hf.decode(list(prompt.ids[:k_agnostic]))
    raw = Request("Just a raw prompt.", 4, chat=False)
    assert aware.split(raw, aware.prompt(raw)) == len(aware.prompt(raw).ids) - 1  # the last token starts decoding
    with pytest.raises(PcbenchError, match=r"reader\.question_aware=false needs the task to say where its context"):
        agnostic.split(raw, agnostic.prompt(raw))


def test_settings_and_keys() -> None:
    base = make("reader", "kvpress", model="m")
    s = base.settings()
    assert s["reader"] == "kvpress" and s["press"] == "snapkv" and s["question_aware"] is True
    assert make("reader", "kvpress", model="m", compression_ratio=0.25).settings() != s
    assert make("reader", "kvpress", model="m", press="knorm").settings() != s
    # Only a query-agnostic press keys its cache on where the context ends.
    a, b = Request("p q", 2, context_end=1), Request("p q", 2, context_end=2)
    assert base.request_key(a) == base.request_key(b)
    agnostic = make("reader", "kvpress", model="m", question_aware=False)
    assert agnostic.request_key(a) != agnostic.request_key(b)
    with pytest.raises(PcbenchError, match=r"reader\.press='h2o' is not allowed; allowed: one of snapkv"):
        make("reader", "kvpress", model="m", press="h2o")
    with pytest.raises(PcbenchError, match=r"reader\.compression_ratio=1\.0 is not allowed"):
        make("reader", "kvpress", model="m", compression_ratio=1.0)


@needs_smollm2
def test_without_kvpress_is_one_line(tiny: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kvpress", None)
    reader = press_reader(tiny)
    with pytest.raises(PcbenchError, match=r"^reader=kvpress needs the kvpress package: pip install --no-deps "
                                           r"kvpress cachetools fire termcolor \(kvpress pins an older"):
        reader.generate([request(NOTES)])
    assert not reader.loaded  # it failed before loading any weights


@needs_smollm2
@needs_kvpress
def test_no_eviction_equals_the_transformers_reader(tiny: str) -> None:
    plain = make("reader", "transformers", model=tiny, dtype="float32", device="cpu", max_input_tokens=400)
    requests = [request(NOTES), request(NOTES[:200], "which key opens nothing?")]
    expected = plain.generate(requests)
    for aware in (True, False):
        got = press_reader(tiny, compression_ratio=0.0, question_aware=aware).generate(requests)
        assert [g.text for g in got] == [g.text for g in expected]
        assert [g.new_tokens for g in got] == [g.new_tokens for g in expected]
        assert [g.prompt_tokens for g in got] == [g.prompt_tokens for g in expected]
        assert all(g.kv_kept_ratio == 1.0 and g.kv_cache_mib == g.kv_full_mib for g in got)


SEQUENCE_PRESSES = sorted(set(PRESSES) - {"think", "snap_think"})
HEADWISE = {"adakv_snapkv", "critical_adakv_snapkv", "expected_attention"}


@needs_smollm2
@needs_kvpress
@pytest.mark.parametrize("press", SEQUENCE_PRESSES)
def test_presses_keep_what_they_are_asked(tiny: str, press: str) -> None:
    """Every press of kvpress's registry offered here runs, and keeps the asked share of KV entries
    (positions x heads: head-wise presses such as AdaKV mask entries in place and are counted so)."""
    prompt = request(NOTES)
    if press in HEADWISE:
        # kvpress hides a masked key behind a fake key that no query reading it can reach; on this
        # random model the queries of a multi-token block (the chat template's closing tokens) admit
        # none, so the prompt is raw here: one token after the press, then decoding token by token.
        prompt = Request(prompt.prompt, prompt.max_new_tokens, chat=False)
    (out,) = press_reader(tiny, press=press, compression_ratio=0.5).generate([prompt])
    # pyramidkv shapes its budget by layer and chunkkv/block presses round to their chunks.
    assert out.kv_kept_ratio == pytest.approx(0.5, abs=0.02 if press not in ("pyramidkv", "chunkkv") else 0.1), press
    assert 1 <= out.new_tokens <= 6 and out.prefill_seconds > 0
    # Memory: a sequence press frees what it evicts; a head-wise one masks in place and frees nothing.
    assert out.kv_cache_mib is not None and out.kv_full_mib is not None and out.kv_full_mib > 0
    held = out.kv_cache_mib / out.kv_full_mib
    assert held == (pytest.approx(1.0) if press in HEADWISE else pytest.approx(out.kv_kept_ratio, abs=0.01)), press
    assert out.prefill_peak_mib is not None and out.prefill_peak_mib >= 0


@needs_smollm2
@needs_kvpress
def test_presses_are_built_as_kvpress_evaluation_builds_them(tiny: str) -> None:
    import kvpress

    built = press_reader(tiny, press="expected_attention", compression_ratio=0.3)._build_press()
    assert isinstance(built, kvpress.AdaKVPress) and isinstance(built.press, kvpress.ExpectedAttentionPress)
    assert built.press.epsilon == 1e-2 and built.compression_ratio == 0.3
    composed = press_reader(tiny, press="snap_think", compression_ratio=0.4,
                            key_channel_compression_ratio=0.5)._build_press()
    snap, think = composed.presses
    assert snap.compression_ratio == 0.4 and think.key_channel_compression_ratio == 0.5
    for press in ("think", "snap_think"):  # ThinK prunes key channels: the sequence stays (kept ratio counts entries)
        (out,) = press_reader(tiny, press=press, compression_ratio=0.5, key_channel_compression_ratio=0.5).generate(
            [request(NOTES)])
        assert out.kv_kept_ratio == pytest.approx(1.0 if press == "think" else 0.5, abs=0.02)
        # ThinK zeroes the pruned key channels in place: the channels it drops free no memory.
        assert out.kv_cache_mib == pytest.approx(out.kv_full_mib * (1.0 if press == "think" else 0.5), rel=0.03)
    with pytest.raises(PcbenchError, match="key_channel_compression_ratio"):
        make("reader", "kvpress", model="m", press="think")
    with pytest.raises(PcbenchError, match="key_channel_compression_ratio is for press=think"):
        make("reader", "kvpress", model="m", key_channel_compression_ratio=0.5)


def test_kvpress_yaml_builds(tmp_path: Path) -> None:
    r = make("reader", "kvpress")
    assert isinstance(r, KVPressReader) and r.model == "smollm2"


@needs_smollm2
@needs_kvpress
def test_a_press_cell_records_the_memory_it_saves(tiny: str, tmp_path: Path) -> None:
    """The cell's metrics set the cache a press leaves beside the unpressed cache and the prefill's peak."""
    import json

    from conftest import HOTPOT, cell

    data = tmp_path / "hotpot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in HOTPOT))
    metrics, records = cell(tmp_path, "task=hotpotqa", f"task.path={data}", "compressor=none", "reader=kvpress",
                            f"reader.model={tiny}", "reader.device=cpu", "reader.press=snapkv",
                            "reader.compression_ratio=0.5")
    memory = metrics["kv_memory"]
    assert memory["cache_ratio"] == pytest.approx(metrics["kv_kept_ratio"], abs=0.02)
    assert memory["full_cache_mib_mean"] == pytest.approx(sum(r["kv_full_mib"] for r in records) / 3)
    assert all(r["prefill_peak_mib"] >= 0 for r in records) and memory["prefill_peak_mib_max"] is not None
    assert set(metrics["memory"]) == set(metrics["energy"]) == {"compress", "read"}
