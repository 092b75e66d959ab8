//! The configuration file as the operator writes it: serde structs mirroring the TOML, with every
//! table closed (`deny_unknown_fields`) so a typo is an error, not a silently ignored key.
//! Nothing here is validated; `super::validate` turns these into the runtime snapshot.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    #[serde(default)]
    pub gateway: UserGateway,
    #[serde(default)]
    pub api: Vec<UserApi>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserGateway {
    pub listen: Option<Spanned<String>>,
    /// 0 or absent: one worker per available core.
    pub workers: Option<usize>,
    pub driver: Option<Spanned<String>>,
    pub pin_cpus: Option<bool>,
    /// Address of the admin listener; the empty string disables it.
    pub admin: Option<Spanned<String>>,
    #[serde(default)]
    pub limits: UserLimits,
    #[serde(default)]
    pub timeouts: UserTimeouts,
    #[serde(default)]
    pub dns: UserDns,
    /// The gateway's public base URL (behind a balancer / TLS terminator); an API's public URL
    /// defaults to it + the API path.
    pub public_url: Option<Spanned<String>>,
    /// `[gateway.log]`: see `super::log`.
    pub log: Option<super::log::UserGatewayLog>,
    /// `[gateway.traces]`: see `super::traces`.
    pub traces: Option<super::traces::UserTraces>,
    /// `[gateway.sessions]`: see `super::sessions`.
    pub sessions: Option<super::sessions::UserSessions>,
    /// `[gateway.admin_auth]`: bearer tokens for the admin listener (see `super::admin`).
    pub admin_auth: Option<super::admin::UserAdminAuth>,
    /// `[gateway.manage]`: the management API's history and audit log (see `super::admin`).
    pub manage: Option<super::admin::UserManage>,
    /// Lets the admin listener run without a token on a non-loopback address.
    pub allow_unauthenticated_admin: Option<bool>,
    /// Browser origins allowed besides loopback ones and the public URLs' (`"*"`: any).
    pub allowed_origins: Option<Vec<Spanned<String>>>,
    /// `[gateway.tls]`: the `listen` listener speaks TLS (see `super::tls`).
    pub tls: Option<super::tls::UserServerTls>,
    /// `[[gateway.listeners]]`: more client listeners (see `super::tls`).
    #[serde(default)]
    pub listeners: Vec<super::tls::UserListener>,
    /// `[gateway.redis]`: the store of cluster-scope rate limits (see `super::limits`).
    pub redis: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserLimits {
    pub max_head_bytes: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub upstream_pool_idle: Option<usize>,
    pub max_sse_event_bytes: Option<usize>,
}

/// Durations are strings with a unit: `"250ms"`, `"10s"`, `"5m"`, `"1h"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTimeouts {
    pub client_header: Option<Spanned<String>>,
    pub client_body: Option<Spanned<String>>,
    pub upstream_connect: Option<Spanned<String>>,
    pub upstream_response_head: Option<Spanned<String>>,
    pub upstream_idle: Option<Spanned<String>>,
    pub sse_idle: Option<Spanned<String>>,
    pub client_write: Option<Spanned<String>>,
    pub keepalive_idle: Option<Spanned<String>>,
    pub shutdown_grace: Option<Spanned<String>>,
}

/// `[gateway.dns]`: `refresh` is a duration or `"off"`; `timeout` a duration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDns {
    pub refresh: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserApi {
    pub name: Option<Spanned<String>>,
    pub path: Spanned<String>,
    /// A URL string (pass-through), or `[[api.upstream]]` tables (a virtual server, see
    /// `super::virtual_server`).
    pub upstream: Spanned<toml::Value>,
    /// `[api.virtual]`: the virtual server's settings (see `super::virtual_server`).
    #[serde(rename = "virtual")]
    pub virtual_server: Option<super::virtual_server::UserVirtual>,
    pub public_url: Option<Spanned<String>>,
    /// Authentication plans (`mcpgate_policies::auth`), compiled by `super::auth` so errors carry
    /// the table's position.
    pub plan: Option<Spanned<toml::Value>>,
    /// The MCP ACL in native form (`mcpgate_policies::acl::AclConfig`), checked by validation
    /// so its errors carry the table's position.
    pub acl: Option<Spanned<toml::Value>>,
    /// A Gravitee ACL JSON file (path relative to the config file), used as-is.
    pub acl_file: Option<Spanned<String>>,
    /// `[api.log]`: payload capture and metric labels of this API (see `super::log`).
    pub log: Option<super::log::UserApiLog>,
    /// `[api.tls]`: how to reach an `https://` upstream (see `super::tls`).
    pub tls: Option<super::tls::UserUpstreamTls>,
    /// `[[api.limit]]`: rate limits and quotas (see `super::limits`).
    pub limit: Option<Spanned<toml::Value>>,
    /// `[api.cache]`: the list cache (see `super::integrity`).
    pub cache: Option<super::integrity::UserApiCache>,
    /// `[api.pin]`: tools and prompts pinned against silent changes (see `super::integrity`).
    pub pin: Option<super::integrity::UserApiPin>,
}
