//! JWT validation: a positive token for every algorithm, and the negative corpus (wrong
//! signature, `alg: none`, HS/RS confusion, unknown kid, wrong iss/aud, expired, not yet valid,
//! missing scope, …), each refused with the precise reason and the right status.

#[path = "auth_support.rs"]
mod support;

use mcpgate_policies::auth::keys::{Algorithm, AlgorithmSet, KeyFamily, VerifyingKey};
use mcpgate_policies::auth::{validate_jwt, verify_jwt, AuthError, JwtRules, KeySet, TokenProblem};
use support::*;

fn rules(algs: &[Algorithm]) -> JwtRules {
    let mut rules = JwtRules::new(algs.iter().copied().collect::<AlgorithmSet>(), RESOURCE);
    rules.issuer = Some(ISSUER.into());
    rules
}

fn all_algs() -> JwtRules {
    rules(&Algorithm::ALL)
}

fn set_of(signer: &Signer, kid: &str) -> KeySet {
    let key = VerifyingKey::from_jwk(&signer.jwk(Some(kid)), true).expect("jwk");
    KeySet::new(vec![key]).expect("set")
}

fn problem(result: Result<impl std::fmt::Debug, AuthError>) -> TokenProblem {
    match result {
        Err(AuthError::InvalidToken(problem)) => problem,
        other => panic!("expected invalid_token, got {other:?}"),
    }
}

const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn every_algorithm_verifies_with_a_matching_key() {
    let rsa = Signer::rsa();
    let cases: Vec<(Signer, &[&str])> = vec![
        (Signer::hmac(HMAC_SECRET), &["HS256", "HS384", "HS512"]),
        (rsa, &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]),
        (Signer::ec("P-256"), &["ES256"]),
        (Signer::ec("P-384"), &["ES384"]),
        (Signer::ed25519(), &["EdDSA"]),
    ];
    for (signer, algs) in &cases {
        let keys = set_of(signer, "k1");
        for alg in *algs {
            let token = signer.token(alg, Some("k1"), &good_claims());
            let principal = validate_jwt(&token, &keys, &all_algs(), NOW)
                .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
            assert_eq!(principal.subject.as_deref(), Some("alice"), "{alg}");
            // Without a kid, the key is chosen by family.
            let token = signer.token(alg, None, &good_claims());
            assert!(
                validate_jwt(&token, &keys, &all_algs(), NOW).is_ok(),
                "{alg} without kid"
            );
        }
    }
}

#[test]
fn static_pem_keys_verify() {
    let rsa = Signer::rsa();
    let key = VerifyingKey::from_pem(RSA_PUBLIC_PEM).expect("pem");
    assert_eq!(key.family(), KeyFamily::Rsa);
    let keys = KeySet::new(vec![key]).expect("set");
    for alg in ["RS256", "PS512"] {
        let token = rsa.token(alg, None, &good_claims());
        assert!(verify_jwt(&token, &keys, &all_algs(), NOW).is_ok(), "{alg}");
    }
}

#[test]
fn wrong_signature_is_refused() {
    let signer = Signer::ec("P-256");
    let other = Signer::ec("P-256");
    let keys = set_of(&signer, "k1");
    let forged = other.token("ES256", Some("k1"), &good_claims());
    assert_eq!(
        problem(verify_jwt(&forged, &keys, &all_algs(), NOW)),
        TokenProblem::BadSignature
    );

    // A valid token whose payload was swapped for another (same signature).
    let token = signer.token("ES256", Some("k1"), &good_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let evil_payload = b64(with(good_claims(), "sub", "mallory".into())
        .to_string()
        .as_bytes());
    let tampered = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
    assert_eq!(
        problem(verify_jwt(&tampered, &keys, &all_algs(), NOW)),
        TokenProblem::BadSignature
    );
}

#[test]
fn alg_none_is_never_accepted() {
    let signer = Signer::ed25519();
    let keys = set_of(&signer, "k1");
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good_claims().to_string().as_bytes())
    );
    assert_eq!(
        problem(verify_jwt(&unsigned, &keys, &all_algs(), NOW)),
        TokenProblem::Malformed
    );
    // Even with something in the signature slot, and whatever the case.
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.{}",
            b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()),
            b64(good_claims().to_string().as_bytes()),
            b64(b"sig")
        );
        assert_eq!(
            problem(verify_jwt(&token, &keys, &all_algs(), NOW)),
            TokenProblem::AlgorithmRefused
        );
    }
    assert!(Algorithm::from_name("none").is_none());
}

