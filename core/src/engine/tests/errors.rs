//! Every answer the gateway writes itself (docs/configuration.md, "Errors the gateway answers
//! itself"): status, JSON-RPC code and message, the request's id when it was read, whether the
//! connection is kept, and that a refused request never reaches the upstream. A failure after
//! the answer started closes the client connection instead.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::client::{post, Client};
use super::harness::{assert_took_about, eventually, Setup};
use super::upstream::{chunk, json_answer, Upstream};

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}"#;
const ECHOED: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;

/// An upstream that reads each request and answers it with `answer`, then closes.
fn upstream_answering_once(answer: &'static [u8]) -> Upstream {
    Upstream::start(move |mut conn| async move {
        if conn.read_request().await.is_some() {
            conn.write(answer).await;
        }
    })
}

on_both_drivers!(
    an_unknown_path_is_404_and_keeps_the_connection,
    an_unknown_path_with_a_body_is_404_and_closes,
    a_dot_segment_is_400,
    content_length_with_transfer_encoding_is_400,
    a_request_without_host_is_400,
    a_body_over_max_body_bytes_is_413_before_it_is_read,
    a_chunked_body_over_max_body_bytes_is_413,
    a_head_over_max_head_bytes_is_431,
    a_transfer_coding_other_than_chunked_is_501,
    a_utf7_charset_is_415,
    an_mcp_method_header_disagreeing_with_the_body_is_400,
    an_upstream_refusing_the_connection_is_502,
    an_upstream_never_answering_is_504_within_upstream_response_head,
    an_upstream_closing_before_the_head_is_502,
    a_malformed_upstream_head_is_502,
    bad_chunked_framing_before_any_byte_went_out_is_502,
    bad_chunked_framing_after_bytes_went_out_closes_the_client,
    a_slow_body_is_408_after_client_body,
    an_upstream_switching_protocols_is_502,
    an_upstream_dying_mid_body_closes_the_client,
);

async fn an_unknown_path_is_404_and_keeps_the_connection() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    for path in ["/other", "/mcpx"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n\r\n");
        let answer = client.request(request.as_bytes()).await;
        answer.assert_gateway_error(404, -32600, "null", "no API is served at this path");
        assert_eq!(answer.header("connection"), None);
    }
    assert_eq!(
        client.request(&post("/mcp", CALL)).await.body_text(),
        ECHOED
    );
    assert_eq!(upstream.only_request().body_text(), CALL);
}

async fn an_unknown_path_with_a_body_is_404_and_closes() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(&post("/other", CALL)).await;
    answer.assert_gateway_error(404, -32600, "null", "no API is served at this path");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn a_dot_segment_is_400() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client
        .request(b"GET /mcp/../admin HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await;
    answer.assert_gateway_error(
        400,
        -32600,
        "null",
        "malformed message: dot segment in the request path",
    );
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn content_length_with_transfer_encoding_is_400() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        chunk(CALL).len() + 5,
        String::from_utf8_lossy(&[&chunk(CALL)[..], b"0\r\n\r\n"].concat())
    );
    let answer = client.request(request.as_bytes()).await;
    answer.assert_gateway_error(
        400,
        -32600,
        "null",
        "bad message framing: content-length together with transfer-encoding",
    );
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn a_request_without_host_is_400() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(b"GET /mcp HTTP/1.1\r\n\r\n").await;
    answer.assert_gateway_error(400, -32600, "null", "malformed message: missing host field");
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn a_body_over_max_body_bytes_is_413_before_it_is_read() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr)
        .limit("max_body_bytes", 64)
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    // Only the head: the answer does not wait for a body it refuses.
    let answer = client
        .request(b"POST /mcp HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\nContent-Length: 65\r\n\r\n")
        .await;
    answer.assert_gateway_error(413, -32600, "null", "body larger than the limit");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn a_chunked_body_over_max_body_bytes_is_413() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr)
        .limit("max_body_bytes", 64)
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    let mut request =
        b"POST /mcp HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend(chunk(&"x".repeat(40)));
    request.extend(chunk(&"y".repeat(40)));
    let answer = client.request(&request).await;
    answer.assert_gateway_error(413, -32600, "null", "body larger than the limit");
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn a_head_over_max_head_bytes_is_431() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr)
        .limit("max_head_bytes", 512)
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    let request = format!(
        "GET /mcp HTTP/1.1\r\nHost: gw.test\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(600)
    );
    let answer = client.request(request.as_bytes()).await;
    answer.assert_gateway_error(431, -32600, "null", "request head larger than the limit");
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn a_transfer_coding_other_than_chunked_is_501() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client
        .request(b"POST /mcp HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
        .await;
    answer.assert_gateway_error(501, -32600, "null", "unsupported transfer-encoding");
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn a_utf7_charset_is_415() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json; charset=utf-7\r\n\
         Content-Length: {}\r\n\r\n{CALL}",
        CALL.len()
    );
    let answer = client.request(request.as_bytes()).await;
    assert_eq!(answer.status, 415);
    let error = answer.json();
    assert_eq!(error["id"], serde_json::Value::Null);
    assert_eq!(error["error"]["code"], -32600);
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("unsupported media type: "), "{message}");
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn an_mcp_method_header_disagreeing_with_the_body_is_400() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: gw.test\r\nMcp-Method: tools/list\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{CALL}",
        CALL.len()
    );
    let answer = client.request(request.as_bytes()).await;
    answer.assert_gateway_error(
        400,
        -32020,
        "7",
        "Header mismatch: Mcp-Method does not match the body",
    );
    assert_eq!(upstream.connections(), 0);
    // The body was read: the connection is kept, and an agreeing header goes through.
    let request = request.replace("Mcp-Method: tools/list", "Mcp-Method: tools/call");
    assert_eq!(client.request(request.as_bytes()).await.body_text(), ECHOED);
    assert_eq!(
        upstream.only_request().header("mcp-method"),
        Some("tools/call")
    );
}

