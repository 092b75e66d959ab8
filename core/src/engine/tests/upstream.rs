//! The scripted upstream: a loopback listener whose every accepted connection is handed to the
//! test's script as an [`UpConn`] (read the next request, write exact bytes — whole, in paced
//! parts, or not at all —, close, or wait for the gateway to close). Every request read is
//! recorded with the connection it came on, so a test can check what reached the upstream and
//! on which connection.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use mcpgate_codec::http::{ChunkedDecoder, RequestBody, RequestHead};
use monoio::io::AsyncWriteRent;
use monoio::net::{TcpListener, TcpStream};

use super::super::io::{read_more, write_all, ReadError};
use super::harness::{TEST_DEADLINE, WAIT};

/// The head of a chunked event stream answer.
pub const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

/// The chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A `200` `application/json` answer with its `Content-Length`.
pub fn json_answer(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `data` as one chunk of a chunked body.
pub fn chunk(data: &str) -> Vec<u8> {
    format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
}

/// What the upstream saw, shared by its connections and the test.
#[derive(Default)]
struct Log {
    requests: RefCell<Vec<Received>>,
    connections: Cell<usize>,
}

/// One request as the upstream read it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which connection it came on (0 for the first accepted).
    pub conn: usize,
    /// The head as received, up to and including the blank line, without its `x-request-id`
    /// field (different in every run: see `request_id`).
    pub head: String,
    /// The body, decoded if it was chunked.
    pub body: Vec<u8>,
    /// The `x-request-id` the gateway sent.
    pub request_id: Option<String>,
}

impl Received {
    /// `METHOD target HTTP/1.1`.
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("x-request-id") {
            return self.request_id.as_deref();
        }
        header_in(&self.head, name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A head's text without its `x-request-id` field, and that field's value: the exact-head
/// assertions stay about everything else.
pub fn split_request_id(head: String) -> (String, Option<String>) {
    let mut id = None;
    let mut kept = String::with_capacity(head.len());
    for line in head.split_inclusive("\r\n") {
        match line.split_once(':') {
            Some((n, v)) if id.is_none() && n.eq_ignore_ascii_case("x-request-id") => {
                id = Some(v.trim().to_owned());
            }
            _ => kept.push_str(line),
        }
    }
    (kept, id)
}

/// The first field named `name` in a head's text.
pub fn header_in<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One upstream connection, as the script drives it.
pub struct UpConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Which connection this is (0 for the first accepted).
    pub index: usize,
    log: Rc<Log>,
}

impl UpConn {
    /// Reads and records the next request (head, then a Content-Length or chunked body).
    /// `None`: the gateway closed the connection (or sent nothing for the test's lifetime).
    pub async fn read_request(&mut self) -> Option<Received> {
        loop {
            let parsed = RequestHead::parse(&self.buf)
                .unwrap_or_else(|e| panic!("the gateway sent a malformed head ({e})"));
            if let Some(head) = parsed {
                let framing = head
                    .body_framing(&self.buf)
                    .unwrap_or_else(|e| panic!("the gateway sent a bad framing ({e})"));
                let body = self.read_body(head.head_len, framing).await?;
                let (text, request_id) = split_request_id(
                    String::from_utf8_lossy(&self.buf[..head.head_len]).into_owned(),
                );
                let received = Received {
                    conn: self.index,
                    head: text,
                    body,
                    request_id,
                };
                let consumed = self.consumed(head.head_len, &received).min(self.buf.len());
                self.buf.drain(..consumed);
                self.log.requests.borrow_mut().push(received.clone());
                return Some(received);
            }
            self.read_more().await?;
        }
    }

    /// Bytes of the request just read: its head and its body as framed on the wire.
    fn consumed(&self, head_len: usize, received: &Received) -> usize {
        match header_in(&received.head, "transfer-encoding") {
            // Chunked requests are never pipelined behind by the gateway: drop everything.
            Some(_) => self.buf.len(),
            None => head_len + received.body.len(),
        }
    }

