//! The engine's one error type, and every answer the gateway writes itself.
//!
//! An [`Error`] says what went wrong ([`ErrorKind`]), where ([`ErrorSource`]: the client, the
//! upstream, a policy's dependency, the gateway itself) and whether the request may be tried
//! again on another upstream connection ([`Retry`]), after pingora-error's `ErrorSource` and
//! `RetryType`. It maps once to an HTTP status and a JSON-RPC code; the engine answers with it
//! when nothing was sent to the client yet, and closes the connection otherwise.
//!
//! JSON-RPC codes: client-side errors use -32600 (Invalid Request); upstream failures and the
//! gateway's own use -32603 (Internal error) and say which failure in `message`. The `id` is the
//! request's when the gateway could read it, `null` otherwise.

use std::io;

use mcpgate_codec::http::HttpError;

/// JSON-RPC "Invalid Request".
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "Internal error": every upstream failure (502/503/504) and what the gateway cannot
/// judge.
pub const INTERNAL_ERROR: i64 = -32603;

/// Where a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client: what it sent, how slowly, or that it went away.
    Downstream,
    /// The upstream MCP server: connecting, exchanging, or what it answered.
    Upstream,
    /// A service a policy depends on (the authorization server of a plan).
    Policy,
    /// The gateway itself (no API at a path; an answer it cannot judge).
    Internal,
}

/// Whether the request may be sent again on a fresh upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Never,
    /// Nothing of the request reached the upstream: safe to retry once if the failed connection
    /// came from the pool (a fresh one failing the same way would fail again).
    IfReused,
    /// The pooled connection closed before answering: only an idempotent request (GET, DELETE,
    /// HEAD) may be sent again, since a POST may have been acted on.
    IfReusedAndIdempotent,
}

impl Retry {
    pub fn allows(self, reused: bool, idempotent: bool) -> bool {
        match self {
            Retry::Never => false,
            Retry::IfReused => reused,
            Retry::IfReusedAndIdempotent => reused && idempotent,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The client's request could not be accepted (codec verdict: 400/413/415/431/501).
    #[error("{0}")]
    Request(#[from] HttpError),
    #[error("no API is served at this path")]
    NotFound,
    #[error("request head not received in time")]
    ClientHeaderTimeout,
    #[error("request body not received in time")]
    ClientBodyTimeout,
    /// The client closed or reset its connection, or stopped reading past the write timeout.
    #[error("the client went away: {0}")]
    ClientGone(io::Error),
    #[error("upstream connection failed: {0}")]
    UpstreamConnect(io::Error),
    #[error("upstream connection timed out")]
    UpstreamConnectTimeout,
    /// The TLS handshake with an `https://` upstream failed; the text names the reason (unknown
    /// CA, wrong name, expired, ...).
    #[error("upstream TLS handshake failed: {0}")]
    UpstreamTls(String),
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    #[error("upstream connection failed while exchanging the request: {0}")]
    UpstreamIo(io::Error),
    #[error("upstream closed the connection without answering")]
    UpstreamClosed,
    #[error("upstream sent a malformed response: {0}")]
    UpstreamMalformed(HttpError),
    /// A plan needs its authorization server (JWKS, metadata, introspection) and cannot reach it:
    /// the credential can be neither accepted nor refused now, so the client should retry.
    #[error("the authorization server could not be reached to check the credential")]
    AuthServerUnavailable,
}

/// One failure of an exchange.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct Error {
    pub kind: ErrorKind,
    pub retry: Retry,
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error {
            kind,
            retry: Retry::Never,
        }
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        ErrorKind::Request(e).into()
    }
}

impl Error {
    /// `kind` with a retry decision.
    pub fn retryable(kind: ErrorKind, retry: Retry) -> Self {
        Error { kind, retry }
    }

