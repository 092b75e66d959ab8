#![no_main]
//! Chunked decoding on arbitrary bytes. The first two bytes pick a split point. Invariants: no
//! panic, consumed <= input, data ranges inside the input, and decoding in two pieces (keeping the
//! unconsumed rest, as the engine does) gives the same data, outcome and end as decoding whole.
//!
//! The body is `checks/chunked_decoder.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/chunked_decoder.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
