//! The client-side timeouts: `client_header` bounds a request head (408 once bytes came, a quiet
//! close when none did) and `keepalive_idle` closes a connection idle between requests.

use std::time::{Duration, Instant};

use super::client::{post, Client};
use super::harness::{assert_took_about, Setup};
use super::upstream::{json_answer, Upstream};

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
const PONG: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;

on_both_drivers!(
    a_slow_head_is_408_after_client_header,
    a_silent_new_connection_is_closed_after_client_header,
    keepalive_idle_closes_an_idle_connection,
);

async fn a_slow_head_is_408_after_client_header() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr)
        .timeout("client_header", "300ms")
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    let sent = Instant::now();
    let answer = client
        .request(b"POST /mcp HTTP/1.1\r\nHost: gw.test\r\n")
        .await;
    assert_took_about(sent.elapsed(), Duration::from_millis(300));
    answer.assert_gateway_error(408, -32600, "null", "request head not received in time");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(client.closed().await, b"");
    assert_eq!(upstream.connections(), 0);
}

async fn a_silent_new_connection_is_closed_after_client_header() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr)
        .timeout("client_header", "300ms")
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    let connected = Instant::now();
    // Nothing was asked: nothing is answered, the connection is just closed.
    assert_eq!(client.closed().await, b"");
    assert_took_about(connected.elapsed(), Duration::from_millis(300));
}

async fn keepalive_idle_closes_an_idle_connection() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr)
        .timeout("keepalive_idle", "300ms")
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    assert_eq!(client.request(&post("/mcp", PING)).await.body_text(), PONG);
    // Used again within the timeout, the connection is still open.
    monoio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client.request(&post("/mcp", PING)).await.body_text(), PONG);
    let idle_since = Instant::now();
    assert_eq!(client.closed().await, b"");
    assert_took_about(idle_since.elapsed(), Duration::from_millis(300));
    assert_eq!(gw.open_connections(), 0);
}
