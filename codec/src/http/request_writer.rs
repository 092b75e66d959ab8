//! Writing an HTTP/1.1 request head from nothing, for every request the gateway itself sends to a
//! server (control-plane fetches: JWKS, metadata, introspection; the ACL's answers to an
//! upstream): the request line, `Host`, the caller's fields, the body's `Content-Length`, the body.
//!
//! Every input is checked before a byte is kept, because a header value that carries CR LF would
//! let whoever chose it (a configured URL, a token, a client's session id) add fields or a whole
//! second request: method and field names must be tokens, values must hold no control character
//! but HTAB, the target must be origin-form without spaces. The framing fields (`Host`,
//! `Content-Length`, `Transfer-Encoding`) belong to the writer, so a caller cannot declare a body
//! length different from the body it gives. On any error `out` is left as it was.
//!
//! Forwarded requests are not written here: [`super::HeadWriter`] rewrites the client's own head.

use super::writer::is_token;

/// Why a request could not be written; the head is not written at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestWriteError {
    #[error("method {0:?} is not a token")]
    Method(String),
    #[error("request-target {0:?} is not an origin-form target (`/path?query`, no spaces or control characters)")]
    Target(String),
    #[error("host {0:?} is not a valid Host value")]
    Host(String),
    #[error("header name {0:?} is not a token")]
    HeaderName(String),
    #[error("value of header {0:?} holds a control character")]
    HeaderValue(String),
    #[error("header {0:?} is written by the request writer itself")]
    Reserved(String),
}

/// Fields whose value only the writer knows (the framing) or sets once (`Host`).
const RESERVED: &[&str] = &["host", "content-length", "transfer-encoding"];

/// A request head being written into a caller's buffer. Start with [`RequestWriter::new`], add
/// fields with [`RequestWriter::header`], end with [`RequestWriter::finish`]. The first error is
/// kept and returned by `finish`, so a chain of `header` calls needs no check in between.
///
/// ```
/// # use mcpgate_codec::http::RequestWriter;
/// let mut out = Vec::new();
/// let mut w = RequestWriter::new(&mut out, "POST", "/token?x=1", "as.example:8443");
/// w.header("content-type", b"application/json");
/// w.finish(b"{}").unwrap();
/// assert_eq!(
///     out,
///     b"POST /token?x=1 HTTP/1.1\r\nhost: as.example:8443\r\ncontent-type: application/json\r\n\
///       content-length: 2\r\n\r\n{}"
/// );
/// ```
pub struct RequestWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Where this request starts in `out` (it is cut back to here on error).
    start: usize,
    /// The method defines a meaning for a body (POST, PUT, PATCH): an empty one is still
    /// declared with `Content-Length: 0` (RFC 9110 §8.6), which some servers require.
    declares_body: bool,
    error: Option<RequestWriteError>,
}

