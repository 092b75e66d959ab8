//! `mcpgate pin --upstream URL [--out FILE]`: writes the pin lockfile from a live upstream. It
//! connects as an MCP client would (initialize, `notifications/initialized`, then every page of
//! `tools/list` and, when the server has prompts, `prompts/list`), and writes each definition
//! with its digest — the file an operator reviews and commits. With `--out`, the upstream's entry
//! of an existing file is replaced and its other upstreams are kept.
//!
//! A small blocking HTTP/1.1 client (one request per connection, `Connection: close`), run on
//! the command's own thread, never on a worker: the codec parses the heads, the chunked framing
//! and the event streams, as it does for proxied traffic. `http://` upstreams only, like the
//! gateway's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mcpgate_codec::http::{ChunkedDecoder, RequestWriter, ResponseBody, ResponseHead};
use mcpgate_codec::sse::{event_data, SseParser};
use mcpgate_policies::integrity::pin::{definitions, Lockfile, PinKind};
use serde_json::{json, Value};

use super::registry::write_atomically;
use crate::config::upstream_key;
use crate::urls::{self, Scheme};

/// The protocol version the command asks for (the server may answer with another).
const PROTOCOL_VERSION: &str = "2025-11-25";
/// Most pages read of one list (a server whose cursors never end is an error).
const MAX_PAGES: usize = 1000;
/// Largest response accepted.
const MAX_BODY: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("--upstream {0}: {1}")]
    Url(String, String),
    #[error("cannot reach {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{method}: {message}")]
    Exchange { method: String, message: String },
    #[error("{0}: {1}")]
    File(String, String),
}

fn exchange_error(method: &str, message: impl Into<String>) -> PinError {
    PinError::Exchange {
        method: method.to_owned(),
        message: message.into(),
    }
}

/// What `mcpgate pin` was asked.
#[derive(Debug, Clone)]
pub struct PinRequest {
    pub upstream: String,
    pub out: Option<PathBuf>,
    /// Extra request headers (`Authorization` of a secured server…).
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

/// A blocking MCP session over Streamable HTTP.
struct Session {
    addrs: Vec<SocketAddr>,
    host: String,
    path: String,
    headers: Vec<(String, String)>,
    session_id: Option<String>,
    protocol_version: Option<String>,
    next_id: u64,
    timeout: Duration,
}

/// One HTTP response, read whole (an event stream: up to the awaited answer).
struct Reply {
    status: u16,
    session_id: Option<String>,
    messages: Vec<Vec<u8>>,
}

impl Session {
    fn post(
        &mut self,
        method: &str,
        body: &Value,
        awaited_id: Option<u64>,
    ) -> Result<Reply, PinError> {
        let payload = body.to_string();
        let mut request = Vec::with_capacity(payload.len() + 256);
        let mut writer = RequestWriter::new(&mut request, "POST", &self.path, &self.host);
        writer
            .header("content-type", b"application/json")
            .header("accept", b"application/json, text/event-stream")
            .header("connection", b"close");
        if let Some(id) = &self.session_id {
            writer.header("mcp-session-id", id.as_bytes());
        }
        if let Some(v) = &self.protocol_version {
            writer.header("mcp-protocol-version", v.as_bytes());
        }
        for (name, value) in &self.headers {
            writer.header(name, value.as_bytes());
        }
        writer
            .finish(payload.as_bytes())
            .map_err(|e| exchange_error(method, e.to_string()))?;
        let deadline = Instant::now() + self.timeout;
        let mut stream = self.connect()?;
        stream
            .write_all(&request)
            .map_err(|e| exchange_error(method, format!("sending the request: {e}")))?;
        read_reply(&mut stream, method, awaited_id, deadline)
    }

    fn connect(&self) -> Result<TcpStream, PinError> {
        let mut last = None;
        for addr in &self.addrs {
            match TcpStream::connect_timeout(addr, self.timeout) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(self.timeout));
                    let _ = s.set_write_timeout(Some(self.timeout));
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(PinError::Connect(
            self.host.clone(),
            last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
        ))
    }

