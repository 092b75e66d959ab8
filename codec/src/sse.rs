//! Incremental `text/event-stream` parser (WHATWG rules) and writer.
//!
//! The parser owns the SSE framing of an upstream stream: it finds each complete event (a block of
//! lines ended by a blank line) in the caller's buffer, reports its exact raw byte range so an
//! unmodified event is forwarded byte for byte, and decodes the fields the gateway inspects
//! (`data`, `event`, `id`, `retry`). The writer produces events the gateway changes or creates.
//!
//! Contract with the caller: append every read to one buffer, call [`SseParser::next_event`] until
//! it returns `Ok(None)`, and drain `consumed` bytes from the front after each event. Offsets in an
//! [`SseEvent`] are relative to the buffer passed in that call. The parser remembers how far it has
//! scanned, so an event that arrives in many reads is scanned once, not once per read.
//!
//! Line ends are LF, CRLF or CR. A CR that ends the buffer is taken as a line end at once (a stream
//! that uses bare CRs must not stall until the next write); if the next read starts with LF, that LF
//! completes the CRLF and is skipped. When that CR ended an event, the LF is counted at the start of
//! the next event's `raw`, so the concatenation of all raw ranges is always the stream itself.

use std::ops::Range;

use crate::limits::MAX_SSE_EVENT_BYTES;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why the parser gave up on a stream. The stream cannot be resumed after an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event (complete or still arriving) is larger than the parser's limit
    /// ([`MAX_SSE_EVENT_BYTES`] unless configured).
    #[error("SSE event larger than {limit} bytes")]
    EventTooLarge { limit: usize },
    /// The caller passed a buffer shorter than the part of the current event already scanned
    /// (it drained bytes that were not reported as consumed).
    #[error("SSE buffer rewound below the scanned position")]
    BufferRewound,
}

impl SseError {
    /// The status the gateway answers with when an upstream stream breaks this way.
    pub fn http_status(&self) -> u16 {
        502
    }
    /// JSON-RPC code for an error reported in-band (internal error: the upstream misbehaved).
    pub fn jsonrpc_code(&self) -> i64 {
        -32603
    }
}

/// An event's data as the WHATWG parser would deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SseData {
    /// No `data` line: a browser would not dispatch this event.
    #[default]
    None,
    /// Exactly one `data` line: its value, as offsets into the buffer (zero-copy).
    Single(Range<usize>),
    /// Several `data` lines joined with `\n`.
    Joined(Vec<u8>),
}

/// One complete event (or keep-alive block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event's exact raw bytes, including the blank line that ended it. Excludes a leading
    /// UTF-8 BOM; may start with the LF that completed a CRLF split across reads.
    pub raw: Range<usize>,
    /// Value of the last `event` field.
    pub event: Option<Range<usize>>,
    /// Value of the last valid `id` field (an id containing NUL is ignored, per WHATWG).
    pub id: Option<Range<usize>>,
    /// Value of the last valid `retry` field (ASCII digits only), milliseconds.
    pub retry: Option<u64>,
    pub data: SseData,
    /// True when the block carries no field a client acts on: only comments (keep-alives),
    /// unknown or ignored fields, or nothing but the blank line. Forward `raw` as is.
    pub is_comment_only: bool,
}

impl SseEvent {
    /// The `event` field's value, or `None`.
    pub fn event_type<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        self.event.clone().and_then(|r| buf.get(r))
    }
    /// The `id` field's value, or `None`.
    pub fn id_value<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        self.id.clone().and_then(|r| buf.get(r))
    }
    /// The raw bytes of the event.
    pub fn raw_bytes<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.raw.clone()).unwrap_or_default()
    }
}

/// Fields accumulated for the event being scanned.
#[derive(Debug, Default)]
struct Pending {
    raw_start: usize,
    /// Start of the line not yet terminated.
    line_start: usize,
    /// Where to resume looking for that line's end (bytes before it hold no CR/LF).
    search_from: usize,
    /// The previous line ended with a CR at the end of a read: a LF at `line_start` belongs to it.
    skip_lf: bool,
    event: Option<Range<usize>>,
    id: Option<Range<usize>>,
    retry: Option<u64>,
    data: SseData,
    acts: bool,
}

