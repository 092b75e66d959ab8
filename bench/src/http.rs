//! Minimal HTTP/1.1 framing for the harness: request/response heads (httparse) and an incremental
//! chunked-body decoder. Enough for keep-alive MCP traffic between our own fixtures and a proxy;
//! not a general-purpose HTTP implementation.

use thiserror::Error;

/// Headers we accept per message; proxies add a few (`X-Forwarded-*`, `Via`).
const MAX_HEADERS: usize = 48;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("malformed HTTP head: {0}")]
    Malformed(&'static str),
    #[error("bad chunked encoding: {0}")]
    BadChunk(&'static str),
}

/// How the body that follows a head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Response without length: body runs to connection close.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub path: String,
    pub framing: Framing,
    pub accepts_sse: bool,
    pub close: bool,
    /// Bytes of the head, including the blank line.
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub framing: Framing,
    pub is_sse: bool,
    pub session_id: Option<String>,
    pub close: bool,
    pub len: usize,
}

fn framing_from(headers: &[httparse::Header<'_>]) -> Result<Option<Framing>, HttpError> {
    let mut framing = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text =
                std::str::from_utf8(h.value).map_err(|_| HttpError::Malformed("content-length"))?;
            let n = text
                .trim()
                .parse::<u64>()
                .map_err(|_| HttpError::Malformed("content-length"))?;
            if framing.is_some() {
                return Err(HttpError::Malformed("duplicate framing headers"));
            }
            framing = Some(Framing::Length(n));
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !contains_token(h.value, b"chunked") {
                return Err(HttpError::Malformed("unsupported transfer-encoding"));
            }
            if framing.is_some() {
                return Err(HttpError::Malformed("duplicate framing headers"));
            }
            framing = Some(Framing::Chunked);
        }
    }
    Ok(framing)
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

fn header_has_token(headers: &[httparse::Header<'_>], name: &str, token: &[u8]) -> bool {
    headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case(name) && contains_token(h.value, token))
}

/// Parses a request head from the start of `buf`; `Ok(None)` means more bytes are needed.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::Malformed("request head")),
    };
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        Some("DELETE") => Method::Delete,
        _ => Method::Other,
    };
    let path = req.path.unwrap_or("/").to_owned();
    let framing = framing_from(req.headers)?.unwrap_or(Framing::None);
    let accepts_sse = header_has_token(req.headers, "accept", b"text/event-stream");
    let close = header_has_token(req.headers, "connection", b"close") || req.version == Some(0);
    Ok(Some(RequestHead {
        method,
        path,
        framing,
        accepts_sse,
        close,
        len,
    }))
}

