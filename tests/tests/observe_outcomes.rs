//! What an exchange's record says about how it ended, for the answer shapes that are easy to get
//! wrong:
//! - a tool's own failure (`result.isError: true`, a JSON-RPC success) from the real
//!   server-everything is `tool_error`, in the log and in `/metrics`, while a good call is `ok`;
//! - a JSON-RPC error in a chunked `application/json` answer (split across chunks) carries its code;
//! - an answer the ACL rewrote (a filtered list) is captured as the client got it, and an error
//!   answer under an ACL keeps its code.
//!
//! The last two need an upstream that answers `application/json` in chosen framings, which
//! server-everything never does: a canned loopback upstream stands in.

mod observe_common;

use std::time::Duration;

use mcpgate_tests::http::post_mcp;
use mcpgate_tests::net::CapturingUpstream;
use mcpgate_tests::peers::repo_root;
use mcpgate_tests::{Gateway, GatewaySpec};
use observe_common::{admin_get, admin_json, poll, Stack, API_NAME};
use serde_json::Value;

const API: &str = "/mcp-proxy";

/// The records of `method` once `count` of them are in `/api/logs`.
fn records_of(admin: std::net::SocketAddr, api: &str, method: &str, count: usize) -> Vec<Value> {
    poll(
        &format!("{count} {method} record(s) in /api/logs"),
        Duration::from_secs(20),
        || {
            let logs = admin_json(admin, &format!("/api/logs?api={api}&method={method}"));
            let records = logs["records"].as_array().cloned().unwrap_or_default();
            if records.len() >= count {
                Ok(records)
            } else {
                Err(logs.to_string())
            }
        },
    )
}

#[test]
fn a_tool_failure_is_a_tool_error_not_ok() {
    let stack = Stack::start("observe-outcomes", false);
    let session = stack.open_session(&[]);
    let good = stack.call(
        &session,
        &[],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#,
    );
    assert!(
        good.body_text().contains("Echo: hi"),
        "{}",
        good.body_text()
    );
    // server-everything (TS SDK) reports invalid arguments as a failed tool result.
    let failed = stack.call(
        &session,
        &[],
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":"x","b":2}}}"#,
    );
    let answer = failed
        .jsonrpc_messages()
        .unwrap_or_else(|e| panic!("get-sum answer: {e}"));
    assert!(
        answer.iter().any(|m| m["result"]["isError"] == true),
        "server-everything was expected to answer isError: true: {answer:?}"
    );

    let records = records_of(stack.admin(), API_NAME, "tools/call", 2);
    let by_target = |t: &str| {
        records
            .iter()
            .find(|r| r["target"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no record for {t}: {records:?}"))
    };
    let echo = by_target("echo");
    assert_eq!(echo["outcome"], "ok", "{echo}");
    let sum = by_target("get-sum");
    assert_eq!(sum["outcome"], "tool_error", "{sum}");
    assert_eq!(sum["jsonrpc_error"], Value::Null, "{sum}");
    assert_eq!(sum["status"], 200, "{sum}");

    let failed_line = format!(
        "mcpgate_requests_total{{api=\"{API_NAME}\",method=\"tools/call\",target=\"get-sum\",outcome=\"tool_error\"}} 1"
    );
    let ok_line = format!(
        "mcpgate_requests_total{{api=\"{API_NAME}\",method=\"tools/call\",target=\"echo\",outcome=\"ok\"}} 1"
    );
    poll(
        "the tool error in /metrics",
        Duration::from_secs(20),
        || {
            let (_, m) = admin_get(stack.admin(), "/metrics");
            if m.lines().any(|l| l == failed_line) && m.lines().any(|l| l == ok_line) {
                Ok(())
            } else {
                Err(m)
            }
        },
    );
    // The console's summary counts it among the errors of that tool.
    let summary = admin_json(stack.admin(), "/api/summary");
    let api = summary["apis"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["api"] == API_NAME))
        .cloned()
        .unwrap_or_else(|| panic!("no {API_NAME} in the summary: {summary}"));
    assert_eq!(api["outcomes"]["tool_error"], 1, "{api}");
    let by_tool = api["errors_by_target"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        by_tool.iter().any(|t| t["name"] == "get-sum"),
        "get-sum should be among the failing tools: {api}"
    );
}

/// The one record of `method` through the canned API.
fn first_record(gw: &Gateway, method: &str) -> Value {
    records_of(gw.admin_addr(), "canned", method, 1)
        .into_iter()
        .next()
        .unwrap_or_default()
}

fn gateway(upstream: &CapturingUpstream, api_tables: &str) -> Gateway {
    Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [[api]]\nname = \"canned\"\npath = \"{API}\"\nupstream = \"http://{}/mcp\"\n{api_tables}\n",
        upstream.addr(),
    )))
}

