//! Every answer the gateway writes itself (rather than relaying the upstream's): the failure, its
//! HTTP status, its JSON-RPC error code, and the exact response bytes.
//!
//! JSON-RPC codes: client-side HTTP errors use -32600 (Invalid Request); upstream failures use
//! -32603 (Internal error) and say which failure in `message`. The `id` is the request's when the
//! gateway could read it, `null` otherwise.

use std::io;

use mcpgate_codec::http::HttpError;

/// JSON-RPC "Invalid Request".
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "Internal error"; used for every upstream failure (502/504).
pub const INTERNAL_ERROR: i64 = -32603;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The client's request could not be accepted (codec verdict: 400/413/431/501).
    #[error("{0}")]
    Request(#[from] HttpError),
    #[error("no API is served at this path")]
    NotFound,
    #[error("request head not received in time")]
    ClientHeaderTimeout,
    #[error("request body not received in time")]
    ClientBodyTimeout,
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("upstream connection failed: {0}")]
    UpstreamConnect(io::Error),
    #[error("upstream connection timed out")]
    UpstreamConnectTimeout,
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

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::Request(e) => e.status(),
            GatewayError::NotFound => 404,
            GatewayError::ClientHeaderTimeout | GatewayError::ClientBodyTimeout => 408,
            GatewayError::ShuttingDown | GatewayError::AuthServerUnavailable => 503,
            GatewayError::UpstreamConnect(_)
            | GatewayError::UpstreamIo(_)
            | GatewayError::UpstreamClosed
            | GatewayError::UpstreamMalformed(_) => 502,
            GatewayError::UpstreamConnectTimeout | GatewayError::UpstreamTimeout => 504,
        }
    }

    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            GatewayError::Request(_)
            | GatewayError::NotFound
            | GatewayError::ClientHeaderTimeout
            | GatewayError::ClientBodyTimeout => INVALID_REQUEST,
            GatewayError::ShuttingDown
            | GatewayError::UpstreamConnect(_)
            | GatewayError::UpstreamConnectTimeout
            | GatewayError::UpstreamTimeout
            | GatewayError::UpstreamIo(_)
            | GatewayError::UpstreamClosed
            | GatewayError::UpstreamMalformed(_)
            | GatewayError::AuthServerUnavailable => INTERNAL_ERROR,
        }
    }

    /// Whether the client connection must be closed after this answer: the request's body may
    /// still be unread (or unreadable), so the next bytes cannot be trusted as a new request.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            GatewayError::Request(_)
                | GatewayError::ClientHeaderTimeout
                | GatewayError::ClientBodyTimeout
                | GatewayError::ShuttingDown
        )
    }
}

/// Writes a complete HTTP/1.1 response for `err` into `out`: JSON-RPC error body carrying `id_raw`
/// (the raw JSON of the request id) or `null`.
pub fn write_error_response(
    err: &GatewayError,
    id_raw: Option<&[u8]>,
    close: bool,
    out: &mut Vec<u8>,
) {
    let mut body = Vec::with_capacity(128);
    let message = err.to_string();
    mcpgate_codec::jsonrpc::error_response(id_raw, err.jsonrpc_code(), &message, &mut body);
    write_response(err.status(), "application/json", &body, close, out);
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
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
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
    fn statuses_and_codes() {
        let cases: Vec<(GatewayError, u16, i64)> = vec![
            (GatewayError::Request(HttpError::BodyTooLarge), 413, -32600),
            (GatewayError::Request(HttpError::HeadTooLarge), 431, -32600),
            (
                GatewayError::Request(HttpError::BadFraming("x")),
                400,
                -32600,
            ),
            (
                GatewayError::Request(HttpError::UnsupportedTransferEncoding),
                501,
                -32600,
            ),
            (GatewayError::NotFound, 404, -32600),
            (
                GatewayError::Request(HttpError::UnsupportedMediaType("x")),
                415,
                -32600,
            ),
            (
                GatewayError::UpstreamConnect(io::ErrorKind::ConnectionRefused.into()),
                502,
                -32603,
            ),
            (
                GatewayError::UpstreamIo(io::ErrorKind::ConnectionReset.into()),
                502,
                -32603,
            ),
            (GatewayError::UpstreamClosed, 502, -32603),
            (
                GatewayError::UpstreamMalformed(HttpError::Malformed("x")),
                502,
                -32603,
            ),
            (GatewayError::UpstreamConnectTimeout, 504, -32603),
            (GatewayError::UpstreamTimeout, 504, -32603),
            (GatewayError::AuthServerUnavailable, 503, -32603),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.jsonrpc_code(), code, "{err}");
        }
    }

    #[test]
    fn error_body_carries_the_request_id() {
        let mut out = Vec::new();
        write_error_response(
            &GatewayError::UpstreamTimeout,
            Some(b"\"abc\""),
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
        let err = GatewayError::Request(HttpError::BodyTooLarge);
        write_error_response(&err, None, err.closes_connection(), &mut out);
        let (head, json) = parse(&out);
        assert!(head.starts_with("HTTP/1.1 413 "));
        assert!(head.contains("connection: close"));
        assert!(json["id"].is_null());
        assert_eq!(json["error"]["code"], -32600);
    }
}
