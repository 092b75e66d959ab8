//! The features of the request path, each one module implementing the phases it needs
//! (`crate::phases::Phases`), its decisions and its I/O together: plans (`auth`), routing, the
//! MCP protocol rules every API gets (`protocol`), the MCP ACL (`acl`), tool integrity (`integrity`:
//! the list cache and pinning), rate limits and quotas (`limits`), the virtual server over several upstreams
//! (`virtual_server`) and the exchange log (`observe`).
//! `crate::phases::Features` lists them in the order their phases run.

pub mod acl;
pub mod auth;
pub mod integrity;
pub mod limits;
pub mod observe;
pub mod protocol;
pub mod routing;
pub mod virtual_server;
