"""The model layer: one pool, causal LMs that score, generate and show attention, seq2seq models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import needs_smollm2

from pcbench.compressors.base import Env
from pcbench.core.errors import PcbenchError
from pcbench.core.requests import Request
from pcbench.models.causal import causal_lm
from pcbench.models.pool import Models, ModelSpec
from pcbench.models.protocol import build_prompt
from pcbench.models.seq2seq import seq2seq_lm


def _stub(path: str, spec: ModelSpec, device: str) -> dict[str, Any]:
    return {"name": spec.name, "device": device}


def test_the_pool_loads_once_and_shares_a_model_between_roles() -> None:
    pool = Models()
    as_compressor = pool.get(ModelSpec("m", device="cpu", key="compressor.model"), _stub)
    as_reader = pool.get(ModelSpec("m", device="cpu", key="reader.model"), _stub)
    assert as_reader is as_compressor and pool.loads["m"] == 1
    pool.release(only="compressor")  # the reader uses it too: it stays
    assert pool.has(ModelSpec("m", device="cpu"), _stub)
    pool.release()
    assert not pool.has(ModelSpec("m", device="cpu"), _stub)


def test_loading_onto_an_accelerator_frees_the_other_roles_models_there() -> None:
    pool = Models()
    # "meta" stands in for an accelerator: any device but the CPU.
    pool.get(ModelSpec("scorer", device="meta", key="compressor.model"), _stub)
    pool.get(ModelSpec("helper", device="cpu", key="compressor.model"), _stub)
    pool.get(ModelSpec("reader", device="meta", key="reader.model"), _stub)
    assert not pool.has(ModelSpec("scorer", device="meta"), _stub)  # freed for the reader
    assert pool.has(ModelSpec("helper", device="cpu"), _stub)  # the CPU is never freed
    pool.get(ModelSpec("scorer", device="meta", key="compressor.model"), _stub)
    assert not pool.has(ModelSpec("reader", device="meta", key="reader.model"), _stub)
    assert pool.loads["scorer"] == 2


@needs_smollm2
def test_a_compressor_and_the_reader_share_one_copy(tiny: str) -> None:
    from pcbench.models.pool import MODELS
    from pcbench.readers.transformers_reader import TransformersReader

    reader = TransformersReader(model=tiny, revision=None, dtype="float32", device="cpu", batch_size=2,
                                max_input_tokens=100, trust_remote_code=False)
    lent = Env(reader.tokenizer, models=MODELS).causal_lm(ModelSpec(tiny, None, "float32", "cpu"))
    assert lent is reader.lm()


@needs_smollm2
def test_generation_through_the_layer_is_the_readers(tiny: str) -> None:
    from pcbench.readers.transformers_reader import TransformersReader

    pool = Models()
    lm = causal_lm(pool, ModelSpec(tiny, None, "float32", "cpu"))
    requests = [Request("Say something about cats.", 5), Request("One two three", 4, chat=False),
                Request("x " * 150, 3)]
    prompts = [build_prompt(lm.tokenizer, r, 100) for r in requests]
    assert prompts[2].truncated and not prompts[0].truncated
    batched = lm.generate(prompts, batch_size=3)
    alone = [lm.generate([p], batch_size=1)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.prompt_tokens for g in batched] == [len(p.ids) for p in prompts]
    reader = TransformersReader(model=tiny, revision=None, dtype="float32", device="cpu", batch_size=3,
                                max_input_tokens=100, trust_remote_code=False)
    assert [g.text for g in reader.generate(requests)] == [g.text for g in batched]


@needs_smollm2
def test_attention_of_chosen_layers_equals_eager_attention(tiny: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    lm = causal_lm(Models(), ModelSpec(tiny, None, "float32", "cpu"))
    assert lm.model.config._attn_implementation != "eager"  # the fast kernel stays for everything else
    ids = lm.encode("The cat sat on the mat because it was warm and the sun was out.")
    got = lm.attention(ids, layers=[0, -1], queries=[3, len(ids) - 1])
    eager = AutoModelForCausalLM.from_pretrained(tiny, attn_implementation="eager").eval()
    with torch.inference_mode():
        out = eager(input_ids=torch.tensor([ids]), output_attentions=True)
    expected = np.stack([out.attentions[i][0][:, [3, len(ids) - 1], :].numpy() for i in (0, 2)])
    assert got.shape == (2, 4, 2, len(ids))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.allclose(got[:, :, 0, 4:], 0)  # causal: position 3 sees nothing after itself
    # Those rows came from the fast kernel's registered row softmax, not from eager layers; negative
    # positions count from the end; forcing eager attention gives the same weights.
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from pcbench.models.causal import ROW_KERNEL

    assert ROW_KERNEL in ALL_ATTENTION_FUNCTIONS
    np.testing.assert_allclose(lm.attention(ids, layers=[0, -1], queries=[3, -1]), got, atol=1e-6)
    np.testing.assert_allclose(lm.attention(ids, layers=[0, -1], queries=[3, -1], exact_eager=True), expected,
                               atol=1e-5)
    # The layers' own kernels are back afterwards; a layer that does not exist is one line.
    assert all(m.config is lm.model.config for m in lm._attention_modules())
    assert not hasattr(lm.model.config, "pcbench_row_request")  # the rows asked for left with the copies
    with pytest.raises(PcbenchError, match=r"layers=\[7\]: this model has 3 layers"):
        lm.attention(ids, layers=[7])


def test_seq2seq_generates_greedily_in_batches(tiny_t5: str) -> None:
    lm = seq2seq_lm(Models(), ModelSpec(tiny_t5, None, "float32", "cpu"))
    inputs = ["question who built the tower document the tower was built in paris",
              "question what is paris document paris is a city", "the " * 40]
    batched = lm.generate(inputs, max_new_tokens=6, batch_size=3, max_input_tokens=32)
    alone = [lm.generate([x], max_new_tokens=6, batch_size=1, max_input_tokens=32)[0] for x in inputs]
    assert [w.text for w in batched] == [w.text for w in alone]
    assert all(0 < w.new_tokens <= 6 for w in batched)
    assert [w.truncated for w in batched] == [False, False, True] and batched[2].input_tokens == 32


def test_env_lends_seq2seq_from_its_pool(tiny_t5: str, tmp_path: Path) -> None:
    class Counter:
        name = "none"

    env = Env(Counter(), models=Models())  # type: ignore[arg-type]
    first = env.seq2seq(ModelSpec(tiny_t5, None, "float32", "cpu"))
    assert env.seq2seq(ModelSpec(tiny_t5, None, "float32", "cpu")) is first and env.models.loads[tiny_t5] == 1
