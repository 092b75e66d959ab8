//! The upstream connection pool: a connection whose answer ended exactly where its framing said
//! is reused, one the upstream closed is not (once it has been idle long enough for the gateway
//! to ask the kernel: `ASK_SOCKET_AFTER`), and a request that may have reached the upstream is
//! never sent twice (a POST is not retried; an idempotent GET is, once).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::client::{post, Client};
use super::harness::{eventually, Setup};
use super::upstream::{json_answer, Upstream};
use crate::engine::upstream::ASK_SOCKET_AFTER;

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
const PONG: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;

/// Every connection answers its first request, then reads the second and closes without
/// answering; later connections answer everything.
fn upstream_closing_its_first_connection_unanswered() -> Upstream {
    Upstream::start(|mut conn| async move {
        let first_connection = conn.index == 0;
        let mut answered = 0;
        while conn.read_request().await.is_some() {
            if first_connection && answered == 1 {
                conn.shutdown().await;
                return;
            }
            answered += 1;
            let answer = format!(r#"{{"connection":{}}}"#, conn.index);
            conn.write(&json_answer(&answer)).await;
        }
    })
}

on_both_drivers!(
    a_second_request_reuses_the_pooled_connection,
    no_pooling_when_upstream_pool_idle_is_zero,
    an_answer_followed_by_stray_bytes_is_not_pooled,
    a_pooled_connection_the_upstream_closed_is_not_reused,
    a_post_is_not_retried_after_a_pooled_connection_closed_unanswered,
    a_get_is_retried_once_after_a_pooled_connection_closed_unanswered,
    a_connection_closed_just_after_its_answer_costs_a_post_not_a_get,
);

async fn a_second_request_reuses_the_pooled_connection() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr).start().await;
    // Two client connections, one after the other: the pool is the worker's, not the client's.
    for _ in 0..2 {
        let mut client = Client::connect(gw.addr).await;
        assert_eq!(client.request(&post("/mcp", PING)).await.body_text(), PONG);
    }
    let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 0]);
    assert_eq!(upstream.connections(), 1);
}

async fn no_pooling_when_upstream_pool_idle_is_zero() {
    let upstream = Upstream::answering(json_answer(PONG));
    let gw = Setup::new(upstream.addr)
        .limit("upstream_pool_idle", 0)
        .start()
        .await;
    let mut client = Client::connect(gw.addr).await;
    for _ in 0..2 {
        assert_eq!(client.request(&post("/mcp", PING)).await.body_text(), PONG);
    }
    let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 1]);
}

async fn an_answer_followed_by_stray_bytes_is_not_pooled() {
    // More bytes than the Content-Length: the connection's next answer cannot be trusted.
    let mut answer = json_answer(PONG);
    answer.extend_from_slice(b"garbage");
    let upstream = Upstream::answering(answer);
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    for _ in 0..2 {
        let answer = client.request(&post("/mcp", PING)).await;
        assert_eq!(answer.body_text(), PONG);
    }
    let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 1]);
}

async fn a_pooled_connection_the_upstream_closed_is_not_reused() {
    let first_closed = Rc::new(Cell::new(false));
    let closed = first_closed.clone();
    let upstream = Upstream::start(move |mut conn| {
        let closed = closed.clone();
        async move {
            while conn.read_request().await.is_some() {
                let answer = format!(r#"{{"connection":{}}}"#, conn.index);
                conn.write(&json_answer(&answer)).await;
                if conn.index == 0 {
                    // Answered with keep-alive, then closed while idle in the gateway's pool.
                    conn.shutdown().await;
                    closed.set(true);
                    return;
                }
            }
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(&post("/mcp", PING)).await;
    assert_eq!(answer.body_text(), r#"{"connection":0}"#);
    eventually("the upstream to close its first connection", || {
        first_closed.get()
    })
    .await;
    // Younger pooled connections are trusted without a syscall (see ASK_SOCKET_AFTER); past that
    // age the gateway asks the kernel, sees the close and opens a new connection for the POST.
    monoio::time::sleep(ASK_SOCKET_AFTER + Duration::from_millis(50)).await;
    let answer = client.request(&post("/mcp", PING)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body_text(), r#"{"connection":1}"#);
    let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 1]);
}

async fn a_post_is_not_retried_after_a_pooled_connection_closed_unanswered() {
    let upstream = upstream_closing_its_first_connection_unanswered();
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(&post("/mcp", PING)).await;
    assert_eq!(answer.body_text(), r#"{"connection":0}"#);
    let answer = client.request(&post("/mcp", PING)).await;
    answer.assert_gateway_error(
        502,
        -32603,
        "1",
        "upstream closed the connection without answering",
    );
    // The POST reached the upstream once; no second connection was opened for it.
    let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 0]);
    assert_eq!(upstream.connections(), 1);
    // A 502 keeps the client connection.
    let answer = client.request(&post("/mcp", PING)).await;
    assert_eq!(answer.body_text(), r#"{"connection":1}"#);
}

async fn a_get_is_retried_once_after_a_pooled_connection_closed_unanswered() {
    let upstream = upstream_closing_its_first_connection_unanswered();
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let get = b"GET /mcp HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    let answer = client.request(get).await;
    assert_eq!(answer.body_text(), r#"{"connection":0}"#);
    let answer = client.request(get).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body_text(), r#"{"connection":1}"#);
    let conns: Vec<usize> = upstream.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 0, 1]);
}

/// The trade of `ASK_SOCKET_AFTER`: an upstream that closes a keep-alive connection right after
/// answering on it (no `Connection: close`) is not noticed before the next request. An idempotent
/// GET is retried on a new connection; a POST gets a 502, since it may have been acted on.
async fn a_connection_closed_just_after_its_answer_costs_a_post_not_a_get() {
    let upstream = Upstream::start(|mut conn| async move {
        if conn.read_request().await.is_some() {
            let answer = format!(r#"{{"connection":{}}}"#, conn.index);
            conn.write(&json_answer(&answer)).await;
            conn.shutdown().await;
        }
    });
    let gw = Setup::new(upstream.addr).start().await;
    let mut client = Client::connect(gw.addr).await;
    let get = b"GET /mcp HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    assert_eq!(client.request(get).await.body_text(), r#"{"connection":0}"#);
    eventually("the upstream to close its first connection", || {
        upstream.connections() == 1 && upstream.requests().len() == 1
    })
    .await;
    assert_eq!(client.request(get).await.body_text(), r#"{"connection":1}"#);
    let answer = client.request(&post("/mcp", PING)).await;
    answer.assert_gateway_error(
        502,
        -32603,
        "1",
        "upstream closed the connection without answering",
    );
}
