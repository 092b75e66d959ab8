//! Legacy HTTP+SSE upstreams (2024-11-05 transport) of virtual APIs: one connection per
//! configured upstream, shared by every client session of its API and multiplexed by
//! `super::shared` (gateway-owned ids and progress tokens, supervisor with backoff). Why shared:
//! a legacy session lives exactly as long as its GET stream, and a session id the gateway hands
//! out must be servable by any worker, so the stream cannot belong to one client's session.
//!
//! This module owns what is the transport's own, in blocking std I/O on the link's threads (never
//! on a worker, and not the hot path): the GET of the SSE URL (`Accept: text/event-stream`,
//! chunked or close-delimited, plain TCP or rustls' blocking `StreamOwned` for https), the
//! `endpoint` event resolved against the URL (another origin is refused, as the SDKs do), the
//! writer thread POSTing each message to it on one kept-alive connection (2xx expected; a failed
//! POST ends the connection, so its waiters fail at once rather than at `call_timeout`), and the
//! `message` events read into `shared::Link::dispatch`. An event larger than the API's
//! `max_line_bytes` ends the connection (it is reconnected), as an oversized stdio line does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::shared::{Connector, Hangup, Link, INIT_TIMEOUT};
use crate::config::virtual_server::Transport;
use crate::urls::{ParsedUrl, Scheme};

/// To resolve the host and to open one TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One POST's exchange (the SDKs answer 202 at once; the answer itself comes on the stream).
const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response head, and largest POST answer body read (then dropped).
const MAX_HEAD: usize = 64 * 1024;
const MAX_POST_BODY: u64 = 64 * 1024;
/// TCP keep-alive on the GET stream: an idle stream is normal (no keep-alive events are required
/// of a legacy server), a vanished peer is noticed by the kernel.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// Why one connection of an SSE link ended (logged by the supervisor, which reconnects).
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("URL `{0}`: {1}")]
    Url(String, String),
    #[error("{0}")]
    Resolve(#[from] crate::dns::ResolveError),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0} answered HTTP {1}")]
    Status(&'static str, u16),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("the GET answer is not an event stream (content-type `{0}`)")]
    NotEventStream(String),
    #[error("the stream ended before its `endpoint` event")]
    NoEndpoint,
    #[error("endpoint `{0}`: {1}")]
    Endpoint(String, String),
    #[error("an event or line of more than {0} bytes (max_line_bytes); reconnecting")]
    TooLarge(usize),
    /// What the shared link refused (initialize refused or unanswered, a write that failed).
    #[error("{0}")]
    Link(String),
}

/// The link serving `api`'s SSE upstream `upstream` at `url`, if the configuration has it.
pub fn link(api: &str, upstream: &str, url: &str) -> Option<Arc<Link>> {
    super::shared::link(
        api,
        upstream,
        &Transport::Sse {
            url: url.to_owned(),
        },
    )
}

/// How an SSE link connects: GET its URL.
pub struct SseConnector {
    url: String,
}

impl SseConnector {
    pub fn new(url: String) -> Self {
        SseConnector { url }
    }
}

impl Hangup for TcpStream {
    fn hang_up(&mut self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Connector for SseConnector {
    fn kind(&self) -> &'static str {
        "sse"
    }

    fn run_once(&self, link: &Link) -> Result<(), String> {
        self.connect_and_read(link).map_err(|e| e.to_string())
    }
}

impl SseConnector {
    /// One life of the stream. `Ok`: the server ended it.
    fn connect_and_read(&self, link: &Link) -> Result<(), SseError> {
        let sse_url = parse(&self.url)?;
        let (mut stream, socket) = connect(&sse_url)?;
        // Until the upstream is initialized a silent server is an error; afterwards silence is
        // normal (cleared below).
        socket.set_read_timeout(Some(INIT_TIMEOUT))?;
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(Duration::from_secs(10));
        let _ = socket2::SockRef::from(&socket).set_tcp_keepalive(&keepalive);
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\
             User-Agent: mcpgate/{}\r\n\r\n",
            sse_url.target(),
            sse_url.authority,
            env!("CARGO_PKG_VERSION")
        );
        stream.write_all(request.as_bytes())?;
        stream.flush()?;
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader)?;
        if head.status != 200 {
            return Err(SseError::Status("GET", head.status));
        }
        let content_type = head.header("content-type").unwrap_or_default();
        if !content_type
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
        {
            return Err(SseError::NotEventStream(content_type.to_owned()));
        }
        let body = Body::new(reader, head.framing(), u64::MAX);
        let mut events = Events::new(BufReader::new(body), link.max_line);

        // The first event names where to POST.
        let endpoint = loop {
            match events.next()? {
                None => return Err(SseError::NoEndpoint),
                Some((name, data)) if name == "endpoint" => break data,
                Some(_) => continue,
            }
        };
        let post_url = resolve_endpoint(&self.url, endpoint.trim())?;
        let (out, to_post) = mpsc::channel::<Vec<u8>>();
        let hangup = socket.try_clone()?;
        let on_failure = socket.try_clone()?;
        let label = link.label.clone();
        std::thread::Builder::new()
            .name("sse-post".into())
            .spawn(move || {
                let mut poster = Poster {
                    url: post_url,
                    conn: None,
                };
                for message in to_post {
                    if let Err(e) = poster.post(&message) {
                        // The stream's waiters fail at once (the supervisor reconnects).
                        crate::warn!("sse upstream {label}: POST failed: {e}; reconnecting");
                        let _ = on_failure.shutdown(Shutdown::Both);
                        break;
                    }
                }
            })?;
        if !link.attach(out, Box::new(hangup)).map_err(SseError::Link)? {
            return Ok(());
        }
        let init_deadline = Instant::now() + INIT_TIMEOUT;
        let mut waiting_init = true;
        while let Some((name, data)) = events.next()? {
            if name != "message" {
                continue;
            }
            match serde_json::from_str::<Value>(&data) {
                Ok(message) => link
                    .dispatch(message, init_deadline)
                    .map_err(SseError::Link)?,
                Err(_) => crate::debug!("sse upstream {}: an event that is not JSON", link.label),
            }
            if waiting_init && link.init().is_some() {
                waiting_init = false;
                socket.set_read_timeout(None)?;
            }
        }
        Ok(())
    }
}

