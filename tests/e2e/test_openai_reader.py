"""reader=openai against a real OpenAI-compatible HTTP server started here, on 127.0.0.1 only.

The server (`Endpoint`, tests/support/http_endpoint.py) answers /v1/chat/completions and /v1/completions.
Its answers come from a backend: the real transformers reader on SmolLM2 (greedy answers must match the in-process
reader's), or a model-free echo for the failure scripts (429, 5xx, timeouts, garbled JSON,
dropped connections), where what matters is the HTTP behaviour. Every server binds a random free
port, serves a bounded number of requests and shuts itself down after a few seconds regardless.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make, needs_smollm2
from support.http_endpoint import Endpoint, echo

from pcbench.core.errors import PcbenchError
from pcbench.core.requests import Request
from pcbench.readers.openai_reader import OpenAIReader
from pcbench.runners.cache import Cache, entries
from pcbench.runners.stages import read_all

KEY = "sk-test-0123456789-secret"


def client(url: str, **knobs: Any) -> OpenAIReader:
    base = {"base_url": url, "model": "smollm2", "api": "chat", "tokenizer_model": "smollm2", "concurrency": 2,
            "batch_size": 8, "timeout": 5.0, "max_retries": 2, "backoff_seconds": 0.01, "retry_seconds": 600.0}
    return make("reader", "openai", **{**base, **knobs})


def generations_cached(root: Path) -> int:
    return sum(1 for _ in entries(root, "generation"))


# -- knobs, settings and the key ----------------------------------------------------------------


def test_settings_key_the_endpoint_not_the_key_or_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PCBENCH_TEST_KEY", KEY)
    a = client("http://127.0.0.1:9/v1", api_key_env="PCBENCH_TEST_KEY").settings()
    assert KEY not in json.dumps(a) and a["host"] == "127.0.0.1:9" and a["model"] == "smollm2"
    assert client("https://127.0.0.1:9/other/v1", concurrency=7, batch_size=3, timeout=1.0, max_retries=0,
                  backoff_seconds=3.0).settings() == a
    assert client("http://127.0.0.1:9/v1", api="completions").settings() != a
    assert client("http://127.0.0.1:9/v1", model="other").settings() != a
    assert client("http://127.0.0.2:9/v1").settings() != a


@pytest.mark.parametrize("knobs, line", [
    ({"api_key_env": "PCBENCH_UNSET_KEY_VAR"}, r"reader\.api_key_env='PCBENCH_UNSET_KEY_VAR': that environment "
                                               r"variable is unset"),
    ({"base_url": "127.0.0.1:8000"}, r"reader\.base_url='127\.0\.0\.1:8000' is not an http\(s\) URL"),
    ({"api": "responses"}, r"reader\.api='responses' is not allowed; allowed: one of chat, completions"),
    ({"concurrency": 0}, r"reader\.concurrency=0 is not allowed"),
    ({"timeout": 0}, r"reader\.timeout=0 is not allowed"),
])
def test_bad_knobs_are_one_line(knobs: dict[str, Any], line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PCBENCH_UNSET_KEY_VAR", raising=False)
    with pytest.raises(PcbenchError, match=line):
        client("http://127.0.0.1:9/v1", **knobs)


def test_yaml_is_the_one_source_of_defaults() -> None:
    import dataclasses

    from omegaconf import OmegaConf

    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(OpenAIReader))
    yaml = OmegaConf.load(Path(__file__).resolve().parents[2] / "pcbench" / "conf" / "reader" / "openai.yaml")
    assert set(yaml) - {"_target_"} == {f.name for f in dataclasses.fields(OpenAIReader)}


# -- greedy answers equal the in-process reader's ------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_pair() -> Iterator[tuple[Any, Any]]:
    """The in-process reader (a 200-token window, so one prompt is cut) and the server's backend
    (a wide window: the client has cut already; the server must not cut again)."""
    local = make("reader", "smollm2", max_input_tokens=200, device="cpu", batch_size=4)
    backend = make("reader", "smollm2", max_input_tokens=4000, device="cpu", batch_size=1)
    yield local, backend
    local.close()
    backend.close()


REQUESTS = [
    Request("What is the capital of France? Answer in one word.", 8),
    Request("Question: what colour is the sky on a clear day?\nAnswer:", 6, chat=False),
    Request("Notes: " + "the red key opens the blue door; " * 60 + "Question: what opens the blue door?", 8),
]


@needs_smollm2
@pytest.mark.parametrize("api, stream", [("chat", True), ("completions", True), ("chat", False)])
def test_http_answers_equal_in_process(api: str, stream: bool, smollm2_pair: tuple[Any, Any]) -> None:
    local, backend = smollm2_pair
    expected = local.generate(REQUESTS)
    with Endpoint(backend) as server:
        # A timeout no loaded machine reaches: a retry would be a fourth request.
        remote = client(server.url, api=api, stream=stream, max_input_tokens=200, timeout=600.0).generate(REQUESTS)
    assert [g.text for g in remote] == [g.text for g in expected]
    assert all(g.text.strip() for g in expected)  # a real answer, not an empty match
    assert [g.truncated for g in remote] == [g.truncated for g in expected] == [False, False, True]
    # The server's own counts come back, and they equal what the in-process reader fed its model.
    assert [g.prompt_tokens for g in remote] == [g.prompt_tokens for g in expected]
    assert [g.new_tokens for g in remote] == [g.new_tokens for g in expected]
    # Streamed, the time to the first token stands as prefill; unstreamed it is unknown.
    assert all((g.prefill_seconds is not None and g.prefill_seconds > 0) == stream and g.decode_seconds > 0
               for g in remote)
    assert all(bool(s["body"].get("stream")) == stream for s in server.seen)
    paths = [s["path"] for s in server.seen]
    # The raw request (chat=false) goes to /completions whatever the API: a chat endpoint cannot skip its template.
    want = "/v1/chat/completions" if api == "chat" else "/v1/completions"
    assert sorted(paths) == sorted([want, "/v1/completions", want])
    assert all(s["body"]["temperature"] == 0.0 for s in server.seen)


# -- failures: retried, or one line, and never cached ------------------------------------------------


def run_cell(reader: OpenAIReader, requests: list[Request], root: Path) -> list[dict[str, Any]]:
    out = dict(read_all(requests, reader, Cache(root), reader.batch_size))
    return [out[i] for i in range(len(requests))]


@pytest.mark.parametrize("script", [["429"], ["500", "429"], ["sleep"], ["malformed"], ["close"], ["wait1"]])
def test_transient_failures_are_retried(script: list[str], tmp_path: Path) -> None:
    # The timeout leaves a loaded machine seconds to answer; a scripted sleep outlasts it twice over.
    with Endpoint(echo, script=script, sleep=6.0) as server:
        reader = client(server.url, timeout=3.0, concurrency=1)
        (record,) = run_cell(reader, [Request("say olleh", 4)], tmp_path)
        assert record["text"] == "hello" and not record["cached"]
        assert len(server.seen) == len(script) + 1
        # Cached once it succeeded: a rerun sends nothing.
        (again,) = run_cell(reader, [Request("say olleh", 4)], tmp_path)
        assert again["cached"] and again["text"] == "hello" and len(server.seen) == len(script) + 1


FAILED = r"failed after 3 attempts in \d+ s \(reader\.max_retries=2, reader\.retry_seconds=600\): "


@pytest.mark.parametrize("action, line", [
    ("429", FAILED + r"HTTP 429 .*scripted 429"),
    ("sleep", FAILED + r"no complete answer within reader\.timeout=2 s"),
    ("trickle", FAILED + r"no complete answer within reader\.timeout=2 s"),
    ("malformed", FAILED + r"malformed JSON in the reply: '\{\"choices\""),
    ("close", FAILED + r"connection dropped \(RemoteProtocolError\)"),
])
def test_persistent_failures_are_one_line_and_nothing_is_cached(action: str, line: str, tmp_path: Path) -> None:
    # Request 0 succeeds, request 1 keeps failing: the call fails, and request 0's answer, part of
    # the failed call, is not cached either (the runner caches only what generate returns).
    requests = [Request("first one", 4), Request("second two", 4)]
    # A trickle sends a word every half second, twenty of them: each read is quick, the whole is not.
    with Endpoint(echo, script=["ok"] + [action] * 3, sleep=0.5 if action == "trickle" else 5.0) as server:
        reader = client(server.url, timeout=2.0, concurrency=1, max_retries=2)
        with pytest.raises(PcbenchError, match=line) as info:
            run_cell(reader, requests, tmp_path)
        assert "\n" not in str(info.value)
        assert len(server.seen) == 4
    assert generations_cached(tmp_path) == 0


def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    with Endpoint(echo, script=["400"]) as server:
        with pytest.raises(PcbenchError, match=r"refused the request: HTTP 400 .*scripted 400"):
            run_cell(client(server.url), [Request("x y", 2)], tmp_path)
        assert len(server.seen) == 1
    assert generations_cached(tmp_path) == 0


def test_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    server = Endpoint(echo)
    url = server.url
    server.server.server_close()  # the port was free a moment ago and nothing listens now
    with pytest.raises(PcbenchError, match=rf"reader endpoint {url}/chat/completions failed after 2 attempts in "
                                           r"\d+ s \(reader.max_retries=1, reader.retry_seconds=600\): cannot connect"):
        run_cell(client(url, max_retries=1), [Request("x y", 2)], tmp_path)
    assert generations_cached(tmp_path) == 0


def test_the_key_is_sent_and_never_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PCBENCH_TEST_KEY", KEY)
    with caplog.at_level(logging.DEBUG), Endpoint(echo, script=["500"]) as server:
        reader = client(server.url, api_key_env="PCBENCH_TEST_KEY")
        run_cell(reader, [Request("hello dlrow", 4)], tmp_path)
    assert {s["headers"]["Authorization"] for s in server.seen} == {f"Bearer {KEY}"}
    assert KEY not in repr(reader) and KEY not in json.dumps(reader.settings())
    assert not any(KEY in r.getMessage() for r in caplog.records)
    assert any("HTTP 500" in r.getMessage() for r in caplog.records)  # the retry was logged, without the key
    assert generations_cached(tmp_path) == 1
    assert all(KEY not in path.read_text() for _, path in entries(tmp_path))


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), Endpoint(echo, script=["500"]) as server:
        url = server.url.replace("http://", "http://ann:s3cret@")
        reader = client(url)
        run_cell(reader, [Request("hello dlrow", 4)], tmp_path)
    assert {s["headers"]["Authorization"] for s in server.seen} == {"Basic YW5uOnMzY3JldA=="}  # ann:s3cret
    assert "s3cret" not in json.dumps(reader.settings())
    assert not any("s3cret" in r.getMessage() for r in caplog.records)
    assert any(f"{server.url}/chat/completions: HTTP 500" in r.getMessage() for r in caplog.records)  # logged, bare


def test_an_unknown_host_is_one_line_at_once(tmp_path: Path) -> None:
    with pytest.raises(PcbenchError, match=r"its host cannot be resolved .*check reader.base_url"):
        run_cell(client("http://no-such-host.invalid:8000/v1", max_retries=5), [Request("x y", 2)], tmp_path)


def test_concurrency_is_bounded_and_order_kept(tmp_path: Path) -> None:
    # Each request is held until three are in flight: with concurrency=3 exactly three ever are.
    with Endpoint(echo, script=["gate"] * 6, gate=3) as server:
        reader = client(server.url, concurrency=3, batch_size=6, timeout=120.0)
        out = reader.generate([Request(f"word{i} w{i}x", 2) for i in range(6)])
    assert [g.text for g in out] == [f"x{i}w" for i in range(6)]
    assert server.most_in_flight == 3


@pytest.mark.parametrize("status", ["301", "302", "303", "307"])
def test_a_redirect_is_refused_and_the_key_goes_nowhere_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            status: str) -> None:
    """urllib would follow it with the Authorization header (a 303 as a body-less GET to another
    host) and record that reply as the answer: the reader refuses every redirect in one line."""
    monkeypatch.setenv("PCBENCH_TEST_KEY", KEY)
    with Endpoint(echo, script=[status]) as server:
        reader = client(server.url, api_key_env="PCBENCH_TEST_KEY")
        with pytest.raises(PcbenchError) as caught:
            run_cell(reader, [Request("hello dlrow", 4)], tmp_path)
    message = str(caught.value)
    assert f"redirected (HTTP {status}) to http://127.0.0.2:9/v1/chat/completions" in message and "\n" not in message
    assert len(server.seen) == 1 and KEY not in message  # one request, to the endpoint named, and no other


def test_an_endpoint_that_echoes_the_key_gets_it_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PCBENCH_TEST_KEY", KEY)
    with caplog.at_level(logging.DEBUG), Endpoint(echo, script=["401echo"]) as server:
        reader = client(server.url, api_key_env="PCBENCH_TEST_KEY")
        with pytest.raises(PcbenchError) as caught:
            run_cell(reader, [Request("hello dlrow", 4)], tmp_path)
    assert "HTTP 401" in str(caught.value)
    assert KEY not in str(caught.value) and "Bearer ***" in str(caught.value)
    assert not any(KEY in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("script", ["badusage", "nousage"])
def test_a_usage_that_is_no_count_is_replaced_by_the_local_count(tmp_path: Path, script: str) -> None:
    with Endpoint(echo, script=[script]) as server:
        reader = client(server.url)
        (record,) = run_cell(reader, [Request("say olleh", 4)], tmp_path)
    prompt = reader.prompt(Request("say olleh", 4))
    assert record["prompt_tokens"] == len(prompt.ids) and record["new_tokens"] == len(reader.tokenizer.encode("hello"))


def test_retry_after_is_honoured_and_one_past_the_budget_fails_at_once(tmp_path: Path) -> None:
    # Retry-After: 1 with a 10 ms backoff: the retry waits the second the endpoint asked for.
    with Endpoint(echo, script=["wait1"]) as server:
        reader = client(server.url, concurrency=1)
        started = time.monotonic()
        (record,) = run_cell(reader, [Request("say olleh", 4)], tmp_path)
        assert record["text"] == "hello" and time.monotonic() - started >= 1.0
    # Retry-After: 3600 is beyond retry_seconds: no hour of waiting, one line at once that says why.
    with Endpoint(echo, script=["wait3600"] * 3) as server:
        reader = client(server.url, retry_seconds=60.0)
        with pytest.raises(PcbenchError, match=r"failed after 1 attempts .*HTTP 429 .*quota.*it asks to retry after "
                                               r"3600 s, past reader\.retry_seconds=60"):
            run_cell(reader, [Request("x y", 2)], tmp_path / "b")
        assert len(server.seen) == 1
