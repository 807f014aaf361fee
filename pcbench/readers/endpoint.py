"""One client for OpenAI-compatible endpoints: the openai reader and the serving benchmark use it.

httpx's async client sends the requests, `concurrency` at a time, streaming by default so the
time to the first token is seen. What it guarantees, for every caller:
- `timeout` bounds a whole request (connection, queueing, every streamed token), not one socket
  read: a server that trickles a token a second past the bound is cut off there.
- Transient failures (429, 408/409/425, 5xx, timeouts, dropped connections, a garbled body) are
  retried with exponential backoff, or after the wait a `Retry-After` header asks for; no retry
  starts past `retry_seconds` after the first attempt. A `Retry-After` beyond that budget fails
  at once and says so.
- No redirect is followed: the key would go wherever the reply points. Every 3xx is one line.
- Credentials (the key, user:password@ in the URL) go only in the Authorization header and are
  masked in every message (core/redact.py).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import email.utils
import json
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from pcbench.core.errors import PcbenchError
from pcbench.core.redact import redact, register_secret

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
T = TypeVar("T")


class Transient(Exception):
    """A failure worth another try: the reason is kept for the final error line."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class Reply:
    """One answered request. Seconds are wall time from sending it: `first_token` when the first
    piece of text arrived (None unless streamed, or when the answer is empty), `seconds` when the
    reply was complete. Token counts are the endpoint's `usage` as it came (None where it sent none)."""

    text: str
    prompt_tokens: Any
    completion_tokens: Any
    first_token: float | None
    seconds: float
    finish_reason: str | None


