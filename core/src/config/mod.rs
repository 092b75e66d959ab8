//! Configuration: load a TOML file (or the embedded default), validate it, and produce the immutable
//! runtime snapshot the workers read. Every error names the file, the line and column when the
//! parser knows them, and the field (`api[1].upstream: ...`).
//!
//! A snapshot is never mutated: a reload builds a new [`Config`] and swaps an `Arc` (see
//! `crate::engine::shared`).

mod acl;
mod admin;
mod auth;
mod integrity;
mod limits;
mod log;
pub mod sessions;
mod spans;
mod tls;
mod traces;
mod user;
pub mod virtual_server;

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use admin::{
    AdminAuth, AdminOverrides, AdminToken, Manage, SecretValue, ADMIN_TOKEN_ENV,
    DEFAULT_HISTORY_KEEP, MIN_TOKEN_LEN,
};
pub use auth::ApiAuthCfg;
pub use integrity::{upstream_key, ApiCache, ApiPin, LoadedPins, PinOverrides};
pub use limits::{
    carry_over, ApiLimits, CompiledRule, LimitRule, RedisSettings, RuleState, Scope, Stage,
};
pub use log::{ApiLog, GatewayLog, LogSettings, LogSink};
pub use tls::{Listener, ListenerTls};
use toml::Spanned;
pub use user::UserConfig;
use user::{UserApi, UserDns, UserGateway};

use crate::urls::{self, Scheme};

/// `[gateway.dns] refresh` when not given.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);
/// `[gateway.dns] timeout` when not given.
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// The configuration used when `mcpgate run` gets no `--config`.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// Which monoio driver the workers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring where the kernel allows it, epoll otherwise (monoio's `FusionDriver`).
    Auto,
    /// io_uring only; startup fails where it is unavailable.
    Uring,
    /// epoll only (monoio's `LegacyDriver`).
    Epoll,
}

impl Driver {
    pub fn parse(s: &str) -> Option<Driver> {
        match s {
            "auto" => Some(Driver::Auto),
            "uring" | "io_uring" => Some(Driver::Uring),
            "epoll" | "legacy" => Some(Driver::Epoll),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
    /// Across the gateway; each worker enforces its share (rounded up).
    pub max_connections: usize,
    /// Idle keep-alive connections kept per upstream address, per worker.
    pub upstream_pool_idle: usize,
    /// Largest single SSE event the gateway holds while it is incomplete (502 / the stream is
    /// cut past it).
    pub max_sse_event_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub client_header: Duration,
    pub client_body: Duration,
    pub upstream_connect: Duration,
    pub upstream_response_head: Duration,
    pub upstream_idle: Duration,
    /// Upstream silence on an event stream before the gateway ends it.
    pub sse_idle: Duration,
    /// A client that accepts no byte of the answer for this long is cut off (slow readers must
    /// not hold an upstream connection).
    pub client_write: Duration,
    pub keepalive_idle: Duration,
    pub shutdown_grace: Duration,
}

/// `[gateway.dns]`: when upstream host names are resolved (see docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    /// How often upstream host names are resolved again while running; `None`: only at load
    /// (and reload).
    pub refresh: Option<Duration>,
    /// How long one lookup may take (at load, and each refresh).
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The first listener's address (`listen`).
    pub listen: SocketAddr,
    /// Every client listener: `listen` first (TLS with `[gateway.tls]`), then
    /// `[[gateway.listeners]]`.
    pub listeners: Vec<Listener>,
    pub workers: usize,
    pub driver: Driver,
    pub pin_cpus: bool,
    pub admin: Option<SocketAddr>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub dns: Dns,
    /// `[gateway.sessions]`: the key sealing session ids of APIs with plans.
    pub sessions: sessions::Sessions,
    /// Who may use the admin listener (`[gateway.admin_auth]`, see `admin`).
    pub admin_auth: AdminAuth,
    /// `[gateway.manage]`: where the management API keeps deployed versions and its audit log.
    pub manage: Manage,
    /// `allowed_origins` and the public URLs' hosts: which browser origins may call the APIs.
    pub origins: mcpgate_policies::origin::OriginPolicy,
}

impl Gateway {
    /// The base of the URLs the gateway publishes when no `public_url` says otherwise:
    /// `https://` when the `listen` listener speaks TLS.
    pub fn default_base_url(&self) -> String {
        let tls = self.listeners.first().is_some_and(|l| l.tls.is_some());
        format!("{}://{}", if tls { "https" } else { "http" }, self.listen)
    }
}

/// An upstream MCP endpoint, resolved at load time (and refreshed while running, see
/// `crate::engine`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The URL as configured (for logs).
    pub url: String,
    /// `https://` upstreams are reached over TLS (`tls`).
    pub scheme: Scheme,
    /// The host to resolve: a name, or an IP literal (IPv6 without brackets).
    pub host: String,
    /// The URL's port, or the scheme's default.
    pub port: u16,
    /// The first resolved address: identifies the upstream (pool key).
    pub addr: SocketAddr,
    /// Every resolved address, tried in order when connecting (e.g. `localhost` -> ::1, 127.0.0.1).
    pub addrs: Vec<SocketAddr>,
    /// Value of the `Host` header sent upstream: the URL's `host[:port]` (the port only when not
    /// the scheme's default; IPv6 in brackets).
    pub host_header: String,
    /// Path of the MCP endpoint on the upstream, starts with `/`, no query.
    pub path: String,
    /// The TLS client of an `https://` upstream (`[api.tls]`); `None` for `http://`.
    pub tls: Option<crate::tls::client::UpstreamTls>,
}

