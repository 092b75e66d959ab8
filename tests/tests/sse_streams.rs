//! SSE streams on the wire: resumption of a POST stream with `GET` + `Last-Event-ID` after the
//! client's connection dropped, and the gateway's signals: SIGTERM lets an in-flight stream
//! finish while new connections are refused; SIGHUP swaps the config without failing an
//! in-flight stream and keeps the old config when the new file is bad; a response-head timeout
//! never cuts a stream whose head has arrived; a GET stream idle for seconds (the gateway then
//! waits on it holding no read buffer) relays a 200 KB event and the small ones after it whole.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mcpgate_tests::http::{
    build_request, initialize_body, post_mcp, SseEvent, SseStream, MCP_ACCEPT,
};
use mcpgate_tests::{record_skip, Driver, Gateway, GatewaySpec, ServerEverything};
use serde_json::{json, Value};

const API: &str = "/mcp-proxy";
const PROTOCOL: &str = "2025-11-25";

/// An initialized MCP session, driven by hand.
struct Session {
    addr: SocketAddr,
    path: String,
    id: String,
}

impl Session {
    fn open(addr: SocketAddr, path: &str) -> Self {
        let init = post_mcp(addr, path, &[], &initialize_body(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            init.status,
            200,
            "initialize: {} {}",
            init.status,
            init.body_text()
        );
        let id = init
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("no session id: {:?}", init.headers))
            .to_owned();
        let session = Self {
            addr,
            path: path.to_owned(),
            id,
        };
        let ack = post_mcp(
            addr,
            path,
            &session.headers(),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ack.status,
            202,
            "notifications/initialized: {}",
            ack.body_text()
        );
        session
    }

    fn headers(&self) -> [(&str, &str); 2] {
        [
            ("Mcp-Session-Id", self.id.as_str()),
            ("MCP-Protocol-Version", PROTOCOL),
        ]
    }

    /// POSTs a `tools/call` of the long-running tool with a progress token; returns its stream.
    fn start_long_operation(&self, request_id: u64, duration_s: u64, steps: u64) -> SseStream {
        let body = json!({
            "jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {
                "name": "trigger-long-running-operation",
                "arguments": {"duration": duration_s, "steps": steps},
                "_meta": {"progressToken": format!("progress-{request_id}")}
            }
        })
        .to_string();
        let mut headers = vec![("Content-Type", "application/json"), ("Accept", MCP_ACCEPT)];
        headers.extend_from_slice(&self.headers());
        let request = build_request(
            "POST",
            &self.path,
            &self.addr.to_string(),
            &headers,
            body.as_bytes(),
        );
        let stream = SseStream::open(self.addr, &request, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            stream.status, 200,
            "tools/call did not open a stream: {:?}",
            stream.headers
        );
        assert!(
            stream
                .header("content-type")
                .is_some_and(|ct| ct.starts_with("text/event-stream")),
            "tools/call was not answered as SSE: {:?}",
            stream.headers
        );
        stream
    }

    /// Resumes a stream: GET with `Last-Event-ID`.
    fn resume(&self, last_event_id: &str) -> SseStream {
        let mut headers = vec![
            ("Accept", "text/event-stream"),
            ("Last-Event-ID", last_event_id),
        ];
        headers.extend_from_slice(&self.headers());
        let request = build_request("GET", &self.path, &self.addr.to_string(), &headers, b"");
        SseStream::open(self.addr, &request, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Reads events until the JSON-RPC response with `id` arrives; returns everything read.
fn read_until_response(stream: &mut SseStream, id: u64, timeout: Duration) -> Vec<SseEvent> {
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    loop {
        match stream.next_event(deadline) {
            Ok(Some(event)) => {
                let done = event.json()["id"] == json!(id) && event.json().get("result").is_some();
                events.push(event);
                if done {
                    return events;
                }
            }
            Ok(None) => panic!("stream ended before the response to {id}; got {events:#?}"),
            Err(error) => panic!("{error}; got {events:#?}"),
        }
    }
}

fn progress_values(events: &[SseEvent]) -> Vec<f64> {
    events
        .iter()
        .map(SseEvent::json)
        .filter(|m| m["method"] == json!("notifications/progress"))
        .filter_map(|m| m["params"]["progress"].as_f64())
        .collect()
}

/// Reads events until one with an id that carries a progress notification.
fn first_progress_with_id(stream: &mut SseStream) -> SseEvent {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match stream.next_event(deadline) {
            Ok(Some(event))
                if event.id.is_some()
                    && event.json()["method"] == json!("notifications/progress") =>
            {
                return event;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream ended before any progress event"),
            Err(error) => panic!("{error}"),
        }
    }
}

/// Resumes after `last_id` until the replay holds the response to `id`. server-everything's
/// example event store replays what it stored after `last_id` but does not attach later live
/// events to the resumed stream, so the test asks again (a poll with a deadline) until the
/// operation has finished and the store holds everything.
fn resume_until_complete(session: &Session, last_id: &str, id: u64) -> Vec<SseEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempts = Vec::new();
    loop {
        let mut resumed = session.resume(last_id);
        assert_eq!(resumed.status, 200, "resume refused: {:?}", resumed.headers);
        let mut events = Vec::new();
        let quiet = Instant::now() + Duration::from_millis(700);
        while let Ok(Some(event)) = resumed.next_event(quiet.min(deadline)) {
            let done = event.json()["id"] == json!(id) && event.json().get("result").is_some();
            events.push(event);
            if done {
                return events;
            }
        }
        attempts.push(events.len());
        assert!(
            Instant::now() < deadline,
            "no replay held the response to {id}; events per attempt: {attempts:?}"
        );
    }
}

fn check_resumption(addr: SocketAddr, path: &str) {
    let session = Session::open(addr, path);
    let mut stream = session.start_long_operation(21, 2, 4);
    let first = first_progress_with_id(&mut stream);
    assert_eq!(first.json()["params"]["progress"], json!(1));
    let last_id = first.id.clone().unwrap_or_default();
    // The client's connection drops mid-stream; that is not a cancellation.
    drop(stream);

    let events = resume_until_complete(&session, &last_id, 21);
    let progress = progress_values(&events);
    assert_eq!(
        progress,
        [2.0, 3.0, 4.0],
        "the resumed stream replayed {progress:?}, expected exactly what followed event 1"
    );
    let result = events.last().map(SseEvent::json).unwrap_or(Value::Null);
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Long running operation completed")),
        "resumed stream ended with {result}"
    );
}

