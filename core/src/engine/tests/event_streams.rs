//! Event streams (`text/event-stream`) through the engine: relayed event by event at the
//! upstream's pace, comments and priming events kept, the legacy `endpoint` event pointed back
//! at the gateway, the relay ended by the client leaving, by `sse_idle`, by the upstream's end
//! (chunked or Content-Length) or cut when the upstream dies mid-stream.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::client::{get, post, Client};
use super::harness::{assert_took_about, eventually, Setup};
use super::upstream::{chunk, json_answer, Upstream, LAST_CHUNK, SSE_HEAD};

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}"#;
const PROGRESS: &str = "id: s-1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"p7\",\"progress\":1}}\n\n";
const RESULT: &str =
    "id: s-2\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[]}}\n\n";

/// The stream's head as the client gets it from a chunked upstream stream.
const CLIENT_SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                               x-accel-buffering: no\r\ntransfer-encoding: chunked\r\n\r\n";

/// An upstream answering its first request with `events` (one chunk each, in one write, then
/// the last chunk) and every later request with a JSON answer.
fn upstream_streaming(events: &'static [&'static str]) -> Upstream {
    Upstream::start(move |mut conn| async move {
        let mut first = conn.index == 0;
        while conn.read_request().await.is_some() {
            let answer = if first {
                let mut stream = SSE_HEAD.to_vec();
                for event in events {
                    stream.extend(chunk(event));
                }
                stream.extend(LAST_CHUNK);
                stream
            } else {
                json_answer("{}")
            };
            first = false;
            conn.write(&answer).await;
        }
    })
}

on_both_drivers!(
    events_are_relayed_one_by_one_as_they_arrive,
    keep_alive_comments_are_relayed,
    a_priming_event_with_empty_data_is_relayed,
    the_legacy_endpoint_event_is_rewritten_under_the_api_path,
    a_client_disconnect_ends_the_relay,
    sse_idle_ends_a_silent_stream_cleanly,
    a_stream_with_content_length_is_rechunked_and_pooled,
    an_upstream_dying_mid_stream_cuts_the_client_connection,
    a_request_pipelined_during_a_stream_is_answered_after_it,
    an_http10_client_gets_the_stream_close_delimited,
    draining_ends_a_get_stream_cleanly_and_lets_a_post_stream_finish,
);

async fn events_are_relayed_one_by_one_as_they_arrive() {
    let first_seen = Rc::new(Cell::new(false));
    let seen = first_seen.clone();
    let upstream = Upstream::start(move |mut conn| {
        let seen = seen.clone();
        async move {
            conn.read_request().await;
            conn.write(&[SSE_HEAD, &chunk(PROGRESS)].concat()).await;
            // The second event only once the client holds the first: nothing was held back.
            eventually("the client to see the first event", || seen.get()).await;
            // An event split inside a line, across two chunks and two writes.
            let (a, b) = RESULT.split_at(20);
            let parts: [&[u8]; 2] = [&chunk(a), &[&chunk(b)[..], LAST_CHUNK].concat()];
            conn.write_paced(&parts, Duration::from_millis(30)).await;
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&post("/mcp", CALL)).await;
    let head = client.read_head().await;
    assert_eq!(head.head, CLIENT_SSE_HEAD);
    let mut events = client.events();
    assert_eq!(events.next_event().await, PROGRESS);
    first_seen.set(true);
    assert_eq!(events.next_event().await, RESULT);
    assert_eq!(events.end().await, "");
    assert_eq!(upstream.only_request().body_text(), CALL);
}

async fn keep_alive_comments_are_relayed() {
    static EVENTS: [&str; 3] = [": keepalive\n\n", PROGRESS, ":\n\n"];
    let upstream = upstream_streaming(&EVENTS);
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&get("/mcp")).await;
    assert_eq!(client.read_head().await.head, CLIENT_SSE_HEAD);
    let mut events = client.events();
    for event in EVENTS {
        assert_eq!(events.next_event().await, event);
    }
    assert_eq!(events.end().await, "");
}

async fn a_priming_event_with_empty_data_is_relayed() {
    static EVENTS: [&str; 2] = ["id: p-0\nretry: 2000\ndata:\n\n", RESULT];
    let upstream = upstream_streaming(&EVENTS);
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&post("/mcp", CALL)).await;
    assert_eq!(client.read_head().await.status, 200);
    let mut events = client.events();
    for event in EVENTS {
        assert_eq!(events.next_event().await, event);
    }
    assert_eq!(events.end().await, "");
}