impl Upstream {
    /// An IP literal needs no lookup, so nothing to refresh.
    pub fn host_is_ip(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_ok()
    }

    /// Which pooled connections may serve this upstream (see `crate::engine::upstream`).
    pub fn pool_key(&self) -> crate::engine::upstream::PoolKey {
        crate::engine::upstream::PoolKey {
            addr: self.addr,
            tls: self.tls.as_ref().map_or(0, |t| t.id),
        }
    }

    /// Installs newly resolved addresses (never empty: a failed lookup keeps the old ones).
    pub fn set_addrs(&mut self, addrs: Vec<SocketAddr>) {
        if let Some(&first) = addrs.first() {
            self.addr = first;
            self.addrs = addrs;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub name: String,
    /// Entrypoint prefix, starts with `/`, no trailing `/` (except the root itself).
    pub path: String,
    pub upstream: Upstream,
    pub public_url: Option<String>,
    /// The MCP ACL; `None` = no policy (everything passes, nothing is buffered).
    pub acl: Option<ApiAcl>,
    /// The plans (`[api.plan]`); `None` = open (keyless, no challenge).
    pub auth: Option<ApiAuthCfg>,
    /// `[api.log]`: payload capture and target labels.
    pub log: ApiLog,
    /// `[[api.limit]]` and `--limit`: rate limits and quotas (empty: none).
    pub limits: ApiLimits,
    /// `[api.cache]`: the list cache; `None` = list answers are not cached.
    pub cache: Option<ApiCache>,
    /// `[api.pin]` (or `--pin`): tools and prompts pinned; `None` = not checked.
    pub pin: Option<ApiPin>,
    /// `[[api.upstream]]` tables: a virtual server over several upstreams (`upstream` is then a
    /// placeholder the engine never connects to); `None` = the pass-through of one URL.
    pub virtual_server: Option<virtual_server::ApiVirtual>,
}

/// An API's compiled MCP ACL, shared by every worker of a snapshot. Two snapshots' ACLs are
/// equal only when they are the same compiled object (a reload always recompiles).
#[derive(Clone)]
pub struct ApiAcl(pub std::sync::Arc<mcpgate_policies::acl::Acl>);

impl PartialEq for ApiAcl {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ApiAcl {}

impl fmt::Debug for ApiAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiAcl({} rules)", self.0.rule_count())
    }
}

/// The validated, immutable runtime configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub gateway: Gateway,
    /// Each API owns its policies (ACL, plans, log settings).
    pub apis: Vec<Api>,
    /// `[gateway.log]` (observability).
    pub log: LogSettings,
    /// `[gateway.redis]`: the store of cluster-scope rate limits.
    pub redis: Option<RedisSettings>,
    /// `[gateway.traces]`: OTLP export of exchange traces; `None` when off.
    pub traces: Option<crate::observe::trace::TracesConfig>,
    /// Where it came from (`<embedded default>` or the file path), for messages.
    pub source: String,
}

