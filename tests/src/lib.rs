//! mcpgate-tests: helpers for end-to-end tests (spawning the gateway and real MCP peers).
