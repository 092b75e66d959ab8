//! The OTLP/HTTP protobuf body of `POST /v1/traces` (`ExportTraceServiceRequest`), written by
//! hand: the handful of messages and field numbers below are the whole of what the gateway sends
//! (opentelemetry-proto's `collector/trace/v1` and `trace/v1`, `common/v1`, `resource/v1`), and a
//! writer of ~100 lines costs no protobuf toolchain or runtime crate (docs/dependencies.md). The
//! end-to-end test decodes the output with the official generated types (Python
//! `opentelemetry-proto`), which is what keeps these numbers honest.

use super::{SpanData, Value};

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_FIXED32: u64 = 5;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, field << 3 | wire);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    tag(out, field, WIRE_LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A nested message: written in place, then its length (a varint, so its size is known only
/// afterwards) inserted in front of it. A memmove of the message instead of a buffer per nested
/// message: a span has a dozen of them (attributes, their values, the status).
fn message_field(out: &mut Vec<u8>, field: u64, write: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, WIRE_LEN);
    let start = out.len();
    write(out);
    let mut len = [0u8; 10];
    let mut n = 0;
    let mut v = (out.len() - start) as u64;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        len[n] = if v == 0 { byte } else { byte | 0x80 };
        n += 1;
        if v == 0 || n == len.len() {
            break;
        }
    }
    out.splice(start..start, len.iter().take(n).copied());
}

fn varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    tag(out, field, WIRE_VARINT);
    varint(out, v);
}

fn fixed64_field(out: &mut Vec<u8>, field: u64, v: u64) {
    tag(out, field, WIRE_FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn fixed32_field(out: &mut Vec<u8>, field: u64, v: u32) {
    tag(out, field, WIRE_FIXED32);
    out.extend_from_slice(&v.to_le_bytes());
}

/// `KeyValue { key = 1; AnyValue value = 2 }`, `AnyValue { string_value = 1; bool_value = 2;
/// int_value = 3 }`.
fn key_value(out: &mut Vec<u8>, field: u64, key: &str, value: &Value) {
    message_field(out, field, |kv| {
        bytes_field(kv, 1, key.as_bytes());
        message_field(kv, 2, |any| match value {
            Value::Str(s) => bytes_field(any, 1, s.as_bytes()),
            Value::Bool(b) => varint_field(any, 2, u64::from(*b)),
            // int64: two's complement as a 64-bit varint.
            Value::Int(i) => varint_field(any, 3, *i as u64),
        });
    });
}

/// `Span` (trace/v1/trace.proto).
fn span(out: &mut Vec<u8>, s: &SpanData) {
    bytes_field(out, 1, &s.trace_id);
    bytes_field(out, 2, &s.span_id);
    if let Some(ts) = &s.trace_state {
        bytes_field(out, 3, ts.as_bytes());
    }
    if let Some(p) = &s.parent_span_id {
        bytes_field(out, 4, p);
    }
    bytes_field(out, 5, s.name.as_bytes());
    varint_field(out, 6, s.kind as u64);
    fixed64_field(out, 7, s.start_unix_ns);
    fixed64_field(out, 8, s.end_unix_ns.max(s.start_unix_ns));
    for (k, v) in &s.attributes {
        key_value(out, 9, k, v);
    }
    // Status { message = 2; code = 3 }
    if s.status as u64 != 0 || s.status_message.is_some() {
        message_field(out, 15, |st| {
            if let Some(m) = &s.status_message {
                bytes_field(st, 2, m.as_bytes());
            }
            varint_field(st, 3, s.status as u64);
        });
    }
    // SpanFlags: sampled (W3C flags), HAS_IS_REMOTE (0x100), IS_REMOTE (0x200) when the parent
    // came from the client.
    let remote = s.kind == super::SpanKind::Server && s.parent_span_id.is_some();
    fixed32_field(out, 16, 0x101 | if remote { 0x200 } else { 0 });
}

/// The whole `ExportTraceServiceRequest` for `spans`, under one resource (`service.name`, …) and
/// one instrumentation scope.
pub fn export_request(
    resource: &[(&str, Value)],
    scope_version: &str,
    spans: &[SpanData],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + spans.len() * 384);
    // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }
    message_field(&mut out, 1, |rs| {
        // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2 }
        message_field(rs, 1, |r| {
            for (k, v) in resource {
                key_value(r, 1, k, v);
            }
        });
        message_field(rs, 2, |ss| {
            // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2 }
            message_field(ss, 1, |scope| {
                bytes_field(scope, 1, b"mcpgate");
                bytes_field(scope, 2, scope_version.as_bytes());
            });
            for s in spans {
                message_field(ss, 2, |o| span(o, s));
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_lengths_are_the_messages_own() {
        let mut o = Vec::new();
        let body = vec![7u8; 300];
        message_field(&mut o, 1, |inner| {
            message_field(inner, 2, |deeper| deeper.extend_from_slice(&body));
        });
        // field 1 (len 303) { field 2 (len 300) { 300 × 7 } }
        assert_eq!(&o[..3], &[1 << 3 | 2, 0xaf, 0x02]);
        assert_eq!(&o[3..6], &[2 << 3 | 2, 0xac, 0x02]);
        assert_eq!(&o[6..], &body[..]);
    }

    #[test]
    fn varints_and_negative_ints() {
        let mut o = Vec::new();
        varint(&mut o, 300);
        assert_eq!(o, [0xac, 0x02]);
        let mut o = Vec::new();
        key_value(&mut o, 9, "c", &Value::Int(-1));
        // KeyValue(9, len) { key(1)="c"; value(2) { int_value(3) = ten 0xff.. bytes } }
        assert_eq!(o[0], 9 << 3 | 2);
        assert_eq!(o.len(), 2 + 3 + 2 + 1 + 10);
        assert_eq!(*o.last().unwrap_or(&0), 0x01);
    }
}
