//! The real `mcpgate` binary in front of a scripted upstream, over raw HTTP, on both drivers:
//! header rewriting, 202 pass-through, SSE relayed event by event at the pace the upstream sends,
//! client disconnect closing the upstream stream, keep-alive and pipelining, re-framing of
//! close-delimited and chunked bodies, the gateway's own errors (404/413/400/502/504), SIGHUP reload
//! and SIGTERM drain. (The end-to-end suite with real MCP SDKs and servers lives in `tests/`.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const DRIVERS: [&str; 2] = ["epoll", "auto"];

// ---------- scripted upstream ----------

#[derive(Default)]
struct Upstream {
    /// Every request head received, as text.
    heads: Mutex<Vec<String>>,
    /// Connections accepted.
    connections: AtomicUsize,
    /// Set when a `/hold` stream's client side was closed by the gateway.
    hold_closed: AtomicBool,
}

fn start_upstream() -> (SocketAddr, Arc<Upstream>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    let state = Arc::new(Upstream::default());
    let st = state.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            st.connections.fetch_add(1, Ordering::SeqCst);
            let st = st.clone();
            thread::spawn(move || serve_upstream(conn, &st));
        }
    });
    (addr, state)
}

/// Reads one request (head + Content-Length body) from `buf`/`conn`; None at EOF.
fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let len = header_value(&head, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0usize);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 65536];
                let n = conn.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((head, body));
        }
        let mut chunk = [0u8; 65536];
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn serve_upstream(mut conn: TcpStream, st: &Upstream) {
    let mut buf = Vec::new();
    while let Some((head, body)) = read_request(&mut conn, &mut buf) {
        st.heads.lock().expect("heads").push(head.clone());
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let ok = match path.as_str() {
            p if p.starts_with("/up/json") => {
                let mut resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: sess-1\r\nKeep-Alive: timeout=5\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                resp.extend_from_slice(&body);
                conn.write_all(&resp).is_ok()
            }
            "/up/big" => {
                let body = vec![b'x'; 300_000];
                let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len())
                    .into_bytes();
                resp.extend_from_slice(&body);
                conn.write_all(&resp).is_ok()
            }
            "/up/accepted" => conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n").is_ok(),
            "/up/chunked" => conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n")
                .is_ok(),
            "/up/sse" => {
                // Three events 300 ms apart, the second split across two writes.
                let start = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                let mut ok = start.is_ok();
                for (i, ev) in [
                    &b"id: 1\ndata: {\"progress\":1}\n\n"[..],
                    b"id: 2\ndata: {\"progress\":2}\n\n",
                    b"id: 3\ndata: {\"result\":true}\n\n",
                ]
                .iter()
                .enumerate()
                {
                    if i == 1 {
                        let (a, b) = ev.split_at(7);
                        ok &= conn.write_all(format!("{:x}\r\n", a.len()).as_bytes()).is_ok();
                        ok &= conn.write_all(a).is_ok() && conn.write_all(b"\r\n").is_ok();
                        thread::sleep(Duration::from_millis(100));
                        ok &= conn.write_all(format!("{:x}\r\n", b.len()).as_bytes()).is_ok();
                        ok &= conn.write_all(b).is_ok() && conn.write_all(b"\r\n").is_ok();
                    } else {
                        ok &= conn.write_all(format!("{:x}\r\n", ev.len()).as_bytes()).is_ok();
                        ok &= conn.write_all(ev).is_ok() && conn.write_all(b"\r\n").is_ok();
                    }
                    thread::sleep(Duration::from_millis(300));
                }
                ok && conn.write_all(b"0\r\n\r\n").is_ok()
            }
            "/up/hold" => {
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n: hello\n\ndata: {\"n\":1}\n\n",
                );
                // Close-delimited stream that never ends: wait for the gateway to hang up.
                let mut chunk = [0u8; 64];
                let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
                if matches!(conn.read(&mut chunk), Ok(0) | Err(_)) {
                    st.hold_closed.store(true, Ordering::SeqCst);
                }
                return;
            }
            "/up/legacy" => conn
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 58\r\n\r\n\
                      event: endpoint\ndata: /up/message?sessionId=42\n\ndata: {}\n\n",
                )
                .is_ok(),
            "/up/close" => {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"closed\":true}");
                return;
            }
            "/up/silent" => {
                thread::sleep(Duration::from_secs(5));
                return;
            }
            _ => conn.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n").is_ok(),
        };
        if !ok {
            return;
        }
    }
}

