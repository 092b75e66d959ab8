//! Rate limits and quotas end to end (issue 16): exact counts under concurrency on one gateway
//! (two workers, many connections) and across two gateways behind HAProxy sharing one Redis;
//! Redis stopped mid-test (each rule's fail mode) and restarted (limits resume without a gateway
//! restart); a call the ACL refuses is not counted; HTTP-level rules answer 429; the answers'
//! headers and JSON-RPC error; the exchange log's `throttled` outcome; the `--limit` flag and the
//! official TypeScript SDK seeing the retry hint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpgate_tests::http::{build_request, exchange, post_mcp, RawResponse};
use mcpgate_tests::net::CapturingUpstream;
use mcpgate_tests::peers::run_client_with_env;
use mcpgate_tests::stores::{HaProxy, RedisServer};
use mcpgate_tests::{Gateway, GatewaySpec, Sdk, ServerEverything};
use serde_json::Value;

const API: &str = "/mcp";
const RESULT: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}";

fn upstream() -> CapturingUpstream {
    CapturingUpstream::start(RESULT)
}

fn config(upstream: SocketAddr, extra_gateway: &str, rules: &str) -> String {
    format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n{extra_gateway}\n\
         [[api]]\nname = \"limited\"\npath = \"{API}\"\nupstream = \"http://{upstream}/mcp\"\n{rules}\n"
    )
}

fn call(tool: &str, id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

/// What one answer was: forwarded (the upstream's result), throttled (-32029), or else.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Forwarded,
    Throttled { retry_after_ms: u64 },
    Other(u16, String),
}

fn classify(r: &RawResponse) -> Seen {
    let json = r.json().unwrap_or(Value::Null);
    if r.status == 200 && json.get("result").is_some() {
        return Seen::Forwarded;
    }
    if r.status == 200 && json["error"]["code"] == -32029 {
        let retry = json["error"]["data"]["retryAfterMs"].as_u64().unwrap_or(0);
        assert!(retry > 0, "no retry hint: {json}");
        let header: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("throttled without Retry-After: {r:?}"));
        assert_eq!(header, retry.div_ceil(1000).max(1), "{r:?}");
        return Seen::Throttled {
            retry_after_ms: retry,
        };
    }
    Seen::Other(r.status, r.body_text())
}

fn post(addr: SocketAddr, body: &str) -> RawResponse {
    post_mcp(addr, API, &[], body).unwrap_or_else(|e| panic!("{e}"))
}

/// `threads` clients each sending `per_thread` calls, each on its own connection.
fn hammer(addr: SocketAddr, threads: usize, per_thread: usize, tool: &str) -> Vec<RawResponse> {
    let tool: Arc<str> = tool.into();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let tool = Arc::clone(&tool);
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| post(addr, &call(&tool, (t * 1000 + i) as u64)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| {
            h.join()
                .unwrap_or_else(|_| panic!("a client thread panicked"))
        })
        .collect()
}

fn count(responses: &[RawResponse]) -> (usize, usize) {
    let mut forwarded = 0;
    let mut throttled = 0;
    for r in responses {
        match classify(r) {
            Seen::Forwarded => forwarded += 1,
            Seen::Throttled { .. } => throttled += 1,
            Seen::Other(status, body) => panic!("unexpected answer {status}: {body}"),
        }
    }
    (forwarded, throttled)
}

fn metrics(admin: SocketAddr) -> String {
    let request = build_request("GET", "/metrics", &admin.to_string(), &[], b"");
    exchange(admin, &request, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"))
        .body_text()
}

/// The value of the sample whose line starts with `series` (0 when absent).
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

fn tools_calls(upstream: &CapturingUpstream) -> usize {
    upstream
        .wait_for(0, Duration::ZERO)
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("tools/call"))
        .count()
}

