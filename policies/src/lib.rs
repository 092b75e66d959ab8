//! mcpgate-policies: decisions without I/O (the MCP ACL, conditions, credential checks).
#![forbid(unsafe_code)]

pub mod acl;
pub mod auth;
pub mod tls;
