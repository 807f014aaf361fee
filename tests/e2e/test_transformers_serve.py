"""reader=openai against `transformers serve`, an OpenAI-compatible server nobody here wrote.

transformers ships its own server (fastapi + uvicorn + openai's types, all in the lock). The test
starts it on the packaged SmolLM2 folder, on 127.0.0.1 and a free port, and sends the same requests
through reader=openai in both API modes and through the in-process transformers reader:

- chat: the server applies the model's chat template to the prompt our protocol cut;
- completions: we send the text our protocol built with the same template;
- a raw request (chat=false) goes to /v1/completions in both modes.

The server decodes greedily when asked for temperature 0, so the answers must be equal, and the
prompt tokens it reports must equal what the in-process reader fed its model. Nothing here reads
a clock: the only limit is how long the server may take to come up at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make, needs_smollm2

from pcbench.core.requests import Request


def serve_available() -> bool:
    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError:
        return False
    return bool(is_serve_available())


pytestmark = [needs_smollm2, pytest.mark.skipif(
    not serve_available(), reason="transformers serve needs fastapi, uvicorn and openai (make test installs them)")]

REQUESTS = [
    Request("What is the capital of France? Answer in one word.", 8),
    Request("Question: what colour is the sky on a clear day?\nAnswer:", 6, chat=False),
    Request("Notes: " + "the red key opens the blue door; " * 60 + "Question: what opens the blue door?", 8),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(base URL, model folder, log file) of a `transformers serve` process on the SmolLM2 folder,
    started and stopped by pcbench-serving's own helper."""
    from pcbench.apps.serving import started_server
    from pcbench.core.local_models import resolve

    model = str(resolve("smollm2"))
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with started_server("transformers", model, sys.executable, log, dtype=str(make("reader", "smollm2").dtype)) as url:
        yield url, model, log


@pytest.fixture(scope="module")
def in_process() -> Iterator[Any]:
    """The in-process reader with a 200-token window, so the long request is cut."""
    reader = make("reader", "smollm2", max_input_tokens=200, device="cpu", batch_size=1)
    yield reader
    reader.close()


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_answers_and_prompt_tokens_equal_the_in_process_readers(api: str, served: tuple[str, str, Path],
                                                                 in_process: Any) -> None:
    url, model, _ = served
    expected = in_process.generate(REQUESTS)
    # One request at a time: the server then runs each alone, as the in-process reader does (batch 1).
    remote = make("reader", "openai", base_url=url, model=model, api=api, tokenizer_model="smollm2",
                  max_input_tokens=200, concurrency=1, timeout=600.0).generate(REQUESTS)
    assert all(g.text.strip() for g in expected)  # real answers, not an empty match
    assert [g.text for g in remote] == [g.text for g in expected]
    assert [g.truncated for g in remote] == [g.truncated for g in expected] == [False, False, True]
    assert [g.prompt_tokens for g in remote] == [g.prompt_tokens for g in expected]
    assert [g.new_tokens for g in remote] == [g.new_tokens for g in expected]


def test_the_judges_system_turn_reaches_the_server_as_the_in_process_reader_builds_it(
        served: tuple[str, str, Path], in_process: Any) -> None:
    """An LLM judge's request (BERGEN's system turn and question, tasks/judge.py) read through the
    endpoint: the server applies the template to both turns, and must reply what the in-process
    reader replies to the prompt our protocol built."""
    from pcbench.core.example import Example, Passage
    from pcbench.tasks.judge import BergenJudge

    url, model, _ = served
    judge = BergenJudge(protocol="bergen", max_new_tokens=10, use_logits=False)
    example = Example("q", "What is the capital of France", (Passage("France", "Paris is its capital."),), ("Paris",))
    requests = [judge.request(example, answer) for answer in ("Paris", "It is Lyon.")]
    expected = in_process.generate(requests)
    remote = make("reader", "openai", base_url=url, model=model, api="chat", tokenizer_model="smollm2",
                  max_input_tokens=200, concurrency=1, timeout=600.0).generate(requests)
    assert all(g.text.strip() for g in expected)
    assert [g.text for g in remote] == [g.text for g in expected]
    assert [g.prompt_tokens for g in remote] == [g.prompt_tokens for g in expected]
    assert "You are an evaluation tool." in in_process.prompt(requests[0]).text
