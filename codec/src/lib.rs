//! mcpgate-codec: bytes in, structure out, for the gateway's hot path.
//!
//! Pure: no I/O, no runtime, no allocation where avoidable. Everything parses into offsets into the
//! caller's buffer so the engine copies only what it changes.
//!
//! - [`http`]: HTTP/1.1 request/response heads (httparse), body framing, chunked coding, head rewriting.
//! - [`sse`]: incremental `text/event-stream` parser and writer.
//! - [`jsonrpc`]: JSON-RPC / MCP message classification (simd-json tape).
//! - [`envelope`]: a cheap look at a plain request's or notification's method, for the exchange log.
//! - [`filter`]: MCP list-result filtering (`tools/list`, `prompts/list`, `resources/list`, templates).
//! - [`list_answer`]: what the list cache reads and writes (a request's cursor, an answer's
//!   `result`, `ttlMs`, `cacheScope`; an answer rebuilt with another id).
//! - [`list_merge`]: what merging list answers reads (an answer's `id` / `result` / `error`, a
//!   list's entries and the member a merge rewrites, `nextCursor`), as offsets.
//! - [`limits`]: the named limits every parser enforces.

#![forbid(unsafe_code)]

pub mod envelope;
pub mod filter;
pub mod http;
pub mod jsonrpc;
pub mod limits;
pub mod list_answer;
pub mod list_merge;
pub mod sse;
