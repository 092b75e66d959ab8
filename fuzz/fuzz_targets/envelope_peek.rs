#![no_main]
//! The exchange log's cheap envelope reader against the classifier: no panic on any bytes, and on
//! every input the classifier accepts, a peek that answers agrees with it (kind, method, no target).
//!
//! The body is `checks/envelope_peek.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/envelope_peek.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