@dataclass
class Client:
    """Where to send, and how patiently. `label` names the knobs in messages ("reader")."""

    base_url: str
    timeout: float
    max_retries: int
    backoff_seconds: float
    retry_seconds: float
    stream: bool
    key: str | None = None
    label: str = "reader"

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PcbenchError(f"{self.label}.base_url={redact(self.base_url)!r} is not an http(s) URL; "
                               "e.g. http://host:8000/v1")
        self.headers = {"Content-Type": "application/json"}
        self.root = self.base_url
        if parts.username is not None:
            # user:password@ in the URL is sent as HTTP basic auth, and taken out of the URL itself.
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            if parts.password:
                register_secret(unquote(parts.password))
            self.headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            self.root = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
        if self.key:
            register_secret(self.key)  # masked in every line and file, an echoing error reply's too
            self.headers["Authorization"] = f"Bearer {self.key}"

    # -- many requests ------------------------------------------------------------------------

    def run(self, jobs: list[tuple[str, dict[str, Any]]], concurrency: int) -> list[Reply]:
        """Each (path, body), `concurrency` in flight, answers in order; the first request that
        fails for good stops the rest and is raised (PcbenchError)."""
        async def all_of(client: httpx.AsyncClient, gate: asyncio.Semaphore) -> list[Reply]:
            async def one(path: str, body: dict[str, Any]) -> Reply:
                async with gate:
                    return await self.post(client, path, body)

            tasks = [asyncio.ensure_future(one(path, body)) for path, body in jobs]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:  # the first failure: stop sending the rest
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

        return run_sync(self.session(concurrency, all_of))

    async def session(self, concurrency: int,
                      work: Callable[[httpx.AsyncClient, asyncio.Semaphore], Awaitable[T]]) -> T:
        """An httpx client that never follows redirects and holds `concurrency` connections."""
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(follow_redirects=False, limits=limits, timeout=httpx.Timeout(self.timeout),
                                     trust_env=False) as client:
            return await work(client, asyncio.Semaphore(concurrency))

    # -- one request, with retries ------------------------------------------------------------

    async def post(self, client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Reply:
        url = self.root.rstrip("/") + path
        shown, first, attempts, reason = redact(url), time.monotonic(), 0, ""
        asked: float | None = None  # what the last reply's Retry-After asked for
        for attempt in range(self.max_retries + 1):
            if attempt:
                wait = self.backoff_seconds * 2 ** (attempt - 1)
                if asked is not None:
                    wait = max(wait, asked)
                if time.monotonic() - first + wait > self.retry_seconds:
                    if asked is not None and asked > self.retry_seconds:
                        reason += (f" (it asks to retry after {asked:g} s, past "
                                   f"{self.label}.retry_seconds={self.retry_seconds:g})")
                    break  # the next try would start after the retry budget: say so now
                await asyncio.sleep(wait)
            attempts += 1
            try:
                return await self.attempt(client, url, body)
            except Transient as exc:
                reason, asked = str(exc), exc.retry_after
                log.info("%s: %s; attempt %d of %d", shown, reason, attempt + 1, self.max_retries + 1)
        spent = time.monotonic() - first
        raise PcbenchError(f"{self.label} endpoint {shown} failed after {attempts} attempts in {spent:.0f} s "
                           f"({self.label}.max_retries={self.max_retries}, {self.label}.retry_seconds="
                           f"{self.retry_seconds:g}): {reason}")

    async def attempt(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Reply:
        """One try, bounded as a whole by `timeout`."""
        if self.stream:
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        started = time.perf_counter()

        async def whole() -> Reply:
            async with client.stream("POST", url, json=body, headers=self.headers) as response:
                await self.check(response, url)
                return await read_reply(response, started)

        try:
            return await asyncio.wait_for(whole(), self.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):  # our whole-request bound, or httpx's per phase
            raise Transient(f"no complete answer within {self.label}.timeout={self.timeout:g} s") from None
        except httpx.ConnectError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if isinstance(exc.__cause__ or exc.__context__, socket.gaierror) or "Name or service" in reason:
                # No such host: retrying will not create it.
                raise PcbenchError(f"{self.label} endpoint {redact(url)}: its host cannot be resolved ({reason}); "
                                   f"check {self.label}.base_url") from None
            raise Transient(f"cannot connect ({reason})") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise Transient(f"connection dropped ({type(exc).__name__})") from None

    async def check(self, response: httpx.Response, url: str) -> None:
        """Raise for a reply that is not a 200: redirects refused, transient ones retried."""
        status = response.status_code
        if 300 <= status < 400:
            # Following it would send the key to wherever the reply points: refused, said once.
            target = redact(response.headers.get("Location") or "(no Location header)")
            raise PcbenchError(f"{self.label} endpoint {redact(url)} redirected (HTTP {status}) to {target}; "
                               f"pcbench follows no redirect, so the key is never re-sent: set {self.label}.base_url "
                               "to the endpoint itself")
        if status < 400:
            return
        detail = redact(snippet(await response.aread()))  # an endpoint may quote the key it refused
        if status in RETRY_STATUS:
            raise Transient(f"HTTP {status} {detail}", retry_after(response.headers.get("Retry-After")))
        hint = ""
        if status == 404 and url.endswith("/completions") and not url.endswith("/chat/completions"):
            hint = "; raw requests (task chat=false, e.g. LongBench trec/samsum/lcc) need the endpoint's /completions"
        elif status in (401, 403):
            hint = f"; check the key in {self.label}.api_key_env"
        raise PcbenchError(f"{self.label} endpoint {redact(url)} refused the request: HTTP {status} {detail}{hint}")


async def read_reply(response: httpx.Response, started: float) -> Reply:
    """The answer, from a server-sent event stream or, where the server ignored `stream`, one JSON body."""
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        raw = await response.aread()
        reply = parse(raw, "reply")
        text, finish = choice_text(reply, streamed=False)
        counts = reply.get("usage")
        counts = counts if isinstance(counts, dict) else {}
        return Reply(text, counts.get("prompt_tokens"), counts.get("completion_tokens"), None,
                     time.perf_counter() - started, finish)
    pieces: list[str] = []
    first: float | None = None
    usage: dict[str, Any] = {}
    reason: str | None = None
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments, event names
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        chunk = parse(payload.encode(), "stream")
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        if not chunk.get("choices"):
            continue  # the closing usage chunk has no choices
        piece, said = choice_text(chunk, streamed=True)
        reason = said or reason
        if piece:
            if first is None:
                first = time.perf_counter() - started
            pieces.append(piece)
    return Reply("".join(pieces), usage.get("prompt_tokens"), usage.get("completion_tokens"), first,
                 time.perf_counter() - started, reason)


def parse(raw: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise Transient(f"malformed JSON in the {where}: {snippet(raw)}") from None
    if not isinstance(value, dict):
        raise Transient(f"malformed {where} (a JSON {type(value).__name__}, not an object): {snippet(raw)}")
    return value


def choice_text(reply: dict[str, Any], streamed: bool) -> tuple[str, str | None]:
    """choices[0]'s text: `message.content` / `delta.content` (chat) or `text` (completions)."""
    try:
        choice = reply["choices"][0]
        if "text" in choice:
            text = choice["text"]
        else:
            text = choice["delta" if streamed else "message"].get("content")
            text = "" if text is None and streamed else text
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise PcbenchError(f"the endpoint answered without choices[0] text ({type(exc).__name__}: {exc}); is it "
                           "OpenAI-compatible?") from None
    finish = choice.get("finish_reason")
    return text, finish if isinstance(finish, str) else None


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for: a number of seconds or an HTTP date; None if absent
    or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def run_sync(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from synchronous code, also where an event loop already runs
    (a notebook): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


def snippet(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    return repr(text[:120] + ("..." if len(text) > 120 else ""))
