//! A minimal HTTP/1.1 client on monoio for the gateway's own requests: control-plane fetches
//! (JWKS, AS metadata, token introspection, an upstream's protected-resource metadata), one
//! request per connection (`Connection: close`; over TLS, rustls driven sans-IO over the monoio
//! socket), and the virtual server's HTTP legs, whose connections (plain, or the engine's TLS
//! stream) each worker keeps alive (`request_kept_alive`) and whose answers can be read as they
//! arrive (`open_stream`). `https://` is checked against Mozilla's roots plus the PEM file named
//! by `MCPGATE_CA_FILE`; each exchange is bounded by one deadline and a whole body by a size
//! limit.
//! Never used for pass-through traffic. URLs are parsed by `crate::urls` (the `url` crate), the
//! request is written by the codec's `RequestWriter`, and the host is resolved off the worker by
//! `crate::dns`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mcpgate_codec::http::{
    ChunkedDecoder, RequestWriteError, RequestWriter, ResponseBody, ResponseHead,
};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use super::upstream::UpstreamStream;

use super::io::{read_more, ReadError};
use crate::dns::{self, ResolveError};
use crate::tls::client::UpstreamTls;
use crate::urls::{self, Scheme};

/// Largest control-plane response body accepted (a JWKS with many keys is a few tens of KiB).
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("URL {0:?}: {1}")]
    Url(String, urls::UrlError),
    #[error("request: {0}")]
    Request(#[from] RequestWriteError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Resolve(#[from] ResolveError),
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    #[error("malformed response")]
    Malformed,
    /// The connection ended (EOF or reset) before one byte of a response: on a kept-alive
    /// connection, the server had closed it while idle and never saw the request.
    #[error("the connection closed before a response")]
    ClosedBeforeResponse,
    #[error("response body larger than {MAX_BODY} bytes")]
    TooLarge,
}

/// A parsed `http(s)://host[:port]/path?query` (the fragment is dropped: never sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host[:port]` (the `Host` header; the port only when not the scheme's default).
    pub authority: String,
    /// A name or an IP literal (IPv6 without brackets): what is resolved, and the TLS server name.
    pub host: String,
    pub port: u16,
    /// Starts with `/`; includes the query.
    pub target: String,
    pub tls: bool,
}

impl HttpUrl {
    /// Which kept-alive connections may carry a request to this URL: same scheme, same
    /// `host:port`.
    pub fn keep_key(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority
        )
    }

    pub fn parse(url: &str) -> Result<HttpUrl, FetchError> {
        let parsed = urls::parse(url).map_err(|e| FetchError::Url(url.to_owned(), e))?;
        Ok(HttpUrl {
            target: parsed.target(),
            authority: parsed.authority,
            host: parsed.host,
            port: parsed.port,
            tls: parsed.scheme == Scheme::Https,
        })
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Content-Type` (a virtual server's upstream answers JSON or an event stream).
    pub content_type: Option<String>,
    /// `Mcp-Session-Id` (a virtual server's upstream session).
    pub session_id: Option<String>,
}

/// `GET url` with `Accept: application/json`.
pub async fn get(url: &str, limit: Duration) -> Result<HttpResponse, FetchError> {
    request("GET", url, &[("accept", "application/json")], b"", limit).await
}

/// `GET url` from an API's upstream, over that upstream's TLS client (its trust store, name and
/// client certificate) when the URL is `https://`: Mode A's protected-resource metadata.
pub async fn get_from_upstream(
    url: &str,
    limit: Duration,
    upstream_tls: Option<&UpstreamTls>,
) -> Result<HttpResponse, FetchError> {
    request_via(
        "GET",
        url,
        &[("accept", "application/json")],
        b"",
        limit,
        upstream_tls,
    )
    .await
}

/// One request; the whole exchange (connect, write, read to the end) must finish within `limit`.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Result<HttpResponse, FetchError> {
    request_via(method, url, headers, body, limit, None).await
}