#[test]
fn resumption_with_last_event_id_direct() {
    let server = ServerEverything::start();
    check_resumption(server.addr(), "/mcp");
}

#[test]
fn resumption_with_last_event_id_through_the_gateway() {
    let server = ServerEverything::start();
    let gateway = Gateway::start(&GatewaySpec::cli(server.upstream_url(), API));
    check_resumption(gateway.addr(), API);
}

fn refuses_connections(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err()
}

#[test]
fn sigterm_finishes_the_in_flight_stream_and_stops_accepting() {
    let server = ServerEverything::start();
    let mut gateway = Gateway::start(&GatewaySpec::cli(server.upstream_url(), API));
    let session = Session::open(gateway.addr(), API);
    let mut stream = session.start_long_operation(31, 2, 4);
    let first = first_progress_with_id(&mut stream);
    assert_eq!(first.json()["params"]["progress"], json!(1));

    gateway.process().signal(libc::SIGTERM);

    let deadline = Instant::now() + Duration::from_secs(5);
    while !refuses_connections(gateway.addr()) {
        assert!(
            Instant::now() < deadline,
            "still accepting connections 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    let events = read_until_response(&mut stream, 31, Duration::from_secs(20));
    assert_eq!(
        progress_values(&events),
        [2.0, 3.0, 4.0],
        "the in-flight stream lost events after SIGTERM"
    );
    let status = gateway.process().wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "the gateway did not exit cleanly after draining: {status:?}\n{}",
        gateway.output()
    );
}

fn config(upstream: &str, path: &str) -> String {
    format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"reloadable\"\npath = \"{path}\"\nupstream = \"{upstream}\"\n"
    )
}

fn initialize_status(addr: SocketAddr, path: &str) -> u16 {
    post_mcp(addr, path, &[], &initialize_body(1))
        .map(|r| r.status)
        .unwrap_or(0)
}

