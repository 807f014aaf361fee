"""PISCO, soft compression as a reader, on a tiny random checkpoint in naver's COCOM layout over a
tiny llama with SmolLM2's tokenizer and chat template (tests/support/models.py builds both)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make, needs_smollm2

from pcbench.core.errors import PcbenchError
from pcbench.core.requests import Request

pytest.importorskip("peft")
FRANCE = "Paris is the capital of France. It has many museums. The river Seine flows through it."
DOGS = "Dogs bark loudly at night. Many dogs like bones."


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    from support.models import tiny_llama, tiny_pisco

    folder = tmp_path_factory.mktemp("pisco")
    return tiny_pisco(folder / "pisco", tiny_llama(folder / "decoder", window=512))


def ask(question: str, *documents: str) -> Request:
    return Request("the task's prompt, unused", 6, documents=documents, question=question)


@needs_smollm2
def test_documents_become_memory_embeddings_and_the_kept_axis_counts_them(checkpoint: str) -> None:
    reader = make("reader", "pisco", model=checkpoint, device="cpu", dtype="float32")
    memory = reader.memory()
    assert memory.settings.memory_tokens == 8  # 128 tokens at rate 16
    together = reader.generate([ask("What is the capital of France?", FRANCE, DOGS), ask("What barks?", DOGS)])
    alone = [reader.generate([r])[0] for r in (ask("What is the capital of France?", FRANCE, DOGS),
                                                ask("What barks?", DOGS))]
    assert [g.text for g in together] == [g.text for g in alone]
    assert all(0 < g.new_tokens <= 6 for g in together)
    # embeddings attended over the documents' tokens: 8 per document
    tokens = sum(memory.count([FRANCE, DOGS]))
    assert together[0].kv_kept_ratio == pytest.approx(16 / tokens, abs=1e-6)
    # the prompt holds each document's memory tokens and a separator, then the question
    prompt = memory.prompt("Q?", 2)
    assert prompt.count("<MEM0>") == 2 and prompt.count("<SEP>") == 2 and "Question:Q?" in prompt


@needs_smollm2
def test_the_two_adapters_compress_and_read_differently(checkpoint: str) -> None:
    import torch

    memory = make("reader", "pisco", model=checkpoint, device="cpu", dtype="float32").memory()
    encoded = memory.compress([FRANCE], 1)
    assert tuple(encoded.shape) == (1, 8, 32)
    memory.decoder.set_adapter("decoder_adapter")
    ids = memory.tokenizer(["<ENC>" + FRANCE], return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        under_decoder = memory.decoder(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    memory.decoder.set_adapter("encoder_adapter")
    with torch.inference_mode():
        under_encoder = memory.decoder(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    assert not torch.allclose(under_decoder, under_encoder)
    # padding to doc_max_length + 3 is fixed, so a document's embeddings do not depend on its batch
    assert torch.allclose(memory.compress([FRANCE, DOGS], 2)[0], encoded[0], atol=1e-5)


@needs_smollm2
def test_chunks_compress_a_long_passage_whole(checkpoint: str) -> None:
    long = " ".join([FRANCE] * 30)
    passages = make("reader", "pisco", model=checkpoint, device="cpu", dtype="float32")
    chunks = make("reader", "pisco", model=checkpoint, device="cpu", dtype="float32", documents="chunks")
    one = passages.generate([ask("Where?", long)])[0]
    many = chunks.generate([ask("Where?", long)])[0]
    assert many.kv_kept_ratio > one.kv_kept_ratio  # more pieces, more embeddings over the same tokens
    from pcbench.readers.pisco_reader import _chunks

    assert all(n <= 128 for n in chunks.memory().count(_chunks(long, chunks.memory())))


def test_other_layouts_are_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "oscar"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "COCOM", "compr_model_name": "mistral_trimmed",
                                                    "decoder_model_name": "x", "lora": True,
                                                    "training_form": "both"}))
    reader = make("reader", "pisco", model=str(folder), device="cpu")
    with pytest.raises(PcbenchError, match="OSCAR's layout"):
        reader.generate([ask("Q?", "doc")])
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(PcbenchError, match="a PISCO checkpoint's is 'COCOM'"):
        make("reader", "pisco", model=str(folder), device="cpu").generate([ask("Q?", "doc")])