    /// A request; its answer's `result`.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, PinError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = self.post(method, &body, Some(id))?;
        if reply.status != 200 {
            return Err(exchange_error(
                method,
                format!("the server answered HTTP {}", reply.status),
            ));
        }
        if let Some(sid) = reply.session_id {
            self.session_id.get_or_insert(sid);
        }
        for raw in &reply.messages {
            let Ok(message) = serde_json::from_slice::<Value>(raw) else {
                continue;
            };
            if message.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(error) = message.get("error") {
                return Err(exchange_error(
                    method,
                    format!("the server refused: {error}"),
                ));
            }
            return message
                .get("result")
                .cloned()
                .ok_or_else(|| exchange_error(method, "an answer without result"));
        }
        Err(exchange_error(method, "no answer to the request"))
    }

    fn notify(&mut self, method: &str) -> Result<(), PinError> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let reply = self.post(method, &body, None)?;
        if !(200..300).contains(&reply.status) {
            return Err(exchange_error(
                method,
                format!("the server answered HTTP {}", reply.status),
            ));
        }
        Ok(())
    }

    /// Every page of a list.
    fn list_all(&mut self, kind: PinKind) -> Result<Vec<(String, Value)>, PinError> {
        let method = kind.list_method();
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.call(method, params)?;
            entries.extend(definitions(kind, &result));
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(entries),
            }
        }
        Err(exchange_error(
            method,
            format!("more than {MAX_PAGES} pages"),
        ))
    }

    /// Ends the session (best effort: a server without sessions answers 405).
    fn close(&mut self) {
        let Some(id) = self.session_id.clone() else {
            return;
        };
        let mut request = Vec::with_capacity(256);
        let mut writer = RequestWriter::new(&mut request, "DELETE", &self.path, &self.host);
        writer
            .header("mcp-session-id", id.as_bytes())
            .header("connection", b"close");
        for (name, value) in &self.headers {
            writer.header(name, value.as_bytes());
        }
        if writer.finish(b"").is_ok() {
            if let Ok(mut s) = self.connect() {
                let _ = s.write_all(&request);
                let mut sink = [0u8; 512];
                let _ = s.read(&mut sink);
            }
        }
    }
}

