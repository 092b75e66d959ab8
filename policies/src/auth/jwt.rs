//! JWT (compact JWS) validation: shape, header, algorithm allow-list, key selection by `kid`,
//! signature, then the claims (`exp`, `nbf`, `iat`, `iss`, `aud`) and scopes. The claims are read only
//! after the signature verified, so nothing unauthenticated reaches a JSON parser beyond the
//! small header. Time comes in as an argument: no clock is read here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use super::error::{AuthError, TokenProblem};
use super::jwks::KeySet;
use super::keys::{Algorithm, AlgorithmSet};
use super::principal::Principal;

/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Default maximum token length (bytes). Large enough for JWTs with many claims, small enough
/// that a hostile header cannot cost much.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// A JWS header larger than this is refused before it is parsed.
const MAX_HEADER_BYTES: usize = 1024;
/// With no `kid`, at most this many candidate keys are tried (bounds the work of a bad token).
const MAX_KEYS_TRIED_WITHOUT_KID: usize = 4;

/// What a token must satisfy, besides its signature.
#[derive(Debug, Clone)]
pub struct JwtRules {
    /// Algorithms accepted; anything else (and always `none`) is refused.
    pub algorithms: AlgorithmSet,
    /// Required `iss` (exact match) when set.
    pub issuer: Option<Box<str>>,
    /// `aud` must contain one of these (exact match). Empty means "not checked", which the
    /// config layer allows only for static-key JWT plans that opt out explicitly.
    pub audiences: Vec<Box<str>>,
    pub leeway_secs: u64,
    pub max_token_bytes: usize,
    /// Every one of these must be among the token's scopes, else 403 `insufficient_scope`.
    pub required_scopes: Vec<Box<str>>,
}

impl JwtRules {
    /// Rules with the defaults: the given algorithms and audience, 30 s leeway, 8 KiB tokens.
    pub fn new(algorithms: AlgorithmSet, audience: impl Into<Box<str>>) -> Self {
        JwtRules {
            algorithms,
            issuer: None,
            audiences: vec![audience.into()],
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            required_scopes: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    /// Any `crit` extension is one we do not implement, so its presence refuses the token
    /// (RFC 7515 §4.1.11).
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The three segments of a compact JWS, undecoded.
pub(crate) struct Compact<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    /// `header.payload`: the signing input.
    pub signed: &'a str,
}

/// Splits a compact JWS; `None` unless it has exactly three non-empty segments of base64url
/// characters.
pub(crate) fn split_compact(token: &str) -> Option<Compact<'_>> {
    let mut parts = token.splitn(4, '.');
    let header = parts.next()?;
    let payload = parts.next()?;
    let signature = parts.next()?;
    if parts.next().is_some() || header.is_empty() || payload.is_empty() || signature.is_empty() {
        return None;
    }
    let signed = token.get(..header.len() + 1 + payload.len())?;
    Some(Compact {
        header,
        payload,
        signature,
        signed,
    })
}

/// Whether a bearer token looks like a JWT (for plans that validate JWTs locally and send
/// opaque tokens to introspection).
pub fn looks_like_jwt(token: &str) -> bool {
    split_compact(token).is_some()
}

/// Checks signature, `exp`, `nbf`, `iat`, `iss` and `aud`; not scopes (see [`check_scopes`]), so the
/// result can be cached and reused by plans that require different scopes.
pub fn verify_jwt(
    token: &str,
    keys: &KeySet,
    rules: &JwtRules,
    now: u64,
) -> Result<Principal, AuthError> {
    if token.len() > rules.max_token_bytes {
        return Err(TokenProblem::TooLong.into());
    }
    let compact = split_compact(token).ok_or(TokenProblem::Malformed)?;
    if compact.header.len() > MAX_HEADER_BYTES * 4 / 3 + 4 {
        return Err(TokenProblem::Malformed.into());
    }
    let header_json = URL_SAFE_NO_PAD
        .decode(compact.header)
        .map_err(|_| TokenProblem::Malformed)?;
    let header: Header<'_> =
        serde_json::from_slice(&header_json).map_err(|_| TokenProblem::Malformed)?;
    if header.crit.is_some() {
        return Err(TokenProblem::Malformed.into());
    }
    let alg = Algorithm::from_name(&header.alg).ok_or(TokenProblem::AlgorithmRefused)?;
    if !rules.algorithms.contains(alg) {
        return Err(TokenProblem::AlgorithmRefused.into());
    }
    let signature = URL_SAFE_NO_PAD
        .decode(compact.signature)
        .map_err(|_| TokenProblem::Malformed)?;
    let message = compact.signed.as_bytes();
    let verified = match header.kid.as_deref() {
        Some(kid) => {
            let key = keys.by_kid(kid).ok_or(TokenProblem::UnknownKid)?;
            if !key.usable_for(alg) {
                // A kid naming an RSA key on an HS256 token is the confusion attack itself.
                return Err(TokenProblem::AlgorithmRefused.into());
            }
            key.verify(alg, message, &signature)
        }
        None => {
            let mut candidates = keys.iter().filter(|key| key.usable_for(alg)).peekable();
            if candidates.peek().is_none() {
                return Err(TokenProblem::NoUsableKey.into());
            }
            candidates
                .take(MAX_KEYS_TRIED_WITHOUT_KID)
                .any(|key| key.verify(alg, message, &signature))
        }
    };
    if !verified {
        return Err(TokenProblem::BadSignature.into());
    }
    let payload = URL_SAFE_NO_PAD
        .decode(compact.payload)
        .map_err(|_| TokenProblem::Malformed)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|_| TokenProblem::BadClaims)?;
    check_claims(claims, rules, now, true)
}