/// Incremental parser state for one stream. The result never depends on how reads split it.
#[derive(Debug)]
pub struct SseParser {
    bom_checked: bool,
    pending: Pending,
    /// Largest event accepted (raw bytes, complete or still arriving).
    max_event: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_max_event(MAX_SSE_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser refusing events over [`MAX_SSE_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser refusing events over `max_event` bytes (the gateway's `max_sse_event_bytes`).
    pub fn with_max_event(max_event: usize) -> Self {
        SseParser {
            bom_checked: false,
            pending: Pending::default(),
            max_event,
        }
    }

    /// Parse one complete event from `buf` (the caller appends reads to `buf` and drains
    /// `consumed` bytes after each event). `Ok(None)` means "need more bytes".
    pub fn next_event(&mut self, buf: &[u8]) -> Result<Option<(SseEvent, usize)>, SseError> {
        if !self.bom_checked {
            let probe = buf.len().min(BOM.len());
            if buf.get(..probe) == BOM.get(..probe) {
                if buf.len() < BOM.len() {
                    return Ok(None);
                }
                self.pending.raw_start = BOM.len();
                self.pending.line_start = BOM.len();
                self.pending.search_from = BOM.len();
            }
            self.bom_checked = true;
        }
        let p = &mut self.pending;
        if buf.len() < p.search_from {
            return Err(SseError::BufferRewound);
        }
        loop {
            if p.skip_lf {
                match buf.get(p.line_start) {
                    None => return Ok(None),
                    Some(b'\n') => {
                        p.line_start += 1;
                        p.search_from = p.line_start;
                    }
                    Some(_) => {}
                }
                p.skip_lf = false;
            }
            let rest = buf.get(p.search_from..).unwrap_or_default();
            let Some(found) = memchr::memchr2(b'\n', b'\r', rest) else {
                p.search_from = buf.len();
                return over_limit(buf.len() - p.raw_start, self.max_event).map(|()| None);
            };
            let line_end = p.search_from + found;
            let (next_line, ended_by_cr_at_end) = if buf.get(line_end) == Some(&b'\r') {
                match buf.get(line_end + 1) {
                    Some(b'\n') => (line_end + 2, false),
                    Some(_) => (line_end + 1, false),
                    None => (line_end + 1, true),
                }
            } else {
                (line_end + 1, false)
            };
            over_limit(next_line - p.raw_start, self.max_event)?;
            let line = p.line_start..line_end;
            p.line_start = next_line;
            p.search_from = next_line;
            p.skip_lf = ended_by_cr_at_end;
            if line.is_empty() {
                let finished = std::mem::take(p);
                // The LF completing this CR may still arrive; it starts the next event's bytes.
                p.skip_lf = ended_by_cr_at_end;
                let event = SseEvent {
                    raw: finished.raw_start..next_line,
                    event: finished.event,
                    id: finished.id,
                    retry: finished.retry,
                    data: finished.data,
                    is_comment_only: !finished.acts,
                };
                return Ok(Some((event, next_line)));
            }
            apply_line(p, buf, line);
        }
    }

    /// The event's data: the single line zero-copy, or the joined lines.
    pub fn data<'b>(&self, ev: &'b SseEvent, buf: &'b [u8]) -> &'b [u8] {
        event_data(ev, buf)
    }
}

/// The event's data without a parser at hand.
pub fn event_data<'b>(ev: &'b SseEvent, buf: &'b [u8]) -> &'b [u8] {
    match &ev.data {
        SseData::None => &[],
        SseData::Single(r) => buf.get(r.clone()).unwrap_or_default(),
        SseData::Joined(v) => v,
    }
}

fn over_limit(len: usize, limit: usize) -> Result<(), SseError> {
    if len > limit {
        Err(SseError::EventTooLarge { limit })
    } else {
        Ok(())
    }
}

fn apply_line(p: &mut Pending, buf: &[u8], line: Range<usize>) {
    let bytes = buf.get(line.clone()).unwrap_or_default();
    let colon = memchr::memchr(b':', bytes);
    if colon == Some(0) {
        return; // comment
    }
    let (name, mut value) = match colon {
        Some(c) => (&bytes[..c], line.start + c + 1..line.end),
        None => (bytes, line.end..line.end),
    };
    if buf.get(value.start) == Some(&b' ') && value.start < value.end {
        value.start += 1;
    }
    match name {
        b"data" => {
            p.acts = true;
            p.data = match std::mem::take(&mut p.data) {
                SseData::None => SseData::Single(value),
                SseData::Single(first) => {
                    let a = buf.get(first).unwrap_or_default();
                    let b = buf.get(value).unwrap_or_default();
                    let mut joined = Vec::with_capacity(a.len() + 1 + b.len());
                    joined.extend_from_slice(a);
                    joined.push(b'\n');
                    joined.extend_from_slice(b);
                    SseData::Joined(joined)
                }
                SseData::Joined(mut joined) => {
                    joined.push(b'\n');
                    joined.extend_from_slice(buf.get(value).unwrap_or_default());
                    SseData::Joined(joined)
                }
            };
        }
        b"event" => {
            p.acts = true;
            p.event = Some(value);
        }
        b"id" => {
            let v = buf.get(value.clone()).unwrap_or_default();
            if memchr::memchr(0, v).is_none() {
                p.acts = true;
                p.id = Some(value);
            }
        }
        b"retry" => {
            if let Some(ms) = parse_retry(buf.get(value).unwrap_or_default()) {
                p.acts = true;
                p.retry = Some(ms);
            }
        }
        _ => {}
    }
}

/// Digits only, no sign, no overflow; anything else is ignored like a browser does.
fn parse_retry(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Writes events the gateway changes or creates.
#[derive(Debug, Default, Clone, Copy)]
pub struct SseWriter;

impl SseWriter {
    /// See [`write_event`].
    pub fn write_event(
        out: &mut Vec<u8>,
        event: Option<&[u8]>,
        id: Option<&[u8]>,
        retry: Option<u64>,
        data: &[u8],
    ) {
        write_event(out, event, id, retry, data);
    }
    /// See [`write_comment`].
    pub fn write_comment(out: &mut Vec<u8>, text: &[u8]) {
        write_comment(out, text);
    }
}

/// Appends one event. `data` is split into `data:` lines at every LF, CRLF or CR (a client would
/// split there anyway, so no byte of `data` can start a new field); the client rejoins them with
/// LF. CR, LF (and, in `id`, NUL) are dropped from `event` and `id` for the same reason.
pub fn write_event(
    out: &mut Vec<u8>,
    event: Option<&[u8]>,
    id: Option<&[u8]>,
    retry: Option<u64>,
    data: &[u8],
) {
    out.reserve(data.len() + 16);
    if let Some(ev) = event {
        out.extend_from_slice(b"event: ");
        push_single_line(out, ev, false);
        out.push(b'\n');
    }
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        push_single_line(out, id, true);
        out.push(b'\n');
    }
    if let Some(ms) = retry {
        out.extend_from_slice(b"retry: ");
        out.extend_from_slice(ms.to_string().as_bytes());
        out.push(b'\n');
    }
    let mut rest = data;
    loop {
        out.extend_from_slice(b"data: ");
        match memchr::memchr2(b'\n', b'\r', rest) {
            None => {
                out.extend_from_slice(rest);
                out.push(b'\n');
                break;
            }
            Some(i) => {
                out.extend_from_slice(&rest[..i]);
                out.push(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
    out.push(b'\n');
}

/// The length [`write_event`] writes for these fields, exactly.
pub fn event_len(
    event: Option<&[u8]>,
    id: Option<&[u8]>,
    retry: Option<u64>,
    data: &[u8],
) -> usize {
    let single_line = |v: &[u8], drop_nul: bool| {
        v.iter()
            .filter(|&&b| b != b'\n' && b != b'\r' && !(drop_nul && b == 0))
            .count()
    };
    let mut len = 1; // the blank line ending the event
    if let Some(ev) = event {
        len += b"event: ".len() + single_line(ev, false) + 1;
    }
    if let Some(id) = id {
        len += b"id: ".len() + single_line(id, true) + 1;
    }
    if let Some(ms) = retry {
        let digits = ms.checked_ilog10().map_or(1, |d| d as usize + 1);
        len += b"retry: ".len() + digits + 1;
    }
    // Each line of `data` becomes `data: {line}\n`; a CRLF counts as one break.
    let mut rest = data;
    loop {
        len += b"data: ".len() + 1;
        match memchr::memchr2(b'\n', b'\r', rest) {
            None => {
                len += rest.len();
                break;
            }
            Some(i) => {
                len += i;
                let skip = if rest.get(i) == Some(&b'\r') && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = rest.get(i + skip..).unwrap_or_default();
            }
        }
    }
    len
}

/// [`write_event`] as one chunk of a chunked body, written in place: the chunk's head (the
/// event's length is known beforehand, [`event_len`]), the event, the chunk's end — the same
/// bytes as `encode_chunk` of a `write_event`, without the event's own buffer.
pub fn write_event_chunk(
    out: &mut Vec<u8>,
    event: Option<&[u8]>,
    id: Option<&[u8]>,
    retry: Option<u64>,
    data: &[u8],
) {
    let len = event_len(event, id, retry, data);
    out.reserve(len + 20);
    crate::http::write_chunk_head(len, out);
    write_event(out, event, id, retry, data);
    out.extend_from_slice(b"\r\n");
}

/// Appends a comment block (`: text`), e.g. a keep-alive. Line breaks in `text` become spaces.
pub fn write_comment(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(b": ");
    out.extend(
        text.iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\n\n");
}

fn push_single_line(out: &mut Vec<u8>, v: &[u8], drop_nul: bool) {
    out.extend(
        v.iter()
            .copied()
            .filter(|&b| b != b'\n' && b != b'\r' && !(drop_nul && b == 0)),
    );
}
