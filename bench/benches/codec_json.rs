//! SSE, JSON-RPC classification and list-filter benches. Groups `json_rpc`, `json_envelope`,
//! `json_filter`, `json_sse`, `json_sse_list`: `-- json` selects them all, `-- sse`, `-- envelope`
//! or `-- filter` one group.

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use mcpgate_codec::envelope;
use mcpgate_codec::filter::{ListFilter, ListKind, ListSet};
use mcpgate_codec::http::encode_chunk;
use mcpgate_codec::jsonrpc::{Classified, Classifier};
use mcpgate_codec::sse::{write_event, write_event_chunk, SseParser};

/// The design card's 169-byte `tools/call` (the brief's message padded with two more arguments).
const TOOLS_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Oslo","units":"metric","days":3,"x":1},"_meta":{"progressToken":"p7"}}}"#;

/// A progress notification as the TypeScript SDK writes it (and the mock upstream sends it).
const PROGRESS: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p7","progress":1,"total":2,"message":"step 1 of 2"}}"#;

/// A `tools/list` result of `n` tools, shaped like real servers' (description + JSON schema).
pub fn tools_list(n: usize) -> Vec<u8> {
    let mut s = String::from(r#"{"jsonrpc":"2.0","id":2,"result":{"tools":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"name":"tool_{i:03}","description":"Looks up item {i} in the catalogue and returns its \"current\" state as structured content.","inputSchema":{{"type":"object","properties":{{"query":{{"type":"string","description":"What to look for"}},"limit":{{"type":"integer","minimum":1,"maximum":100}}}},"required":["query"]}}}}"#
        ));
    }
    s.push_str(r#"],"nextCursor":"page-2"}}"#);
    s.into_bytes()
}

/// About 1 MiB of SSE made of events whose data lines are `data_len` bytes.
fn sse_stream(data_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    let mut i = 0;
    while out.len() < (1 << 20) {
        out.extend_from_slice(format!("event: message\nid: s1-{i}\ndata: ").as_bytes());
        let body_start = out.len();
        out.extend_from_slice(
            br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"data":""#,
        );
        while out.len() - body_start < data_len.saturating_sub(3) {
            out.push(b'x');
        }
        out.extend_from_slice(b"\"}}\n\n");
        i += 1;
    }
    out
}

fn parse_all(stream: &[u8]) -> usize {
    let mut parser = SseParser::new();
    let mut rest = stream;
    let mut events = 0;
    while let Ok(Some((ev, consumed))) = parser.next_event(rest) {
        black_box(parser.data(&ev, rest));
        rest = &rest[consumed..];
        events += 1;
    }
    events
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("json_rpc");
    g.throughput(Throughput::Bytes(TOOLS_CALL.len() as u64));
    let mut classifier = Classifier::new();
    g.bench_function(
        BenchmarkId::new("classify_tools_call", TOOLS_CALL.len()),
        |b| b.iter(|| classifier.classify(black_box(TOOLS_CALL)).map(drop)),
    );
    g.finish();

    // What the exchange log pays to learn a server notification's method: the classifier, or the
    // envelope reader it now tries first.
    let mut g = c.benchmark_group("json_envelope");
    g.throughput(Throughput::Bytes(PROGRESS.len() as u64));
    g.bench_function(BenchmarkId::new("classify_progress", PROGRESS.len()), |b| {
        b.iter(|| classifier.classify(black_box(PROGRESS)).map(drop))
    });
    g.bench_function(BenchmarkId::new("peek_progress", PROGRESS.len()), |b| {
        b.iter(|| envelope::peek(black_box(PROGRESS)).map(|e| e.method.len()))
    });
    g.finish();

    let list = tools_list(100);
    let mut g = c.benchmark_group("json_filter");
    g.throughput(Throughput::Bytes(list.len() as u64));
    let mut filter = ListFilter::new();
    let mut out = Vec::with_capacity(list.len());
    g.bench_function(
        BenchmarkId::new("tools_list_100_keep_half", list.len()),
        |b| {
            b.iter(|| {
                out.clear();
                let mut odd = false;
                filter.filter(
                    black_box(&list),
                    ListKind::Tools,
                    |_| {
                        odd = !odd;
                        odd
                    },
                    &mut out,
                )
            })
        },
    );
    g.bench_function(
        BenchmarkId::new("tools_list_100_keep_all", list.len()),
        |b| {
            b.iter(|| {
                out.clear();
                filter.filter(black_box(&list), ListKind::Tools, |_| true, &mut out)
            })
        },
    );
    g.finish();

    let mut g = c.benchmark_group("json_sse");
    for (name, data_len) in [
        ("parse_1MiB_64KiB_events", 64 * 1024),
        ("parse_1MiB_200B_events", 200),
    ] {
        let stream = sse_stream(data_len);
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(name, |b| b.iter(|| parse_all(black_box(&stream))));
    }
    g.finish();

    // One SSE event answering a `tools/list` through an ACL keeping half the tools, from its
    // data to the bytes of the client's chunked body: the engine's path before (classify, filter
    // into a fresh Vec, the event into a second buffer, the chunk into `out`) and after
    // (`filter_response` into a reused buffer, the event written into `out` as a chunk).
    let mut g = c.benchmark_group("json_sse_list");
    for n in [13, 100] {
        let event_data = tools_list(n);
        g.throughput(Throughput::Bytes(event_data.len() as u64));
        let mut out = Vec::with_capacity(2 * event_data.len());
        let mut rewritten = Vec::new();
        g.bench_function(BenchmarkId::new("classify_filter_copy_frame", n), |b| {
            b.iter(|| {
                out.clear();
                let data = black_box(&event_data[..]);
                let Ok(Classified::Single(m)) = classifier.classify(data) else {
                    return 0;
                };
                let mut filtered = Vec::with_capacity(data.len());
                let mut odd = false;
                let _ = ListFilter::new().filter_lists(
                    data,
                    m.lists,
                    |_, _| {
                        odd = !odd;
                        odd
                    },
                    &mut filtered,
                );
                rewritten.clear();
                write_event(
                    &mut rewritten,
                    Some(b"message"),
                    Some(b"e-1"),
                    None,
                    &filtered,
                );
                encode_chunk(&rewritten, &mut out);
                out.len()
            })
        });
        let mut scratch = Vec::new();
        g.bench_function(BenchmarkId::new("filter_response_frame_in_place", n), |b| {
            b.iter(|| {
                out.clear();
                scratch.clear();
                let data = black_box(&event_data[..]);
                let mut odd = false;
                let _ = filter.filter_response(
                    data,
                    ListSet::ALL,
                    |_, _| {
                        odd = !odd;
                        odd
                    },
                    &mut scratch,
                );
                write_event_chunk(&mut out, Some(b"message"), Some(b"e-1"), None, &scratch);
                out.len()
            })
        });
    }
    g.finish();
}