async fn the_legacy_endpoint_event_is_rewritten_under_the_api_path() {
    static EVENTS: [&str; 2] = [
        "event: endpoint\ndata: /messages?sessionId=abc\n\n",
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n",
    ];
    let upstream = upstream_streaming(&EVENTS);
    let gw = Setup::new(upstream.addr)
        .paths("/legacy", "/")
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&get("/legacy/sse")).await;
    assert_eq!(client.read_head().await.status, 200);
    let mut events = client.events();
    assert_eq!(
        events.next_event().await,
        "event: endpoint\ndata: /legacy/messages?sessionId=abc\n\n"
    );
    assert_eq!(events.next_event().await, EVENTS[1]);
    assert_eq!(events.end().await, "");
    assert_eq!(upstream.only_request().request_line(), "GET /sse HTTP/1.1");
}

async fn a_client_disconnect_ends_the_relay() {
    let upstream_saw_close = Rc::new(Cell::new(None));
    let saw_close = upstream_saw_close.clone();
    let upstream = Upstream::start(move |mut conn| {
        let saw_close = saw_close.clone();
        async move {
            conn.read_request().await;
            conn.write(&[SSE_HEAD, &chunk(PROGRESS)].concat()).await;
            saw_close.set(Some(conn.closed_by_gateway().await));
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&get("/mcp")).await;
    assert_eq!(client.read_head().await.status, 200);
    assert_eq!(client.events().next_event().await, PROGRESS);
    drop(client);
    eventually("the upstream to see its stream closed", || {
        upstream_saw_close.get().is_some()
    })
    .await;
    assert_eq!(upstream_saw_close.get(), Some(true));
    eventually("the gateway to drop the client connection", || {
        gw.open_connections() == 0
    })
    .await;
}

async fn sse_idle_ends_a_silent_stream_cleanly() {
    let upstream_saw_close = Rc::new(Cell::new(None));
    let saw_close = upstream_saw_close.clone();
    let upstream = Upstream::start(move |mut conn| {
        let saw_close = saw_close.clone();
        async move {
            conn.read_request().await;
            if conn.index == 0 {
                conn.write(&[SSE_HEAD, &chunk(PROGRESS)].concat()).await;
                saw_close.set(Some(conn.closed_by_gateway().await));
            } else {
                conn.write(&json_answer("{}")).await;
            }
        }
    });
    let gw = Setup::new(upstream.addr)
        .timeout("sse_idle", "300ms")
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&get("/mcp")).await;
    assert_eq!(client.read_head().await.status, 200);
    let mut events = client.events();
    assert_eq!(events.next_event().await, PROGRESS);
    let silent_since = Instant::now();
    // Ended with its last chunk: a clean end the client resumes from, not a truncation.
    assert_eq!(events.end().await, "");
    assert_took_about(silent_since.elapsed(), Duration::from_millis(300));
    eventually("the upstream to see its stream closed", || {
        upstream_saw_close.get().is_some()
    })
    .await;
    assert_eq!(upstream_saw_close.get(), Some(true));
    // The client connection is still good for the next request.
    let answer = client.request(&post("/mcp", CALL)).await;
    assert_eq!(answer.body_text(), "{}");
}

async fn a_stream_with_content_length_is_rechunked_and_pooled() {
    let upstream = Upstream::start(|mut conn| async move {
        let mut first = true;
        while conn.read_request().await.is_some() {
            let answer = if first {
                let events = format!("{PROGRESS}{RESULT}");
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{events}",
                    events.len()
                )
                .into_bytes()
            } else {
                json_answer("{}")
            };
            first = false;
            conn.write(&answer).await;
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&post("/mcp", CALL)).await;
    assert_eq!(client.read_head().await.head, CLIENT_SSE_HEAD);
    let mut events = client.events();
    assert_eq!(events.next_event().await, PROGRESS);
    assert_eq!(events.next_event().await, RESULT);
    assert_eq!(events.end().await, "");
    // Read exactly to its length, the upstream connection went back to the pool.
    let answer = client.request(&post("/mcp", CALL)).await;
    assert_eq!(answer.body_text(), "{}");
    let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 0]);
}

