//! Test-only: serves the admin handler over loopback with synthetic traffic and drives a real
//! headless Chromium against it (Debian package `chromium`). Ignored by default because it needs
//! the browser: `cargo test -p mcpgate-core observe::console_dev -- --ignored --nocapture`.
//! The screenshot lands in `$MCPGATE_CONSOLE_SHOT` (default `/tmp/mcpgate-console.png`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

const BEARER: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.dGhpcy1pcy1hLXNlY3JldA";

fn serve_one(mut s: TcpStream, hub: &ObserveHub) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (status, ct, body) =
        handle_admin(method, target, hub).unwrap_or((404, "text/plain", b"not found".to_vec()));
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(&body);
}

/// Synthetic traffic over the last ~12 minutes on two APIs, including errors, a denial, an
/// upstream timeout and a captured payload carrying a bearer token.
fn populate(hub: &ObserveHub) {
    let mut w = hub.worker();
    let now = now_unix_ms();
    let tools = [
        "get_forecast",
        "get_alerts",
        "search_stations",
        "convert_units",
        "historical_data",
    ];
    for i in 0..1400u64 {
        let t = now - 720_000 + i * 510 + (i * 7919 % 400);
        let api = if i % 4 == 0 { "crm" } else { "weather" };
        let (method, target) = match i % 10 {
            0 => ("tools/list", None),
            1 => (
                "resources/read",
                Some(["file:///docs/readme.md", "db://customers/42"][(i % 2) as usize]),
            ),
            2 => ("prompts/get", Some("summarize")),
            3 if i % 20 == 3 => ("initialize", None),
            _ => ("tools/call", Some(tools[(i * i % 13 % 5) as usize])),
        };
        let api_l = w.label(api);
        let method_l = w.label(method);
        let kind = if i % 37 == 0 {
            ExchangeKind::ServerNotification
        } else {
            ExchangeKind::Request
        };
        let mut r = ExchangeRecord::new(t, api_l, method_l, kind);
        r.target = target.map(|x| w.label(x));
        r.http_status = 200;
        r.client = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i % 7) as u8 + 2)));
        r.subject = Some(w.label(["alice", "bob", "ci-bot"][(i % 3) as usize]));
        r.session = Some(SessionTag::from_secret(
            format!("session-{}", i % 9).as_bytes(),
        ));
        r.upstream = Some(w.label(if api == "crm" {
            "http://crm:8080/mcp"
        } else {
            "http://weather:3001/mcp"
        }));
        r.total_us = 800
            + (i * 7919 % 40_000)
            + if target == Some("historical_data") {
                350_000
            } else {
                0
            };
        r.first_byte_us = r.total_us / 3;
        r.request_bytes = 180 + i % 300;
        r.response_bytes = 400 + (i * 31) % 9000;
        if target == Some("get_alerts") && i % 3 == 0 {
            r.jsonrpc_error = Some(-32603);
        }
        if target == Some("convert_units") && i % 5 == 0 {
            r.jsonrpc_error = Some(-32602);
            r.acl_decision = Some(AclDecision::Deny);
            r.acl_rule = Some(w.label("read-only-tools"));
        }
        if i % 97 == 0 {
            r.upstream_failure = Some(UpstreamFailure::Timeout);
            r.http_status = 504;
        }
        if i == 1399 {
            let auth = format!("Bearer {BEARER}");
            let req = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_forecast","arguments":{"city":"Lyon","days":3,"api_key":"k-123456789"}}}"#;
            let resp = r#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"Lyon: 14°C, light rain, wind 12 km/h"}]}}"#;
            let secrets: [&[u8]; 1] = [BEARER.as_bytes()];
            r.capture = Some(Box::new(Capture {
                request_headers: Some(w.redactor().headers(
                    [
                        ("Authorization", auth.as_bytes()),
                        ("Content-Type", b"application/json".as_slice()),
                        ("MCP-Protocol-Version", b"2025-06-18".as_slice()),
                    ],
                    &secrets,
                )),
                request_body: Some(w.redactor().body(req.as_bytes(), 4096, &secrets)),
                response_headers: None,
                response_body: Some(w.redactor().body(resp.as_bytes(), 4096, &secrets)),
            }));
        }
        w.record(r);
    }
    w.flush(now);
    let _conn = w.connection_opened();
    std::mem::forget(_conn); // keep the gauge at 1 for the picture
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
}

