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
    with pytest.raises(PcbenchError, match=r"reader\.press='h2o' is not allowed; allowed: one of no_press, adakv"):
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


# Every press of the registry, by how it works here (a test per mechanism, not per name):
EVICTING = {"snapkv", "streaming_llm", "knorm", "tova", "random", "pyramidkv", "keydiff", "lagkv", "chunkkv",
            "block_keydiff", "critical_snapkv", "critical_expected_attention", "cur", "compactor", "merging_knorm",
            "merging_snapkv", "merging_expected_attention",
            "kvcompose",  # replays the context itself to score it
            "observed_attention",  # reads the eager attention weights: its own copy of the model
            "finch"}  # a delimiter token between context and question: its own copy of the model
MASKING = {"adakv_snapkv", "critical_adakv_snapkv", "expected_attention", "critical_adakv_expected_attention",
           "adakv_compactor", "kvzip", "kvzip_plus"}  # head-wise: mask in place (KVzip after its replay)
KEY_CHANNEL = {"think", "snap_think"}
WHILE_DECODING = {"decoding_knorm", "decoding_streaming_llm", "decoding_tova", "decoding_keydiff",
                  "decoding_adakv_expected_attention_e2", "cam_knorm", "cam_tova", "cam_streaming_llm"}
FROM_THE_HUB = {"duo_attention_on_the_fly", "qfilter", "decoding_qfilter", "fastkvzip", "kvzap_linear",
                "kvzap_mlp", "kvzap_mlp_head", "kvzap_mlp_layer", "restorekv", "restorekv_plus"}
# Run here but fail inside kvpress 0.5.5, each said in one line: DuoAttention's head patterns and
# LU-KV's budget curves exist for a few hub models only; SnapKV's 64-token window under a decoding
# press needs longer answers than these; CAM over AdaKV calls a `score` AdaKV does not have; the
# unstructured KVCompose leaves its replay's entries in the cache (1.5 of the pressed entries kept).
FAILING_IN_KVPRESS = {"duo_attention", "lukv", "decoding_adakv_snapkv", "cam_adakv_snapkv"}
LEAVES_ITS_REPLAY = {"kvcompose_unstructured"}


def test_every_press_of_the_registry_has_a_mechanism_here() -> None:
    groups = [EVICTING, MASKING, KEY_CHANNEL, WHILE_DECODING, FROM_THE_HUB, FAILING_IN_KVPRESS, LEAVES_ITS_REPLAY,
              {"no_press"}]
    assert sorted(set(PRESSES)) == sorted(set().union(*groups)) and sum(map(len, groups)) == len(PRESSES)


def kept_as_asked(press: str, out: object, masked: bool) -> None:
    # pyramidkv shapes its budget by layer and chunkkv/block presses round to their chunks.
    assert out.kv_kept_ratio == pytest.approx(0.5, abs=0.02 if press not in ("pyramidkv", "chunkkv") else 0.1), press
    assert 1 <= out.new_tokens <= 6 and out.prefill_seconds > 0
    # Memory: an evicting press frees what it evicts; a masking one keeps the tensors and frees nothing.
    assert out.kv_cache_mib is not None and out.kv_full_mib is not None and out.kv_full_mib > 0
    held = out.kv_cache_mib / out.kv_full_mib
    assert held == (pytest.approx(1.0) if masked else pytest.approx(out.kv_kept_ratio, abs=0.01)), press
    assert out.prefill_peak_mib is not None and out.prefill_peak_mib >= 0


@needs_smollm2
@needs_kvpress
@pytest.mark.parametrize("press", sorted(EVICTING))
def test_evicting_presses_keep_what_they_are_asked(tiny: str, press: str) -> None:
    (out,) = press_reader(tiny, press=press, compression_ratio=0.5).generate([request(NOTES)])
    kept_as_asked(press, out, masked=False)


@needs_smollm2
@needs_kvpress
@pytest.mark.parametrize("press", sorted(MASKING))
def test_masking_presses_keep_what_they_are_asked(tiny: str, press: str) -> None:
    """Head-wise presses (AdaKV, CriticalKV, and KVzip after reconstructing the context) mask entries
    in place, counted as positions x heads. kvpress hides a masked key behind a fake key that no query
    reading it can reach; on this random model the queries of a multi-token block (the chat template's
    closing tokens) admit none, so the prompt is raw here: one token after the press, then decoding."""
    prompt = request(NOTES)
    prompt = Request(prompt.prompt, prompt.max_new_tokens, chat=False)
    (out,) = press_reader(tiny, press=press, compression_ratio=0.5).generate([prompt])
    kept_as_asked(press, out, masked=True)


