//! Plans through the running gateway (issue 6): an OAuth2 plan whose JWKS the gateway discovers
//! from a test authorization server's RFC 8414 metadata; tokens minted here. Every token of the
//! negative corpus is refused with the right status and `WWW-Authenticate` challenge and never
//! reaches the upstream; a valid one does, without its `Authorization` header; the protected-
//! resource metadata is served with CORS; a session id is bound to the subject that created it;
//! an API-key plan; a valid token reaching server-everything.

use std::time::{Duration, Instant};

use mcpgate_tests::auth::{challenge_param, hs256, now, unsigned, SigningKey, TestAuthServer};
use mcpgate_tests::http::{build_request, exchange, initialize_body, post_mcp, RawResponse};
use mcpgate_tests::net::CapturingUpstream;
use mcpgate_tests::{Gateway, GatewaySpec, ServerEverything};
use serde_json::{json, Value};

const CANNED: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/json\r\n\
Content-Length: 36\r\n\
Mcp-Session-Id: upstream-session-1\r\n\
\r\n\
{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

struct Setup {
    gateway: Gateway,
    upstream: CapturingUpstream,
    auth: TestAuthServer,
    key: SigningKey,
    resource: String,
}

fn oauth_gateway(upstream_url: &str, issuer: &str) -> Gateway {
    Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\nname = \"secured\"\npath = \"/mcp\"\nupstream = \"{upstream_url}\"\n\
         public_url = \"http://{{listen}}/mcp\"\n\n\
         [[api.plan]]\ntype = \"oauth2\"\nissuer = \"{issuer}\"\n\
         required_scopes = [\"mcp:read\"]\nscopes_supported = [\"mcp:read\", \"mcp:write\"]\n\
         jwks_refetch_interval_seconds = 1\nleeway_seconds = 5\n"
    )))
}

fn setup() -> Setup {
    let key = SigningKey::generate("k1");
    let auth = TestAuthServer::start(&[&key]);
    let upstream = CapturingUpstream::start(CANNED);
    let gateway = oauth_gateway(&format!("http://{}/mcp", upstream.addr()), &auth.issuer());
    let resource = format!("http://{}/mcp", gateway.addr());
    Setup {
        gateway,
        upstream,
        auth,
        key,
        resource,
    }
}

fn claims(s: &Setup, sub: &str) -> Value {
    let t = now();
    json!({
        "iss": s.auth.issuer(), "aud": s.resource, "sub": sub, "client_id": "test-client",
        "scope": "mcp:read mcp:write", "iat": t, "exp": t + 300,
    })
}

