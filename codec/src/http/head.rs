//! Request and response heads as offsets into the caller's buffer, and the body-framing decision
//! (Content-Length / chunked / close-delimited / none) with the request-smuggling checks.
//!
//! A request head that parses is also a valid request in the two ways httparse does not check:
//! its target is one of the four request-target forms, in ASCII and without a fragment (RFC 9112
//! §3.2), and its `Host` field follows RFC 9112 §3.2 (see [`RequestHead::host`]). Both are 400s
//! here, so no caller can forward such a request by forgetting a check.

use std::mem::MaybeUninit;

use smallvec::SmallVec;

use super::HttpError;
use crate::limits::{MAX_HEADERS, MAX_HEAD_BYTES};

/// A byte range into the buffer a head was parsed from. `u32` keeps a header entry at 16 bytes;
/// heads are bounded by `MAX_HEAD_BYTES`, far below `u32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The bytes of this span; empty if `buf` is not the buffer the span came from.
    #[inline]
    pub fn get<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or(&[])
    }

    /// The span of `part`, a subslice of `buf` (empty span if it is not one, e.g. a static "").
    #[inline]
    fn of(buf: &[u8], part: &[u8]) -> Span {
        let base = buf.as_ptr() as usize;
        let at = part.as_ptr() as usize;
        match at.checked_sub(base) {
            Some(start) if start + part.len() <= buf.len() => Span {
                start: start as u32,
                end: (start + part.len()) as u32,
            },
            _ => Span::default(),
        }
    }
}

/// One header field: name and value exactly as received (value without surrounding whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// Inline capacity covers typical MCP requests (measured 8 fields) without touching the heap.
type HeaderSpans = SmallVec<[HeaderSpan; 16]>;

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body (neither Content-Length nor Transfer-Encoding).
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`; decode with [`super::ChunkedDecoder`].
    Chunked,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body: 1xx, 204, 304, or the answer to HEAD.
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body runs until the upstream closes the connection.
    CloseDelimited,
}

/// A parsed request head. All spans index the buffer given to [`RequestHead::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Span,
    pub target: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: HeaderSpans,
    /// Bytes of the head including the blank line; the body starts here.
    pub head_len: usize,
}

/// A parsed response head. All spans index the buffer given to [`ResponseHead::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Span,
    pub minor_version: u8,
    pub headers: HeaderSpans,
    pub head_len: usize,
}

/// httparse's defaults are the strict settings a gateway wants; spelled out so nobody relaxes one
/// by accident: obs-fold, spaces before ':' and invalid header lines are errors.
fn parser_config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_obsolete_multiline_headers_in_responses(false)
        .allow_spaces_after_header_name_in_responses(false)
        .allow_multiple_spaces_in_request_line_delimiters(false)
        .allow_multiple_spaces_in_response_status_delimiters(false)
        .allow_space_before_first_header_name(false)
        .ignore_invalid_headers_in_requests(false)
        .ignore_invalid_headers_in_responses(false);
    config
}

fn map_parse_error(e: httparse::Error) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
        httparse::Error::HeaderName => HttpError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HttpError::Malformed("invalid header value"),
        httparse::Error::NewLine => HttpError::Malformed("invalid line ending"),
        httparse::Error::Status => HttpError::Malformed("invalid status"),
        httparse::Error::Token => HttpError::Malformed("invalid token"),
        httparse::Error::Version => HttpError::Malformed("invalid HTTP version"),
    }
}

/// Parse at most `MAX_HEAD_BYTES`, so a huge buffer (head + body) costs no more than a head and a
/// head that is still incomplete past the limit is refused instead of buffered forever.
#[inline]
fn bounded(buf: &[u8]) -> &[u8] {
    buf.get(..MAX_HEAD_BYTES).unwrap_or(buf)
}

fn incomplete(buf: &[u8]) -> Result<bool, HttpError> {
    if buf.len() >= MAX_HEAD_BYTES {
        Err(HttpError::HeadTooLarge)
    } else {
        Ok(false)
    }
}