/// Command-line settings that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub admin: Option<String>,
    pub workers: Option<usize>,
    pub driver: Option<String>,
    /// With `path`: replaces the file's APIs by this one.
    pub upstream: Option<String>,
    /// `--upstream NAME=URL` (repeatable): with `path`, a virtual API over these.
    pub named_upstreams: Vec<String>,
    /// `--upstream-cmd [NAME=]COMMAND` (repeatable): stdio upstreams of that virtual API.
    pub upstream_cmds: Vec<String>,
    pub path: Option<String>,
    /// `--acl FILE`: a Gravitee ACL JSON file for the command-line API.
    pub acl: Option<PathBuf>,
    /// `--admin-token-file`, `MCPGATE_ADMIN_TOKEN`, `--allow-unauthenticated-admin`.
    pub admin_auth: AdminOverrides,
    /// `--tls-cert FILE --tls-key FILE`: the `listen` listener speaks TLS with this pair.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `--upstream-ca FILE`: a CA bundle trusted for the command line's https:// upstream.
    pub upstream_ca: Option<PathBuf>,
    /// `--limit 'METHOD[:NAME]=N/INTERVAL'` flags, applied to every API.
    pub limits: Vec<String>,
    /// `--pin FILE`, `--trust-on-first-use`, `--on-tool-change`: every API's `[api.pin]`.
    pub pin: PinOverrides,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the file")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A syntax or shape error found by the TOML parser.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A value that parsed but is not acceptable. `location` is `FILE:LINE:COL` when known.
    #[error("{location}: {field}: {message}")]
    Invalid {
        location: String,
        field: String,
        message: String,
    },
}

/// Reads and validates a config file.
pub fn load_file(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text, &path.display().to_string(), overrides)
}

/// Validates the embedded default configuration with the command-line overrides applied.
pub fn load_default(overrides: &Overrides) -> Result<Config, ConfigError> {
    load_str(DEFAULT_TOML, "<embedded default>", overrides)
}

/// Parses and validates `text`; `source` names it in errors.
pub fn load_str(text: &str, source: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
    let user: UserConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_col(text, span.start))
            .unwrap_or((1, 1));
        ConfigError::Parse {
            path: source.to_string(),
            line,
            column,
            message: e.message().trim_end().to_string(),
        }
    })?;
    Validator { text, source }.config(user, overrides)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"` (an integer and a unit).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// Parses an upstream URL, `http(s)://host[:port][/path]`, and resolves its host (off the calling
/// thread, within `resolve_timeout`; see `crate::dns`). Refused with a message for the operator:
/// other schemes, credentials, a query or a fragment. An `https://` upstream's TLS client is
/// built by the caller (`[api.tls]`).
pub fn parse_upstream(url: &str, resolve_timeout: Duration) -> Result<Upstream, String> {
    let parsed = urls::parse(url).map_err(|e| match e {
        urls::UrlError::Scheme(_) => "only http:// and https:// are supported".to_string(),
        other => other.to_string(),
    })?;
    if parsed.has_fragment {
        return Err("a fragment (#...) is not allowed in an upstream URL".into());
    }
    if parsed.query.is_some() {
        // The entrypoint's query is forwarded as the upstream's (`/mcp-proxy?x` -> `/mcp?x`);
        // merging a configured one into it is not implemented.
        return Err("a query string is not supported in an upstream URL".into());
    }
    let addrs = crate::dns::resolve_blocking(&parsed.host, parsed.port, resolve_timeout)
        .map_err(|e| e.to_string())?;
    let addr = *addrs
        .first()
        .ok_or_else(|| format!("`{}` resolves to no address", parsed.host))?;
    Ok(Upstream {
        url: url.to_string(),
        scheme: parsed.scheme,
        host: parsed.host,
        port: parsed.port,
        addr,
        addrs,
        host_header: parsed.authority,
        path: parsed.path,
        tls: None,
    })
}