// ---------- the gateway process ----------

struct Gateway {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    config: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

fn config_text(upstream: SocketAddr, extra_api: &str) -> String {
    config_text_with(upstream, extra_api, "")
}

fn config_text_with(upstream: SocketAddr, extra_api: &str, extra_timeouts: &str) -> String {
    format!(
        "[gateway]\nlisten = \"127.0.0.1:0\"\n[gateway.limits]\nmax_body_bytes = 1000\n\
         [gateway.timeouts]\nupstream_response_head = \"1s\"\nshutdown_grace = \"3s\"\n{extra_timeouts}\
         [[api]]\npath = \"/gw\"\nupstream = \"http://{upstream}/up\"\n\
         [[api]]\npath = \"/down\"\nupstream = \"http://127.0.0.1:1/mcp\"\n{extra_api}"
    )
}

fn start_gateway(driver: &str, upstream: SocketAddr) -> Gateway {
    start_gateway_with(driver, upstream, "")
}

fn start_gateway_with(driver: &str, upstream: SocketAddr, extra_timeouts: &str) -> Gateway {
    static N: AtomicUsize = AtomicUsize::new(0);
    let config = std::env::temp_dir().join(format!(
        "mcpgate-core-test-{}-{}.toml",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&config, config_text_with(upstream, "", extra_timeouts)).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .args([
            "run",
            "--admin",
            "off",
            "--workers",
            "2",
            "--driver",
            driver,
            "--config",
        ])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mcpgate");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // `<timestamp>  INFO mcpgate: listening on ADDR (...)`
            if let Some(rest) = line
                .find("mcpgate: listening on ")
                .and_then(|at| line.get(at + "mcpgate: listening on ".len()..))
            {
                let addr = rest.split(' ').next().unwrap_or("").to_string();
                let _ = tx.send(addr);
            }
            sink.lock().expect("log").push_str(&(line + "\n"));
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("gateway never printed its listening line")
        .parse()
        .expect("listening address");
    Gateway {
        child,
        addr,
        stderr: log,
        config,
    }
}

// ---------- a raw HTTP client ----------

struct Response {
    head: String,
    body: Vec<u8>,
    /// For chunked bodies: (time since the request was sent, decoded chunk data).
    chunks: Vec<(Duration, Vec<u8>)>,
}

impl Response {
    fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    fn header(&self, name: &str) -> Option<String> {
        header_value(&self.head, name)
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to gateway");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("send request");
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one response; `None` if the connection closed before a complete head.
    fn response(&mut self, sent: Instant) -> Option<Response> {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
        self.buf.drain(..end + 4);
        let mut resp = Response {
            head,
            body: Vec::new(),
            chunks: Vec::new(),
        };
        if let Some(len) = resp
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            while self.buf.len() < len {
                assert!(
                    self.fill(),
                    "connection closed inside a Content-Length body"
                );
            }
            resp.body = self.buf.drain(..len).collect();
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    assert!(self.fill(), "connection closed inside a chunked body");
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&self.buf[..line_end]).trim(),
                    16,
                )
                .expect("chunk size");
                while self.buf.len() < line_end + 2 + size + 2 {
                    assert!(self.fill(), "connection closed inside a chunk");
                }
                let data: Vec<u8> = self.buf[line_end + 2..line_end + 2 + size].to_vec();
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
                resp.body.extend_from_slice(&data);
                resp.chunks.push((sent.elapsed(), data));
            }
        } else if resp.status() != 204 && resp.status() != 304 && resp.status() >= 200 {
            while self.fill() {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Some(resp)
    }

    fn request(&mut self, raw: &[u8]) -> Response {
        let sent = Instant::now();
        self.send(raw);
        self.response(sent).expect("a response")
    }
}

fn post(path: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------- tests ----------

#[test]
fn json_post_is_forwarded_with_rewritten_headers_and_kept_alive() {
    for driver in DRIVERS {
        let (up, state) = start_upstream();
        let gw = start_gateway(driver, up);
        let mut c = Client::connect(gw.addr);
        let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}"#;
        let extra = "Mcp-Session-Id: sess-1\r\nMCP-Protocol-Version: 2025-06-18\r\nLast-Event-ID: e4\r\n\
                     Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nX-Forwarded-For: 10.0.0.1\r\nAuthorization: Bearer tok\r\n";
        let r = c.request(&post("/gw/json?x=1", body, extra));
        assert_eq!(r.status(), 200, "{driver}: {}", r.head);
        assert_eq!(
            r.body,
            body.as_bytes(),
            "{driver}: body passed through byte for byte"
        );
        assert_eq!(r.header("mcp-session-id").as_deref(), Some("sess-1"));
        assert!(
            r.header("keep-alive").is_none(),
            "{driver}: hop-by-hop response header forwarded"
        );

        let head = state
            .heads
            .lock()
            .expect("heads")
            .last()
            .cloned()
            .unwrap_or_default();
        assert!(
            head.starts_with("POST /up/json?x=1 HTTP/1.1\r\n"),
            "{driver}: {head}"
        );
        for (name, value) in [
            ("host", up.to_string()),
            ("mcp-session-id", "sess-1".into()),
            ("mcp-protocol-version", "2025-06-18".into()),
            ("last-event-id", "e4".into()),
            ("accept", "application/json, text/event-stream".into()),
            ("content-type", "application/json".into()),
            ("authorization", "Bearer tok".into()),
            ("x-forwarded-for", "10.0.0.1, 127.0.0.1".into()),
            ("x-forwarded-proto", "http".into()),
            ("x-forwarded-host", "gw.test".into()),
        ] {
            assert_eq!(
                header_value(&head, name).as_deref(),
                Some(value.as_str()),
                "{driver}: {name} in {head}"
            );
        }
        assert!(
            header_value(&head, "x-hop").is_none() && header_value(&head, "connection").is_none(),
            "{head}"
        );

        // Same client connection, second request: keep-alive to the client, pooled upstream.
        let r = c.request(&post("/gw/json", "{}", ""));
        assert_eq!(r.status(), 200);
        assert_eq!(
            state.connections.load(Ordering::SeqCst),
            1,
            "{driver}: upstream connection not reused"
        );
    }
}

#[test]
fn accepted_and_upstream_errors_pass_through() {
    for driver in DRIVERS {
        let (up, _state) = start_upstream();
        let gw = start_gateway(driver, up);
        let mut c = Client::connect(gw.addr);
        let r = c.request(&post(
            "/gw/accepted",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            "",
        ));
        assert_eq!(r.status(), 202, "{driver}");
        assert!(r.body.is_empty());
        let r = c.request(b"PUT /gw/other HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(r.status(), 405, "{driver}: the upstream decides on methods");
    }
}

#[test]
fn sse_events_are_relayed_as_the_upstream_sends_them() {
    for driver in DRIVERS {
        let (up, _state) = start_upstream();
        let gw = start_gateway(driver, up);
        let mut c = Client::connect(gw.addr);
        let r = c.request(&post(
            "/gw/sse",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            "",
        ));
        assert_eq!(r.status(), 200, "{driver}");
        assert_eq!(r.header("x-accel-buffering").as_deref(), Some("no"));
        assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
        let events: Vec<&[u8]> = r.chunks.iter().map(|(_, d)| d.as_slice()).collect();
        assert_eq!(
            events,
            vec![
                &b"id: 1\ndata: {\"progress\":1}\n\n"[..],
                b"id: 2\ndata: {\"progress\":2}\n\n",
                b"id: 3\ndata: {\"result\":true}\n\n"
            ],
            "{driver}: one chunk per complete event"
        );
        // The upstream spaces events by 300-400 ms: the client must see the same spacing.
        let t: Vec<Duration> = r.chunks.iter().map(|(t, _)| *t).collect();
        assert!(t[1] - t[0] >= Duration::from_millis(250), "{driver}: {t:?}");
        assert!(t[2] - t[1] >= Duration::from_millis(250), "{driver}: {t:?}");
        // The stream ended cleanly: the connection still serves requests.
        assert_eq!(
            c.request(&post("/gw/json", "{}", "")).status(),
            200,
            "{driver}"
        );
    }
}

#[test]
fn legacy_endpoint_event_points_at_the_gateway() {
    let (up, _state) = start_upstream();
    let gw = start_gateway("auto", up);
    let r = Client::connect(gw.addr).request(b"GET /gw/legacy HTTP/1.1\r\nHost: x\r\n\r\n");
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        text.starts_with("event: endpoint\ndata: /gw/message?sessionId=42\n\n"),
        "{text:?}"
    );
    assert!(text.contains("data: {}\n\n"), "{text:?}");
}

#[test]
fn client_disconnect_closes_the_upstream_stream() {
    for driver in DRIVERS {
        let (up, state) = start_upstream();
        let gw = start_gateway(driver, up);
        let mut c = Client::connect(gw.addr);
        c.send(b"GET /gw/hold HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
        // Wait for the first event, then hang up.
        wait_until("the first event", Duration::from_secs(5), || {
            c.fill();
            find(&c.buf, b"data: {\"n\":1}").is_some()
        });
        drop(c);
        wait_until(
            "the upstream stream to close",
            Duration::from_secs(5),
            || state.hold_closed.load(Ordering::SeqCst),
        );
    }
}

#[test]
fn a_silent_event_stream_ends_cleanly_after_sse_idle() {
    for driver in DRIVERS {
        let (up, state) = start_upstream();
        let gw = start_gateway_with(driver, up, "sse_idle = \"1s\"\n");
        let mut c = Client::connect(gw.addr);
        let started = Instant::now();
        let r = c.request(b"GET /gw/hold HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
        // `request` returns once the chunked body is complete (terminal chunk received).
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(900),
            "{driver}: ended after {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "{driver}: ended after {elapsed:?}"
        );
        assert!(find(&r.body, b"data: {\"n\":1}").is_some(), "{driver}");
        wait_until(
            "the upstream stream to close",
            Duration::from_secs(5),
            || state.hold_closed.load(Ordering::SeqCst),
        );
        // The client connection survives the end of the stream.
        assert_eq!(
            c.request(&post("/gw/json", "{}", "")).status(),
            200,
            "{driver}"
        );
    }
}

#[test]
fn bodies_are_reframed_for_the_client() {
    for driver in DRIVERS {
        let (up, _state) = start_upstream();
        let gw = start_gateway(driver, up);
        let mut c = Client::connect(gw.addr);
        let r = c.request(&post("/gw/chunked", "{}", ""));
        assert_eq!(r.body, b"{\"a\":1}", "{driver}");
        let r = c.request(&post("/gw/close", "{}", ""));
        assert_eq!(
            r.header("transfer-encoding").as_deref(),
            Some("chunked"),
            "{driver}: {}",
            r.head
        );
        assert_eq!(r.body, b"{\"closed\":true}");
        let r = c.request(&post("/gw/big", "{}", ""));
        assert_eq!(r.body.len(), 300_000, "{driver}");
        // A chunked request body reaches the upstream with its length.
        let r = c.request(
            b"POST /gw/json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        );
        assert_eq!(r.body, b"{\"a\":1}", "{driver}");
        // Expect: 100-continue is answered by the gateway before the body is sent.
        c.send(b"POST /gw/json HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
        let interim = c.response(Instant::now()).expect("100 Continue");
        assert_eq!(interim.status(), 100, "{driver}");
        c.send(b"{}");
        assert_eq!(c.response(Instant::now()).expect("final").body, b"{}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for driver in DRIVERS {
        let (up, _state) = start_upstream();
        let gw = start_gateway(driver, up);
        let mut c = Client::connect(gw.addr);
        let mut raw = post("/gw/json", "[1]", "");
        raw.extend_from_slice(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
        raw.extend_from_slice(&post("/gw/json", "[3]", ""));
        let sent = Instant::now();
        c.send(&raw);
        let bodies: Vec<Vec<u8>> = (0..3)
            .map(|_| c.response(sent).expect("response").body)
            .collect();
        assert_eq!(bodies[0], b"[1]", "{driver}");
        assert!(
            String::from_utf8_lossy(&bodies[1]).contains("no API"),
            "{driver}"
        );
        assert_eq!(bodies[2], b"[3]", "{driver}");
    }
}

#[test]
fn gateway_errors_are_json_rpc_with_the_request_id() {
    for driver in DRIVERS {
        let (up, _state) = start_upstream();
        let gw = start_gateway(driver, up);
        let call = r#"{"jsonrpc":"2.0","id":"abc","method":"tools/list"}"#;

        let r = Client::connect(gw.addr).request(&post("/gwx", call, ""));
        assert_eq!(r.status(), 404, "{driver}: /gw must not match /gwx");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );

        let r = Client::connect(gw.addr).request(&post("/down", call, ""));
        assert_eq!(r.status(), 502, "{driver}");
        assert_eq!(r.json()["id"], "abc");
        assert_eq!(r.json()["error"]["code"], -32603);

        let started = Instant::now();
        let r = Client::connect(gw.addr).request(&post("/gw/silent", call, ""));
        assert_eq!(r.status(), 504, "{driver}");
        assert_eq!(r.json()["id"], "abc");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{driver}: 504 after {:?}",
            started.elapsed()
        );

        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
        let mut c = Client::connect(gw.addr);
        let r = c.request(&post("/gw/json", &big, ""));
        assert_eq!(r.status(), 413, "{driver}");
        assert_eq!(r.header("connection").as_deref(), Some("close"));
        assert!(
            c.response(Instant::now()).is_none(),
            "{driver}: connection must close after 413"
        );

        let r = Client::connect(gw.addr)
            .request(b"POST /gw/json HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}");
        assert_eq!(r.status(), 400, "{driver}");
        assert!(r.json()["id"].is_null());

        let r = Client::connect(gw.addr).request(b"GET /gw/../secret HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status(), 400, "{driver}: dot segments refused");
    }
}

#[test]
fn a_host_name_upstream_is_resolved_and_served() {
    // The scripted upstream listens on 127.0.0.1 only; where `localhost` resolves to ::1 first,
    // this also exercises trying the next address.
    let (up, _state) = start_upstream();
    let gw = start_gateway("auto", up);
    let extra = format!(
        "[[api]]\npath = \"/lh\"\nupstream = \"http://localhost:{}/up\"\n",
        up.port()
    );
    std::fs::write(&gw.config, config_text(up, &extra)).expect("write");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(gw.child.id() as libc::pid_t, libc::SIGHUP) };
    wait_until("the localhost API", Duration::from_secs(5), || {
        Client::connect(gw.addr)
            .request(&post("/lh/json", "{}", ""))
            .status()
            == 200
    });
}

#[test]
fn sighup_reloads_and_a_bad_file_keeps_the_running_config() {
    let (up, _state) = start_upstream();
    let gw = start_gateway("auto", up);
    let pid = gw.child.id() as libc::pid_t;
    std::fs::write(
        &gw.config,
        "[gateway]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n",
    )
    .expect("write");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_until("the reload error", Duration::from_secs(5), || {
        gw.stderr.lock().expect("log").contains("reload failed")
    });
    assert!(gw
        .stderr
        .lock()
        .expect("log")
        .contains("unknown field `bogus`"));
    assert_eq!(
        Client::connect(gw.addr)
            .request(&post("/gw/json", "{}", ""))
            .status(),
        200
    );

    let extra = format!("[[api]]\npath = \"/new\"\nupstream = \"http://{up}/up\"\n");
    std::fs::write(&gw.config, config_text(up, &extra)).expect("write");
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_until("the new API", Duration::from_secs(5), || {
        Client::connect(gw.addr)
            .request(&post("/new/json", "{}", ""))
            .status()
            == 200
    });
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    for driver in DRIVERS {
        let (up, _state) = start_upstream();
        let mut gw = start_gateway(driver, up);
        let mut c = Client::connect(gw.addr);
        let sent = Instant::now();
        c.send(&post("/gw/sse", "{}", ""));
        // The stream is open (first event seen) when the signal arrives.
        wait_until("the stream to start", Duration::from_secs(5), || {
            c.fill();
            find(&c.buf, b"progress").is_some()
        });
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(gw.child.id() as libc::pid_t, libc::SIGTERM) };
        let mut rest = Vec::new();
        while c.fill() {}
        rest.extend_from_slice(&c.buf);
        assert!(
            find(&rest, b"{\"result\":true}").is_some(),
            "{driver}: in-flight stream cut: {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert!(sent.elapsed() < Duration::from_secs(3));
        let status = gw.child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "{driver}");
        assert!(
            TcpStream::connect(gw.addr).is_err(),
            "{driver}: still accepting after exit"
        );
    }
}
