//! What the engine notes about one HTTP request while it runs, so the exchange record(s) can be
//! written when it ends (`crate::features::observe` fills and reads it; it lives in
//! `crate::context::RequestCtx`). Owns nothing shared: plain per-request fields.
//!
//! Captured payloads are redacted as soon as they are taken (request side) or when the record is
//! built (response side); the raw response bytes kept meanwhile never leave this struct.

use std::time::Instant;

use smallvec::SmallVec;

use super::record::{ExchangeKind, Label, SessionTag, UpstreamFailure};
use super::redact::{CapturedBody, CapturedHeaders};

/// One client→server message of the request body (a batch has several).
#[derive(Debug, Clone)]
pub struct NotedMessage {
    pub kind: ExchangeKind,
    pub method: Label,
    pub target: Option<Label>,
}

/// Payload capture in progress (only when the API's `[api.log] capture` is on).
#[derive(Debug)]
pub struct PendingCapture {
    pub request_headers: CapturedHeaders,
    pub request_body: Option<CapturedBody>,
    /// Raw response bytes (JSON body or SSE events), bounded by `raw_limit`; redacted at record time.
    pub response_raw: Vec<u8>,
    pub raw_limit: usize,
    pub max_bytes: usize,
    /// Credentials seen on this request (bearer token, session id): redacted wherever they appear
    /// in the response too. Never serialized.
    pub secrets: Vec<Vec<u8>>,
}

impl PendingCapture {
    /// Keeps response bytes up to the limit (the rest is counted in `response_bytes` only).
    pub fn push_response(&mut self, bytes: &[u8]) {
        let room = self.raw_limit.saturating_sub(self.response_raw.len());
        if room > 0 {
            self.response_raw
                .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        }
    }
}

/// The per-request notes. `on` is false when recording is disabled: every other field stays empty.
#[derive(Debug, Default)]
pub struct ExchangeNotes {
    pub on: bool,
    /// When the answer's head arrived from the upstream (or the gateway's answer was ready).
    pub first_byte: Option<Instant>,
    pub request_bytes: u64,
    pub messages: SmallVec<[NotedMessage; 1]>,
    pub session: Option<SessionTag>,
    /// The JSON-RPC error code of the answer (upstream error response or gateway error).
    pub jsonrpc_error: Option<i64>,
    /// The answer was a tool's failure (`result.isError: true`).
    pub tool_error: bool,
    pub upstream_failure: Option<UpstreamFailure>,
    /// The answer was cut off: the client accepted no byte within `client_write`.
    pub client_write_timeout: bool,
    pub capture: Option<Box<PendingCapture>>,
}
