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

use std::net::SocketAddr;

use mcpgate_codec::http::{HeadWriter, RequestHead, ResponseHead};

/// What the proxy hop needs to know to write the upstream request head.
pub struct UpstreamRequest<'a> {
    pub target: &'a [u8],
    pub host: &'a str,
    pub peer: SocketAddr,
    /// `Some(len)` when the body is re-framed (a chunked client body forwarded with its length).
    pub reframed_body_len: Option<usize>,
    /// Credential headers that stay at the gateway (the API has plans: the gateway is the
    /// resource server): `authorization` and the API-key plans' headers.
    pub strip_headers: &'a [String],
    /// The upstream's session id to send instead of the (sealed) one the client presented.
    pub session_id: Option<&'a [u8]>,
}

/// Writes the upstream request head for the client request `head` (parsed from `buf`) into `out`.
pub fn write_upstream_request(
    buf: &[u8],
    head: &RequestHead,
    req: &UpstreamRequest<'_>,
    out: &mut Vec<u8>,
) {
    let peer_ip = req.peer.ip().to_string();
    let xff = match head.header(buf, "x-forwarded-for") {
        Some(prev) if !prev.is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + peer_ip.len());
            v.extend_from_slice(prev);
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
        .set("x-forwarded-proto", b"http");
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
    writer.write(out);
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
pub fn write_client_response(
    buf: &[u8],
    head: &ResponseHead,
    framing: ClientFraming,
    event_stream: bool,
    close: bool,
    out: &mut Vec<u8>,
) {
    let mut writer = HeadWriter::response(buf, head).remove_hop_by_hop();
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
        let strip = ["authorization".to_owned(), "x-api-key".to_owned()];
        let req = UpstreamRequest {
            target: b"/mcp",
            host: "up",
            peer: "10.1.2.3:5555".parse().unwrap_or_else(|_| unreachable!()),
            reframed_body_len: None,
            strip_headers: &strip,
            session_id: Some(b"upstream-1"),
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
        write_client_response(buf, &head, framing, sse, close, &mut out);
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
}