fn collect_headers(buf: &[u8], parsed: &[httparse::Header<'_>]) -> HeaderSpans {
    parsed
        .iter()
        .map(|h| HeaderSpan {
            name: Span::of(buf, h.name.as_bytes()),
            value: Span::of(buf, h.value),
        })
        .collect()
}

impl RequestHead {
    /// Parse a request head from the start of `buf`. `Ok(None)`: the head is incomplete, read more.
    pub fn parse(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        let input = bounded(buf);
        let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let status = parser_config()
            .parse_request_with_uninit_headers(&mut req, input, &mut storage)
            .map_err(map_parse_error)?;
        let head_len = match status {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => {
                incomplete(buf)?;
                return Ok(None);
            }
        };
        let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
        else {
            return Err(HttpError::Malformed("incomplete request line"));
        };
        check_target(method.as_bytes(), target.as_bytes()).map_err(HttpError::Malformed)?;
        let head = RequestHead {
            method: Span::of(buf, method.as_bytes()),
            target: Span::of(buf, target.as_bytes()),
            minor_version,
            headers: collect_headers(buf, req.headers),
            head_len,
        };
        head.host(buf)?;
        Ok(Some(head))
    }

    pub fn method<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.method.get(buf)
    }

    /// The request-target as sent (`path?query`, or absolute-form / `*`).
    pub fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.target.get(buf)
    }

    /// The target up to (not including) the first `?`. For an absolute-form target
    /// (`http://host/p?q`) that includes scheme and authority: routing should compare origin-form.
    pub fn path<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let target = self.target(buf);
        match memchr::memchr(b'?', target) {
            Some(q) => target.get(..q).unwrap_or(target),
            None => target,
        }
    }

    /// The query after the first `?`, if any.
    pub fn query<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        let target = self.target(buf);
        memchr::memchr(b'?', target).and_then(|q| target.get(q + 1..))
    }

    /// First field named `name` (ASCII case-insensitive).
    pub fn header<'b>(&self, buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
        find_header(&self.headers, buf, name)
    }

    /// Every field in order, as (name, value).
    pub fn headers<'s, 'b: 's>(
        &'s self,
        buf: &'b [u8],
    ) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + 's {
        self.headers
            .iter()
            .map(move |h| (h.name.get(buf), h.value.get(buf)))
    }

    /// The `Host` value, checked per RFC 9112 §3.2 (and already by [`RequestHead::parse`]): an
    /// HTTP/1.1 request needs exactly one, any request with several (even identical) is refused,
    /// and the value must be `uri-host [ ":" port ]` (see [`is_valid_host`]); 400 for each.
    /// `Ok(None)`: an HTTP/1.0 request without one.
    pub fn host<'b>(&self, buf: &'b [u8]) -> Result<Option<&'b [u8]>, HttpError> {
        let mut hosts = self
            .headers
            .iter()
            .filter(|h| h.name.get(buf).eq_ignore_ascii_case(b"host"))
            .map(|h| h.value.get(buf));
        let host = hosts.next();
        if hosts.next().is_some() {
            return Err(HttpError::Malformed("more than one host field"));
        }
        match host {
            None if self.minor_version >= 1 => Err(HttpError::Malformed("missing host field")),
            None => Ok(None),
            Some(value) if !is_valid_host(value) => Err(HttpError::Malformed("invalid host field")),
            Some(value) => Ok(Some(value)),
        }
    }

    /// How the body is delimited, refusing every ambiguous shape (see the module header).
    pub fn body_framing(&self, buf: &[u8]) -> Result<RequestBody, HttpError> {
        let framing = scan_framing(&self.headers, buf)?;
        match (framing.te, framing.content_length) {
            (Some(_), Some(_)) => Err(HttpError::BadFraming(
                "content-length together with transfer-encoding",
            )),
            (Some(te), None) => {
                if self.minor_version == 0 {
                    return Err(HttpError::BadFraming("transfer-encoding in HTTP/1.0"));
                }
                te.check_common()?;
                // A request body must be self-delimiting (RFC 9112 §6.3 rule 4): chunked present but
                // not last is a framing error; codings we cannot remove are "not implemented".
                if te.chunked_count > 0 && !te.last_is_chunked {
                    return Err(HttpError::BadFraming("chunked is not the final coding"));
                }
                if te.other_codings {
                    return Err(HttpError::UnsupportedTransferEncoding);
                }
                Ok(RequestBody::Chunked)
            }
            (None, Some(n)) => Ok(RequestBody::Length(n)),
            (None, None) => Ok(RequestBody::None),
        }
    }

    /// Whether the connection may serve another request after this one: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self, buf: &[u8]) -> bool {
        keep_alive(&self.headers, buf, self.minor_version)
    }

    /// `Expect: 100-continue` (HTTP/1.1 only; RFC 9110 §10.1.1 says ignore it in HTTP/1.0).
    pub fn expects_continue(&self, buf: &[u8]) -> bool {
        self.minor_version >= 1
            && self
                .header(buf, "expect")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
    }
}

