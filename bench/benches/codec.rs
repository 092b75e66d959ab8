//! Criterion benches of the codec hot path: `cargo bench -p mcpgate-bench --bench codec`.
//! HTTP cases live in `codec_http.rs`, SSE / JSON-RPC / filter cases in `codec_json.rs`.

use criterion::{criterion_group, criterion_main};

#[path = "codec_http.rs"]
mod codec_http;
#[path = "codec_json.rs"]
mod codec_json;

criterion_group!(http, codec_http::benches);
criterion_group!(json, codec_json::benches);
criterion_main!(http, json);
