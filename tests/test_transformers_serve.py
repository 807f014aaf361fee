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

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make, needs_smollm2

from pcbench.core.requests import Request

SERVE = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve"]
START_LIMIT = 900  # seconds for the server to load and answer /health on a loaded 2-core box


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(base URL, model folder, log file) of a `transformers serve` process on the SmolLM2 folder."""
    import time

    from pcbench.core.local_models import resolve

    model = str(resolve("smollm2"))
    reader = make("reader", "smollm2")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([*SERVE, model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                                 "--dtype", str(reader.dtype), "--log-level", "warning"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_LIMIT
        while not healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not come up (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield f"{url}/v1", model, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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
