#![no_main]
//! List filter on arbitrary bytes: no panic; when it succeeds the output is valid JSON whose
//! entries are a subset (in order) of the input's, and with nothing removed it is the input.
//!
//! The body is `checks/list_filter.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/list_filter.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
