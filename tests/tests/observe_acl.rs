//! The ACL's decisions in the exchange log and the metrics: with an ACL that grants only `echo`,
//! a call to `echo` is recorded as allowed by its rule, a call to `get-sum` as denied (implicit
//! deny, answered by the gateway, never forwarded) and counted in `mcpgate_acl_denials_total`;
//! a server→client request the ACL refuses is recorded with that decision.

mod observe_common;

use std::time::Duration;

use mcpgate_tests::{run_client, Sdk};
use observe_common::{admin_get, admin_json, poll, Stack, API_NAME};

const ACL: &str = r#"
[api.acl]
[[api.acl.rule]]
methods = ["tools/list", "tools/call"]
names = ["echo"]
"#;

#[test]
fn acl_decisions_are_recorded_and_counted() {
    let stack = Stack::start_full("observe-acl", false, "", ACL);
    let session = stack.open_session(&[]);
    let echo = stack.call(
        &session,
        &[],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#,
    );
    assert!(
        echo.body_text().contains("Echo: hi"),
        "{}",
        echo.body_text()
    );
    let refused = stack.call(
        &session,
        &[],
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}"#,
    );
    let answer = refused
        .jsonrpc_messages()
        .unwrap_or_else(|e| panic!("refusal: {e}"));
    let code = answer
        .first()
        .and_then(|m| m["error"]["code"].as_i64())
        .unwrap_or_else(|| panic!("the refusal is not a JSON-RPC error: {answer:?}"));

    let records = poll("both calls in /api/logs", Duration::from_secs(20), || {
        let logs = admin_json(
            stack.admin(),
            &format!("/api/logs?api={API_NAME}&method=tools/call"),
        );
        let records = logs["records"].as_array().cloned().unwrap_or_default();
        if records.len() >= 2 {
            Ok(records)
        } else {
            Err(logs.to_string())
        }
    });
    let by_target = |t: &str| {
        records
            .iter()
            .find(|r| r["target"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no record for {t}: {records:?}"))
    };
    let allowed = by_target("echo");
    assert_eq!(allowed["acl"], "allow", "{allowed}");
    assert_eq!(allowed["acl_rule"], "rule[0]", "{allowed}");
    assert_eq!(allowed["outcome"], "ok", "{allowed}");
    let denied = by_target("get-sum");
    assert_eq!(denied["acl"], "deny", "{denied}");
    assert_eq!(
        denied["acl_rule"],
        serde_json::Value::Null,
        "implicit deny: {denied}"
    );
    assert_eq!(denied["outcome"], "denied", "{denied}");
    assert_eq!(denied["jsonrpc_error"], code, "{denied}");
    // Answered by the gateway: nothing was relayed from the upstream.
    assert_eq!(denied["status"], refused.status, "{denied}");

    let metrics = poll("the denial in /metrics", Duration::from_secs(20), || {
        let (_, m) = admin_get(stack.admin(), "/metrics");
        if m.contains("mcpgate_acl_denials_total{") {
            Ok(m)
        } else {
            Err(m)
        }
    });
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .to_string()
    };
    assert!(
        line(&format!(
            "mcpgate_acl_denials_total{{api=\"{API_NAME}\",rule=\"implicit_deny\"}}"
        ))
        .ends_with(" 1"),
        "{metrics}"
    );
    assert!(
        line(&format!(
            "mcpgate_requests_total{{api=\"{API_NAME}\",method=\"tools/call\",target=\"get-sum\",outcome=\"denied\"}}"
        ))
        .ends_with(" 1"),
        "{metrics}"
    );
}

/// A server→client request the ACL refuses is recorded after the decision, with it: the
/// `sampling/createMessage` server-everything sends (via `trigger-sampling-request`) is never
/// shown to the client, and its record says `deny` by the `server_requests` setting.
#[test]
fn a_refused_server_request_is_recorded_with_its_decision() {
    let acl = "[api.acl]\nserver_requests = { sampling = \"deny\" }\n\
               [[api.acl.rule]]\ntype = \"TOOLS\"\n";
    let stack = Stack::start_full("observe-acl-server", false, "", acl);
    let through = run_client(Sdk::TypeScript, &stack.mcp_url(), "acl_sampling");
    assert_eq!(through["samplingRequests"], 0, "{through}");

    let record = poll(
        "the sampling request in /api/logs",
        Duration::from_secs(20),
        || {
            let logs = admin_json(
                stack.admin(),
                &format!("/api/logs?api={API_NAME}&method=sampling/createMessage"),
            );
            logs["records"]
                .as_array()
                .and_then(|r| r.first().cloned())
                .ok_or_else(|| logs.to_string())
        },
    );
    assert_eq!(record["kind"], "server_request", "{record}");
    assert_eq!(record["acl"], "deny", "{record}");
    assert_eq!(record["acl_rule"], "server_requests", "{record}");
    assert_eq!(record["outcome"], "denied", "{record}");
}