/// Applies the time, issuer and audience checks to a claims object and builds the principal.
/// `require_exp`: JWTs must carry `exp`; an introspection answer may omit it.
pub(crate) fn check_claims(
    claims: serde_json::Value,
    rules: &JwtRules,
    now: u64,
    require_exp: bool,
) -> Result<Principal, AuthError> {
    let object = claims.as_object().ok_or(TokenProblem::BadClaims)?;
    let expires_at = match object.get("exp") {
        Some(exp) => Some(numeric_date(exp).ok_or(TokenProblem::BadClaims)?),
        None if require_exp => return Err(TokenProblem::MissingExpiry.into()),
        None => None,
    };
    if let Some(exp) = expires_at {
        if now >= exp.saturating_add(rules.leeway_secs) {
            return Err(TokenProblem::Expired.into());
        }
    }
    if let Some(nbf) = object.get("nbf") {
        let nbf = numeric_date(nbf).ok_or(TokenProblem::BadClaims)?;
        if now.saturating_add(rules.leeway_secs) < nbf {
            return Err(TokenProblem::NotYetValid.into());
        }
    }
    // RFC 7519 §4.1.6 gives `iat` no validity rule of its own, but an issuer cannot issue a token
    // later than now: beyond the clock-skew allowance such a token comes from a broken clock or
    // was minted to outlive a key rotation, and `exp` measured from a false `iat` is meaningless.
    if let Some(iat) = object.get("iat") {
        let iat = numeric_date(iat).ok_or(TokenProblem::BadClaims)?;
        if now.saturating_add(rules.leeway_secs) < iat {
            return Err(TokenProblem::IssuedInFuture.into());
        }
    }
    if let Some(issuer) = &rules.issuer {
        if object.get("iss").and_then(|v| v.as_str()) != Some(&**issuer) {
            return Err(TokenProblem::WrongIssuer.into());
        }
    }
    if !rules.audiences.is_empty() && !audience_matches(object.get("aud"), &rules.audiences) {
        return Err(TokenProblem::WrongAudience.into());
    }
    Ok(Principal::from_claims(claims, expires_at))
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3); one entry must be ours.
fn audience_matches(aud: Option<&serde_json::Value>, accepted: &[Box<str>]) -> bool {
    let is_ours = |value: &serde_json::Value| {
        value
            .as_str()
            .is_some_and(|aud| accepted.iter().any(|a| **a == *aud))
    };
    match aud {
        Some(serde_json::Value::String(_)) => aud.is_some_and(is_ours),
        Some(serde_json::Value::Array(values)) => values.iter().any(is_ours),
        _ => false,
    }
}

/// A NumericDate: seconds, possibly fractional (RFC 7519 §2); negative or absurd values refused.
fn numeric_date(value: &serde_json::Value) -> Option<u64> {
    if let Some(seconds) = value.as_u64() {
        return Some(seconds);
    }
    let seconds = value.as_f64()?;
    (seconds.is_finite() && (0.0..1e15).contains(&seconds)).then_some(seconds as u64)
}

/// 403 unless the principal holds every required scope.
pub fn check_scopes(principal: &Principal, required: &[Box<str>]) -> Result<(), AuthError> {
    if required.iter().all(|scope| principal.has_scope(scope)) {
        Ok(())
    } else {
        Err(AuthError::InsufficientScope)
    }
}

/// [`verify_jwt`] then [`check_scopes`].
pub fn validate_jwt(
    token: &str,
    keys: &KeySet,
    rules: &JwtRules,
    now: u64,
) -> Result<Principal, AuthError> {
    let principal = verify_jwt(token, keys, rules, now)?;
    check_scopes(&principal, &rules.required_scopes)?;
    Ok(principal)
}
