//! The exchange record: one per JSON-RPC exchange (a request and its answer, a notification, or a
//! server→client message), and its JSON form shared by the ring, the JSON-lines sink and the admin API.
//!
//! Compact on purpose: labels are shared strings handed out by the worker's interner, the session
//! is a 64-bit tag (never the id itself: it is a bearer-like secret), the client address is inline,
//! and payloads exist only when capture is on (boxed, so a record without them stays small).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use super::redact::Capture;
use crate::request_id::RequestId;

/// A label value shared between records and tallies (api, method, target, subject, rule, upstream),
/// compared, hashed and ordered by its text.
///
/// The interner's labels are leaked to `&'static str`: it keeps every label it hands out for the
/// life of the process anyway (bounded by its capacity), and a static label is copied without a
/// reference count. As `Arc<str>` every clone and drop was an atomic read-modify-write, about eight
/// per record (its api, method, target and upstream in, those of the record the ring evicts out), a
/// sampled 1 % of a streamed call's CPU. Strings past the interner's capacity are shared `Arc`s.
#[derive(Clone)]
pub struct Label(LabelRepr);

#[derive(Clone)]
enum LabelRepr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Label {
    /// A label for a string that lives as long as the process.
    pub const fn from_static(s: &'static str) -> Self {
        Self(LabelRepr::Static(s))
    }

    /// A label that is never freed: only for the bounded set a worker's interner keeps anyway.
    pub(crate) fn leak(s: &str) -> Self {
        Self::from_static(Box::leak(Box::<str>::from(s)))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            LabelRepr::Static(s) => s,
            LabelRepr::Shared(s) => s,
        }
    }
}

impl From<&str> for Label {
    fn from(s: &str) -> Self {
        Self(LabelRepr::Shared(Arc::from(s)))
    }
}

impl std::ops::Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Label {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl Hash for Label {
    // As `str` hashes: `Borrow<str>` lookups depend on it.
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an exchange was, seen from the client's side of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// Client → server request, with the answer that closed it.
    Request,
    /// Client → server notification (no answer).
    Notification,
    /// Server → client request (sampling, elicitation, roots), with the client's answer if seen.
    ServerRequest,
    /// Server → client notification (progress, log message, list_changed…).
    ServerNotification,
}

impl ExchangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Notification => "notification",
            Self::ServerRequest => "server_request",
            Self::ServerNotification => "server_notification",
        }
    }

    /// Only client requests have a latency the gateway measures: a server→client request's
    /// answer comes back on another connection (often another worker) and is not matched to it,
    /// so its records carry no latency and would only drag the histogram towards zero.
    pub fn has_latency(self) -> bool {
        matches!(self, Self::Request)
    }
}

/// The ACL's verdict on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclDecision {
    Allow,
    Deny,
    /// Refused by the rules, let through because the ACL is in dry-run.
    WouldDeny,
}

impl AclDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::WouldDeny => "would_deny",
        }
    }
}

/// Why the upstream leg failed, when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UpstreamFailure {
    /// Could not connect (refused, unreachable).
    Connect,
    /// The TLS handshake with an `https://` upstream failed (untrusted, wrong name, expired).
    Tls,
    /// A phase deadline passed (connect, first byte, idle stream).
    Timeout,
    /// The connection closed or reset mid-exchange.
    Reset,
    /// The upstream answered something that is not HTTP/MCP we can relay.
    BadResponse,
}

impl UpstreamFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::BadResponse => "bad_response",
        }
    }
}

/// The one-word result used as the `outcome` metric label and by the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// A JSON-RPC error answer (from upstream or from the gateway).
    Error,
    /// Refused by the ACL.
    Denied,
    /// Refused by a rate limit or quota (`ExchangeRecord::limit_rule` names it).
    Throttled,
    /// An HTTP status ≥ 400 without a JSON-RPC error.
    HttpError,
    /// A tool's own failure: a `tools/call` result with `"isError": true` (JSON-RPC success).
    ToolError,
    UpstreamError,
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Denied => "denied",
            Self::Throttled => "throttled",
            Self::HttpError => "http_error",
            Self::ToolError => "tool_error",
            Self::UpstreamError => "upstream_error",
            Self::Timeout => "timeout",
        }
    }
}

/// A stable, non-reversible tag for a session id, so log lines of one session can be correlated
/// without the id (a bearer-like secret) reaching any sink. Stable across workers and replicas built
/// from the same binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionTag(u64);

impl SessionTag {
    pub fn from_secret(session_id: &[u8]) -> Self {
        // SipHash-1-3 with fixed keys: a PRF, so the tag says nothing usable about the id; session
        // ids are high-entropy, so the tag cannot be inverted by guessing either.
        let mut h = std::hash::DefaultHasher::new();
        b"mcpgate-session-tag".hash(&mut h);
        session_id.hash(&mut h);
        Self(h.finish())
    }

