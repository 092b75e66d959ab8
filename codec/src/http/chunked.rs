//! The chunked transfer coding (RFC 9112 §7.1): an incremental decoder that reports chunk data as
//! ranges of its input (zero copy) and accepts any read boundary, and the encoder for output.
//!
//! The decoder is strict where leniency enables request smuggling: chunk sizes are 1+ hex digits
//! without overflow, every line ends in CRLF (no bare LF / bare CR), data is followed by CRLF, and
//! extension and trailer sections are bounded. Extensions and trailers are skipped, not returned.

use super::HttpError;
use crate::limits::{MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES};

/// The terminating chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex chunk size; `digits` so far.
    Size {
        digits: u32,
    },
    /// Whitespace after the size: only a `;` extension may follow (RFC 9112 BWS).
    SizeWhitespace,
    /// Inside chunk extensions, skipped up to CR.
    Extension,
    /// Saw CR ending the size line.
    SizeLf,
    /// Inside chunk data, `remaining` bytes to go.
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final blank line).
    TrailerStart,
    /// Inside a trailer field line, skipped up to CR.
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
    Failed,
}

/// Incremental chunked-body decoder. Feed it bytes as they arrive; it returns how many it consumed
/// and reports decoded data as ranges of the input it was given.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    line_len: usize,
    trailer_len: usize,
    body_len: u64,
    max_body: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder without a body-size limit (chunk lines and trailers are still bounded).
    pub fn new() -> Self {
        Self::with_max_body(u64::MAX)
    }

    /// A decoder that fails with [`HttpError::BodyTooLarge`] once the decoded data exceeds
    /// `max_body` bytes, before reporting the excess.
    pub fn with_max_body(max_body: u64) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            line_len: 0,
            trailer_len: 0,
            body_len: 0,
            max_body,
        }
    }

    /// Terminal chunk and trailers consumed: the message is over.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded data bytes so far.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Decode from `input`; for every piece of chunk data call `on_data(range_in_input)`.
    /// Returns the bytes consumed from `input`; the caller keeps the rest (after the message ends,
    /// the rest belongs to the next message). After an error the decoder stays failed.
    pub fn decode(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<usize, HttpError> {
        let result = self.run(input, &mut on_data);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn run(
        &mut self,
        input: &[u8],
        on_data: &mut impl FnMut(std::ops::Range<usize>),
    ) -> Result<usize, HttpError> {
        let mut pos = 0;
        while pos < input.len() {
            if let State::Data { remaining } = self.state {
                let available = input.len() - pos;
                let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
                on_data(pos..pos + take);
                pos += take;
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                continue;
            }
            let Some(&b) = input.get(pos) else { break };
            match self.state {
                State::Size { digits } => {
                    if let Some(d) = hex_value(b) {
                        self.count_line_byte()?;
                        if self.size > (u64::MAX >> 4) {
                            return Err(HttpError::BadFraming("chunk size overflow"));
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.state = State::Size { digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(HttpError::BadFraming("invalid chunk size"));
                    } else {
                        match b {
                            b';' => {
                                self.count_line_byte()?;
                                self.state = State::Extension;
                            }
                            b' ' | b'\t' => {
                                self.count_line_byte()?;
                                self.state = State::SizeWhitespace;
                            }
                            b'\r' => self.state = State::SizeLf,
                            _ => return Err(HttpError::BadFraming("invalid chunk size")),
                        }
                    }
                }
                State::SizeWhitespace => {
                    self.count_line_byte()?;
                    match b {
                        b' ' | b'\t' => {}
                        b';' => self.state = State::Extension,
                        _ => return Err(HttpError::BadFraming("invalid chunk size")),
                    }
                }
                State::Extension => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\t' | b' '..=0x7e | 0x80..=0xff => self.count_line_byte()?,
                    _ => return Err(HttpError::BadFraming("invalid byte in chunk extension")),
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadFraming("bare CR in chunk line"));
                    }
                    self.line_len = 0;
                    if self.size == 0 {
                        self.state = State::TrailerStart;
                    } else {
                        self.body_len = self
                            .body_len
                            .checked_add(self.size)
                            .filter(|&n| n <= self.max_body)
                            .ok_or(HttpError::BodyTooLarge)?;
                        self.state = State::Data {
                            remaining: self.size,
                        };
                        self.size = 0;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(HttpError::BadFraming("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadFraming("chunk data not followed by CRLF"));
                    }
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => {
                    if b == b'\r' {
                        self.state = State::FinalLf;
                    } else {
                        self.trailer_byte(b)?;
                        self.state = State::TrailerLine;
                    }
                }
                State::TrailerLine => {
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else {
                        self.trailer_byte(b)?;
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadFraming("bare CR in trailer"));
                    }
                    self.state = State::TrailerStart;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(HttpError::BadFraming("bare CR after last chunk"));
                    }
                    self.state = State::Done;
                    return Ok(pos + 1);
                }
                State::Done => return Ok(pos),
                State::Failed => {
                    return Err(HttpError::BadFraming("chunked decoder failed earlier"))
                }
                State::Data { .. } => {}
            }
            pos += 1;
        }
        if self.state == State::Failed {
            return Err(HttpError::BadFraming("chunked decoder failed earlier"));
        }
        Ok(pos)
    }

    #[inline]
    fn count_line_byte(&mut self) -> Result<(), HttpError> {
        self.line_len += 1;
        if self.line_len > MAX_CHUNK_LINE_BYTES {
            return Err(HttpError::BadFraming("chunk line too long"));
        }
        Ok(())
    }

    /// Trailer fields are skipped, but must stay within the limit and hold no control bytes.
    #[inline]
    fn trailer_byte(&mut self, b: u8) -> Result<(), HttpError> {
        if b != b'\t' && (b < b' ' || b == 0x7f) {
            return Err(HttpError::BadFraming("invalid byte in trailer"));
        }
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER_BYTES {
            return Err(HttpError::BadFraming("trailer section too large"));
        }
        Ok(())
    }
}

#[inline]
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Append `data` as one chunk: `{hex len}\r\n{data}\r\n`. Empty data writes nothing (an empty
/// chunk would end the body; use [`LAST_CHUNK`] for that).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.reserve(data.len() + 20);
    write_chunk_head(data.len(), out);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Append the head of a chunk of `len` bytes (`{hex len}\r\n`), for a caller that writes the
/// chunk's bytes itself, then `\r\n`. `len` must not be 0 (that head ends the body).
pub fn write_chunk_head(len: usize, out: &mut Vec<u8>) {
    let mut hex = [0u8; 16];
    let mut left = len;
    let mut at = hex.len();
    while left > 0 && at > 0 {
        at -= 1;
        hex[at] = b"0123456789abcdef"[left & 0xf];
        left >>= 4;
    }
    out.extend_from_slice(hex.get(at..).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
}