fn post(s: &Setup, extra: &[(&str, &str)]) -> RawResponse {
    post_mcp(s.gateway.addr(), "/mcp", extra, PING).unwrap_or_else(|e| panic!("{e}"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn show(r: &RawResponse) -> String {
    format!("{} {:?} {}", r.status, r.headers, r.body_text())
}

/// A 401/403 with a Bearer challenge pointing at the gateway's metadata, `error` as expected.
fn assert_challenge(s: &Setup, r: &RawResponse, status: u16, error: Option<&str>) {
    assert_eq!(r.status, status, "{}", show(r));
    let challenge = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("no challenge: {}", show(r)));
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert_eq!(
        challenge_param(challenge, "resource_metadata").as_deref(),
        Some(
            format!(
                "http://{}/.well-known/oauth-protected-resource/mcp",
                s.gateway.addr()
            )
            .as_str()
        ),
        "{challenge}"
    );
    assert_eq!(
        challenge_param(challenge, "error").as_deref(),
        error,
        "{challenge}"
    );
    assert_eq!(
        challenge_param(challenge, "scope").as_deref(),
        Some("mcp:read"),
        "{challenge}"
    );
    let body = r.json().unwrap_or_else(|e| panic!("{e}"));
    assert!(body["error"]["code"].is_i64(), "{body}");
}

#[test]
fn negative_corpus_is_refused_and_never_reaches_the_upstream() {
    let s = setup();
    let other = SigningKey::generate("k1"); // same kid, other key: a forged signature
    let stranger = SigningKey::generate("k-unknown");
    let base = claims(&s, "alice");
    let with = |field: &str, value: Value| {
        let mut c = base.clone();
        c[field] = value;
        c
    };
    let t = now();
    // The HS/RS (here HS/ES) confusion: HMAC keyed with the public key the JWKS publishes.
    let confused = hs256("k1", s.key.public_point(), &base);
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        (
            "wrong signature",
            other.mint(&base),
            401,
            Some("invalid_token"),
        ),
        ("alg none", unsigned(&base), 401, Some("invalid_token")),
        (
            "HS256 with the public key",
            confused,
            401,
            Some("invalid_token"),
        ),
        (
            "unknown kid",
            stranger.mint(&base),
            401,
            Some("invalid_token"),
        ),
        (
            "wrong iss",
            s.key.mint(&with("iss", json!("http://evil.example"))),
            401,
            Some("invalid_token"),
        ),
        (
            "wrong aud",
            s.key.mint(&with("aud", json!("http://other.example/mcp"))),
            401,
            Some("invalid_token"),
        ),
        (
            "aud with trailing slash",
            s.key.mint(&with("aud", json!(format!("{}/", s.resource)))),
            401,
            Some("invalid_token"),
        ),
        (
            "expired",
            s.key.mint(&with("exp", json!(t - 60))),
            401,
            Some("invalid_token"),
        ),
        (
            "not yet valid",
            s.key.mint(&with("nbf", json!(t + 120))),
            401,
            Some("invalid_token"),
        ),
        (
            "iat a year in the future",
            s.key.mint(&with("iat", json!(t + 365 * 24 * 3600))),
            401,
            Some("invalid_token"),
        ),
        (
            "no exp",
            s.key.mint(&{
                let mut c = base.clone();
                c.as_object_mut().map(|o| o.remove("exp"));
                c
            }),
            401,
            Some("invalid_token"),
        ),
        (
            "garbage",
            "not-a-jwt".to_owned(),
            401,
            Some("invalid_token"),
        ),
        (
            "missing scope",
            s.key.mint(&with("scope", json!("mcp:write"))),
            403,
            Some("insufficient_scope"),
        ),
    ];
    for (name, token, status, error) in &cases {
        let r = post(&s, &[("Authorization", &bearer(token))]);
        assert_eq!(r.status, *status, "{name}: {}", show(&r));
        assert_challenge(&s, &r, *status, *error);
    }
    // No credentials: 401 without `error` (RFC 6750 §3.1).
    let r = post(&s, &[]);
    assert_challenge(&s, &r, 401, None);
    // Another scheme is no bearer credential.
    let r = post(&s, &[("Authorization", "Basic YWxpY2U6c2VjcmV0")]);
    assert_challenge(&s, &r, 401, None);
    // A token in the query string is refused, even a valid one, even with a valid header.
    let good = s.key.mint(&base);
    let request = build_request(
        "POST",
        &format!("/mcp?access_token={good}"),
        &s.gateway.addr().to_string(),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Authorization", &bearer(&good)),
        ],
        PING.as_bytes(),
    );
    let r = exchange(s.gateway.addr(), &request, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 400, "token in query: {}", show(&r));
    assert_eq!(
        r.header("www-authenticate")
            .and_then(|c| challenge_param(c, "error")),
        Some("invalid_request".to_owned()),
        "{}",
        show(&r)
    );
    // Two Authorization headers.
    let r = post(
        &s,
        &[
            ("Authorization", &bearer(&good)),
            ("Authorization", &bearer(&good)),
        ],
    );
    assert_eq!(r.status, 400, "two headers: {}", show(&r));

    // Nothing above reached the upstream; a valid token does, without its credentials.
    let r = post(&s, &[("Authorization", &bearer(&good))]);
    assert_eq!(r.status, 200, "valid token: {}", show(&r));
    let seen = s.upstream.wait_for(1, Duration::from_secs(5));
    assert_eq!(
        seen.len(),
        1,
        "refused requests reached the upstream: {seen:?}"
    );
    assert!(
        seen[0].headers("authorization").is_empty(),
        "Authorization forwarded: {}",
        seen[0].head
    );
    // Several spaces between scheme and token are one separator (RFC 9110 §11.4, `1*SP`): a
    // valid token so written is admitted (issue 14 #7), its Authorization still not forwarded.
    let spaced = format!("Bearer   {good}");
    let r = post(&s, &[("Authorization", &spaced)]);
    assert_eq!(r.status, 200, "Bearer with three spaces: {}", show(&r));
    let seen = s.upstream.wait_for(2, Duration::from_secs(5));
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[1].headers("authorization").is_empty(),
        "{}",
        seen[1].head
    );
    // JWKS discovered from the AS metadata and fetched, and not once per request.
    let fetches = s.auth.jwks_fetches();
    assert!((1..=6).contains(&fetches), "JWKS fetched {fetches} times");
}

