//! The flow VS Code performs, with real parts (issue 6, Mode B): the official TypeScript SDK
//! client with its OAuth client provider, through mcpgate (OAuth2 plan) in front of
//! server-everything, against a real authorization server (oidc-provider: dynamic client
//! registration, PKCE, resource indicators, JWT access tokens). The client starts without a
//! token, gets the gateway's 401 challenge, discovers the gateway's protected-resource metadata
//! and the AS metadata, registers, runs authorization code + PKCE with `resource` = the gateway's
//! public URL, and then lists and calls tools with the token, which the gateway validates
//! against the JWKS it discovered from the same AS.
//!
//! Mode A with real parts: the upstream is an SDK server secured with the SDK's auth helpers
//! and the same oidc-provider; the gateway has no plan, rewrites the upstream's challenge and
//! metadata to its own URLs, and passes the token through, so the same client flow completes.

use mcpgate_tests::auth::{run_oauth_client, OidcProvider, SdkSecuredServer};
use mcpgate_tests::{Gateway, GatewaySpec, ServerEverything};
use serde_json::json;

#[test]
fn ts_sdk_oauth_flow_through_the_gateway_with_oidc_provider() {
    let everything = ServerEverything::start();
    let provider = OidcProvider::start("alice");
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"everything\"\npath = \"/mcp\"\nupstream = \"{}\"\n\
         public_url = \"http://{{listen}}/mcp\"\n\n\
         [[api.plan]]\ntype = \"oauth2\"\nissuer = \"{}\"\nrequired_scopes = [\"mcp:read\"]\n",
        everything.upstream_url(),
        provider.issuer()
    )));
    let resource = format!("http://{}/mcp", gateway.addr());
    let seen = run_oauth_client(&resource);
    assert_eq!(seen["unauthorizedFirst"], json!(true), "{seen}");
    assert!(seen["registeredClientId"].is_string(), "no DCR: {seen}");
    assert_eq!(seen["authorization"]["resource"], json!(resource), "{seen}");
    assert_eq!(
        seen["authorization"]["codeChallengeMethod"],
        json!("S256"),
        "{seen}"
    );
    assert_eq!(seen["authorization"]["scope"], json!("mcp:read"), "{seen}");
    assert_eq!(seen["token"]["aud"], json!(resource), "{seen}");
    assert_eq!(seen["token"]["iss"], json!(provider.issuer()), "{seen}");
    assert_eq!(seen["token"]["sub"], json!("alice"), "{seen}");
    assert!(seen["tools"].as_u64().is_some_and(|n| n > 0), "{seen}");
    assert_eq!(
        seen["echo"],
        json!([{"type": "text", "text": "Echo: through the gate"}]),
        "{seen}"
    );
}

#[test]
fn ts_sdk_oauth_flow_through_the_gateway_to_a_secured_sdk_server() {
    let provider = OidcProvider::start("bob");
    let upstream = SdkSecuredServer::start(&provider.issuer());
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"secured\"\npath = \"/mcp\"\nupstream = \"{}\"\n\
         public_url = \"http://{{listen}}/mcp\"\n",
        upstream.mcp_url()
    )));
    let resource = format!("http://{}/mcp", gateway.addr());
    upstream.accept_audience(&resource);
    let seen = run_oauth_client(&resource);
    assert_eq!(seen["unauthorizedFirst"], json!(true), "{seen}");
    assert!(seen["registeredClientId"].is_string(), "no DCR: {seen}");
    // The client only ever saw the gateway: the resource it asked a token for is the gateway's.
    assert_eq!(seen["authorization"]["resource"], json!(resource), "{seen}");
    assert_eq!(seen["token"]["aud"], json!(resource), "{seen}");
    assert_eq!(seen["token"]["sub"], json!("bob"), "{seen}");
    assert_eq!(
        seen["echo"],
        json!([{"type": "text", "text": "Echo: through the gate"}]),
        "{seen}"
    );
    // The token reached the upstream (passed through) and was verified there.
    let subjects = upstream.subjects();
    assert!(
        subjects
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == "bob")),
        "{subjects}"
    );
}
