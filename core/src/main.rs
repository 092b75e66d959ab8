//! The `mcpgate` binary.
fn main() {}
