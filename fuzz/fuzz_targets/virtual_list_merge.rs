#![no_main]
//! The virtual server's merged lists on arbitrary upstream answers: no panic, always a JSON
//! object, and the byte merge agrees with the `Value` merge.
//!
//! The body is `checks/virtual_list_merge.rs`, shared with the unit tests that replay the corpus
//! and the regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/virtual_list_merge.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
