#![no_main]
//! ACL conditions in CEL, compiled and evaluated through the public ACL path the gateway uses (a
//! Gravitee rule granting `tools/list` + `tools/call` for every tool under the fuzzed condition).
//! Input: the condition, then NUL-separated facts (tool name, header value, subject, scope, a
//! claim). Invariants: no panic and no stack overflow (compile limits bound the evaluator); a
//! condition that does not compile is a load error naming the condition; evaluation is
//! deterministic; ungoverned methods pass whatever the condition; and with a condition that does
//! not read `mcp` a tool is listed exactly when it may be called.
//!
//! The body is `checks/cel_condition.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/cel_condition.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
