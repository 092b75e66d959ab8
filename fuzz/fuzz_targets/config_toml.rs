#![no_main]
//! The configuration loader (`mcpgate_core::config::load_str`: TOML → user structs → validated
//! snapshot, including `[api.acl]`, `[api.plan]` and `[api.log]`) on arbitrary text. Invariants:
//! no panic; an error says where (a parse error's line and column lie inside the text); a loaded
//! snapshot has one ACL and plan slot per API, unique entrypoint paths starting with `/`, and
//! loading the same text again gives the same snapshot.
//!
//! Inputs the loader would turn into I/O are skipped, not fed: an upstream whose host is not an
//! IP literal (resolving it is a DNS query), any `*_file` / `*_files` / `file` key and a `tls`
//! table's certificate, key and CA paths (a file read, which a fuzzer could point at `/dev/zero`).
//!
//! The body is `checks/config_toml.rs`, shared with the unit tests that replay the corpus and the
//! regression inputs (see README.md, Fuzzing).
use libfuzzer_sys::fuzz_target;

#[path = "../checks/config_toml.rs"]
mod check;

fuzz_target!(
    init: {
        // The loader logs each ACL warning at `warn`; thousands of lines per second would
        // dominate the run. Errors still print.
        if std::env::var_os("MCPGATE_LOG").is_none() {
            std::env::set_var("MCPGATE_LOG", "error");
        }
        mcpgate_core::log::init_from_env();
    },
    |data: &[u8]| check::check(data)
);
