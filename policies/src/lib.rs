//! mcpgate-policies: decisions without I/O (the MCP ACL, conditions, credential checks, rate
//! limits and quotas).
#![forbid(unsafe_code)]

pub mod acl;
pub mod auth;
pub mod limits;
pub mod tls;