/// [`request`], over `upstream_tls` instead of the control-plane trust store for `https://`.
pub async fn request_via(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
    upstream_tls: Option<&UpstreamTls>,
) -> Result<HttpResponse, FetchError> {
    let url = HttpUrl::parse(url)?;
    let deadline = Instant::now() + limit;
    // Written before connecting: a request that cannot be written costs no connection.
    let out = write_request(&url, method, headers, body, true)?;
    let mut stream = connect(&url, deadline).await?;
    if url.tls {
        let (config, name) = match upstream_tls {
            Some(t) => (t.config.clone(), t.server_name.clone()),
            None => (
                tls_config()?,
                rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|e| FetchError::Tls(e.to_string()))?,
            ),
        };
        let plain = tls_exchange(&mut stream, config, name, out, deadline).await?;
        return read_response(plain, method, &mut Source::Exhausted).await;
    }
    let mut stream = UpstreamStream::Plain(stream);
    exchange_on(&mut stream, out, method, deadline).await
}

/// The request's bytes: `User-Agent`, `Connection: close` when `close`, then `headers`.
fn write_request(
    url: &HttpUrl,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::with_capacity(256 + body.len());
    let mut writer = RequestWriter::new(&mut out, method, &url.target, &url.authority);
    if close {
        writer.header("connection", b"close");
    }
    writer.header("user-agent", b"mcpgate");
    for (name, value) in headers {
        writer.header(name, value.as_bytes());
    }
    writer.finish(body)?;
    Ok(out)
}

/// An idle kept-alive connection of [`request_kept_alive`] (plain or TLS).
struct Kept {
    stream: UpstreamStream,
    since: Instant,
}

/// Idle connections kept per `host:port`, per worker thread.
const KEPT_PER_AUTHORITY: usize = 32;
/// Kept no longer than this: below the common upstream keep-alive timeouts (Node's 5 s).
const KEPT_IDLE: Duration = Duration::from_secs(4);

thread_local! {
    /// This worker's idle kept-alive connections by scheme and `host:port` (workers share
    /// nothing).
    static KEPT: RefCell<HashMap<String, Vec<Kept>>> = RefCell::new(HashMap::new());
}

/// A kept connection for `authority` that is still usable (the same rule as the proxy's pool,
/// `super::upstream::ASK_SOCKET_AFTER`: one idle for a second or more is checked with the kernel).
fn take_kept(authority: &str) -> Option<UpstreamStream> {
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let list = kept.get_mut(authority)?;
        while let Some(idle) = list.pop() {
            let age = idle.since.elapsed();
            if age < KEPT_IDLE
                && idle
                    .stream
                    .is_quiet(age >= super::upstream::ASK_SOCKET_AFTER)
            {
                return Some(idle.stream);
            }
        }
        None
    })
}

fn keep(authority: &str, stream: UpstreamStream) {
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let list = kept.entry(authority.to_string()).or_default();
        list.retain(|idle| idle.since.elapsed() < KEPT_IDLE);
        if list.len() >= KEPT_PER_AUTHORITY {
            list.remove(0);
        }
        list.push(Kept {
            stream,
            since: Instant::now(),
        });
    });
}

/// Sends `request` on `stream` and reads the answer, by `deadline`.
async fn exchange_on(
    stream: &mut UpstreamStream,
    request: Vec<u8>,
    method: &str,
    deadline: Instant,
) -> Result<HttpResponse, FetchError> {
    let wait = deadline.saturating_duration_since(Instant::now());
    match monoio::time::timeout(wait, stream.write_all(request)).await {
        Ok((Ok(_), _)) => {}
        Ok((Err(e), _)) => return Err(FetchError::Io(e)),
        Err(_) => return Err(FetchError::Timeout),
    }
    let mut source = Source::Socket { stream, deadline };
    read_response(Vec::with_capacity(8192), method, &mut source).await
}