    pub fn value(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One JSON-RPC exchange, filled in by the pipeline and handed to
/// [`WorkerObserver::record`](super::WorkerObserver::record).
#[derive(Debug, Clone)]
pub struct ExchangeRecord {
    /// When the exchange started, unix milliseconds (see [`now_unix_ms`](super::now_unix_ms)).
    pub time_ms: u64,
    /// The HTTP exchange's id (`X-Request-Id`), shared by its log lines, spans and headers; a
    /// server→client message carries the id of the exchange whose stream brought it.
    pub request_id: Option<RequestId>,
    pub api: Label,
    pub session: Option<SessionTag>,
    /// The authenticated subject, when there is one.
    pub subject: Option<Label>,
    pub client: Option<IpAddr>,
    /// The identity of the client certificate the TLS listener verified (mTLS): a URI, DNS or
    /// e-mail SAN, else the common name, else the subject.
    pub client_cert: Option<Label>,
    /// The JSON-RPC method as parsed (metrics fold unknown methods into `other`).
    pub method: Label,
    /// Tool name, resource URI or prompt name (`params.name` / `params.uri` / `params.ref`).
    pub target: Option<Label>,
    pub kind: ExchangeKind,
    pub acl_decision: Option<AclDecision>,
    /// The rule that decided; `None` with `Deny` means the implicit deny.
    pub acl_rule: Option<Label>,
    /// The rate limit or quota rule that refused the exchange (outcome `throttled`).
    pub limit_rule: Option<Label>,
    /// The HTTP status the client got (0 when the message travelled on an already-open stream).
    pub http_status: u16,
    pub jsonrpc_error: Option<i64>,
    /// The answer was a tool's failure (`result.isError: true`).
    pub tool_error: bool,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub first_byte_us: u64,
    pub total_us: u64,
    /// The upstream endpoint (as configured, never with credentials).
    pub upstream: Option<Label>,
    pub upstream_failure: Option<UpstreamFailure>,
    /// Redacted, capped payloads; only when capture is on for the API.
    pub capture: Option<Box<Capture>>,
}

impl ExchangeRecord {
    /// A record with every optional field empty; the pipeline fills what it knows.
    pub fn new(time_ms: u64, api: Label, method: Label, kind: ExchangeKind) -> Self {
        Self {
            time_ms,
            request_id: None,
            api,
            session: None,
            subject: None,
            client: None,
            client_cert: None,
            method,
            target: None,
            kind,
            acl_decision: None,
            acl_rule: None,
            limit_rule: None,
            http_status: 0,
            jsonrpc_error: None,
            tool_error: false,
            request_bytes: 0,
            response_bytes: 0,
            first_byte_us: 0,
            total_us: 0,
            upstream: None,
            upstream_failure: None,
            capture: None,
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.acl_decision == Some(AclDecision::Deny) {
            Outcome::Denied
        } else if self.limit_rule.is_some() {
            Outcome::Throttled
        } else if let Some(failure) = self.upstream_failure {
            if failure == UpstreamFailure::Timeout {
                Outcome::Timeout
            } else {
                Outcome::UpstreamError
            }
        } else if self.jsonrpc_error.is_some() {
            Outcome::Error
        } else if self.http_status >= 400 {
            Outcome::HttpError
        } else if self.tool_error {
            Outcome::ToolError
        } else {
            Outcome::Ok
        }
    }
}

/// A record as kept by a worker: the record plus where it came from, which makes a stable id
/// (`worker.seq`) for paging and the detail view.
#[derive(Debug)]
pub struct StoredRecord {
    pub worker: u16,
    pub seq: u64,
    pub record: ExchangeRecord,
}

impl StoredRecord {
    /// Newest-first ordering key; also the paging cursor.
    pub fn order_key(&self) -> (u64, u16, u64) {
        (self.record.time_ms, self.worker, self.seq)
    }

    pub fn id(&self) -> String {
        format!("{}.{}", self.worker, self.seq)
    }

    /// The record without payloads, for lists.
    pub fn summary(&self) -> RecordJson<'_> {
        RecordJson {
            stored: self,
            with_capture: false,
        }
    }

    /// The record with its captured payloads, for the sink and the detail view.
    pub fn full(&self) -> RecordJson<'_> {
        RecordJson {
            stored: self,
            with_capture: true,
        }
    }
}

/// The hand-rolled JSON writer behind the sink: same document as [`RecordJson`] with
/// `with_capture`, at a fraction of serde_json's cost (keys are constants, values rarely need
/// escaping, numbers go through `itoa`-like formatting without `fmt` machinery).
impl StoredRecord {
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let r = &self.record;
        out.extend_from_slice(b"{\"id\":\"");
        push_u64(out, u64::from(self.worker));
        out.push(b'.');
        push_u64(out, self.seq);
        out.extend_from_slice(b"\",\"request_id\":");
        match &r.request_id {
            Some(id) => {
                let text = id.text();
                push_str(out, std::str::from_utf8(&text).unwrap_or("?"));
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"time_ms\":");
        push_u64(out, r.time_ms);
        out.extend_from_slice(b",\"api\":");
        push_str(out, &r.api);
        out.extend_from_slice(b",\"session\":");
        match r.session {
            Some(t) => {
                out.push(b'"');
                push_hex16(out, t.value());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"subject\":");
        push_opt_str(out, r.subject.as_deref());
        out.extend_from_slice(b",\"client\":");
        match r.client {
            Some(IpAddr::V4(a)) => {
                out.push(b'"');
                for (i, o) in a.octets().iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    push_u64(out, u64::from(*o));
                }
                out.push(b'"');
            }
            Some(a) => push_str(out, &a.to_string()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"client_cert\":");
        push_opt_str(out, r.client_cert.as_deref());
        out.extend_from_slice(b",\"method\":");
        push_str(out, &r.method);
        out.extend_from_slice(b",\"target\":");
        push_opt_str(out, r.target.as_deref());
        out.extend_from_slice(b",\"kind\":");
        push_str(out, r.kind.as_str());
        out.extend_from_slice(b",\"acl\":");
        push_opt_str(out, r.acl_decision.map(AclDecision::as_str));
        out.extend_from_slice(b",\"acl_rule\":");
        push_opt_str(out, r.acl_rule.as_deref());
        out.extend_from_slice(b",\"limit_rule\":");
        push_opt_str(out, r.limit_rule.as_deref());
        out.extend_from_slice(b",\"status\":");
        push_u64(out, u64::from(r.http_status));
        out.extend_from_slice(b",\"jsonrpc_error\":");
        match r.jsonrpc_error {
            Some(c) => {
                if c < 0 {
                    out.push(b'-');
                }
                push_u64(out, c.unsigned_abs());
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"outcome\":");
        push_str(out, r.outcome().as_str());
        for (key, v) in [
            (&b",\"request_bytes\":"[..], r.request_bytes),
            (b",\"response_bytes\":", r.response_bytes),
            (b",\"first_byte_us\":", r.first_byte_us),
            (b",\"total_us\":", r.total_us),
        ] {
            out.extend_from_slice(key);
            push_u64(out, v);
        }
        out.extend_from_slice(b",\"upstream\":");
        push_opt_str(out, r.upstream.as_deref());
        out.extend_from_slice(b",\"upstream_failure\":");
        push_opt_str(out, r.upstream_failure.map(UpstreamFailure::as_str));
        out.extend_from_slice(b",\"captured\":");
        out.extend_from_slice(if r.capture.is_some() {
            b"true"
        } else {
            b"false"
        });
        out.extend_from_slice(b",\"capture\":");
        match &r.capture {
            // Rare (capture is opt-in): serde is fine here.
            Some(c) => {
                if serde_json::to_writer(&mut *out, c).is_err() {
                    out.extend_from_slice(b"null");
                }
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

fn push_hex16(out: &mut Vec<u8>, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

fn push_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string; labels almost never need escaping, so check first and copy in one go.
fn push_str(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"null");
    }
}

pub struct RecordJson<'a> {
    stored: &'a StoredRecord,
    with_capture: bool,
}

impl Serialize for RecordJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = &self.stored.record;
        let mut st = s.serialize_struct("exchange", 24)?;
        st.serialize_field("id", &self.stored.id())?;
        st.serialize_field("request_id", &r.request_id.as_ref().map(|i| i.to_string()))?;
        st.serialize_field("time_ms", &r.time_ms)?;
        st.serialize_field("api", &*r.api)?;
        st.serialize_field("session", &r.session.map(|t| t.to_string()))?;
        st.serialize_field("subject", &r.subject.as_deref())?;
        st.serialize_field("client", &r.client.map(|a| a.to_string()))?;
        st.serialize_field("client_cert", &r.client_cert.as_deref())?;
        st.serialize_field("method", &*r.method)?;
        st.serialize_field("target", &r.target.as_deref())?;
        st.serialize_field("kind", r.kind.as_str())?;
        st.serialize_field("acl", &r.acl_decision.map(AclDecision::as_str))?;
        st.serialize_field("acl_rule", &r.acl_rule.as_deref())?;
        st.serialize_field("limit_rule", &r.limit_rule.as_deref())?;
        st.serialize_field("status", &r.http_status)?;
        st.serialize_field("jsonrpc_error", &r.jsonrpc_error)?;
        st.serialize_field("outcome", r.outcome().as_str())?;
        st.serialize_field("request_bytes", &r.request_bytes)?;
        st.serialize_field("response_bytes", &r.response_bytes)?;
        st.serialize_field("first_byte_us", &r.first_byte_us)?;
        st.serialize_field("total_us", &r.total_us)?;
        st.serialize_field("upstream", &r.upstream.as_deref())?;
        st.serialize_field(
            "upstream_failure",
            &r.upstream_failure.map(UpstreamFailure::as_str),
        )?;
        st.serialize_field("captured", &r.capture.is_some())?;
        if self.with_capture {
            st.serialize_field("capture", &r.capture.as_deref())?;
        } else {
            st.skip_field("capture")?;
        }
        st.end()
    }
}
