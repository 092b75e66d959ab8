//! Request ids and OpenTelemetry traces end to end: the official TypeScript SDK client, with an
//! instrumented app's `traceparent`, through mcpgate to server-everything, with the gateway
//! exporting to a real OTLP/HTTP receiver that decodes the protobufs with the official
//! `opentelemetry-proto` package (tests/py/otlp_receiver.py). Between the gateway and
//! server-everything a byte relay records what the upstream received (its `traceparent` and
//! `X-Request-Id`). And with the receiver down: requests unaffected, failures and drops counted.

mod observe_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpgate_tests::http::post_mcp;
use mcpgate_tests::net::{closed_port_addr, spawn_listening};
use mcpgate_tests::peers::run_client_with_env;
use mcpgate_tests::process::ManagedChild;
use mcpgate_tests::{Gateway, GatewaySpec, Sdk, ServerEverything};
use observe_common::{admin_get, poll, Scratch, API_PATH};
use serde_json::Value;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The OTLP receiver, writing one JSON object per decoded span to `spans`.
struct Receiver {
    _process: ManagedChild,
    addr: SocketAddr,
    spans: PathBuf,
}

impl Receiver {
    fn start(dir: &Path) -> Self {
        let spans = dir.join("spans.jsonl");
        let file = spans.clone();
        let (process, addr) = spawn_listening("otlp-receiver", move |port| {
            let mut command = Sdk::Python.script_command("otlp_receiver.py");
            command
                .env("PORT", port.to_string())
                .env("SPANS_FILE", &file);
            command
        });
        Receiver {
            _process: process,
            addr,
            spans,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far (a body the official types could not decode fails the test).
    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.spans).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if let Some(bad) = lines.iter().find(|l| l.get("decode_error").is_some()) {
            panic!("the receiver could not decode an export: {bad}");
        }
        lines
    }

    /// Waits for a span accepted by `want`.
    fn wait_span(&self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        poll(what, Duration::from_secs(30), || {
            let spans = self.spans();
            spans
                .iter()
                .find(|s| want(s))
                .cloned()
                .ok_or_else(|| format!("{} spans: {spans:?}", spans.len()))
        })
    }
}

/// The bytes one connection carried towards the upstream.
type Recorded = Arc<Mutex<Vec<u8>>>;

/// A byte relay in front of the upstream that keeps everything the gateway sent, per connection.
struct Tap {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<Recorded>>>,
}

