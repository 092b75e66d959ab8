//! The MCP ACL inside the engine (`[api.acl]`): list answers filtered in JSON and in events
//! whatever their id, refused calls answered by the gateway, refused server→client requests
//! answered to the upstream instead of shown, events that are not JSON-RPC dropped, and batches
//! trimmed of their refused elements before they are forwarded.

use std::cell::Cell;
use std::rc::Rc;

use super::client::{post, Client};
use super::harness::{eventually, Setup};
use super::upstream::{chunk, json_answer, Upstream, LAST_CHUNK, SSE_HEAD};

/// `echo` is listed and callable; nothing else is. Sampling requests from the upstream are
/// refused.
const ACL: &str = r#"[api.acl]
server_requests = { sampling = "deny" }

[[api.acl.rule]]
methods = ["tools/list", "tools/call"]
names = ["echo"]
"#;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const TOOLS: &str =
    r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get-sum"},{"name":"echo"}]}}"#;
const ECHO_ONLY: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}]}}"#;
const CALL_ECHO: &str =
    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}"#;
const ECHOED: &str = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#;

/// An upstream answering every request with `events` as one chunked event stream.
fn upstream_streaming(events: &'static [&'static str]) -> Upstream {
    let mut answer = SSE_HEAD.to_vec();
    for event in events {
        answer.extend(chunk(event));
    }
    answer.extend(LAST_CHUNK);
    Upstream::answering(answer)
}

on_both_drivers!(
    a_list_answer_is_filtered_in_json,
    a_list_answer_is_filtered_inside_an_event,
    a_list_answer_is_filtered_whatever_its_id,
    a_refused_call_is_answered_by_the_gateway_and_never_forwarded,
    a_refused_sampling_request_is_answered_to_the_upstream_not_shown,
    an_event_that_is_not_jsonrpc_is_dropped,
    a_batch_is_forwarded_without_its_refused_element,
    a_batch_answered_on_a_stream_gets_its_refusals_first,
    an_unreadable_body_is_refused_and_never_forwarded,
    an_answer_the_acl_cannot_judge_is_502,
);

async fn a_list_answer_is_filtered_in_json() {
    let upstream = Upstream::answering(json_answer(TOOLS));
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(&post("/mcp", LIST)).await;
    assert_eq!(
        answer.head,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: {}\r\n\r\n",
            ECHO_ONLY.len()
        )
    );
    assert_eq!(answer.body_text(), ECHO_ONLY);
    assert_eq!(upstream.only_request().body_text(), LIST);
}

async fn a_list_answer_is_filtered_inside_an_event() {
    static EVENTS: [&str; 2] = [
        ": keepalive\n\n",
        "event: message\nid: e-1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"get-sum\"},{\"name\":\"echo\"}]}}\n\n",
    ];
    let upstream = upstream_streaming(&EVENTS);
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&post("/mcp", LIST)).await;
    assert_eq!(client.read_head().await.status, 200);
    let mut events = client.events();
    assert_eq!(events.next_event().await, EVENTS[0]);
    assert_eq!(
        events.next_event().await,
        format!("event: message\nid: e-1\ndata: {ECHO_ONLY}\n\n")
    );
    assert_eq!(events.end().await, "");
}

async fn a_list_answer_is_filtered_whatever_its_id() {
    // Asked as `-0`, answered as `0`: the gateway does not pair them, it filters every list.
    // And in a chunked answer: decoded, filtered, sent with its new length.
    let tools = TOOLS.replace(r#""id":1"#, r#""id":0"#);
    let (first, second) = tools.split_at(30);
    let answer = [
        &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            [..],
        &chunk(first),
        &chunk(second),
        LAST_CHUNK,
    ]
    .concat();
    let upstream = Upstream::answering(answer);
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client
        .request(&post(
            "/mcp",
            r#"{"jsonrpc":"2.0","id":-0,"method":"tools/list"}"#,
        ))
        .await;
    let filtered = r#"{"jsonrpc":"2.0","id":0,"result":{"tools":[{"name":"echo"}]}}"#;
    assert_eq!(
        answer.head,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: {}\r\n\r\n",
            filtered.len()
        )
    );
    assert_eq!(answer.body_text(), filtered);
}

async fn a_refused_call_is_answered_by_the_gateway_and_never_forwarded() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client
        .request(&post(
            "/mcp",
            r#"{"jsonrpc":"2.0","id":"c-2","method":"tools/call","params":{"name":"get-sum"}}"#,
        ))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body_text(),
        r#"{"jsonrpc":"2.0","id":"c-2","error":{"code":-32602,"message":"Unknown tool: get-sum"}}"#
    );
    assert_eq!(upstream.connections(), 0);
    // The connection stays open and an allowed call goes through.
    let answer = client.request(&post("/mcp", CALL_ECHO)).await;
    assert_eq!(answer.body_text(), ECHOED);
    assert_eq!(upstream.only_request().body_text(), CALL_ECHO);
}