#[test]
fn sighup_reloads_without_failing_an_in_flight_stream() {
    let server = ServerEverything::start();
    let mut gateway = Gateway::start(&GatewaySpec::config(config(
        &server.upstream_url(),
        "/first",
    )));
    assert_eq!(initialize_status(gateway.addr(), "/first"), 200);
    assert_eq!(initialize_status(gateway.addr(), "/second"), 404);

    let session = Session::open(gateway.addr(), "/first");
    let mut stream = session.start_long_operation(41, 2, 4);
    let first = first_progress_with_id(&mut stream);
    assert_eq!(first.json()["params"]["progress"], json!(1));

    let file = gateway
        .config_path()
        .unwrap_or_else(|| panic!("no config file"));
    let listen = gateway.addr().to_string();
    let admin = gateway.admin_addr().to_string();
    let second = config(&server.upstream_url(), "/second")
        .replace("{listen}", &listen)
        .replace("{admin}", &admin);
    std::fs::write(&file, second).unwrap_or_else(|e| panic!("rewrite config: {e}"));
    gateway.process().signal(libc::SIGHUP);

    let deadline = Instant::now() + Duration::from_secs(10);
    while initialize_status(gateway.addr(), "/second") != 200 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not bring /second up\n{}",
            gateway.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        initialize_status(gateway.addr(), "/first"),
        404,
        "the old API survived the reload"
    );
    let events = read_until_response(&mut stream, 41, Duration::from_secs(20));
    assert_eq!(
        progress_values(&events),
        [2.0, 3.0, 4.0],
        "the in-flight stream lost events across SIGHUP"
    );

    // A broken file keeps the running config.
    std::fs::write(&file, "[gateway]\nlisten = \n")
        .unwrap_or_else(|e| panic!("rewrite config: {e}"));
    gateway.process().signal(libc::SIGHUP);
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        assert!(
            gateway.process().exited().is_none(),
            "a bad config on SIGHUP killed the gateway\n{}",
            gateway.output()
        );
        assert_eq!(
            initialize_status(gateway.addr(), "/second"),
            200,
            "a bad config on SIGHUP replaced the good one"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_long_stream_is_not_cut_by_the_response_head_timeout() {
    let server = ServerEverything::start();
    // Events 1 s apart, a 300 ms response-head timeout: the head comes at once, and the timeout
    // must not apply to the gaps between events that follow it.
    let config = format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [gateway.timeouts]\nupstream_response_head = \"300ms\"\n\n\
         [[api]]\nname = \"slow-events\"\npath = \"{API}\"\nupstream = \"{}\"\n",
        server.upstream_url()
    );
    let gateway = Gateway::start(&GatewaySpec::config(config));
    let session = Session::open(gateway.addr(), API);
    let started = Instant::now();
    let mut stream = session.start_long_operation(51, 3, 3);
    let events = read_until_response(&mut stream, 51, Duration::from_secs(20));
    assert_eq!(
        progress_values(&events),
        [1.0, 2.0, 3.0],
        "the stream was cut or lost events"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "the operation ended early: {:?}",
        started.elapsed()
    );
}

/// One chunk of a chunked body.
fn chunk(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n", body.len())
}

/// An upstream that accepts one connection, reads its request head, answers with a chunked
/// event stream whose first event (`id: 0`, `data: first`) goes at once, then hands the
/// connection (its reader and a writer) to `then`, on the upstream's thread.
fn one_stream_upstream(
    then: impl FnOnce(BufReader<TcpStream>, TcpStream) + Send + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            line.clear();
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        let first = chunk("id: 0\ndata: first\n\n");
        if writer
            .write_all(format!("{head}{first}").as_bytes())
            .is_err()
        {
            return;
        }
        then(reader, writer);
    });
    addr
}

