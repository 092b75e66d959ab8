//! HTTP/1.1 for a proxy: heads parsed into offsets (httparse), body framing with request-smuggling
//! checks, an incremental chunked decoder, a chunked encoder, a head writer that rewrites headers
//! and copies the rest verbatim, and the one writer of the requests the gateway itself sends
//! ([`RequestWriter`]).
//!
//! Everything here works on the caller's buffer: a parsed head is a set of [`Span`]s, so the engine
//! copies only the bytes it changes. Every rejection is an [`HttpError`] whose [`HttpError::status`]
//! is the status to answer a client with (the engine maps upstream failures to 502 itself).
//!
//! Choices a reviewer should know about:
//! - Repeated `Content-Length` values (several fields, or a comma list) are accepted only when every
//!   value is identical (RFC 9110 §8.6 permits either rejecting or collapsing them); anything else is
//!   400. The engine should `set("content-length", ..)` when forwarding so the upstream sees one value.
//! - `Content-Length` together with `Transfer-Encoding` is rejected in requests *and* responses
//!   (RFC 9112 lets a response's Transfer-Encoding win; a gateway refusing the ambiguity is safer).
//! - Transfer codings other than `chunked` are not supported (501): the gateway must read the body.
//!   A response whose last coding is not `chunked` is close-delimited (RFC 9112 §6.3).
//! - Heads with obs-fold, bare CR, or NUL/CR/LF inside values are rejected by httparse's default
//!   configuration; chunked bodies require CRLF line ends (no bare LF).
//! - A request head is refused (400) when its target is not one of RFC 9112's four forms (or has
//!   a non-ASCII byte or a fragment), when an HTTP/1.1 request has
//!   no `Host`, when any request has two, or when the value is not `uri-host[:port]`
//!   (RFC 9112 §3.2); HTTP/1.0 without `Host` is accepted.

mod chunked;
mod head;
mod media_type;
mod request_writer;
mod writer;

pub use chunked::{encode_chunk, write_chunk_head, ChunkedDecoder, LAST_CHUNK};
pub use head::{HeaderSpan, RequestBody, RequestHead, ResponseBody, ResponseHead, Span};
pub use media_type::check_body_charset;
pub use request_writer::{RequestWriteError, RequestWriter};
pub use writer::HeadWriter;

/// Why a head or body was refused. [`HttpError::status`] gives the status to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The head is still incomplete after `limits::MAX_HEAD_BYTES`.
    #[error("request head larger than the limit")]
    HeadTooLarge,
    /// More than `limits::MAX_HEADERS` header fields.
    #[error("too many header fields")]
    TooManyHeaders,
    /// The body is longer than the configured maximum.
    #[error("body larger than the limit")]
    BodyTooLarge,
    /// The body length cannot be determined unambiguously (a request-smuggling shape).
    #[error("bad message framing: {0}")]
    BadFraming(&'static str),
    /// A transfer coding other than `chunked`.
    #[error("unsupported transfer-encoding")]
    UnsupportedTransferEncoding,
    /// Not HTTP/1.x syntax.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A request body in a media type or charset the gateway will not judge (415).
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(&'static str),
}

impl HttpError {
    /// The HTTP status a client should receive for this error.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::BadFraming(_) | HttpError::Malformed(_) => 400,
            HttpError::UnsupportedTransferEncoding => 501,
            HttpError::UnsupportedMediaType(_) => 415,
        }
    }
}

/// Refuse a body of `len` bytes when it exceeds `max` (413).
#[inline]
pub fn check_body_len(len: u64, max: usize) -> Result<(), HttpError> {
    if len > max as u64 {
        Err(HttpError::BodyTooLarge)
    } else {
        Ok(())
    }
}