/// [`request`] for the virtual server's legs, on keep-alive connections this worker keeps per
/// scheme and `host:port` (one connection per call cost a TCP handshake — a TLS one for
/// `https://` — and left a TIME_WAIT socket per call: ephemeral ports run out at a few thousand
/// calls a second). A kept connection that fails before the request could be written, or that
/// the server had closed (no byte of an answer), is replaced by a new one; once an answer began,
/// the request is not sent again (a `tools/call` may have been acted on).
pub async fn request_kept_alive(
    method: &str,
    url_text: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Result<HttpResponse, FetchError> {
    let deadline = Instant::now() + limit;
    // The connection handling (kept or new, sent again only when a kept one never saw it) is
    // `open_stream`'s; the body is read whole, within what is left of `limit`.
    let mut response = open_stream(method, url_text, headers, body, limit).await?;
    let mut whole = Vec::new();
    while let Some(piece) = response
        .next(deadline.saturating_duration_since(Instant::now()))
        .await?
    {
        whole.extend_from_slice(&piece);
        if whole.len() > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
    }
    Ok(HttpResponse {
        status: response.status,
        body: whole,
        content_type: response.content_type.take(),
        session_id: response.session_id.take(),
    })
}

/// A new connection for a virtual server's leg: plain, or TLS checked against the
/// control-plane trust store (`MCPGATE_CA_FILE` beside Mozilla's roots), the URL's host as the
/// name.
async fn connect_leg(url: &HttpUrl, deadline: Instant) -> Result<UpstreamStream, FetchError> {
    let tcp = connect(url, deadline).await?;
    let _ = tcp.set_nodelay(true);
    if !url.tls {
        return Ok(UpstreamStream::Plain(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| FetchError::Tls(e.to_string()))?;
    let wait = deadline.saturating_duration_since(Instant::now());
    match monoio::time::timeout(wait, super::tls_io::connect(tcp, tls_config()?, name)).await {
        Ok(Ok(stream)) => Ok(UpstreamStream::Tls(Box::new(stream))),
        Ok(Err(e)) => Err(FetchError::Tls(e.to_string())),
        Err(_) => Err(FetchError::Timeout),
    }
}

/// A response whose body is read as it arrives: the virtual server's event streams (an answer
/// with progress and server→client requests before it, a standalone GET stream), over plain or
/// TLS connections ([`connect_leg`]). Dropped before its end, its connection is closed;
/// read to the end, the connection goes back to this worker's keep-alive set when it can.
pub struct StreamingResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub session_id: Option<String>,
    stream: Option<UpstreamStream>,
    /// Where the connection goes back to ([`HttpUrl::keep_key`]).
    authority: String,
    buf: Vec<u8>,
    body: BodyLeft,
    reusable: bool,
}

/// What is left of a streaming response's body.
enum BodyLeft {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

impl StreamingResponse {
    pub fn is_event_stream(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"))
    }

    /// The next body bytes as they arrive, waiting up to `wait` for them; `None`: the body is
    /// over.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, FetchError> {
        let deadline = Instant::now() + wait;
        loop {
            let mut piece = Vec::new();
            let consumed = match &mut self.body {
                BodyLeft::Done => return Ok(None),
                BodyLeft::Length(left) => {
                    let n = self
                        .buf
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    piece.extend_from_slice(self.buf.get(..n).unwrap_or_default());
                    *left -= n as u64;
                    if *left == 0 {
                        self.body = BodyLeft::Done;
                    }
                    n
                }
                BodyLeft::UntilClose => {
                    piece.append(&mut self.buf);
                    0
                }
                BodyLeft::Chunked(decoder) => {
                    let input = &self.buf;
                    let consumed = decoder
                        .decode(input, |r| {
                            piece.extend_from_slice(input.get(r).unwrap_or_default())
                        })
                        .map_err(|_| FetchError::Malformed)?;
                    if decoder.is_done() {
                        self.body = BodyLeft::Done;
                    }
                    consumed
                }
            };
            self.buf.drain(..consumed.min(self.buf.len()));
            if matches!(self.body, BodyLeft::Done) {
                self.finish();
            }
            if !piece.is_empty() {
                return Ok(Some(piece));
            }
            if matches!(self.body, BodyLeft::Done) {
                return Ok(None);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(None);
            };
            if read_more_until(stream, &mut self.buf, deadline).await? == 0 {
                let ended = matches!(self.body, BodyLeft::UntilClose);
                self.body = BodyLeft::Done;
                self.stream = None;
                return if ended {
                    Ok(None)
                } else {
                    Err(FetchError::Malformed)
                };
            }
        }
    }

    /// The body is over: the connection is kept for the next leg when nothing follows it.
    fn finish(&mut self) {
        if let Some(stream) = self.stream.take() {
            if self.reusable && self.buf.is_empty() {
                keep(&self.authority, stream);
            }
        }
    }
}

/// Sends a request on a kept-alive (or new) connection and reads the response head
/// within `limit`; the body is read with [`StreamingResponse::next`].
pub async fn open_stream(
    method: &str,
    url_text: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Result<StreamingResponse, FetchError> {
    let url = HttpUrl::parse(url_text)?;
    let deadline = Instant::now() + limit;
    let out = write_request(&url, method, headers, body, false)?;
    let key = url.keep_key();
    let mut kept = take_kept(&key);
    loop {
        let fresh = kept.is_none();
        let mut stream = match kept.take() {
            Some(s) => s,
            None => connect_leg(&url, deadline).await?,
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        match monoio::time::timeout(wait, stream.write_all(out.clone())).await {
            Ok((Ok(_), _)) => {}
            Ok((Err(_), _)) if !fresh => continue,
            Ok((Err(e), _)) => return Err(FetchError::Io(e)),
            Err(_) => return Err(FetchError::Timeout),
        }
        let mut buf = Vec::with_capacity(4096);
        let head = {
            let mut source = Source::Socket {
                stream: &mut stream,
                deadline,
            };
            read_head(&mut buf, method, &mut source).await
        };
        let head = match head {
            Ok(h) => h,
            // A kept connection the server had closed: nothing was read, so nothing was acted on.
            Err(FetchError::ClosedBeforeResponse) if !fresh => continue,
            Err(e) => return Err(e),
        };
        let body = match head.framing {
            ResponseBody::None => BodyLeft::Done,
            ResponseBody::Length(0) => BodyLeft::Done,
            ResponseBody::Length(n) => BodyLeft::Length(n),
            ResponseBody::Chunked => BodyLeft::Chunked(ChunkedDecoder::new()),
            ResponseBody::CloseDelimited => BodyLeft::UntilClose,
        };
        let mut response = StreamingResponse {
            status: head.status,
            content_type: head.content_type,
            session_id: head.session_id,
            stream: Some(stream),
            authority: key.clone(),
            buf,
            body,
            reusable: head.reusable && !matches!(head.framing, ResponseBody::CloseDelimited),
        };
        if matches!(response.body, BodyLeft::Done) {
            response.finish();
        }
        return Ok(response);
    }
}

/// Resolves `url`'s host off the worker (see `crate::dns`: a slow resolver delays only this
/// fetch) and connects to the first address that accepts, by `deadline`.
async fn connect(url: &HttpUrl, deadline: Instant) -> Result<TcpStream, FetchError> {
    let wait = deadline.saturating_duration_since(Instant::now());
    let addrs = dns::resolve(&url.host, url.port, wait).await?;
    let mut stream = None;
    let mut last_error = None;
    for addr in addrs {
        let wait = deadline.saturating_duration_since(Instant::now());
        match monoio::time::timeout(wait, TcpStream::connect_addr(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = Some(FetchError::Connect(e)),
            Err(_) => return Err(FetchError::Timeout),
        }
    }
    match (stream, last_error) {
        (Some(s), _) => Ok(s),
        (None, Some(e)) => Err(e),
        // `dns::resolve` never answers an empty list; kept total all the same.
        (None, None) => Err(FetchError::Connect(
            std::io::ErrorKind::AddrNotAvailable.into(),
        )),
    }
}

/// The control-plane trust store's client configuration (also the legacy SSE upstreams' TLS).
pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, FetchError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Ok(path) = std::env::var("MCPGATE_CA_FILE") {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
                    .map_err(|e| format!("MCPGATE_CA_FILE {path}: {e}"))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("MCPGATE_CA_FILE {path}: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("MCPGATE_CA_FILE {path}: {e}"))?;
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(FetchError::Tls)
}

/// Sends `request` over TLS and returns every plaintext byte the server sent until it closed
/// (the request says `Connection: close`), bounded by `MAX_BODY` plus a head and `deadline`.
async fn tls_exchange(
    stream: &mut TcpStream,
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    request: Vec<u8>,
    deadline: Instant,
) -> Result<Vec<u8>, FetchError> {
    use std::io::{Read, Write};
    let mut conn =
        rustls::ClientConnection::new(config, name).map_err(|e| FetchError::Tls(e.to_string()))?;
    conn.writer().write_all(&request).map_err(FetchError::Io)?;
    let limit = MAX_BODY + mcpgate_codec::limits::MAX_HEAD_BYTES;
    let mut plain = Vec::new();
    let mut wire = Vec::with_capacity(16 * 1024);
    loop {
        while conn.wants_write() {
            let mut out = Vec::new();
            conn.write_tls(&mut out).map_err(FetchError::Io)?;
            let wait = deadline.saturating_duration_since(Instant::now());
            match monoio::time::timeout(wait, stream.write_all(out)).await {
                Ok((Ok(_), _)) => {}
                Ok((Err(e), _)) => return Err(FetchError::Io(e)),
                Err(_) => return Err(FetchError::Timeout),
            }
        }
        wire.clear();
        let n = read_more_until(stream, &mut wire, deadline).await?;
        if n == 0 {
            // Servers often close without close_notify after a complete response;
            // `read_response` still checks the framing.
            return Ok(plain);
        }
        let mut input = wire.as_slice();
        while !input.is_empty() {
            conn.read_tls(&mut input).map_err(FetchError::Io)?;
            let state = conn
                .process_new_packets()
                .map_err(|e| FetchError::Tls(e.to_string()))?;
            let available = state.plaintext_bytes_to_read();
            if available > 0 {
                let start = plain.len();
                plain.resize(start + available, 0);
                let got = conn
                    .reader()
                    .read(plain.get_mut(start..).unwrap_or_default())
                    .map_err(FetchError::Io)?;
                plain.truncate(start + got);
            }
            if plain.len() > limit {
                return Err(FetchError::TooLarge);
            }
            if state.peer_has_closed() {
                return Ok(plain);
            }
        }
    }
}

async fn read_more_until<S: monoio::io::AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, FetchError> {
    let wait = deadline.saturating_duration_since(Instant::now());
    if wait.is_zero() {
        return Err(FetchError::Timeout);
    }
    match read_more(stream, buf, wait).await {
        Ok(n) => Ok(n),
        Err(ReadError::Timeout) => Err(FetchError::Timeout),
        Err(ReadError::Io(e)) => Err(FetchError::Io(e)),
    }
}

/// Where more response bytes come from once `buf` is used up.
enum Source<'a> {
    /// The plain-HTTP socket, read until `deadline`.
    Socket {
        stream: &'a mut UpstreamStream,
        deadline: Instant,
    },
    /// Nothing more: the TLS path has the whole response in hand already.
    Exhausted,
}

impl Source<'_> {
    /// Appends what arrives to `buf`; 0 is the end of the response's bytes.
    async fn more(&mut self, buf: &mut Vec<u8>) -> Result<usize, FetchError> {
        match self {
            Source::Socket { stream, deadline } => read_more_until(stream, buf, *deadline).await,
            Source::Exhausted => Ok(0),
        }
    }
}

/// A response head as [`read_head`] returns it (the head's bytes already drained from the buffer).
struct Head {
    status: u16,
    content_type: Option<String>,
    session_id: Option<String>,
    framing: ResponseBody,
    reusable: bool,
}

/// Reads a response head (skipping interim 1xx ones): starts from `buf`, asks `source` for more.
async fn read_head(
    buf: &mut Vec<u8>,
    method: &str,
    source: &mut Source<'_>,
) -> Result<Head, FetchError> {
    let head = loop {
        match ResponseHead::parse(buf) {
            Ok(Some(h)) if (100..200).contains(&h.status) => {
                let n = h.head_len.min(buf.len());
                buf.drain(..n);
                continue;
            }
            Ok(Some(h)) => break h,
            Ok(None) if buf.len() >= mcpgate_codec::limits::MAX_HEAD_BYTES => {
                return Err(FetchError::Malformed)
            }
            Ok(None) => {}
            Err(_) => return Err(FetchError::Malformed),
        }
        let nothing_yet = buf.is_empty();
        match source.more(buf).await {
            Ok(0) if nothing_yet => return Err(FetchError::ClosedBeforeResponse),
            Ok(0) => return Err(FetchError::Malformed),
            Ok(_) => {}
            Err(FetchError::Io(e))
                if nothing_yet && e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                return Err(FetchError::ClosedBeforeResponse)
            }
            Err(e) => return Err(e),
        }
    };
    let framing = head
        .body_framing(buf, method.as_bytes())
        .map_err(|_| FetchError::Malformed)?;
    let text = |name: &str| {
        head.header(buf, name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
    };
    let parsed = Head {
        status: head.status,
        content_type: text("content-type"),
        session_id: text("mcp-session-id"),
        framing,
        reusable: head.keep_alive(buf),
    };
    buf.drain(..head.head_len.min(buf.len()));
    Ok(parsed)
}

/// Reads one response: starts from `buf`, asks `source` for more as the framing needs it.
async fn read_response(
    mut buf: Vec<u8>,
    method: &str,
    source: &mut Source<'_>,
) -> Result<HttpResponse, FetchError> {
    let Head {
        status,
        content_type,
        session_id,
        framing,
        ..
    } = read_head(&mut buf, method, source).await?;
    let body = match framing {
        ResponseBody::None => Vec::new(),
        ResponseBody::Length(n) => {
            let n = usize::try_from(n).map_err(|_| FetchError::TooLarge)?;
            if n > MAX_BODY {
                return Err(FetchError::TooLarge);
            }
            while buf.len() < n {
                if source.more(&mut buf).await? == 0 {
                    return Err(FetchError::Malformed);
                }
            }
            buf.truncate(n);
            buf
        }
        ResponseBody::CloseDelimited => {
            while source.more(&mut buf).await? > 0 {
                if buf.len() > MAX_BODY {
                    return Err(FetchError::TooLarge);
                }
            }
            buf
        }
        ResponseBody::Chunked => {
            let mut decoder = ChunkedDecoder::with_max_body(MAX_BODY as u64);
            let mut body = Vec::new();
            loop {
                let input = &buf;
                let consumed = decoder
                    .decode(input, |r| {
                        body.extend_from_slice(input.get(r).unwrap_or_default())
                    })
                    .map_err(|_| FetchError::Malformed)?;
                buf.drain(..consumed.min(buf.len()));
                if decoder.is_done() {
                    break body;
                }
                if source.more(&mut buf).await? == 0 {
                    return Err(FetchError::Malformed);
                }
            }
        }
    };
    if body.len() > MAX_BODY {
        return Err(FetchError::TooLarge);
    }
    Ok(HttpResponse {
        status,
        body,
        content_type,
        session_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u =
            HttpUrl::parse("http://127.0.0.1:8080/a/b?c=d#frag").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 8080, "/a/b?c=d")
        );
        let u = HttpUrl::parse("HTTP://[::1]/x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 80, "[::1]")
        );
        let u = HttpUrl::parse("http://h").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.target, "/");
        let u = HttpUrl::parse("http://h?q=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.target, "/?q=1");
        let u = HttpUrl::parse("https://as.example/jwks").unwrap_or_else(|e| panic!("{e}"));
        assert!(u.tls && u.port == 443, "{u:?}");
        let u = HttpUrl::parse("https://[::1]:8443/t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (u.host.as_str(), u.authority.as_str()),
            ("::1", "[::1]:8443")
        );
        for bad in [
            "ftp://h/x",
            "http://",
            "http://u@h/",
            "http://h:x/",
            "http://h/a b",
            "http://h/a\r\nx: y",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_that_cannot_be_written_are_refused_before_connecting() {
        // Port 9 on loopback: were the request sent, the error would be a connect error.
        let result = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .block_on(request(
                "POST",
                "http://127.0.0.1:9/introspect",
                &[("authorization", "Basic x\r\nx-injected: 1")],
                b"token=t",
                Duration::from_secs(5),
            ));
        assert!(
            matches!(
                result,
                Err(FetchError::Request(RequestWriteError::HeaderValue(_)))
            ),
            "{result:?}"
        );
    }
}
