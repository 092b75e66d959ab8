//! The raw client: a loopback connection to the gateway that writes exact bytes and reads
//! answers with a deadline, and the small parsers the tests assert on — a [`Response`] (status,
//! head, decoded body), the events of a chunked event stream ([`EventStream`]), and the bytes
//! left when the gateway closes.

use std::net::SocketAddr;

use mcpgate_codec::http::{ChunkedDecoder, ResponseBody, ResponseHead};
use monoio::net::TcpStream;

use super::super::io::{read_more, write_all, ReadError};
use super::harness::WAIT;
use super::upstream::{header_in, split_request_id};

/// A POST of `body` to `path` (`Content-Length` framing, `Host: gw.test`).
pub fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A GET of `path` asking for an event stream.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\nAccept: text/event-stream\r\n\r\n")
        .into_bytes()
}

/// One answer read by the client.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The head as received, up to and including the blank line, without `x-request-id`
    /// (see `request_id`).
    pub head: String,
    /// The body, decoded if it was chunked.
    pub body: Vec<u8>,
    /// The answer's `x-request-id`.
    pub request_id: Option<String>,
}

impl Response {
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

    /// The body as JSON (fails the test if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body_text()))
    }

    /// Asserts a gateway-written JSON-RPC error: `status`, `code` and the exact body, whose
    /// `error.data.request_id` is the answer's `x-request-id`.
    pub fn assert_gateway_error(&self, status: u16, code: i64, id: &str, message: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        // Refusals before a request is read whole (431, a head without Host) have no exchange
        // and so no id; errors the engine writes carry it in the body too, the refusals a
        // feature writes itself (a header mismatch) only in the head.
        let plain = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"{message}"}}}}"#
        );
        match self.header("x-request-id") {
            Some(rid) if self.body_text() != plain => {
                let with_id = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"{message}","data":{{"request_id":"{rid}"}}}}}}"#
                );
                assert_eq!(self.body_text(), with_id);
            }
            _ => assert_eq!(self.body_text(), plain),
        }
    }
}

