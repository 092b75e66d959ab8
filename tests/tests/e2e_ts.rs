//! The official TypeScript SDK client (`@modelcontextprotocol/sdk`) through mcpgate to
//! server-everything: every scenario, directly (control) and through the gateway on both
//! engine drivers. The scenarios and their checks live in `mcpgate_tests::scenarios`.

mcpgate_tests::sdk_suite!(mcpgate_tests::Sdk::TypeScript);

/// Twelve TypeScript clients at once through one gateway: no cross-talk between sessions.
mod concurrent_sessions {
    use mcpgate_tests::scenarios::{run_scenario, Route};
    use mcpgate_tests::{Driver, Sdk};

    #[test]
    fn direct() {
        run_scenario(Sdk::TypeScript, Route::Direct, "concurrent");
    }

    #[test]
    fn via_gateway_epoll() {
        run_scenario(Sdk::TypeScript, Route::Through(Driver::Epoll), "concurrent");
    }

    #[test]
    fn via_gateway_uring() {
        run_scenario(Sdk::TypeScript, Route::Through(Driver::Uring), "concurrent");
    }
}