/// One request as the upstream got it.
#[derive(Debug)]
struct Seen {
    head: String,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl Tap {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let sent: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let all = Arc::clone(&sent);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let record: Recorded = Arc::default();
                if let Ok(mut list) = all.lock() {
                    list.push(Arc::clone(&record));
                }
                let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if let Ok(mut r) = record.lock() {
                            r.extend_from_slice(&buf[..n]);
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Tap { addr, sent }
    }

    /// The requests the upstream received so far, in order per connection. The gateway frames
    /// every body it forwards with a Content-Length.
    fn requests(&self) -> Vec<Seen> {
        let mut out = Vec::new();
        let conns: Vec<Vec<u8>> = self
            .sent
            .lock()
            .map(|l| {
                l.iter()
                    .map(|c| c.lock().map(|b| b.clone()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        for bytes in conns {
            let mut rest = &bytes[..];
            while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&rest[..end]).into_owned();
                let seen = Seen {
                    head,
                    body: String::new(),
                };
                let len: usize = seen
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let body_end = (end + 4 + len).min(rest.len());
                out.push(Seen {
                    body: String::from_utf8_lossy(&rest[end + 4..body_end]).into_owned(),
                    ..seen
                });
                rest = &rest[body_end..];
            }
        }
        out
    }
}

fn gateway_toml(upstream: &str, log_file: &Path, traces: &str) -> String {
    format!(
        r#"
[gateway]
listen = "{{listen}}"
admin = "{{admin}}"
workers = 2

[gateway.log]
sink = "file"
file = "{log}"

[gateway.traces]
{traces}

[[api]]
name = "everything"
path = "{API_PATH}"
upstream = "{upstream}"
"#,
        log = log_file.display(),
    )
}

fn attr<'v>(span: &'v Value, key: &str) -> &'v Value {
    &span["attributes"][key]
}

fn exchange_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_ts_sdk_session_is_traced_continued_and_propagated_with_one_request_id() {
    let scratch = Scratch::new("traces");
    let receiver = Receiver::start(&scratch.path);
    let everything = ServerEverything::start();
    let tap = Tap::start(everything.addr());
    let log_file = scratch.path.join("exchanges.jsonl");
    let toml = gateway_toml(
        &format!("http://{}/mcp", tap.addr),
        &log_file,
        &format!(
            "endpoint = \"{}\"\nbatch_interval = \"100ms\"\nheaders = {{ \"x-collector-key\" = \"k-123\" }}\nservice_name = \"gw-under-test\"",
            receiver.endpoint()
        ),
    );
    let gateway = Gateway::start(&GatewaySpec::config(toml));

    // The app's own span is the parent: the gateway must continue its trace.
    let headers = serde_json::json!({
        "traceparent": format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
        "tracestate": "vendor=abc",
    })
    .to_string();
    let seen = run_client_with_env(
        Sdk::TypeScript,
        &gateway.url(API_PATH),
        "tools_call",
        &[("MCPGATE_E2E_HEADERS", &headers)],
    );
    assert_eq!(seen["echoText"], "Echo: hello through mcpgate", "{seen}");

    let server = receiver.wait_span("the tools/call echo server span", |s| {
        s["name"] == "tools/call echo"
    });
    assert_eq!(server["trace_id"], CLIENT_TRACE, "{server}");
    assert_eq!(server["parent_span_id"], CLIENT_SPAN, "{server}");
    assert_eq!(server["trace_state"], "vendor=abc", "{server}");
    assert_eq!(server["kind"], 2, "SPAN_KIND_SERVER: {server}");
    assert_eq!(server["scope"], "mcpgate");
    assert_eq!(server["resource"]["service.name"], "gw-under-test");
    assert_eq!(
        server["export_header"], "k-123",
        "configured export headers"
    );
    assert_eq!(attr(&server, "mcp.method.name"), "tools/call");
    assert_eq!(attr(&server, "gen_ai.tool.name"), "echo");
    assert_eq!(attr(&server, "mcpgate.api"), "everything");
    assert_eq!(attr(&server, "http.response.status_code"), 200);
    let session = attr(&server, "mcp.session.id").as_str().unwrap_or_default();
    assert_eq!(session.len(), 16, "the session's tag, not the id: {server}");
    assert!(
        server["end_time_unix_nano"].as_u64() >= server["start_time_unix_nano"].as_u64(),
        "{server}"
    );
    let request_id = attr(&server, "mcpgate.request_id")
        .as_str()
        .unwrap_or_else(|| panic!("no request id on {server}"))
        .to_owned();

    let span_id = server["span_id"].as_str().unwrap_or_default().to_owned();
    let spans = receiver.spans();
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == span_id.as_str())
        .collect();
    let names: Vec<&str> = children.iter().filter_map(|s| s["name"].as_str()).collect();
    for want in ["route", "authenticate", "upstream"] {
        assert!(names.contains(&want), "{want} missing among {names:?}");
    }
    for child in &children {
        assert_eq!(child["trace_id"], CLIENT_TRACE, "{child}");
        assert!(
            child["start_time_unix_nano"].as_u64() >= server["start_time_unix_nano"].as_u64()
                && child["end_time_unix_nano"].as_u64() <= server["end_time_unix_nano"].as_u64(),
            "a child outside its parent: {child} in {server}"
        );
    }
    let upstream = children
        .iter()
        .find(|s| s["name"] == "upstream")
        .unwrap_or_else(|| panic!("no upstream span"));
    assert_eq!(upstream["kind"], 3, "SPAN_KIND_CLIENT: {upstream}");
    assert_eq!(
        attr(upstream, "url.full"),
        format!("http://{}/mcp", tap.addr).as_str()
    );

    // What the upstream received for that call: this trace, the upstream span as its parent,
    // and the same request id.
    let requests = tap.requests();
    let echo = requests
        .iter()
        .find(|r| r.body.contains("\"name\":\"echo\""))
        .unwrap_or_else(|| panic!("the upstream never got the echo call: {requests:?}"));
    assert_eq!(
        echo.header("traceparent"),
        Some(
            format!(
                "00-{CLIENT_TRACE}-{}-01",
                upstream["span_id"].as_str().unwrap_or("?")
            )
            .as_str()
        ),
        "{echo:?}"
    );
    assert_eq!(echo.header("tracestate"), Some("vendor=abc"), "{echo:?}");
    assert_eq!(
        echo.header("x-request-id"),
        Some(request_id.as_str()),
        "{echo:?}"
    );
    // Every request of the session was traced under the client's trace (initialize, the
    // notification, both calls), each with its own request id.
    let ids: std::collections::HashSet<&str> = requests
        .iter()
        .filter_map(|r| r.header("x-request-id"))
        .collect();
    assert!(ids.len() >= 4, "{requests:?}");
    assert!(requests
        .iter()
        .filter(|r| r.head.starts_with("POST"))
        .all(|r| r
            .header("traceparent")
            .is_some_and(|t| t.contains(CLIENT_TRACE))));

