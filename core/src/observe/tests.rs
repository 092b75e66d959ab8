//! Tests across the observability pieces: ring and paging, label folding, redaction through every
//! sink, the Prometheus text (parsed back), the summary, the admin routes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

const T0: u64 = 1_764_000_000_000;

fn hub_with(f: impl FnOnce(&mut ObserveConfig)) -> ObserveHub {
    let mut c = ObserveConfig::default();
    f(&mut c);
    match ObserveHub::start(c) {
        Ok(h) => h,
        Err(e) => panic!("hub: {e}"),
    }
}

struct Ex<'a> {
    t: u64,
    api: &'a str,
    method: &'a str,
    target: Option<&'a str>,
    status: u16,
    error: Option<i64>,
    total_us: u64,
}

impl Default for Ex<'_> {
    fn default() -> Self {
        Ex {
            t: T0,
            api: "weather",
            method: "tools/call",
            target: Some("get_forecast"),
            status: 200,
            error: None,
            total_us: 1500,
        }
    }
}

fn record(obs: &mut WorkerObserver, ex: Ex<'_>) {
    let api = obs.label(ex.api);
    let method = obs.label(ex.method);
    let mut r = ExchangeRecord::new(ex.t, api, method, ExchangeKind::Request);
    r.target = ex.target.map(|t| obs.label(t));
    r.http_status = ex.status;
    r.jsonrpc_error = ex.error;
    r.total_us = ex.total_us;
    r.first_byte_us = ex.total_us / 2;
    r.client = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    obs.record(r);
}

fn get(hub: &ObserveHub, path: &str) -> (u16, String, String) {
    match handle_admin("GET", path, hub) {
        Some((status, ct, body)) => (
            status,
            ct.to_string(),
            String::from_utf8_lossy(&body).into_owned(),
        ),
        None => panic!("{path} not routed"),
    }
}

fn get_json(hub: &ObserveHub, path: &str) -> Value {
    let (status, ct, body) = get(hub, path);
    assert_eq!((status, ct.as_str()), (200, "application/json"), "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn ids(v: &Value) -> Vec<String> {
    v["records"].as_array().map_or_else(Vec::new, |a| {
        a.iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .collect()
    })
}

// ---- ring, paging, filters ----

#[test]
fn ring_keeps_the_newest_records_up_to_capacity() {
    let hub = hub_with(|c| c.ring_capacity = 8);
    let mut w = hub.worker();
    for i in 0..20 {
        record(
            &mut w,
            Ex {
                t: T0 + i,
                ..Default::default()
            },
        );
    }
    w.flush(T0 + 100);
    let v = get_json(&hub, "/api/logs?limit=1000");
    let times: Vec<u64> = v["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["time_ms"].as_u64())
        .collect();
    assert_eq!(times, (12..20).rev().map(|i| T0 + i).collect::<Vec<_>>());
}

#[test]
fn evicted_records_are_reused_only_when_nobody_holds_them() {
    let hub = hub_with(|c| {
        c.ring_capacity = 4;
        c.flush_batch = 2;
    });
    let mut w = hub.worker();
    let target = |i: u64| format!("tool_{i}");
    let mut held = Vec::new();
    for i in 0..40u64 {
        let t = target(i);
        record(
            &mut w,
            Ex {
                t: T0 + i,
                target: Some(&t),
                ..Default::default()
            },
        );
        if i % 7 == 0 {
            // A reader's copy (the admin API's, the sink's batch) outlives the ring's.
            w.flush(T0 + i);
            held.extend(hub.records(|_| true));
        }
    }
    w.flush(T0 + 100);
    // Every record ever handed out still says what it said then.
    for r in &held {
        let i = r.seq;
        assert_eq!(r.record.time_ms, T0 + i);
        assert_eq!(r.record.target.as_deref(), Some(target(i).as_str()));
    }
    // And the ring holds the newest four, intact, although most were written into reused records.
    let now: Vec<(u64, Option<String>)> = hub
        .records(|_| true)
        .iter()
        .map(|r| (r.seq, r.record.target.as_deref().map(str::to_owned)))
        .collect();
    let want: Vec<(u64, Option<String>)> = (36..40).map(|i| (i, Some(target(i)))).collect();
    assert_eq!(now, want);
}

#[test]
fn paging_walks_every_worker_newest_first_without_gaps_or_repeats() {
    let hub = hub_with(|_| {});
    let mut a = hub.worker();
    let mut b = hub.worker();
    for i in 0..25u64 {
        let w = if i % 3 == 0 { &mut b } else { &mut a };
        // Equal timestamps across workers exercise the tie-break in the cursor.
        record(
            w,
            Ex {
                t: T0 + i / 2,
                ..Default::default()
            },
        );
    }
    a.flush(T0 + 100);
    b.flush(T0 + 100);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/logs?limit=10&cursor={c}"),
            None => "/api/logs?limit=10".to_string(),
        };
        let v = get_json(&hub, &path);
        seen.extend(v["records"].as_array().into_iter().flatten().map(|r| {
            (
                r["time_ms"].as_u64().unwrap_or(0),
                r["id"].as_str().unwrap_or("").to_string(),
            )
        }));
        pages += 1;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    let mut unique: Vec<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 25);
    assert!(
        seen.windows(2).all(|p| p[0].0 >= p[1].0),
        "not newest first: {seen:?}"
    );
}

