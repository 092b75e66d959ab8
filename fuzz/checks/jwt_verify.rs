//! JWT (compact JWS) verification, `verify_jwt`, as a plan runs it: an HS256 key (kid `h`) and an
//! Ed25519 key (kid `e`), both accepted, issuer and audience required. The first byte picks the
//! mode. Raw mode verifies the rest as a token: whatever is accepted must carry a signature that
//! an independent check with ring accepts for the named key, and claims within the rules. Signed
//! mode takes a fuzzed header and payload (NUL-separated), signs them correctly (HS256 or EdDSA by
//! the mode byte) and verifies: a refusal may not blame the signature, the algorithm or the key
//! when the header names the signing algorithm and its kid (or none), and an acceptance again
//! needs claims within the rules (`exp` ahead, `nbf`/`iat` not beyond the clock skew, `iss`, `aud`).
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mcpgate_policies::auth::{
    verify_jwt, Algorithm, AuthError, JwtRules, KeySet, TokenProblem, VerifyingKey,
};
use ring::signature::{Ed25519KeyPair, KeyPair as _};

const NOW: u64 = 1_800_000_000;
const AUDIENCE: &str = "https://gw.example/mcp";
const ISSUER: &str = "https://as.example";
const HMAC_SECRET: &[u8] = b"fuzz-hmac-secret-0123456789abcdef";
const ED25519_SEED: [u8; 32] = [7; 32];

struct Fixture {
    keys: KeySet,
    ed25519: Ed25519KeyPair,
    rules: JwtRules,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ed25519 = Ed25519KeyPair::from_seed_unchecked(&ED25519_SEED).expect("seed");
        let keys = KeySet::new(vec![
            VerifyingKey::hmac(HMAC_SECRET)
                .expect("hmac key")
                .with_kid("h"),
            VerifyingKey::ed25519(ed25519.public_key().as_ref())
                .expect("ed25519 key")
                .with_kid("e"),
        ])
        .expect("key set");
        let mut rules = JwtRules::new(
            [Algorithm::HS256, Algorithm::EdDSA].into_iter().collect(),
            AUDIENCE,
        );
        rules.issuer = Some(ISSUER.into());
        Fixture {
            keys,
            ed25519,
            rules,
        }
    })
}

fn sign(alg: Algorithm, input: &[u8]) -> Vec<u8> {
    match alg {
        Algorithm::EdDSA => fixture().ed25519.sign(input).as_ref().to_vec(),
        _ => ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HMAC_SECRET),
            input,
        )
        .as_ref()
        .to_vec(),
    }
}

/// An independent signature check of an accepted token.
fn signature_holds(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(header), Ok(signature)) = (
        URL_SAFE_NO_PAD.decode(header),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return false;
    };
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&header) else {
        return false;
    };
    let input = &token.as_bytes()[..token.len() - signature_len(token)];
    match header.get("alg").and_then(serde_json::Value::as_str) {
        Some("HS256") => sign(Algorithm::HS256, input) == signature,
        Some("EdDSA") => ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            fixture().ed25519.public_key().as_ref(),
        )
        .verify(input, &signature)
        .is_ok(),
        _ => false,
    }
}

/// Length of `.signature` at the end of a compact token.
fn signature_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

/// A NumericDate as the rules read it.
fn date(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|s| s.is_finite() && (0.0..1e15).contains(s))
            .map(|s| s as u64)
    })
}

/// Panics unless the claims of an accepted token satisfy the rules.
fn assert_claims_hold(payload: &[u8]) {
    let claims: serde_json::Value =
        serde_json::from_slice(payload).expect("accepted claims are JSON");
    let leeway = fixture().rules.leeway_secs;
    let exp = claims
        .get("exp")
        .and_then(date)
        .expect("accepted without a numeric exp");
    assert!(NOW < exp + leeway, "accepted an expired token: {claims}");
    for (claim, what) in [("nbf", "not yet valid"), ("iat", "issued in the future")] {
        if let Some(value) = claims.get(claim) {
            let at = date(value).unwrap_or_else(|| panic!("accepted a non-numeric {claim}"));
            assert!(at <= NOW + leeway, "accepted a token {what}: {claims}");
        }
    }
    assert_eq!(
        claims.get("iss").and_then(serde_json::Value::as_str),
        Some(ISSUER)
    );
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == AUDIENCE,
        Some(serde_json::Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    assert!(aud_ok, "accepted a foreign audience: {claims}");
}

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    if mode & 1 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        if verify_jwt(token, &f.keys, &f.rules, NOW).is_ok() {
            assert!(signature_holds(token), "accepted a bad signature: {token}");
            let payload = token.split('.').nth(1).unwrap_or_default();
            assert_claims_hold(
                &URL_SAFE_NO_PAD
                    .decode(payload)
                    .expect("payload is base64url"),
            );
        }
        return;
    }
    let (header, payload) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (rest, &b""[..]),
    };
    let alg = if mode & 2 == 0 {
        Algorithm::HS256
    } else {
        Algorithm::EdDSA
    };
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let token = format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(sign(alg, signed.as_bytes()))
    );
    let result = verify_jwt(&token, &f.keys, &f.rules, NOW);
    let names_our_key = serde_json::from_slice::<serde_json::Value>(header)
        .ok()
        .and_then(|h| h.as_object().cloned())
        .is_some_and(|h| {
            let kid = if alg == Algorithm::EdDSA { "e" } else { "h" };
            h.get("alg").and_then(serde_json::Value::as_str) == Some(alg.name())
                && h.get("kid").is_none_or(|k| k.as_str() == Some(kid))
                && !h.contains_key("crit")
        });
    if names_our_key && header.len() <= 1024 && token.len() <= f.rules.max_token_bytes {
        assert!(
            !matches!(
                result,
                Err(AuthError::InvalidToken(
                    TokenProblem::BadSignature
                        | TokenProblem::AlgorithmRefused
                        | TokenProblem::UnknownKid
                        | TokenProblem::NoUsableKey
                ))
            ),
            "a correctly signed token refused as {result:?}: {:?}",
            String::from_utf8_lossy(header)
        );
    }
    if result.is_ok() {
        assert_claims_hold(payload);
    }
}
