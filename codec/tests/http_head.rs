//! Request/response head parsing, limits, and body framing including every smuggling shape.

use mcpgate_codec::http::{
    check_body_len, HttpError, RequestBody, RequestHead, ResponseBody, ResponseHead,
};
use mcpgate_codec::limits::{MAX_HEADERS, MAX_HEAD_BYTES};

const MCP_POST: &[u8] = b"POST /mcp?session=abc HTTP/1.1\r\n\
Host: gateway.example:8080\r\n\
User-Agent: mcp-client/1.0\r\n\
Accept: application/json, text/event-stream\r\n\
Content-Type: application/json\r\n\
Content-Length: 169\r\n\
Mcp-Session-Id: 4f1c7a2e-0d3b-4c1e-9a57-2b8f6e0c9d11\r\n\
MCP-Protocol-Version: 2025-06-18\r\n\
Authorization: Bearer abc.def\r\n\r\n";

fn request(raw: &[u8]) -> RequestHead {
    match RequestHead::parse(raw) {
        Ok(Some(h)) => h,
        other => panic!("expected a complete head, got {other:?}"),
    }
}

fn request_framing(raw: &[u8]) -> Result<RequestBody, HttpError> {
    request(raw).body_framing(raw)
}

fn response_framing(raw: &[u8], method: &[u8]) -> Result<ResponseBody, HttpError> {
    match ResponseHead::parse(raw) {
        Ok(Some(h)) => h.body_framing(raw, method),
        other => panic!("expected a complete head, got {other:?}"),
    }
}