fn parse(url: &str) -> Result<ParsedUrl, SseError> {
    crate::urls::parse(url).map_err(|e| SseError::Url(url.to_owned(), e.to_string()))
}

/// The `endpoint` event's URI (relative or absolute) resolved against the SSE URL; another
/// origin is refused (the SDK clients refuse it too: the stream's server must own the endpoint).
fn resolve_endpoint(sse_url: &str, endpoint: &str) -> Result<ParsedUrl, SseError> {
    let bad = |why: String| SseError::Endpoint(endpoint.to_owned(), why);
    let base = url::Url::parse(sse_url).map_err(|e| bad(e.to_string()))?;
    let joined = base.join(endpoint).map_err(|e| bad(e.to_string()))?;
    if joined.origin() != base.origin() {
        return Err(bad("on another origin than the SSE URL".into()));
    }
    crate::urls::parse(joined.as_str()).map_err(|e| bad(e.to_string()))
}

/// A plain or TLS connection (blocking).
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Connects to `url`'s host (https: TLS checked against the control-plane trust store, like the
/// Streamable HTTP legs); also a handle on the socket for timeouts and hang-up.
fn connect(url: &ParsedUrl) -> Result<(Stream, TcpStream), SseError> {
    let addrs = crate::dns::resolve_blocking(&url.host, url.port, CONNECT_TIMEOUT)?;
    let mut last = None;
    let mut socket = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(e) => last = Some((*addr, e)),
        }
    }
    let socket = match (socket, last) {
        (Some(s), _) => s,
        (None, Some((addr, e))) => return Err(SseError::Connect(addr.to_string(), e)),
        (None, None) => {
            return Err(SseError::Connect(
                url.authority.clone(),
                std::io::ErrorKind::AddrNotAvailable.into(),
            ))
        }
    };
    let _ = socket.set_nodelay(true);
    let handle = socket.try_clone()?;
    let stream = match url.scheme {
        Scheme::Http => Stream::Plain(socket),
        Scheme::Https => {
            let config = crate::engine::http_client::tls_config()
                .map_err(|e| SseError::Tls(e.to_string()))?;
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| SseError::Tls(e.to_string()))?;
            let conn = rustls::ClientConnection::new(config, name)
                .map_err(|e| SseError::Tls(e.to_string()))?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, socket)))
        }
    };
    Ok((stream, handle))
}

