"""The service's HTTP endpoints (``[http]``, loopback by default): ``/healthz`` (alive),
``/readyz`` (reconciled and trading, and if not why) and ``/metrics`` (the OTel metrics in
Prometheus' text format, through the OTel Prometheus reader of ``runtime.metrics``).

The server is the standard library's ``ThreadingHTTPServer`` in a daemon thread of its own, so
an event loop that has stopped turning cannot stop ``/healthz`` from saying so. It reads only
``Health.latest`` (an immutable reading, replaced whole on the loop) and the metrics registry,
whose collection is safe off the loop (``runtime.metrics``). A scrape drains the queued
durations first, so the histograms are as fresh as the counts.

A listen address that cannot be bound (in use, no such host) is logged and trading goes on
without the endpoints, as without the control socket.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from .health import Health, Reading, as_json

if TYPE_CHECKING:
    from config.schema import HttpConfig
    from runtime.metrics import Metrics

__all__ = ["HttpEndpoints", "serve_http"]

log = logging.getLogger("actortrade.http")

PATHS = ("/healthz", "/readyz", "/metrics")
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


class HttpEndpoints:
    """``/healthz``, ``/readyz`` and ``/metrics`` of one service, served from a thread.

    ``stale_after``: seconds after which the last reading means the event loop has stopped
    turning (default: three of ``health``'s intervals plus the time one reading may wait for
    the risk actor)."""

    def __init__(
        self,
        health: Health,
        metrics: Metrics,
        *,
        host: str = "127.0.0.1",
        port: int = 9464,
        stale_after: float | None = None,
    ) -> None:
        self.health = health
        self.metrics = metrics
        self.host = host
        self.port = port
        self.stale_after = (
            stale_after if stale_after is not None else 3 * health.interval + health.ask_timeout
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._scrape = threading.Lock()
        """One scrape at a time: the Prometheus reader hands each collection over in a queue."""

    @classmethod
    def from_config(
        cls, config: HttpConfig, health: Health, metrics: Metrics
    ) -> HttpEndpoints | None:
        """The endpoints ``[http]`` asks for, or None when it turns them off."""
        from config.schema import split_listen

        if not config.enabled:
            return None
        host, port = split_listen(config.listen)
        return cls(health, metrics, host=host, port=port)

    @property
    def listen(self) -> str:
        """The address asked for, ``host:port``."""
        return _joined(self.host, self.port)

    @property
    def address(self) -> str | None:
        """The address bound (the port chosen when asked for 0), ``host:port``; None when not
        serving."""
        server = self._server
        if server is None:
            return None
        host, port = server.server_address[:2]
        return _joined(str(host), int(port))

    def start(self) -> str | None:
        """Bind and serve from a daemon thread; returns the address bound, or None when it
        could not be bound (logged as a warning: trading goes on without the endpoints)."""
        if self._server is not None:
            return self.address
        try:
            server = _Server(self, self.host, self.port)
        except (OSError, OverflowError) as exc:
            log.warning("no HTTP endpoints on %s: %s", self.listen, exc)
            return None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"actortrade-http {self.listen}",
            daemon=True,
        )
        self._thread.start()
        address = self.address
        if not _loopback(self.host):
            log.warning(
                "HTTP endpoints exposed on %s, not loopback: anyone who reaches it may read "
                "/healthz, /readyz and /metrics",
                address,
            )
        return address

    def close(self) -> None:
        """Stop serving and release the address (a request under way finishes on its own)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # -- the answers (called from the server's threads) ----------------------------------------

    def healthz(self) -> tuple[int, dict[str, Any]]:
        """200 while the last reading is alive and fresh, else 503 with ``reason``."""
        reading, now = self.health.latest, self.health.clock()
        body = dict(as_json(reading, now))
        problem = self._not_alive(reading, now)
        if problem is not None:
            body.update(alive=False, reason=problem)
            return HTTPStatus.SERVICE_UNAVAILABLE, body
        return HTTPStatus.OK, body

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """200 while alive and ready, else 503 with the ``reasons``."""
        reading, now = self.health.latest, self.health.clock()
        body = dict(as_json(reading, now))
        problem = self._not_alive(reading, now)
        if problem is not None:
            reasons = [problem, *(r for r in body.get("reasons", ()) if r != problem)]
            body.update(alive=False, ready=False, reasons=reasons)
            return HTTPStatus.SERVICE_UNAVAILABLE, body
        if not body["ready"]:
            return HTTPStatus.SERVICE_UNAVAILABLE, body
        return HTTPStatus.OK, body

    def scrape(self, accept: str = "") -> tuple[bytes, str] | None:
        """The metrics in the format ``accept`` prefers (Prometheus text by default, or
        OpenMetrics) and its content type; None when these metrics have no Prometheus reader."""
        from prometheus_client.exposition import choose_encoder

        registry = self.metrics.registry
        if registry is None:
            return None
        encode, content_type = choose_encoder(accept)
        with self._scrape:
            self.metrics.drain()
            return encode(registry), content_type

    def _not_alive(self, reading: Reading | None, now: float) -> str | None:
        if reading is None:
            return "starting"
        if reading.stopping:
            return "stopping"
        age = now - reading.taken
        if age > self.stale_after:
            return f"event loop not turning for {age:.0f} s"
        if not reading.alive:
            return "starting" if "starting" in reading.reasons else "root supervisor stopped"
        return None


