//! Mode A (issue 6): the upstream is the resource server. The gateway relays its 401 with
//! `resource_metadata` pointing at the gateway's own well-known URL (the upstream's address never
//! shows), serves the upstream's protected-resource metadata there with `resource` rewritten to
//! the gateway's public URL, and passes `Authorization` through.

use std::time::Duration;

use mcpgate_tests::auth::{challenge_param, SecuredUpstream};
use mcpgate_tests::http::{build_request, exchange, post_mcp};
use mcpgate_tests::{Gateway, GatewaySpec};
use serde_json::json;

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

#[test]
fn secured_upstream_challenge_and_metadata_point_at_the_gateway() {
    let upstream = SecuredUpstream::start("https://as.example");
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\npath = \"/files\"\nupstream = \"http://{}/mcp\"\n\
         public_url = \"http://{{listen}}/files\"\n",
        upstream.addr()
    )));
    let gw = gateway.addr();
    let r = post_mcp(gw, "/files", &[], PING).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 401, "{:?}", r.headers);
    let challenge = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("challenge dropped: {:?}", r.headers));
    assert_eq!(
        challenge_param(challenge, "resource_metadata"),
        Some(format!(
            "http://{gw}/.well-known/oauth-protected-resource/files"
        )),
        "{challenge}"
    );
    assert_eq!(
        challenge_param(challenge, "scope").as_deref(),
        Some("files:read")
    );
    assert_eq!(
        challenge_param(challenge, "error").as_deref(),
        Some("invalid_token")
    );
    assert!(
        !challenge.contains(&upstream.addr().to_string()),
        "{challenge}"
    );

    let request = build_request(
        "GET",
        "/.well-known/oauth-protected-resource/files",
        &gw.to_string(),
        &[],
        b"",
    );
    let r = exchange(gw, &request, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let prm = r.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        prm["resource"],
        json!(format!("http://{gw}/files")),
        "{prm}"
    );
    assert_eq!(
        prm["authorization_servers"],
        json!(["https://as.example"]),
        "{prm}"
    );
    assert_eq!(prm["scopes_supported"], json!(["files:read"]), "{prm}");

    // The client's token is the upstream's business here: passed through.
    let bearer = format!("Bearer {}", SecuredUpstream::TOKEN);
    let r = post_mcp(gw, "/files", &[("Authorization", &bearer)], PING)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.body_text());
    assert!(
        upstream
            .heads()
            .iter()
            .any(|h| h.contains(&format!("uthorization: {bearer}"))),
        "Authorization not passed through"
    );
}