/// A virtual API: its `upstream` is a placeholder (an unroutable address, never connected to:
/// the virtual server answers every request itself).
fn virtual_api(name: String, path: String, server: virtual_server::VirtualServer) -> Api {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9));
    Api {
        name,
        path,
        upstream: Upstream {
            url: "virtual".into(),
            scheme: Scheme::Http,
            host: "127.0.0.1".into(),
            port: 9,
            addr,
            addrs: vec![addr],
            host_header: "127.0.0.1:9".into(),
            path: "/".into(),
            tls: None,
        },
        public_url: None,
        acl: None,
        auth: None,
        log: ApiLog::default(),
        limits: ApiLimits::default(),
        cache: None,
        pin: None,
        virtual_server: Some(std::sync::Arc::new(server)),
    }
}

/// Normalizes an entrypoint path: must start with `/`, no query, no trailing `/` (except `/`).
pub fn normalize_entry_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err("must start with `/`".into());
    }
    if p.contains(['?', '#']) || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(
            "must be a plain path (no query, fragment, spaces or control characters)".into(),
        );
    }
    let trimmed = p.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    })
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| format!("`{s}` is not an IP:PORT address"))
}

struct Validator<'a> {
    text: &'a str,
    source: &'a str,
}

impl Validator<'_> {
    fn invalid(
        &self,
        span: Option<Range<usize>>,
        field: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let location = match span {
            Some(span) => {
                let (line, column) = line_col(self.text, span.start);
                format!("{}:{line}:{column}", self.source)
            }
            None if field.starts_with("--") => "command line".to_string(),
            None => self.source.to_string(),
        };
        ConfigError::Invalid {
            location,
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn config(&self, mut user: UserConfig, ov: &Overrides) -> Result<Config, ConfigError> {
        let gateway_log = self.gateway_log(user.gateway.log.take())?;
        let traces = self.traces(user.gateway.traces.take())?;
        let mut api_logs = Vec::with_capacity(user.api.len());
        for (i, api) in user.api.iter_mut().enumerate() {
            api_logs.push(self.api_log(i, api.log.take())?);
        }
        let gateway_public_url = self.gateway_public_url(user.gateway.public_url.take())?;
        let user_redis = user.gateway.redis.take();
        let main_tls = user.gateway.tls.take();
        let more_listeners = std::mem::take(&mut user.gateway.listeners);
        let mut gateway = self.gateway(user.gateway, ov)?;
        gateway.listeners = self.listeners(gateway.listen, main_tls, more_listeners, ov)?;
        let default_base = gateway.default_base_url();
        let resolve_timeout = gateway.dns.timeout;
        let redis = self.redis(user_redis, resolve_timeout)?;
        let virtual_cli = !ov.named_upstreams.is_empty() || !ov.upstream_cmds.is_empty();
        let apis = match (&ov.upstream, &ov.path) {
            (Some(_), _) if virtual_cli => {
                return Err(self.invalid(
                    None,
                    "--upstream",
                    "an unnamed URL is the pass-through of one upstream; name every upstream \
                     (NAME=URL) of a virtual API",
                ))
            }
            (None, path) if virtual_cli => {
                let path = normalize_entry_path(path.as_deref().unwrap_or("/mcp-proxy"))
                    .map_err(|m| self.invalid(None, "--path", m))?;
                let server = self.command_line_virtual(&ov.named_upstreams, &ov.upstream_cmds)?;
                vec![virtual_api("cli".into(), path, server)]
            }
            (Some(upstream), path) => {
                let mut api = self.command_line_api(
                    upstream,
                    path.as_deref(),
                    resolve_timeout,
                    ov.upstream_ca.as_ref(),
                )?;
                api.pin = self.api_pin(0, None, &api.upstream.url, &ov.pin)?;
                vec![api]
            }
            (None, Some(_)) => {
                return Err(self.invalid(
                    None,
                    "--path",
                    "needs --upstream (they define one API together)",
                ))
            }
            (None, None) if ov.upstream_ca.is_some() => {
                return Err(self.invalid(
                    None,
                    "--upstream-ca",
                    "needs --upstream (use [api.tls] ca in a file)",
                ))
            }
            (None, None) => {
                let mut apis = Vec::with_capacity(user.api.len());
                for ((i, mut api), log) in user.api.into_iter().enumerate().zip(api_logs) {
                    let acl = self.api_acl(i, &api)?;
                    let cache = self.api_cache(i, api.cache.take())?;
                    let pin = api.pin.take();
                    if !api.upstream.get_ref().is_str() {
                        if let Some(what) = (pin.is_some() || ov.pin.file.is_some())
                            .then_some("pin")
                            .or(cache.is_some().then_some("cache"))
                        {
                            return Err(self.invalid(
                                None,
                                &format!("api[{i}].{what}"),
                                "is not supported on a virtual API ([[api.upstream]] tables) yet",
                            ));
                        }
                    }
                    let public_url = auth::effective_public_url(
                        api.public_url.as_ref().map(|u| u.get_ref().as_str()),
                        gateway_public_url.as_deref(),
                        &default_base,
                        &normalize_entry_path(api.path.get_ref()).unwrap_or_default(),
                    );
                    let auth = self.api_auth(i, &api, &public_url)?;
                    let limits = self.api_limits(i, &api, auth.as_ref(), redis.as_ref())?;
                    let mut api = self.api(i, api, resolve_timeout)?;
                    api.acl = acl;
                    api.auth = auth;
                    api.log = log;
                    api.limits = limits;
                    api.cache = cache;
                    if api.virtual_server.is_none() {
                        api.pin = self.api_pin(i, pin, &api.upstream.url, &ov.pin)?;
                    }
                    apis.push(api);
                }
                apis
            }
        };
        let stdio =
            virtual_server::stdio_count(apis.iter().filter_map(|a| a.virtual_server.as_deref()));
        if stdio > virtual_server::MAX_STDIO_PROCESSES {
            return Err(self.invalid(
                None,
                "api.upstream.command",
                format!(
                    "{stdio} stdio upstreams; at most {} processes are run",
                    virtual_server::MAX_STDIO_PROCESSES
                ),
            ));
        }
        if apis.is_empty() {
            return Err(self.invalid(
                None,
                "api",
                "no [[api]] is defined; the gateway would answer 404 to everything",
            ));
        }
        for (i, api) in apis.iter().enumerate() {
            if let Some(j) = apis[..i].iter().position(|a| a.path == api.path) {
                return Err(self.invalid(
                    None,
                    &format!("api[{i}].path"),
                    format!("`{}` is already the path of api[{j}]", api.path),
                ));
            }
        }
        let mut apis = apis;
        if let Some(file) = &ov.acl {
            match apis.as_mut_slice() {
                [only] => only.acl = Some(self.command_line_acl(file)?),
                _ => {
                    return Err(self.invalid(
                        None,
                        "--acl",
                        "applies to a single API: give --upstream, or a config with one [[api]]",
                    ))
                }
            }
        }
        if !ov.limits.is_empty() {
            for api in &mut apis {
                api.limits
                    .rules
                    .extend(self.command_line_limits(&ov.limits)?);
            }
        }
        // Pages on the gateway's public names may call it.
        let mut gateway = gateway;
        gateway.origins.public_hosts = gateway_public_url
            .iter()
            .chain(apis.iter().filter_map(|a| a.public_url.as_ref()))
            .filter_map(|u| url_host(u))
            .collect();
        Ok(Config {
            gateway,
            apis,
            log: LogSettings {
                gateway: gateway_log,
            },
            redis,
            traces,
            source: self.source.to_string(),
        })
    }

    fn command_line_api(
        &self,
        upstream: &str,
        path: Option<&str>,
        resolve_timeout: Duration,
        upstream_ca: Option<&PathBuf>,
    ) -> Result<Api, ConfigError> {
        let path = normalize_entry_path(path.unwrap_or("/mcp-proxy"))
            .map_err(|m| self.invalid(None, "--path", m))?;
        let mut upstream = parse_upstream(upstream, resolve_timeout)
            .map_err(|m| self.invalid(None, "--upstream", m))?;
        upstream.tls = self.upstream_tls(
            "--upstream",
            upstream.scheme == Scheme::Https,
            &upstream.host,
            None,
            upstream_ca,
        )?;
        Ok(Api {
            name: "cli".into(),
            path,
            upstream,
            public_url: None,
            acl: None,
            auth: None,
            log: ApiLog::default(),
            limits: ApiLimits::default(),
            cache: None,
            pin: None,
            virtual_server: None,
        })
    }

    fn api(
        &self,
        i: usize,
        mut api: UserApi,
        resolve_timeout: Duration,
    ) -> Result<Api, ConfigError> {
        let field = |name: &str| format!("api[{i}].{name}");
        let path = normalize_entry_path(api.path.get_ref())
            .map_err(|m| self.invalid(Some(api.path.span()), &field("path"), m))?;
        let name = match &api.name {
            Some(n) if n.get_ref().is_empty() => {
                return Err(self.invalid(Some(n.span()), &field("name"), "must not be empty"))
            }
            Some(n) => n.get_ref().clone(),
            None => path.clone(),
        };
        let Some(url) = api.upstream.get_ref().as_str() else {
            if api.tls.is_some() {
                return Err(self.invalid(
                    None,
                    &field("tls"),
                    "applies to a single https:// upstream, not to [[api.upstream]] tables",
                ));
            }
            let server = self.virtual_server(i, &api.upstream, api.virtual_server.take())?;
            let mut out = virtual_api(name, path, server);
            out.public_url = self.api_public_url(i, api.public_url)?;
            return Ok(out);
        };
        if api.virtual_server.is_some() {
            return Err(self.invalid(
                None,
                &field("virtual"),
                "needs [[api.upstream]] tables (a virtual server), not an upstream URL",
            ));
        }
        let mut upstream = parse_upstream(url, resolve_timeout)
            .map_err(|m| self.invalid(Some(api.upstream.span()), &field("upstream"), m))?;
        upstream.tls = self.upstream_tls(
            &field("tls"),
            upstream.scheme == Scheme::Https,
            &upstream.host,
            api.tls.take(),
            None,
        )?;
        let public_url = self.api_public_url(i, api.public_url)?;
        Ok(Api {
            name,
            path,
            upstream,
            public_url,
            acl: None,
            auth: None,
            log: ApiLog::default(),
            limits: ApiLimits::default(),
            cache: None,
            pin: None,
            virtual_server: None,
        })
    }

    fn api_public_url(
        &self,
        i: usize,
        public_url: Option<Spanned<String>>,
    ) -> Result<Option<String>, ConfigError> {
        Ok(match public_url {
            Some(u) => {
                let s = u.get_ref();
                if !(s.starts_with("http://") || s.starts_with("https://")) {
                    return Err(self.invalid(
                        Some(u.span()),
                        &format!("api[{i}].public_url"),
                        "must be an http:// or https:// URL",
                    ));
                }
                Some(s.trim_end_matches('/').to_string())
            }
            None => None,
        })
    }

    fn duration(
        &self,
        value: Option<toml::Spanned<String>>,
        name: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.duration_at(value, &format!("gateway.timeouts.{name}"), default)
    }

    /// A positive duration at `field`.
    fn duration_at(
        &self,
        value: Option<toml::Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) => match parse_duration(v.get_ref()) {
                Some(d) if !d.is_zero() => Ok(d),
                _ => Err(self.invalid(
                    Some(v.span()),
                    field,
                    format!(
                        "`{}` is not a positive duration like \"250ms\", \"10s\", \"5m\"",
                        v.get_ref()
                    ),
                )),
            },
        }
    }

    fn gateway(&self, g: UserGateway, ov: &Overrides) -> Result<Gateway, ConfigError> {
        let listen = match (&ov.listen, &g.listen) {
            (Some(l), _) => parse_addr(l).map_err(|m| self.invalid(None, "--listen", m))?,
            (None, Some(l)) => parse_addr(l.get_ref())
                .map_err(|m| self.invalid(Some(l.span()), "gateway.listen", m))?,
            (None, None) => {
                parse_addr("127.0.0.1:8080").map_err(|m| self.invalid(None, "gateway.listen", m))?
            }
        };
        let admin = match (&ov.admin, &g.admin) {
            (Some(a), _) if a.is_empty() || a == "off" => None,
            (Some(a), _) => Some(parse_addr(a).map_err(|m| self.invalid(None, "--admin", m))?),
            (None, Some(a)) if a.get_ref().is_empty() => None,
            (None, Some(a)) => Some(
                parse_addr(a.get_ref())
                    .map_err(|m| self.invalid(Some(a.span()), "gateway.admin", m))?,
            ),
            (None, None) => None,
        };
        let workers = match ov.workers.or(g.workers) {
            None | Some(0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(n) if n > 1024 => {
                return Err(self.invalid(None, "gateway.workers", "at most 1024"))
            }
            Some(n) => n,
        };
        let driver = match (&ov.driver, &g.driver) {
            (Some(d), _) => Driver::parse(d)
                .ok_or_else(|| self.invalid(None, "--driver", "expected auto, uring or epoll"))?,
            (None, Some(d)) => Driver::parse(d.get_ref()).ok_or_else(|| {
                self.invalid(
                    Some(d.span()),
                    "gateway.driver",
                    "expected \"auto\", \"uring\" or \"epoll\"",
                )
            })?,
            (None, None) => Driver::Auto,
        };
        let l = g.limits;
        let positive = |v: Option<usize>,
                        name: &str,
                        default: usize|
         -> Result<usize, ConfigError> {
            match v {
                None => Ok(default),
                Some(0) => {
                    Err(self.invalid(None, &format!("gateway.limits.{name}"), "must be positive"))
                }
                Some(n) => Ok(n),
            }
        };
        let limits = Limits {
            max_head_bytes: positive(
                l.max_head_bytes,
                "max_head_bytes",
                mcpgate_codec::limits::MAX_HEAD_BYTES,
            )?,
            max_body_bytes: positive(
                l.max_body_bytes,
                "max_body_bytes",
                mcpgate_codec::limits::DEFAULT_MAX_BODY_BYTES,
            )?,
            max_connections: positive(l.max_connections, "max_connections", 10_000)?,
            upstream_pool_idle: l.upstream_pool_idle.unwrap_or(64),
            max_sse_event_bytes: positive(
                l.max_sse_event_bytes,
                "max_sse_event_bytes",
                mcpgate_codec::limits::MAX_SSE_EVENT_BYTES,
            )?,
        };
        if limits.max_head_bytes > mcpgate_codec::limits::MAX_HEAD_BYTES {
            return Err(self.invalid(
                None,
                "gateway.limits.max_head_bytes",
                format!(
                    "at most {} (the codec's limit)",
                    mcpgate_codec::limits::MAX_HEAD_BYTES
                ),
            ));
        }
        let t = g.timeouts;
        let timeouts = Timeouts {
            client_header: self.duration(
                t.client_header,
                "client_header",
                Duration::from_secs(10),
            )?,
            client_body: self.duration(t.client_body, "client_body", Duration::from_secs(30))?,
            upstream_connect: self.duration(
                t.upstream_connect,
                "upstream_connect",
                Duration::from_secs(5),
            )?,
            upstream_response_head: self.duration(
                t.upstream_response_head,
                "upstream_response_head",
                Duration::from_secs(120),
            )?,
            upstream_idle: self.duration(
                t.upstream_idle,
                "upstream_idle",
                Duration::from_secs(4),
            )?,
            sse_idle: self.duration(t.sse_idle, "sse_idle", Duration::from_secs(300))?,
            client_write: self.duration(t.client_write, "client_write", Duration::from_secs(30))?,
            keepalive_idle: self.duration(
                t.keepalive_idle,
                "keepalive_idle",
                Duration::from_secs(60),
            )?,
            shutdown_grace: self.duration(
                t.shutdown_grace,
                "shutdown_grace",
                Duration::from_secs(10),
            )?,
        };
        let dns = self.dns(g.dns)?;
        let sessions = self.sessions(g.sessions)?;
        let admin_at = match (&ov.admin, &g.admin) {
            (Some(_), _) => ("--admin", None),
            (None, Some(a)) => ("gateway.admin", Some(a.span())),
            (None, None) => ("gateway.admin", None),
        };
        let admin_auth = self.admin_auth(
            g.admin_auth,
            g.allow_unauthenticated_admin,
            admin,
            admin_at,
            &ov.admin_auth,
        )?;
        let manage = self.manage(g.manage)?;
        let origins = self.allowed_origins(g.allowed_origins)?;
        Ok(Gateway {
            listen,
            // Filled in by `config` (the listener tables are validated after the rest).
            listeners: Vec::new(),
            workers,
            driver,
            pin_cpus: g.pin_cpus.unwrap_or(false),
            admin,
            limits,
            timeouts,
            dns,
            sessions,
            admin_auth,
            manage,
            origins,
        })
    }

    /// `gateway.allowed_origins`: `"*"` alone, or origins (`scheme://host[:port]`).
    fn allowed_origins(
        &self,
        list: Option<Vec<Spanned<String>>>,
    ) -> Result<mcpgate_policies::origin::OriginPolicy, ConfigError> {
        use mcpgate_policies::origin::{Origin, OriginPolicy};
        let mut policy = OriginPolicy::default();
        let list = list.unwrap_or_default();
        for (i, entry) in list.iter().enumerate() {
            let field = format!("gateway.allowed_origins[{i}]");
            let text = entry.get_ref().trim_end_matches('/');
            if text == "*" {
                if list.len() > 1 {
                    return Err(self.invalid(
                        Some(entry.span()),
                        &field,
                        "\"*\" allows every origin: give it alone",
                    ));
                }
                policy.any = true;
                continue;
            }
            let origin = Origin::parse(text).ok_or_else(|| {
                self.invalid(
                    Some(entry.span()),
                    &field,
                    "expected an origin: scheme://host[:port] (no path), or \"*\"",
                )
            })?;
            policy.allowed.push(origin);
        }
        Ok(policy)
    }

    fn dns(&self, d: UserDns) -> Result<Dns, ConfigError> {
        let refresh = match d.refresh {
            Some(r) if r.get_ref() == "off" => None,
            r => Some(self.duration_at(r, "gateway.dns.refresh", DEFAULT_DNS_REFRESH)?),
        };
        let timeout = self.duration_at(d.timeout, "gateway.dns.timeout", DEFAULT_DNS_TIMEOUT)?;
        Ok(Dns { refresh, timeout })
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Auto => "auto",
            Driver::Uring => "uring",
            Driver::Epoll => "epoll",
        })
    }
}

/// Where `mcpgate run` reads its configuration from, kept for SIGHUP reloads.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub overrides: Overrides,
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, ConfigError> {
        match &self.file {
            Some(path) => load_file(path, &self.overrides),
            None => load_default(&self.overrides),
        }
    }
}

/// A URL's host, lower-cased (IPv6 in brackets), as an `Origin` carries it.
fn url_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.host()? {
        url::Host::Ipv6(ip) => Some(format!("[{ip}]")),
        host => Some(host.to_string().to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