    pub fn source(&self) -> ErrorSource {
        match self.kind {
            ErrorKind::Request(_)
            | ErrorKind::ClientHeaderTimeout
            | ErrorKind::ClientBodyTimeout
            | ErrorKind::ClientGone(_) => ErrorSource::Downstream,
            ErrorKind::UpstreamConnect(_)
            | ErrorKind::UpstreamConnectTimeout
            | ErrorKind::UpstreamTls(_)
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamIo(_)
            | ErrorKind::UpstreamClosed
            | ErrorKind::UpstreamMalformed(_) => ErrorSource::Upstream,
            ErrorKind::AuthServerUnavailable => ErrorSource::Policy,
            ErrorKind::NotFound => ErrorSource::Internal,
        }
    }

    pub fn status(&self) -> u16 {
        match &self.kind {
            ErrorKind::Request(e) => e.status(),
            ErrorKind::NotFound => 404,
            ErrorKind::ClientHeaderTimeout | ErrorKind::ClientBodyTimeout => 408,
            // Never written (the client is gone); 400 keeps the record's status class honest.
            ErrorKind::ClientGone(_) => 400,
            ErrorKind::AuthServerUnavailable => 503,
            ErrorKind::UpstreamConnect(_)
            | ErrorKind::UpstreamTls(_)
            | ErrorKind::UpstreamIo(_)
            | ErrorKind::UpstreamClosed
            | ErrorKind::UpstreamMalformed(_) => 502,
            ErrorKind::UpstreamConnectTimeout | ErrorKind::UpstreamTimeout => 504,
        }
    }

    pub fn jsonrpc_code(&self) -> i64 {
        match self.source() {
            ErrorSource::Downstream => INVALID_REQUEST,
            ErrorSource::Internal if matches!(self.kind, ErrorKind::NotFound) => INVALID_REQUEST,
            ErrorSource::Upstream | ErrorSource::Policy | ErrorSource::Internal => INTERNAL_ERROR,
        }
    }

    /// Whether the client connection must be closed after this answer: the request's body may
    /// still be unread (or unreadable), so the next bytes cannot be trusted as a new request.
    pub fn closes_connection(&self) -> bool {
        self.source() == ErrorSource::Downstream
    }
}

/// Writes a complete HTTP/1.1 response for `err` into `out`: JSON-RPC error body carrying `id_raw`
/// (the raw JSON of the JSON-RPC request id) or `null`, and, when given, the exchange's request id
/// (`crate::request_id`) as `error.data.request_id` and in an `x-request-id` header, so a user
/// quoting the error quotes the id an operator finds in the logs and traces.
pub fn write_error_response(
    err: &Error,
    id_raw: Option<&[u8]>,
    request_id: Option<&[u8]>,
    close: bool,
    out: &mut Vec<u8>,
) {
    let mut body = Vec::with_capacity(160);
    let message = err.to_string();
    mcpgate_codec::jsonrpc::error_response(id_raw, err.jsonrpc_code(), &message, &mut body);
    if let Some(rid) = request_id {
        // `error_response` ends with the error object's and the message's `}}`.
        if body.ends_with(b"}}") {
            body.truncate(body.len() - 2);
            body.extend_from_slice(br#","data":{"request_id":"#);
            // Ids are visible ASCII (checked or generated); escaped all the same.
            mcpgate_codec::jsonrpc::write_json_string(
                std::str::from_utf8(rid).unwrap_or("?"),
                &mut body,
            );
            body.extend_from_slice(b"}}}");
        }
    }
    write_response(err.status(), "application/json", &body, close, out);
    if let Some(rid) = request_id {
        insert_header(out, crate::request_id::HEADER, rid);
    }
}

/// Inserts `name: value` right after the status line of the complete response in `out`.
pub fn insert_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    if let Some(status_end) = memchr::memmem::find(out, b"\r\n") {
        let at = status_end + 2;
        let mut field = Vec::with_capacity(name.len() + value.len() + 4);
        field.extend_from_slice(name.as_bytes());
        field.extend_from_slice(b": ");
        field.extend_from_slice(value);
        field.extend_from_slice(b"\r\n");
        out.splice(at..at, field);
    }
}

/// Writes a complete HTTP/1.1 response with a `Content-Length` body.
pub fn write_response(
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{}\r\n",
        reason(status),
        body.len(),
        if close { "connection: close\r\n" } else { "" }
    );
    out.extend_from_slice(body);
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(out: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8_lossy(out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
        (head.to_string(), json)
    }

    #[test]
    fn statuses_codes_and_sources() {
        use ErrorSource::*;
        let cases: Vec<(ErrorKind, u16, i64, ErrorSource)> = vec![
            (HttpError::BodyTooLarge.into(), 413, -32600, Downstream),
            (HttpError::HeadTooLarge.into(), 431, -32600, Downstream),
            (HttpError::BadFraming("x").into(), 400, -32600, Downstream),
            (
                HttpError::UnsupportedTransferEncoding.into(),
                501,
                -32600,
                Downstream,
            ),
            (
                HttpError::UnsupportedMediaType("x").into(),
                415,
                -32600,
                Downstream,
            ),
            (ErrorKind::NotFound, 404, -32600, Internal),
            (ErrorKind::ClientBodyTimeout, 408, -32600, Downstream),
            (
                ErrorKind::UpstreamConnect(io::ErrorKind::ConnectionRefused.into()),
                502,
                -32603,
                Upstream,
            ),
            (
                ErrorKind::UpstreamIo(io::ErrorKind::ConnectionReset.into()),
                502,
                -32603,
                Upstream,
            ),
            (ErrorKind::UpstreamClosed, 502, -32603, Upstream),
            (
                ErrorKind::UpstreamMalformed(HttpError::Malformed("x")),
                502,
                -32603,
                Upstream,
            ),
            (ErrorKind::UpstreamConnectTimeout, 504, -32603, Upstream),
            (ErrorKind::UpstreamTimeout, 504, -32603, Upstream),
            (ErrorKind::AuthServerUnavailable, 503, -32603, Policy),
        ];
        for (kind, status, code, source) in cases {
            let err = Error::from(kind);
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.jsonrpc_code(), code, "{err}");
            assert_eq!(err.source(), source, "{err}");
            assert_eq!(err.closes_connection(), source == Downstream, "{err}");
        }
    }