pub struct Client {
    stream: TcpStream,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the gateway: {e}"));
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let mut owned = bytes.to_vec();
        write_all(&mut self.stream, &mut owned)
            .await
            .unwrap_or_else(|e| panic!("cannot write to the gateway: {e}"));
    }

    /// Sends `request` and reads the answer (the request must not be HEAD).
    pub async fn request(&mut self, request: &[u8]) -> Response {
        self.send(request).await;
        self.read_response().await
    }

    /// Reads one answer to a request other than HEAD.
    pub async fn read_response(&mut self) -> Response {
        self.read_response_to(b"GET").await
    }

    /// Reads one answer to a HEAD request (no body, whatever its head declares).
    pub async fn read_response_to_head(&mut self) -> Response {
        self.read_response_to(b"HEAD").await
    }

    async fn read_response_to(&mut self, method: &[u8]) -> Response {
        let (status, head_len, framing) = self.parse_head(method).await;
        let (head, request_id) =
            split_request_id(String::from_utf8_lossy(&self.buf[..head_len]).into_owned());
        self.buf.drain(..head_len);
        let body = match framing {
            ResponseBody::None => Vec::new(),
            ResponseBody::Length(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                while self.buf.len() < n {
                    self.read_some().await;
                }
                self.buf.drain(..n).collect()
            }
            ResponseBody::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = Vec::new();
                while !self.decode_chunks(&mut decoder, &mut body) {
                    self.read_some().await;
                }
                body
            }
            ResponseBody::CloseDelimited => {
                let mut rest = std::mem::take(&mut self.buf);
                rest.extend(self.closed().await);
                rest
            }
        };
        Response {
            status,
            head,
            body,
            request_id,
        }
    }

    /// Reads a response head (to a GET) and leaves its body unread; for event streams.
    pub async fn read_head(&mut self) -> Response {
        let (status, head_len, _) = self.parse_head(b"GET").await;
        let (head, request_id) =
            split_request_id(String::from_utf8_lossy(&self.buf[..head_len]).into_owned());
        self.buf.drain(..head_len);
        Response {
            status,
            head,
            body: Vec::new(),
            request_id,
        }
    }

    /// Reads until a complete head is buffered: its status, length and the body's framing.
    async fn parse_head(&mut self, method: &[u8]) -> (u16, usize, ResponseBody) {
        loop {
            let parsed = ResponseHead::parse(&self.buf).unwrap_or_else(|e| {
                panic!(
                    "the gateway's answer does not parse ({e}): {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            });
            if let Some(rh) = parsed {
                let framing = rh
                    .body_framing(&self.buf, method)
                    .unwrap_or_else(|e| panic!("the gateway's answer has a bad framing ({e})"));
                return (rh.status, rh.head_len, framing);
            }
            self.read_some().await;
        }
    }

    /// Decodes the buffered chunks into `body`, consuming them; whether the last chunk came.
    fn decode_chunks(&mut self, decoder: &mut ChunkedDecoder, body: &mut Vec<u8>) -> bool {
        let input = &self.buf;
        let consumed = decoder
            .decode(input, |r| body.extend_from_slice(&input[r]))
            .unwrap_or_else(|e| panic!("the gateway sent bad chunks ({e})"));
        self.buf.drain(..consumed);
        decoder.is_done()
    }

    /// One more read; fails the test on end of stream or after [`WAIT`].
    async fn read_some(&mut self) {
        match read_more(&mut self.stream, &mut self.buf, WAIT).await {
            Ok(0) => panic!(
                "the gateway closed the connection; unparsed: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Ok(_) => {}
            Err(ReadError::Io(e)) => panic!("reading from the gateway failed: {e}"),
            Err(ReadError::Timeout) => panic!(
                "nothing more from the gateway within {WAIT:?}; unparsed: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Waits until the gateway closes the connection (end of stream or reset) and returns the
    /// bytes that came before; fails the test if it stays open for [`WAIT`].
    pub async fn closed(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buf);
        loop {
            match read_more(&mut self.stream, &mut rest, WAIT).await {
                Ok(0) | Err(ReadError::Io(_)) => return rest,
                Ok(_) => {}
                Err(ReadError::Timeout) => panic!(
                    "the gateway kept the connection open for {WAIT:?}; received: {:?}",
                    String::from_utf8_lossy(&rest)
                ),
            }
        }
    }

    /// The events of a chunked event stream whose head was read with [`Client::read_head`].
    pub fn events(&mut self) -> EventStream<'_> {
        EventStream {
            client: self,
            decoder: ChunkedDecoder::new(),
            data: Vec::new(),
        }
    }
}

/// Reads a chunked event stream event by event (an event ends at a blank line, `\n\n`).
pub struct EventStream<'c> {
    client: &'c mut Client,
    decoder: ChunkedDecoder,
    /// Decoded and not yet returned.
    data: Vec<u8>,
}

impl EventStream<'_> {
    /// The next complete event, its blank line included.
    pub async fn next_event(&mut self) -> String {
        loop {
            if let Some(end) = self.data.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.data.drain(..end + 2).collect();
                return String::from_utf8_lossy(&event).into_owned();
            }
            assert!(
                !self.decoder.is_done(),
                "the stream ended before another event; left: {:?}",
                String::from_utf8_lossy(&self.data)
            );
            let before = self.data.len();
            let done = self.client.decode_chunks(&mut self.decoder, &mut self.data);
            if !done && self.data.len() == before {
                self.client.read_some().await;
            }
        }
    }

    /// Reads to the stream's last chunk; returns what came after the last complete event
    /// (nothing, for a well-formed stream).
    pub async fn end(mut self) -> String {
        while !self.client.decode_chunks(&mut self.decoder, &mut self.data) {
            self.client.read_some().await;
        }
        String::from_utf8_lossy(&self.data).into_owned()
    }
}
