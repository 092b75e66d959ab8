//! Tool integrity, the decisions (docs/integrity.md): what a list cache keys on and how long it
//! keeps an answer ([`cache`]), and pinning — a digest of every tool's and prompt's definition
//! over canonical JSON ([`canonical`]), the lockfile the operator reviews, what counts as a new or
//! changed definition and what the gateway does about it ([`pin`]), and the readable diff it
//! logs ([`diff`]). No I/O: the engine's `features::integrity` reads files, keeps the state of
//! every worker and answers clients.

pub mod cache;
pub mod canonical;
pub mod diff;
pub mod pin;
