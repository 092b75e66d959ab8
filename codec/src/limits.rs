//! Named limits. Every limit maps to a typed error with an HTTP status (see `http::HttpError`).

/// Largest request or response head (request line + headers), bytes. Over it: 431 (request) / 502 (response).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one head. Over it: 431.
pub const MAX_HEADERS: usize = 64;
/// Default largest request body the gateway accepts, bytes (configurable per gateway). Over it: 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Largest chunk-size line (hex digits + extensions), bytes. Over it: 400.
pub const MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;
/// Largest trailer section, bytes. Over it: 400.
pub const MAX_TRAILER_BYTES: usize = 8 * 1024;
/// Largest single SSE event (raw bytes) the gateway will hold while it is incomplete.
pub const MAX_SSE_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// Deepest JSON nesting the classifier accepts. Deeper: -32600.
pub const MAX_JSON_DEPTH: usize = 64;
/// Most messages in one 2025-03-26 batch.
pub const MAX_BATCH_LEN: usize = 256;
