"""Any OpenAI-compatible endpoint as the reader: a vLLM or llama.cpp server, a hosted API.

The prompt protocol is models/protocol.py's, run with a local tokenizer (`tokenizer_model`: the
endpoint model's own when given, so middle truncation and kept ratios are measured in the
reader's tokens). `api: chat` sends the cut prompt as one user message and lets the endpoint apply
its own chat template; `api: completions` sends the text our protocol built (the local tokenizer's
chat template applied). Requests the task marks raw (`Request.chat=false`: LongBench's trec,
triviaqa, samsum, lsht, lcc, repobench-p) always go to /completions, since a chat endpoint cannot
skip its template.

Only the standard library is used (urllib in a thread pool): no client package to install.
Transient failures (429, 5xx, timeouts, dropped connections, a garbled body) are retried with
exponential backoff; anything else, or a request still failing after `max_retries`, stops the
cell with one line, and nothing from the failed call is cached (the runner caches only what
`generate` returns). The API key is read from the environment variable `api_key_env` names and
is never part of the settings (the cache key), records or log lines.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pcbench.core.errors import PcbenchError
from pcbench.core.knobs import Range
from pcbench.core.notices import warn_once
from pcbench.core.redact import redact, register_secret
from pcbench.core.requests import Generation, Request
from pcbench.readers.base import Prompt, Reader

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class Transient(Exception):
    """A failure worth another try: the reason is kept for the final error line."""


@dataclass
class OpenAIReader(Reader):
    """Knobs are the fields; their values come from conf/reader/openai.yaml.

    base_url: the API root, e.g. http://host:8000/v1. model: the name the endpoint serves.
    api_key_env: the environment variable holding the key (null: send none, as local servers
    need). tokenizer_model: a hub id, folder or 'smollm2' whose tokenizer counts tokens and cuts
    prompts. concurrency: requests in flight at once. batch_size: requests per generate call
    (records and cache entries are written after each). timeout: seconds per HTTP request.
    max_retries / backoff_seconds / retry_seconds: transient failures are retried up to max_retries
    times, waiting backoff_seconds x 2^(attempt-1), and never past retry_seconds after the first
    attempt (an endpoint that is down is said within that time, not after minutes of backoff).
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

    NAME: ClassVar[str] = "openai"
    PROTOCOL: ClassVar[str | None] = "longbench-middle-trunc/greedy/openai-v1"
    TOKENIZER_KNOB: ClassVar[str] = "tokenizer_model"
    device = "cpu"  # the model runs behind the endpoint; nothing here needs freeing (a constant, not a knob)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PcbenchError(f"reader.base_url={redact(self.base_url)!r} is not an http(s) URL; "
                               "e.g. http://host:8000/v1")
        if not self.model.strip():
            raise PcbenchError("reader.model is empty; give the model name the endpoint serves")
        # user:password@ in the URL is sent as HTTP basic auth (urllib would read it as part of the host).
        self._auth: str | None = None
        self._root = self.base_url
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._auth = "Basic " + base64.b64encode(credentials).decode()
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            self._root = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
        self._key: str | None = None
        if self.api_key_env:
            # Read once, kept off the fields: dataclass repr and settings() never see it.
            self._key = os.environ.get(self.api_key_env)
            if self._key:
                register_secret(self._key)  # masked in every line and file, an echoing error reply's too
            if not self._key:
                raise PcbenchError(f"reader.api_key_env={self.api_key_env!r}: that environment variable is unset or "
                                   f"empty; export it, or set reader.api_key_env=null for an endpoint without a key")

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
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            futures = [pool.submit(self._one, p) for p in prompts]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:  # do not keep sending once the cell is going to stop
                    f.cancel()
                raise

    # -- one request --------------------------------------------------------------------------

    def body(self, prompt: Prompt) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for one prompt: greedy, the protocol's stop rules."""
        common: dict[str, Any] = {"model": self.model, "max_tokens": prompt.max_new_tokens, "temperature": 0.0,
                                  "top_p": 1.0, "n": 1}
        if prompt.stop_at_newline:
            common["stop"] = ["\n"]
        if self.api == "chat" and prompt.chat:
            return "/chat/completions", {**common, "messages": [{"role": "user", "content": prompt.content}]}
        return "/completions", {**common, "prompt": prompt.text}

    def _one(self, prompt: Prompt) -> Generation:
        path, body = self.body(prompt)
        started = time.perf_counter()
        reply = self._post(path, body)
        latency = time.perf_counter() - started
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            if not isinstance(text, str):
                raise TypeError(f"text is {type(text).__name__}")
        except (KeyError, IndexError, TypeError) as exc:
            raise PcbenchError(f"{redact(self.base_url)}{path} answered without choices[0] text ({exc}); is it "
                               f"OpenAI-compatible?") from None
        # The endpoint's own counts are the truth about what it read and wrote; our protocol's count
        # (the local tokenizer) stands in when it reports none, or a count that is no count.
        usage = reply.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        prompt_tokens = _count(usage.get("prompt_tokens"), "prompt_tokens", len(prompt.ids))
        new_tokens = _count(usage.get("completion_tokens"), "completion_tokens",
                            len(self.tokenizer.encode(text)) if text else 0)
        # An endpoint does not split prefill from decode: the whole request latency (network and
        # queueing included) is recorded as the generation time, and prefill stays unknown.
        return Generation(text, int(prompt_tokens), int(new_tokens), prompt.truncated, None, latency)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self._root.rstrip("/") + path
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self._auth:
            headers["Authorization"] = self._auth
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        reason, shown, first = "", redact(url), time.monotonic()
        attempts = 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                wait = self.backoff_seconds * 2 ** (attempt - 1)
                if time.monotonic() - first + wait > self.retry_seconds:
                    break  # the next try would start after the retry budget: say so now
                time.sleep(wait)
            attempts += 1
            try:
                return self._attempt(url, data, headers)
            except Transient as exc:
                reason = str(exc)
                log.info("%s: %s; attempt %d of %d", shown, reason, attempt + 1, self.max_retries + 1)
        spent = time.monotonic() - first
        raise PcbenchError(f"reader endpoint {shown} failed after {attempts} attempts in {spent:.0f} s "
                           f"(reader.max_retries={self.max_retries}, reader.retry_seconds={self.retry_seconds:g}): "
                           f"{reason}")

    def _attempt(self, url: str, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with NO_REDIRECTS.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                # Following it would send the key to wherever the reply points (urllib re-sends the
                # Authorization header, with the POST turned into a body-less GET): refused, said once.
                target = redact(str(exc.headers.get("Location") or "(no Location header)"))
                raise PcbenchError(f"reader endpoint {redact(url)} redirected (HTTP {exc.code}) to {target}; pcbench "
                                   "follows no redirect, so the key is never re-sent: set reader.base_url to the "
                                   "endpoint itself") from None
            detail = redact(_snippet(exc.read()))  # an endpoint may quote the key it refused
            if exc.code in RETRY_STATUS:
                raise Transient(f"HTTP {exc.code} {detail}") from None
            hint = ""
            if exc.code == 404 and url.endswith("/completions") and not url.endswith("/chat/completions"):
                hint = ("; raw requests (task chat=false, e.g. LongBench trec/samsum/lcc) need the endpoint's "
                        "/completions")
            elif exc.code in (401, 403):
                hint = "; check the key in reader.api_key_env"
            raise PcbenchError(
                f"reader endpoint {redact(url)} refused the request: HTTP {exc.code} {detail}{hint}") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, socket.gaierror):  # no such host: retrying will not create it
                raise PcbenchError(f"reader endpoint {redact(url)}: its host cannot be resolved "
                                   f"({exc.reason.strerror}); check reader.base_url") from None
            if isinstance(exc.reason, TimeoutError):
                raise Transient(f"no answer within reader.timeout={self.timeout:g} s") from None
            raise Transient(f"cannot connect ({exc.reason})") from None
        except TimeoutError:
            raise Transient(f"no answer within reader.timeout={self.timeout:g} s") from None
        except (http.client.HTTPException, ConnectionError) as exc:  # dropped mid-reply, reset, truncated
            raise Transient(f"connection dropped ({type(exc).__name__})") from None
        try:
            reply = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Transient(f"malformed JSON in the reply: {_snippet(raw)}") from None
        if not isinstance(reply, dict):
            raise Transient(f"malformed reply (a JSON {type(reply).__name__}, not an object): {_snippet(raw)}")
        return reply


def _count(value: Any, name: str, ours: int) -> int:
    """A token count from the endpoint's `usage`, or ours where it gives none or one that is no count
    (negative, fractional, a string, a boolean): said once, never recorded as it came."""
    if value is None:
        return ours
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    warn_once(log, f"usage.{name}", "the endpoint reported usage.%s=%r, which is no token count; recording the "
              "local tokenizer's count (%d) instead", name, value, ours)
    return ours


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Every 3xx stays an HTTPError for the caller to refuse (see _attempt)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects())


def _snippet(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    return repr(text[:120] + ("..." if len(text) > 120 else ""))