/// Reads one response: a JSON body (one message or a batch), or an event stream up to the
/// event answering `awaited_id` (the connection is then dropped).
fn read_reply(
    stream: &mut TcpStream,
    method: &str,
    awaited_id: Option<u64>,
    deadline: Instant,
) -> Result<Reply, PinError> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut read_some = |buf: &mut Vec<u8>| -> Result<usize, PinError> {
        if Instant::now() > deadline {
            return Err(exchange_error(method, "timed out"));
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| exchange_error(method, format!("reading the answer: {e}")))?;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.len() > MAX_BODY {
            return Err(exchange_error(method, "answer too large"));
        }
        Ok(n)
    };
    let head = loop {
        match ResponseHead::parse(&buf) {
            Ok(Some(h)) if (100..200).contains(&h.status) => {
                let n = h.head_len.min(buf.len());
                buf.drain(..n);
            }
            Ok(Some(h)) => break h,
            Ok(None) => {
                if read_some(&mut buf)? == 0 {
                    return Err(exchange_error(
                        method,
                        "the connection closed before an answer",
                    ));
                }
            }
            Err(e) => return Err(exchange_error(method, format!("malformed answer: {e}"))),
        }
    };
    let header = |name: &str| {
        head.header(&buf, name)
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
    };
    let session_id = header("mcp-session-id");
    let is_stream = header("content-type")
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/event-stream"));
    let framing = head
        .body_framing(&buf, b"POST")
        .map_err(|e| exchange_error(method, format!("malformed answer: {e}")))?;
    let status = head.status;
    buf.drain(..head.head_len.min(buf.len()));
    // The body, decoded as it arrives; an event stream is parsed as it grows.
    let mut body: Vec<u8> = Vec::new();
    let mut decoder = ChunkedDecoder::with_max_body(MAX_BODY as u64);
    let mut parser = SseParser::new();
    let mut messages = Vec::new();
    let mut pending = 0usize;
    loop {
        let complete = match framing {
            ResponseBody::None => true,
            ResponseBody::Length(n) => {
                body.append(&mut buf);
                body.len() as u64 >= n
            }
            ResponseBody::Chunked => {
                let input = std::mem::take(&mut buf);
                let used = decoder
                    .decode(&input, |r| {
                        body.extend_from_slice(input.get(r).unwrap_or_default())
                    })
                    .map_err(|e| exchange_error(method, format!("bad chunked framing: {e}")))?;
                buf.extend_from_slice(input.get(used..).unwrap_or_default());
                decoder.is_done()
            }
            ResponseBody::CloseDelimited => {
                body.append(&mut buf);
                false
            }
        };
        if is_stream {
            while let Some((event, used)) = parser
                .next_event(body.get(pending..).unwrap_or_default())
                .map_err(|e| exchange_error(method, format!("bad event stream: {e}")))?
            {
                let slice = body.get(pending..).unwrap_or_default();
                let data = event_data(&event, slice).to_vec();
                pending += used;
                if data.trim_ascii().is_empty() {
                    continue;
                }
                let answers = awaited_id.is_some_and(|id| {
                    serde_json::from_slice::<Value>(&data)
                        .ok()
                        .and_then(|m| m.get("id").and_then(Value::as_u64))
                        == Some(id)
                });
                messages.push(data);
                if answers {
                    return Ok(Reply {
                        status,
                        session_id,
                        messages,
                    });
                }
            }
        }
        if complete {
            break;
        }
        if read_some(&mut buf)? == 0 {
            if framing == ResponseBody::CloseDelimited {
                break;
            }
            return Err(exchange_error(method, "the connection closed mid-answer"));
        }
    }
    if !is_stream && !body.trim_ascii().is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(items)) => {
                messages.extend(items.iter().map(|v| v.to_string().into_bytes()))
            }
            Ok(_) => messages.push(body),
            Err(e) => {
                return Err(exchange_error(
                    method,
                    format!("the answer is not JSON: {e}"),
                ))
            }
        }
    }
    Ok(Reply {
        status,
        session_id,
        messages,
    })
}