async fn an_upstream_dying_mid_stream_cuts_the_client_connection() {
    let upstream = Upstream::start(|mut conn| async move {
        conn.read_request().await;
        conn.write(&[SSE_HEAD, &chunk(PROGRESS)].concat()).await;
        conn.shutdown().await;
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&post("/mcp", CALL)).await;
    assert_eq!(client.read_head().await.status, 200);
    assert_eq!(client.events().next_event().await, PROGRESS);
    // No last chunk: the client sees a truncated stream, never a complete one.
    assert_eq!(client.closed().await, b"");
}

async fn a_request_pipelined_during_a_stream_is_answered_after_it() {
    let second_sent = Rc::new(Cell::new(false));
    let sent = second_sent.clone();
    let upstream = Upstream::start(move |mut conn| {
        let sent = sent.clone();
        async move {
            let mut first = true;
            while conn.read_request().await.is_some() {
                if first {
                    conn.write(&[SSE_HEAD, &chunk(PROGRESS)].concat()).await;
                    eventually("the client's second request", || sent.get()).await;
                    // A pause: the gateway reads that request while the stream is still open.
                    monoio::time::sleep(Duration::from_millis(20)).await;
                    conn.write(&[&chunk(RESULT)[..], LAST_CHUNK].concat()).await;
                } else {
                    conn.write(&json_answer("{}")).await;
                }
                first = false;
            }
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&post("/mcp", CALL)).await;
    assert_eq!(client.read_head().await.status, 200);
    assert_eq!(client.events().next_event().await, PROGRESS);
    // Sent while the stream is open: the gateway keeps it for after the stream.
    client.send(&post("/mcp", CALL)).await;
    second_sent.set(true);
    let mut events = client.events();
    assert_eq!(events.next_event().await, RESULT);
    assert_eq!(events.end().await, "");
    assert_eq!(client.read_response().await.body_text(), "{}");
    let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 0]);
}

async fn an_http10_client_gets_the_stream_close_delimited() {
    static EVENTS: [&str; 2] = [PROGRESS, RESULT];
    let upstream = upstream_streaming(&EVENTS);
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client
        .send(b"GET /mcp HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
        .await;
    let head = client.read_head().await;
    assert_eq!(
        head.head,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nx-accel-buffering: no\r\nconnection: close\r\n\r\n"
    );
    assert_eq!(
        client.closed().await,
        format!("{PROGRESS}{RESULT}").as_bytes()
    );
}

async fn draining_ends_a_get_stream_cleanly_and_lets_a_post_stream_finish() {
    let drained = Rc::new(Cell::new(false));
    let drained_seen = drained.clone();
    let upstream = Upstream::start(move |mut conn| {
        let drained = drained_seen.clone();
        async move {
            let Some(request) = conn.read_request().await else {
                return;
            };
            conn.write(&[SSE_HEAD, &chunk(PROGRESS)].concat()).await;
            if request.request_line().starts_with("POST ") {
                // The answer comes after the drain started: the POST's stream still ends
                // with it.
                eventually("the drain", || drained.get()).await;
                conn.write(&[&chunk(RESULT)[..], LAST_CHUNK].concat()).await;
            } else {
                conn.closed_by_gateway().await;
            }
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut listening = Client::connect(gw.addr).await;
    listening.send(&get("/mcp")).await;
    assert_eq!(listening.read_head().await.status, 200);
    assert_eq!(listening.events().next_event().await, PROGRESS);
    let mut calling = Client::connect(gw.addr).await;
    calling.send(&post("/mcp", CALL)).await;
    assert_eq!(calling.read_head().await.status, 200);
    assert_eq!(calling.events().next_event().await, PROGRESS);

    gw.drain();
    drained.set(true);
    // The GET stream ends with its last chunk (clients resume with Last-Event-ID), then the
    // connection closes.
    assert_eq!(listening.events().end().await, "");
    assert_eq!(listening.closed().await, b"");
    let mut events = calling.events();
    assert_eq!(events.next_event().await, RESULT);
    assert_eq!(events.end().await, "");
    assert_eq!(calling.closed().await, b"");
}
