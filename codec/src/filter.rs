//! MCP list-result filtering: drop refused entries from `tools/list`, `prompts/list`,
//! `resources/list` and `resources/templates/list` results, preserving every other byte.
//!
//! CONTRACT (extend, don't break):
//! ```ignore
//! pub enum ListKind { Tools, Prompts, Resources, ResourceTemplates }   // key: name/name/uri/uriTemplate
//! impl ListKind { pub fn from_method(m: &str) -> Option<Self>; }
//! pub struct FilterOutcome { pub kept: usize, pub removed: usize }
//! pub struct ListFilter { .. }  // reusable scratch
//! impl ListFilter { pub fn new() -> Self;
//!   /// `message` is a whole JSON-RPC response (bare body or one SSE event's data).
//!   /// Appends the filtered message to `out`; if nothing is removed `out` is byte-identical to input.
//!   pub fn filter(&mut self, message: &[u8], kind: ListKind, keep: impl FnMut(&str) -> bool,
//!                 out: &mut Vec<u8>) -> Result<FilterOutcome, FilterError>; }
//! ```
