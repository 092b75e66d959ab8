//! The head rewrites of one proxy hop, kept apart from I/O so they can be tested byte for byte.
//!
//! Request (client → upstream): new request-target, hop-by-hop fields dropped (the codec's list plus
//! every field named in `Connection`), `Expect` dropped (the gateway answers `100-continue` itself),
//! `Host` set to the upstream's, `X-Forwarded-For` appended, `X-Forwarded-Proto` and
//! `X-Forwarded-Host` set; every other end-to-end field (`Mcp-Session-Id`, `MCP-Protocol-Version`,
//! `Last-Event-ID`, `Accept`, `Content-Type`, `Authorization`, ...) is copied verbatim.
//!
//! Response (upstream → client): hop-by-hop fields dropped, framing re-declared for the client
//! connection, `X-Accel-Buffering: no` on event streams.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mcpgate_codec::http::{HeadWriter, RequestHead, ResponseHead};
use smallvec::SmallVec;

/// What the proxy hop needs to know to write the upstream request head.
pub struct UpstreamRequest<'a> {
    pub target: &'a [u8],
    pub host: &'a str,
    pub peer: SocketAddr,
    /// `Some(len)` when the body is re-framed (a chunked client body forwarded with its length).
    pub reframed_body_len: Option<usize>,
    /// Credential headers that stay at the gateway (the API has plans: the gateway is the
    /// resource server): `authorization` and the API-key plans' headers.
    pub strip_headers: &'a [&'a str],
    /// The upstream's session id to send instead of the (sealed) one the client presented.
    pub session_id: Option<&'a [u8]>,
    /// The client connection is TLS: `X-Forwarded-Proto: https`.
    pub https: bool,
    /// The exchange's id (`X-Request-Id`: the client's when it was kept, else the gateway's).
    pub request_id: &'a [u8],
    /// The `traceparent` naming the gateway's upstream span, when the exchange is traced (else
    /// the client's, if any, goes through untouched).
    pub traceparent: Option<&'a [u8]>,
}

/// Inline room for an `X-Forwarded-For` value: a short incoming chain plus the peer address
/// (longer chains spill to the heap).
type XffValue = SmallVec<[u8; 128]>;

/// Writes the upstream request head for the client request `head` (parsed from `buf`) into `out`.
pub fn write_upstream_request(
    buf: &[u8],
    head: &RequestHead,
    req: &UpstreamRequest<'_>,
    out: &mut Vec<u8>,
) {
    // The first X-Forwarded-For and Host fields (like `head.header`), found in one pass.
    let (mut prev_xff, mut client_host) = (None, None);
    for (name, value) in head.headers(buf) {
        if prev_xff.is_none() && name.eq_ignore_ascii_case(b"x-forwarded-for") {
            prev_xff = Some(value);
        } else if client_host.is_none() && name.eq_ignore_ascii_case(b"host") {
            client_host = Some(value);
        }
    }
    // Formatted on the stack: `to_string` went through `core::fmt` and two heap buffers.
    let mut xff = XffValue::new();
    if let Some(prev) = prev_xff.filter(|p| !p.is_empty()) {
        xff.extend_from_slice(prev);
        xff.extend_from_slice(b", ");
    }
    push_ip(req.peer.ip(), &mut xff);
    let mut len_digits = [0u8; 20];
    // Edits in place: a `writer = writer.set(..)` chain moves the whole writer (736 bytes) at
    // each step.
    let mut writer = HeadWriter::request(buf, head)
        .target(req.target)
        .remove_hop_by_hop();
    writer.remove_mut("expect");
    writer.set_mut("host", req.host.as_bytes());
    writer.set_mut("x-forwarded-for", &xff);
    writer.set_mut(
        "x-forwarded-proto",
        if req.https { b"https" } else { b"http" },
    );
    if let Some(host) = client_host {
        writer.set_mut("x-forwarded-host", host);
    }
    if let Some(len) = req.reframed_body_len {
        writer.set_mut("content-length", decimal(len, &mut len_digits));
    }
    for name in req.strip_headers {
        writer.remove_mut(name);
    }
    if let Some(id) = req.session_id {
        writer.set_mut("mcp-session-id", id);
    }
    writer.set_mut("x-request-id", req.request_id);
    if let Some(tp) = req.traceparent {
        writer.set_mut("traceparent", tp);
    }
    writer.write(out);
}