async fn an_upstream_refusing_the_connection_is_502() {
    let gw = Setup::new(Upstream::refusing_address()).start().await;
    let mut client = Client::connect(gw.addr).await;
    for _ in 0..2 {
        let answer = client.request(&post("/mcp", CALL)).await;
        assert_eq!(answer.status, 502);
        assert_eq!(answer.header("connection"), None);
        let error = answer.json();
        assert_eq!(error["id"], 7);
        assert_eq!(error["error"]["code"], -32603);
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("upstream connection failed: "),
            "{message}"
        );
    }
}

async fn an_upstream_never_answering_is_504_within_upstream_response_head() {
    let upstream_saw_close = Rc::new(Cell::new(None));
    let saw_close = upstream_saw_close.clone();
    let upstream = Upstream::start(move |mut conn| {
        let saw_close = saw_close.clone();
        async move {
            conn.read_request().await;
            saw_close.set(Some(conn.closed_by_gateway().await));
        }
    });
    let gw = Setup::new(upstream.addr)
        .timeout("upstream_response_head", "300ms")
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    let sent = Instant::now();
    let answer = client.request(&post("/mcp", CALL)).await;
    let waited = sent.elapsed();
    answer.assert_gateway_error(504, -32603, "7", "upstream did not answer in time");
    assert_took_about(waited, Duration::from_millis(300));
    // The silent connection is dropped, not pooled.
    eventually("the upstream connection to be closed", || {
        upstream_saw_close.get().is_some()
    })
    .await;
    assert_eq!(upstream_saw_close.get(), Some(true));
}

async fn an_upstream_closing_before_the_head_is_502() {
    let upstream = Upstream::start(|mut conn| async move {
        conn.read_request().await;
        conn.shutdown().await;
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(&post("/mcp", CALL)).await;
    answer.assert_gateway_error(
        502,
        -32603,
        "7",
        "upstream closed the connection without answering",
    );
    // A fresh connection failing is not retried: the request reached the upstream once.
    assert_eq!(upstream.only_request().body_text(), CALL);
}

async fn a_malformed_upstream_head_is_502() {
    let upstream = upstream_answering_once(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n");
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(&post("/mcp", CALL)).await;
    answer.assert_gateway_error(
        502,
        -32603,
        "7",
        "upstream sent a malformed response: malformed message: invalid header name",
    );
}

async fn bad_chunked_framing_before_any_byte_went_out_is_502() {
    // The head and a broken chunk size in one write: the gateway sees both before answering.
    let upstream = upstream_answering_once(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n",
    );
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(&post("/mcp", CALL)).await;
    answer.assert_gateway_error(
        502,
        -32603,
        "7",
        "upstream sent a malformed response: malformed message: bad chunked framing",
    );
}

async fn bad_chunked_framing_after_bytes_went_out_closes_the_client() {
    let upstream = Upstream::start(|mut conn| async move {
        conn.read_request().await;
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let parts: [&[u8]; 2] = [&[&head[..], &chunk("{\"a\":")].concat(), b"zz\r\n1}\r\n"];
        conn.write_paced(&parts, Duration::from_millis(100)).await;
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&post("/mcp", CALL)).await;
    let head = client.read_head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    // The chunk that was good went out; then the connection closes without the last chunk.
    assert_eq!(client.closed().await, chunk("{\"a\":"));
}

async fn a_slow_body_is_408_after_client_body() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr)
        .timeout("client_body", "300ms")
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    let sent = Instant::now();
    // The whole head and 10 bytes of the body.
    let request = post("/mcp", CALL);
    let head_len = request.len() - CALL.len();
    let answer = client.request(&request[..head_len + 10]).await;
    let waited = sent.elapsed();
    answer.assert_gateway_error(408, -32600, "null", "request body not received in time");
    assert_took_about(waited, Duration::from_millis(300));
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn an_upstream_switching_protocols_is_502() {
    let upstream = upstream_answering_once(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    );
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(&post("/mcp", CALL)).await;
    answer.assert_gateway_error(
        502,
        -32603,
        "7",
        "upstream sent a malformed response: malformed message: unexpected protocol switch",
    );
}

async fn an_upstream_dying_mid_body_closes_the_client() {
    let upstream = upstream_answering_once(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":",
    );
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&post("/mcp", CALL)).await;
    let head = client.read_head().await;
    assert_eq!(head.header("content-length"), Some("100"));
    // What arrived went out; then the connection closes short of the declared length.
    assert_eq!(client.closed().await, b"{\"jsonrpc\":");
}
