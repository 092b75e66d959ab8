//! RFC 7662 token introspection, minus the I/O: the request the engine sends (form body and the
//! client's Basic credentials) and the checks on the answer, which are the JWT checks (`active`,
//! `exp`, `nbf`, `iss`, `aud`, then scopes) applied to the response members.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::error::{AuthError, TokenProblem};
use super::jwt::{check_claims, JwtRules};
use super::principal::{PlanKind, Principal};

/// Introspection answers larger than this are not parsed.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The `application/x-www-form-urlencoded` body: `token=…&token_type_hint=access_token`.
pub fn request_body(token: &str) -> String {
    let mut body = String::with_capacity(token.len() + 40);
    body.push_str("token=");
    form_encode_into(&mut body, token);
    body.push_str("&token_type_hint=access_token");
    body
}

/// `Authorization: Basic …` for the gateway's client credentials (RFC 6749 §2.3.1: id and secret
/// are form-encoded before base64).
pub fn client_authorization(client_id: &str, client_secret: &str) -> String {
    let mut pair = String::new();
    form_encode_into(&mut pair, client_id);
    pair.push(':');
    form_encode_into(&mut pair, client_secret);
    format!("Basic {}", STANDARD.encode(pair))
}

fn form_encode_into(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
        }
    }
}

/// An introspection answer whose status says the authorization server could not judge the token
/// (a 5xx, or anything that is neither 200 nor 4xx): the engine answers 503 (the client should
/// retry, not re-authenticate) and nothing is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("introspection endpoint answered status {status}")]
pub struct IntrospectionUnavailable {
    pub status: u16,
}

/// Reads an introspection answer, status first. 200: the body decides ([`evaluate_response`]).
/// 4xx: the server was reached and refused to vouch for the token (RFC 7662 §2.3 answers a bad
/// request or bad client credentials with an OAuth error; a 400 `unsupported_token_type` says it
/// will never accept this token), so it is refused like an inactive token, with the same
/// negative-cache lifetime; its body is not read. Anything else: [`IntrospectionUnavailable`].
pub fn evaluate_answer(
    status: u16,
    body: &[u8],
    rules: &JwtRules,
    now: u64,
    max_ttl: u64,
    negative_ttl: u64,
) -> Result<IntrospectionOutcome, IntrospectionUnavailable> {
    match status {
        200 => Ok(evaluate_response(body, rules, now, max_ttl, negative_ttl)),
        400..=499 => Ok(IntrospectionOutcome {
            result: Err(TokenProblem::IntrospectionRefused.into()),
            cache_until: now.saturating_add(negative_ttl),
        }),
        _ => Err(IntrospectionUnavailable { status }),
    }
}

/// The checked outcome of an introspection answer: a principal, or a refusal, and until when
/// the outcome may be cached.
#[derive(Debug, Clone, PartialEq)]
pub struct IntrospectionOutcome {
    pub result: Result<Principal, AuthError>,
    pub cache_until: u64,
}

/// Applies the plan's rules to an introspection answer. Successes are cached until
/// `min(exp, now + max_ttl)`; refusals for `negative_ttl` seconds (so a replayed bad token does
/// not cost one introspection call per request). The audience must be present and ours: the
/// same rule as for JWTs (RFC 8707; a token for another resource is never accepted).
pub fn evaluate_response(
    body: &[u8],
    rules: &JwtRules,
    now: u64,
    max_ttl: u64,
    negative_ttl: u64,
) -> IntrospectionOutcome {
    let refused = |problem: TokenProblem| IntrospectionOutcome {
        result: Err(problem.into()),
        cache_until: now.saturating_add(negative_ttl),
    };
    if body.len() > MAX_RESPONSE_BYTES {
        return refused(TokenProblem::BadIntrospection);
    }
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(body) else {
        return refused(TokenProblem::BadIntrospection);
    };
    match claims.get("active") {
        Some(serde_json::Value::Bool(true)) => {}
        Some(serde_json::Value::Bool(false)) => return refused(TokenProblem::Inactive),
        _ => return refused(TokenProblem::BadIntrospection),
    }
    let result = check_claims(claims, rules, now, false).and_then(|mut principal| {
        principal.plan = PlanKind::OAuth2;
        super::jwt::check_scopes(&principal, &rules.required_scopes)?;
        Ok(principal)
    });
    match result {
        Ok(principal) => {
            let ceiling = now.saturating_add(max_ttl);
            let cache_until = principal.expires_at.map_or(ceiling, |exp| exp.min(ceiling));
            IntrospectionOutcome {
                result: Ok(principal),
                cache_until,
            }
        }
        Err(error) => IntrospectionOutcome {
            result: Err(error),
            cache_until: now.saturating_add(negative_ttl),
        },
    }
}