/// A gateway on `driver` in front of `upstream`, and a GET event stream through it that has
/// received its first event.
fn stream_at_first_event(upstream: SocketAddr, driver: Driver) -> (Gateway, SseStream) {
    let gateway =
        Gateway::start(&GatewaySpec::cli(format!("http://{upstream}/mcp"), API).driver(driver));
    let request = build_request(
        "GET",
        API,
        &gateway.addr().to_string(),
        &[("Accept", "text/event-stream")],
        b"",
    );
    let mut stream = SseStream::open(gateway.addr(), &request, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{driver:?}: {e}\n{}", gateway.output()));
    assert_eq!(stream.status, 200, "{driver:?}: {}", gateway.output());
    let first = stream
        .next_event(Instant::now() + Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{driver:?}: {e}"));
    assert_eq!(
        first.map(|e| e.data),
        Some("first".to_owned()),
        "{driver:?}"
    );
    (gateway, stream)
}

/// An upstream holding one GET event stream: the first event at once, then, when the test sends
/// on `go`, one event with `big` bytes of data followed by `small` small events, each its own
/// chunk and its own write.
fn held_stream_upstream(big: usize, small: usize) -> (SocketAddr, mpsc::Sender<()>) {
    let (go, wait) = mpsc::channel::<()>();
    let addr = one_stream_upstream(move |_reader, mut writer| {
        // The idle period is the test's: the gateway waits for the next byte meanwhile.
        if wait.recv_timeout(Duration::from_secs(30)).is_err() {
            return;
        }
        let large = format!("id: 1\ndata: {}\n\n", "x".repeat(big));
        if writer.write_all(chunk(&large).as_bytes()).is_err() {
            return;
        }
        for i in 0..small {
            let event = chunk(&format!("id: {}\ndata: small {i}\n\n", i + 2));
            if writer.write_all(event.as_bytes()).is_err() {
                return;
            }
        }
        // Held open: the gateway must not wait for the upstream's end to relay what came.
        let _ = wait.recv_timeout(Duration::from_secs(30));
    });
    (addr, go)
}

/// An upstream holding one GET event stream that reports (on the returned receiver) when the
/// gateway closes its side of the connection.
fn upstream_watching_for_close() -> (SocketAddr, mpsc::Receiver<()>) {
    let (closed, seen) = mpsc::channel::<()>();
    let addr = one_stream_upstream(move |mut reader, _writer| {
        // Silent from here on: the only way this read ends is the gateway closing (or a reset).
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let _ = closed.send(());
    });
    (addr, seen)
}

#[test]
fn a_large_event_after_a_long_idle_get_stream_is_relayed_whole() {
    const BIG: usize = 200 * 1024;
    const SMALL: usize = 5;
    for driver in [Driver::Epoll, Driver::Uring] {
        if let Err(reason) = driver.available() {
            record_skip(
                "a_large_event_after_a_long_idle_get_stream on io_uring",
                &reason,
            );
            continue;
        }
        let (upstream, go) = held_stream_upstream(BIG, SMALL);
        let (_gateway, mut stream) = stream_at_first_event(upstream, driver);

        // The point of the test: seconds of silence, far past any wait that starts without a
        // buffer, before the burst.
        std::thread::sleep(Duration::from_millis(2500));
        go.send(())
            .unwrap_or_else(|e| panic!("the upstream is gone: {e}"));

        let deadline = Instant::now() + Duration::from_secs(10);
        let large = stream
            .next_event(deadline)
            .unwrap_or_else(|e| panic!("{driver:?}: {e}"))
            .unwrap_or_else(|| panic!("{driver:?}: the stream ended before the large event"));
        assert_eq!(large.id.as_deref(), Some("1"), "{driver:?}");
        assert_eq!(
            large.data.len(),
            BIG,
            "{driver:?}: the large event was not relayed whole"
        );
        assert!(
            large.data.bytes().all(|b| b == b'x'),
            "{driver:?}: the large event changed"
        );
        for i in 0..SMALL {
            let event = stream
                .next_event(deadline)
                .unwrap_or_else(|e| panic!("{driver:?}: {e}"))
                .unwrap_or_else(|| panic!("{driver:?}: the stream ended before small {i}"));
            assert_eq!(
                event.id,
                Some((i + 2).to_string()),
                "{driver:?}: out of order"
            );
            assert_eq!(event.data, format!("small {i}"), "{driver:?}");
        }
        drop(go);
    }
}

/// A client that hangs up an idle GET stream (the gateway waiting on its readiness, holding no
/// buffer) frees the upstream connection promptly, on both drivers.
#[test]
fn a_client_leaving_an_idle_get_stream_closes_the_upstream_side() {
    for driver in [Driver::Epoll, Driver::Uring] {
        if let Err(reason) = driver.available() {
            record_skip("a_client_leaving_an_idle_get_stream on io_uring", &reason);
            continue;
        }
        let (upstream, closed) = upstream_watching_for_close();
        let (gateway, stream) = stream_at_first_event(upstream, driver);
        drop(stream);
        closed
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| {
                panic!(
                    "{driver:?}: the upstream side stayed open after the client left\n{}",
                    gateway.output()
                )
            });
    }
}
