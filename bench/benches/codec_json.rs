//! SSE, JSON-RPC classification and list-filter benches. Groups `json_rpc`, `json_envelope`,
//! `json_filter`, `json_sse`: `-- json` selects them all, `-- sse`, `-- envelope` or `-- filter` one
//! group.

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use mcpgate_codec::envelope;
use mcpgate_codec::filter::{ListFilter, ListKind};
use mcpgate_codec::jsonrpc::Classifier;
use mcpgate_codec::sse::SseParser;

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
}