#[test]
fn an_error_in_a_chunked_json_answer_keeps_its_code() {
    // The error object is split between two chunks, so only a decoded look finds it.
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
        transfer-encoding: chunked\r\n\r\n\
        1b\r\n{\"jsonrpc\":\"2.0\",\"id\":5,\"er\r\n\
        26\r\nror\":{\"code\":-32042,\"message\":\"busy\"}}\r\n0\r\n\r\n";
    let upstream = CapturingUpstream::start(RESPONSE);
    let gw = gateway(&upstream, "");
    let answer = post_mcp(
        gw.addr(),
        API,
        &[],
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow"}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let body: Value = answer.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["code"], -32042, "relayed as is: {body}");
    let record = first_record(&gw, "tools/call");
    assert_eq!(record["jsonrpc_error"], -32042, "{record}");
    assert_eq!(record["outcome"], "error", "{record}");
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get-sum","inputSchema":{"type":"object"}},{"name":"echo","inputSchema":{"type":"object"}}]}}"#;

fn canned(body: &str) -> &'static [u8] {
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    Box::leak(response.into_bytes().into_boxed_slice())
}

fn list_tools(gw: &Gateway) -> mcpgate_tests::http::RawResponse {
    post_mcp(
        gw.addr(),
        API,
        &[],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn acl_tables() -> String {
    let acl = repo_root().join("examples/acl/tools-echo-only.json");
    format!(
        "acl_file = \"{}\"\n\n[api.log]\ncapture = true\n",
        acl.display()
    )
}

#[test]
fn a_list_the_acl_filtered_is_captured_as_the_client_got_it() {
    let upstream = CapturingUpstream::start(canned(LIST));
    let gw = gateway(&upstream, &acl_tables());
    let answer = list_tools(&gw);
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    assert!(
        !answer.body_text().contains("get-sum"),
        "{}",
        answer.body_text()
    );

    let record = first_record(&gw, "tools/list");
    assert_eq!(record["captured"], true, "{record}");
    assert_eq!(record["outcome"], "ok", "{record}");
    let id = record["id"].as_str().unwrap_or_default();
    let detail = admin_json(gw.admin_addr(), &format!("/api/logs/{id}"));
    let captured = detail["capture"]["response_body"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no captured response body: {detail}"));
    assert!(captured.contains("\"echo\""), "{detail}");
    assert!(
        !captured.contains("get-sum"),
        "the capture must be what the client got, not the upstream's full list: {detail}"
    );
}

#[test]
fn an_error_answer_under_an_acl_keeps_its_code() {
    let upstream = CapturingUpstream::start(canned(
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"catalogue unavailable"}}"#,
    ));
    let gw = gateway(&upstream, &acl_tables());
    let answer = list_tools(&gw);
    let body: Value = answer.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["code"], -32603, "{body}");
    let record = first_record(&gw, "tools/list");
    assert_eq!(record["jsonrpc_error"], -32603, "{record}");
    assert_eq!(record["outcome"], "error", "{record}");
}