impl<'o> RequestWriter<'o> {
    /// Writes the request line and `Host` after whatever `out` already holds.
    pub fn new(out: &'o mut Vec<u8>, method: &str, target: &str, host: &str) -> Self {
        let start = out.len();
        let error = if !is_token(method.as_bytes()) {
            Some(RequestWriteError::Method(method.to_owned()))
        } else if !is_origin_form(target.as_bytes()) {
            Some(RequestWriteError::Target(target.to_owned()))
        } else if !is_host(host.as_bytes()) {
            Some(RequestWriteError::Host(host.to_owned()))
        } else {
            None
        };
        if error.is_none() {
            out.reserve(method.len() + target.len() + host.len() + 64);
            out.extend_from_slice(method.as_bytes());
            out.push(b' ');
            out.extend_from_slice(target.as_bytes());
            out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let declares_body = ["POST", "PUT", "PATCH"]
            .iter()
            .any(|m| method.eq_ignore_ascii_case(m));
        RequestWriter {
            out,
            start,
            declares_body,
            error,
        }
    }

    /// Appends `name: value`. A name that is not a token, a value with a control character, or
    /// one of the writer's own fields makes [`RequestWriter::finish`] fail.
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        if !is_token(name.as_bytes()) {
            self.error = Some(RequestWriteError::HeaderName(name.to_owned()));
        } else if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            self.error = Some(RequestWriteError::Reserved(name.to_owned()));
        } else if !is_field_value(value) {
            self.error = Some(RequestWriteError::HeaderValue(name.to_owned()));
        } else {
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(value);
            self.out.extend_from_slice(b"\r\n");
        }
        self
    }

    /// Declares the body's length (when there is a body, or the method defines one), ends the
    /// head and appends `body`. On error, `out` is cut back to what it held before `new`.
    pub fn finish(self, body: &[u8]) -> Result<(), RequestWriteError> {
        if let Some(error) = self.error {
            self.out.truncate(self.start);
            return Err(error);
        }
        if !body.is_empty() || self.declares_body {
            self.out.extend_from_slice(b"content-length: ");
            self.out
                .extend_from_slice(body.len().to_string().as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        Ok(())
    }
}

/// `field-value` of RFC 9110 §5.5 without obs-fold: visible ASCII, SP, HTAB and obs-text;
/// no other control byte (CR, LF and NUL above all).
fn is_field_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// An origin-form request-target: `/`, then visible ASCII only (the URL parser has already
/// percent-encoded anything else).
fn is_origin_form(target: &[u8]) -> bool {
    target.first() == Some(&b'/') && target.iter().all(|&b| (0x21..0x7f).contains(&b))
}

/// `host[:port]` or `[v6]:port`: visible ASCII without the delimiters that would end an
/// authority (`/ ? # @`) or a field (control bytes, checked by the range).
fn is_host(host: &[u8]) -> bool {
    !host.is_empty()
        && host
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && !matches!(b, b'/' | b'?' | b'#' | b'@' | b','))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{RequestBody, RequestHead};
    use proptest::prelude::*;

    fn write(
        method: &str,
        target: &str,
        host: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Result<Vec<u8>, RequestWriteError> {
        let mut out = b"kept".to_vec();
        let mut w = RequestWriter::new(&mut out, method, target, host);
        for (name, value) in headers {
            w.header(name, value);
        }
        match w.finish(body) {
            Ok(()) => Ok(out.split_off(4)),
            Err(e) => {
                assert_eq!(out, b"kept", "an error must leave the buffer as it was");
                Err(e)
            }
        }
    }

    #[test]
    fn writes_a_head_that_parses_back() {
        let out = write(
            "POST",
            "/introspect?a=b",
            "[::1]:8443",
            &[
                ("content-type", b"application/x-www-form-urlencoded"),
                ("authorization", b"Basic abc=\t"),
            ],
            b"token=x",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let head = match RequestHead::parse(&out) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        };
        assert_eq!(head.method(&out), b"POST");
        assert_eq!(head.target(&out), b"/introspect?a=b");
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.header(&out, "host"), Some(&b"[::1]:8443"[..]));
        assert_eq!(head.header(&out, "authorization"), Some(&b"Basic abc="[..]));
        assert_eq!(head.body_framing(&out), Ok(RequestBody::Length(7)));
        assert_eq!(out.get(head.head_len..), Some(&b"token=x"[..]));
    }

    #[test]
    fn content_length_only_when_a_body_is_declared() {
        let get = write("GET", "/jwks", "h", &[], b"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get, b"GET /jwks HTTP/1.1\r\nhost: h\r\n\r\n");
        let post = write("post", "/", "h", &[], b"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            post,
            b"post / HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n"
        );
        let delete = write("DELETE", "/", "h", &[], b"x").unwrap_or_else(|e| panic!("{e}"));
        assert!(delete.ends_with(b"content-length: 1\r\n\r\nx"));
    }

    #[test]
    fn refuses_what_would_break_the_head() {
        let ok: &[u8] = b"v";
        // (method, target, host, a header, the error expected)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            (&'a str, &'a [u8]),
            RequestWriteError,
        );
        let cases: &[Case<'_>] = &[
            (
                "GE T",
                "/",
                "h",
                ("a", ok),
                RequestWriteError::Method("GE T".into()),
            ),
            (
                "",
                "/",
                "h",
                ("a", ok),
                RequestWriteError::Method(String::new()),
            ),
            (
                "GET",
                "x",
                "h",
                ("a", ok),
                RequestWriteError::Target("x".into()),
            ),
            (
                "GET",
                "/a b",
                "h",
                ("a", ok),
                RequestWriteError::Target("/a b".into()),
            ),
            (
                "GET",
                "/\r\nX: 1",
                "h",
                ("a", ok),
                RequestWriteError::Target("/\r\nX: 1".into()),
            ),
            (
                "GET",
                "/",
                "",
                ("a", ok),
                RequestWriteError::Host(String::new()),
            ),
            (
                "GET",
                "/",
                "h\r\nx: y",
                ("a", ok),
                RequestWriteError::Host("h\r\nx: y".into()),
            ),
            (
                "GET",
                "/",
                "u@h",
                ("a", ok),
                RequestWriteError::Host("u@h".into()),
            ),
            (
                "GET",
                "/",
                "h",
                ("a b", ok),
                RequestWriteError::HeaderName("a b".into()),
            ),
            (
                "GET",
                "/",
                "h",
                ("a:", ok),
                RequestWriteError::HeaderName("a:".into()),
            ),
            (
                "GET",
                "/",
                "h",
                ("", ok),
                RequestWriteError::HeaderName(String::new()),
            ),
            (
                "GET",
                "/",
                "h",
                ("a", b"1\r\nInjected: 1"),
                RequestWriteError::HeaderValue("a".into()),
            ),
            (
                "GET",
                "/",
                "h",
                ("a", b"nul\0"),
                RequestWriteError::HeaderValue("a".into()),
            ),
            (
                "GET",
                "/",
                "h",
                ("a", b"lf\n"),
                RequestWriteError::HeaderValue("a".into()),
            ),
            (
                "GET",
                "/",
                "h",
                ("a", b"del\x7f"),
                RequestWriteError::HeaderValue("a".into()),
            ),
            (
                "GET",
                "/",
                "h",
                ("Host", ok),
                RequestWriteError::Reserved("Host".into()),
            ),
            (
                "GET",
                "/",
                "h",
                ("content-length", ok),
                RequestWriteError::Reserved("content-length".into()),
            ),
            (
                "GET",
                "/",
                "h",
                ("Transfer-Encoding", ok),
                RequestWriteError::Reserved("Transfer-Encoding".into()),
            ),
        ];
        for (method, target, host, (name, value), expected) in cases {
            let got = write(
                method,
                target,
                host,
                &[("x-first", b"1"), (name, value)],
                b"body",
            );
            assert_eq!(
                got.as_ref().err(),
                Some(expected),
                "{method} {target} {host} {name}"
            );
        }
    }

    #[test]
    fn the_first_error_is_the_one_reported() {
        let got = write("GET", "/", "h", &[("a b", b"v"), ("c", b"\n")], b"");
        assert_eq!(got, Err(RequestWriteError::HeaderName("a b".into())));
    }

    fn token() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,20}".prop_filter("not a framing field", |n| {
            !RESERVED.iter().any(|r| n.eq_ignore_ascii_case(r))
        })
    }

    proptest! {
        /// Whatever the value bytes, either the head is refused, or it parses back into exactly
        /// the fields given (no field smuggled in, none lost) and the body is framed by its length.
        #[test]
        fn never_writes_a_head_that_parses_differently(
            fields in proptest::collection::vec(
                (token(), proptest::collection::vec(any::<u8>(), 0..24)), 0..6),
            body in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let headers: Vec<(&str, &[u8])> =
                fields.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
            let result = write("PUT", "/p?q=1", "host:1", &headers, &body);
            let all_valid = fields.iter().all(|(_, v)| is_field_value(v));
            prop_assert_eq!(result.is_ok(), all_valid);
            if let Ok(out) = result {
                let head = match RequestHead::parse(&out) {
                    Ok(Some(h)) => h,
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                };
                let parsed: Vec<(Vec<u8>, Vec<u8>)> = head
                    .headers(&out)
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect();
                prop_assert_eq!(parsed.len(), fields.len() + 2);
                for ((name, value), (pn, pv)) in fields.iter().zip(parsed.iter().skip(1)) {
                    prop_assert_eq!(name.as_bytes(), pn.as_slice());
                    // The parser trims the value's surrounding whitespace (RFC 9112 §5).
                    prop_assert_eq!(value.trim_ascii(), pv.trim_ascii());
                }
                prop_assert_eq!(head.body_framing(&out), Ok(RequestBody::Length(body.len() as u64)));
                prop_assert_eq!(out.get(head.head_len..), Some(body.as_slice()));
            }
        }
    }
}
