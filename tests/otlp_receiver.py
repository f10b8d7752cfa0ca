"""A real OTLP/HTTP receiver for the tests: ``POST /v1/traces`` with an
``ExportTraceServiceRequest`` protobuf (plain, gzip or deflate), decoded with
opentelemetry-proto and kept as flat dicts; answered with an ``ExportTraceServiceResponse``.
``POST /v1/metrics`` likewise, with ``ExportMetricsServiceRequest``: each data point kept.
It runs in a thread on loopback, as Jaeger's OTLP port would (ref/alpaca-otel.md B.2)."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "unspecified",
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}


def value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in pairs}


class Receiver:
    """Collected spans, the raw requests' metadata, and how to wait for them."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.points: list[dict[str, Any]] = []
        """Metric data points: name, unit, kind (sum, gauge, histogram), attributes, and value
        (sums and gauges) or count, sum and max (histograms)."""
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.port = 0

    @property
    def endpoint(self) -> str:
        """The base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes it (no ``/v1/traces``)."""
        return f"http://127.0.0.1:{self.port}"

    def store(self, request: ExportTraceServiceRequest, meta: dict[str, Any]) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex() or None,
                            "name": span.name,
                            "kind": KINDS[span.kind],
                            "start_ns": span.start_time_unix_nano,
                            "end_ns": span.end_time_unix_nano,
                            "attributes": attributes(span.attributes),
                            "events": [
                                {
                                    "name": e.name,
                                    "at_ns": e.time_unix_nano,
                                    "attributes": attributes(e.attributes),
                                }
                                for e in span.events
                            ],
                            "links": [
                                {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
                                for link in span.links
                            ],
                            "error": span.status.message
                            if span.status.code == Status.STATUS_CODE_ERROR
                            else None,
                            "resource": resource,
                            "scope": scope_spans.scope.name,
                        }
                    )
        with self.lock:
            self.spans.extend(spans)
            self.requests.append({**meta, "spans": len(spans)})

    def store_metrics(self, request: ExportMetricsServiceRequest) -> None:
        points = []
        for resource_metrics in request.resource_metrics:
            resource = attributes(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        row: dict[str, Any] = {
                            "name": metric.name,
                            "unit": metric.unit,
                            "kind": kind,
                            "attributes": attributes(point.attributes),
                            "resource": resource,
                        }
                        if kind == "histogram":
                            row.update(count=point.count, sum=point.sum, max=point.max)
                        else:
                            row["value"] = getattr(point, point.WhichOneof("value"))
                        points.append(row)
        with self.lock:
            self.points.extend(points)

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.spans)):
                    return
            time.sleep(0.01)
        raise TimeoutError(f"the receiver has {len(self.spans)} spans; the condition never held")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            if self.path == "/v1/metrics":
                metrics = ExportMetricsServiceRequest()
                metrics.ParseFromString(body)
                receiver.store_metrics(metrics)
                self._answer(200, ExportMetricsServiceResponse().SerializeToString())
                return
            if self.path != "/v1/traces":
                self._answer(200, b"")  # logs: accepted, not kept
                return
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            receiver.store(
                request,
                {
                    "content_type": self.headers.get("Content-Type"),
                    "user_agent": self.headers.get("User-Agent"),
                },
            )
            self._answer(200, ExportTraceServiceResponse().SerializeToString())

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def _bound(port: int = 0) -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    receiver.port = server.server_address[1]
    return receiver, server


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    receiver, server = _bound()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def main() -> None:
    """``python tests/otlp_receiver.py [--port N]``: serve until killed, printing the port, and,
    at SIGTERM, how many spans and metric points arrived (for bench/)."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    receiver, server = _bound(args.port)
    print(receiver.port, flush=True)

    def report(*_: object) -> None:
        print(f"{len(receiver.spans)} spans {len(receiver.points)} points", flush=True)
        server.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=report).start())
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