    // The exchange log's record of the call carries the same id.
    let record = poll("the echo record", Duration::from_secs(20), || {
        exchange_records(&log_file)
            .into_iter()
            .find(|r| r["target"] == "echo")
            .ok_or_else(|| "not yet".to_string())
    });
    assert_eq!(record["request_id"], request_id.as_str(), "{record}");

    // A raw client's own id comes back on the answer, and reaches the upstream and the record.
    let init = post_mcp(
        gateway.addr(),
        API_PATH,
        &[("X-Request-Id", "client-chosen-42")],
        &mcpgate_tests::http::initialize_body(1),
    )
    .unwrap_or_else(|e| panic!("initialize: {e}"));
    assert_eq!(init.status, 200);
    assert_eq!(init.header("x-request-id"), Some("client-chosen-42"));
    let rec = poll("the client-chosen record", Duration::from_secs(20), || {
        exchange_records(&log_file)
            .into_iter()
            .find(|r| r["request_id"] == "client-chosen-42")
            .ok_or_else(|| "not yet".to_string())
    });
    assert_eq!(rec["method"], "initialize");
    assert!(tap
        .requests()
        .iter()
        .any(|r| r.header("x-request-id") == Some("client-chosen-42")));
    // No traceparent from this client: a new trace, sampled (ratio 1.0), whose id the upstream got.
    let fresh = receiver.wait_span("the client-chosen server span", |s| {
        attr(s, "mcpgate.request_id") == "client-chosen-42"
    });
    assert_ne!(fresh["trace_id"], CLIENT_TRACE);
    assert_eq!(fresh["parent_span_id"], "", "a root span: {fresh}");

    // An id that is not sane is replaced: a generated one comes back, the same one upstream.
    let long = "x".repeat(200);
    let replaced = post_mcp(
        gateway.addr(),
        API_PATH,
        &[("X-Request-Id", &long)],
        &mcpgate_tests::http::initialize_body(2),
    )
    .unwrap_or_else(|e| panic!("initialize: {e}"));
    let generated = replaced
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id on {replaced:?}"))
        .to_owned();
    assert_ne!(generated, long);
    assert!(generated.len() <= 40, "{generated}");
    assert!(tap
        .requests()
        .iter()
        .any(|r| r.header("x-request-id") == Some(generated.as_str())));

