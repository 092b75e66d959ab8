//! MCP protocol rules the gateway enforces on every API, policy or not: browser origins (the
//! specification's DNS-rebinding rule: an `Origin` the gateway does not know is refused 403,
//! `mcpgate_policies::origin`), and the 2026-07-28 mirrored
//! headers (`Mcp-Method`, `Mcp-Name`) must agree with the body — an upstream or an intermediary
//! may route on the header while the gateway judged the body — else 400 with JSON-RPC -32020
//! `HeaderMismatch`. A header is never trusted alone: without a body to compare with (not
//! JSON-RPC) it is left to the upstream, and an API with an ACL refuses such a body anyway.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use mcpgate_codec::jsonrpc::{error_response, Classified};

use crate::context::RequestCtx;
use crate::errors::write_response;
use crate::phases::{Answer, Body, Phases, Request, Step};

/// 2026-07-28 `HeaderMismatch`: an `Mcp-Method` / `Mcp-Name` header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;

/// A browser origin the gateway does not allow (the SDK servers' code for the same refusal).
pub const FORBIDDEN_ORIGIN: i64 = -32000;

/// Standard base64, padding optional (RFC 4648 §4): how 2026-07-28 clients encode header values
/// that are not safe header text (`=?base64?…?=`).
const BASE64_PADDING_OPTIONAL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Default)]
pub struct Protocol;

impl Phases for Protocol {
    /// The `Origin` check (DNS rebinding, `mcpgate_policies::origin`) on every API path, before
    /// any plan or body: 403 with JSON-RPC -32000, as the SDK servers answer it.
    async fn route(&self, ctx: &mut RequestCtx, req: Request<'_>) -> Step {
        if ctx.api.is_none() {
            return Step::Continue;
        }
        let Some(origin) = req.header("origin") else {
            return Step::Continue;
        };
        if ctx.config().gateway.origins.allows(origin) {
            return Step::Continue;
        }
        let shown: String = String::from_utf8_lossy(origin).chars().take(200).collect();
        crate::info!(
            request_id = %ctx.request_id,
            "api {}: Origin {shown:?} refused (gateway.allowed_origins)",
            ctx.api().map_or("-", |a| a.name.as_str())
        );
        let mut err = Vec::with_capacity(160);
        let message = format!("Forbidden: Origin {shown} is not allowed");
        error_response(None, FORBIDDEN_ORIGIN, &message, &mut err);
        let mut response = Vec::with_capacity(err.len() + 96);
        write_response(403, "application/json", &err, false, &mut response);
        // The body (if any) is unread: the connection ends with this answer.
        Step::Answer(Answer::Raw {
            response,
            close: true,
        })
    }

    fn inspect(&self, ctx: &mut RequestCtx, req: Request<'_>, body: Body<'_>) -> Step {
        let Some(classified) = body.message else {
            return Step::Continue;
        };
        match headers_mismatch(req, classified) {
            None => Step::Continue,
            Some(why) => {
                let mut err = Vec::with_capacity(128);
                error_response(ctx.id_raw(), HEADER_MISMATCH, why, &mut err);
                let mut response = Vec::with_capacity(err.len() + 96);
                write_response(400, "application/json", &err, false, &mut response);
                Step::Answer(Answer::Raw {
                    response,
                    close: false,
                })
            }
        }
    }
}

/// Which mirrored header disagrees with the body, if one does. A batch has no single method or
/// name: any mirrored header on it disagrees.
fn headers_mismatch(req: Request<'_>, classified: &Classified) -> Option<&'static str> {
    let single = match classified {
        Classified::Single(m) => Some(m),
        Classified::Batch(_) => None,
    };
    let method = single.and_then(|m| m.method.as_deref());
    if header_agrees(req, "mcp-method", method) == Some(false) {
        return Some("Header mismatch: Mcp-Method does not match the body");
    }
    let name = single.and_then(|m| m.target.as_str());
    if header_agrees(req, "mcp-name", name) == Some(false) {
        return Some("Header mismatch: Mcp-Name does not match the body");
    }
    None
}

/// Every `name` header value equals `expected` (and there is at least one); `None` when absent.
fn header_agrees(req: Request<'_>, name: &str, expected: Option<&str>) -> Option<bool> {
    let mut seen = false;
    let mut agrees = true;
    for (n, v) in req.head.headers(req.buf) {
        if n.eq_ignore_ascii_case(name.as_bytes()) {
            seen = true;
            agrees &= expected.is_some_and(|e| header_value_is(v, e));
        }
    }
    seen.then_some(agrees)
}

/// A mirrored header value equals `expected`, literally or in its `=?base64?…?=` form. An
/// undecodable value differs.
fn header_value_is(value: &[u8], expected: &str) -> bool {
    match value
        .strip_prefix(b"=?base64?")
        .and_then(|v| v.strip_suffix(b"?="))
    {
        Some(encoded) => BASE64_PADDING_OPTIONAL
            .decode(encoded)
            .is_ok_and(|d| d == expected.as_bytes()),
        None => value == expected.as_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_header_values_compare_literally_or_base64_decoded() {
        assert!(header_value_is(b"echo", "echo"));
        assert!(!header_value_is(b"Echo", "echo"));
        assert!(header_value_is(b"=?base64?ZWNobw==?=", "echo"));
        assert!(header_value_is(b"=?base64?ZWNobw?=", "echo"));
        assert!(header_value_is(b"=?base64?5pel5pys?=", "日本"));
        assert!(!header_value_is(b"=?base64?Z2V0LXN1bQ==?=", "echo"));
        assert!(!header_value_is(b"=?base64?!!?=", "echo"));
    }
}
