//! mcpgate-core: the engine (monoio workers, routing, pipeline, upstream pools, config, admin) and
//! the pieces of the `mcpgate` binary that are worth testing without starting it.
//!
//! - [`config`]: TOML → validated immutable snapshot.
//! - [`urls`]: the gateway's own URLs (upstreams, control-plane endpoints) parsed by the `url` crate.
//! - [`dns`]: host-name lookups on resolver threads, never on a worker.
//! - [`route`]: entrypoint matching and request-target rewriting.
//! - [`errors`]: every failure the gateway answers itself, mapped to a status and a JSON-RPC error.
//! - [`headers`]: the request/response head rewrites of a proxy hop.
//! - [`phases`]: the request path as named phases, in order, over a per-request [`context`].
//! - [`features`]: plans, routing, protocol rules, the MCP ACL, the exchange log — each one module
//!   implementing the phases it needs.
//! - [`snapshot`]: a worker's state for one configuration snapshot.
//! - [`engine`]: workers, listeners, the connection loop, the I/O between phases, upstream pools,
//!   signals, admin.
//! - [`startup`]: the startup summary and the warnings about risky setups.
//! - [`admin_auth`]: bearer tokens and the console's login for the admin listener.
//! - [`manage`]: the management API — APIs edited in the config file, validated, deployed
//!   atomically and reloaded, with history, rollback and an audit log.
//! - [`log`]: the gateway's own log lines on `tracing`.
//! - [`request_id`]: the id one exchange carries through logs, records, traces and headers.
//! - [`tls`]: TLS at both edges (rustls): listener and upstream configurations, certificate
//!   reload, client identities.

pub mod log;

pub mod admin_auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod dns;
pub mod engine;
pub mod errors;
pub mod features;
pub mod headers;
pub mod manage;
pub mod observe;
pub mod phases;
pub mod request_id;
pub mod route;
pub mod snapshot;
pub mod startup;
pub mod tls;
pub mod urls;