/// Pins `request.upstream` and writes (or prints) the lockfile; returns the line to print on
/// stderr.
pub fn run(request: &PinRequest) -> Result<String, PinError> {
    let url = &request.upstream;
    let parsed = urls::parse(url).map_err(|e| PinError::Url(url.clone(), e.to_string()))?;
    if parsed.scheme != Scheme::Http {
        return Err(PinError::Url(
            url.clone(),
            "only http:// is supported".into(),
        ));
    }
    let key = upstream_key(url).map_err(|e| PinError::Url(url.clone(), e.to_string()))?;
    let addrs: Vec<SocketAddr> = (parsed.host.as_str(), parsed.port)
        .to_socket_addrs()
        .map_err(|e| PinError::Connect(parsed.authority.clone(), e))?
        .collect();
    let mut session = Session {
        addrs,
        host: parsed.authority.clone(),
        path: parsed.target(),
        headers: request.headers.clone(),
        session_id: None,
        protocol_version: None,
        next_id: 1,
        timeout: request.timeout,
    };
    let init = session.call(
        "initialize",
        json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcpgate-pin", "version": env!("CARGO_PKG_VERSION")},
        }),
    )?;
    session.protocol_version = init
        .get("protocolVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    session.notify("notifications/initialized")?;
    let caps = init.get("capabilities").cloned().unwrap_or(Value::Null);
    let has = |name: &str| caps.get(name).is_some();
    let listed = (|| {
        let tools = if has("tools") {
            session.list_all(PinKind::Tool)?
        } else {
            Vec::new()
        };
        let prompts = if has("prompts") {
            session.list_all(PinKind::Prompt)?
        } else {
            Vec::new()
        };
        Ok::<_, PinError>((tools, prompts))
    })();
    session.close();
    let (tools, prompts) = listed?;
    // Both kinds are written, empty when the server has none: a tool or prompt that appears
    // later is then new, never silently trusted.
    let pins = Lockfile::pins_from(Some(&tools), Some(&prompts));
    let summary = format!(
        "pinned {} tool{} and {} prompt{} of {key}",
        tools.len(),
        if tools.len() == 1 { "" } else { "s" },
        prompts.len(),
        if prompts.len() == 1 { "" } else { "s" },
    );
    match &request.out {
        None => {
            let mut lock = Lockfile::default();
            lock.upstreams.insert(key, pins);
            print!("{}", lock.to_text());
            Ok(summary)
        }
        Some(path) => {
            let shown = path.display().to_string();
            let mut lock = match std::fs::read_to_string(path) {
                Ok(text) => Lockfile::parse(&text)
                    .map_err(|e| PinError::File(shown.clone(), e.to_string()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Lockfile::default(),
                Err(e) => return Err(PinError::File(shown, e.to_string())),
            };
            lock.upstreams.insert(key, pins);
            write_atomically(path, lock.to_text().as_bytes())
                .map_err(|e| PinError::File(shown.clone(), e.to_string()))?;
            Ok(format!("{summary} in {shown}"))
        }
    }
}

/// The live `tools/list`, `prompts/list` and `resources/list` of an upstream, every page, as the
/// management API offers them to the console's forms (`GET /api/manage/apis/{name}/live`): each
/// entry's `name` (resources: `uri` and `name`) and `description`. A list the server has no
/// capability for is empty; one that fails is named in `errors` (the others are still shown).
pub fn live_lists(upstream: &str, timeout: Duration) -> Result<Value, PinError> {
    let url = upstream.to_owned();
    let parsed = urls::parse(upstream).map_err(|e| PinError::Url(url.clone(), e.to_string()))?;
    if parsed.scheme != Scheme::Http {
        return Err(PinError::Url(
            url,
            "only http:// upstreams can be listed here".into(),
        ));
    }
    let addrs: Vec<SocketAddr> = (parsed.host.as_str(), parsed.port)
        .to_socket_addrs()
        .map_err(|e| PinError::Connect(parsed.authority.clone(), e))?
        .collect();
    let mut session = Session {
        addrs,
        host: parsed.authority.clone(),
        path: parsed.target(),
        headers: Vec::new(),
        session_id: None,
        protocol_version: None,
        next_id: 1,
        timeout,
    };
    let init = session.call(
        "initialize",
        json!({
            "protocolVersion": PROTOCOL_VERSION,
            // What a full client declares: servers (server-everything) list some tools only
            // to clients that can serve roots, sampling or elicitation, and the forms should
            // offer every name a client may see.
            "capabilities": {"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}},
            "clientInfo": {"name": "mcpgate-console", "version": env!("CARGO_PKG_VERSION")},
        }),
    )?;
    session.protocol_version = init
        .get("protocolVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    session.notify("notifications/initialized")?;
    let caps = init.get("capabilities").cloned().unwrap_or(Value::Null);
    let mut out =
        json!({"upstream": upstream, "tools": [], "prompts": [], "resources": [], "errors": {}});
    for (cap, method, key) in [
        ("tools", "tools/list", "tools"),
        ("prompts", "prompts/list", "prompts"),
        ("resources", "resources/list", "resources"),
    ] {
        if caps.get(cap).is_none() {
            continue;
        }
        match list_raw(&mut session, method, key) {
            Ok(items) => out[key] = Value::Array(items),
            Err(e) => out["errors"][key] = json!(e.to_string()),
        }
    }
    session.close();
    Ok(out)
}

/// Every page of one list, each entry cut to what a form needs.
fn list_raw(session: &mut Session, method: &str, key: &str) -> Result<Vec<Value>, PinError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let result = session.call(method, params)?;
        for entry in result
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut cut = serde_json::Map::new();
            for field in ["name", "title", "uri", "description"] {
                if let Some(v) = entry.get(field).filter(|v| v.is_string()) {
                    cut.insert(field.into(), v.clone());
                }
            }
            items.push(Value::Object(cut));
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
    Err(exchange_error(
        method,
        format!("more than {MAX_PAGES} pages"),
    ))
}
