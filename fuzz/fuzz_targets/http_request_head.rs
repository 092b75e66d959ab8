#![no_main]
//! Request head parsing, framing and rewriting on arbitrary bytes: no panic, every span and
//! length inside the input, a parsed head has a valid Host (or is HTTP/1.0 without one) and no
//! fragment, and an unchanged rewrite parses back to the same fields.
//!
//! The body is `checks/http_request_head.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/http_request_head.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
