//! A TCP stream with an owned read buffer, the one I/O shape both fixtures need: read until a
//! message is complete, consume it, keep whatever came after it for the next one.

use std::io;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use thiserror::Error;

use crate::http::{ChunkedDecoder, Framing, HttpError};

/// Heads larger than this are refused rather than buffered forever.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The peer closed between messages: the normal end of a keep-alive connection.
    #[error("connection closed by peer")]
    Closed,
    #[error("connection closed in the middle of a message")]
    Truncated,
    #[error("head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
}

/// Read size; also the headroom kept free before each read.
const READ_CHUNK: usize = 16 * 1024;

pub struct BufConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl BufConn {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(2 * READ_CHUNK),
            start: 0,
        }
    }

    /// Bytes received and not yet consumed.
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Marks `n` pending bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Reads once more; returns the number of new bytes (0 = the peer closed).
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
        let len = self.buf.len();
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = self.stream.read(buf.slice_mut(len..)).await;
        self.buf = slice.into_inner();
        res
    }

    /// Writes all of `data`, handing the buffer back for reuse.
    pub async fn write_all(&mut self, data: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (res, data) = self.stream.write_all(data).await;
        (res.map(|_| ()), data)
    }
}

impl BufConn {
    /// Reads until `parse` recognises a complete head at the start of the pending bytes.
    pub async fn read_head<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> Result<Option<T>, HttpError>,
    ) -> Result<T, ConnError> {
        loop {
            if let Some(head) = parse(self.pending())? {
                return Ok(head);
            }
            if self.pending().len() > MAX_HEAD {
                return Err(ConnError::HeadTooLarge);
            }
            if self.fill().await? == 0 {
                return Err(if self.pending().is_empty() {
                    ConnError::Closed
                } else {
                    ConnError::Truncated
                });
            }
        }
    }

    /// Reads the body that follows a head of `head_len` bytes and consumes both. The payload
    /// (de-chunked) is appended to `payload` when given. Returns false when the body ran to
    /// connection close, so the connection cannot be reused.
    pub async fn read_body(
        &mut self,
        head_len: usize,
        framing: Framing,
        mut payload: Option<&mut Vec<u8>>,
    ) -> Result<bool, ConnError> {
        match framing {
            Framing::None => {
                self.consume(head_len);
                Ok(true)
            }
            Framing::Length(n) => {
                let total = usize::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_add(head_len))
                    .ok_or(ConnError::HeadTooLarge)?;
                while self.pending().len() < total {
                    if self.fill().await? == 0 {
                        return Err(ConnError::Truncated);
                    }
                }
                if let Some(p) = payload {
                    p.extend_from_slice(self.pending().get(head_len..total).unwrap_or_default());
                }
                self.consume(total);
                Ok(true)
            }
            Framing::Chunked => {
                self.consume(head_len);
                let mut decoder = ChunkedDecoder::new();
                loop {
                    let used = decoder.feed(self.pending(), payload.as_deref_mut())?;
                    self.consume(used);
                    if decoder.is_done() {
                        return Ok(true);
                    }
                    if self.fill().await? == 0 {
                        return Err(ConnError::Truncated);
                    }
                }
            }
            Framing::UntilClose => {
                self.consume(head_len);
                loop {
                    if let Some(p) = payload.as_deref_mut() {
                        p.extend_from_slice(self.pending());
                    }
                    let n = self.pending().len();
                    self.consume(n);
                    if self.fill().await? == 0 {
                        return Ok(false);
                    }
                }
            }
        }
    }
}