/// Appends `ip` as `IpAddr`'s `Display` writes it. IPv4 (nearly every peer) by hand; IPv6
/// through `fmt`, whose zero-run compression and `::ffff:a.b.c.d` form are not worth repeating.
fn push_ip(ip: IpAddr, out: &mut XffValue) {
    match ip {
        IpAddr::V4(v4) => push_ipv4(v4, out),
        IpAddr::V6(v6) => {
            // Writing into a SmallVec cannot fail; `Display` of an address returns only what
            // the writer does.
            let _ = write!(SmallVecWriter(out), "{v6}");
        }
    }
}

fn push_ipv4(ip: Ipv4Addr, out: &mut XffValue) {
    let mut text = [0u8; 15]; // "255.255.255.255"
    let mut len = 0;
    for octet in ip.octets() {
        if len > 0 {
            text[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            text[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            text[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        text[len] = b'0' + octet % 10;
        len += 1;
    }
    out.extend_from_slice(&text[..len]);
}

/// `fmt::Write` into the X-Forwarded-For buffer.
struct SmallVecWriter<'a>(&'a mut XffValue);

impl std::fmt::Write for SmallVecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `n` in decimal, in the tail of `buf` (20 digits hold `u64::MAX`); returns the digits.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        start -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[start..]
}

/// How the response body is framed towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// The upstream's `Content-Length` (kept) or no body at all.
    AsIs,
    /// `Transfer-Encoding: chunked` (HTTP/1.1 clients, unknown length).
    Chunked,
    /// The body ends when the gateway closes the connection (HTTP/1.0 clients, unknown length).
    Close,
}

/// Writes the client response head for the upstream response `head` (parsed from `buf`).
#[allow(clippy::too_many_arguments)]
pub fn write_client_response(
    buf: &[u8],
    head: &ResponseHead,
    framing: ClientFraming,
    event_stream: bool,
    close: bool,
    request_id: &[u8],
    out: &mut Vec<u8>,
) {
    // Edits in place, as in `write_upstream_request`.
    let mut writer = HeadWriter::response(buf, head).remove_hop_by_hop();
    writer.set_mut("x-request-id", request_id);
    if framing != ClientFraming::AsIs {
        writer.remove_mut("content-length");
    }
    if framing == ClientFraming::Chunked {
        writer.add_mut("transfer-encoding", b"chunked");
    }
    if event_stream {
        writer.set_mut("x-accel-buffering", b"no");
    }
    if close || framing == ClientFraming::Close {
        writer.set_mut("connection", b"close");
    }
    writer.write(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str, reframed: Option<usize>) -> String {
        let buf = raw.as_bytes();
        let head = match RequestHead::parse(buf) {
            Ok(Some(h)) => h,
            other => panic!("test request does not parse: {other:?}"),
        };
        let mut out = Vec::new();
        let req = UpstreamRequest {
            target: b"/mcp/x?y",
            host: "upstream.local:3001",
            peer: "10.1.2.3:5555".parse().unwrap_or_else(|_| unreachable!()),
            reframed_body_len: reframed,
            strip_headers: &[],
            session_id: None,
            https: false,
            request_id: b"rid-1",
            traceparent: None,
        };
        write_upstream_request(buf, &head, &req, &mut out);
        String::from_utf8(out)
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    #[test]
    fn request_rewrite_keeps_mcp_headers_and_drops_hop_by_hop() {
        let out = request(
            "POST /mcp-proxy/x?y HTTP/1.1\r\nHost: gw.example:8080\r\nConnection: keep-alive, x-private\r\n\
             X-Private: 1\r\nKeep-Alive: timeout=5\r\nExpect: 100-continue\r\nMcp-Session-Id: s1\r\n\
             MCP-Protocol-Version: 2025-06-18\r\nLast-Event-ID: e9\r\nAccept: application/json, text/event-stream\r\n\
             Content-Type: application/json\r\nAuthorization: Bearer t\r\nContent-Length: 2\r\n\r\n{}",
            None,
        );
        assert!(out.starts_with("post /mcp/x?y http/1.1\r\n"), "{out}");
        for kept in [
            "mcp-session-id: s1\r\n",
            "mcp-protocol-version: 2025-06-18\r\n",
            "last-event-id: e9\r\n",
            "accept: application/json, text/event-stream\r\n",
            "content-type: application/json\r\n",
            "authorization: bearer t\r\n",
            "content-length: 2\r\n",
            "host: upstream.local:3001\r\n",
            "x-forwarded-for: 10.1.2.3\r\n",
            "x-forwarded-proto: http\r\n",
            "x-forwarded-host: gw.example:8080\r\n",
        ] {
            assert!(out.contains(kept), "missing {kept:?} in {out}");
        }
        for dropped in [
            "connection:",
            "x-private:",
            "keep-alive:",
            "expect:",
            "\r\nhost: gw.example",
        ] {
            assert!(!out.contains(dropped), "{dropped:?} forwarded in {out}");
        }
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn credentials_stripped_and_session_id_replaced_for_apis_with_plans() {
        let raw = "POST /mcp HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer t\r\nX-Api-Key: k\r\n\
                   Mcp-Session-Id: sealed.tag\r\nContent-Length: 0\r\n\r\n";
        let head = match RequestHead::parse(raw.as_bytes()) {
            Ok(Some(h)) => h,
            other => panic!("test request does not parse: {other:?}"),
        };
        let strip = ["authorization", "x-api-key"];
        let req = UpstreamRequest {
            target: b"/mcp",
            host: "up",
            peer: "10.1.2.3:5555".parse().unwrap_or_else(|_| unreachable!()),
            reframed_body_len: None,
            strip_headers: &strip,
            session_id: Some(b"upstream-1"),
            https: false,
            request_id: b"rid-1",
            traceparent: None,
        };
        let mut out = Vec::new();
        write_upstream_request(raw.as_bytes(), &head, &req, &mut out);
        let out = String::from_utf8(out)
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(!out.contains("authorization"), "{out}");
        assert!(!out.contains("x-api-key"), "{out}");
        assert_eq!(out.matches("mcp-session-id").count(), 1, "{out}");
        assert!(out.contains("mcp-session-id: upstream-1\r\n"), "{out}");
    }

    #[test]
    fn forwarded_for_is_appended_and_chunked_body_reframed() {
        let out = request(
            "POST /mcp-proxy HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 1.1.1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            Some(42),
        );
        assert!(
            out.contains("x-forwarded-for: 1.1.1.1, 10.1.2.3\r\n"),
            "{out}"
        );
        assert!(out.contains("content-length: 42\r\n"), "{out}");
        assert!(!out.contains("transfer-encoding"), "{out}");
        assert_eq!(out.matches("x-forwarded-for").count(), 1);
    }

    fn response(raw: &str, framing: ClientFraming, sse: bool, close: bool) -> String {
        let buf = raw.as_bytes();
        let head = match ResponseHead::parse(buf) {
            Ok(Some(h)) => h,
            other => panic!("test response does not parse: {other:?}"),
        };
        let mut out = Vec::new();
        write_client_response(buf, &head, framing, sse, close, b"rid-1", &mut out);
        String::from_utf8(out)
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    #[test]
    fn sse_response_is_rechunked_and_unbuffered() {
        let out = response(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive\r\n\
             Mcp-Session-Id: abc\r\nTransfer-Encoding: chunked\r\n\r\n",
            ClientFraming::Chunked,
            true,
            false,
        );
        assert!(out.starts_with("http/1.1 200 ok\r\n"), "{out}");
        assert_eq!(
            out.matches("transfer-encoding: chunked").count(),
            1,
            "{out}"
        );
        assert!(out.contains("x-accel-buffering: no\r\n"));
        assert!(out.contains("mcp-session-id: abc\r\n"));
        assert!(!out.contains("connection:"), "{out}");
    }

    #[test]
    fn json_response_keeps_length_and_can_close() {
        let out = response(
            "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nKeep-Alive: timeout=5\r\n\r\n",
            ClientFraming::AsIs,
            false,
            true,
        );
        assert!(out.contains("content-length: 0\r\n"), "{out}");
        assert!(out.contains("connection: close\r\n"), "{out}");
        assert!(!out.contains("keep-alive"), "{out}");
        assert!(!out.contains("x-accel"), "{out}");
    }

    fn ip_text(ip: IpAddr) -> String {
        let mut v = XffValue::new();
        push_ip(ip, &mut v);
        String::from_utf8(v.to_vec()).unwrap_or_default()
    }

    #[test]
    fn ip_text_equals_display() {
        let mut ips: Vec<IpAddr> = [
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.4",
            "10.0.0.1",
            "10.1.2.3",
            "100.99.10.9",
            "127.0.0.1",
            "192.168.100.200",
            "::",
            "::1",
            "::ffff:1.2.3.4",
            "::ffff:0.0.0.0",
            "::1.2.3.4",
            "::ffff:0:1.2.3.4",
            "64:ff9b::1.2.3.4",
            "1:2:3:4:5:6:7:8",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8::1",
            "2001:db8:0:0:1:0:0:1",
            "2001:0:0:1:0:0:0:1",
            "fe80::1:0:0:0",
            "1::",
            "0:1:0:1:0:1:0:1",
        ]
        .iter()
        .map(|s| s.parse().unwrap_or_else(|_| panic!("test address {s}")))
        .collect();
        // Every octet value in every position, and pseudo-random v4 and v6 addresses (v6 with
        // runs of zero groups, where `Display` compresses).
        for b in 0..=255u8 {
            ips.push(IpAddr::from([b, 255 - b, b / 3, b.wrapping_mul(7)]));
        }
        let mut x = 0x0123_4567_89ab_cdefu64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ips.push(IpAddr::from((x as u32).to_be_bytes()));
            let mut segments = [0u16; 8];
            for (i, s) in segments.iter_mut().enumerate() {
                if (x >> (32 + i)) & 1 == 1 {
                    *s = (x >> (i * 4)) as u16;
                }
            }
            if x & 3 == 0 {
                segments[..5].fill(0);
                segments[5] = 0xffff;
            }
            ips.push(IpAddr::from(segments));
        }
        for ip in ips {
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn decimal_equals_to_string() {
        let mut buf = [0u8; 20];
        for n in [0, 1, 9, 10, 42, 99, 100, 169, 65_535, 1 << 20, usize::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
        let mut n = 1usize;
        while let Some(next) = n.checked_mul(10) {
            for m in [n - 1, n, n + 1] {
                assert_eq!(decimal(m, &mut buf), m.to_string().as_bytes());
            }
            n = next;
        }
    }

    #[test]
    fn forwarded_for_of_an_ipv6_peer_and_an_empty_incoming_chain() {
        let raw = "POST /mcp HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: \r\nX-Forwarded-For: 9.9.9.9\r\n\r\n";
        let head = match RequestHead::parse(raw.as_bytes()) {
            Ok(Some(h)) => h,
            other => panic!("test request does not parse: {other:?}"),
        };
        let req = UpstreamRequest {
            target: b"/mcp",
            host: "up",
            peer: "[::ffff:10.1.2.3]:5555"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
            reframed_body_len: Some(0),
            strip_headers: &[],
            session_id: None,
            https: false,
            request_id: b"rid-1",
            traceparent: None,
        };
        let mut out = Vec::new();
        write_upstream_request(raw.as_bytes(), &head, &req, &mut out);
        let out = String::from_utf8(out).unwrap_or_default();
        // The first X-Forwarded-For field is the chain (empty here), as before.
        assert!(
            out.contains("x-forwarded-for: ::ffff:10.1.2.3\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("forwarded-for").count(), 1, "{out}");
        assert!(out.contains("content-length: 0\r\n"), "{out}");
        assert!(out.contains("x-forwarded-host: gw\r\n"), "{out}");
    }

    /// `write_upstream_request` as it was before the stack formatting and in-place edits.
    fn reference_upstream_request(
        buf: &[u8],
        head: &RequestHead,
        req: &UpstreamRequest<'_>,
        out: &mut Vec<u8>,
    ) {
        let peer_ip = req.peer.ip().to_string();
        let xff = match head.header(buf, "x-forwarded-for") {
            Some(prev) if !prev.is_empty() => {
                let mut v = prev.to_vec();
                v.extend_from_slice(b", ");
                v.extend_from_slice(peer_ip.as_bytes());
                v
            }
            _ => peer_ip.into_bytes(),
        };
        let len_text;
        let mut writer = HeadWriter::request(buf, head)
            .target(req.target)
            .remove_hop_by_hop()
            .remove("expect")
            .set("host", req.host.as_bytes())
            .set("x-forwarded-for", &xff)
            .set(
                "x-forwarded-proto",
                if req.https { b"https" } else { b"http" },
            );
        if let Some(host) = head.header(buf, "host") {
            writer = writer.set("x-forwarded-host", host);
        }
        if let Some(len) = req.reframed_body_len {
            len_text = len.to_string();
            writer = writer.set("content-length", len_text.as_bytes());
        }
        for name in req.strip_headers {
            writer = writer.remove(name);
        }
        if let Some(id) = req.session_id {
            writer = writer.set("mcp-session-id", id);
        }
        writer = writer.set("x-request-id", req.request_id);
        if let Some(tp) = req.traceparent {
            writer = writer.set("traceparent", tp);
        }
        writer.write(out);
    }

    #[test]
    fn upstream_request_equals_the_reference() {
        let heads = [
            "POST /mcp HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n",
            "POST /mcp HTTP/1.1\r\nhost: gw:80\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\n\r\n",
            "POST /mcp HTTP/1.1\r\nX-Forwarded-For:\r\nHOST: a\r\nConnection: close, x-forwarded-for\r\n\r\n",
            "POST /mcp HTTP/1.0\r\nX-FORWARDED-FOR:  9.9.9.9 , 8.8.8.8 \r\nAuthorization: Bearer t\r\n\r\n",
            "GET /mcp HTTP/1.1\r\nHost: gw\r\nMcp-Session-Id: s\r\nExpect: 100-continue\r\nX-Api-Key: k\r\n\r\n",
        ];
        let peers = [
            "10.1.2.3:1",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:8",
            "[::ffff:1.2.3.4]:9",
            "[2001:db8::8:800:200c:417a]:10",
        ];
        let strip = ["authorization", "X-API-KEY"];
        for raw in heads {
            let head = match RequestHead::parse(raw.as_bytes()) {
                Ok(Some(h)) => h,
                other => panic!("test request does not parse: {other:?}"),
            };
            for peer in peers {
                for reframed in [None, Some(0), Some(42), Some(usize::MAX)] {
                    for (strip_headers, session_id) in
                        [(&strip[..0], None), (&strip[..], Some(&b"up-1"[..]))]
                    {
                        let req = UpstreamRequest {
                            target: b"/up/mcp",
                            host: "upstream:3001",
                            peer: peer.parse().unwrap_or_else(|_| unreachable!()),
                            reframed_body_len: reframed,
                            strip_headers,
                            session_id,
                            https: false,
                            request_id: b"rid-1",
                            traceparent: session_id.map(|_| {
                                &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..]
                            }),
                        };
                        let (mut fast, mut reference) = (Vec::new(), Vec::new());
                        write_upstream_request(raw.as_bytes(), &head, &req, &mut fast);
                        reference_upstream_request(raw.as_bytes(), &head, &req, &mut reference);
                        assert_eq!(
                            String::from_utf8_lossy(&fast),
                            String::from_utf8_lossy(&reference),
                            "{raw:?} from {peer}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn client_response_equals_the_reference() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive, x-a\r\n\
             X-A: 1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nX-Accel-Buffering: yes\r\n\r\n",
        ] {
            let head = match ResponseHead::parse(raw.as_bytes()) {
                Ok(Some(h)) => h,
                other => panic!("test response does not parse: {other:?}"),
            };
            for framing in [
                ClientFraming::AsIs,
                ClientFraming::Chunked,
                ClientFraming::Close,
            ] {
                for (event_stream, close) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    let mut fast = Vec::new();
                    write_client_response(
                        raw.as_bytes(),
                        &head,
                        framing,
                        event_stream,
                        close,
                        b"rid-1",
                        &mut fast,
                    );
                    // As written before the in-place edits.
                    let mut writer = HeadWriter::response(raw.as_bytes(), &head)
                        .remove_hop_by_hop()
                        .set("x-request-id", b"rid-1");
                    if framing != ClientFraming::AsIs {
                        writer = writer.remove("content-length");
                    }
                    if framing == ClientFraming::Chunked {
                        writer = writer.add("transfer-encoding", b"chunked");
                    }
                    if event_stream {
                        writer = writer.set("x-accel-buffering", b"no");
                    }
                    if close || framing == ClientFraming::Close {
                        writer = writer.set("connection", b"close");
                    }
                    let mut reference = Vec::new();
                    writer.write(&mut reference);
                    assert_eq!(
                        fast, reference,
                        "{raw:?} {framing:?} {event_stream} {close}"
                    );
                }
            }
        }
    }
}
