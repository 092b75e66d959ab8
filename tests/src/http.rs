//! A deliberately plain HTTP/1.1 client over `std::net`, for what the SDKs hide: exact status
//! codes, raw headers, empty bodies, malformed requests. One request per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `Accept` value the Streamable HTTP transport requires on POST.
pub const MCP_ACCEPT: &str = "application/json, text/event-stream";

/// A response as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How long from the end of writing the request to the end of reading the response.
    pub elapsed: Duration,
}

impl RawResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as one JSON value, or a description of why it is not one.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("body is not JSON ({e}): {:?}", self.body_text()))
    }

    /// The JSON-RPC messages in the body, whether it is `application/json` or an SSE stream.
    pub fn jsonrpc_messages(&self) -> Result<Vec<Value>, String> {
        let content_type = self
            .header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            Ok(sse_data(&self.body_text())
                .into_iter()
                .filter(|data| !data.is_empty())
                .map(|data| {
                    serde_json::from_str(&data)
                        .map_err(|e| format!("SSE data is not JSON ({e}): {data:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?)
        } else {
            Ok(vec![self.json()?])
        }
    }
}

/// The `data` of each SSE event in `stream` (multi-line data joined with `\n`).
pub fn sse_data(stream: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in stream.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if let Some(done) = data.take() {
                events.push(done);
            }
            continue;
        }
        if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match data.as_mut() {
                Some(existing) => {
                    existing.push('\n');
                    existing.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    if let Some(done) = data {
        events.push(done);
    }
    events
}

/// Builds a request with `Host`, `Content-Length` (when there is a body) and `Connection: close`.
pub fn build_request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` as-is and reads one response.
pub fn exchange(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<RawResponse, String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let started = Instant::now();
    let mut response = read_response(&mut stream)?;
    response.elapsed = started.elapsed();
    Ok(response)
}

/// POSTs a JSON body with the MCP headers a client sends, plus `extra` headers (an `extra`
/// Content-Type or Accept replaces the default one).
pub fn post_mcp(
    addr: SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Result<RawResponse, String> {
    let mut headers: Vec<(&str, &str)> =
        [("Content-Type", "application/json"), ("Accept", MCP_ACCEPT)]
            .into_iter()
            .filter(|(name, _)| !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
            .collect();
    headers.extend_from_slice(extra);
    let request = build_request("POST", path, &addr.to_string(), &headers, body.as_bytes());
    exchange(addr, &request, Duration::from_secs(20))
}

/// A Streamable HTTP session opened with [`initialize_body`] and `notifications/initialized`,
/// then used with raw POSTs (what an attacker sends, not what an SDK would).
pub struct McpSession {
    pub addr: SocketAddr,
    pub path: String,
    pub id: String,
    pub protocol: &'static str,
}

impl McpSession {
    /// Initializes a session at `addr` + `path`; later requests carry `protocol` as
    /// `MCP-Protocol-Version`.
    pub fn open(addr: SocketAddr, path: &str, protocol: &'static str) -> McpSession {
        let response = post_mcp(addr, path, &[], &initialize_body(1))
            .unwrap_or_else(|e| panic!("initialize: {e}"));
        assert_eq!(response.status, 200, "{}", response.body_text());
        let id = match response.header("mcp-session-id") {
            Some(id) => id.to_owned(),
            None => panic!("no session id: {}", response.body_text()),
        };
        let session = McpSession {
            addr,
            path: path.to_owned(),
            id,
            protocol,
        };
        let ack = session.post(
            &[],
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        );
        assert_eq!(ack.status, 202, "{}", ack.body_text());
        session
    }

    /// POSTs `body` with the session's headers plus `extra`.
    pub fn post(&self, extra: &[(&str, &str)], body: &str) -> RawResponse {
        let mut headers = vec![
            ("Mcp-Session-Id", self.id.as_str()),
            ("MCP-Protocol-Version", self.protocol),
        ];
        headers.extend_from_slice(extra);
        post_mcp(self.addr, &self.path, &headers, body)
            .unwrap_or_else(|e| panic!("POST {body}: {e}"))
    }

    /// The status and the JSON-RPC messages of the answer (JSON body or SSE events).
    pub fn messages(&self, extra: &[(&str, &str)], body: &str) -> (u16, Vec<Value>) {
        let response = self.post(extra, body);
        let messages = response
            .jsonrpc_messages()
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        (response.status, messages)
    }
}

/// A legacy HTTP+SSE (2024-11-05) session: the GET stream stays open, messages are POSTed to
/// the URL its `endpoint` event names, and answers arrive on the stream.
pub struct LegacySession {
    pub addr: SocketAddr,
    stream: SseStream,
    /// The path (and query) the `endpoint` event named.
    pub endpoint: String,
}

impl LegacySession {
    /// Opens `GET sse_path` at `addr` and waits for the `endpoint` event.
    pub fn open(addr: SocketAddr, sse_path: &str) -> LegacySession {
        let request = build_request(
            "GET",
            sse_path,
            &addr.to_string(),
            &[("Accept", "text/event-stream")],
            b"",
        );
        let mut stream = SseStream::open(addr, &request, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("GET {sse_path}: {e}"));
        assert_eq!(stream.status, 200, "GET {sse_path}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let endpoint = loop {
            match stream.next_event(deadline) {
                Ok(Some(e)) if e.event.as_deref() == Some("endpoint") => break e.data,
                Ok(Some(_)) => {}
                other => panic!("no endpoint event on {sse_path}: {other:?}"),
            }
        };
        assert!(endpoint.starts_with('/'), "endpoint {endpoint:?}");
        LegacySession {
            addr,
            stream,
            endpoint,
        }
    }

    /// POSTs `body` (raw bytes) to the endpoint with these headers; the reply is the POST's own
    /// (202 when accepted), the answer comes on the stream.
    pub fn post(&self, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        let request = build_request(
            "POST",
            &self.endpoint,
            &self.addr.to_string(),
            headers,
            body,
        );
        exchange(self.addr, &request, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("POST {}: {e}", self.endpoint))
    }

    /// POSTs a JSON body as `application/json`.
    pub fn post_json(&self, body: &str) -> RawResponse {
        self.post(&[("Content-Type", "application/json")], body.as_bytes())
    }

    /// Reads the stream until the message with this `id` (a JSON value) arrives; every message
    /// read on the way is returned too, in order.
    pub fn until_id(&mut self, id: &Value, deadline: Instant) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            match self.stream.next_event(deadline) {
                Ok(Some(e)) => {
                    let message = e.json();
                    let done = message.get("id") == Some(id);
                    seen.push(message);
                    if done {
                        return seen;
                    }
                }
                other => panic!("no answer with id {id} on the stream ({other:?}); saw {seen:?}"),
            }
        }
    }
}

/// The `initialize` request a 2025-11-25 client sends first.
pub fn initialize_body(id: u64) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "mcpgate-raw-http-test", "version": "0.1.0"}
        }
    })
    .to_string()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn read_more<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> Result<usize, String> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(n) => {
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            Ok(n)
        }
        // A TLS peer that closes without close_notify: HTTP framing says whether that was early.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(format!(
            "read: {e} (got so far: {:?})",
            String::from_utf8_lossy(buf)
        )),
    }
}

/// Reads one response from any byte stream (a TLS one too: `crate::tls`).
pub fn read_response<S: Read>(stream: &mut S) -> Result<RawResponse, String> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if read_more(stream, &mut buf)? == 0 {
            return Err(format!(
                "connection closed before a response head: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
    };
    let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut response = RawResponse {
        status,
        headers,
        body: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut rest = buf.split_off(head_end);
    let bodyless = status < 200 || status == 204 || status == 304;
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let length = response
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    if bodyless {
        return Ok(response);
    }
    if chunked {
        response.body = read_chunked(stream, rest)?;
    } else if let Some(length) = length {
        while rest.len() < length {
            if read_more(stream, &mut rest)? == 0 {
                return Err(format!(
                    "connection closed after {} of {length} body bytes",
                    rest.len()
                ));
            }
        }
        rest.truncate(length);
        response.body = rest;
    } else {
        while read_more(stream, &mut rest)? > 0 {}
        response.body = rest;
    }
    Ok(response)
}

fn read_chunked<S: Read>(stream: &mut S, mut buf: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(&buf, b"\r\n") {
                break pos;
            }
            if read_more(stream, &mut buf)? == 0 {
                return Err("connection closed inside a chunk size line".into());
            }
        };
        let size_line =
            String::from_utf8_lossy(buf.get(..line_end).unwrap_or_default()).into_owned();
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|e| format!("bad chunk size {size_line:?}: {e}"))?;
        buf.drain(..line_end + 2);
        if size == 0 {
            return Ok(body);
        }
        while buf.len() < size + 2 {
            if read_more(stream, &mut buf)? == 0 {
                return Err("connection closed inside a chunk".into());
            }
        }
        body.extend_from_slice(buf.get(..size).unwrap_or_default());
        buf.drain(..size + 2);
    }
}

/// One event of a `text/event-stream` body.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    /// When the event's last byte was read.
    pub received_at: Instant,
}

impl SseEvent {
    /// The event's data as JSON (`Null` for an empty priming event or non-JSON data).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// A response read incrementally: its head at once, then one SSE event at a time as the bytes
/// arrive (chunked or close-delimited), so a test sees each event when the gateway sends it.
pub struct SseStream {
    stream: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    raw: Vec<u8>,
    text: Vec<u8>,
    chunked: bool,
    chunk_remaining: usize,
    chunk_needs_crlf: bool,
    finished: bool,
}

impl SseStream {
    /// Sends `request` and reads the response head.
    pub fn open(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<Self, String> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(request)
            .map_err(|e| format!("write to {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        let head_end = loop {
            if let Some(pos) = find(&raw, b"\r\n\r\n") {
                break pos + 4;
            }
            if read_more(&mut stream, &mut raw)? == 0 {
                return Err(format!(
                    "closed before a response head: {:?}",
                    String::from_utf8_lossy(&raw)
                ));
            }
        };
        let head = String::from_utf8_lossy(raw.get(..head_end).unwrap_or_default()).into_owned();
        let rest = raw.split_off(head_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter(|line| !line.is_empty())
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect();
        let chunked = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        });
        let mut sse = Self {
            stream,
            status,
            headers,
            raw: rest,
            text: Vec::new(),
            chunked,
            chunk_remaining: 0,
            chunk_needs_crlf: false,
            finished: false,
        };
        sse.decode()?;
        Ok(sse)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Moves decoded body bytes from `raw` to `text`.
    fn decode(&mut self) -> Result<(), String> {
        if !self.chunked {
            self.text.append(&mut self.raw);
            return Ok(());
        }
        loop {
            if self.chunk_remaining > 0 {
                let take = self.chunk_remaining.min(self.raw.len());
                if take == 0 {
                    return Ok(());
                }
                self.text.extend(self.raw.drain(..take));
                self.chunk_remaining -= take;
                if self.chunk_remaining == 0 {
                    self.chunk_needs_crlf = true;
                }
                continue;
            }
            if self.chunk_needs_crlf {
                if self.raw.len() < 2 {
                    return Ok(());
                }
                self.raw.drain(..2);
                self.chunk_needs_crlf = false;
            }
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return Ok(());
            };
            let line =
                String::from_utf8_lossy(self.raw.get(..line_end).unwrap_or_default()).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|e| format!("bad chunk size {line:?}: {e}"))?;
            self.raw.drain(..line_end + 2);
            if size == 0 {
                self.finished = true;
                return Ok(());
            }
            self.chunk_remaining = size;
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        let (end, delimiter) = [&b"\r\n\r\n"[..], b"\n\n"]
            .iter()
            .filter_map(|d| find(&self.text, d).map(|pos| (pos, d.len())))
            .min()?;
        let block: Vec<u8> = self.text.drain(..end + delimiter).collect();
        let block = String::from_utf8_lossy(&block).into_owned();
        let mut event = SseEvent {
            id: None,
            event: None,
            data: String::new(),
            received_at: Instant::now(),
        };
        let mut has_data = false;
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
        Some(event)
    }

    /// The next event (comments and keep-alives skipped), or `None` once the body ended.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<SseEvent>, String> {
        loop {
            while let Some(event) = self.take_event() {
                if event.id.is_some() || event.event.is_some() || !event.data.is_empty() {
                    return Ok(Some(event));
                }
            }
            if self.finished {
                return Ok(None);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "no complete event before the deadline; pending {:?}",
                    String::from_utf8_lossy(&self.text)
                ));
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .map_err(|e| e.to_string())?;
            if read_more(&mut self.stream, &mut self.raw)? == 0 {
                self.finished = true;
            }
            self.decode()?;
        }
    }
}
