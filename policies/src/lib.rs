//! mcpgate-policies: decisions without I/O (the MCP ACL, conditions, credential checks).
pub mod acl;
pub mod auth;
