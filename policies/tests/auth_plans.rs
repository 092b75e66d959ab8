//! Plans end to end (without the network): TOML config → runtime → `authenticate` on requests,
//! with the engine's I/O steps simulated. Covers several plans per API, API keys, the OAuth2 JWKS
//! refetch protocol, introspection, the per-worker cache, challenges for every refusal, the token
//! in the query string, and session ids presented by another subject.

#[path = "auth_support.rs"]
mod support;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use mcpgate_policies::auth::introspection::IntrospectionUnavailable;
use mcpgate_policies::auth::request::StrHeaders;
use mcpgate_policies::auth::{
    ApiAuth, AuthConfigUser, AuthError, AuthRequest, AuthStep, CompileContext, FileSource, KeySet,
    NoFiles, PlanKind, Principal, Refusal, SessionBinder, TokenProblem, WorkerAuthState,
};
use support::*;

struct Files(HashMap<&'static str, String>);

impl FileSource for Files {
    fn read_to_string(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("no such file {path}"))
    }
}

fn compile_with(toml_text: &str, files: &dyn FileSource) -> Result<ApiAuth, String> {
    let user: AuthConfigUser = toml::from_str(toml_text).map_err(|e| e.to_string())?;
    user.compile(&CompileContext {
        public_url: Some(RESOURCE),
        files,
    })
    .map_err(|e| e.to_string())
}

fn compile(toml_text: &str) -> ApiAuth {
    compile_with(toml_text, &NoFiles).unwrap_or_else(|e| panic!("config: {e}"))
}

fn step<'r>(
    auth: &ApiAuth,
    state: &mut WorkerAuthState,
    headers: &'r [(&'r str, &'r str)],
    query: Option<&'r str>,
    now: u64,
) -> AuthStep<'r> {
    auth.authenticate(
        &AuthRequest {
            headers: &StrHeaders(headers),
            query,
            client_cert: None,
        },
        state,
        now,
    )
}

fn admitted(outcome: AuthStep<'_>) -> Rc<Principal> {
    match outcome {
        AuthStep::Authenticated(principal) => principal,
        other => panic!("expected admission, got {other:?}"),
    }
}

fn refused(auth: &ApiAuth, outcome: AuthStep<'_>) -> (AuthError, u16, Option<String>) {
    match outcome {
        AuthStep::Refused(refusal) => {
            let challenge = auth.challenge(&refusal);
            (
                refusal.error.clone(),
                refusal.error.http_status(),
                challenge,
            )
        }
        other => panic!("expected refusal, got {other:?}"),
    }
}

fn key_set(signer: &Signer) -> KeySet {
    let key =
        mcpgate_policies::auth::VerifyingKey::from_jwk(&signer.jwk(Some("k")), false).expect("jwk");
    KeySet::new(vec![key]).expect("set")
}

const PRM_URL: &str = "https://gw.example.com/.well-known/oauth-protected-resource/mcp";

fn oauth_config() -> String {
    format!(
        r#"
resource_name = "Demo MCP"
[[plans]]
type = "oauth2"
issuer = "{ISSUER}"
jwks_uri = "{ISSUER}/jwks"
required_scopes = ["mcp:read"]
scopes_supported = ["mcp:read", "mcp:write"]
jwks_refetch_interval_seconds = 60
"#
    )
}

/// Runs `authenticate`, answering `FetchJwks` steps from `jwks` (the simulated AS) and counting
/// fetches, as the engine would.
fn run_oauth(
    auth: &ApiAuth,
    state: &mut WorkerAuthState,
    jwks: &KeySet,
    fetches: &mut u32,
    token: &str,
    now: u64,
) -> Result<Rc<Principal>, AuthError> {
    let header = format!("Bearer {token}");
    let headers = [("Authorization", header.as_str())];
    for _ in 0..4 {
        match step(auth, state, &headers, None, now) {
            AuthStep::Authenticated(principal) => return Ok(principal),
            AuthStep::Refused(refusal) => return Err(refusal.error),
            AuthStep::FetchJwks { plan } => {
                *fetches += 1;
                state.install_jwks(plan, Arc::new(jwks.clone()), now);
            }
            AuthStep::Introspect { .. } => panic!("no introspection configured"),
        }
    }
    panic!("authenticate kept asking for I/O")
}