#[test]
fn hs_rs_key_confusion_is_refused() {
    // The classic attack: HS256 with the RSA public key's bytes as the HMAC secret.
    let attacker = Signer::hmac(RSA_PUBLIC_PEM.as_bytes());
    let keys =
        KeySet::new(vec![VerifyingKey::from_pem(RSA_PUBLIC_PEM).expect("pem")]).expect("set");
    let token = attacker.token("HS256", None, &good_claims());
    // Even when the allow-list wrongly includes HS256, no RSA key verifies an HMAC.
    assert_eq!(
        problem(verify_jwt(&token, &keys, &all_algs(), NOW)),
        TokenProblem::NoUsableKey
    );
    // Naming the RSA key by kid does not help.
    let keys = KeySet::new(vec![VerifyingKey::from_pem(RSA_PUBLIC_PEM)
        .expect("pem")
        .with_kid("rsa")])
    .expect("set");
    let token = attacker.token("HS256", Some("rsa"), &good_claims());
    assert_eq!(
        problem(verify_jwt(&token, &keys, &all_algs(), NOW)),
        TokenProblem::AlgorithmRefused
    );
    // And the DER bytes of the key fare no better.
    let jwk = Signer::rsa().jwk(Some("rsa"));
    let keys = KeySet::new(vec![VerifyingKey::from_jwk(&jwk, false).expect("jwk")]).expect("set");
    let token = attacker.token("HS512", Some("rsa"), &good_claims());
    assert_eq!(
        problem(verify_jwt(&token, &keys, &all_algs(), NOW)),
        TokenProblem::AlgorithmRefused
    );
}

#[test]
fn curve_and_pinned_alg_must_match() {
    let p256 = Signer::ec("P-256");
    let keys = set_of(&p256, "k1");
    // An ES384 header on a P-256 key: refused before any verification.
    let token = p256.token("ES384", Some("k1"), &good_claims());
    assert_eq!(
        problem(verify_jwt(&token, &keys, &all_algs(), NOW)),
        TokenProblem::AlgorithmRefused
    );

    let rsa = Signer::rsa();
    let mut jwk = rsa.jwk(Some("r"));
    jwk["alg"] = "RS256".into();
    let keys = KeySet::new(vec![VerifyingKey::from_jwk(&jwk, false).expect("jwk")]).expect("set");
    let token = rsa.token("PS256", Some("r"), &good_claims());
    assert_eq!(
        problem(verify_jwt(&token, &keys, &all_algs(), NOW)),
        TokenProblem::AlgorithmRefused
    );
    let token = rsa.token("RS256", Some("r"), &good_claims());
    assert!(verify_jwt(&token, &keys, &all_algs(), NOW).is_ok());
}

#[test]
fn algorithm_outside_the_allow_list_is_refused() {
    let rsa = Signer::rsa();
    let keys = set_of(&rsa, "k1");
    let token = rsa.token("PS256", Some("k1"), &good_claims());
    let only_rs256 = rules(&[Algorithm::RS256]);
    assert_eq!(
        problem(verify_jwt(&token, &keys, &only_rs256, NOW)),
        TokenProblem::AlgorithmRefused
    );
}

#[test]
fn unknown_kid_is_refused_distinctly() {
    let signer = Signer::ed25519();
    let keys = set_of(&signer, "old");
    let token = signer.token("EdDSA", Some("new"), &good_claims());
    assert_eq!(
        problem(verify_jwt(&token, &keys, &all_algs(), NOW)),
        TokenProblem::UnknownKid
    );
}