#[test]
fn protected_resource_metadata_with_cors() {
    let s = setup();
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let request = build_request(
            "GET",
            path,
            &s.gateway.addr().to_string(),
            &[("Origin", "http://app.example")],
            b"",
        );
        let r = exchange(s.gateway.addr(), &request, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "{path}: {}", show(&r));
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "{}",
            show(&r)
        );
        let prm = r.json().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(prm["resource"], json!(s.resource), "{prm}");
        assert_eq!(
            prm["authorization_servers"],
            json!([s.auth.issuer()]),
            "{prm}"
        );
        assert_eq!(
            prm["scopes_supported"],
            json!(["mcp:read", "mcp:write"]),
            "{prm}"
        );
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]), "{prm}");
    }
    let request = build_request(
        "OPTIONS",
        "/.well-known/oauth-protected-resource/mcp",
        &s.gateway.addr().to_string(),
        &[
            ("Origin", "http://app.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        b"",
    );
    let r = exchange(s.gateway.addr(), &request, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 204, "{}", show(&r));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("GET")));
    // Another API path under the well-known prefix is not ours.
    let request = build_request(
        "GET",
        "/.well-known/oauth-protected-resource/other",
        &s.gateway.addr().to_string(),
        &[],
        b"",
    );
    let r = exchange(s.gateway.addr(), &request, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 404, "{}", show(&r));
}

#[test]
fn session_ids_are_bound_to_their_subject() {
    let s = setup();
    let alice = s.key.mint(&claims(&s, "alice"));
    let bob = s.key.mint(&claims(&s, "bob"));
    let r = post(&s, &[("Authorization", &bearer(&alice))]);
    assert_eq!(r.status, 200, "{}", show(&r));
    let sealed = r
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no session id: {}", show(&r)))
        .to_owned();
    assert_ne!(
        sealed, "upstream-session-1",
        "the upstream's id leaked as is"
    );
    // Alice's session works for Alice, and the upstream sees its own id.
    let r = post(
        &s,
        &[
            ("Authorization", &bearer(&alice)),
            ("Mcp-Session-Id", &sealed),
        ],
    );
    assert_eq!(r.status, 200, "{}", show(&r));
    let seen = s.upstream.wait_for(2, Duration::from_secs(5));
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].headers("mcp-session-id"),
        vec!["upstream-session-1"]
    );
    // Bob presenting Alice's session: 404, as if it did not exist; nothing forwarded.
    let r = post(
        &s,
        &[
            ("Authorization", &bearer(&bob)),
            ("Mcp-Session-Id", &sealed),
        ],
    );
    assert_eq!(r.status, 404, "{}", show(&r));
    // The raw upstream id, or a tampered one, is not a session either.
    let r = post(
        &s,
        &[
            ("Authorization", &bearer(&alice)),
            ("Mcp-Session-Id", "upstream-session-1"),
        ],
    );
    assert_eq!(r.status, 404, "{}", show(&r));
    let mut tampered = sealed.clone().into_bytes();
    if let Some(first) = tampered.first_mut() {
        *first = if *first == b'x' { b'y' } else { b'x' };
    }
    let tampered = String::from_utf8(tampered).unwrap_or_default();
    let r = post(
        &s,
        &[
            ("Authorization", &bearer(&alice)),
            ("Mcp-Session-Id", &tampered),
        ],
    );
    assert_eq!(r.status, 404, "{}", show(&r));
    let seen = s.upstream.wait_for(3, Duration::from_millis(300));
    assert_eq!(seen.len(), 2, "a refused session reached the upstream");
}

