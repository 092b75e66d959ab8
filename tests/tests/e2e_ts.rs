//! The official TypeScript SDK client (`@modelcontextprotocol/sdk`) through mcpgate to
//! server-everything: every scenario, directly (control) and through the gateway on both
//! engine drivers. The scenarios and their checks live in `mcpgate_tests::scenarios`.

mcpgate_tests::sdk_suite!(mcpgate_tests::Sdk::TypeScript);