impl ResponseHead {
    /// Parse a response head from the start of `buf`. `Ok(None)`: the head is incomplete.
    pub fn parse(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
        let input = bounded(buf);
        let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let status = parser_config()
            .parse_response_with_uninit_headers(&mut resp, input, &mut storage)
            .map_err(map_parse_error)?;
        let head_len = match status {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => {
                incomplete(buf)?;
                return Ok(None);
            }
        };
        let (Some(code), Some(minor_version)) = (resp.code, resp.version) else {
            return Err(HttpError::Malformed("incomplete status line"));
        };
        if !(100..=999).contains(&code) {
            return Err(HttpError::Malformed("invalid status"));
        }
        Ok(Some(ResponseHead {
            status: code,
            reason: Span::of(buf, resp.reason.unwrap_or("").as_bytes()),
            minor_version,
            headers: collect_headers(buf, resp.headers),
            head_len,
        }))
    }

    pub fn reason<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.reason.get(buf)
    }

    /// First field named `name` (ASCII case-insensitive).
    pub fn header<'b>(&self, buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
        find_header(&self.headers, buf, name)
    }

    /// Every field in order, as (name, value).
    pub fn headers<'s, 'b: 's>(
        &'s self,
        buf: &'b [u8],
    ) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + 's {
        self.headers
            .iter()
            .map(move |h| (h.name.get(buf), h.value.get(buf)))
    }

    /// Whether the upstream connection may be reused after this response.
    pub fn keep_alive(&self, buf: &[u8]) -> bool {
        keep_alive(&self.headers, buf, self.minor_version)
    }

    /// How the body is delimited (RFC 9112 §6.3), given the method of the request it answers.
    pub fn body_framing(
        &self,
        buf: &[u8],
        request_method: &[u8],
    ) -> Result<ResponseBody, HttpError> {
        if request_method == b"HEAD"
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            return Ok(ResponseBody::None);
        }
        let framing = scan_framing(&self.headers, buf)?;
        match (framing.te, framing.content_length) {
            (Some(_), Some(_)) => Err(HttpError::BadFraming(
                "content-length together with transfer-encoding",
            )),
            (Some(te), None) => {
                if self.minor_version == 0 {
                    return Err(HttpError::BadFraming("transfer-encoding in HTTP/1.0"));
                }
                te.check_common()?;
                if !te.last_is_chunked {
                    return Ok(ResponseBody::CloseDelimited);
                }
                if te.other_codings {
                    return Err(HttpError::UnsupportedTransferEncoding);
                }
                Ok(ResponseBody::Chunked)
            }
            (None, Some(n)) => Ok(ResponseBody::Length(n)),
            (None, None) => Ok(ResponseBody::CloseDelimited),
        }
    }
}

/// The request-target is one of RFC 9112 §3.2's four forms, in ASCII, without a fragment:
/// origin-form (`/path?query`), absolute-form (`scheme:...`), authority-form (CONNECT only) or
/// asterisk-form (`*`, OPTIONS only). httparse accepts any visible byte, obs-text and `#`
/// included; a fragment is client-side only and never sent (RFC 9110 §4.2.5). An invalid
/// request line is refused rather than repaired (RFC 9112 §3).
fn check_target(method: &[u8], target: &[u8]) -> Result<(), &'static str> {
    if !target.is_ascii() {
        return Err("non-ASCII byte in the request target");
    }
    if memchr::memchr(b'#', target).is_some() {
        return Err("fragment in the request target");
    }
    let valid = match target.first() {
        Some(b'/') => true,
        _ if target == b"*" => method == b"OPTIONS",
        // Any authority: the gateway is not a forward proxy and answers CONNECT itself.
        _ if method == b"CONNECT" => true,
        _ => is_absolute_uri(target),
    };
    if valid {
        Ok(())
    } else {
        Err("invalid request target")
    }
}

/// Starts with `scheme ":"`, `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
fn is_absolute_uri(target: &[u8]) -> bool {
    let Some(colon) = memchr::memchr(b':', target) else {
        return false;
    };
    let scheme = target.get(..colon).unwrap_or_default();
    scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2 with RFC 3986 §3.2.2–3.2.3), with two
