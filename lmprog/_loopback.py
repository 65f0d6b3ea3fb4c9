"""A small OpenAI-compatible HTTP server on 127.0.0.1 for tests and benches, with scriptable failures.

It runs on asyncio (one event loop in a background thread, or in its own process for benches), so 64+
keep-alive connections each waiting out a per-request delay cost one sleeping coroutine each, not a thread.
Tests script what the next requests get (`server.script(rate_limited(1), ok())`) and read what was sent
(`server.received`: path, headers and JSON body of every request).

    with LoopbackServer(answer="positive") as server:
        lm = LM("openai/test", api_base=server.url)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request."""

    text: str | None = None
    """The completion text; None uses the server's `answer`."""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    """A raw body sent as-is instead of a completion JSON (for error bodies and garbage)."""
    delay: float | None = None
    """Seconds to wait before answering; None uses the server's default delay."""


def ok(text: str | None = None) -> Reply:
    """A normal completion."""
    return Reply(text=text)


def rate_limited(retry_after: float = 1.0) -> Reply:
    """HTTP 429 with a Retry-After header in seconds."""
    body = json.dumps({"error": {"message": "rate limit reached", "type": "rate_limit_error"}})
    return Reply(status=429, headers={"Retry-After": f"{retry_after:g}"}, body=body)


def server_error(status: int = 500) -> Reply:
    """An HTTP 5xx with an OpenAI-style error body."""
    return Reply(status=status, body=json.dumps({"error": {"message": "internal error", "type": "server_error"}}))


def not_json() -> Reply:
    """HTTP 200 whose body is not JSON (a misconfigured proxy, an HTML page)."""
    return Reply(body="<html><body>Bad gateway page</body></html>", headers={"Content-Type": "text/html"})


def slow(seconds: float, text: str | None = None) -> Reply:
    """A normal completion sent only after `seconds` (longer than a client timeout, to provoke one)."""
    return Reply(text=text, delay=seconds)


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: Any


Answer = str | Callable[[dict[str, Any]], str]


class LoopbackServer:
    """An OpenAI-compatible server on 127.0.0.1 (port 0 picks a free port), serving from a background thread."""

    def __init__(self, *, answer: Answer = "ok", delay: float = 0.0, host: str = "127.0.0.1", port: int = 0,
                 record: bool = True, ignore_n: bool = False) -> None:
        self.answer = answer
        self.ignore_n = ignore_n
        """Answer one choice whatever `n` asks (as llama.cpp's server does)."""
        self.delay = delay
        self.host = host
        self.port = port
        self.record = record
        self.count = 0
        self.received: list[Received] = []
        self._script: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The api_base to give a client: `http://127.0.0.1:<port>/v1`."""
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *replies: Reply) -> LoopbackServer:
        """Queue replies for the next requests, in order; afterwards requests get a normal completion."""
        with self._lock:
            self._script.extend(replies)
        return self

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> LoopbackServer:
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(self.open())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="lmprog-loopback", daemon=True)
        self._thread.start()
        started.wait()
        return self

    async def open(self) -> asyncio.base_events.Server:
        """Start listening on the current event loop (used directly when serving from a process)."""
        server = await asyncio.start_server(self._handle, self.host, self.port, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        loop, server = self._loop, self._server

        async def shutdown() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        loop.close()
        self._loop = self._server = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP --------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                status, out_headers, body = await self._respond(method, path, headers, raw)
                writer.write(_encode(status, out_headers, body))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(self, method: str, path: str, headers: dict[str, str],
                       raw: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.count += 1
            if self.record:
                self.received.append(Received(path=path, headers=headers, body=body))
            reply = self._script.popleft() if self._script else Reply()
        delay = self.delay if reply.delay is None else reply.delay
        if delay:
            await asyncio.sleep(delay)
        if reply.body is not None:
            return reply.status, {"Content-Type": "application/json", **reply.headers}, reply.body.encode()
        path = path.split("?", 1)[0]
        if method != "POST" or not path.endswith(("/chat/completions", "/completions")) or not isinstance(body, dict):
            err = {"error": {"message": f"no route for {method} {path}", "type": "invalid_request_error"}}
            return 404, {"Content-Type": "application/json"}, json.dumps(err).encode()
        text = reply.text if reply.text is not None else (
            self.answer(body) if callable(self.answer) else self.answer)
        payload = _completion(body, text, chat=path.endswith("/chat/completions"), ignore_n=self.ignore_n)
        return reply.status, {"Content-Type": "application/json", **reply.headers}, json.dumps(payload).encode()


def _completion(body: dict[str, Any], text: str, *, chat: bool, ignore_n: bool = False) -> dict[str, Any]:
    """An OpenAI-shaped completion with `n` identical choices and word-count usage."""
    if chat:
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages") or [])
    else:
        prompt = str(body.get("prompt", ""))
    n = 1 if ignore_n else int(body.get("n") or 1)
    if chat:
        choices = [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                   for i in range(n)]
    else:
        choices = [{"index": i, "text": text, "finish_reason": "stop"} for i in range(n)]
    prompt_tokens, completion_tokens = len(prompt.split()), n * len(text.split())
    return {
        "id": "cmpl-loopback", "object": "chat.completion" if chat else "text_completion", "created": 0,
        "model": body.get("model", "loopback"), "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _encode(status: int, headers: dict[str, str], body: bytes) -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Length: {len(body)}",
            "Connection: keep-alive"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@contextlib.contextmanager
def serve_in_subprocess(delay: float = 0.0, answer: str = "ok") -> Iterator[str]:
    """Run a server in a child process (so its CPU does not compete for the caller's GIL); yields its url."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmprog._loopback", "--delay", str(delay), "--answer", answer],
        stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"loopback server did not start (printed {line!r})")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    """`python -m lmprog._loopback --delay 0.2`: print `PORT <n>` and serve until terminated."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--answer", default="ok")
    args = parser.parse_args()
    server = LoopbackServer(answer=args.answer, delay=args.delay, port=args.port, record=False)

    async def run() -> None:
        srv = await server.open()
        print(f"PORT {server.port}", flush=True)
        async with srv:
            await srv.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