#[test]
fn log_filters_select_by_api_method_target_status_error_and_time() {
    let hub = hub_with(|_| {});
    let mut w = hub.worker();
    record(
        &mut w,
        Ex {
            t: T0,
            ..Default::default()
        },
    );
    record(
        &mut w,
        Ex {
            t: T0 + 1,
            api: "crm",
            target: Some("find_customer"),
            ..Default::default()
        },
    );
    record(
        &mut w,
        Ex {
            t: T0 + 2,
            method: "tools/list",
            target: None,
            ..Default::default()
        },
    );
    record(
        &mut w,
        Ex {
            t: T0 + 3,
            error: Some(-32602),
            ..Default::default()
        },
    );
    record(
        &mut w,
        Ex {
            t: T0 + 4,
            status: 502,
            target: Some("get_alerts"),
            ..Default::default()
        },
    );
    w.flush(T0 + 100);
    let count = |q: &str| ids(&get_json(&hub, &format!("/api/logs?{q}"))).len();
    assert_eq!(count(""), 5);
    assert_eq!(count("api=crm"), 1);
    assert_eq!(count("method=tools%2Flist"), 1);
    assert_eq!(count("target=alerts"), 1);
    assert_eq!(count("status=5xx"), 1);
    assert_eq!(count("status=200"), 4);
    assert_eq!(count("error=any"), 2);
    assert_eq!(count("error=-32602"), 1);
    assert_eq!(count("error=none"), 3);
    assert_eq!(count(&format!("since={}&until={}", T0 + 1, T0 + 3)), 3);
    assert_eq!(get(&hub, "/api/logs?since=yesterday").0, 400);
}

#[test]
fn a_reader_holding_the_lock_never_blocks_the_worker() {
    let hub = hub_with(|c| c.flush_batch = 1);
    let mut w = hub.worker();
    let shared = match hub.inner.workers.lock() {
        Ok(ws) => ws[0].clone(),
        Err(_) => panic!("poisoned"),
    };
    let held = match shared.published.lock() {
        Ok(g) => g,
        Err(_) => panic!("poisoned"),
    };
    // With the lock held elsewhere these would deadlock if recording waited on it.
    for i in 0..5 {
        record(
            &mut w,
            Ex {
                t: T0 + i,
                ..Default::default()
            },
        );
    }
    assert_eq!(held.ring.len(), 0);
    drop(held);
    w.flush(T0 + 10);
    assert_eq!(ids(&get_json(&hub, "/api/logs")).len(), 5);
}

#[test]
fn tick_publishes_an_idle_workers_last_records_only_when_due() {
    let hub = hub_with(|c| c.flush_interval_ms = 100);
    let mut w = hub.worker();
    record(
        &mut w,
        Ex {
            t: T0,
            ..Default::default()
        },
    ); // first record flushes (never flushed before)
    record(
        &mut w,
        Ex {
            t: T0 + 10,
            ..Default::default()
        },
    );
    assert_eq!(ids(&get_json(&hub, "/api/logs")).len(), 1);
    w.tick(T0 + 50);
    assert_eq!(ids(&get_json(&hub, "/api/logs")).len(), 1);
    w.tick(T0 + 150);
    assert_eq!(ids(&get_json(&hub, "/api/logs")).len(), 2);
}

// ---- Prometheus text ----