/// A response head: the status and the header fields (names lowercased).
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn framing(&self) -> Framing {
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(n) = self
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
        {
            Framing::Length(n)
        } else {
            Framing::Close
        }
    }

    fn keeps_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
            && !matches!(self.framing(), Framing::Close)
    }
}

/// Reads a response head (at most `MAX_HEAD` bytes).
fn read_head(r: &mut impl BufRead) -> Result<Head, SseError> {
    let mut total = 0;
    let mut line = Vec::new();
    let mut status = None;
    let mut headers = Vec::new();
    loop {
        line.clear();
        let n = r
            .take((MAX_HEAD - total) as u64)
            .read_until(b'\n', &mut line)?;
        total += n;
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(SseError::Malformed("the head ended early or is too large"));
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| SseError::Malformed("a head that is not text"))?
            .trim_end_matches(['\r', '\n']);
        if status.is_none() {
            let mut parts = text.split(' ');
            let version = parts.next().unwrap_or_default();
            if !version.starts_with("HTTP/1.") {
                return Err(SseError::Malformed("not an HTTP/1.x status line"));
            }
            status = Some(
                parts
                    .next()
                    .and_then(|c| c.parse::<u16>().ok())
                    .ok_or(SseError::Malformed("no status code"))?,
            );
            continue;
        }
        if text.is_empty() {
            break;
        }
        let (name, value) = text
            .split_once(':')
            .ok_or(SseError::Malformed("a header line without `:`"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    match status {
        // 1xx (100 Continue) is never asked for; a server sending one anyway is refused.
        Some(status) if status >= 200 => Ok(Head { status, headers }),
        _ => Err(SseError::Malformed("an interim or missing status")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked,
    Length(u64),
    Close,
}

/// A response body read through its framing: `Read` ends at the body's end.
struct Body<R: BufRead> {
    inner: R,
    framing: Framing,
    /// Bytes left in the current chunk (chunked) or in the body (length).
    left: u64,
    /// Chunked: whether the next read starts a new chunk (its size line).
    at_chunk_start: bool,
    done: bool,
    /// Largest chunk-size accepted (a POST answer is small; a stream is bounded by its events).
    max_chunk: u64,
}

impl<R: BufRead> Body<R> {
    fn new(inner: R, framing: Framing, max_chunk: u64) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Body {
            inner,
            framing,
            left,
            at_chunk_start: true,
            done: matches!(framing, Framing::Length(0)),
            max_chunk,
        }
    }

    fn into_inner(self) -> R {
        self.inner
    }

    /// Reads what fits in `buf` of the `left` bytes still due; the connection ending first is
    /// an error (the framing promised more).
    fn read_left(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }

    fn chunk_line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        (&mut self.inner).take(4096).read_until(b'\n', &mut line)?;
        if line.last() != Some(&b'\n') {
            return Err(bad_data("a chunk-size line that is cut or too long"));
        }
        Ok(line)
    }
}

fn bad_data(why: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        match self.framing {
            Framing::Close => self.inner.read(buf),
            Framing::Length(_) => {
                let n = self.read_left(buf)?;
                self.done = self.left == 0;
                Ok(n)
            }
            Framing::Chunked => {
                if self.at_chunk_start {
                    if self.inner.fill_buf()?.is_empty() {
                        // Closed between chunks, without the last chunk: the stream ended (a
                        // server killed, a proxy timing out), which is no framing error.
                        self.done = true;
                        return Ok(0);
                    }
                    let line = self.chunk_line()?;
                    let text = std::str::from_utf8(&line).map_err(|_| bad_data("chunk size"))?;
                    let size = text.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(size, 16).map_err(|_| bad_data("chunk size"))?;
                    if size > self.max_chunk {
                        return Err(bad_data("a chunk larger than allowed"));
                    }
                    if size == 0 {
                        // Trailers, up to the blank line.
                        while self.chunk_line()?.trim_ascii() != b"" {}
                        self.done = true;
                        return Ok(0);
                    }
                    self.left = size;
                    self.at_chunk_start = false;
                }
                let n = self.read_left(buf)?;
                if self.left == 0 {
                    if self.chunk_line()?.trim_ascii() != b"" {
                        return Err(bad_data("chunk data not followed by CRLF"));
                    }
                    self.at_chunk_start = true;
                }
                Ok(n)
            }
        }
    }
}

/// The events of an SSE body (WHATWG framing: `event`, `data` lines joined with `\n`, comments
/// skipped, a blank line dispatches), each line and each event's data bounded by `max`.
struct Events<R: BufRead> {
    r: R,
    max: usize,
    line: Vec<u8>,
}

impl<R: BufRead> Events<R> {
    fn new(r: R, max: usize) -> Self {
        Events {
            r,
            max,
            line: Vec::new(),
        }
    }

    /// The next event with data: (its type, `message` when not named; its data). `None`: the
    /// stream ended.
    fn next(&mut self) -> Result<Option<(String, String)>, SseError> {
        let mut name = String::new();
        let mut data = String::new();
        let mut has_data = false;
        // A line may hold `data: ` and a line end around `max` bytes of data.
        let line_max = self.max.saturating_add(16);
        loop {
            self.line.clear();
            let n = (&mut self.r)
                .take(line_max as u64 + 1)
                .read_until(b'\n', &mut self.line)?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.last() != Some(&b'\n') && self.line.len() > line_max {
                return Err(SseError::TooLarge(self.max));
            }
            let text = String::from_utf8_lossy(&self.line);
            let text = text.trim_end_matches('\n').trim_end_matches('\r');
            if text.is_empty() {
                if has_data {
                    if name.is_empty() {
                        name.push_str("message");
                    }
                    return Ok(Some((name, data)));
                }
                name.clear();
                continue;
            }
            if text.starts_with(':') {
                continue;
            }
            let (field, value) = match text.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (text, ""),
            };
            match field {
                "event" => value.clone_into(&mut name),
                "data" => {
                    if has_data {
                        data.push('\n');
                    }
                    data.push_str(value);
                    has_data = true;
                    if data.len() > self.max {
                        return Err(SseError::TooLarge(self.max));
                    }
                }
                // `id` and `retry`: a legacy stream cannot be resumed; nothing to keep.
                _ => {}
            }
        }
    }
}