    // A gateway-written error carries the id in its body and head.
    let denied = post_mcp(
        gateway.addr(),
        "/no-such-api",
        &[("X-Request-Id", "err-7")],
        r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#,
    )
    .unwrap_or_else(|e| panic!("POST: {e}"));
    assert_eq!(denied.status, 404);
    assert_eq!(denied.header("x-request-id"), Some("err-7"));
    let body = denied.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["data"]["request_id"], "err-7", "{body}");

    // The exporter's counters.
    let (_, metrics) = admin_get(gateway.admin_addr(), "/metrics");
    let exported = metric(&metrics, "mcpgate_trace_spans_exported_total");
    assert!(exported >= 4.0, "{metrics}");
    assert_eq!(metric(&metrics, "mcpgate_trace_export_failures_total"), 0.0);
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn a_dead_collector_leaves_requests_alone_and_is_counted() {
    let scratch = Scratch::new("traces-down");
    let everything = ServerEverything::start();
    let log_file = scratch.path.join("exchanges.jsonl");
    let dead = closed_port_addr();
    let toml = gateway_toml(
        &everything.upstream_url(),
        &log_file,
        &format!(
            "endpoint = \"http://{dead}/v1/traces\"\nbatch_interval = \"50ms\"\nmax_attempts = 2\ntimeout = \"1s\"\nqueue_capacity = 64"
        ),
    );
    let gateway = Gateway::start(&GatewaySpec::config(toml));
    let headers =
        serde_json::json!({ "traceparent": format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01") })
            .to_string();
    let seen = run_client_with_env(
        Sdk::TypeScript,
        &gateway.url(API_PATH),
        "tools_call",
        &[("MCPGATE_E2E_HEADERS", &headers)],
    );
    assert_eq!(seen["echoText"], "Echo: hello through mcpgate", "{seen}");
    for i in 0..20 {
        let r = post_mcp(
            gateway.addr(),
            API_PATH,
            &[],
            &mcpgate_tests::http::initialize_body(i),
        )
        .unwrap_or_else(|e| panic!("initialize {i}: {e}"));
        assert_eq!(r.status, 200, "request {i} with the collector down");
    }
    let metrics = poll("export failures and drops", Duration::from_secs(30), || {
        let (_, m) = admin_get(gateway.admin_addr(), "/metrics");
        let failures = metric(&m, "mcpgate_trace_export_failures_total");
        let dropped = metric(&m, "mcpgate_trace_spans_dropped_total");
        if failures >= 1.0 && dropped >= 1.0 {
            Ok(m)
        } else {
            Err(m)
        }
    });
    assert_eq!(metric(&metrics, "mcpgate_trace_spans_exported_total"), 0.0);
}

#[test]
fn an_acl_refusal_is_a_span_with_its_decision_and_no_upstream_call() {
    let scratch = Scratch::new("traces-acl");
    let receiver = Receiver::start(&scratch.path);
    let everything = ServerEverything::start();
    let log_file = scratch.path.join("exchanges.jsonl");
    let mut toml = gateway_toml(
        &everything.upstream_url(),
        &log_file,
        &format!(
            "endpoint = \"{}\"\nbatch_interval = \"100ms\"",
            receiver.endpoint()
        ),
    );
    toml.push_str("\n[api.acl]\n[[api.acl.rule]]\nmethods = [\"tools/list\", \"tools/call\"]\nnames = [\"echo\"]\n");
    let gateway = Gateway::start(&GatewaySpec::config(toml));
    let init = post_mcp(
        gateway.addr(),
        API_PATH,
        &[],
        &mcpgate_tests::http::initialize_body(1),
    )
    .unwrap_or_else(|e| panic!("initialize: {e}\n{}", gateway.output()));
    assert_eq!(init.status, 200, "{}", init.body_text());
    let session = init
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no session"))
        .to_owned();
    let done = post_mcp(
        gateway.addr(),
        API_PATH,
        &[("Mcp-Session-Id", &session)],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .unwrap_or_else(|e| panic!("initialized: {e}"));
    assert_eq!(done.status, 202);
    let refused = post_mcp(
        gateway.addr(),
        API_PATH,
        &[("Mcp-Session-Id", &session), ("X-Request-Id", "acl-refused-1")],
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}"#,
    )
    .unwrap_or_else(|e| panic!("tools/call: {e}"));
    let messages = refused.jsonrpc_messages().unwrap_or_else(|e| panic!("{e}"));
    let code = messages
        .iter()
        .find_map(|m| m["error"]["code"].as_i64())
        .unwrap_or_else(|| panic!("not refused: {messages:?}"));
    assert_eq!(refused.header("x-request-id"), Some("acl-refused-1"));

    let server = receiver.wait_span("the refused call's server span", |s| {
        attr(s, "mcpgate.request_id") == "acl-refused-1"
    });
    assert_eq!(server["name"], "tools/call get-sum", "{server}");
    assert_eq!(attr(&server, "mcpgate.acl.decision"), "deny", "{server}");
    assert_eq!(attr(&server, "rpc.jsonrpc.error_code"), code, "{server}");
    assert_eq!(server["status_code"], 2, "STATUS_CODE_ERROR: {server}");
    let span_id = server["span_id"].as_str().unwrap_or_default().to_owned();
    let spans = receiver.spans();
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == span_id.as_str())
        .collect();
    let acl = children
        .iter()
        .find(|s| s["name"] == "acl")
        .unwrap_or_else(|| panic!("no acl span among {children:?}"));
    assert_eq!(attr(acl, "mcpgate.acl.decision"), "deny");
    assert_eq!(attr(acl, "mcpgate.acl.rule"), "implicit_deny");
    assert!(
        !children.iter().any(|s| s["name"] == "upstream"),
        "a refused call never reaches the upstream: {children:?}"
    );
    // The allowed call of the same session has an allow decision and an upstream span.
    let allowed = post_mcp(
        gateway.addr(),
        API_PATH,
        &[("Mcp-Session-Id", &session), ("X-Request-Id", "acl-allowed-1")],
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m"}}}"#,
    )
    .unwrap_or_else(|e| panic!("tools/call: {e}"));
    assert_eq!(allowed.status, 200);
    let server = receiver.wait_span("the allowed call's server span", |s| {
        attr(s, "mcpgate.request_id") == "acl-allowed-1"
    });
    assert_eq!(attr(&server, "mcpgate.acl.decision"), "allow", "{server}");
    let span_id = server["span_id"].as_str().unwrap_or_default().to_owned();
    let names: Vec<String> = receiver
        .spans()
        .iter()
        .filter(|s| s["parent_span_id"] == span_id.as_str())
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        names.contains(&"acl".to_owned()) && names.contains(&"upstream".to_owned()),
        "{names:?}"
    );
}
