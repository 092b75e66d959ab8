#![no_main]
//! JSON-RPC classifier on arbitrary bytes: no panic; whatever it accepts serde_json parses too,
//! with the same envelope (ids, method, spans agree with serde_json's reading).
//!
//! The body is `checks/jsonrpc_classify.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/jsonrpc_classify.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