#[test]
fn oauth2_jwks_flow_with_rotation_and_rate_limited_refetch() {
    let auth = compile(&oauth_config());
    let mut state = auth.new_worker_state();
    let old_key = Signer::ec("P-256");
    let new_key = Signer::rsa();
    let mut jwks = KeySet::new(vec![mcpgate_policies::auth::VerifyingKey::from_jwk(
        &old_key.jwk(Some("old")),
        false,
    )
    .expect("jwk")])
    .expect("set");
    let mut fetches = 0;

    // First request: no JWKS yet → one fetch → admitted.
    let token = old_key.token("ES256", Some("old"), &good_claims());
    let principal =
        run_oauth(&auth, &mut state, &jwks, &mut fetches, &token, NOW).expect("admitted");
    assert_eq!(fetches, 1);
    assert_eq!(principal.plan, PlanKind::OAuth2);
    assert_eq!(principal.subject.as_deref(), Some("alice"));

    // The AS rotates: a token with an unknown kid triggers one refetch (interval elapsed).
    let both = format!(
        r#"{{"keys":[{},{}]}}"#,
        old_key.jwk(Some("old")),
        new_key.jwk(Some("new"))
    );
    jwks = KeySet::from_jwks_json(both.as_bytes()).expect("jwks");
    let rotated = new_key.token("RS256", Some("new"), &good_claims());
    let now = NOW + 61;
    assert!(run_oauth(&auth, &mut state, &jwks, &mut fetches, &rotated, now).is_ok());
    assert_eq!(fetches, 2);

    // Made-up kids within the interval: refused without further fetches.
    for i in 0..5 {
        let bogus = new_key.token("RS256", Some(&format!("bogus{i}")), &good_claims());
        let outcome = run_oauth(&auth, &mut state, &jwks, &mut fetches, &bogus, now + 1 + i);
        assert_eq!(
            outcome,
            Err(AuthError::InvalidToken(TokenProblem::UnknownKid))
        );
    }
    assert_eq!(fetches, 2);
    // After the interval, one more refetch is allowed.
    let bogus = new_key.token("RS256", Some("later"), &good_claims());
    let _ = run_oauth(&auth, &mut state, &jwks, &mut fetches, &bogus, now + 61);
    assert_eq!(fetches, 3);
}