/// restrictions: the host must not be empty (RFC 9110 §4.2.1 forbids an `http` URI with an empty
/// host, and the gateway rebuilds the target URI from this field), and a reg-name must not
/// contain `,` although RFC 3986's sub-delims allow it: the value is copied into
/// `X-Forwarded-Host`, a list-valued field where a comma would split it into two hosts, and no DNS
/// name or address contains one.
pub(crate) fn is_valid_host(value: &[u8]) -> bool {
    let (host_ok, port) = match value.strip_prefix(b"[") {
        Some(rest) => {
            let Some(close) = memchr::memchr(b']', rest) else {
                return false;
            };
            let (literal, after) = rest.split_at(close);
            // `after` starts with the `]`.
            let after = after.get(1..).unwrap_or_default();
            let port = match after {
                [] => None,
                [b':', port @ ..] => Some(port),
                _ => return false,
            };
            (is_ip_literal(literal), port)
        }
        None => match memchr::memchr(b':', value) {
            Some(colon) => (
                is_reg_name(value.get(..colon).unwrap_or_default()),
                value.get(colon + 1..),
            ),
            None => (is_reg_name(value), None),
        },
    };
    host_ok && port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

/// The inside of `[...]`: an IPv6 address (no zone identifier: RFC 3986 has none) or
/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn is_ip_literal(literal: &[u8]) -> bool {
    if let Some(future) = literal
        .strip_prefix(b"v")
        .or_else(|| literal.strip_prefix(b"V"))
    {
        let Some(dot) = memchr::memchr(b'.', future) else {
            return false;
        };
        let (version, rest) = future.split_at(dot);
        let rest = rest.get(1..).unwrap_or_default();
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !rest.is_empty()
            && rest
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    std::str::from_utf8(literal).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, here non-empty and without `,` (see
/// [`is_valid_host`]). An IPv4 address is a reg-name too.
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = name.get(i) {
        if b == b'%' {
            let hex = name.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if is_unreserved(b) || (is_sub_delim(b) && b != b',') {
            i += 1;
        } else {
            return false;
        }
    }
    !name.is_empty()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn find_header<'b>(headers: &[HeaderSpan], buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| h.value.get(buf))
}

/// The non-empty elements of a comma-separated field value, OWS trimmed (RFC 9110 §5.6.1).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|e| e.trim_ascii())
        .filter(|e| !e.is_empty())
}

/// Whether any `Connection` field lists `token`.
fn connection_has(headers: &[HeaderSpan], buf: &[u8], token: &[u8]) -> bool {
    headers
        .iter()
        .filter(|h| h.name.get(buf).eq_ignore_ascii_case(b"connection"))
        .flat_map(|h| list_elements(h.value.get(buf)))
        .any(|t| t.eq_ignore_ascii_case(token))
}

fn keep_alive(headers: &[HeaderSpan], buf: &[u8], minor_version: u8) -> bool {
    if connection_has(headers, buf, b"close") {
        return false;
    }
    minor_version >= 1 || connection_has(headers, buf, b"keep-alive")
}

/// What the Transfer-Encoding fields say, all fields' lists concatenated in order.
struct TransferCodings {
    count: usize,
    chunked_count: usize,
    last_is_chunked: bool,
    other_codings: bool,
}

impl TransferCodings {
    /// Checks shared by requests and responses: an empty coding list, or `chunked` applied twice.
    fn check_common(&self) -> Result<(), HttpError> {
        if self.count == 0 {
            return Err(HttpError::BadFraming("empty transfer-encoding"));
        }
        if self.chunked_count > 1 {
            return Err(HttpError::BadFraming("chunked applied more than once"));
        }
        Ok(())
    }
}

struct Framing {
    te: Option<TransferCodings>,
    content_length: Option<u64>,
}

fn scan_framing(headers: &[HeaderSpan], buf: &[u8]) -> Result<Framing, HttpError> {
    let mut te: Option<TransferCodings> = None;
    let mut content_length: Option<u64> = None;
    for h in headers {
        let name = h.name.get(buf);
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let codings = te.get_or_insert(TransferCodings {
                count: 0,
                chunked_count: 0,
                last_is_chunked: false,
                other_codings: false,
            });
            for coding in list_elements(h.value.get(buf)) {
                codings.count += 1;
                if coding.eq_ignore_ascii_case(b"chunked") {
                    codings.chunked_count += 1;
                    codings.last_is_chunked = true;
                } else {
                    codings.other_codings = true;
                    codings.last_is_chunked = false;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let mut any = false;
            for element in h.value.get(buf).split(|&b| b == b',') {
                let element = element.trim_ascii();
                if element.is_empty() {
                    continue;
                }
                any = true;
                let n = parse_content_length(element)?;
                match content_length {
                    Some(previous) if previous != n => {
                        return Err(HttpError::BadFraming("differing content-length values"));
                    }
                    _ => content_length = Some(n),
                }
            }
            if !any {
                return Err(HttpError::BadFraming("empty content-length"));
            }
        }
    }
    Ok(Framing { te, content_length })
}

/// `1*DIGIT` and nothing else: no sign, no inner space, no hex, no overflow.
fn parse_content_length(digits: &[u8]) -> Result<u64, HttpError> {
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(HttpError::BadFraming("malformed content-length"));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HttpError::BadFraming("content-length overflow"))?;
    }
    Ok(n)
}
