//! mcpgate-bench: shared helpers for the criterion benches and the load harness.
