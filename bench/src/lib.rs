//! mcpgate-bench: shared helpers for the criterion benches and the load harness.
//!
//! The harness pieces (mock upstream, load generator, side-by-side driver) share a deliberately
//! small HTTP/1.1 layer of their own instead of `mcpgate-codec`: a measuring instrument must not
//! change when the thing it measures changes.

pub mod client;
pub mod gateconf;
pub mod http;
pub mod mcp;
pub mod net;
pub mod origin;
pub mod perfstat;
pub mod procstat;
pub mod report;
pub mod runtime;
pub mod wrk;
