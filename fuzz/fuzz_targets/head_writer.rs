#![no_main]
//! The response-head rewriter (`HeadWriter::response`, what the relay phase uses on every
//! upstream answer) under fuzzer-chosen edits. Input: a response head, a NUL byte, then one edit
//! per `\n`-separated line: `r<name>` remove, `s<name>:<value>` set, `a<name>:<value>` add, `h`
//! drop the hop-by-hop fields. Invariants: no panic; the output always ends its head with a blank
//! line and writes the same bytes twice; and when the edits hold only values the writer documents
//! as writable (no CR, LF or NUL) and that survive a parse unchanged (no other control byte, no
//! surrounding whitespace), the output parses back (unless an added field breaks the field-count
//! or size limit) with the same status and reason and exactly the fields of a model: the input's
//! fields minus the removed, set and (with `h`) hop-by-hop and Connection-listed ones, in order,
//! then the set and added ones whose name is a token.
//!
//! The body is `checks/head_writer.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/head_writer.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
