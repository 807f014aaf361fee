"""Any OpenAI-compatible endpoint as the reader: a vLLM or llama.cpp server, a hosted API.

The prompt protocol is models/protocol.py's, run with a local tokenizer (`tokenizer_model`: the
endpoint model's own when given, so middle truncation and kept ratios are measured in the
reader's tokens). `api: chat` sends the cut prompt as one user message and lets the endpoint apply
its own chat template; `api: completions` sends the text our protocol built (the local tokenizer's
chat template applied). Requests the task marks raw (`Request.chat=false`: LongBench's trec,
triviaqa, samsum, lsht, lcc, repobench-p) always go to /completions, since a chat endpoint cannot
skip its template.

Requests go through readers/endpoint.py's client (httpx, `concurrency` in flight, streamed so the
time to the first token is recorded as `prefill_seconds`: queueing and the network included).
Transient failures (429, 5xx, timeouts, dropped connections, a garbled body) are retried with
exponential backoff or after the wait `Retry-After` asks for; anything else, or a request still
failing after `max_retries`, stops the cell with one line, and nothing from the failed call is
cached (the runner caches only what `generate` returns). The API key is read from the environment
variable `api_key_env` names and is never part of the settings (the cache key), records or log lines.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import Range
from pcbench.core.notices import warn_once
from pcbench.core.requests import Generation, Request
from pcbench.readers.base import Prompt, Reader
from pcbench.readers.endpoint import Client, Reply

log = logging.getLogger(__name__)


@dataclass
class OpenAIReader(Reader):
    """Knobs are the fields; their values come from conf/reader/openai.yaml.

    base_url: the API root, e.g. http://host:8000/v1. model: the name the endpoint serves.
    api_key_env: the environment variable holding the key (null: send none, as local servers
    need). tokenizer_model: a hub id, folder or 'smollm2' whose tokenizer counts tokens and cuts
    prompts. concurrency: requests in flight at once. batch_size: requests per generate call
    (records and cache entries are written after each). timeout: seconds one request may take as a
    whole (connection, queueing, every token). stream: server-sent events, so the time to the
    first token is seen; false for an endpoint that cannot stream. max_retries / backoff_seconds /
    retry_seconds: transient failures are retried up to max_retries times, waiting backoff_seconds
    x 2^(attempt-1) or what Retry-After asks, and never past retry_seconds after the first attempt
    (an endpoint that is down is said within that time, not after minutes of backoff).
    Credentials in base_url (user:password@) are masked wherever the URL is written or shown.
    """

    base_url: str
    model: str
    api: Literal["chat", "completions"]
    api_key_env: str | None
    tokenizer_model: str
    max_input_tokens: Annotated[int, Range(2)]
    concurrency: Annotated[int, Range(1)]
    batch_size: Annotated[int, Range(1)]
    timeout: Annotated[float, Range(0, low_open=True)]
    max_retries: Annotated[int, Range(0)]
    backoff_seconds: Annotated[float, Range(0)]
    retry_seconds: Annotated[float, Range(0)]
    stream: bool

    NAME: ClassVar[str] = "openai"
    PROTOCOL: ClassVar[str | None] = "longbench-middle-trunc/greedy/openai-v1"
    TOKENIZER_KNOB: ClassVar[str] = "tokenizer_model"
    device = "cpu"  # the model runs behind the endpoint; nothing here needs freeing (a constant, not a knob)

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise PcbenchError("reader.model is empty; give the model name the endpoint serves")
        key: str | None = None
        if self.api_key_env:
            # Read once, kept off the fields: dataclass repr and settings() never see it.
            key = os.environ.get(self.api_key_env)
            if not key:
                raise PcbenchError(f"reader.api_key_env={self.api_key_env!r}: that environment variable is unset or "
                                   f"empty; export it, or set reader.api_key_env=null for an endpoint without a key")
        self._client = Client(self.base_url, self.timeout, self.max_retries, self.backoff_seconds,
                              self.retry_seconds, self.stream, key)

    def settings(self) -> dict[str, Any]:
        """The cache key: the endpoint's host (not its scheme or path, so http/https or a proxy path
        of one server share a cache), the model, the API flavour, the local tokenizer (it cuts and
        templates the prompts), the window and the protocol. Never the key; concurrency, batch size,
        timeouts and retries change speed, not answers."""
        parts = urlsplit(self.base_url)
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return {"reader": "openai", "host": host, "model": self.model, "api": self.api,
                "tokenizer": self.tokenizer_model, "max_input_tokens": self.max_input_tokens,
                "protocol": self.PROTOCOL}

    def run(self, requests: list[Request], prompts: list[Prompt]) -> list[Generation]:
        replies = self._client.run([self.body(p) for p in prompts], self.concurrency)
        return [self.generation(p, r) for p, r in zip(prompts, replies)]

    # -- one request --------------------------------------------------------------------------

    def body(self, prompt: Prompt) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for one prompt: greedy, the protocol's stop rules."""
        common: dict[str, Any] = {"model": self.model, "max_tokens": prompt.max_new_tokens, "temperature": 0.0,
                                  "top_p": 1.0, "n": 1}
        if prompt.stop_at_newline:
            common["stop"] = ["\n"]
        if self.api == "chat" and prompt.chat:
            system = [{"role": "system", "content": prompt.system}] if prompt.system else []
            return "/chat/completions", {**common, "messages": [*system, {"role": "user", "content": prompt.content}]}
        return "/completions", {**common, "prompt": prompt.text}

    def generation(self, prompt: Prompt, reply: Reply) -> Generation:
        """The endpoint's own counts are the truth about what it read and wrote; our protocol's count
        (the local tokenizer) stands in when it reports none, or a count that is no count. An endpoint
        does not split prefill from decode: the time to the first token (queueing and network
        included) stands as prefill, the rest as decode; unstreamed, all of it is decode."""
        prompt_tokens = count(reply.prompt_tokens, "prompt_tokens", len(prompt.ids))
        new_tokens = count(reply.completion_tokens, "completion_tokens",
                           len(self.tokenizer.encode(reply.text)) if reply.text else 0)
        first = reply.first_token
        return Generation(reply.text, prompt_tokens, new_tokens, prompt.truncated, first,
                          reply.seconds - (first or 0.0))


def count(value: Any, name: str, ours: int) -> int:
    """A token count from the endpoint's `usage`, or ours where it gives none or one that is no count
    (negative, fractional, a string, a boolean): said once, never recorded as it came."""
    if value is None:
        return ours
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    warn_once(log, f"usage.{name}", "the endpoint reported usage.%s=%r, which is no token count; recording the "
              "local tokenizer's count (%d) instead", name, value, ours)
    return ours