    #[test]
    fn retry_decisions() {
        assert!(!Retry::Never.allows(true, true));
        assert!(Retry::IfReused.allows(true, false));
        assert!(!Retry::IfReused.allows(false, true));
        assert!(Retry::IfReusedAndIdempotent.allows(true, true));
        assert!(!Retry::IfReusedAndIdempotent.allows(true, false));
        assert!(!Retry::IfReusedAndIdempotent.allows(false, true));
    }

    #[test]
    fn error_body_carries_the_request_id() {
        let mut out = Vec::new();
        write_error_response(
            &ErrorKind::UpstreamTimeout.into(),
            Some(b"\"abc\""),
            Some(b"req-7"),
            false,
            &mut out,
        );
        let (head, json) = parse(&out);
        assert!(
            head.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
            "{head}"
        );
        assert!(head.contains("content-type: application/json"));
        assert!(!head.contains("connection: close"));
        assert_eq!(json["id"], "abc");
        assert_eq!(json["jsonrpc"], "2.0");
        assert_eq!(json["error"]["code"], -32603);
        assert_eq!(json["error"]["data"]["request_id"], "req-7");
        assert!(head.contains("\r\nx-request-id: req-7\r\n"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX);
        assert_eq!(len, out.len() - head.len() - 4);
    }

    #[test]
    fn error_body_without_id_is_null_and_closes() {
        let mut out = Vec::new();
        let err = Error::from(HttpError::BodyTooLarge);
        write_error_response(&err, None, None, err.closes_connection(), &mut out);
        let (head, json) = parse(&out);
        assert!(head.starts_with("HTTP/1.1 413 "));
        assert!(head.contains("connection: close"));
        assert!(json["id"].is_null());
        assert_eq!(json["error"]["code"], -32600);
    }
}
