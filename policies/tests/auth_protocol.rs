//! The protocol pieces around validation: `WWW-Authenticate` building, parsing and Mode A
//! rewriting; RFC 9728 well-known URLs and PRM rewriting; AS metadata and its discovery URLs;
//! JWKS parsing and the refetch policy; the token cache's bounds; API keys; bearer parsing.

#[path = "auth_support.rs"]
mod support;

use mcpgate_policies::auth::apikey::{parse_keys_file, ApiKeyEntry, ApiKeyPlan};
use mcpgate_policies::auth::cache::TokenCache;
use mcpgate_policies::auth::challenge::{
    parse_www_authenticate, rewrite_resource_metadata, BearerChallenge,
};
use mcpgate_policies::auth::introspection::{client_authorization, request_body};
use mcpgate_policies::auth::jwks::JwksError;
use mcpgate_policies::auth::metadata::{as_metadata_urls, rewrite_upstream_prm, MetadataError};
use mcpgate_policies::auth::request::{parse_bearer, refuse_query_token, Authorization};
use mcpgate_policies::auth::{
    AuthError, AuthorizationServerMetadata, ChallengeError, KeySet, PublicUrl, RefetchPolicy,
    VerifyingKey,
};
use support::*;

#[test]
fn bearer_challenges() {
    let url = "https://gw.example.com/.well-known/oauth-protected-resource/mcp";
    let missing = BearerChallenge {
        resource_metadata: Some(url),
        scope: Some("files:read"),
        error: None,
    };
    assert_eq!(
        missing.to_header_value(),
        format!(r#"Bearer scope="files:read", resource_metadata="{url}""#)
    );
    let invalid = BearerChallenge {
        error: Some(ChallengeError::InvalidToken),
        ..missing.clone()
    };
    assert_eq!(
        invalid.to_header_value(),
        format!(r#"Bearer error="invalid_token", scope="files:read", resource_metadata="{url}""#)
    );
    let scope = BearerChallenge {
        resource_metadata: Some(url),
        scope: Some("files:read files:write"),
        error: Some(ChallengeError::InsufficientScope),
    };
    assert_eq!(
        scope.to_header_value(),
        format!(
            r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="{url}""#
        )
    );
    // Built values parse back to the same parameters.
    let parsed = parse_www_authenticate(&scope.to_header_value()).expect("parse");
    assert_eq!(parsed[0].param("SCOPE"), Some("files:read files:write"));
    assert_eq!(BearerChallenge::default().to_header_value(), "Bearer");
    // Quotes and backslashes in values are escaped.
    let odd = BearerChallenge {
        resource_metadata: Some(r#"a"b\c"#),
        scope: None,
        error: None,
    };
    let parsed = parse_www_authenticate(&odd.to_header_value()).expect("parse");
    assert_eq!(parsed[0].param("resource_metadata"), Some(r#"a"b\c"#));
}

#[test]
fn parses_several_challenges_token68_and_escapes() {
    let header = r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple", Bearer resource_metadata="https://up.internal/.well-known/oauth-protected-resource", scope="a b", Negotiate abc123==, Digest realm = "x" , qop="auth""#;
    let challenges = parse_www_authenticate(header).expect("parse");
    let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
    assert_eq!(
        schemes,
        ["Newauth", "Basic", "Bearer", "Negotiate", "Digest"]
    );
    assert_eq!(challenges[0].param("title"), Some(r#"Login to "apps""#));
    assert_eq!(challenges[0].param("type"), Some("1"));
    assert_eq!(challenges[2].param("scope"), Some("a b"));
    assert_eq!(challenges[3].token68.as_deref(), Some("abc123=="));
    assert_eq!(challenges[4].param("qop"), Some("auth"));

    assert_eq!(
        parse_www_authenticate("Bearer").expect("bare")[0]
            .params
            .len(),
        0
    );
    assert_eq!(
        parse_www_authenticate("Basic, Bearer")
            .expect("two bare")
            .len(),
        2
    );
    assert_eq!(parse_www_authenticate("").expect("empty").len(), 0);
    for bad in [
        r#"Bearer realm="unterminated"#,
        r#"Bearer realm="x", =y"#,
        "=x",
        "Bearer a=b c",
        "Bearer realm=\"\u{1}\"",
    ] {
        assert!(parse_www_authenticate(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn mode_a_rewrites_resource_metadata_and_keeps_the_rest() {
    let ours = "https://gw.example.com/.well-known/oauth-protected-resource/u/foo/mcp";
    let upstream = r#"Bearer error="invalid_token", resource_metadata="https://up.internal/.well-known/oauth-protected-resource/mcp", scope="files:read""#;
    let rewritten = rewrite_resource_metadata(upstream, ours).expect("rewrite");
    assert!(!rewritten.contains("up.internal"), "{rewritten}");
    let parsed = parse_www_authenticate(&rewritten).expect("parse");
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].param("resource_metadata"), Some(ours));
    assert_eq!(parsed[0].param("error"), Some("invalid_token"));
    assert_eq!(parsed[0].param("scope"), Some("files:read"));

    // Case-insensitive scheme and name, other challenges untouched.
    let mixed = r#"Basic realm="x", bearer RESOURCE_METADATA=https://up.internal/prm"#;
    let parsed = parse_www_authenticate(&rewrite_resource_metadata(mixed, ours).expect("rewrite"))
        .expect("parse");
    assert_eq!(parsed[0].param("realm"), Some("x"));
    assert_eq!(parsed[1].param("resource_metadata"), Some(ours));
    // Unparseable: None (the engine drops the header rather than leak it).
    assert_eq!(
        rewrite_resource_metadata(r#"Bearer resource_metadata="https://up.internal"#, ours),
        None
    );
}

#[test]
fn well_known_urls_from_the_public_url() {
    let url = PublicUrl::parse("HTTPS://GW.Example.com:8443/public/mcp/").expect("url");
    assert_eq!(url.as_resource(), "https://gw.example.com:8443/public/mcp");
    assert_eq!(
        url.prm_path(),
        "/.well-known/oauth-protected-resource/public/mcp"
    );
    assert_eq!(
        url.prm_url(),
        "https://gw.example.com:8443/.well-known/oauth-protected-resource/public/mcp"
    );
    assert_eq!(
        url.prm_root_url(),
        "https://gw.example.com:8443/.well-known/oauth-protected-resource"
    );
    let root = PublicUrl::parse("https://gw.example.com").expect("root");
    assert_eq!(root.prm_url(), root.prm_root_url());
    for bad in [
        "gw.example.com/mcp",
        "ftp://x/y",
        "https://u:p@x/y",
        "https://x/y?q=1",
        "https://x/y#f",
        "https:///y",
        "https://x/a b",
    ] {
        assert!(
            matches!(PublicUrl::parse(bad), Err(MetadataError::BadUrl(_))),
            "{bad}"
        );
    }
}

#[test]
fn upstream_prm_is_rewritten_to_the_public_url() {
    let upstream = br#"{"resource":"https://up.internal/mcp","authorization_servers":["https://as.example.com"],"scopes_supported":["a"],"bearer_methods_supported":["header"],"x_custom":{"k":1}}"#;
    let public = PublicUrl::parse("https://gw.example.com/u/foo/mcp").expect("url");
    let rewritten: serde_json::Value =
        serde_json::from_slice(&rewrite_upstream_prm(upstream, &public).expect("rewrite"))
            .expect("json");
    assert_eq!(rewritten["resource"], "https://gw.example.com/u/foo/mcp");
    assert_eq!(
        rewritten["authorization_servers"],
        serde_json::json!(["https://as.example.com"])
    );
    assert_eq!(rewritten["x_custom"]["k"], 1);
    assert_eq!(
        rewrite_upstream_prm(b"[1]", &public),
        Err(MetadataError::NotObject)
    );
    assert_eq!(
        rewrite_upstream_prm(b"{", &public),
        Err(MetadataError::NotObject)
    );
}

#[test]
fn as_metadata_discovery_and_parsing() {
    assert_eq!(
        as_metadata_urls("https://a.ex/t1").expect("urls"),
        [
            "https://a.ex/.well-known/oauth-authorization-server/t1",
            "https://a.ex/.well-known/openid-configuration/t1",
            "https://a.ex/t1/.well-known/openid-configuration",
        ]
    );
    assert_eq!(
        as_metadata_urls("https://a.ex").expect("urls"),
        [
            "https://a.ex/.well-known/oauth-authorization-server",
            "https://a.ex/.well-known/openid-configuration"
        ]
    );
    let doc = br#"{"issuer":"https://a.ex/t1","jwks_uri":"https://a.ex/t1/jwks","introspection_endpoint":"https://a.ex/t1/introspect","token_endpoint":"https://a.ex/t1/token","response_types_supported":["code"]}"#;
    let meta = AuthorizationServerMetadata::parse(doc, "https://a.ex/t1").expect("meta");
    assert_eq!(meta.jwks_uri.as_deref(), Some("https://a.ex/t1/jwks"));
    assert_eq!(
        meta.introspection_endpoint.as_deref(),
        Some("https://a.ex/t1/introspect")
    );
    // Mix-up defence: metadata for another issuer is refused.
    assert!(matches!(
        AuthorizationServerMetadata::parse(doc, "https://a.ex/t2"),
        Err(MetadataError::IssuerMismatch { .. })
    ));
    assert_eq!(
        AuthorizationServerMetadata::parse(b"{}", "x"),
        Err(MetadataError::MissingField("issuer"))
    );
}

#[test]
fn jwks_parsing_skips_what_it_cannot_use() {
    let rsa = Signer::rsa();
    let ec = Signer::ec("P-384");
    let ed = Signer::ed25519();
    let mut enc = rsa.jwk(Some("enc"));
    enc["use"] = "enc".into();
    let doc = serde_json::json!({"keys": [
        rsa.jwk(Some("r")), ec.jwk(Some("e")), ed.jwk(Some("d")), enc,
        {"kty": "oct", "k": b64(&[1; 32]), "kid": "secret"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
        {"kty": "RSA", "n": b64(&[0xff; 64]), "e": "AQAB", "kid": "weak"},
        {"kty": "future", "kid": "f"},
        {"kty": "RSA", "n": "", "e": "", "kid": "empty"},
        {"kty": "RSA", "n": "AAAA", "e": "AQAB", "kid": "zeros"},
    ]});
    let (set, skipped) =
        KeySet::from_jwks_json_with(doc.to_string().as_bytes(), false).expect("jwks");
    assert_eq!(set.len(), 3);
    assert_eq!(skipped.len(), 7);
    assert!(set.by_kid("r").is_some() && set.by_kid("e").is_some() && set.by_kid("d").is_some());
    assert!(
        set.by_kid("secret").is_none(),
        "symmetric keys never come from a published JWKS"
    );
    assert!(set.by_kid("weak").is_none(), "RSA below 2048 bits refused");

    assert!(matches!(
        KeySet::from_jwks_json(b"nope"),
        Err(JwksError::Json(_))
    ));
    assert_eq!(KeySet::from_jwks_json(b"{}").err(), Some(JwksError::NoKeys));
    assert_eq!(
        KeySet::from_jwks_json(br#"{"keys":[]}"#).err(),
        Some(JwksError::NoUsableKey)
    );
    let dup = serde_json::json!({"keys": [ed.jwk(Some("x")), ec.jwk(Some("x"))]});
    assert_eq!(
        KeySet::from_jwks_json(dup.to_string().as_bytes()).err(),
        Some(JwksError::DuplicateKid("x".into()))
    );
    let many = serde_json::json!({"keys": vec![ed.jwk(None); 65]});
    assert_eq!(
        KeySet::from_jwks_json(many.to_string().as_bytes()).err(),
        Some(JwksError::TooManyKeys)
    );
}

#[test]
fn pem_and_der_import() {
    let key = VerifyingKey::from_pem(RSA_PUBLIC_PEM).expect("spki rsa");
    assert!(key.usable_for(mcpgate_policies::auth::Algorithm::PS256));
    for bad in [
        "",
        "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ] {
        assert!(VerifyingKey::from_pem(bad).is_err(), "{bad:?}");
    }
    // Truncations of a valid SPKI never panic and never load.
    let body: String = RSA_PUBLIC_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).expect("b64");
    for len in 0..der.len() {
        assert!(
            VerifyingKey::from_spki_der(&der[..len]).is_err(),
            "prefix {len}"
        );
    }
    assert!(VerifyingKey::from_spki_der(&der).is_ok());
}

#[test]
fn refetch_policy_is_rate_limited() {
    let mut policy = RefetchPolicy::new(30);
    assert!(policy.try_begin(1000));
    assert!(!policy.try_begin(1000));
    assert!(!policy.try_begin(1029));
    assert!(policy.try_begin(1030));
    assert_eq!(policy.last_attempt(), Some(1030));
    assert!(!policy.may_refetch(1031));
}

#[test]
fn token_cache_is_bounded_and_expires() {
    let mut cache: TokenCache<u32> = TokenCache::new(3);
    for i in 0..3u32 {
        cache.insert(format!("token-{i}").as_bytes(), i, 1000, 0);
    }
    assert_eq!(cache.len(), 3);
    cache.insert(b"token-3", 3, 1000, 0);
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.get(b"token-0", 1), None, "oldest evicted");
    assert_eq!(cache.get(b"token-3", 1), Some(3));
    assert_eq!(cache.get(b"token-1", 999), Some(1));
    assert_eq!(
        cache.get(b"token-1", 1000),
        None,
        "never served at or after its expiry"
    );
    cache.insert(b"late", 9, 10, 10);
    assert_eq!(
        cache.get(b"late", 10),
        None,
        "already-expired values are not stored"
    );
    // Replacing an entry keeps the bound; heavy churn keeps the bookkeeping bounded too.
    for round in 0..10_000u32 {
        cache.insert(format!("churn-{}", round % 5).as_bytes(), round, 2000, 0);
        assert!(cache.len() <= 3);
    }
    assert_eq!(cache.get(b"nope", 0), None);
}

#[test]
fn api_keys_are_matched_by_keyed_digest() {
    let keys = [
        ApiKeyEntry {
            key: "k-aaaaaaaaaaaaaaaaaaaa".into(),
            subject: "alice".into(),
        },
        ApiKeyEntry {
            key: "k-bbbbbbbbbbbbbbbbbbbb".into(),
            subject: "bob".into(),
        },
    ];
    let plan = ApiKeyPlan::new("X-API-Key", &keys).expect("plan");
    assert_eq!(plan.header(), "x-api-key");
    assert_eq!(
        plan.check(b"k-bbbbbbbbbbbbbbbbbbbb")
            .expect("bob")
            .subject
            .as_deref(),
        Some("bob")
    );
    for wrong in [
        &b""[..],
        b"k-bbbbbbbbbbbbbbbbbbbc",
        b"k-bbbbbbbbbbbbbbbbbbb",
        &[b'k'; 600],
    ] {
        assert_eq!(plan.check(wrong), Err(AuthError::InvalidApiKey));
    }
    assert!(ApiKeyPlan::new("X API Key", &keys).is_err());
    assert!(ApiKeyPlan::new("x-api-key", &[keys[0].clone(), keys[0].clone()]).is_err());
    let parsed = parse_keys_file("# comment\n\n  alice   k-1111111111111111\nk-2222222222222222\n");
    assert_eq!(parsed.len(), 2);
    assert_eq!(
        (parsed[0].subject.as_str(), parsed[0].key.as_str()),
        ("alice", "k-1111111111111111")
    );
    assert_eq!(parsed[1].subject, "api-key-4");
}

#[test]
fn bearer_header_parsing() {
    assert_eq!(
        parse_bearer(b"Bearer abc.def-_~+/=="),
        Ok(Authorization::Bearer("abc.def-_~+/=="))
    );
    assert_eq!(parse_bearer(b"BEARER x"), Ok(Authorization::Bearer("x")));
    assert_eq!(parse_bearer(b"Basic Zm9v"), Ok(Authorization::OtherScheme));
    assert_eq!(parse_bearer(b"Bearerx y"), Ok(Authorization::OtherScheme));
    // RFC 9110 §11.4 / RFC 6750 §2.1: `credentials = auth-scheme [ 1*SP token68 ]`: any number
    // of spaces (and, leniently, tabs) between the scheme and the token.
    for spaced in [
        &b"Bearer  x"[..],
        b"Bearer     x",
        b"bearer 	 x",
        b"Bearer	x",
        b"bEaReR		x",
    ] {
        assert_eq!(
            parse_bearer(spaced),
            Ok(Authorization::Bearer("x")),
            "{:?}",
            String::from_utf8_lossy(spaced)
        );
    }
    assert_eq!(parse_bearer(b"Basic	Zm9v"), Ok(Authorization::OtherScheme));
    for bad in [
        &b"Bearer"[..],
        b"Bearer ",
        b"Bearer  ",
        b"Bearer \t",
        b"Bearer x y",
        b"Bearer  x y",
        b"Bearer x\ty",
        b"Bearer =",
        b"Bearer a=b",
        b"Bearer \xff",
    ] {
        assert!(
            matches!(parse_bearer(bad), Err(AuthError::InvalidRequest(_))),
            "{bad:?}"
        );
    }
    assert!(refuse_query_token(None).is_ok());
    assert!(refuse_query_token(Some("")).is_ok());
    assert!(refuse_query_token(Some("token=1&access_tokens=2")).is_ok());
    for bad in [
        "access_token",
        "access_token=",
        "x=1;access_token=2",
        "access%5ftoken=1",
        "%61ccess_token=1",
    ] {
        assert!(refuse_query_token(Some(bad)).is_err(), "{bad}");
    }
}

#[test]
fn introspection_request_pieces() {
    assert_eq!(
        request_body("a+b/c="),
        "token=a%2Bb%2Fc%3D&token_type_hint=access_token"
    );
    // RFC 6749 §2.3.1: id and secret are form-encoded before base64.
    assert_eq!(
        client_authorization("gw", "p:ss"),
        format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "gw:p%3Ass")
        )
    );
}

mod properties {
    use super::*;
    use mcpgate_policies::auth::{verify_jwt, AlgorithmSet, JwtRules};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(input in ".{0,200}") {
            let _ = parse_www_authenticate(&input);
            let _ = rewrite_resource_metadata(&input, "https://gw/x");
            let _ = PublicUrl::parse(&input);
            let _ = refuse_query_token(Some(&input));
            let _ = parse_bearer(input.as_bytes());
            let _ = VerifyingKey::from_pem(&input);
            let _ = KeySet::from_jwks_json(input.as_bytes());
        }

        #[test]
        fn arbitrary_jwks_never_panic(
            kty in prop::sample::select(vec!["RSA", "EC", "OKP", "oct", "x"]),
            crv in prop::sample::select(vec!["P-256", "P-384", "Ed25519", "P-521"]),
            a in prop::collection::vec(any::<u8>(), 0..300),
            b in prop::collection::vec(any::<u8>(), 0..70),
        ) {
            let jwk = serde_json::json!({"kty": kty, "crv": crv, "n": b64(&a), "e": b64(&b),
                "x": b64(&b), "y": b64(&a), "k": b64(&a)});
            if let Ok(key) = VerifyingKey::from_jwk(&jwk, true) {
                for alg in mcpgate_policies::auth::Algorithm::ALL {
                    let _ = key.verify(alg, b"message", &a);
                }
            }
        }

        #[test]
        fn garbage_tokens_are_refused(token in "[A-Za-z0-9_.=-]{0,300}") {
            let keys = KeySet::new(vec![VerifyingKey::hmac(&[9; 32]).expect("key")]).expect("set");
            let rules = JwtRules::new(mcpgate_policies::auth::Algorithm::ALL.into_iter().collect::<AlgorithmSet>(), RESOURCE);
            prop_assert!(verify_jwt(&token, &keys, &rules, NOW).is_err());
        }

        #[test]
        fn built_challenges_parse_back(url in "[ -~]{0,60}", scope in "[!#-\\[\\]-~]{1,20}( [!#-\\[\\]-~]{1,20}){0,3}") {
            let challenge = BearerChallenge { resource_metadata: Some(&url), scope: Some(&scope), error: Some(ChallengeError::InvalidToken) };
            let parsed = parse_www_authenticate(&challenge.to_header_value()).expect("parse");
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(parsed[0].param("resource_metadata"), Some(url.as_str()));
            prop_assert_eq!(parsed[0].param("scope"), Some(scope.as_str()));
            prop_assert_eq!(parsed[0].param("error"), Some("invalid_token"));
        }
    }
}