async def serve_http(
    endpoints: HttpEndpoints, on_started: Callable[[str], None] | None = None
) -> None:
    """Serve ``endpoints`` until cancelled (a companion of the service); ``on_started`` gets
    the address bound. One that cannot be bound is logged, and this waits to be cancelled."""
    try:
        # In a thread: resolving a host name may wait on DNS.
        address = await anyio.to_thread.run_sync(endpoints.start)
        if address is not None and on_started is not None:
            on_started(address)
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + 5
            await anyio.to_thread.run_sync(endpoints.close)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, endpoints: HttpEndpoints, host: str, port: int) -> None:
        self.endpoints = endpoints
        # The family of the host's first address (IPv6 for [::1], say); the address itself is
        # bound as given.
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        self.address_family = family[0][0]
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the host's name up (socket.getfqdn): a DNS wait for nothing.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("HTTP client %s went away: %s", client_address, error)
        else:
            log.warning("HTTP request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "actortrade"
    sys_version = ""  # the Server header names no Python version
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection holds a thread no longer than this

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _not_allowed(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"only GET and HEAD\n",
            _TEXT,
            body=self.command != "HEAD",
            headers={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _answer(self, *, body: bool) -> None:
        endpoints = self.server.endpoints
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._json(*endpoints.healthz(), body=body)
        elif path == "/readyz":
            self._json(*endpoints.readyz(), body=body)
        elif path == "/metrics":
            page = endpoints.scrape(self.headers.get("Accept", ""))
            if page is None:
                self._send(HTTPStatus.NOT_FOUND, b"no Prometheus metrics\n", _TEXT, body=body)
            else:
                self._send(HTTPStatus.OK, page[0], page[1], body=body)
        else:
            known = " ".join(PATHS)
            self._send(HTTPStatus.NOT_FOUND, f"not here: {known}\n".encode(), _TEXT, body=body)

    def _json(self, status: int, document: dict[str, Any], *, body: bool) -> None:
        self._send(status, json.dumps(document).encode() + b"\n", _JSON, body=body)

    def _send(
        self,
        status: int,
        content: bytes,
        content_type: str,
        *,
        body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            # A request body is never read: left in the stream it would be taken for the next
            # request on this connection.
            self.close_connection = True
            self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's name
        # Every scrape and probe at INFO would drown the service's own lines.
        log.debug("%s %s", self.address_string(), format % args)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _joined(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
