//! Connection lifecycle under the operator's timers (issue 14 #4, #5): SIGTERM closes idle
//! keep-alive connections at once (in-flight requests keep their `shutdown_grace`), and a client
//! that stops reading is cut off after `timeouts.client_write` — with a log line and a metric —
//! instead of holding its upstream connection for as long as it likes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mcpgate_tests::http::{build_request, exchange};
use mcpgate_tests::net::{CapturingUpstream, Reply, SilentUpstream};
use mcpgate_tests::{Gateway, GatewaySpec};

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

fn json_reply(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn post(path: &str, host: &str, keep_alive: bool) -> Vec<u8> {
    let mut request = build_request(
        "POST",
        path,
        host,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        PING.as_bytes(),
    );
    if keep_alive {
        let text = String::from_utf8_lossy(&request).replace("Connection: close\r\n", "");
        request = text.into_bytes();
    }
    request
}

#[test]
fn sigterm_closes_idle_keep_alive_connections_at_once() {
    let answering = CapturingUpstream::scripted(|_| {
        Reply::keep(json_reply(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#))
    });
    let silent = SilentUpstream::start();
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\
         [gateway.timeouts]\nshutdown_grace = \"30s\"\nupstream_response_head = \"60s\"\n\
         keepalive_idle = \"60s\"\n\n\
         [[api]]\nname = \"answering\"\npath = \"/a\"\nupstream = \"http://{}/mcp\"\n\n\
         [[api]]\nname = \"silent\"\npath = \"/s\"\nupstream = \"http://{}/mcp\"\n",
        answering.addr(),
        silent.addr()
    );
    let mut gateway = Gateway::start(&GatewaySpec::config(config));
    let host = gateway.addr().to_string();
    // An idle keep-alive connection: one answered request, then nothing.
    let mut idle = TcpStream::connect(gateway.addr()).unwrap_or_else(|e| panic!("{e}"));
    idle.write_all(&post("/a", &host, true))
        .unwrap_or_else(|e| panic!("{e}"));
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut first = vec![0u8; 4096];
    let n = idle.read(&mut first).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    // A request in flight to the silent upstream keeps the process draining for the grace.
    let mut in_flight = TcpStream::connect(gateway.addr()).unwrap_or_else(|e| panic!("{e}"));
    in_flight
        .write_all(&post("/s", &host, false))
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while silent.accepted() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        silent.accepted(),
        1,
        "the in-flight request never reached its upstream"
    );

    gateway.process().signal(libc::SIGTERM);
    // The idle connection is closed (EOF) while the process still drains the in-flight one.
    let mut rest = [0u8; 64];
    let eof = idle
        .read(&mut rest)
        .unwrap_or_else(|e| panic!("idle connection not closed: {e}"));
    assert_eq!(eof, 0, "bytes on the idle connection after SIGTERM");
    assert!(
        gateway.process().exited().is_none(),
        "the gateway exited before the grace period: the test proves nothing"
    );
}

#[test]
fn a_client_that_stops_reading_is_cut_off_after_client_write() {
    // An answer far larger than the socket buffers, so the writes block when nobody reads.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
        "x".repeat(8 * 1024 * 1024)
    );
    let upstream = CapturingUpstream::scripted(move |_| Reply::keep(json_reply(&big)));
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\
         [gateway.timeouts]\nclient_write = \"1s\"\n\n\
         [[api]]\nname = \"big\"\npath = \"/big\"\nupstream = \"http://{}/mcp\"\n",
        upstream.addr()
    );
    let mut gateway = Gateway::start(&GatewaySpec::config(config));
    let host = gateway.addr().to_string();
    let mut stalled = TcpStream::connect(gateway.addr()).unwrap_or_else(|e| panic!("{e}"));
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap_or_else(|e| panic!("{e}"));
    stalled
        .write_all(&post("/big", &host, true))
        .unwrap_or_else(|e| panic!("{e}"));
    // Read nothing until the gateway gives up on this client and says so.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !gateway.output().contains("accepted no byte") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = gateway.output();
    assert!(
        log.contains("accepted no byte") && log.contains("client_write"),
        "no log line for the stalled client:\n{log}"
    );
    // The connection is closed: draining it ends (EOF or reset) well short of 8 MiB.
    let mut drained = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stalled.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    assert!(
        drained < 8 * 1024 * 1024,
        "the whole answer arrived: nothing was cut off"
    );
    // The metric counts it, and the gateway still serves.
    let metrics = exchange(
        gateway.admin_addr(),
        &build_request(
            "GET",
            "/metrics",
            &gateway.admin_addr().to_string(),
            &[],
            b"",
        ),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        metrics
            .body_text()
            .lines()
            .any(|l| l == "mcpgate_client_write_timeouts_total 1"),
        "{}",
        metrics.body_text()
    );
    assert!(gateway.process().exited().is_none());
}