/// Parses a response head from the start of `buf`; `Ok(None)` means more bytes are needed.
pub fn parse_response_head(
    buf: &[u8],
    request_was_head: bool,
) -> Result<Option<ResponseHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::Malformed("response head")),
    };
    let status = resp.code.ok_or(HttpError::Malformed("status"))?;
    let bodyless =
        request_was_head || status == 204 || status == 304 || (100..200).contains(&status);
    let framing = if bodyless {
        Framing::None
    } else {
        framing_from(resp.headers)?.unwrap_or(Framing::UntilClose)
    };
    let is_sse = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-type") && h.value.starts_with(b"text/event-stream")
    });
    let session_id = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("mcp-session-id"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_owned);
    let close = header_has_token(resp.headers, "connection", b"close") || resp.version == Some(0);
    Ok(Some(ResponseHead {
        status,
        framing,
        is_sse,
        session_id,
        close,
        len,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size { value: u64, digits: u8 },
    Extension { value: u64 },
    SizeLf { value: u64 },
    Data { remaining: u64 },
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerLine,
    TrailerLf { empty: bool },
    Done,
}

/// Incremental decoder of a chunked body: feed it bytes as they arrive, it tells how many belonged
/// to the body and whether the terminating chunk (and trailers) has been seen. Payload bytes are
/// appended to `payload` when given, so the caller can check what came through.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self {
            state: ChunkState::Size {
                value: 0,
                digits: 0,
            },
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes body bytes from `input`; returns how many were used (less than `input.len()` only
    /// once the body is complete).
    pub fn feed(
        &mut self,
        input: &[u8],
        mut payload: Option<&mut Vec<u8>>,
    ) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            self.state = match self.state {
                ChunkState::Done => return Ok(i),
                ChunkState::Size { value, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 15 {
                            return Err(HttpError::BadChunk("size too long"));
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        ChunkState::Size {
                            value: value * 16 + d,
                            digits: digits + 1,
                        }
                    }
                    b';' | b' ' | b'\t' if digits > 0 => ChunkState::Extension { value },
                    b'\r' if digits > 0 => ChunkState::SizeLf { value },
                    _ => return Err(HttpError::BadChunk("size")),
                },
                ChunkState::Extension { value } => match b {
                    b'\r' => ChunkState::SizeLf { value },
                    b'\n' => return Err(HttpError::BadChunk("bare LF")),
                    _ => ChunkState::Extension { value },
                },
                ChunkState::SizeLf { value } => {
                    if b != b'\n' {
                        return Err(HttpError::BadChunk("size line end"));
                    }
                    if value == 0 {
                        ChunkState::TrailerLineStart
                    } else {
                        ChunkState::Data { remaining: value }
                    }
                }
                ChunkState::Data { remaining } => {
                    let available = (input.len() - i) as u64;
                    let take = available.min(remaining) as usize;
                    if let Some(p) = payload.as_deref_mut() {
                        p.extend_from_slice(&input[i..i + take]);
                    }
                    i += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data { remaining: left }
                    };
                    continue;
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(HttpError::BadChunk("data end"));
                    }
                    ChunkState::DataLf
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadChunk("data end"));
                    }
                    ChunkState::Size {
                        value: 0,
                        digits: 0,
                    }
                }
                ChunkState::TrailerLineStart => match b {
                    b'\r' => ChunkState::TrailerLf { empty: true },
                    _ => ChunkState::TrailerLine,
                },
                ChunkState::TrailerLine => match b {
                    b'\r' => ChunkState::TrailerLf { empty: false },
                    _ => ChunkState::TrailerLine,
                },
                ChunkState::TrailerLf { empty } => {
                    if b != b'\n' {
                        return Err(HttpError::BadChunk("trailer line end"));
                    }
                    if empty {
                        self.state = ChunkState::Done;
                        return Ok(i + 1);
                    }
                    ChunkState::TrailerLineStart
                }
            };
            i += 1;
        }
        Ok(i)
    }
}

/// Appends one chunk (size line, data, CRLF) to `out`.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_roundtrip_byte_by_byte() {
        let mut body = Vec::new();
        write_chunk(&mut body, b"event: message\ndata: {}\n\n");
        write_chunk(&mut body, &[b'x'; 300]);
        body.extend_from_slice(LAST_CHUNK);
        body.extend_from_slice(b"NEXT");
        let mut dec = ChunkedDecoder::new();
        let mut payload = Vec::new();
        let mut used = 0;
        for b in body.chunks(1) {
            used += dec.feed(b, Some(&mut payload)).unwrap_or(0);
            if dec.is_done() {
                break;
            }
        }
        assert!(dec.is_done());
        assert_eq!(used, body.len() - 4);
        assert_eq!(payload.len(), 25 + 300);
    }

    #[test]
    fn chunked_rejects_garbage_and_accepts_extension_and_trailer() {
        assert!(ChunkedDecoder::new().feed(b"zz\r\n", None).is_err());
        let mut dec = ChunkedDecoder::new();
        let input = b"3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(dec.feed(input, None), Ok(input.len()));
        assert!(dec.is_done());
    }

    #[test]
    fn response_head_framing() {
        let h = parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nMcp-Session-Id: s1\r\n\r\n",
            false,
        )
        .unwrap_or(None)
        .unwrap_or_else(|| panic!("complete head"));
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.is_sse);
        assert_eq!(h.session_id.as_deref(), Some("s1"));
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Le", false),
            Ok(None)
        );
        let h = parse_response_head(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", false);
        assert_eq!(
            h.map(|h| h.map(|h| h.framing)),
            Ok(Some(Framing::Length(0)))
        );
        assert!(parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            false
        )
        .is_err());
    }

    #[test]
    fn request_head_fields() {
        let h = parse_request_head(
            b"POST /mcp HTTP/1.1\r\nHost: x\r\nAccept: application/json, text/event-stream\r\nContent-Length: 12\r\n\r\n",
        );
        let h = h.unwrap_or(None).unwrap_or_else(|| panic!("complete head"));
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.accepts_sse);
        assert!(!h.close);
    }
}