/// A small parser for the exposition format: checks every line's shape and returns
/// `series → value`, with label values unescaped, plus `name → type`.
fn parse_exposition(text: &str) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let mut series = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad TYPE: {line}"));
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "unexpected line {line:?}"
        );
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let eq = rest
                    .find("=\"")
                    .unwrap_or_else(|| panic!("bad label in {line}"));
                let key = &rest[..eq];
                let mut value = String::new();
                let mut chars = rest[eq + 2..].char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            other => panic!("bad escape {other:?} in {line}"),
                        },
                        Some((i, '"')) => break eq + 2 + i + 1,
                        Some((_, '\n')) | None => panic!("unterminated label in {line}"),
                        Some((_, c)) => value.push(c),
                    }
                };
                labels.push(format!("{key}={value:?}"));
                rest = &rest[end..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let value: f64 = rest
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", labels.join(","))
        };
        assert!(
            series.insert(key, value).is_none(),
            "duplicate series: {line}"
        );
    }
    (series, types)
}

fn metrics(hub: &ObserveHub) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let (status, ct, body) = get(hub, "/metrics");
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain; version=0.0.4"));
    parse_exposition(&body)
}

#[test]
fn metrics_count_requests_errors_denials_and_upstream_failures() {
    let hub = hub_with(|_| {});
    let mut w = hub.worker();
    let _conn = w.connection_opened();
    let sse = w.sse_stream_opened();
    for _ in 0..3 {
        record(&mut w, Ex::default());
    }
    record(
        &mut w,
        Ex {
            error: Some(-32602),
            ..Default::default()
        },
    );
    let api = w.label("weather");
    let method = w.label("tools/call");
    let mut denied = ExchangeRecord::new(T0, api.clone(), method.clone(), ExchangeKind::Request);
    denied.acl_decision = Some(AclDecision::Deny);
    denied.acl_rule = Some(w.label("read-only"));
    denied.jsonrpc_error = Some(-32602);
    w.record(denied);
    let mut implicit = ExchangeRecord::new(T0, api.clone(), method.clone(), ExchangeKind::Request);
    implicit.acl_decision = Some(AclDecision::Deny);
    w.record(implicit);
    // A dry-run ACL lets this one through: counted apart, and its exchange is not "denied".
    let mut would = ExchangeRecord::new(T0, api.clone(), method.clone(), ExchangeKind::Request);
    would.acl_decision = Some(AclDecision::WouldDeny);
    would.acl_rule = Some(w.label("read-only"));
    w.record(would);
    let mut timeout = ExchangeRecord::new(T0, api, method, ExchangeKind::Request);
    timeout.upstream_failure = Some(UpstreamFailure::Timeout);
    timeout.http_status = 504;
    w.record(timeout);
    record(
        &mut w,
        Ex {
            method: "vendor/custom",
            target: None,
            ..Default::default()
        },
    );
    w.flush(T0 + 100);

    let (m, types) = metrics(&hub);
    let v = |k: &str| m.get(k).copied().unwrap_or_else(|| panic!("missing {k}"));
    assert_eq!(
        v(
            r#"mcpgate_requests_total{api="weather",method="tools/call",target="get_forecast",outcome="ok"}"#
        ),
        3.0
    );
    assert_eq!(
        v(
            r#"mcpgate_requests_total{api="weather",method="tools/call",target="get_forecast",outcome="error"}"#
        ),
        1.0
    );
    assert_eq!(
        v(
            r#"mcpgate_requests_total{api="weather",method="tools/call",target="",outcome="denied"}"#
        ),
        2.0
    );
    assert_eq!(
        v(r#"mcpgate_requests_total{api="weather",method="other",target="",outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        v(r#"mcpgate_jsonrpc_errors_total{api="weather",code="-32602"}"#),
        2.0
    );
    assert_eq!(
        v(r#"mcpgate_acl_denials_total{api="weather",rule="read-only"}"#),
        1.0
    );
    assert_eq!(
        v(r#"mcpgate_acl_denials_total{api="weather",rule="implicit_deny"}"#),
        1.0
    );
    assert_eq!(
        v(r#"mcpgate_acl_would_deny_total{api="weather",rule="read-only"}"#),
        1.0
    );
    assert_eq!(
        v(r#"mcpgate_upstream_errors_total{api="weather",kind="timeout"}"#),
        1.0
    );
    assert_eq!(v("mcpgate_connections_active"), 1.0);
    assert_eq!(v("mcpgate_sse_streams_open"), 1.0);
    assert_eq!(v("mcpgate_log_records_dropped_total"), 0.0);
    assert_eq!(
        v(&format!(
            "mcpgate_build_info{{version={:?}}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert_eq!(
        types
            .get("mcpgate_request_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        types.get("mcpgate_requests_total").map(String::as_str),
        Some("counter")
    );
    drop(sse);
    let (m, _) = metrics(&hub);
    assert_eq!(m.get("mcpgate_sse_streams_open"), Some(&0.0));
}

#[test]
fn duration_histogram_buckets_are_cumulative_and_end_in_the_count() {
    let hub = hub_with(|_| {});
    let mut w = hub.worker();
    for us in [300, 800, 2_000, 40_000, 40_000, 3_000_000, 900_000_000] {
        record(
            &mut w,
            Ex {
                total_us: us,
                ..Default::default()
            },
        );
    }
    w.flush(T0 + 100);
    let (m, _) = metrics(&hub);
    let bucket = |le: &str| {
        m.get(&format!(
            r#"mcpgate_request_duration_seconds_bucket{{api="weather",method="tools/call",le="{le}"}}"#
        ))
        .copied()
        .unwrap_or_else(|| panic!("no bucket {le}"))
    };
    assert_eq!(bucket("0.0005"), 1.0);
    assert_eq!(bucket("0.001"), 2.0);
    assert_eq!(bucket("0.0025"), 3.0);
    assert_eq!(bucket("0.05"), 5.0);
    assert_eq!(bucket("5"), 6.0);
    assert_eq!(bucket("60"), 6.0);
    assert_eq!(bucket("+Inf"), 7.0);
    let mut last = 0.0;
    for le in metrics::DURATION_BUCKETS {
        let b = bucket(&le.to_string());
        assert!(b >= last);
        last = b;
    }
    let count =
        m.get(r#"mcpgate_request_duration_seconds_count{api="weather",method="tools/call"}"#);
    assert_eq!(count, Some(&7.0));
    let sum = m.get(r#"mcpgate_request_duration_seconds_sum{api="weather",method="tools/call"}"#);
    // The 900 s outlier is clamped to the histogram's 600 s ceiling.
    let expected = (300 + 800 + 2_000 + 80_000 + 3_000_000 + 600_000_000) as f64 / 1e6;
    assert!(
        sum.is_some_and(|s| (s - expected).abs() < 1e-6),
        "{sum:?} vs {expected}"
    );
}

#[test]
fn histograms_merge_across_workers() {
    let hub = hub_with(|_| {});
    let mut a = hub.worker();
    let mut b = hub.worker();
    record(
        &mut a,
        Ex {
            total_us: 1_000,
            ..Default::default()
        },
    );
    record(
        &mut b,
        Ex {
            total_us: 1_000,
            ..Default::default()
        },
    );
    record(
        &mut b,
        Ex {
            total_us: 20_000,
            ..Default::default()
        },
    );
    a.flush(T0 + 100);
    b.flush(T0 + 100);
    let (m, _) = metrics(&hub);
    assert_eq!(
        m.get(r#"mcpgate_request_duration_seconds_count{api="weather",method="tools/call"}"#),
        Some(&3.0)
    );
    assert_eq!(
        m.get(r#"mcpgate_request_duration_seconds_bucket{api="weather",method="tools/call",le="0.01"}"#),
        Some(&2.0)
    );
}

#[test]
fn label_values_are_escaped() {
    let hub = hub_with(|_| {});
    let mut w = hub.worker();
    record(
        &mut w,
        Ex {
            api: "we\"ird\\api\nname",
            target: Some("t\"1"),
            ..Default::default()
        },
    );
    w.flush(T0 + 100);
    let (status, _, body) = get(&hub, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains(r#"api="we\"ird\\api\nname""#), "{body}");
    let (m, _) = parse_exposition(&body);
    let key = format!(
        "mcpgate_requests_total{{api={:?},method=\"tools/call\",target={:?},outcome=\"ok\"}}",
        "we\"ird\\api\nname", "t\"1"
    );
    assert_eq!(m.get(&key), Some(&1.0), "{m:?}");
}

// ---- label folding ----

#[test]
fn targets_past_the_label_budget_fold_into_other_and_stay_there() {
    let hub = hub_with(|c| c.target_labels_per_api = 3);
    let mut w = hub.worker();
    for (name, n) in [("a", 5), ("b", 4), ("c", 3), ("d", 2), ("e", 1)] {
        for _ in 0..n {
            record(
                &mut w,
                Ex {
                    target: Some(name),
                    ..Default::default()
                },
            );
        }
    }
    w.flush(T0 + 100);
    let key = |t: &str| {
        format!(
            r#"mcpgate_requests_total{{api="weather",method="tools/call",target="{t}",outcome="ok"}}"#
        )
    };
    let (m, _) = metrics(&hub);
    assert_eq!(m.get(&key("a")), Some(&5.0));
    assert_eq!(m.get(&key("c")), Some(&3.0));
    assert_eq!(m.get(&key("d")), None);
    assert_eq!(m.get(&key("other")), Some(&3.0));
    // A folded target that becomes the busiest stays folded, so `other` never goes down.
    for _ in 0..50 {
        record(
            &mut w,
            Ex {
                target: Some("e"),
                ..Default::default()
            },
        );
    }
    w.flush(T0 + 200);
    let (m, _) = metrics(&hub);
    assert_eq!(m.get(&key("e")), None);
    assert_eq!(m.get(&key("other")), Some(&53.0));
    // The console still sees the real names.
    let s = get_json(&hub, "/api/summary");
    assert_eq!(s["apis"][0]["top"]["tools"][0]["name"], "e");
}

#[test]
fn allow_list_decides_which_targets_get_labels() {
    let hub = hub_with(|c| {
        c.target_allow_list
            .insert("weather".into(), vec!["b".into()]);
    });
    let mut w = hub.worker();
    record(
        &mut w,
        Ex {
            target: Some("a"),
            ..Default::default()
        },
    );
    record(
        &mut w,
        Ex {
            target: Some("b"),
            ..Default::default()
        },
    );
    w.flush(T0 + 100);
    let (m, _) = metrics(&hub);
    let key = |t: &str| {
        format!(
            r#"mcpgate_requests_total{{api="weather",method="tools/call",target="{t}",outcome="ok"}}"#
        )
    };
    assert_eq!(m.get(&key("b")), Some(&1.0));
    assert_eq!(m.get(&key("a")), None);
    assert_eq!(m.get(&key("other")), Some(&1.0));
}

#[test]
fn a_worker_bounds_the_targets_it_tracks() {
    let hub = hub_with(|c| c.targets_tracked_per_worker = 4);
    let mut w = hub.worker();
    for i in 0..100 {
        record(
            &mut w,
            Ex {
                target: Some(&format!("tool{i}")),
                ..Default::default()
            },
        );
    }
    w.flush(T0 + 100);
    let merged = hub.merged();
    assert_eq!(merged.tallies.requests.len(), 5); // 4 names + other
    let (m, _) = metrics(&hub);
    assert_eq!(
        m.get(r#"mcpgate_requests_total{api="weather",method="tools/call",target="other",outcome="ok"}"#),
        Some(&96.0)
    );
}

// ---- redaction through every sink ----

const BEARER: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2VjcmV0LXNpZ25hdHVyZQ";
const OPAQUE: &str = "opaque-credential-6c0ffee42";
const SESSION: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90-session";

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_bearer_token_reaches_no_sink() {
    let dir = std::env::temp_dir().join(format!("mcpgate-observe-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("exchanges.jsonl");
    let _ = std::fs::remove_file(&path);
    let hub = hub_with(|c| c.sink = SinkTarget::File(path.clone()));
    let mut w = hub.worker();

    let auth = format!("Bearer {BEARER}");
    let secrets: [&[u8]; 2] = [BEARER.as_bytes(), SESSION.as_bytes()];
    let request_body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"login","arguments":
        {{"password":"{OPAQUE}","note":"use {auth}","session":"{SESSION}"}}}}}}"#
    );
    let response_body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"result":{{"access_token":"{OPAQUE}","echo":"{BEARER}"}}}}"#
    );
    let policy = CapturePolicy {
        enabled: true,
        max_bytes: 64 * 1024,
    };
    let capture = Capture {
        request_headers: Some(w.redactor().headers(
            [
                ("Authorization", auth.as_bytes()),
                ("Mcp-Session-Id", SESSION.as_bytes()),
                ("Cookie", format!("at={OPAQUE}").as_bytes()),
                ("User-Agent", b"test-client/1.0".as_slice()),
            ],
            &secrets,
        )),
        request_body: Some(
            w.redactor()
                .body(request_body.as_bytes(), policy.max_bytes, &secrets),
        ),
        response_headers: Some(w.redactor().headers(
            [("Set-Cookie", format!("at={OPAQUE}; HttpOnly").as_bytes())],
            &secrets,
        )),
        response_body: Some(w.redactor().body(
            response_body.as_bytes(),
            policy.max_bytes,
            &secrets,
        )),
    };
    let api = w.label("weather");
    let method = w.label("tools/call");
    let mut r = ExchangeRecord::new(T0, api, method, ExchangeKind::Request);
    r.session = Some(SessionTag::from_secret(SESSION.as_bytes()));
    r.subject = Some(w.label("alice"));
    r.target = Some(w.label("login"));
    r.http_status = 200;
    r.capture = Some(Box::new(capture));
    w.record(r);
    w.flush(T0 + 100);

    let list = get(&hub, "/api/logs").2;
    let list_json: Value = serde_json::from_str(&list).unwrap_or_default();
    let id = list_json["records"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _, detail) = get(&hub, &format!("/api/logs/{id}"));
    assert_eq!(status, 200);
    // The capture is there (so this test could fail), with ordinary content intact.
    assert!(
        detail.contains("test-client/1.0") && detail.contains("\"login\""),
        "{detail}"
    );
    let metrics_text = get(&hub, "/metrics").2;
    let summary_text = get(&hub, "/api/summary").2;
    wait_for("the sink to write the record", || {
        hub.log_records_written() >= 1
    });
    hub.shutdown();
    let lines = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(lines.contains("test-client/1.0"), "{lines}");
    assert_eq!(lines.lines().count(), 1);

    for (sink, text) in [
        ("ring list", &list),
        ("ring detail", &detail),
        ("json lines", &lines),
        ("metrics", &metrics_text),
        ("summary", &summary_text),
    ] {
        for secret in [BEARER, OPAQUE, SESSION, "c2VjcmV0LXNpZ25hdHVyZQ"] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {sink}: {text}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sink_reopens_its_file_after_rotation() {
    let dir = std::env::temp_dir().join(format!("mcpgate-observe-rotate-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("x.jsonl");
    let rotated = dir.join("x.jsonl.1");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&rotated);
    let hub = hub_with(|c| c.sink = SinkTarget::File(path.clone()));
    let mut w = hub.worker();
    record(&mut w, Ex::default());
    w.flush(T0 + 100);
    wait_for("first write", || hub.log_records_written() >= 1);
    if let Err(e) = std::fs::rename(&path, &rotated) {
        panic!("rename: {e}");
    }
    hub.reopen_log();
    wait_for("the reopened file", || path.exists());
    record(
        &mut w,
        Ex {
            t: T0 + 200,
            ..Default::default()
        },
    );
    w.flush(T0 + 300);
    wait_for("second write", || hub.log_records_written() >= 2);
    hub.shutdown();
    let count = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!((count(&rotated), count(&path)), (1, 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_sink_queue_drops_and_counts_instead_of_blocking() {
    let hub = hub_with(|c| {
        c.sink = SinkTarget::Stdout;
        c.sink_queue_batches = 1;
        c.flush_batch = 1;
    });
    let mut w = hub.worker();
    // Holding stdout's lock stalls the writer thread at its first write, so the one-batch queue
    // fills; recording must go on regardless, dropping and counting.
    let stdout = std::io::stdout();
    let stall = stdout.lock();
    let started = Instant::now();
    for i in 0..2000 {
        record(
            &mut w,
            Ex {
                t: T0 + i,
                target: None,
                ..Default::default()
            },
        );
    }
    w.flush(T0 + 5000);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "recording waited on the sink"
    );
    assert!(
        hub.log_records_dropped() >= 1900,
        "dropped {}",
        hub.log_records_dropped()
    );
    drop(stall);
    hub.shutdown();
    assert_eq!(hub.log_records_written() + hub.log_records_dropped(), 2000);
    let (m, _) = metrics(&hub);
    assert_eq!(
        m.get("mcpgate_log_records_dropped_total"),
        Some(&(hub.log_records_dropped() as f64))
    );
}

// ---- summary and routes ----

#[test]
fn summary_has_series_top_targets_errors_and_percentiles() {
    let hub = hub_with(|_| {});
    let mut w = hub.worker();
    let now = T0 + 600_000;
    // Three buckets ago: 3 calls; last bucket: 5 calls, one an error.
    for _ in 0..3 {
        record(
            &mut w,
            Ex {
                t: now - 30_000,
                total_us: 1_000,
                ..Default::default()
            },
        );
    }
    record(
        &mut w,
        Ex {
            t: now,
            target: Some("get_alerts"),
            total_us: 2_000,
            ..Default::default()
        },
    );
    record(
        &mut w,
        Ex {
            t: now,
            target: Some("get_alerts"),
            total_us: 3_000,
            ..Default::default()
        },
    );
    record(
        &mut w,
        Ex {
            t: now,
            target: Some("get_alerts"),
            error: Some(-32603),
            total_us: 100_000,
            ..Default::default()
        },
    );
    record(
        &mut w,
        Ex {
            t: now,
            method: "resources/read",
            target: Some("file:///a.txt"),
            ..Default::default()
        },
    );
    record(
        &mut w,
        Ex {
            t: now,
            method: "prompts/get",
            target: Some("review"),
            ..Default::default()
        },
    );
    // Older than the 15-minute window: counted in totals, absent from the series.
    record(
        &mut w,
        Ex {
            t: now - 1_000_000,
            ..Default::default()
        },
    );
    w.flush(now);
    let s = summary_for(&hub, now);
    assert_eq!(s["apis"].as_array().map(Vec::len), Some(1));
    let a = &s["apis"][0];
    assert_eq!(a["api"], "weather");
    assert_eq!(a["requests"], 9);
    assert_eq!(a["errors"], 1);
    let series = a["series"].as_array().cloned().unwrap_or_default();
    assert_eq!(series.len(), 90);
    assert_eq!(series[89]["requests"], 5);
    assert_eq!(series[89]["errors"], 1);
    assert_eq!(series[86]["requests"], 3);
    let in_window: u64 = series.iter().filter_map(|p| p["requests"].as_u64()).sum();
    assert_eq!(in_window, 8);
    assert_eq!(a["top"]["tools"][0]["name"], "get_forecast");
    assert_eq!(a["top"]["tools"][0]["count"], 4);
    assert_eq!(a["top"]["tools"][1]["name"], "get_alerts");
    assert_eq!(a["top"]["tools"][1]["errors"], 1);
    assert_eq!(a["top"]["resources"][0]["name"], "file:///a.txt");
    assert_eq!(a["top"]["prompts"][0]["name"], "review");
    assert_eq!(a["errors_by_code"][0]["name"], "-32603");
    assert_eq!(a["errors_by_target"][0]["name"], "get_alerts");
    assert_eq!(a["methods"][0]["name"], "tools/call");
    assert_eq!(a["methods"][0]["count"], 7);
    let p50 = a["latency"]["p50_ms"].as_f64().unwrap_or(-1.0);
    let p99 = a["latency"]["p99_ms"].as_f64().unwrap_or(-1.0);
    assert!((0.9..=1.6).contains(&p50), "p50 {p50}");
    assert!((99.0..=101.0).contains(&p99), "p99 {p99}");
}

fn summary_for(hub: &ObserveHub, now: u64) -> Value {
    admin::summary(hub, now)
}

#[test]
fn admin_routes_answer_their_paths_only() {
    let hub = hub_with(|_| {});
    assert!(handle_admin("GET", "/healthz", &hub).is_none());
    assert!(handle_admin("GET", "/api/other", &hub).is_none());
    assert_eq!(
        handle_admin("POST", "/metrics", &hub).map(|r| r.0),
        Some(405)
    );
    let (status, ct, body) = get(&hub, "/");
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains("console.js"));
    assert_eq!(get(&hub, "/console.js").0, 200);
    assert_eq!(get(&hub, "/console.css").0, 200);
    assert_eq!(get(&hub, "/api/logs/9.9").0, 404);
    assert_eq!(get(&hub, "/api/logs/nonsense").0, 404);
    assert_eq!(get(&hub, "/api/logs?cursor=1.2").0, 400);
    let empty = get_json(&hub, "/api/summary");
    assert_eq!(empty["apis"].as_array().map(Vec::len), Some(0));
}

#[test]
fn session_tags_are_stable_and_do_not_contain_the_id() {
    let a = SessionTag::from_secret(SESSION.as_bytes());
    assert_eq!(a, SessionTag::from_secret(SESSION.as_bytes()));
    assert_ne!(a, SessionTag::from_secret(b"another-session"));
    assert_eq!(a.to_string().len(), 16);
    assert!(!SESSION.contains(&a.to_string()));
}

#[test]
fn percent_decoding_handles_plus_escapes_and_garbage() {
    assert_eq!(
        admin::percent_decode("tools%2Fcall+x%zz%4"),
        "tools/call x%zz%4"
    );
    assert_eq!(admin::percent_decode("%E2%9C%93"), "✓");
}

#[test]
fn the_sink_writer_produces_the_same_document_as_serde() {
    let hub = hub_with(|_| {});
    let mut w = hub.worker();
    let mut full = ExchangeRecord::new(
        T0,
        w.label("we\"ird\\api\n"),
        w.label("tools/call"),
        ExchangeKind::ServerRequest,
    );
    full.session = Some(SessionTag::from_secret(b"s"));
    full.subject = Some(w.label("ünïcødé \u{1}"));
    full.client_cert = Some(w.label("spiffe://acme/alice"));
    full.client = Some(
        "2001:db8::1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    );
    full.target = Some(w.label("file:///a b.txt"));
    full.acl_decision = Some(AclDecision::Allow);
    full.acl_rule = Some(w.label("r1"));
    full.http_status = 200;
    full.jsonrpc_error = Some(-32_000);
    full.request_bytes = u64::MAX;
    full.total_us = 0;
    full.upstream = Some(w.label("http://u:1/mcp"));
    full.upstream_failure = Some(UpstreamFailure::Reset);
    full.capture = Some(Box::new(Capture {
        request_body: Some(w.redactor().body(br#"{"a":"b"}"#, 100, &[])),
        ..Capture::default()
    }));
    let mut v4 = ExchangeRecord::new(
        T0 + 1,
        w.label("api"),
        w.label("ping"),
        ExchangeKind::Notification,
    );
    v4.client = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 255, 7)));
    v4.jsonrpc_error = Some(7);
    let bare = ExchangeRecord::new(0, w.label(""), w.label(""), ExchangeKind::Request);
    for (seq, record) in [full, v4, bare].into_iter().enumerate() {
        let stored = record::StoredRecord {
            worker: 3,
            seq: seq as u64 * 1_000_003,
            record,
        };
        let mut mine = Vec::new();
        stored.write_json(&mut mine);
        let mine: Value = serde_json::from_slice(&mine)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&mine)));
        let serde: Value = serde_json::to_value(stored.full()).unwrap_or_default();
        assert_eq!(mine, serde);
    }
}

#[test]
fn a_recorder_moves_to_its_thread_and_publishes_when_dropped() {
    fn assert_send<T: Send>(_: &T) {}
    let hub = hub_with(|c| c.flush_interval_ms = 60_000);
    let mut w = hub.worker();
    assert_send(&w);
    record(&mut w, Ex::default()); // the first record publishes
    let handle = std::thread::spawn(move || {
        record(
            &mut w,
            Ex {
                t: T0 + 1,
                ..Default::default()
            },
        );
        record(
            &mut w,
            Ex {
                t: T0 + 2,
                ..Default::default()
            },
        );
    });
    assert!(handle.join().is_ok());
    assert_eq!(ids(&get_json(&hub, "/api/logs")).len(), 3);
}

#[test]
fn labels_compare_hash_and_look_up_by_text_whatever_they_are_made_of() {
    use std::collections::HashMap;
    let shared = Label::from("tools/call");
    let leaked = Label::leak("tools/call");
    let fixed = Label::from_static("tools/call");
    assert!(shared == leaked && leaked == fixed);
    let mut map: HashMap<Label, u32, ahash::RandomState> = HashMap::default();
    map.insert(shared, 1);
    *map.entry(leaked).or_default() += 1;
    *map.entry(fixed).or_default() += 1;
    assert_eq!(map.get("tools/call"), Some(&3));
    assert_eq!(map.len(), 1);
    let mut sorted = [Label::from("b"), Label::leak("a"), Label::from_static("c")];
    sorted.sort();
    assert_eq!(
        sorted.iter().map(Label::as_str).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(format!("{} {:?}", sorted[0], sorted[1]), "a \"b\"");
}