#[test]
fn oauth2_refusals_carry_the_right_status_and_challenge() {
    let auth = compile(&oauth_config());
    let mut state = auth.new_worker_state();
    let signer = Signer::ed25519();
    let jwks = KeySet::new(vec![mcpgate_policies::auth::VerifyingKey::from_jwk(
        &signer.jwk(Some("k")),
        false,
    )
    .expect("jwk")])
    .expect("set");
    let jwks = Arc::new(jwks);
    state.install_jwks(0, Arc::clone(&jwks), NOW);

    // Missing token: 401, resource_metadata + scope, no error.
    let (error, status, challenge) = refused(&auth, step(&auth, &mut state, &[], None, NOW));
    assert_eq!((error, status), (AuthError::MissingCredentials, 401));
    assert_eq!(
        challenge.as_deref(),
        Some(format!(r#"Bearer scope="mcp:read", resource_metadata="{PRM_URL}""#).as_str())
    );

    let invalid_token_challenge =
        format!(r#"Bearer error="invalid_token", scope="mcp:read", resource_metadata="{PRM_URL}""#);
    let bearer = |token: String| format!("Bearer {token}");
    let corpus: Vec<(&str, String, TokenProblem)> = vec![
        (
            "wrong signature",
            Signer::ed25519().token("EdDSA", Some("k"), &good_claims()),
            TokenProblem::BadSignature,
        ),
        (
            "unknown kid",
            signer.token("EdDSA", Some("zzz"), &good_claims()),
            TokenProblem::UnknownKid,
        ),
        (
            "wrong iss",
            signer.token(
                "EdDSA",
                Some("k"),
                &with(good_claims(), "iss", "https://evil".into()),
            ),
            TokenProblem::WrongIssuer,
        ),
        (
            "wrong aud",
            signer.token(
                "EdDSA",
                Some("k"),
                &with(good_claims(), "aud", "https://up.internal/mcp".into()),
            ),
            TokenProblem::WrongAudience,
        ),
        (
            "expired",
            signer.token(
                "EdDSA",
                Some("k"),
                &with(good_claims(), "exp", (NOW - 100).into()),
            ),
            TokenProblem::Expired,
        ),
        (
            "not yet valid",
            signer.token(
                "EdDSA",
                Some("k"),
                &with(good_claims(), "nbf", (NOW + 100).into()),
            ),
            TokenProblem::NotYetValid,
        ),
        (
            "HS256 confusion",
            Signer::hmac(&[7; 32]).token("HS256", Some("k"), &good_claims()),
            TokenProblem::AlgorithmRefused,
        ),
        (
            "alg none",
            format!(
                "{}.{}.x",
                b64(br#"{"alg":"none"}"#),
                b64(good_claims().to_string().as_bytes())
            ),
            TokenProblem::AlgorithmRefused,
        ),
    ];
    // install_jwks does not count as a fetch attempt, so the first unknown kid may ask for one
    // refetch; the simulated fetch fails, and later unknown kids are refused straight away.
    for (name, token, expected) in corpus {
        let header = bearer(token);
        let headers = [("Authorization", header.as_str())];
        let mut outcome = step(&auth, &mut state, &headers, None, NOW);
        if let AuthStep::FetchJwks { plan } = outcome {
            state.jwks_fetch_failed(plan);
            outcome = step(&auth, &mut state, &headers, None, NOW);
        }
        let (error, status, challenge) = refused(&auth, outcome);
        assert_eq!(error, AuthError::InvalidToken(expected), "{name}");
        assert_eq!(status, 401, "{name}");
        assert_eq!(
            challenge.as_deref(),
            Some(invalid_token_challenge.as_str()),
            "{name}"
        );
    }

    // Valid token lacking the required scope: 403 insufficient_scope with the scopes needed.
    let token = signer.token(
        "EdDSA",
        Some("k"),
        &with(good_claims(), "scope", "mcp:write".into()),
    );
    let header = bearer(token);
    let (error, status, challenge) = refused(
        &auth,
        step(&auth, &mut state, &[("Authorization", &header)], None, NOW),
    );
    assert_eq!((error, status), (AuthError::InsufficientScope, 403));
    assert_eq!(
        challenge.as_deref(),
        Some(format!(r#"Bearer error="insufficient_scope", scope="mcp:read", resource_metadata="{PRM_URL}""#).as_str())
    );

    // Token in the query string: 400 invalid_request, even next to a valid header.
    let good = bearer(signer.token("EdDSA", Some("k"), &good_claims()));
    let headers = [("Authorization", good.as_str())];
    for query in [
        "access_token=abc",
        "a=1&access_token=abc",
        "access%5Ftoken=abc",
        "ACCESS_TOKEN=x&b=2",
    ] {
        let outcome = step(&auth, &mut state, &headers, Some(query), NOW);
        if query.starts_with("ACCESS") {
            // Query names are case-sensitive: this is not the access_token parameter.
            assert!(matches!(outcome, AuthStep::Authenticated(_)), "{query}");
            continue;
        }
        let (error, status, challenge) = refused(&auth, outcome);
        assert!(matches!(error, AuthError::InvalidRequest(_)), "{query}");
        assert_eq!(status, 400);
        assert!(challenge.is_some_and(|c| c.starts_with(r#"Bearer error="invalid_request""#)));
    }
    assert!(matches!(
        step(&auth, &mut state, &headers, Some("session=1"), NOW),
        AuthStep::Authenticated(_)
    ));

    // Malformed Authorization headers: 400.
    for value in [
        "Bearer  two tokens",
        "Bearer",
        "Bearer a b",
        "Bearer tok\u{e9}n",
    ] {
        let (error, status, _) = refused(
            &auth,
            step(&auth, &mut state, &[("Authorization", value)], None, NOW),
        );
        assert!(matches!(error, AuthError::InvalidRequest(_)), "{value:?}");
        assert_eq!(status, 400);
    }
    // Several spaces (or tabs) between scheme and token are one separator (RFC 9110 §11.4,
    // `1*SP`): admitted on a cache miss (fresh state) and on a hit alike.
    let token = good.strip_prefix("Bearer ").unwrap_or_default();
    let mut fresh = auth.new_worker_state();
    fresh.install_jwks(0, jwks, NOW);
    for header in [format!("Bearer  {token}"), format!("bearer \t {token}")] {
        let headers = [("Authorization", header.as_str())];
        for state in [&mut fresh, &mut state] {
            let outcome = step(&auth, state, &headers, None, NOW);
            assert!(
                matches!(outcome, AuthStep::Authenticated(_)),
                "{header:?}: {outcome:?}"
            );
        }
    }
    let two = [
        ("Authorization", good.as_str()),
        ("authorization", good.as_str()),
    ];
    assert!(matches!(
        refused(&auth, step(&auth, &mut state, &two, None, NOW)).0,
        AuthError::InvalidRequest(_)
    ));
    // Scheme is case-insensitive.
    let lower = good.replacen("Bearer", "bEaReR", 1);
    assert!(matches!(
        step(&auth, &mut state, &[("authorization", &lower)], None, NOW),
        AuthStep::Authenticated(_)
    ));
}

#[test]
fn cache_hits_and_never_outlives_exp() {
    let auth = compile(&oauth_config());
    let mut state = auth.new_worker_state();
    let signer = Signer::ed25519();
    state.install_jwks(0, Arc::new(key_set(&signer)), NOW);
    let claims = with(good_claims(), "exp", (NOW + 100).into());
    let header = format!("Bearer {}", signer.token("EdDSA", Some("k"), &claims));
    let headers = [("Authorization", header.as_str())];

    let first = admitted(step(&auth, &mut state, &headers, None, NOW));
    assert_eq!(state.cached_entries(), 1);
    let second = admitted(step(&auth, &mut state, &headers, None, NOW + 50));
    assert!(
        Rc::ptr_eq(&first, &second),
        "second request served from the cache"
    );
    // At exp the entry is gone; within leeway the token is re-verified (and not re-cached).
    let third = admitted(step(&auth, &mut state, &headers, None, NOW + 100));
    assert!(!Rc::ptr_eq(&first, &third));
    assert_eq!(state.cached_entries(), 0);
    let (error, ..) = refused(&auth, step(&auth, &mut state, &headers, None, NOW + 130));
    assert_eq!(error, AuthError::InvalidToken(TokenProblem::Expired));

    // A new JWKS (rotation) empties the cache.
    admitted(step(&auth, &mut state, &headers, None, NOW));
    assert_eq!(state.cached_entries(), 1);
    state.install_jwks(0, Arc::new(key_set(&signer)), NOW);
    assert_eq!(state.cached_entries(), 0);
}

#[test]
fn prm_document_and_path() {
    let auth = compile(&oauth_config());
    assert_eq!(
        auth.prm_path().as_deref(),
        Some("/.well-known/oauth-protected-resource/mcp")
    );
    let prm: serde_json::Value =
        serde_json::from_str(auth.protected_resource_metadata().expect("prm")).expect("json");
    assert_eq!(
        prm,
        serde_json::json!({
            "resource": RESOURCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["mcp:read", "mcp:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Demo MCP",
        })
    );
}

#[test]
fn introspection_flow_and_cache() {
    let auth = compile(&format!(
        r#"
[[plans]]
type = "oauth2"
issuer = "{ISSUER}"
validation = "introspection"
introspection_endpoint = "{ISSUER}/introspect"
client_id = "gateway"
client_secret = "s3cret"
required_scopes = ["mcp:read"]
introspection_cache_seconds = 60
"#
    ));
    let mut state = auth.new_worker_state();
    let calls = std::cell::Cell::new(0);
    let run = |state: &mut WorkerAuthState, token: &str, answer: &serde_json::Value, now: u64| {
        let header = format!("Bearer {token}");
        let headers = [("Authorization", header.as_str())];
        for _ in 0..3 {
            match step(&auth, state, &headers, None, now) {
                AuthStep::Introspect { plan, token } => {
                    calls.set(calls.get() + 1);
                    auth.complete_introspection(
                        plan,
                        token,
                        answer.to_string().as_bytes(),
                        state,
                        now,
                    );
                }
                AuthStep::Authenticated(p) => return Ok(p),
                AuthStep::Refused(r) => return Err(r.error),
                AuthStep::FetchJwks { .. } => panic!("no JWKS in introspection mode"),
            }
        }
        panic!("loop");
    };
    let active = serde_json::json!({"active": true, "sub": "bob", "client_id": "c", "scope": "mcp:read",
        "aud": RESOURCE, "iss": ISSUER, "exp": NOW + 300});
    let principal = run(&mut state, "opaque-token-1", &active, NOW).expect("active");
    assert_eq!(principal.subject.as_deref(), Some("bob"));
    assert_eq!(principal.plan, PlanKind::OAuth2);
    run(&mut state, "opaque-token-1", &active, NOW + 30).expect("cached");
    assert_eq!(calls.get(), 1, "second request answered from the cache");
    run(&mut state, "opaque-token-1", &active, NOW + 61).expect("refreshed");
    assert_eq!(
        calls.get(),
        2,
        "cache entries live at most introspection_cache_seconds"
    );

    let inactive = serde_json::json!({"active": false});
    assert_eq!(
        run(&mut state, "revoked", &inactive, NOW),
        Err(AuthError::InvalidToken(TokenProblem::Inactive))
    );
    assert_eq!(
        run(&mut state, "revoked", &inactive, NOW + 1),
        Err(AuthError::InvalidToken(TokenProblem::Inactive))
    );
    assert_eq!(calls.get(), 3, "negative answers are cached briefly too");

    let wrong_aud = with(active.clone(), "aud", "https://elsewhere".into());
    assert_eq!(
        run(&mut state, "t2", &wrong_aud, NOW),
        Err(AuthError::InvalidToken(TokenProblem::WrongAudience))
    );
    let no_aud = without(active.clone(), "aud");
    assert_eq!(
        run(&mut state, "t3", &no_aud, NOW),
        Err(AuthError::InvalidToken(TokenProblem::WrongAudience))
    );
    let wrong_iss = with(active.clone(), "iss", "https://evil".into());
    assert_eq!(
        run(&mut state, "t4", &wrong_iss, NOW),
        Err(AuthError::InvalidToken(TokenProblem::WrongIssuer))
    );
    let expired = with(active.clone(), "exp", (NOW - 100).into());
    assert_eq!(
        run(&mut state, "t5", &expired, NOW),
        Err(AuthError::InvalidToken(TokenProblem::Expired))
    );
    let narrow = with(active.clone(), "scope", "other".into());
    assert_eq!(
        run(&mut state, "t6", &narrow, NOW),
        Err(AuthError::InsufficientScope)
    );
    let garbage = serde_json::json!("not an object");
    assert_eq!(
        run(&mut state, "t7", &garbage, NOW),
        Err(AuthError::InvalidToken(TokenProblem::BadIntrospection))
    );
    // An answer whose exp is near caps the cache lifetime.
    let short = with(active.clone(), "exp", (NOW + 5).into());
    run(&mut state, "t8", &short, NOW).expect("active");
    let before = calls.get();
    // Past exp (still inside the 30 s leeway) the cached entry is gone: the AS is asked again.
    run(&mut state, "t8", &short, NOW + 6).expect("within leeway");
    assert_eq!(calls.get(), before + 1, "entry did not outlive exp");
}

/// The status of the introspection answer decides before its body (issue 14 #8): a 4xx means the
/// authorization server was reached and did not vouch for the token (401 `invalid_token` with the
/// challenge, cached like an inactive answer); a 5xx or anything else means it could not judge
/// (the engine answers 503 and nothing is cached, so the next request asks again).
#[test]
fn introspection_status_4xx_refuses_5xx_is_unavailable() {
    let auth = compile(&format!(
        r#"
[[plans]]
type = "oauth2"
issuer = "{ISSUER}"
validation = "introspection"
introspection_endpoint = "{ISSUER}/introspect"
client_id = "gateway"
client_secret = "s3cret"
required_scopes = ["mcp:read"]
"#
    ));
    let mut state = auth.new_worker_state();
    let active = serde_json::json!({"active": true, "sub": "bob", "client_id": "c",
        "scope": "mcp:read", "aud": RESOURCE, "iss": ISSUER, "exp": NOW + 300})
    .to_string();
    let error_body = br#"{"error":"unsupported_token_type"}"#;
    let headers = [("Authorization", "Bearer opaque-1")];
    let expect_introspect =
        |state: &mut WorkerAuthState| match step(&auth, state, &headers, None, NOW) {
            AuthStep::Introspect { plan, token } => (plan, token.to_owned()),
            other => panic!("expected an introspection step, got {other:?}"),
        };

    for status in [500, 502, 503, 504, 302, 204, 100] {
        let (plan, token) = expect_introspect(&mut state);
        assert_eq!(
            auth.complete_introspection_answer(plan, &token, status, error_body, &mut state, NOW),
            Err(IntrospectionUnavailable { status }),
            "status {status}"
        );
    }
    // Nothing was cached by those: the next request asks again; a 200 is read as before.
    let (plan, token) = expect_introspect(&mut state);
    assert_eq!(
        auth.complete_introspection_answer(plan, &token, 200, active.as_bytes(), &mut state, NOW),
        Ok(())
    );
    assert!(matches!(
        step(&auth, &mut state, &headers, None, NOW),
        AuthStep::Authenticated(_)
    ));

    for (status, token_text) in [
        (400, "opaque-2"),
        (401, "opaque-3"),
        (403, "opaque-4"),
        (404, "opaque-5"),
        (429, "opaque-6"),
    ] {
        let header = format!("Bearer {token_text}");
        let headers = [("Authorization", header.as_str())];
        let (plan, token) = match step(&auth, &mut state, &headers, None, NOW) {
            AuthStep::Introspect { plan, token } => (plan, token.to_owned()),
            other => panic!("expected an introspection step, got {other:?}"),
        };
        // Even a body that reads as an active answer: the status alone refuses.
        assert_eq!(
            auth.complete_introspection_answer(
                plan,
                &token,
                status,
                active.as_bytes(),
                &mut state,
                NOW
            ),
            Ok(()),
            "status {status}"
        );
        let (error, http, challenge) = refused(&auth, step(&auth, &mut state, &headers, None, NOW));
        assert_eq!(
            error,
            AuthError::InvalidToken(TokenProblem::IntrospectionRefused),
            "status {status}"
        );
        assert_eq!(http, 401);
        assert!(
            challenge.is_some_and(|c| c.starts_with(r#"Bearer error="invalid_token""#)),
            "status {status}"
        );
    }
}

#[test]
fn several_plans_are_tried_in_order() {
    let signer = Signer::ed25519();
    let jwk = signer.jwk(Some("k")).to_string();
    let files = Files(HashMap::from([
        (
            "keys.txt",
            "# team keys\nalice aaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbb\n".to_owned(),
        ),
        ("jwks.json", format!(r#"{{"keys":[{jwk}]}}"#)),
    ]));
    let auth = compile_with(
        &format!(
            r#"
[[plans]]
type = "api_key"
header = "X-Gateway-Key"
keys = ["cccccccccccccccccccc", {{ key = "dddddddddddddddddddd", subject = "dave" }}]
keys_file = "keys.txt"

[[plans]]
type = "jwt"
issuer = "{ISSUER}"
keys = [{{ jwks_file = "jwks.json" }}]

[[plans]]
type = "keyless"
"#
        ),
        &files,
    )
    .expect("config");
    let mut state = auth.new_worker_state();

    let by_key = |key: &str, state: &mut WorkerAuthState| -> Result<Rc<Principal>, Refusal> {
        let headers = [("x-gateway-key", key)];
        match auth.authenticate(
            &AuthRequest {
                headers: &StrHeaders(&headers),
                query: None,
                client_cert: None,
            },
            state,
            NOW,
        ) {
            AuthStep::Authenticated(principal) => Ok(principal),
            AuthStep::Refused(refusal) => Err(refusal),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        by_key("aaaaaaaaaaaaaaaaaaaa", &mut state)
            .expect("key")
            .subject
            .as_deref(),
        Some("alice")
    );
    assert_eq!(
        by_key("dddddddddddddddddddd", &mut state)
            .expect("key")
            .subject
            .as_deref(),
        Some("dave")
    );
    assert_eq!(
        by_key("bbbbbbbbbbbbbbbbbbbb", &mut state)
            .expect("key")
            .plan,
        PlanKind::ApiKey
    );
    // A wrong key is refused even though the API also has a keyless plan.
    let refusal = by_key("aaaaaaaaaaaaaaaaaaab", &mut state).expect_err("wrong key");
    let (error, status, challenge) = (
        refusal.error.clone(),
        refusal.error.http_status(),
        auth.challenge(&refusal),
    );
    assert_eq!((error, status), (AuthError::InvalidApiKey, 401));
    // The API has a JWT plan (no PRM: no OAuth2 plan), so the challenge is a bare Bearer one.
    assert_eq!(challenge.as_deref(), Some("Bearer"));

    let header = format!(
        "Bearer {}",
        signer.token("EdDSA", Some("k"), &good_claims())
    );
    let principal = admitted(step(
        &auth,
        &mut state,
        &[("Authorization", &header)],
        None,
        NOW,
    ));
    assert_eq!(principal.plan, PlanKind::Jwt);

    // No credentials at all: the keyless plan admits an anonymous principal.
    let anonymous = admitted(step(&auth, &mut state, &[], None, NOW));
    assert_eq!(
        (anonymous.plan, anonymous.subject.clone()),
        (PlanKind::Keyless, None)
    );

    // A bad bearer token does not silently fall back to keyless.
    let bad = format!(
        "Bearer {}",
        Signer::ed25519().token("EdDSA", Some("k"), &good_claims())
    );
    let (error, status, challenge) = refused(
        &auth,
        step(&auth, &mut state, &[("Authorization", &bad)], None, NOW),
    );
    assert_eq!(
        (error, status),
        (AuthError::InvalidToken(TokenProblem::BadSignature), 401)
    );
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
}

#[test]
fn a_request_matching_no_plan_is_401() {
    let auth = compile(
        r#"
[[plans]]
type = "api_key"
keys = ["cccccccccccccccccccc"]
"#,
    );
    let mut state = auth.new_worker_state();
    let (error, status, challenge) = refused(
        &auth,
        step(
            &auth,
            &mut state,
            &[("Authorization", "Basic Zm9vOmJhcg==")],
            None,
            NOW,
        ),
    );
    assert_eq!(
        (error, status, challenge),
        (AuthError::MissingCredentials, 401, None)
    );
    let ok = step(
        &auth,
        &mut state,
        &[("X-API-Key", "cccccccccccccccccccc")],
        None,
        NOW,
    );
    assert_eq!(admitted(ok).subject.as_deref(), Some("api-key-1"));
    // A malformed bearer header is a 400 even when an API key is accepted alongside it.
    let mixed = [
        ("X-API-Key", "cccccccccccccccccccc"),
        ("Authorization", "Bearer  spaced out"),
    ];
    assert!(matches!(
        refused(&auth, step(&auth, &mut state, &mixed, None, NOW)).0,
        AuthError::InvalidRequest(_)
    ));
    let twice = [
        ("X-API-Key", "cccccccccccccccccccc"),
        ("x-api-key", "cccccccccccccccccccc"),
    ];
    assert!(matches!(
        refused(&auth, step(&auth, &mut state, &twice, None, NOW)).0,
        AuthError::InvalidRequest(_)
    ));
}

#[test]
fn hmac_plan_only_when_configured() {
    let secret = "an-hmac-secret-of-at-least-32-bytes!";
    let auth = compile(&format!(
        r#"
[[plans]]
type = "jwt"
hmac_secret = "{secret}"
issuer = "{ISSUER}"
"#
    ));
    let mut state = auth.new_worker_state();
    let token = Signer::hmac(secret.as_bytes()).token("HS256", None, &good_claims());
    let header = format!("Bearer {token}");
    assert!(matches!(
        step(&auth, &mut state, &[("Authorization", &header)], None, NOW),
        AuthStep::Authenticated(_)
    ));
    // HS512 needs a 64-byte secret: not enabled by this one.
    let token = Signer::hmac(secret.as_bytes()).token("HS512", None, &good_claims());
    let header = format!("Bearer {token}");
    let (error, ..) = refused(
        &auth,
        step(&auth, &mut state, &[("Authorization", &header)], None, NOW),
    );
    assert_eq!(
        error,
        AuthError::InvalidToken(TokenProblem::AlgorithmRefused)
    );

    // An RSA static-key plan: the HS256-with-public-key token is refused.
    let auth = compile(&format!(
        r#"
[[plans]]
type = "jwt"
keys = [{{ pem = """{RSA_PUBLIC_PEM}""" }}]
"#
    ));
    let mut state = auth.new_worker_state();
    let forged = Signer::hmac(RSA_PUBLIC_PEM.as_bytes()).token("HS256", None, &good_claims());
    let header = format!("Bearer {forged}");
    let (error, status, _) = refused(
        &auth,
        step(&auth, &mut state, &[("Authorization", &header)], None, NOW),
    );
    assert_eq!(
        (error, status),
        (AuthError::InvalidToken(TokenProblem::AlgorithmRefused), 401)
    );
    let good = format!(
        "Bearer {}",
        Signer::rsa().token("PS384", None, &good_claims())
    );
    assert!(matches!(
        step(&auth, &mut state, &[("Authorization", &good)], None, NOW),
        AuthStep::Authenticated(_)
    ));
}

#[test]
fn config_errors_name_the_field() {
    let cases: Vec<(String, &str)> = vec![
        ("plans = []".to_owned(), "plans:"),
        (
            r#"[[plans]]
type = "api_key"
keys = ["short"]"#
                .to_owned(),
            "plans[0].keys[0]:",
        ),
        (
            r#"[[plans]]
type = "keyless"
[[plans]]
type = "jwt"
algorithms = ["none"]
hmac_secret = "0123456789abcdef0123456789abcdef""#
                .to_owned(),
            "plans[1].algorithms[0]:",
        ),
        (
            r#"[[plans]]
type = "jwt"
hmac_secret = "too short""#
                .to_owned(),
            "plans[0].hmac_secret:",
        ),
        (
            r#"[[plans]]
type = "jwt"
keys = [{ pem = "garbage" }]"#
                .to_owned(),
            "plans[0].keys[0].pem:",
        ),
        (
            r#"[[plans]]
type = "jwt"
keys = [{ pem_file = "missing.pem" }]"#
                .to_owned(),
            "plans[0].keys[0].pem_file:",
        ),
        (
            r#"[[plans]]
type = "jwt"
hmac_secret = "0123456789abcdef0123456789abcdef"
algorithms = ["RS256"]"#
                .to_owned(),
            "plans[0].algorithms:",
        ),
        (
            format!(
                r#"[[plans]]
type = "oauth2"
issuer = "{ISSUER}"
audiences = []"#
            ),
            "plans[0].audiences:",
        ),
        (
            format!(
                r#"[[plans]]
type = "oauth2"
issuer = "{ISSUER}"
algorithms = ["HS256"]"#
            ),
            "plans[0].algorithms:",
        ),
        (
            format!(
                r#"[[plans]]
type = "oauth2"
issuer = "{ISSUER}"
validation = "introspection""#
            ),
            "plans[0].validation:",
        ),
        (
            r#"[[plans]]
type = "oauth2"
issuer = "not a url""#
                .to_owned(),
            "plans[0].issuer:",
        ),
        (
            format!(
                r#"[[plans]]
type = "oauth2"
issuer = "{ISSUER}"
required_scopes = ["has space"]"#
            ),
            "plans[0].required_scopes[0]:",
        ),
    ];
    for (text, field) in cases {
        let error = compile_with(&text, &NoFiles)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(error.starts_with(field), "{text}\n=> {error}");
    }
    // Unknown fields and plan types are refused by the deserialiser itself.
    assert!(compile_with("[[plans]]\ntype = \"keyless\"\nextra = 1", &NoFiles).is_err());
    assert!(compile_with("[[plans]]\ntype = \"magic\"", &NoFiles).is_err());
    // Token plans need a public URL.
    let user: AuthConfigUser = toml::from_str(&oauth_config()).expect("toml");
    let error = user
        .compile(&CompileContext {
            public_url: None,
            files: &NoFiles,
        })
        .expect_err("no url");
    assert_eq!(error.field, "plans[0].type");
}

#[test]
fn sessions_are_bound_to_their_subject() {
    let binder = SessionBinder::from_secret(&[42; 32]).expect("binder");
    let sealed = binder
        .seal(Some("alice"), "upstream-session-7f3a")
        .expect("seal");
    // Opaque: the client never sees the upstream's session id.
    assert!(!sealed.contains("upstream-session"), "{sealed}");
    assert_eq!(
        binder.open(Some("alice"), &sealed).as_deref(),
        Ok("upstream-session-7f3a")
    );
    // Another subject, an anonymous caller, or a tampered id: 404, no challenge.
    let mut flipped = sealed.clone().into_bytes();
    if let Some(b) = flipped.get_mut(20) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    let flipped = String::from_utf8(flipped).expect("ascii");
    for (subject, id) in [
        (Some("mallory"), sealed.clone()),
        (None, sealed.clone()),
        (Some(""), sealed.clone()),
        (Some("alice"), flipped),
        (Some("alice"), format!("{sealed}x")),
        (Some("alice"), "short".to_owned()),
        (Some("alice"), String::new()),
    ] {
        let outcome = binder.open(subject, &id);
        assert_eq!(
            outcome,
            Err(AuthError::SessionNotFound),
            "{subject:?} {id:?}"
        );
    }
    assert_eq!(AuthError::SessionNotFound.http_status(), 404);
    // Another replica with the same secret accepts it; one with another secret does not.
    assert!(SessionBinder::from_secret(&[42; 32])
        .expect("b")
        .open(Some("alice"), &sealed)
        .is_ok());
    assert!(SessionBinder::from_secret(&[43; 32])
        .expect("b")
        .open(Some("alice"), &sealed)
        .is_err());
}

#[test]
fn jwks_is_refreshed_when_older_than_max_age() {
    let auth = compile(&format!("{}jwks_max_age_seconds = 600\n", oauth_config()));
    let mut state = auth.new_worker_state();
    let signer = Signer::ed25519();
    let jwks = key_set(&signer);
    let mut fetches = 0;
    let token = signer.token(
        "EdDSA",
        Some("k"),
        &with(good_claims(), "exp", (NOW + 10_000).into()),
    );
    run_oauth(&auth, &mut state, &jwks, &mut fetches, &token, NOW).expect("admitted");
    run_oauth(&auth, &mut state, &jwks, &mut fetches, &token, NOW + 599).expect("admitted");
    assert_eq!(fetches, 1, "fresh set: no refetch");
    run_oauth(&auth, &mut state, &jwks, &mut fetches, &token, NOW + 600).expect("admitted");
    assert_eq!(fetches, 2, "stale set: refreshed in-band");
    // If the refresh fails, the old set keeps serving.
    let header = format!("Bearer {token}");
    let headers = [("Authorization", header.as_str())];
    match step(&auth, &mut state, &headers, None, NOW + 1300) {
        AuthStep::FetchJwks { plan } => state.jwks_fetch_failed(plan),
        other => panic!("expected a refresh, got {other:?}"),
    }
    assert!(matches!(
        step(&auth, &mut state, &headers, None, NOW + 1300),
        AuthStep::Authenticated(_)
    ));
}

/// The `client_cert` plan admits a request only when the listener verified a client certificate;
/// its identity becomes the subject and its facts the claims. Without a certificate, and with no
/// other plan, the request is refused as unauthenticated.
#[test]
fn client_cert_plan_admits_verified_certificates_only() {
    let auth = compile("[[plans]]\ntype = \"client_cert\"\n");
    let mut state = auth.new_worker_state();
    let cert = mcpgate_policies::tls::ClientCertificate {
        subject: "CN=alice, O=Acme".into(),
        common_name: Some("alice".into()),
        dns_names: vec!["alice.acme.example".into()],
        fingerprint_sha256: "ab".repeat(32),
        not_after: 4_000_000_000,
        ..Default::default()
    };
    let admitted = auth.authenticate(
        &AuthRequest {
            headers: &StrHeaders(&[]),
            query: None,
            client_cert: Some(&cert),
        },
        &mut state,
        1_000,
    );
    match admitted {
        AuthStep::Authenticated(p) => {
            assert_eq!(p.subject.as_deref(), Some("alice.acme.example"));
            assert_eq!(p.plan, PlanKind::ClientCert);
            assert_eq!(p.claims["common_name"], "alice");
            assert_eq!(p.claims["fingerprint_sha256"], "ab".repeat(32));
        }
        other => panic!("{other:?}"),
    }
    match step(&auth, &mut state, &[], None, 1_000) {
        AuthStep::Refused(Refusal {
            error: AuthError::MissingCredentials,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}
