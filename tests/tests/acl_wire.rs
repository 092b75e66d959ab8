//! The MCP ACL on the wire, against an upstream that records what it receives and answers a
//! canned `application/json` list: what the gateway forwards (never a refused call; a batch
//! without its refused elements) and how it rewrites a JSON list answer (entries removed, every
//! other byte kept, Content-Length fixed).

use std::time::Duration;

use mcpgate_tests::http::post_mcp;
use mcpgate_tests::net::CapturingUpstream;
use mcpgate_tests::peers::repo_root;
use mcpgate_tests::{Gateway, GatewaySpec};
use serde_json::{json, Value};

const API: &str = "/mcp-proxy";
const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get-sum","inputSchema":{"type":"object"}}, {"name":"echo","inputSchema":{"type":"object"}},{"name":"\u0065cho2"}],"nextCursor":"page-2","_meta":{"x":1}}}"#;

fn canned_list() -> &'static [u8] {
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{LIST}",
        LIST.len()
    );
    Box::leak(response.into_bytes().into_boxed_slice())
}

fn gateway_for(upstream: &CapturingUpstream) -> Gateway {
    let acl = repo_root().join("examples/acl/tools-echo-only.json");
    Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [[api]]\npath = \"{API}\"\nupstream = \"http://{}/mcp\"\nacl_file = \"{}\"\n",
        upstream.addr(),
        acl.display()
    )))
}

#[test]
fn json_list_answer_is_filtered_byte_preserving_with_a_fixed_length() {
    let upstream = CapturingUpstream::start(canned_list());
    let gateway = gateway_for(&upstream);
    let response = post_mcp(
        gateway.addr(),
        API,
        &[],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status, 200, "{}", response.body_text());
    let expected = LIST.replace(
        r#"{"name":"get-sum","inputSchema":{"type":"object"}}, "#,
        "",
    );
    let expected = expected.replace(r#",{"name":"\u0065cho2"}"#, "");
    assert_eq!(response.body_text(), expected);
    assert_eq!(
        response.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    let body: Value = response.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["result"]["nextCursor"], json!("page-2"));
}

#[test]
fn refused_calls_never_reach_the_upstream_and_batches_are_trimmed() {
    let upstream = CapturingUpstream::start(canned_list());
    let gateway = gateway_for(&upstream);
    let refused = post_mcp(
        gateway.addr(),
        API,
        &[],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-sum","arguments":{}}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let body: Value = refused.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["code"], json!(-32602), "{body}");
    assert_eq!(body["id"], json!(2), "{body}");

    let batch = r#"[{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-sum"}}, {"jsonrpc":"2.0","id":1,"method":"tools/list"} ,{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo"}}]"#;
    let answer = post_mcp(gateway.addr(), API, &[], batch).unwrap_or_else(|e| panic!("{e}"));
    let seen = upstream.wait_for(1, Duration::from_secs(10));
    assert_eq!(
        seen.len(),
        1,
        "the refused call reached the upstream: {seen:?}"
    );
    let forwarded = String::from_utf8_lossy(&seen[0].body).into_owned();
    assert_eq!(
        forwarded,
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo"}}]"#
    );
    assert_eq!(
        seen[0].headers("content-length"),
        vec![forwarded.len().to_string().as_str()]
    );
    // The upstream's (single) answer is filtered and merged with the gateway's refusal.
    let merged: Value = answer.json().unwrap_or_else(|e| panic!("{e}"));
    let items = merged.as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{merged}");
    let list = items
        .iter()
        .find(|m| m["id"] == json!(1))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        list["result"]["tools"],
        json!([{"name":"echo","inputSchema":{"type":"object"}}])
    );
    let refusal = items
        .iter()
        .find(|m| m["id"] == json!(3))
        .cloned()
        .unwrap_or_default();
    assert_eq!(refusal["error"]["code"], json!(-32602), "{merged}");
}

#[test]
fn an_http_error_answering_a_list_request_is_relayed_as_is() {
    const NOT_FOUND: &[u8] =
        b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 17\r\n\r\nsession not found";
    let upstream = CapturingUpstream::start(NOT_FOUND);
    let gateway = gateway_for(&upstream);
    let response = post_mcp(
        gateway.addr(),
        API,
        &[],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status, 404, "{}", response.body_text());
    assert_eq!(response.body_text(), "session not found");
}

/// A list far larger than one read and one write (about 60 KB, `echo` in the middle), in both
/// framings: filtered to the one entry with every other byte kept, with a matching length, and
/// the pooled upstream connection is reused for the next request.
#[test]
fn a_large_list_answer_is_filtered_in_both_framings() {
    let filler: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"name":"tool_{i}","description":"{}","inputSchema":{{"type":"object","properties":{{"x":{{"type":"number"}}}}}}}}"#,
                "d".repeat(200)
            )
        })
        .collect();
    let echo = r#"{"name":"echo","inputSchema":{"type":"object"}}"#;
    let list = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{},{echo},{}],"nextCursor":"n"}}}}"#,
        filler[..100].join(","),
        filler[100..].join(",")
    );
    let expected =
        format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{echo}],"nextCursor":"n"}}}}"#);
    let with_length = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{list}",
        list.len()
    );
    let mut chunked = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    for piece in list.as_bytes().chunks(7000) {
        chunked.push_str(&format!("{:x}\r\n", piece.len()));
        chunked.push_str(std::str::from_utf8(piece).unwrap_or_default());
        chunked.push_str("\r\n");
    }
    chunked.push_str("0\r\n\r\n");
    for response in [with_length, chunked] {
        let canned: &'static [u8] = Box::leak(response.into_bytes().into_boxed_slice());
        let upstream = CapturingUpstream::start(canned);
        let gateway = gateway_for(&upstream);
        for attempt in 0..2 {
            let answer = post_mcp(
                gateway.addr(),
                API,
                &[],
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(answer.status, 200, "attempt {attempt}");
            assert_eq!(answer.body_text(), expected, "attempt {attempt}");
            assert_eq!(
                answer.header("content-length"),
                Some(expected.len().to_string().as_str())
            );
        }
        assert_eq!(upstream.wait_for(2, Duration::from_secs(10)).len(), 2);
        assert_eq!(
            upstream.connections(),
            1,
            "a response read exactly to its end leaves a reusable connection"
        );
    }
}
