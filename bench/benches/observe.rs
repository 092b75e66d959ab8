//! Criterion bench of exchange recording: what `WorkerObserver::record` costs per call-sse exchange
//! (the client's `tools/call` and the server's progress notification), in steady state (the ring
//! full and evicting, flushes every 100 ms of record time). `cargo bench -p mcpgate-bench --bench
//! observe`.

use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use mcpgate_core::observe::{ExchangeKind, ExchangeRecord, ObserveConfig, ObserveHub, SessionTag};

fn record_call_sse(c: &mut Criterion) {
    let hub = match ObserveHub::start(ObserveConfig::default()) {
        Ok(h) => h,
        Err(e) => panic!("observe hub: {e}"),
    };
    let mut w = hub.worker();
    let api = w.label("bench");
    let upstream = w.label("http://127.0.0.1:3001/mcp");
    let call = w.label("tools/call");
    let progress = w.label("notifications/progress");
    let tool = w.target_label("get_weather");
    let session = SessionTag::from_secret(b"session-1");
    let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut time_ms = 1_764_000_000_000u64;
    let mut n = 0u64;
    c.bench_function("observe_record_call_sse", |b| {
        b.iter(|| {
            // ~20,000 exchanges/s of record time: a flush every ~2,000.
            n += 1;
            if n % 20 == 0 {
                time_ms += 1;
            }
            let mut r =
                ExchangeRecord::new(time_ms, api.clone(), call.clone(), ExchangeKind::Request);
            r.target = Some(tool.clone());
            r.session = Some(session);
            r.client = Some(client);
            r.http_status = 200;
            r.upstream = Some(upstream.clone());
            r.request_bytes = 420;
            r.response_bytes = 610;
            r.first_byte_us = 180;
            r.total_us = 240;
            w.record(r);
            let mut p = ExchangeRecord::new(
                time_ms,
                api.clone(),
                progress.clone(),
                ExchangeKind::ServerNotification,
            );
            p.session = Some(session);
            p.client = Some(client);
            p.upstream = Some(upstream.clone());
            p.response_bytes = 130;
            w.record(p);
        })
    });
}

criterion_group!(observe, record_call_sse);
criterion_main!(observe);