fn browser(port: u16, fragment: &str, extra: &[&str]) -> std::process::Output {
    let profile = std::env::temp_dir().join(format!(
        "mcpgate-chromium-{}-{}",
        std::process::id(),
        fragment.len() + extra.len()
    ));
    let mut cmd = Command::new(chromium().unwrap_or("chromium"));
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=6000",
        "--window-size=1400,1000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(format!("http://127.0.0.1:{port}/{fragment}"));
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run chromium: {e}"),
    }
}

#[test]
#[ignore = "needs chromium (apt-get install chromium)"]
fn console_renders_in_headless_chromium() {
    assert!(chromium().is_some(), "chromium is not installed");
    let hub = match ObserveHub::start(ObserveConfig::default()) {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    populate(&hub);
    let server = Server::start(&hub);
    let port = server.port;

    let dom = browser(port, "", &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for expected in [
        "get_forecast",
        "get_alerts",
        "-32603",
        "badge error",
        "<svg",
        "bar-err",
    ] {
        assert!(
            dom.contains(expected),
            "rendered console lacks {expected:?}"
        );
    }
    assert!(!dom.contains(BEARER) && !dom.contains("k-123456789"));

    // The detail view, opened through the URL fragment, shows the captured payload redacted.
    let logs = handle_admin("GET", "/api/logs?limit=1", &hub)
        .map(|r| r.2)
        .unwrap_or_default();
    let logs: serde_json::Value = serde_json::from_slice(&logs).unwrap_or_default();
    let id = logs["records"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let detail = browser(port, &format!("#exchange={id}"), &["--dump-dom"]);
    let detail = String::from_utf8_lossy(&detail.stdout);
    assert!(
        detail.contains("Lyon: 14°C"),
        "detail view lacks the captured response"
    );
    assert!(detail.contains("[REDACTED]"));
    assert!(!detail.contains(BEARER) && !detail.contains("k-123456789"));

    let shot: PathBuf = std::env::var_os("MCPGATE_CONSOLE_SHOT")
        .map_or_else(|| "/tmp/mcpgate-console.png".into(), PathBuf::from);
    let _ = std::fs::remove_file(&shot);
    browser(port, "", &[&format!("--screenshot={}", shot.display())]);
    let detail_shot = shot.with_extension("detail.png");
    browser(
        port,
        &format!("#exchange={id}"),
        &[&format!("--screenshot={}", detail_shot.display())],
    );
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "no screenshot at {}",
        shot.display()
    );
    println!("screenshot: {}", shot.display());

    // MCPGATE_CONSOLE_HOLD_SECS=N keeps the server up for a look with a real browser.
    let hold = std::env::var("MCPGATE_CONSOLE_HOLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if hold > 0 {
        println!("serving http://127.0.0.1:{port}/ for {hold} s");
        std::thread::sleep(Duration::from_secs(hold));
    }
    drop(server);

    // With no traffic, the page says so instead of drawing empty charts.
    let empty_hub = match ObserveHub::start(ObserveConfig::default()) {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    let empty = Server::start(&empty_hub);
    let dom = browser(empty.port, "", &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(r#"<section id="empty" class="empty">"#),
        "empty state not shown"
    );
    assert!(dom.contains(r#"<section id="overview" class="hidden">"#));
    assert!(dom.contains(r#"<div id="log-empty" class="empty-row">"#));
}

/// The admin handler on a loopback port, one connection at a time, until dropped.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(hub: &ObserveHub) -> Self {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let (hub, flag) = (hub.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for s in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(s) = s {
                    serve_one(s, &hub);
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
