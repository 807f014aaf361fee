"""An OpenAI-compatible HTTP server on 127.0.0.1 for tests: a real server (http.server), answering
through a backend the test gives (the real transformers reader, or the model-free `echo`), with
scripted failures. Shared by the openai reader's and pcbench-serving's tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pcbench.core.requests import Generation, Request

Backend = Callable[[Request], Generation]


def echo(request: Request) -> Generation:
    """A model-free backend: the prompt's last word, reversed (deterministic, instant)."""
    word = request.prompt.split()[-1] if request.prompt.split() else ""
    return Generation(word[::-1], len(request.prompt.split()), 1, False, 0.0, 0.0)


class Endpoint:
    """An OpenAI-compatible server on 127.0.0.1:<free port>, answering through `backend`.

    `script` lists what the first requests get, in order: "ok", "429", "500", "400", "sleep"
    (answer only after `sleep` seconds), "wait1" / "wait3600" (503 / 429 with Retry-After: 1 / 3600),
    "trickle" (stream a word each `sleep` seconds, twenty of them), "gate" (answer once `gate`
    requests are in flight together, or after 60 s), "malformed" (200 with a body that is not
    JSON), "close" (drop the connection without a reply); later requests get "ok". It stops by
    itself after `lifetime` seconds or `max_requests` requests, whichever comes first.
    `most_in_flight` is the most requests it held at once. A clock is read only for lower bounds (a
    wait that was asked for): what the tests check holds however loaded the machine is.
    """

    def __init__(self, backend: Backend, script: list[str] | None = None, sleep: float = 1.0,
                 lifetime: float = 300.0, max_requests: int = 50, gate: int = 1) -> None:
        self.backend, self.script, self.sleep, self.gate = backend, list(script or []), sleep, gate
        self.in_flight = self.most_in_flight = 0
        self.arrived = threading.Condition()
        self.max_requests = max_requests
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.model_lock = threading.Lock()  # the backend reader is not thread-safe
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                endpoint.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.timer = threading.Timer(lifetime, self.stop)
        self.timer.daemon = True

    def __enter__(self) -> Endpoint:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        with self.lock:
            self.seen.append({"path": h.path, "body": body, "headers": dict(h.headers)})
            n = len(self.seen)
            action = self.script.pop(0) if self.script else "ok"
        if n > self.max_requests:
            action = "close"
        if action == "close":
            h.close_connection = True
            return
        if action == "sleep":
            time.sleep(self.sleep)
        if action == "gate":
            with self.arrived:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                self.arrived.notify_all()
                self.arrived.wait_for(lambda: self.in_flight >= self.gate, timeout=60)
            time.sleep(0.05)  # let any request beyond the bound arrive while these are held
            with self.arrived:
                self.in_flight -= 1
        if action in ("429", "500", "400"):
            return self.reply(h, int(action), {"error": {"message": f"scripted {action}"}})
        if action == "wait1":
            return self.reply(h, 503, {"error": {"message": "busy"}}, headers={"Retry-After": "1"})
        if action == "wait3600":
            return self.reply(h, 429, {"error": {"message": "quota"}}, headers={"Retry-After": "3600"})
        if action == "trickle":
            return self.events(h, ["word "] * 20, {}, chat=True, every=self.sleep)
        if action == "401echo":  # a careless endpoint that quotes the key it refused
            return self.reply(h, 401, {"error": {"message": f"invalid key {h.headers.get('Authorization')}"}})
        if action in ("301", "302", "303", "307"):
            return self.reply(h, int(action), {"moved": True},
                              headers={"Location": "http://127.0.0.2:9/v1/chat/completions"})
        if action == "malformed":
            return self.reply(h, 200, b'{"choices": [{"text": "cut sho')
        chat = h.path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        request = Request(prompt, int(body["max_tokens"]), chat=chat, stop_at_newline=body.get("stop") == ["\n"])
        with self.model_lock:
            (gen,) = self.backend_generate([request])
        if body.get("stream") and action not in ("badusage", "nousage"):
            usage = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.new_tokens}
            include = (body.get("stream_options") or {}).get("include_usage")
            return self.events(h, gen.text.split(" "), usage if include else None, chat)
        choice = {"index": 0, "finish_reason": "stop"}
        choice.update({"message": {"role": "assistant", "content": gen.text}} if chat else {"text": gen.text})
        usage: Any = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.new_tokens}
        if action == "badusage":
            usage = {"prompt_tokens": -5, "completion_tokens": "many"}
        elif action == "nousage":
            usage = "none"
        self.reply(h, 200, {"object": "chat.completion" if chat else "text_completion", "choices": [choice],
                            "usage": usage})

    def backend_generate(self, requests: list[Request]) -> list[Generation]:
        gen = getattr(self.backend, "generate", None)
        return gen(requests) if gen else [self.backend(r) for r in requests]

    @staticmethod
    def events(h: BaseHTTPRequestHandler, words: list[str], usage: dict[str, int] | None, chat: bool,
               every: float = 0.0) -> None:
        """A server-sent event stream as vLLM writes it: a chunk per piece, the finish reason, the
        usage chunk (choices empty) when asked for, then [DONE]; the connection closes at the end."""
        pieces = [w + " " for w in words[:-1]] + words[-1:]
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, **({"delta": {"content": p}} if chat else {"text": p}), "finish_reason": None}]}
            for p in pieces]
        chunks.append({"choices": [{"index": 0, **({"delta": {}} if chat else {"text": ""}), "finish_reason": "stop"}]})
        if usage is not None:
            chunks.append({"choices": [], "usage": usage})
        try:
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
            h.end_headers()
            for chunk in chunks:
                h.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                h.wfile.flush()
                time.sleep(every)
            h.wfile.write(b"data: [DONE]\n\n")
            h.close_connection = True
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): fine
            pass

    @staticmethod
    def reply(h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            h.send_response(status)
            for name, value in (headers or {}).items():
                h.send_header(name, value)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): fine
            pass