#[test]
fn issuer_audience_and_time_checks() {
    let signer = Signer::ec("P-384");
    let keys = set_of(&signer, "k");
    let check = |claims: serde_json::Value| {
        verify_jwt(
            &signer.token("ES384", Some("k"), &claims),
            &keys,
            &all_algs(),
            NOW,
        )
    };

    assert_eq!(
        problem(check(with(
            good_claims(),
            "iss",
            "https://evil.example".into()
        ))),
        TokenProblem::WrongIssuer
    );
    assert_eq!(
        problem(check(without(good_claims(), "iss"))),
        TokenProblem::WrongIssuer
    );
    assert_eq!(
        problem(check(with(
            good_claims(),
            "aud",
            "https://other.example/mcp".into()
        ))),
        TokenProblem::WrongAudience
    );
    assert_eq!(
        problem(check(without(good_claims(), "aud"))),
        TokenProblem::WrongAudience
    );
    assert_eq!(
        problem(check(with(
            good_claims(),
            "aud",
            serde_json::json!(["https://a", "https://b"])
        ))),
        TokenProblem::WrongAudience
    );
    assert!(check(with(
        good_claims(),
        "aud",
        serde_json::json!(["https://a", RESOURCE])
    ))
    .is_ok());
    // A trailing slash is a different resource.
    assert_eq!(
        problem(check(with(
            good_claims(),
            "aud",
            format!("{RESOURCE}/").into()
        ))),
        TokenProblem::WrongAudience
    );

    // exp with the default 30 s leeway.
    assert_eq!(
        problem(check(with(good_claims(), "exp", (NOW - 31).into()))),
        TokenProblem::Expired
    );
    assert_eq!(
        problem(check(with(good_claims(), "exp", (NOW - 30).into()))),
        TokenProblem::Expired
    );
    assert!(check(with(good_claims(), "exp", (NOW - 29).into())).is_ok());
    assert_eq!(
        problem(check(without(good_claims(), "exp"))),
        TokenProblem::MissingExpiry
    );
    assert_eq!(
        problem(check(with(good_claims(), "exp", "soon".into()))),
        TokenProblem::BadClaims
    );
    // nbf likewise.
    assert_eq!(
        problem(check(with(good_claims(), "nbf", (NOW + 31).into()))),
        TokenProblem::NotYetValid
    );
    assert!(check(with(good_claims(), "nbf", (NOW + 30).into())).is_ok());
    // iat in the future beyond the leeway: the token claims to be issued later than now, which a
    // correct issuer cannot do (a year ahead was accepted before issue 14 #9).
    for ahead in [31, 3600, 365 * 24 * 3600] {
        assert_eq!(
            problem(check(with(good_claims(), "iat", (NOW + ahead).into()))),
            TokenProblem::IssuedInFuture,
            "iat now + {ahead}"
        );
    }
    assert!(check(with(good_claims(), "iat", (NOW + 30).into())).is_ok());
    assert!(check(with(good_claims(), "iat", (NOW - 3600).into())).is_ok());
    assert!(check(without(good_claims(), "iat")).is_ok());
    assert_eq!(
        problem(check(with(good_claims(), "iat", "yesterday".into()))),
        TokenProblem::BadClaims
    );
    // Fractional NumericDates are accepted.
    assert!(check(with(
        good_claims(),
        "exp",
        serde_json::json!((NOW + 100) as f64 + 0.5)
    ))
    .is_ok());

    let mut strict = all_algs();
    strict.leeway_secs = 0;
    let token = signer.token(
        "ES384",
        Some("k"),
        &with(good_claims(), "exp", (NOW - 1).into()),
    );
    assert_eq!(
        problem(verify_jwt(&token, &keys, &strict, NOW)),
        TokenProblem::Expired
    );
    let token = signer.token(
        "ES384",
        Some("k"),
        &with(good_claims(), "iat", (NOW + 1).into()),
    );
    assert_eq!(
        problem(verify_jwt(&token, &keys, &strict, NOW)),
        TokenProblem::IssuedInFuture
    );
}

#[test]
fn scopes_from_scope_and_scp_and_insufficient_scope() {
    let signer = Signer::ed25519();
    let keys = set_of(&signer, "k");
    let mut rules = all_algs();
    rules.required_scopes = vec!["mcp:read".into(), "tools:call".into()];

    let token = signer.token("EdDSA", Some("k"), &good_claims());
    let refused = validate_jwt(&token, &keys, &rules, NOW);
    assert_eq!(refused, Err(AuthError::InsufficientScope));
    assert_eq!(AuthError::InsufficientScope.http_status(), 403);

    let claims = with(good_claims(), "scp", serde_json::json!(["tools:call"]));
    let principal = validate_jwt(
        &signer.token("EdDSA", Some("k"), &claims),
        &keys,
        &rules,
        NOW,
    )
    .expect("scopes via scp");
    let scopes: Vec<&str> = principal.scopes.iter().map(|s| &**s).collect();
    assert_eq!(scopes, ["mcp:read", "mcp:write", "tools:call"]);
}

