//! ACL conditions in CEL, compiled and evaluated through the public ACL path the gateway uses (a
//! Gravitee rule granting `tools/list` + `tools/call` for every tool under the fuzzed condition).
//! Input: the condition, then NUL-separated facts (tool name, header value, subject, scope, a
//! claim). Invariants: no panic and no stack overflow (compile limits bound the evaluator); a
//! condition that does not compile is a load error naming the condition; evaluation is
//! deterministic; ungoverned methods pass whatever the condition; and with a condition that does
//! not read `mcp` a tool is listed exactly when it may be called.
use mcpgate_policies::acl::{
    Acl, AuthInfo, ListKind, McpRequest, RequestInfo, Target, MAX_CONDITION_LEN,
};

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0);
    let Some(Ok(condition)) = parts.next().map(std::str::from_utf8) else {
        return;
    };
    if condition.len() > MAX_CONDITION_LEN + 64 {
        return; // refused by length before parsing; nothing to learn from longer inputs
    }
    let mut fact = || {
        parts
            .next()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned()
    };
    let (name, header, subject, scope, claim) = (fact(), fact(), fact(), fact(), fact());
    let rules = serde_json::json!({"authorizations": [{
        "authorizedFeatures": [{"type": "TOOLS", "methods": ["TOOLS_LIST", "TOOLS_CALL"]}],
        "condition": condition,
    }]});
    let acl = match Acl::from_gravitee_json(&rules.to_string()) {
        Ok(acl) => acl,
        Err(e) => {
            assert!(
                e.at.contains("condition") || e.at.contains("authorizations"),
                "{e:?}"
            );
            return;
        }
    };
    let mut claims = serde_json::Map::new();
    claims.insert("role".into(), serde_json::Value::String(claim));
    let auth = AuthInfo {
        subject,
        client_id: "fuzz-client".into(),
        scopes: scope.split(' ').map(str::to_owned).collect(),
        claims,
    };
    let headers = [("x-tier", header.as_str()), ("X-Tier", "gold")];
    let ctx = RequestInfo {
        method: "POST",
        path: "/mcp",
        headers: &headers,
        client_ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
        auth: Some(&auth),
        connection: None,
    };
    let call = McpRequest::new("tools/call", Target::Name(&name));
    let first = acl.decide(&call, &ctx);
    let second = acl.decide(&call, &ctx);
    // The failure text may differ: CEL prints maps in hash order
    // (regressions/cel_condition/crash-71f2…: `1 +auth`).
    fn outcome<'a>(
        d: &mcpgate_policies::acl::Decision<'a>,
    ) -> (
        mcpgate_policies::acl::Verdict,
        mcpgate_policies::acl::Basis,
        bool,
        Option<mcpgate_policies::acl::RpcError<'a>>,
        Option<u32>,
    ) {
        (
            d.verdict,
            d.basis,
            d.dry_run,
            d.error.clone(),
            d.condition_failure.as_ref().map(|f| f.rule),
        )
    }
    assert_eq!(
        outcome(&first),
        outcome(&second),
        "the same call decided twice differently"
    );
    let ping = acl.decide(&McpRequest::new("ping", Target::None), &ctx);
    assert!(ping.lets_through(), "ping refused: {ping:?}");
    let listed = acl.list_filter(ListKind::Tools, &ctx).keep(&name);
    if !condition.contains("mcp") {
        assert_eq!(
            listed,
            first.lets_through(),
            "listed and callable disagree: {first:?}"
        );
    }
}