/// The writer thread's client: each message POSTed to the endpoint on one kept-alive
/// connection.
struct Poster {
    url: ParsedUrl,
    conn: Option<BufReader<Stream>>,
}

impl Poster {
    fn post(&mut self, body: &[u8]) -> Result<(), SseError> {
        // A kept-alive connection the server closed meanwhile fails at once: one more try on a
        // fresh one (a fresh connection's failure is the answer).
        let reused = self.conn.is_some();
        match self.post_once(body) {
            Err(SseError::Io(_) | SseError::Malformed(_)) if reused => {
                self.conn = None;
                self.post_once(body)
            }
            other => other,
        }
    }

    fn post_once(&mut self, body: &[u8]) -> Result<(), SseError> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let (stream, socket) = connect(&self.url)?;
                socket.set_read_timeout(Some(POST_TIMEOUT))?;
                socket.set_write_timeout(Some(POST_TIMEOUT))?;
                BufReader::new(stream)
            }
        };
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
            self.url.target(),
            self.url.authority,
            body.len()
        );
        let stream = conn.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        let answer = read_head(&mut conn)?;
        let framing = answer.framing();
        if framing == Framing::Close {
            // Nothing more comes on it; the body (if any) is not needed.
            if !(200..300).contains(&answer.status) {
                return Err(SseError::Status("POST", answer.status));
            }
            return Ok(());
        }
        // Read the body out (bounded) so the connection can carry the next POST.
        let mut rest = Body::new(conn, framing, MAX_POST_BODY);
        std::io::copy(&mut (&mut rest).take(MAX_POST_BODY), &mut std::io::sink())?;
        let complete = rest.done;
        if !(200..300).contains(&answer.status) {
            return Err(SseError::Status("POST", answer.status));
        }
        // A body past the bound was not read out: that connection cannot carry another POST.
        if complete && answer.keeps_alive() {
            self.conn = Some(rest.into_inner());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str, max: usize) -> Vec<Result<Option<(String, String)>, String>> {
        let mut e = Events::new(text.as_bytes(), max);
        let mut out = Vec::new();
        loop {
            let next = e.next().map_err(|e| e.to_string());
            let end = !matches!(next, Ok(Some(_)));
            out.push(next);
            if end {
                return out;
            }
        }
    }

    #[test]
    fn events_are_framed_like_whatwg_says() {
        let got = events(
            ": keepalive\r\nevent: endpoint\r\ndata: /messages?sessionId=1\r\n\r\n\
             id: 3\ndata: {\"a\":\ndata: 1}\n\n",
            1024,
        );
        assert_eq!(
            got,
            [
                Ok(Some(("endpoint".into(), "/messages?sessionId=1".into()))),
                Ok(Some(("message".into(), "{\"a\":\n1}".into()))),
                Ok(None),
            ]
        );
    }

    #[test]
    fn an_event_larger_than_the_limit_ends_the_stream() {
        let long = format!("data: {}\n\n", "x".repeat(40));
        let got = events(&long, 16);
        assert!(
            matches!(&got[0], Err(e) if e.contains("more than 16 bytes")),
            "{got:?}"
        );
        // Many small data lines add up past the limit too.
        let many = "data: 1234567\n".repeat(4) + "\n";
        let got = events(&many, 16);
        assert!(
            matches!(&got[0], Err(e) if e.contains("more than 16 bytes")),
            "{got:?}"
        );
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT";
        let mut body = Body::new(&wire[..], Framing::Chunked, 1024);
        let mut out = String::new();
        body.read_to_string(&mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "hello world");
        assert!(body.done);
        assert_eq!(body.into_inner(), b"NEXT");
        let mut bad = Body::new(&b"zz\r\n"[..], Framing::Chunked, 1024);
        assert!(bad.read_to_string(&mut out).is_err());
    }

    #[test]
    fn endpoints_resolve_against_the_sse_url_on_its_origin_only() {
        let ok = resolve_endpoint("http://127.0.0.1:9/sse", "/message?sessionId=abc")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (ok.authority.as_str(), ok.target().as_str()),
            ("127.0.0.1:9", "/message?sessionId=abc")
        );
        let relative = resolve_endpoint("http://h:9/base/sse", "messages/?session_id=1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(relative.target(), "/base/messages/?session_id=1");
        let other = resolve_endpoint("http://h:9/sse", "http://evil:9/message");
        assert!(
            matches!(&other, Err(e) if e.to_string().contains("another origin")),
            "{other:?}"
        );
    }

    #[test]
    fn response_heads_are_read() {
        let mut r = &b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\nX: y\r\n\r\nAccepted"[..];
        let head = read_head(&mut r).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.status, 202);
        assert_eq!(head.framing(), Framing::Length(8));
        assert!(head.keeps_alive());
        let mut r = &b"garbage\r\n\r\n"[..];
        assert!(read_head(&mut r).is_err());
    }
}
