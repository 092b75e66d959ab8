//! mcpgate-policies: decisions without I/O (the MCP ACL, conditions, credential checks, rate
//! limits and quotas, tool integrity: list-cache rules and pinning, the virtual server's naming,
//! cursors and merge rules, the merged lists on bytes).
#![forbid(unsafe_code)]

pub mod acl;
pub mod auth;
pub mod integrity;
pub mod limits;
pub mod merged_list;
pub mod origin;
pub mod tls;
pub mod virtual_server;
