#![no_main]
//! The Gravitee ACL JSON (`Acl::parse_gravitee`, `Acl::from_gravitee_json`: what `acl_file` and
//! `--acl FILE` load) on arbitrary bytes. Invariants: no panic; whatever parses is JSON, and
//! survives a serialise → parse round trip unchanged; a load error says where; a loaded ACL
//! judges deterministically, never governs `initialize` / `ping` / notifications (an ACL lets a
//! client connect whatever its rules), and refuses a governed call without a name.
//!
//! The body is `checks/acl_json.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/acl_json.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
