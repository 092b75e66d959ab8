//! The config-loader fuzz target, run as an ordinary test on its seed corpus and kept crash
//! reproducers: the same code as the fuzz target (`fuzz/checks/config_toml.rs`, included here).
//! See `fuzz/checks/replay.rs`.

#[path = "../../fuzz/checks/config_toml.rs"]
mod config_toml;
#[path = "../../fuzz/checks/replay.rs"]
mod replay;

#[test]
fn config_toml_corpus() {
    replay::replay("config_toml", config_toml::check);
}
