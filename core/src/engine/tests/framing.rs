//! HTTP/1.1 framing through the engine: request bodies (Content-Length, chunked re-framed with a
//! length), response bodies (chunked and close-delimited re-framed for the client, HEAD),
//! HTTP/1.0 clients, keep-alive, pipelining and `Expect: 100-continue`.

use std::time::Duration;

use super::client::{post, Client};
use super::harness::Setup;
use super::upstream::{chunk, json_answer, Upstream, LAST_CHUNK};

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
const PONG: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;

/// Answers each request with its own body echoed as the result.
fn echoing_upstream() -> Upstream {
    Upstream::start(|mut conn| async move {
        while let Some(request) = conn.read_request().await {
            let answer = format!(r#"{{"echo":{}}}"#, request.body_text());
            if !conn.write(&json_answer(&answer)).await {
                break;
            }
        }
    })
}

on_both_drivers!(
    content_length_request_is_forwarded_with_a_rewritten_head,
    chunked_request_is_forwarded_with_a_content_length,
    chunked_response_is_relayed_chunked,
    close_delimited_response_is_rechunked_for_the_client,
    http10_client_gets_a_close_delimited_answer,
    keep_alive_serves_two_requests_on_one_connection,
    pipelined_requests_are_answered_in_order,
    expect_100_continue_is_answered_before_the_body_is_read,
    head_request_gets_the_head_only,
    large_bodies_are_relayed_byte_for_byte,
    connection_close_from_the_client_is_honoured,
    interim_upstream_responses_are_not_forwarded,
    an_absolute_form_target_is_forwarded_in_origin_form,
);

async fn content_length_request_is_forwarded_with_a_rewritten_head() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let request = format!(
        "POST /mcp?x=1 HTTP/1.1\r\nHost: gw.test\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
         Mcp-Session-Id: s-1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{PING}",
        PING.len()
    );
    let answer = client.request(request.as_bytes()).await;
    assert_eq!(
        answer.head,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            PONG.len()
        )
    );
    assert_eq!(answer.body_text(), PONG);
    let forwarded = upstream.only_request();
    assert_eq!(
        forwarded.head,
        format!(
            "POST /up?x=1 HTTP/1.1\r\nMcp-Session-Id: s-1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nhost: {}\r\nx-forwarded-for: 127.0.0.1\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: gw.test\r\n\r\n",
            PING.len(),
            upstream.addr
        )
    );
    assert_eq!(forwarded.body_text(), PING);
}

async fn chunked_request_is_forwarded_with_a_content_length() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let (first, second) = PING.split_at(10);
    let mut request = b"POST /mcp HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n\
                        Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    request.extend(chunk(first));
    request.extend(chunk(second));
    request.extend(LAST_CHUNK);
    // In three writes, cut inside the first chunk's data and inside the second's size line.
    let head_len = request.len() - (chunk(first).len() + chunk(second).len() + LAST_CHUNK.len());
    let cuts = [head_len + 8, head_len + chunk(first).len() + 1];
    client.send(&request[..cuts[0]]).await;
    monoio::time::sleep(Duration::from_millis(20)).await;
    client.send(&request[cuts[0]..cuts[1]]).await;
    monoio::time::sleep(Duration::from_millis(20)).await;
    let answer = client.request(&request[cuts[1]..]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body_text(), PONG);
    let forwarded = upstream.only_request();
    assert_eq!(forwarded.header("transfer-encoding"), None);
    assert_eq!(
        forwarded.header("content-length"),
        Some(PING.len().to_string().as_str())
    );
    assert_eq!(forwarded.body_text(), PING);
}