    async fn read_body(&mut self, head_len: usize, framing: RequestBody) -> Option<Vec<u8>> {
        match framing {
            RequestBody::None => Some(Vec::new()),
            RequestBody::Length(n) => {
                let end = head_len + usize::try_from(n).unwrap_or(usize::MAX);
                while self.buf.len() < end {
                    self.read_more().await?;
                }
                Some(self.buf[head_len..end].to_vec())
            }
            RequestBody::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = Vec::new();
                let mut pos = head_len;
                loop {
                    let input = &self.buf[pos..];
                    pos += decoder
                        .decode(input, |r| body.extend_from_slice(&input[r]))
                        .unwrap_or_else(|e| panic!("the gateway sent bad chunks ({e})"));
                    if decoder.is_done() {
                        return Some(body);
                    }
                    self.read_more().await?;
                }
            }
        }
    }

    /// One more read into the buffer; `None` at end of stream.
    async fn read_more(&mut self) -> Option<()> {
        match read_more(&mut self.stream, &mut self.buf, TEST_DEADLINE).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(()),
        }
    }

    /// Writes `bytes` whole; `false` when the gateway is gone.
    pub async fn write(&mut self, bytes: &[u8]) -> bool {
        let mut owned = bytes.to_vec();
        write_all(&mut self.stream, &mut owned).await.is_ok()
    }

    /// Writes each part in its own write, pausing `pause` between two parts.
    pub async fn write_paced(&mut self, parts: &[&[u8]], pause: Duration) -> bool {
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                monoio::time::sleep(pause).await;
            }
            if !self.write(part).await {
                return false;
            }
        }
        true
    }

    /// Closes the upstream's sending side (the gateway reads end of stream) and waits until the
    /// FIN is out.
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Whether the gateway closes this connection within [`WAIT`] (bytes it sends meanwhile are
    /// ignored).
    pub async fn closed_by_gateway(&mut self) -> bool {
        let mut scratch = Vec::new();
        loop {
            scratch.clear();
            match read_more(&mut self.stream, &mut scratch, WAIT).await {
                Ok(0) | Err(ReadError::Io(_)) => return true,
                Ok(_) => {}
                Err(ReadError::Timeout) => return false,
            }
        }
    }
}

/// A scripted upstream listening on loopback for the rest of the test.
pub struct Upstream {
    pub addr: SocketAddr,
    log: Rc<Log>,
}

impl Upstream {
    /// Runs `script` on every accepted connection, each in its own task.
    pub fn start<F, Fut>(script: F) -> Upstream
    where
        F: Fn(UpConn) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind the upstream's listener: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("upstream listener address: {e}"));
        let log = Rc::new(Log::default());
        let shared = log.clone();
        monoio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let index = shared.connections.get();
                shared.connections.set(index + 1);
                monoio::spawn(script(UpConn {
                    stream,
                    buf: Vec::new(),
                    index,
                    log: shared.clone(),
                }));
            }
        });
        Upstream { addr, log }
    }

    /// Answers every request on every connection with `response`, keeping connections open.
    pub fn answering(response: impl Into<Vec<u8>>) -> Upstream {
        let response: Rc<[u8]> = response.into().into();
        Upstream::start(move |mut conn| {
            let response = response.clone();
            async move {
                while conn.read_request().await.is_some() {
                    if !conn.write(&response).await {
                        break;
                    }
                }
            }
        })
    }

    /// An address nothing listens on (bound, then released).
    pub fn refusing_address() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a probe listener: {e}"));
        listener
            .local_addr()
            .unwrap_or_else(|e| panic!("probe listener address: {e}"))
    }

    /// Every request read so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        self.log.requests.borrow().clone()
    }

    /// The only request read so far (fails if there are more or none).
    pub fn only_request(&self) -> Received {
        let requests = self.requests();
        match requests.as_slice() {
            [one] => one.clone(),
            other => panic!(
                "expected one request upstream, got {}: {other:#?}",
                other.len()
            ),
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.log.connections.get()
    }
}
