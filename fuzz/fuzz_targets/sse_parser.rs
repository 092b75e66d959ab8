#![no_main]
//! SSE parser on arbitrary bytes: no panic, consumed within the buffer, ranges inside the event,
//! and the same events whether the stream arrives whole or split at fuzzer-chosen points.
//!
//! The body is `checks/sse_parser.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/sse_parser.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