async fn chunked_response_is_relayed_chunked() {
    let upstream = Upstream::start(|mut conn| async move {
        while conn.read_request().await.is_some() {
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            let (a, b) = PONG.split_at(7);
            let parts: [&[u8]; 4] = [head, &chunk(a), &chunk(b), LAST_CHUNK];
            conn.write_paced(&parts, Duration::from_millis(20)).await;
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    for _ in 0..2 {
        let answer = client.request(&post("/mcp", PING)).await;
        assert_eq!(
            answer.head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(answer.body_text(), PONG);
    }
    // Read exactly to its last chunk, the upstream connection served the second request too.
    assert_eq!(upstream.connections(), 1);
}

async fn close_delimited_response_is_rechunked_for_the_client() {
    let upstream = Upstream::start(|mut conn| async move {
        if conn.read_request().await.is_some() {
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
            let (a, b) = PONG.split_at(7);
            let parts: [&[u8]; 3] = [head, a.as_bytes(), b.as_bytes()];
            conn.write_paced(&parts, Duration::from_millis(20)).await;
            conn.shutdown().await;
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    for _ in 0..2 {
        let answer = client.request(&post("/mcp", PING)).await;
        assert_eq!(
            answer.head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(answer.body_text(), PONG);
    }
    // The client connection stayed open; each answer needed its own upstream connection.
    assert_eq!(upstream.connections(), 2);
}

async fn http10_client_gets_a_close_delimited_answer() {
    let upstream = Upstream::answering(
        [
            &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            &chunk(PONG),
            LAST_CHUNK,
        ]
        .concat(),
    );
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let request = format!(
        "POST /mcp HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{PING}",
        PING.len()
    );
    // `read_response` reads a close-delimited body to the end of the connection.
    let answer = client.request(request.as_bytes()).await;
    assert_eq!(
        answer.head,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nconnection: close\r\n\r\n"
    );
    assert_eq!(answer.body_text(), PONG);
    assert_eq!(upstream.only_request().body_text(), PING);
}

async fn keep_alive_serves_two_requests_on_one_connection() {
    let upstream = echoing_upstream();
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    for id in [1, 2] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let answer = client.request(&post("/mcp", &body)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("connection"), None);
        assert_eq!(answer.body_text(), format!(r#"{{"echo":{body}}}"#));
    }
    assert_eq!(gw.open_connections(), 1);
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.conn == 0), "{requests:#?}");
}

async fn pipelined_requests_are_answered_in_order() {
    // The first answer is slow, in two writes; the second would be ready long before.
    let upstream = Upstream::start(|mut conn| async move {
        while let Some(request) = conn.read_request().await {
            let answer = json_answer(&format!(r#"{{"echo":{}}}"#, request.body_text()));
            let (a, b) = answer.split_at(20);
            let pause = if request.body_text().contains(r#""id":1"#) {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            conn.write_paced(&[a, b], pause).await;
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let bodies: Vec<String> = (1..=3)
        .map(|id| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#))
        .collect();
    let pipelined: Vec<u8> = bodies.iter().flat_map(|b| post("/mcp", b)).collect();
    client.send(&pipelined).await;
    for body in &bodies {
        let answer = client.read_response().await;
        assert_eq!(answer.body_text(), format!(r#"{{"echo":{body}}}"#));
    }
    let forwarded: Vec<String> = upstream.requests().iter().map(|r| r.body_text()).collect();
    assert_eq!(forwarded, bodies);
}

async fn expect_100_continue_is_answered_before_the_body_is_read() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        PING.len()
    );
    client.send(head.as_bytes()).await;
    let interim = client.read_response().await;
    assert_eq!(interim.head, "HTTP/1.1 100 Continue\r\n\r\n");
    assert!(upstream.requests().is_empty());
    client.send(PING.as_bytes()).await;
    let answer = client.read_response().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body_text(), PONG);
    let forwarded = upstream.only_request();
    assert_eq!(forwarded.header("expect"), None);
    assert_eq!(forwarded.body_text(), PING);
}

async fn head_request_gets_the_head_only() {
    let upstream = Upstream::start(|mut conn| async move {
        while let Some(request) = conn.read_request().await {
            let answer = if request.request_line().starts_with("HEAD ") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    PONG.len()
                )
                .into_bytes()
            } else {
                json_answer(PONG)
            };
            conn.write(&answer).await;
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client
        .send(b"HEAD /mcp HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await;
    let answer = client.read_response_to_head().await;
    assert_eq!(
        answer.head,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            PONG.len()
        )
    );
    // Nothing followed the head: the next answer on the connection parses from its first byte.
    let answer = client.request(&post("/mcp", PING)).await;
    assert_eq!(answer.body_text(), PONG);
    let lines: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| r.request_line().to_string())
        .collect();
    assert_eq!(lines, ["HEAD /up HTTP/1.1", "POST /up HTTP/1.1"]);
    assert_eq!(upstream.connections(), 1);
}

async fn large_bodies_are_relayed_byte_for_byte() {
    // Past the sizes the engine copies behind a head: written from where they were read.
    let upstream = echoing_upstream();
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let pad: String = (0..100_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{pad}"}}}}"#);
    for _ in 0..2 {
        let answer = client.request(&post("/mcp", &body)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body_text(), format!(r#"{{"echo":{body}}}"#));
    }
    let forwarded = upstream.requests();
    assert_eq!(forwarded.len(), 2);
    assert!(forwarded
        .iter()
        .all(|r| r.body == body.as_bytes() && r.conn == 0));
}

async fn connection_close_from_the_client_is_honoured() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{PING}",
        PING.len()
    );
    let answer = client.request(request.as_bytes()).await;
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(answer.body_text(), PONG);
    assert_eq!(client.closed().await, b"");
    // Hop-by-hop: the upstream connection is the gateway's own and stays pooled.
    assert_eq!(upstream.only_request().header("connection"), None);
}

async fn interim_upstream_responses_are_not_forwarded() {
    let upstream = Upstream::answering(
        [
            &b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"[..],
            &json_answer(PONG),
        ]
        .concat(),
    );
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    for _ in 0..2 {
        let answer = client.request(&post("/mcp", PING)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("link"), None);
        assert_eq!(answer.body_text(), PONG);
    }
    assert_eq!(upstream.connections(), 1);
}

async fn an_absolute_form_target_is_forwarded_in_origin_form() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let request = format!(
        "POST http://gw.test/mcp/sub?x=1 HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\n\r\n{PING}",
        PING.len()
    );
    assert_eq!(client.request(request.as_bytes()).await.body_text(), PONG);
    assert_eq!(
        upstream.only_request().request_line(),
        "POST /up/sub?x=1 HTTP/1.1"
    );
}
