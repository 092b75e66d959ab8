# An OTLP/HTTP traces receiver for tests/tests/traces.rs: accepts POST /v1/traces, decodes the
# body as an ExportTraceServiceRequest with the official generated types (opentelemetry-proto,
# pinned in requirements.lock), and appends one JSON object per span to SPANS_FILE. A body that
# does not decode is answered 400 and counted in the file as {"decode_error": ...}, so a wrong
# field number in the gateway's encoder fails the test instead of passing unseen.
#
# Usage: PORT=4318 SPANS_FILE=/tmp/spans.jsonl python otlp_receiver.py
# Prints "otlp receiver listening on 127.0.0.1:<port>" once bound. With SPANS_FILE unset it
# decodes and counts but writes nothing (the collector of bench/README.md's traces A/B), and
# prints the count when stopped.

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

SPANS_FILE = os.environ.get("SPANS_FILE")
RECEIVED = [0]
PORT = int(os.environ.get("PORT", "0"))


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    v = getattr(any_value, kind)
    if kind in ("array_value", "kvlist_value", "bytes_value"):
        return str(v)
    return v


def attributes(kvs):
    return {kv.key: value_of(kv.value) for kv in kvs}


def append(lines):
    if SPANS_FILE is None:
        RECEIVED[0] += sum(1 for line in lines if "span_id" in line)
        return
    with open(SPANS_FILE, "a", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            return self.answer(404, b"")
        if self.headers.get("content-type") != "application/x-protobuf":
            append([{"decode_error": "content-type " + str(self.headers.get("content-type"))}])
            return self.answer(415, b"")
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as e:
            append([{"decode_error": str(e)}])
            return self.answer(400, b"")
        lines = []
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(
                        {
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex(),
                            "trace_state": s.trace_state,
                            "name": s.name,
                            "kind": s.kind,
                            "start_time_unix_nano": s.start_time_unix_nano,
                            "end_time_unix_nano": s.end_time_unix_nano,
                            "attributes": attributes(s.attributes),
                            "status_code": s.status.code,
                            "status_message": s.status.message,
                            "flags": s.flags,
                            "scope": ss.scope.name,
                            "resource": resource,
                            "export_header": self.headers.get("x-collector-key"),
                        }
                    )
        append(lines)
        self.answer(200, ExportTraceServiceResponse().SerializeToString())

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print(f"otlp receiver listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    print(f"otlp receiver: {RECEIVED[0]} spans received", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