@needs_smollm2
@needs_kvpress
@pytest.mark.parametrize("press", sorted(WHILE_DECODING))
def test_decoding_presses_hold_the_cache_to_its_target_while_generating(tiny: str, press: str) -> None:
    """A decoding press leaves the prefill whole and, every `compression_interval` new tokens, cuts the
    cache back to `target_size`: after 12 tokens at an interval of 4, at most 32 + 4 of the ~260 read."""
    r = request(NOTES, max_new=12)
    reader = press_reader(tiny, press=press, target_size=32, compression_interval=4)
    (out,) = reader.generate([r])
    read = out.prompt_tokens + out.new_tokens - 1
    assert out.new_tokens == 12  # this random model never says EOS
    assert 32 <= out.kv_kept_ratio * read <= 36, press
    # An AdaKV-based one masks in place: the tensors keep every entry read.
    held = out.kv_full_mib if "adakv" in press else out.kv_full_mib * out.kv_kept_ratio
    assert out.kv_cache_mib == pytest.approx(held, rel=0.02)
    with pytest.raises(PcbenchError, match=r"reader\.target_size and reader\.compression_interval are for the"):
        make("reader", "kvpress", model="m", press="snapkv", target_size=32)


@needs_smollm2
@needs_kvpress
@pytest.mark.parametrize("press", sorted(FROM_THE_HUB | FAILING_IN_KVPRESS))
def test_a_press_that_cannot_run_here_says_why_in_one_line(tiny: str, press: str) -> None:
    knobs: dict[str, object] = {"head_compression_ratio": 0.5} if press.startswith("duo") else (
        {"threshold": -4.0} if press in ("kvzap_linear", "kvzap_mlp") else {})
    if press.startswith(("decoding_", "cam_")):
        knobs.update(target_size=32, compression_interval=4)
    reader = press_reader(tiny, press=press, compression_ratio=0.5, **knobs)
    why = "Hugging Face hub" if press in FROM_THE_HUB else "fails here"
    with pytest.raises(PcbenchError, match=rf"^kvpress's {press} press [^\n]*{why}[^\n]*$"):
        reader.generate([request(NOTES, max_new=12)])


@needs_smollm2
@needs_kvpress
def test_budget_knobs_follow_kvpress_evaluate(tiny: str) -> None:
    import kvpress

    duo = press_reader(tiny, press="duo_attention", head_compression_ratio=0.25)._build_press()
    assert isinstance(duo, kvpress.DuoAttentionPress) and duo.head_compression_ratio == 0.25
    zap = press_reader(tiny, press="kvzap_mlp", threshold=-5.0)._build_press()
    assert isinstance(zap, kvpress.DMSPress) and zap.threshold == -5.0
    decoding = press_reader(tiny, press="decoding_knorm", target_size=64, compression_interval=8)._build_press()
    assert (decoding.target_size, decoding.compression_interval) == (64, 8)
    assert press_reader(tiny, press="decoding_tova")._build_press().target_size == 2048  # the press's own
    assert press_reader(tiny, press="no_press")._build_press() is None
    with pytest.raises(PcbenchError, match=r"press=duo_attention takes its budget from reader\.head_compression_ratio"):
        make("reader", "kvpress", model="m", press="duo_attention")
    with pytest.raises(PcbenchError, match=r"reader\.threshold is for press=kvzap_linear or kvzap_mlp"):
        make("reader", "kvpress", model="m", press="snapkv", threshold=-3.0)
    with pytest.raises(PcbenchError, match=r"press=finch reads the question with the context"):
        make("reader", "kvpress", model="m", press="finch", question_aware=False)


@needs_smollm2
@needs_kvpress
def test_finch_and_observed_attention_use_their_own_copy_of_the_model(tiny: str) -> None:
    from pcbench.models.pool import MODELS

    plain = press_reader(tiny, press="snapkv")
    finch, observed = press_reader(tiny, press="finch"), press_reader(tiny, press="observed_attention")
    specs = {plain.model_spec(), finch.model_spec(), observed.model_spec()}
    assert len(specs) == 3  # three pool entries: the shared model's embeddings never grow
    finch.generate([request(NOTES)])
    plain.generate([request(NOTES)])
    rows = [reader._load().get_input_embeddings().weight.shape[0] for reader in (finch, plain)]
    assert rows[0] == rows[1] + 1
    assert observed._load().config._attn_implementation == "eager"
    MODELS.release()


@needs_smollm2
@needs_kvpress
def test_no_press_equals_the_transformers_reader(tiny: str) -> None:
    plain = make("reader", "transformers", model=tiny, dtype="float32", device="cpu", max_input_tokens=400)
    requests = [request(NOTES), request(NOTES[:200], "which key opens nothing?")]
    expected = [g.text for g in plain.generate(requests)]
    assert [g.text for g in press_reader(tiny, press="no_press", question_aware=False).generate(requests)] == expected


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
    with pytest.raises(PcbenchError, match="key_channel_compression_ratio is for press=snap_think or think"):
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