fn status_of(result: Result<impl std::fmt::Debug, HttpError>) -> u16 {
    match result {
        Err(e) => e.status(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[test]
fn parses_mcp_post_into_spans() {
    let mut buf = MCP_POST.to_vec();
    buf.extend_from_slice(b"{\"jsonrpc\":\"2.0\"}");
    let head = request(&buf);
    assert_eq!(head.method(&buf), b"POST");
    assert_eq!(head.target(&buf), b"/mcp?session=abc");
    assert_eq!(head.path(&buf), b"/mcp");
    assert_eq!(head.query(&buf), Some(&b"session=abc"[..]));
    assert_eq!(head.minor_version, 1);
    assert_eq!(head.head_len, MCP_POST.len());
    assert_eq!(head.headers.len(), 8);
    assert!(!head.headers.spilled());
    assert_eq!(
        head.header(&buf, "content-type"),
        Some(&b"application/json"[..])
    );
    assert_eq!(
        head.header(&buf, "MCP-SESSION-ID"),
        Some(&b"4f1c7a2e-0d3b-4c1e-9a57-2b8f6e0c9d11"[..])
    );
    assert_eq!(head.header(&buf, "x-missing"), None);
    let names: Vec<&[u8]> = head.headers(&buf).map(|(n, _)| n).collect();
    assert_eq!(names[0], b"Host");
    assert_eq!(names[7], b"Authorization");
    assert_eq!(head.body_framing(&buf), Ok(RequestBody::Length(169)));
    assert!(head.keep_alive(&buf));
    assert!(!head.expects_continue(&buf));
}

#[test]
fn header_lookup_returns_first_of_repeated_fields() {
    let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\nx-a: two\r\n\r\n";
    assert_eq!(request(raw).header(raw, "X-a"), Some(&b"one"[..]));
}

#[test]
fn path_without_query_is_whole_target() {
    let raw = b"GET /a/b HTTP/1.1\r\nHost: h\r\n\r\n";
    let head = request(raw);
    assert_eq!(head.path(raw), b"/a/b");
    assert_eq!(head.query(raw), None);
}

#[test]
fn incomplete_head_is_none_at_every_prefix() {
    for end in 0..MCP_POST.len() {
        assert_eq!(
            RequestHead::parse(&MCP_POST[..end]),
            Ok(None),
            "prefix {end}"
        );
    }
}

#[test]
fn head_too_large_while_incomplete_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    raw.resize(MAX_HEAD_BYTES, b'a');
    assert_eq!(RequestHead::parse(&raw), Err(HttpError::HeadTooLarge));
    assert_eq!(HttpError::HeadTooLarge.status(), 431);
    // One byte under the limit is still just incomplete.
    assert_eq!(RequestHead::parse(&raw[..MAX_HEAD_BYTES - 1]), Ok(None));
}

#[test]
fn complete_head_followed_by_large_body_is_fine() {
    let mut raw = MCP_POST.to_vec();
    raw.resize(MAX_HEAD_BYTES * 4, b'x');
    assert_eq!(request(&raw).head_len, MCP_POST.len());
}

#[test]
fn too_many_headers_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    let err = RequestHead::parse(&raw);
    assert_eq!(err, Err(HttpError::TooManyHeaders));
    assert_eq!(status_of(err), 431);
}

#[test]
fn exactly_max_headers_is_accepted() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 1..MAX_HEADERS {
        raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert_eq!(request(&raw).headers.len(), MAX_HEADERS);
}

#[test]
fn body_too_large_is_413() {
    assert_eq!(check_body_len(10, 10), Ok(()));
    assert_eq!(check_body_len(11, 10), Err(HttpError::BodyTooLarge));
    assert_eq!(HttpError::BodyTooLarge.status(), 413);
}

#[test]
fn obs_fold_is_rejected_in_requests_and_responses() {
    let req = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n";
    assert_eq!(status_of(RequestHead::parse(req)), 400);
    let req_tab = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n";
    assert_eq!(status_of(RequestHead::parse(req_tab)), 400);
    let resp = b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\r\n";
    assert_eq!(status_of(ResponseHead::parse(resp)), 400);
}

#[test]
fn bare_cr_is_rejected() {
    assert_eq!(
        status_of(RequestHead::parse(
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n"
        )),
        400
    );
    assert_eq!(
        status_of(RequestHead::parse(b"GET / HTTP/1.1\rX-A: a\r\n\r\n")),
        400
    );
    assert_eq!(
        status_of(RequestHead::parse(
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\rX\r\n"
        )),
        400
    );
}

#[test]
fn control_bytes_in_values_are_rejected() {
    assert_eq!(
        status_of(RequestHead::parse(
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n"
        )),
        400
    );
    assert_eq!(
        status_of(RequestHead::parse(
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n"
        )),
        400
    );
}

#[test]
fn space_before_colon_is_rejected() {
    assert_eq!(
        status_of(RequestHead::parse(
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n"
        )),
        400
    );
    assert_eq!(
        status_of(ResponseHead::parse(
            b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"
        )),
        400
    );
}

#[test]
fn bad_version_is_rejected() {
    assert_eq!(
        status_of(RequestHead::parse(b"GET / HTTP/2.0\r\n\r\n")),
        400
    );
    assert_eq!(status_of(RequestHead::parse(b"GET / FTP/1.1\r\n\r\n")), 400);
}

// ---- request framing ----

#[test]
fn no_length_and_no_coding_is_no_body() {
    assert_eq!(
        request_framing(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        Ok(RequestBody::None)
    );
}

#[test]
fn chunked_request() {
    assert_eq!(
        request_framing(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Ok(RequestBody::Chunked)
    );
    assert_eq!(
        request_framing(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n"),
        Ok(RequestBody::Chunked)
    );
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let raw =
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(status_of(request_framing(raw)), 400);
    let reversed =
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(status_of(request_framing(reversed)), 400);
}

#[test]
fn differing_content_lengths_are_400() {
    let two_fields =
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    assert_eq!(status_of(request_framing(two_fields)), 400);
    let list = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n";
    assert_eq!(status_of(request_framing(list)), 400);
}

#[test]
fn identical_repeated_content_lengths_are_accepted() {
    let two_fields =
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(request_framing(two_fields), Ok(RequestBody::Length(5)));
    let list = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,5 , 5\r\n\r\n";
    assert_eq!(request_framing(list), Ok(RequestBody::Length(5)));
}

#[test]
fn malformed_content_lengths_are_400() {
    for value in [
        &b"+5"[..],
        b"-5",
        b"5 5",
        b"0x5",
        b"5a",
        b"1.0",
        b"",
        b",",
        b"18446744073709551616",
        b"99999999999999999999999",
    ] {
        let mut raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ".to_vec();
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n\r\n");
        let result = request_framing(&raw);
        assert_eq!(
            status_of(result),
            400,
            "value {:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn largest_content_length_parses() {
    let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n";
    assert_eq!(request_framing(raw), Ok(RequestBody::Length(u64::MAX)));
}

#[test]
fn chunked_not_last_in_request_is_400() {
    let raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    assert_eq!(status_of(request_framing(raw)), 400);
    let split = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(status_of(request_framing(split)), 400);
}

#[test]
fn unknown_coding_in_request_is_501() {
    let raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(status_of(request_framing(raw)), 501);
    let before_chunked = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(
        request_framing(before_chunked),
        Err(HttpError::UnsupportedTransferEncoding)
    );
    let lookalike = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n";
    assert_eq!(status_of(request_framing(lookalike)), 501);
}

#[test]
fn chunked_twice_or_empty_coding_is_400() {
    let twice = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n";
    assert_eq!(status_of(request_framing(twice)), 400);
    let empty = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n";
    assert_eq!(status_of(request_framing(empty)), 400);
}

#[test]
fn transfer_encoding_in_http10_request_is_400() {
    let raw = b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(status_of(request_framing(raw)), 400);
}

// ---- connection management ----

#[test]
fn keep_alive_rules() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\nHost: h\r\n\r\n", false),
        (
            b"GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive, close\r\n\r\n",
            false,
        ),
    ];
    for (raw, expected) in cases {
        assert_eq!(
            request(raw).keep_alive(raw),
            *expected,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn expects_continue_only_in_http11() {
    let raw = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n";
    assert!(request(raw).expects_continue(raw));
    let old = b"POST / HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\n\r\n";
    assert!(!request(old).expects_continue(old));
}

// ---- responses ----

#[test]
fn parses_response_head() {
    let raw = b"HTTP/1.1 202 Accepted\r\nContent-Type: text/event-stream\r\nMcp-Session-Id: s1\r\n\r\ndata";
    let head = match ResponseHead::parse(raw) {
        Ok(Some(h)) => h,
        other => panic!("{other:?}"),
    };
    assert_eq!(head.status, 202);
    assert_eq!(head.reason(raw), b"Accepted");
    assert_eq!(head.header(raw, "mcp-session-id"), Some(&b"s1"[..]));
    assert_eq!(head.head_len, raw.len() - 4);
    assert_eq!(
        head.body_framing(raw, b"POST"),
        Ok(ResponseBody::CloseDelimited)
    );
}

#[test]
fn response_without_reason_phrase() {
    let raw = b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n";
    match ResponseHead::parse(raw) {
        Ok(Some(h)) => assert_eq!(h.reason(raw), b""),
        other => panic!("{other:?}"),
    }
}

#[test]
fn responses_without_body() {
    for status in [
        "100 Continue",
        "101 Switching",
        "204 No Content",
        "304 Not Modified",
    ] {
        let raw = format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(
            response_framing(raw.as_bytes(), b"GET"),
            Ok(ResponseBody::None),
            "{status}"
        );
    }
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    assert_eq!(response_framing(head, b"HEAD"), Ok(ResponseBody::None));
    assert_eq!(response_framing(head, b"GET"), Ok(ResponseBody::Length(10)));
}

#[test]
fn response_framing_variants() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        response_framing(chunked, b"POST"),
        Ok(ResponseBody::Chunked)
    );
    let close = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
    assert_eq!(
        response_framing(close, b"POST"),
        Ok(ResponseBody::CloseDelimited)
    );
    let not_last = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    assert_eq!(
        response_framing(not_last, b"POST"),
        Ok(ResponseBody::CloseDelimited)
    );
    let gzip_chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(
        response_framing(gzip_chunked, b"POST"),
        Err(HttpError::UnsupportedTransferEncoding)
    );
}

#[test]
fn response_smuggling_shapes_are_rejected() {
    let both = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(status_of(response_framing(both, b"GET")), 400);
    let differing = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
    assert_eq!(status_of(response_framing(differing, b"GET")), 400);
    let malformed = b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n";
    assert_eq!(status_of(response_framing(malformed, b"GET")), 400);
    let http10_te = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(status_of(response_framing(http10_te, b"GET")), 400);
}

#[test]
fn response_keep_alive() {
    let raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    match ResponseHead::parse(raw) {
        Ok(Some(h)) => assert!(!h.keep_alive(raw)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_status_is_rejected() {
    assert_eq!(
        status_of(ResponseHead::parse(b"HTTP/1.1 20 OK\r\n\r\n")),
        400
    );
    assert_eq!(
        status_of(ResponseHead::parse(b"HTTP/1.1 abc OK\r\n\r\n")),
        400
    );
}

#[test]
fn error_statuses() {
    assert_eq!(HttpError::TooManyHeaders.status(), 431);
    assert_eq!(HttpError::BadFraming("x").status(), 400);
    assert_eq!(HttpError::Malformed("x").status(), 400);
    assert_eq!(HttpError::UnsupportedTransferEncoding.status(), 501);
}

// ---- Host (RFC 9112 §3.2) and the request-target (RFC 9112 §3.2) ----

fn with_host(host: &[u8]) -> Vec<u8> {
    let mut raw = b"POST /mcp-proxy HTTP/1.1\r\nHost: ".to_vec();
    raw.extend_from_slice(host);
    raw.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    raw
}

#[test]
fn http11_request_without_host_is_400() {
    for raw in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"POST /mcp-proxy HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        // A header that merely ends in "host" is not Host.
        b"GET / HTTP/1.1\r\nX-Forwarded-Host: a.example\r\n\r\n",
        // Absolute-form still needs the field (RFC 9112 §3.2: a client MUST send it).
        b"GET http://a.example/ HTTP/1.1\r\n\r\n",
    ] {
        let result = RequestHead::parse(raw);
        assert_eq!(
            result,
            Err(HttpError::Malformed("missing host field")),
            "{}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(status_of(result), 400);
    }
}

#[test]
fn http10_request_without_host_is_accepted() {
    let raw = b"GET /mcp-proxy HTTP/1.0\r\n\r\n";
    let head = request(raw);
    assert_eq!(head.host(raw), Ok(None));
}

#[test]
fn two_host_fields_are_400_even_identical_and_in_http10() {
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nHOST: a.example\r\nX-A: 1\r\nHost: a.example\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        assert_eq!(
            RequestHead::parse(raw),
            Err(HttpError::Malformed("more than one host field")),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn invalid_host_values_are_400() {
    for bad in [
        &b"bad host/x"[..],
        b"a b",
        b"a\tb",
        b"a/b",
        b"a?b",
        b"a#b",
        b"user@a.example",
        b"a,b",
        b"a\"b",
        b"a<b>",
        b"a\\b",
        b"a|b",
        b"a^b",
        b"a{b}",
        b"a`b",
        b"caf\xc3\xa9.example",
        b"",
        b":80",
        b"a.example:8o",
        b"a.example:80:81",
        b"a.example:-1",
        b"a%2",
        b"a%zz",
        b"[::1",
        b"::1",
        b"[::1]x",
        b"[::1]:x",
        b"[zz::1]",
        b"[]",
        b"[fe80::1%25eth0]",
        b"[v1.]",
        b"[vz.a]",
        b"[1.2.3.4]",
    ] {
        let raw = with_host(bad);
        assert_eq!(
            RequestHead::parse(&raw),
            Err(HttpError::Malformed("invalid host field")),
            "Host: {:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn valid_host_values_are_accepted() {
    for good in [
        &b"a.example"[..],
        b"A.Example",
        b"a.example:8080",
        b"a.example:",
        b"127.0.0.1",
        b"127.0.0.1:8080",
        b"[::1]",
        b"[::1]:8080",
        b"[2001:db8::ffff:1.2.3.4]:443",
        b"[v1.fe80::a+b]",
        b"xn--bcher-kva.example",
        b"my_host-1.internal",
        b"%41.example",
        b"a~b!$&'()*+;=.example",
        b"localhost",
    ] {
        let raw = with_host(good);
        let head = request(&raw);
        assert_eq!(
            head.host(&raw),
            Ok(Some(good)),
            "Host: {:?}",
            String::from_utf8_lossy(good)
        );
    }
}

#[test]
fn fragment_in_the_request_target_is_400() {
    for target in [
        &b"/mcp-proxy#frag"[..],
        b"/mcp-proxy?x=1#frag",
        b"/#",
        b"#",
        b"http://a.example/mcp#f",
    ] {
        let mut raw = b"POST ".to_vec();
        raw.extend_from_slice(target);
        raw.extend_from_slice(b" HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n\r\n");
        let result = RequestHead::parse(&raw);
        assert_eq!(
            result,
            Err(HttpError::Malformed("fragment in the request target")),
            "{}",
            String::from_utf8_lossy(target)
        );
        assert_eq!(status_of(result), 400);
    }
}

#[test]
fn request_target_must_be_one_of_the_four_forms() {
    let cases: &[(&[u8], &[u8], Option<&str>)] = &[
        (b"POST", b"/mcp-proxy", None),
        (b"POST", b"/mcp-proxy/x?y=%2F", None),
        (b"POST", b"http://a.example/mcp-proxy", None),
        (b"POST", b"HTTP://a.example", None),
        (b"GET", b"urn:x-y.z+w:1", None),
        (b"OPTIONS", b"*", None),
        (b"CONNECT", b"a.example:443", None),
        (b"POST", b"mcp-proxy", Some("invalid request target")),
        (b"POST", b"a_example:443", Some("invalid request target")),
        (b"POST", b"1http://a/", Some("invalid request target")),
        (b"POST", b"*", Some("invalid request target")),
        (b"GET", b"?x=1", Some("invalid request target")),
        (
            b"POST",
            b"/mcp-proxy/caf\xc3\xa9",
            Some("non-ASCII byte in the request target"),
        ),
    ];
    for (method, target, refusal) in cases {
        let mut raw = method.to_vec();
        raw.push(b' ');
        raw.extend_from_slice(target);
        raw.extend_from_slice(b" HTTP/1.1\r\nHost: a.example\r\n\r\n");
        let result = RequestHead::parse(&raw);
        let what = String::from_utf8_lossy(&raw[..raw.len() - 4]).into_owned();
        match refusal {
            None => assert_eq!(request(&raw).target(&raw), *target, "{what}"),
            Some(why) => assert_eq!(result, Err(HttpError::Malformed(why)), "{what}"),
        }
    }
}
