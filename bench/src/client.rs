//! The MCP client side shared by the load generator and the side-by-side driver: where a request
//! goes (`Target`), how its head is built, one request/response exchange on a keep-alive
//! connection, and the `initialize` + `notifications/initialized` handshake that opens a session.
//! The driver uses the handshake itself before handing a session id to a load generator that cannot
//! do it (wrk), and to read an origin's `tools/list` catalogue once before a run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use monoio::net::TcpStream;

use crate::http::{parse_response_head, ResponseHead};
use crate::mcp::{initialize_body, initialized_notification, PROTOCOL_VERSION};
use crate::net::{BufConn, ConnError};
use crate::runtime::{block_on, Driver};

/// Where requests go: resolved address, `Host` value, origin-form target (path and query) and
/// the extra header lines every request carries.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    /// Path and query, e.g. `/mcp-proxy?answer=sse`.
    pub path: String,
    /// Extra header lines, each ending in CRLF.
    pub extra_headers: String,
}

impl Target {
    /// `http://host:port/path?query` (only plain http; a missing port means 80).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .context("only http:// URLs are supported")?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let with_port = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to nothing"))?;
        Ok(Self {
            addr,
            host: authority.to_owned(),
            path,
            extra_headers: String::new(),
        })
    }

    /// Adds a `Name: value` header line to every request.
    pub fn add_header(&mut self, line: &str) -> anyhow::Result<()> {
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("header {line:?} is not \"Name: value\""))?;
        let _ = write!(self.extra_headers, "{}: {}\r\n", name.trim(), value.trim());
        Ok(())
    }
}

/// The fixed part of every request head, up to `Content-Length: `.
pub fn request_prefix(target: &Target, session: Option<&str>) -> Vec<u8> {
    let mut p = Vec::new();
    let _ = write!(
        p,
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n",
        target.path, target.host
    );
    if let Some(s) = session {
        let _ = write!(p, "Mcp-Session-Id: {s}\r\n");
    }
    p.extend_from_slice(target.extra_headers.as_bytes());
    p.extend_from_slice(b"Content-Length: ");
    p
}

/// A whole request: `prefix`, the length, the blank line and `body`, into `out`.
pub fn build_request(prefix: &[u8], body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(prefix);
    let _ = write!(out, "{}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}

/// One request/response exchange on `conn`; returns the response head and whether the
/// connection may be reused. `payload` receives the (de-chunked) body.
pub async fn exchange(
    conn: &mut BufConn,
    req: Vec<u8>,
    payload: &mut Vec<u8>,
) -> (Result<(ResponseHead, bool), ConnError>, Vec<u8>) {
    let (res, req) = conn.write_all(req).await;
    if let Err(e) = res {
        return (Err(e.into()), req);
    }
    let result = async {
        let head = conn.read_head(|b| parse_response_head(b, false)).await?;
        payload.clear();
        let reusable = conn
            .read_body(head.len, head.framing, Some(payload))
            .await?
            && !head.close;
        Ok((head, reusable))
    }
    .await;
    (result, req)
}

/// A keep-alive connection with Nagle off, as every client of the harness uses.
pub async fn connect(addr: SocketAddr) -> std::io::Result<BufConn> {
    let s = TcpStream::connect_addr(addr).await?;
    s.set_nodelay(true)?;
    Ok(BufConn::new(s))
}

/// One POST of `body` on `conn` (with `session`), bounded by `timeout`; the head and payload.
async fn post(
    conn: &mut BufConn,
    target: &Target,
    session: Option<&str>,
    body: &[u8],
    timeout: Duration,
    what: &str,
) -> anyhow::Result<(ResponseHead, Vec<u8>)> {
    let mut req = Vec::new();
    build_request(&request_prefix(target, session), body, &mut req);
    let mut payload = Vec::new();
    let (res, _) = monoio::time::timeout(timeout, exchange(conn, req, &mut payload))
        .await
        .with_context(|| format!("{what} timed out"))?;
    let (head, _) = res.with_context(|| format!("{what} exchange"))?;
    Ok((head, payload))
}

/// `initialize` + `notifications/initialized` on `conn`, as a client would; the session id.
async fn handshake(
    conn: &mut BufConn,
    target: &Target,
    timeout: Duration,
) -> anyhow::Result<Option<String>> {
    let (head, payload) = post(
        conn,
        target,
        None,
        &initialize_body(0),
        timeout,
        "initialize",
    )
    .await?;
    if head.status != 200 {
        bail!(
            "initialize answered HTTP {}: {}",
            head.status,
            String::from_utf8_lossy(&payload)
        );
    }
    let session = head.session_id;
    let (head, _) = post(
        conn,
        target,
        session.as_deref(),
        &initialized_notification(),
        timeout,
        "notifications/initialized",
    )
    .await?;
    if !(200..300).contains(&head.status) {
        bail!("notifications/initialized answered HTTP {}", head.status);
    }
    Ok(session)
}

/// Opens a session at `target` on its own connection; returns the session id (servers that
/// keep no sessions give none).
pub fn open_session(
    driver: Driver,
    target: &Target,
    timeout: Duration,
) -> anyhow::Result<Option<String>> {
    block_on(driver, async {
        let mut conn = connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        handshake(&mut conn, target, timeout).await
    })?
}

/// Opens a session and sends one more request `body` in it: the session id and the answer's
/// HTTP status and payload (de-chunked; SSE answers still in their `data:` lines).
pub fn session_and_request(
    driver: Driver,
    target: &Target,
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<(Option<String>, u16, Vec<u8>)> {
    block_on(driver, async {
        let mut conn = connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        let session = handshake(&mut conn, target, timeout).await?;
        let (head, payload) = post(
            &mut conn,
            target,
            session.as_deref(),
            body,
            timeout,
            "request",
        )
        .await?;
        Ok((session, head.status, payload))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_query() {
        let t = Target::parse("http://127.0.0.1:8080/mcp-proxy?answer=sse").unwrap_or_else(|e| {
            panic!("{e}");
        });
        assert_eq!(t.path, "/mcp-proxy?answer=sse");
        assert_eq!(t.host, "127.0.0.1:8080");
        let t = Target::parse("http://127.0.0.1:8080?x=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.path, "/?x=1");
        assert!(Target::parse("https://127.0.0.1/").is_err());
    }

    #[test]
    fn request_heads_carry_session_and_extra_headers() {
        let mut t = Target::parse("http://127.0.0.1:1/mcp").unwrap_or_else(|e| panic!("{e}"));
        t.add_header("Authorization:  Bearer x ")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut req = Vec::new();
        build_request(&request_prefix(&t, Some("s1")), b"{}", &mut req);
        let text = String::from_utf8_lossy(&req);
        assert!(text.starts_with("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"));
        assert!(text.contains("Mcp-Session-Id: s1\r\nAuthorization: Bearer x\r\n"));
        assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"));
    }
}
