//! HTTP/1.1 codec benches: head parse, body framing, head rewrites, chunked decode.
//! `cargo bench -p mcpgate-bench --bench codec -- http`

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{BenchmarkId, Criterion, Throughput};
use mcpgate_codec::http::{encode_chunk, ChunkedDecoder, HeadWriter, RequestHead, LAST_CHUNK};
use mcpgate_core::headers::{write_upstream_request, UpstreamRequest};

/// A typical MCP Streamable HTTP POST head: 326 bytes, 8 fields.
const MCP_POST_HEAD: &[u8] = b"POST /mcp-proxy HTTP/1.1\r\n\
Host: 127.0.0.1:80\r\n\
User-Agent: node-fetch/3.3.2 (modelcontextprotocol-typescript-sdk)\r\n\
Accept: application/json, text/event-stream\r\n\
Content-Type: application/json\r\n\
Content-Length: 169\r\n\
Mcp-Session-Id: 4f1c7a2e-0d3b-4c1e-9a57-2b8f6e0c9d11\r\n\
Mcp-Protocol-Version: 2025-06-18\r\n\
Connection: keep-alive\r\n\r\n";

/// A proxied MCP `tools/call` as a client sends it to the gateway: 9 fields, with a bearer token.
const MCP_CALL_HEAD: &[u8] = b"POST /mcp-proxy HTTP/1.1\r\n\
Host: gw.example.com:8080\r\n\
User-Agent: node-fetch/3.3.2 (modelcontextprotocol-typescript-sdk)\r\n\
Accept: application/json, text/event-stream\r\n\
Content-Type: application/json\r\n\
Content-Length: 169\r\n\
Mcp-Session-Id: 4f1c7a2e-0d3b-4c1e-9a57-2b8f6e0c9d11\r\n\
Mcp-Protocol-Version: 2025-06-18\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\r\n\
Connection: keep-alive\r\n\r\n";

fn parse(raw: &[u8]) -> RequestHead {
    match RequestHead::parse(raw) {
        Ok(Some(head)) => head,
        other => panic!("bench head must parse: {other:?}"),
    }
}

fn parsed() -> RequestHead {
    parse(MCP_POST_HEAD)
}

fn chunked_body(total: usize, chunk: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..total).map(|i| b'a' + (i % 26) as u8).collect();
    let mut wire = Vec::with_capacity(total + total / chunk * 8 + 8);
    for piece in data.chunks(chunk) {
        encode_chunk(piece, &mut wire);
    }
    wire.extend_from_slice(LAST_CHUNK);
    wire
}

pub fn benches(c: &mut Criterion) {
    assert_eq!(
        MCP_POST_HEAD.len(),
        326,
        "the bench head is the measured 326-byte one"
    );
    let head = parsed();
    assert_eq!(head.headers.len(), 8);

    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Bytes(MCP_POST_HEAD.len() as u64));
    group.bench_function("parse_request_head_326B", |b| {
        b.iter(|| RequestHead::parse(black_box(MCP_POST_HEAD)))
    });
    group.bench_function("httparse_only_326B", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            let status = req.parse(black_box(MCP_POST_HEAD));
            black_box(status.is_ok())
        })
    });
    group.bench_function("body_framing", |b| {
        b.iter(|| black_box(&head).body_framing(black_box(MCP_POST_HEAD)))
    });
    let mut out = Vec::with_capacity(512);
    group.bench_function("head_writer_rewrite_326B", |b| {
        b.iter(|| {
            out.clear();
            HeadWriter::request(black_box(MCP_POST_HEAD), &head)
                .target(b"/mcp")
                .remove_hop_by_hop()
                .set("Host", b"127.0.0.1:3001")
                .add("X-Forwarded-For", b"10.0.0.7")
                .write(&mut out);
            black_box(out.len())
        })
    });
    // The edits of `mcpgate_core::headers::write_upstream_request` through the builder as
    // written before that function edited in place, the X-Forwarded-For value already formatted:
    // the writer's part only (the whole function is the next bench).
    let call = parse(MCP_CALL_HEAD);
    assert_eq!(call.headers.len(), 9);
    group.throughput(Throughput::Bytes(MCP_CALL_HEAD.len() as u64));
    group.bench_function("head_writer_upstream_request_9f", |b| {
        b.iter(|| {
            out.clear();
            let buf = black_box(MCP_CALL_HEAD);
            let mut writer = HeadWriter::request(buf, &call)
                .target(b"/mcp")
                .remove_hop_by_hop()
                .remove("expect")
                .set("host", b"127.0.0.1:3001")
                .set("x-forwarded-for", b"10.0.0.7")
                .set("x-forwarded-proto", b"http");
            if let Some(host) = call.header(buf, "host") {
                writer = writer.set("x-forwarded-host", host);
            }
            writer
                .set("mcp-session-id", b"upstream-session-0001")
                .write(&mut out);
            black_box(out.len())
        })
    });
    // The whole upstream request rewrite as the proxy calls it (mcpgate-core is a dev-dependency).
    let req = UpstreamRequest {
        target: b"/mcp",
        host: "127.0.0.1:3001",
        peer: SocketAddr::from(([10, 0, 0, 7], 50123)),
        reframed_body_len: None,
        strip_headers: &[],
        session_id: Some(b"upstream-session-0001"),
        https: false,
        request_id: b"5f3a9c2e-0-2a",
        traceparent: None,
    };
    group.bench_function("write_upstream_request_9f", |b| {
        b.iter(|| {
            out.clear();
            write_upstream_request(black_box(MCP_CALL_HEAD), &call, &req, &mut out);
            black_box(out.len())
        })
    });
    group.throughput(Throughput::Bytes(MCP_POST_HEAD.len() as u64));
    group.bench_function("head_writer_verbatim_326B", |b| {
        b.iter(|| {
            out.clear();
            HeadWriter::request(black_box(MCP_POST_HEAD), &head).write(&mut out);
            black_box(out.len())
        })
    });

    for chunk in [1024usize, 16 * 1024] {
        let wire = chunked_body(64 * 1024, chunk);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("chunked_decode_64KiB", format!("{chunk}B_chunks")),
            &wire,
            |b, wire| {
                b.iter(|| {
                    let mut decoder = ChunkedDecoder::new();
                    let mut data_bytes = 0usize;
                    let consumed = decoder.decode(black_box(wire), |r| data_bytes += r.len());
                    black_box((consumed, data_bytes))
                })
            },
        );
    }
    group.finish();
}
