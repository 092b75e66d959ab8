//! What the gateway parses from clients' headers and messages on its own account (no panic on
//! any bytes, and each parse stable under its own serialization):
//! - `Origin` headers (`mcpgate_policies::origin`): a parsed origin, written back as
//!   `scheme://host[:port]`, parses to itself; the policy answers without panicking;
//! - the ids of relayed server→client requests (`mcpgate:<upstream>:<id>`) and the URIs of
//!   colliding resources (`mcpgate://<upstream>/<uri>`) a client sends back: whatever parses
//!   round-trips through the writer; and with the input split at its first newline into an
//!   upstream name and a URI, a valid name's collided URI parses back to exactly those.
use mcpgate_policies::origin::{Origin, OriginPolicy};
use mcpgate_policies::virtual_server::{
    check_name, collided_uri, parse_collided_uri, parse_relayed_id, relayed_id,
};
use serde_json::Value;

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let policy = OriginPolicy {
        any: false,
        allowed: Origin::parse("https://app.example.com")
            .into_iter()
            .collect(),
        public_hosts: vec!["mcp.example.com".into()],
    };
    let _ = policy.allows(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(origin) = Origin::parse(text) {
        let port = origin.port.map(|p| format!(":{p}")).unwrap_or_default();
        let written = format!("{}://{}{port}", origin.scheme, origin.host);
        assert_eq!(Origin::parse(&written).as_ref(), Some(&origin), "{written}");
    }
    if let Some((upstream, own)) = parse_collided_uri(text) {
        let written = collided_uri(upstream, &own);
        assert_eq!(parse_collided_uri(&written), Some((upstream, own.clone())));
    }
    let id = Value::String(text.to_owned());
    if let Some((upstream, own)) = parse_relayed_id(&id) {
        let written = relayed_id(upstream, &own);
        assert_eq!(parse_relayed_id(&written), Some((upstream, own.clone())));
    }
    if let Some((name, uri)) = text.split_once('\n') {
        if check_name(name).is_ok() {
            let written = collided_uri(name, uri);
            assert_eq!(parse_collided_uri(&written), Some((name, uri.to_owned())));
        }
    }
}