#[test]
fn node_rule_is_exact_across_workers_and_connections() {
    let up = upstream();
    let gateway = Gateway::start(&GatewaySpec::config(config(
        up.addr(),
        "",
        "[[api.limit]]\nname = \"calls\"\nmethods = [\"tools/call\"]\nkey = \"global\"\nrate = \"10/1h\"\n",
    )));
    let responses = hammer(gateway.addr(), 8, 6, "echo");
    let (forwarded, throttled) = count(&responses);
    assert_eq!((forwarded, throttled), (10, 38));
    // A refused call never reached the upstream.
    assert_eq!(tools_calls(&up), 10);
    for r in &responses {
        assert_eq!(
            r.header("ratelimit-policy"),
            Some("\"calls\";q=10;w=3600"),
            "{r:?}"
        );
        let limit = r.header("ratelimit").unwrap_or_default();
        assert!(limit.starts_with("\"calls\";r="), "{limit}");
    }
    let text = metrics(gateway.admin_addr());
    let labels = "api=\"limited\",rule=\"calls\"";
    assert_eq!(
        metric(
            &text,
            &format!("mcpgate_ratelimit_decisions_total{{{labels},decision=\"allowed\"}}")
        ),
        10,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &format!("mcpgate_ratelimit_decisions_total{{{labels},decision=\"refused\"}}")
        ),
        38
    );
    assert_eq!(
        metric(&text, &format!("mcpgate_ratelimit_keys{{{labels}}}")),
        1
    );
    // The exchange log: each refused call is recorded `throttled` with its rule.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = build_request(
            "GET",
            "/api/logs?error=-32029&limit=200",
            &gateway.admin_addr().to_string(),
            &[],
            b"",
        );
        let logs = exchange(gateway.admin_addr(), &request, Duration::from_secs(10))
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        let records = logs["records"].as_array().cloned().unwrap_or_default();
        let throttled: Vec<_> = records
            .iter()
            .filter(|r| r["outcome"] == "throttled" && r["limit_rule"] == "calls")
            .collect();
        if throttled.len() == 38 {
            assert!(records.iter().all(|r| r["method"] == "tools/call"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} throttled records after 10 s: {logs}",
            throttled.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_call_the_acl_refuses_is_not_counted_and_names_select() {
    let up = upstream();
    let acl = r#"[api.acl]
[[api.acl.rule]]
methods = ["tools/call"]
names = ["echo", "add"]
"#;
    let rules = "[[api.limit]]\nname = \"echo-calls\"\nmethods = [\"tools/call\"]\nnames = [\"echo\"]\nkey = \"client_ip\"\nrate = \"2/1h\"\n";
    let gateway = Gateway::start(&GatewaySpec::config(config(
        up.addr(),
        "",
        &format!("{acl}{rules}"),
    )));
    let addr = gateway.addr();
    for i in 0..5 {
        let r = post(addr, &call("hidden", i));
        assert_eq!(
            r.json().unwrap_or(Value::Null)["error"]["code"],
            -32602,
            "{r:?}"
        );
        assert!(
            r.header("ratelimit").is_none(),
            "an ACL refusal counts nothing"
        );
    }
    // `add` is not selected by the rule: never limited.
    for i in 0..4 {
        assert_eq!(classify(&post(addr, &call("add", i))), Seen::Forwarded);
    }
    assert_eq!(classify(&post(addr, &call("echo", 10))), Seen::Forwarded);
    assert_eq!(classify(&post(addr, &call("echo", 11))), Seen::Forwarded);
    assert!(matches!(
        classify(&post(addr, &call("echo", 12))),
        Seen::Throttled { .. }
    ));
    assert_eq!(tools_calls(&up), 6);
}

#[test]
fn http_level_rules_answer_429_before_the_body_is_read() {
    let up = upstream();
    let gateway = Gateway::start(&GatewaySpec::config(config(
        up.addr(),
        "",
        "[[api.limit]]\nname = \"per-ip\"\nkey = \"client_ip\"\nrate = \"3/1h\"\n",
    )));
    let addr = gateway.addr();
    for i in 0..3 {
        assert_eq!(classify(&post(addr, &call("echo", i))), Seen::Forwarded);
    }
    let get = build_request(
        "GET",
        API,
        &addr.to_string(),
        &[("Accept", "text/event-stream")],
        b"",
    );
    let refused = exchange(addr, &get, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status, 429, "{refused:?}");
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // One unit comes back every 1200 s; the test's own slowness may have used a few of them.
    assert!((1100..=1200).contains(&retry), "{refused:?}");
    assert_eq!(
        refused.header("ratelimit"),
        Some(format!("\"per-ip\";r=0;t={retry}").as_str()),
        "{refused:?}"
    );
    let body = refused.json().unwrap_or(Value::Null);
    assert_eq!(body["error"]["code"], -32029, "{body}");
    assert_eq!(body["error"]["data"]["rule"], "per-ip");
    let post_refused = post(addr, &call("echo", 9));
    assert_eq!(post_refused.status, 429);
    assert_eq!(up.count(), 3);
}

#[test]
fn a_quota_counts_per_key_and_says_when_it_resets() {
    let up = upstream();
    let gateway = Gateway::start(&GatewaySpec::config(config(
        up.addr(),
        "",
        "[[api.limit]]\nname = \"daily\"\nmethods = [\"*\"]\nkey = \"header:x-tenant\"\nquota = \"2/day\"\n",
    )));
    let addr = gateway.addr();
    let as_tenant = |tenant: &str, id: u64| {
        post_mcp(addr, API, &[("X-Tenant", tenant)], &call("echo", id))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(classify(&as_tenant("a", 1)), Seen::Forwarded);
    assert_eq!(classify(&as_tenant("a", 2)), Seen::Forwarded);
    let Seen::Throttled { retry_after_ms } = classify(&as_tenant("a", 3)) else {
        panic!("the third call of tenant a passed");
    };
    assert!(retry_after_ms <= 86_400_000);
    // Another tenant has its own quota.
    let b = as_tenant("b", 4);
    assert_eq!(classify(&b), Seen::Forwarded);
    assert_eq!(b.header("ratelimit-policy"), Some("\"daily\";q=2;w=86400"));
    assert!(b
        .header("ratelimit")
        .unwrap_or_default()
        .starts_with("\"daily\";r=1;t="));
}

fn cluster_rules(redis: SocketAddr) -> (String, String) {
    (
        format!("[gateway.redis]\naddress = \"{redis}\"\ntimeout = \"500ms\"\n"),
        "[[api.limit]]\nname = \"shared\"\nmethods = [\"tools/call\"]\nkey = \"global\"\nrate = \"15/1h\"\nscope = \"cluster\"\n".to_string(),
    )
}

#[test]
fn cluster_rule_is_exact_across_two_gateways_behind_haproxy() {
    let redis = RedisServer::start();
    let up = upstream();
    let (gateway_part, rules) = cluster_rules(redis.addr());
    let spec = GatewaySpec::config(config(up.addr(), &gateway_part, &rules));
    let first = Gateway::start(&spec);
    let second = Gateway::start(&spec);
    let balancer = HaProxy::start(&[first.addr(), second.addr()]);
    let responses = hammer(balancer.addr(), 6, 8, "echo");
    let (forwarded, throttled) = count(&responses);
    assert_eq!((forwarded, throttled), (15, 33));
    assert_eq!(tools_calls(&up), 15);
    // Both gateways decided some of them: the budget really was shared.
    let labels = "api=\"limited\",rule=\"shared\"";
    for gateway in [&first, &second] {
        let text = metrics(gateway.admin_addr());
        let decided = metric(
            &text,
            &format!("mcpgate_ratelimit_decisions_total{{{labels},decision=\"allowed\"}}"),
        ) + metric(
            &text,
            &format!("mcpgate_ratelimit_decisions_total{{{labels},decision=\"refused\"}}"),
        );
        assert!(decided > 0, "a gateway decided nothing:\n{text}");
        assert_eq!(
            metric(
                &text,
                &format!("mcpgate_ratelimit_store_errors_total{{{labels}}}")
            ),
            0
        );
        assert!(metric(&text, "mcpgate_ratelimit_redis_calls_total") > 0);
    }
}

#[test]
fn redis_down_applies_each_fail_mode_and_limits_resume_when_it_is_back() {
    let mut redis = RedisServer::start();
    let up = upstream();
    let rules = "[[api.limit]]\nname = \"open\"\nmethods = [\"tools/call\"]\nnames = [\"echo\"]\nkey = \"global\"\nrate = \"3/1h\"\nscope = \"cluster\"\non_redis_error = \"open\"\n\
                 [[api.limit]]\nname = \"closed\"\nmethods = [\"tools/call\"]\nnames = [\"add\"]\nkey = \"global\"\nrate = \"3/1h\"\nscope = \"cluster\"\non_redis_error = \"closed\"\n";
    let gateway_part = format!(
        "[gateway.redis]\naddress = \"{}\"\ntimeout = \"300ms\"\n",
        redis.addr()
    );
    // One worker: its connection count tells when it is back (with several, each reconnects
    // on its own backoff, and a request on one still waiting would meet its fail mode).
    let gateway = Gateway::start(&GatewaySpec::config(
        config(up.addr(), &gateway_part, rules).replace("workers = 2", "workers = 1"),
    ));
    let addr = gateway.addr();
    let seen = |tool: &str, n: usize| -> Vec<Seen> {
        (0..n)
            .map(|i| classify(&post(addr, &call(tool, i as u64))))
            .collect()
    };
    let throttled = |s: &Seen| matches!(s, Seen::Throttled { .. });
    // Enforced while Redis is up.
    let echo = seen("echo", 4);
    assert_eq!(
        &echo[..3],
        &[Seen::Forwarded, Seen::Forwarded, Seen::Forwarded]
    );
    assert!(throttled(&echo[3]), "{echo:?}");

    // Each worker that decided a cluster rule holds one connection to Redis.
    let connected = metric(
        &metrics(gateway.admin_addr()),
        "mcpgate_ratelimit_redis_connects_total",
    );
    assert!(connected >= 1);
    redis.stop();
    // Fail open: allowed (and forwarded); fail closed: refused, never forwarded.
    let before = tools_calls(&up);
    assert!(seen("echo", 5).iter().all(|s| *s == Seen::Forwarded));
    let closed = seen("add", 3);
    assert!(closed.iter().all(throttled), "{closed:?}");
    assert_eq!(tools_calls(&up), before + 5);
    let text = metrics(gateway.admin_addr());
    assert!(
        metric(
            &text,
            "mcpgate_ratelimit_store_errors_total{api=\"limited\",rule=\"open\"}"
        ) >= 5,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "mcpgate_ratelimit_store_errors_total{api=\"limited\",rule=\"closed\"}"
        ) >= 3,
        "{text}"
    );
    assert!(
        gateway.output().contains("Redis"),
        "no log line:\n{}",
        gateway.output()
    );

    redis.restart();
    // No gateway restart, and no request needed: every worker that had a connection reconnects
    // by itself (its backoff is at most 2 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = metric(
            &metrics(gateway.admin_addr()),
            "mcpgate_ratelimit_redis_connects_total",
        );
        if now >= 2 * connected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{now} connections after the restart, {connected} before\n{}",
            gateway.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The limits hold again, from a fresh budget (the new Redis is empty): 3, then refused.
    let add = seen("add", 4);
    assert_eq!(
        &add[..3],
        &[Seen::Forwarded, Seen::Forwarded, Seen::Forwarded],
        "{add:?}\n{}",
        gateway.output()
    );
    assert!(throttled(&add[3]), "{add:?}");
    let echo = seen("echo", 4);
    assert_eq!(
        &echo[..3],
        &[Seen::Forwarded, Seen::Forwarded, Seen::Forwarded],
        "{echo:?}"
    );
    assert!(throttled(&echo[3]), "{echo:?}");
}

#[test]
fn typescript_sdk_sees_the_json_rpc_error_and_retry_hint_with_the_limit_flag() {
    let server = ServerEverything::start();
    let gateway = Gateway::start(
        &GatewaySpec::cli(server.upstream_url(), "/mcp-proxy")
            .args(["--limit", "tools/call:echo=2/1h"]),
    );
    let out = run_client_with_env(
        Sdk::TypeScript,
        &gateway.url("/mcp-proxy"),
        "rate_limited",
        &[("MCPGATE_E2E_CALLS", "5")],
    );
    let calls = out["calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 3, "{out}");
    assert_eq!(calls[0], "ok", "{out}");
    assert_eq!(calls[1], "ok", "{out}");
    let refused = &calls[2];
    assert_eq!(refused["code"], -32029, "{out}");
    let retry = refused["data"]["retryAfterMs"].as_u64().unwrap_or(0);
    assert!(retry > 0 && retry <= 1_800_000, "{out}");
    assert_eq!(refused["data"]["rule"], "cli-0", "{out}");
    assert_eq!(out["ping"], "ok", "the session survives a refusal: {out}");
}

/// Waits until the gateway has logged `count` applied reloads.
fn wait_reloads(gateway: &Gateway, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gateway
        .output()
        .matches("reload: configuration from")
        .count()
        < count
    {
        assert!(
            Instant::now() < deadline,
            "reload {count} not applied:\n{}",
            gateway.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_reload_keeps_the_counts_of_unchanged_rules_and_restarts_changed_ones() {
    let up = upstream();
    let rule = "[[api.limit]]\nname = \"calls\"\nmethods = [\"tools/call\"]\nkey = \"global\"\nrate = \"3/1h\"\n";
    let mut gateway = Gateway::start(&GatewaySpec::config(config(up.addr(), "", rule)));
    let addr = gateway.addr();
    for i in 0..3 {
        assert_eq!(classify(&post(addr, &call("echo", i))), Seen::Forwarded);
    }
    // The same file again: SIGHUP must not hand out a fresh budget.
    gateway.process().signal(libc::SIGHUP);
    wait_reloads(&gateway, 1);
    assert!(matches!(
        classify(&post(addr, &call("echo", 3))),
        Seen::Throttled { .. }
    ));
    // A changed budget is a new rule: it starts afresh.
    let path = gateway
        .config_path()
        .unwrap_or_else(|| panic!("no config file"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, text.replace("3/1h", "4/1h")).unwrap_or_else(|e| panic!("{e}"));
    gateway.process().signal(libc::SIGHUP);
    wait_reloads(&gateway, 2);
    let after: Vec<Seen> = (10..15)
        .map(|i| classify(&post(addr, &call("echo", i))))
        .collect();
    assert!(
        after[..4].iter().all(|s| *s == Seen::Forwarded),
        "{after:?}"
    );
    assert!(matches!(after[4], Seen::Throttled { .. }), "{after:?}");
}
