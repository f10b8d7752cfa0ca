"""A small HTTP/1.1 server on loopback that records every request and answers as told: the
stand-in for Slack, Discord, Telegram and a heartbeat service in the alerts tests.

``Recorder`` runs in the test's event loop (anyio: asyncio or trio); ``ThreadRecorder`` in a
thread of its own, for a test that drives a subprocess. Neither mocks httpx: the client
speaks to a real socket.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import attrs


@attrs.frozen(kw_only=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.frozen(kw_only=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = attrs.Factory(dict)
    hang: bool = False
    """Accept the request and never answer (a dead endpoint)."""


Responder = Callable[[Request], Answer]

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found"}


class Recorder:
    """``async with Recorder.serving(respond) as recorder``: ``recorder.url`` is its base URL,
    ``recorder.requests`` what arrived, ``await recorder.wait_for(n)`` waits for n of them."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[Request] = []
        self.port = 0
        self._arrived = anyio.Event()
        self._release = anyio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    @contextlib.asynccontextmanager
    async def serving(cls, respond: Responder | None = None) -> AsyncIterator[Recorder]:
        recorder = cls(respond or (lambda _request: Answer()))
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        recorder.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, recorder._connection)
            try:
                yield recorder
            finally:
                recorder._release.set()
                tg.cancel_scope.cancel()

    async def wait_for(self, count: int) -> list[Request]:
        while len(self.requests) < count:
            self._arrived = anyio.Event()
            await self._arrived.wait()
        return self.requests[:count]

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        buffered = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffered:
                    try:
                        buffered += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffered) < length:
                    try:
                        buffered += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                body, buffered = buffered[:length], buffered[length:]
                request = Request(method=method, path=target, headers=headers, body=body)
                self.requests.append(request)
                self._arrived.set()
                answer = self.respond(request)
                if answer.hang:
                    await self._release.wait()
                    return
                await stream.send(_response(answer))


def _response(answer: Answer) -> bytes:
    reason = _REASONS.get(answer.status, "Status")
    headers = {"content-length": str(len(answer.body)), **answer.headers}
    lines = [f"HTTP/1.1 {answer.status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer.body


class ThreadRecorder:
    """The same in a thread (``http.server``): every request answered 200 and recorded."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Condition()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with recorder._lock:
                    recorder.requests.append(request)
                    recorder._lock.notify_all()
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def wait_until(self, holds: Callable[[list[Request]], bool], timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: holds(list(self.requests)), timeout=timeout)

    @classmethod
    @contextlib.contextmanager
    def serving(cls) -> Iterator[ThreadRecorder]:
        recorder = cls()
        thread = threading.Thread(target=recorder._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield recorder
        finally:
            recorder._server.shutdown()
            recorder._server.server_close()
            thread.join(timeout=10)
