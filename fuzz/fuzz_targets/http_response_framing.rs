#![no_main]
//! Response head + body framing on arbitrary bytes. The first byte picks the request method (HEAD
//! or not). Invariants: no panic, head_len inside the input, bodyless statuses have no body, and a
//! chunked body's decoded ranges stay inside the bytes after the head.
//!
//! The body is `checks/http_response_framing.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/http_response_framing.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
