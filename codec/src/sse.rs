//! Incremental `text/event-stream` parser (WHATWG rules) and writer.
//!
//! CONTRACT (the engine in `core/` is written against these signatures; extend, don't break):
//! ```ignore
//! pub struct SseParser { .. }     // state across reads; result independent of read boundaries
//! pub struct SseEvent { pub raw: Range<usize>,   // the event's exact raw bytes incl. its blank line,
//!                                                // as offsets into the buffer passed to `next_event`
//!                       pub event: Option<Range<usize>>, pub id: Option<Range<usize>>,
//!                       pub retry: Option<u64>, pub data: SseData, pub is_comment_only: bool }
//! pub enum SseData { None, Single(Range<usize>), Joined(Vec<u8>) }  // Single: one `data:` line, zero-copy
//! impl SseParser {
//!   pub fn new() -> Self;
//!   /// Parse one complete event from `buf[..]` (the caller appends reads to `buf` and drains
//!   /// `consumed` bytes after each event). Ok(None) means "need more bytes".
//!   pub fn next_event(&mut self, buf: &[u8]) -> Result<Option<(SseEvent, usize /*consumed*/)>, SseError>;
//!   pub fn data<'b>(&self, ev: &'b SseEvent, buf: &'b [u8]) -> &'b [u8];
//! }
//! pub struct SseWriter;  pub fn write_event(out: &mut Vec<u8>, event: Option<&[u8]>, id: Option<&[u8]>,
//!                                            retry: Option<u64>, data: &[u8]); // data lines split on \n
//! ```
