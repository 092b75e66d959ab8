//! HTTP/1.1 for a proxy: heads parsed into offsets (httparse), body framing with request-smuggling
//! checks, an incremental chunked decoder, a chunked encoder, and a head writer that rewrites headers
//! and copies the rest verbatim.
//!
//! CONTRACT (the engine in `core/` is written against these signatures; extend, don't break):
//! ```ignore
//! pub struct Span { pub start: u32, pub end: u32 }              // byte range into the caller's buffer
//! pub struct HeaderSpan { pub name: Span, pub value: Span }
//! pub struct RequestHead { pub method: Span, pub target: Span, pub minor_version: u8,
//!                          pub headers: SmallVec<[HeaderSpan; 16]>, pub head_len: usize }
//! impl RequestHead {
//!   pub fn parse(buf: &[u8]) -> Result<Option<RequestHead>, HttpError>; // Ok(None): incomplete head
//!   pub fn method<'b>(&self, buf: &'b [u8]) -> &'b [u8];
//!   pub fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8];     // request-target as sent (path?query)
//!   pub fn path<'b>(&self, buf: &'b [u8]) -> &'b [u8];       // target without the query
//!   pub fn header<'b>(&self, buf: &'b [u8], name: &str) -> Option<&'b [u8]>;  // case-insensitive, first
//!   pub fn headers<'s, 'b>(&'s self, buf: &'b [u8]) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + 's;
//!   pub fn body_framing(&self, buf: &[u8]) -> Result<RequestBody, HttpError>;  // smuggling checks here
//!   pub fn keep_alive(&self, buf: &[u8]) -> bool;            // HTTP/1.1 default on; Connection: close
//!   pub fn expects_continue(&self, buf: &[u8]) -> bool;
//! }
//! pub enum RequestBody { None, Length(u64), Chunked }
//! pub struct ResponseHead { pub status: u16, pub reason: Span, pub minor_version: u8,
//!                           pub headers: SmallVec<[HeaderSpan; 16]>, pub head_len: usize }
//! impl ResponseHead {
//!   pub fn parse(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError>;
//!   pub fn header / headers / keep_alive  (as above)
//!   pub fn body_framing(&self, buf: &[u8], request_method: &[u8]) -> Result<ResponseBody, HttpError>;
//! }
//! pub enum ResponseBody { None, Length(u64), Chunked, CloseDelimited }  // 1xx/204/304/HEAD => None
//! pub struct ChunkedDecoder;  // incremental, any read boundary, extensions, trailers, limits
//! impl ChunkedDecoder {
//!   pub fn new() -> Self;
//!   /// Decode from `input`; for every piece of chunk data call `on_data(range_in_input)`.
//!   /// Returns bytes consumed from `input` (the caller keeps the rest for the next call).
//!   pub fn decode(&mut self, input: &[u8], on_data: impl FnMut(std::ops::Range<usize>)) -> Result<usize, HttpError>;
//!   pub fn is_done(&self) -> bool;                           // terminal chunk and trailers consumed
//! }
//! pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>);     // "{hex}\r\n{data}\r\n"; empty data writes nothing
//! pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
//! pub struct HeadWriter<'b> { .. }  // rewrite a parsed head into `out`
//! impl<'b> HeadWriter<'b> {
//!   pub fn request(buf: &'b [u8], head: &'b RequestHead) -> Self;
//!   pub fn response(buf: &'b [u8], head: &'b ResponseHead) -> Self;
//!   pub fn target(self, new_target: &'b [u8]) -> Self;        // request only: replace request-target
//!   pub fn remove(self, name: &'b str) -> Self;                // drop every field with this name
//!   pub fn remove_hop_by_hop(self) -> Self;                    // Connection, Keep-Alive, TE, Trailer,
//!                                                              // Transfer-Encoding, Upgrade, Proxy-*, + names listed in Connection
//!   pub fn set(self, name: &'b str, value: &'b [u8]) -> Self;  // replace (or add if absent)
//!   pub fn add(self, name: &'b str, value: &'b [u8]) -> Self;
//!   pub fn write(&self, out: &mut Vec<u8>);                    // untouched fields copied verbatim
//! }
//! #[derive(thiserror::Error)] pub enum HttpError { HeadTooLarge, TooManyHeaders, BodyTooLarge,
//!   BadFraming(&'static str), UnsupportedTransferEncoding, Malformed(&'static str) }
//! impl HttpError { pub fn status(&self) -> u16; }  // 431, 431, 413, 400, 501, 400
//! ```