#[test]
fn rotated_key_is_picked_up_by_the_unknown_kid_refetch() {
    let s = setup();
    let r = post(
        &s,
        &[("Authorization", &bearer(&s.key.mint(&claims(&s, "alice"))))],
    );
    assert_eq!(r.status, 200, "{}", show(&r));
    let rotated = SigningKey::generate("k2");
    s.auth.set_keys(&[&s.key, &rotated]);
    let token = rotated.mint(&claims(&s, "alice"));
    // Refetches are rate-limited (1 s here) per worker: poll until every worker has the new set.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ok_in_a_row = 0;
    while ok_in_a_row < 4 {
        let r = post(&s, &[("Authorization", &bearer(&token))]);
        match r.status {
            200 => ok_in_a_row += 1,
            401 => ok_in_a_row = 0,
            _ => panic!("{}", show(&r)),
        }
        assert!(
            Instant::now() < deadline,
            "the rotated key was never accepted: {}",
            show(&r)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn api_key_plan_with_keyless_fallback_refuses_bad_keys() {
    let upstream = CapturingUpstream::start(CANNED);
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
         [[api]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n\n\
         [[api.plan]]\ntype = \"api_key\"\nheader = \"X-Api-Key\"\n\
         keys = [{{ key = \"alice-key-0123456789\", subject = \"alice\" }}]\n",
        upstream.addr()
    )));
    let ok = post_mcp(
        gateway.addr(),
        "/mcp",
        &[("X-Api-Key", "alice-key-0123456789")],
        PING,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status, 200, "{}", show(&ok));
    for extra in [&[("X-Api-Key", "alice-key-012345678X")][..], &[][..]] {
        let r = post_mcp(gateway.addr(), "/mcp", extra, PING).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 401, "{extra:?}: {}", show(&r));
        // No token plan: no Bearer challenge to offer.
        assert!(r.header("www-authenticate").is_none(), "{}", show(&r));
    }
    let seen = upstream.wait_for(2, Duration::from_millis(300));
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].headers("x-api-key").is_empty(),
        "API key forwarded: {}",
        seen[0].head
    );
}