async fn a_refused_sampling_request_is_answered_to_the_upstream_not_shown() {
    const SAMPLING: &str = "data: {\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n";
    const RESULT: &str = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[]}}\n\n";
    let answered = Rc::new(Cell::new(false));
    let answered_upstream = answered.clone();
    let upstream = Upstream::start(move |mut conn| {
        let answered = answered_upstream.clone();
        async move {
            let Some(request) = conn.read_request().await else {
                return;
            };
            if request.body_text() == CALL_ECHO {
                conn.write(&[SSE_HEAD, &chunk(SAMPLING)].concat()).await;
                // The stream ends only once the gateway has answered the sampling request.
                eventually("the gateway's answer to the sampling request", || {
                    answered.get()
                })
                .await;
                conn.write(&[&chunk(RESULT)[..], LAST_CHUNK].concat()).await;
            } else {
                answered.set(true);
                conn.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        }
    });
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: gw.test\r\nMcp-Session-Id: s-9\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{CALL_ECHO}",
        CALL_ECHO.len()
    );
    client.send(request.as_bytes()).await;
    assert_eq!(client.read_head().await.status, 200);
    let mut events = client.events();
    assert_eq!(events.next_event().await, RESULT);
    assert_eq!(events.end().await, "");
    let requests = upstream.requests();
    let refusal = requests
        .iter()
        .find(|r| r.body_text() != CALL_ECHO)
        .unwrap_or_else(|| panic!("no answer reached the upstream: {requests:#?}"));
    assert_eq!(refusal.request_line(), "POST /up HTTP/1.1");
    assert_eq!(refusal.header("mcp-session-id"), Some("s-9"));
    assert_eq!(refusal.header("content-type"), Some("application/json"));
    assert_eq!(
        refusal.body_text(),
        r#"{"jsonrpc":"2.0","id":42,"error":{"code":-32601,"message":"Method not found"}}"#
    );
}

async fn an_event_that_is_not_jsonrpc_is_dropped() {
    static EVENTS: [&str; 3] = [
        "data: hello\n\n",
        "data: {\"id\":3}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n",
    ];
    let upstream = upstream_streaming(&EVENTS);
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    client.send(&post("/mcp", CALL_ECHO)).await;
    assert_eq!(client.read_head().await.status, 200);
    let mut events = client.events();
    assert_eq!(events.next_event().await, EVENTS[2]);
    assert_eq!(events.end().await, "");
}

async fn a_batch_is_forwarded_without_its_refused_element() {
    let upstream = Upstream::answering(json_answer(&format!("[{ECHOED}]")));
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    let refused = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get-sum"}}"#;
    let answer = client
        .request(&post("/mcp", &format!("[{CALL_ECHO}, {refused}]")))
        .await;
    let forwarded = upstream.only_request();
    assert_eq!(forwarded.body_text(), format!("[{CALL_ECHO}]"));
    assert_eq!(
        forwarded.header("content-length"),
        Some(format!("[{CALL_ECHO}]").len().to_string().as_str())
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body_text(),
        format!(
            r#"[{ECHOED},{{"jsonrpc":"2.0","id":4,"error":{{"code":-32602,"message":"Unknown tool: get-sum"}}}}]"#
        )
    );
}

async fn an_unreadable_body_is_refused_and_never_forwarded() {
    let upstream = Upstream::answering(json_answer(ECHOED));
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    // Two `params`: parsers disagree on which one the upstream would act on.
    let answer = client
        .request(&post(
            "/mcp",
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo"},"params":{"name":"get-sum"}}"#,
        ))
        .await;
    assert_eq!(answer.status, 400);
    let error = answer.json();
    assert_eq!(error["id"], serde_json::Value::Null);
    assert_eq!(error["error"]["code"], -32600);
    assert_eq!(upstream.connections(), 0);
}

async fn an_answer_the_acl_cannot_judge_is_502() {
    let upstream = Upstream::answering(json_answer("<html>oops</html>"));
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    let answer = client.request(&post("/mcp", CALL_ECHO)).await;
    answer.assert_gateway_error(
        502,
        -32603,
        "3",
        "upstream sent a malformed response: malformed message: answer cannot be filtered",
    );
    // Nothing of it reached the client; the connection is kept.
    assert_eq!(client.request(&post("/mcp", CALL_ECHO)).await.status, 502);
}

async fn a_batch_answered_on_a_stream_gets_its_refusals_first() {
    static EVENTS: [&str; 1] =
        ["data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[]}}\n\n"];
    let upstream = upstream_streaming(&EVENTS);
    let gw = Setup::new(upstream.addr).acl(ACL).start().await;
    let mut client = Client::connect(gw.addr).await;
    let refused = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get-sum"}}"#;
    client
        .send(&post("/mcp", &format!("[{refused},{CALL_ECHO}]")))
        .await;
    assert_eq!(client.read_head().await.status, 200);
    let mut events = client.events();
    assert_eq!(
        events.next_event().await,
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32602,\"message\":\"Unknown tool: get-sum\"}}\n\n"
    );
    assert_eq!(events.next_event().await, EVENTS[0]);
    assert_eq!(events.end().await, "");
    assert_eq!(
        upstream.only_request().body_text(),
        format!("[{CALL_ECHO}]")
    );
}
