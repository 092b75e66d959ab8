//! JSON-RPC 2.0 / MCP message classification on simd-json's tape with reused buffers.
//!
//! CONTRACT (the engine and `policies/` are written against these signatures; extend, don't break):
//! ```ignore
//! pub enum Kind { Request, Notification, Response, ErrorResponse }
//! pub enum Target { None, Name(String), Uri(String), PromptRef(String), ResourceRef(String) }
//! pub struct Message { pub kind: Kind, pub id: Option<Range<usize>>,  // exact raw JSON of `id` in the input
//!                      pub method: Option<String>,                      // escapes decoded
//!                      pub target: Target,                              // what the ACL judges
//!                      pub progress_token: Option<Range<usize>>, pub error_code: Option<i64>,
//!                      pub span: Range<usize> }                         // this element's bytes (batch)
//! pub enum Classified { Single(Message), Batch(SmallVec<[Message; 4]>) }
//! pub struct Classifier { .. }   // owns simd-json buffers, reused across calls (one per worker)
//! impl Classifier { pub fn new() -> Self;
//!   /// `input` is copied into an internal scratch buffer (simd-json parses in place), never mutated.
//!   pub fn classify(&mut self, input: &[u8]) -> Result<Classified, JsonRpcError>; }
//! pub enum JsonRpcError { Parse(..) /* -32700 */, InvalidRequest(..) /* -32600 */ }
//! impl JsonRpcError { pub fn code(&self) -> i64; pub fn message(&self) -> &str; }
//! pub fn error_response(id_raw: Option<&[u8]>, code: i64, message: &str, out: &mut Vec<u8>); // id null if None
//! ```