#[test]
fn a_valid_token_reaches_server_everything() {
    let everything = ServerEverything::start();
    let key = SigningKey::generate("k1");
    let auth = TestAuthServer::start(&[&key]);
    let gateway = oauth_gateway(&everything.upstream_url(), &auth.issuer());
    let t = now();
    let token = key.mint(&json!({
        "iss": auth.issuer(), "aud": format!("http://{}/mcp", gateway.addr()), "sub": "alice",
        "scope": "mcp:read", "iat": t, "exp": t + 300,
    }));
    let auth_header = bearer(&token);
    let r = post_mcp(
        gateway.addr(),
        "/mcp",
        &[("Authorization", &auth_header)],
        &initialize_body(1),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", show(&r));
    let messages = r.jsonrpc_messages().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        messages
            .iter()
            .any(|m| m["result"]["serverInfo"].is_object()),
        "{messages:?}"
    );
    let session = r
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no session: {}", show(&r)))
        .to_owned();
    let headers = [
        ("Authorization", auth_header.as_str()),
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    let r = post_mcp(
        gateway.addr(),
        "/mcp",
        &headers,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 202, "{}", show(&r));
    let r = post_mcp(
        gateway.addr(),
        "/mcp",
        &headers,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", show(&r));
    let messages = r.jsonrpc_messages().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        messages.iter().any(|m| m["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty())),
        "{messages:?}"
    );
    // Without the token the same session is refused before the upstream.
    let r = post_mcp(
        gateway.addr(),
        "/mcp",
        &[("Mcp-Session-Id", session.as_str())],
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 401, "{}", show(&r));
}

#[test]
fn introspection_plan_with_discovered_endpoint_and_cache() {
    let key = SigningKey::generate("k1");
    let auth = TestAuthServer::start(&[&key]);
    let upstream = CapturingUpstream::start(CANNED);
    let (client_id, client_secret) = mcpgate_tests::auth::INTROSPECTION_CLIENT;
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [[api]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n\n\
         [[api.plan]]\ntype = \"oauth2\"\nissuer = \"{}\"\nvalidation = \"introspection\"\n\
         client_id = \"{client_id}\"\nclient_secret = \"{client_secret}\"\n\
         required_scopes = [\"mcp:read\"]\n",
        upstream.addr(),
        auth.issuer()
    )));
    auth.set_introspection_audience(&format!("http://{}/mcp", gateway.addr()));
    let post = |token: &str| {
        post_mcp(
            gateway.addr(),
            "/mcp",
            &[("Authorization", &bearer(token))],
            PING,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let r = post("opaque-alice-read");
    assert_eq!(r.status, 200, "{}", show(&r));
    let calls = auth.introspections();
    assert_eq!(
        calls, 1,
        "endpoint discovered from the AS metadata and called once"
    );
    // Cached per worker: the same token again costs no call.
    let r = post("opaque-alice-read");
    assert_eq!(r.status, 200, "{}", show(&r));
    assert_eq!(auth.introspections(), calls);
    let r = post("opaque-revoked-x");
    assert_eq!(r.status, 401, "{}", show(&r));
    assert_eq!(
        r.header("www-authenticate")
            .and_then(|c| challenge_param(c, "error")),
        Some("invalid_token".to_owned())
    );
    let r = post("opaque-bob-write");
    assert_eq!(r.status, 403, "{}", show(&r));
    let seen = upstream.wait_for(3, Duration::from_millis(300));
    assert_eq!(seen.len(), 2, "refused tokens reached the upstream");
    assert!(seen.iter().all(|r| r.headers("authorization").is_empty()));
}

/// The authorization server reached and answering the introspection call with a 4xx (e.g. 400
/// `unsupported_token_type`) did not vouch for the token: 401 `invalid_token` with the challenge
/// (issue 14 #8). A 5xx leaves the token unjudged: 503, no challenge, asked again next time.
#[test]
fn introspection_4xx_is_401_invalid_token_and_5xx_is_503() {
    let key = SigningKey::generate("k1");
    let auth = TestAuthServer::start(&[&key]);
    let upstream = CapturingUpstream::start(CANNED);
    let (client_id, client_secret) = mcpgate_tests::auth::INTROSPECTION_CLIENT;
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [[api]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n\n\
         [[api.plan]]\ntype = \"oauth2\"\nissuer = \"{}\"\nvalidation = \"introspection\"\n\
         client_id = \"{client_id}\"\nclient_secret = \"{client_secret}\"\n\
         required_scopes = [\"mcp:read\"]\n",
        upstream.addr(),
        auth.issuer()
    )));
    auth.set_introspection_audience(&format!("http://{}/mcp", gateway.addr()));
    let post = |token: &str| {
        post_mcp(
            gateway.addr(),
            "/mcp",
            &[("Authorization", &bearer(token))],
            PING,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    for token in ["opaque-status400-read", "opaque-status404-read"] {
        let r = post(token);
        assert_eq!(r.status, 401, "{token}: {}", show(&r));
        assert_eq!(
            r.header("www-authenticate")
                .and_then(|c| challenge_param(c, "error")),
            Some("invalid_token".to_owned()),
            "{token}: {}",
            show(&r)
        );
        let body: Value = r.json().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["error"]["code"], json!(-32010), "{body}");
    }
    for token in ["opaque-status500-read", "opaque-status503-read"] {
        let before = auth.introspections();
        let r = post(token);
        assert_eq!(r.status, 503, "{token}: {}", show(&r));
        assert_eq!(r.header("www-authenticate"), None, "{token}: {}", show(&r));
        let body: Value = r.json().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["error"]["code"], json!(-32603), "{body}");
        // Not cached: the same token asks the server again.
        let r = post(token);
        assert_eq!(r.status, 503, "{token}: {}", show(&r));
        assert_eq!(auth.introspections(), before + 2, "{token}");
    }
    // The server keeps judging ordinary tokens.
    let r = post("opaque-alice-read");
    assert_eq!(r.status, 200, "{}", show(&r));
    assert_eq!(
        upstream.wait_for(2, Duration::from_millis(300)).len(),
        1,
        "only the active token reached the upstream"
    );
}

/// An introspection endpoint the gateway cannot reach makes an opaque token neither valid nor
/// invalid: 503 with a JSON-RPC error, nothing forwarded, and no `WWW-Authenticate` challenge
/// sending the client off to re-authenticate.
#[test]
fn an_unreachable_introspection_endpoint_is_503_not_a_refusal() {
    let upstream = CapturingUpstream::start(CANNED);
    let closed = mcpgate_tests::net::closed_port_addr();
    let (client_id, client_secret) = mcpgate_tests::auth::INTROSPECTION_CLIENT;
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [[api]]\npath = \"/mcp\"\nupstream = \"http://{}/mcp\"\n\n\
         [[api.plan]]\ntype = \"oauth2\"\nissuer = \"http://{closed}\"\nvalidation = \"introspection\"\n\
         introspection_endpoint = \"http://{closed}/introspect\"\n\
         client_id = \"{client_id}\"\nclient_secret = \"{client_secret}\"\n\
         required_scopes = [\"mcp:read\"]\n",
        upstream.addr(),
    )));
    let r = post_mcp(
        gateway.addr(),
        "/mcp",
        &[("Authorization", &bearer("opaque-alice-read"))],
        PING,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 503, "{}", show(&r));
    assert_eq!(r.header("www-authenticate"), None, "{}", show(&r));
    let body: Value = r.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["code"], json!(-32603), "{body}");
    // Without a token it is still the plan's ordinary challenge: nothing needs the server.
    let r = post_mcp(gateway.addr(), "/mcp", &[], PING).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 401, "{}", show(&r));
    assert!(
        upstream.wait_for(1, Duration::from_millis(300)).is_empty(),
        "nothing may reach the upstream"
    );
}
