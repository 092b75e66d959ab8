#![no_main]
//! Origins and the virtual server's relayed ids and collided URIs, as clients send them back.
//!
//! The body is `checks/origin_relay_ids.rs`, shared with the unit tests that replay the corpus
//! and the regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/origin_relay_ids.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