#[test]
fn principal_exposes_claims_for_the_acl() {
    let signer = Signer::ed25519();
    let keys = set_of(&signer, "k");
    let claims = with(without(good_claims(), "client_id"), "azp", "cursor".into());
    let claims = with(claims, "tenant", "acme".into());
    let principal = verify_jwt(
        &signer.token("EdDSA", Some("k"), &claims),
        &keys,
        &all_algs(),
        NOW,
    )
    .expect("valid");
    assert_eq!(principal.client_id.as_deref(), Some("cursor"));
    assert_eq!(principal.expires_at, Some(NOW + 600));
    let cel = principal.to_cel_value();
    assert_eq!(cel["subject"], "alice");
    assert_eq!(cel["claims"]["tenant"], "acme");
    assert_eq!(cel["scopes"], serde_json::json!(["mcp:read", "mcp:write"]));
}

#[test]
fn malformed_tokens_are_refused_without_panicking() {
    let signer = Signer::ed25519();
    let keys = set_of(&signer, "k");
    let good = signer.token("EdDSA", Some("k"), &good_claims());
    let (head, rest) = good.split_once('.').expect("dot");
    let cases = [
        String::new(),
        "abc".to_owned(),
        "a.b".to_owned(),
        format!("{good}.extra"),
        format!("{head}..{}", rest.rsplit('.').next().unwrap_or_default()),
        format!("{good}="),
        good.replacen('.', ".!", 1),
        format!("{}.{rest}", b64(b"not json")),
        format!(
            "{}.{rest}",
            b64(br#"{"alg":"EdDSA","kid":"k","crit":["exp"]}"#)
        ),
        format!(
            "{}.{rest}",
            b64(br#"{"alg":"EdDSA","alg":"HS256","kid":"k"}"#)
        ),
        format!("{}.{rest}", b64(br#"{"kid":"k"}"#)),
        "é.é.é".to_owned(),
    ];
    for token in &cases {
        let outcome = verify_jwt(token, &keys, &all_algs(), NOW);
        assert!(
            matches!(outcome, Err(AuthError::InvalidToken(_))),
            "{token:?} -> {outcome:?}"
        );
    }
}

#[test]
fn claims_that_are_not_an_object_are_refused() {
    let signer = Signer::ed25519();
    let keys = set_of(&signer, "k");
    let header = b64(br#"{"alg":"EdDSA","kid":"k"}"#);
    let payload = b64(b"[1,2,3]");
    let input = format!("{header}.{payload}");
    let token = format!("{input}.{}", b64(&signer.sign("EdDSA", input.as_bytes())));
    assert_eq!(
        problem(verify_jwt(&token, &keys, &all_algs(), NOW)),
        TokenProblem::BadClaims
    );
}

#[test]
fn token_length_is_bounded() {
    let signer = Signer::ed25519();
    let keys = set_of(&signer, "k");
    let claims = with(good_claims(), "padding", "x".repeat(9000).into());
    let token = signer.token("EdDSA", Some("k"), &claims);
    assert_eq!(
        problem(verify_jwt(&token, &keys, &all_algs(), NOW)),
        TokenProblem::TooLong
    );
    let mut roomy = all_algs();
    roomy.max_token_bytes = 64 * 1024;
    assert!(verify_jwt(&token, &keys, &roomy, NOW).is_ok());
}

#[test]
fn every_refusal_maps_to_status_and_challenge_class() {
    use mcpgate_policies::auth::ChallengeError;
    let cases = [
        (AuthError::MissingCredentials, 401, ChallengeError::None),
        (
            AuthError::InvalidToken(TokenProblem::Expired),
            401,
            ChallengeError::InvalidToken,
        ),
        (
            AuthError::InvalidRequest("x"),
            400,
            ChallengeError::InvalidRequest,
        ),
        (
            AuthError::InsufficientScope,
            403,
            ChallengeError::InsufficientScope,
        ),
        (AuthError::InvalidApiKey, 401, ChallengeError::None),
        (AuthError::SessionNotFound, 404, ChallengeError::None),
    ];
    for (error, status, challenge) in cases {
        assert_eq!(error.http_status(), status, "{error:?}");
        assert_eq!(error.challenge_error(), challenge, "{error:?}");
    }
    assert!(!AuthError::SessionNotFound.wants_challenge());
}
