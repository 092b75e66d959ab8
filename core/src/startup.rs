//! What the gateway says when it starts (and what `mcpgate check` prints): one line per
//! listener, one per API (path → upstream, plans, ACL rules and dry-run, capture), the limits,
//! and a warning for each risky setup it can see — an admin listener open on a non-loopback
//! address, plans whose session ids die with the process because no `MCPGATE_SESSION_SECRET` is
//! set. Lines go through `tracing` with the target `mcpgate`, so they read
//! `… INFO mcpgate: listening on …` (tests and scripts wait for that line).

use std::net::SocketAddr;

use mcpgate_policies::auth::Plan;

use crate::config::{ApiAcl, ApiAuthCfg, Config};

use crate::config::sessions::SESSION_SECRET_ENV;

/// What the engine bound, for the summary.
#[derive(Debug, Clone, Copy)]
pub struct Bound<'a> {
    /// The client listener's actual address (port 0 resolved).
    pub listen: SocketAddr,
    /// The driver as it runs (`io_uring (auto)`, `epoll`…).
    pub driver: &'a str,
    /// The admin listener's actual address, if any.
    pub admin: Option<SocketAddr>,
}

/// The per-API facts the summary needs. One place reads them from the snapshot, so moving the
/// ACL, plans and log settings into `Api` changes only this function.
struct ApiFacts<'a> {
    acl: Option<&'a ApiAcl>,
    auth: Option<&'a ApiAuthCfg>,
    capture: bool,
}

fn api_facts(config: &Config, index: usize) -> ApiFacts<'_> {
    let api = config.apis.get(index);
    ApiFacts {
        acl: api.and_then(|a| a.acl.as_ref()),
        auth: api.and_then(|a| a.auth.as_ref()),
        capture: api.is_some_and(|a| a.log.capture),
    }
}

fn plan_kind(plan: &Plan) -> &'static str {
    match plan {
        Plan::Keyless => "keyless",
        Plan::ApiKey(_) => "api_key",
        Plan::Jwt(_) => "jwt",
        Plan::OAuth2(_) => "oauth2",
        Plan::ClientCert => "client_cert",
    }
}

/// `api NAME PATH -> UPSTREAM: …` for every API, as `run` logs them and `check` prints them.
pub fn api_lines(config: &Config) -> Vec<String> {
    config
        .apis
        .iter()
        .enumerate()
        .map(|(i, api)| {
            let facts = api_facts(config, i);
            let plans = match facts.auth {
                None => "no plan (open)".to_string(),
                Some(auth) => format!(
                    "plans {} (public URL {})",
                    auth.auth
                        .plans()
                        .iter()
                        .map(plan_kind)
                        .collect::<Vec<_>>()
                        .join(", "),
                    auth.public_url
                ),
            };
            let acl = match facts.acl {
                None => "no ACL".to_string(),
                Some(acl) => {
                    let n = acl.0.rule_count();
                    format!(
                        "ACL {n} rule{}{}",
                        if n == 1 { "" } else { "s" },
                        if acl.0.is_dry_run() {
                            " (dry-run: nothing is refused)"
                        } else {
                            ""
                        }
                    )
                }
            };
            let integrity = integrity_facts(api);
            format!(
                "api {} {} -> {}: {plans}, {acl}{}{integrity}",
                api.name,
                api.path,
                api.upstream.url,
                if facts.capture {
                    ", payload capture on"
                } else {
                    ""
                }
            )
        })
        .collect()
}

/// `, list cache, pins FILE (on change: hide)` for an API with `[api.cache]` / `[api.pin]`.
fn integrity_facts(api: &crate::config::Api) -> String {
    let mut out = String::new();
    if api.cache.is_some() {
        out.push_str(", list cache");
    }
    if let Some(pin) = &api.pin {
        out.push_str(&format!(
            ", pins {}{} (on change: {})",
            pin.file.display(),
            if pin.tofu {
                " (trust on first use)"
            } else if pin.pins.0.is_none() {
                " (no entry for this upstream: every tool is new)"
            } else {
                ""
            },
            pin.on_change.as_str()
        ));
    }
    out
}

/// Each ACL condition that was written in Gravitee EL, with the CEL it became:
/// `api[0] (name) rule[1].condition: {#…} => …`.
pub fn el_translation_lines(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, api) in config.apis.iter().enumerate() {
        let Some(acl) = api_facts(config, i).acl else {
            continue;
        };
        for t in acl.0.el_translations() {
            out.push(format!(
                "api[{i}] ({}) {}: Gravitee EL {} is evaluated as CEL {}",
                api.name, t.at, t.el, t.cel
            ));
        }
    }
    out
}

/// The risky setups visible in `config`; `session_secret` is whether a session secret is
/// configured (`config.gateway.sessions.configured`: `[gateway.sessions]` or
/// `MCPGATE_SESSION_SECRET`; a parameter so tests need not touch the environment).
pub fn warnings(config: &Config, admin: Option<SocketAddr>, session_secret: bool) -> Vec<String> {
    let mut out = Vec::new();
    let admin_auth = &config.gateway.admin_auth;
    if let Some(addr) = admin {
        if !addr.ip().is_loopback() && !admin_auth.enabled() {
            out.push(format!(
                "the admin listener on {addr} has no authentication \
                 (allow_unauthenticated_admin): anyone who reaches it reads the exchange log, \
                 metrics and captured payloads; give it a token ([gateway.admin_auth]) unless a \
                 proxy in front of it authenticates"
            ));
        }
    }
    let with_plans: Vec<&str> = config
        .apis
        .iter()
        .enumerate()
        .filter(|(i, _)| api_facts(config, *i).auth.is_some())
        .map(|(_, api)| api.name.as_str())
        .collect();
    if !with_plans.is_empty() && !session_secret {
        out.push(format!(
            "no session secret is configured: the session ids of {} are sealed with a key \
             drawn at start, so they stop working when the process restarts and another replica \
             answers them 404 (the {} workers of this process share the key); set \
             [gateway.sessions] secret_file / secret_env or {SESSION_SECRET_ENV} (>= 32 bytes, \
             the same on every replica)",
            with_plans.join(", "),
            config.gateway.workers
        ));
    }
    for api in &config.apis {
        if let Some(pin) = api.pin.as_ref().filter(|p| !p.tofu && p.pins.0.is_none()) {
            out.push(format!(
                "api {} ({}): the lockfile {} has no entry for {}: every tool and prompt of it \
                 is flagged as new (pin it with `mcpgate pin --upstream {} --out {}`)",
                api.name,
                api.path,
                pin.file.display(),
                pin.upstream_key,
                pin.upstream_key,
                pin.file.display()
            ));
        }
    }
    for (i, api) in config.apis.iter().enumerate() {
        if api_facts(config, i).acl.is_some_and(|a| a.0.is_dry_run()) {
            out.push(format!(
                "api {} ({}): the ACL is in dry-run: it decides and records but refuses nothing",
                api.name, api.path
            ));
        }
    }
    out
}

fn limits_line(config: &Config) -> String {
    let g = &config.gateway;
    format!(
        "limits: request head {} B, body {} B, {} connections; timeouts: upstream connect {:?}, \
         response head {:?}, SSE idle {:?}",
        g.limits.max_head_bytes,
        g.limits.max_body_bytes,
        g.limits.max_connections,
        g.timeouts.upstream_connect,
        g.timeouts.upstream_response_head,
        g.timeouts.sse_idle
    )
}

fn admin_line(config: &Config, addr: SocketAddr) -> String {
    let auth = &config.gateway.admin_auth;
    let how = match (&auth.token, &auth.metrics_token) {
        (Some(token), Some(metrics)) => format!(
            "bearer token from {}, /metrics also with the token from {}",
            token.origin(),
            metrics.origin()
        ),
        (Some(token), None) => format!("bearer token from {}", token.origin()),
        (None, _) => "no authentication".to_string(),
    };
    format!(
        "admin listening on {addr} ({how}; /healthz and /readyz open; console at http://{addr}/)"
    )
}

/// Logs the startup summary once every listener is bound: the ready line first (`listening on
/// ADDR (N workers, DRIVER)`), then APIs, limits, the admin listener and warnings.
pub fn announce(config: &Config, bound: Bound<'_>) {
    let workers = config.gateway.workers;
    crate::info!(
        target: "mcpgate",
        "listening on {} ({workers} worker{}, {})",
        bound.listen,
        if workers == 1 { "" } else { "s" },
        bound.driver
    );
    for line in api_lines(config) {
        crate::info!(target: "mcpgate", "{line}");
    }
    for line in el_translation_lines(config) {
        crate::info!(target: "mcpgate", "{line}");
    }
    crate::info!(target: "mcpgate", "{}", limits_line(config));
    if let Some(addr) = bound.admin {
        crate::info!(target: "mcpgate", "{}", admin_line(config, addr));
    }
    for warning in warnings(config, bound.admin, config.gateway.sessions.configured) {
        crate::warn!(target: "mcpgate", "{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Overrides};

    fn load(text: &str) -> Config {
        load_str(text, "test.toml", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    const KEY: &str = "k-0123456789abcdef";

    #[test]
    fn api_lines_say_plans_acl_and_dry_run() {
        let cfg = load(&format!(
            "[gateway]\nlisten = \"127.0.0.1:8080\"\nworkers = 2\n\
             [[api]]\nname = \"open\"\npath = \"/a\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n\
             [[api]]\nname = \"guarded\"\npath = \"/b\"\nupstream = \"http://127.0.0.1:3002/mcp\"\n\
             [[api.plan]]\ntype = \"api_key\"\nkeys = [\"{KEY}\"]\n[[api.plan]]\ntype = \"keyless\"\n\
             [api.acl]\ndry_run = true\n[[api.acl.rule]]\ntype = \"TOOLS\"\n\
             [api.log]\ncapture = true\n"
        ));
        let lines = api_lines(&cfg);
        assert_eq!(
            lines[0],
            "api open /a -> http://127.0.0.1:3001/mcp: no plan (open), no ACL"
        );
        assert_eq!(
            lines[1],
            "api guarded /b -> http://127.0.0.1:3002/mcp: plans api_key, keyless (public URL \
             http://127.0.0.1:8080/b), ACL 1 rule (dry-run: nothing is refused), payload capture on"
        );
        let warnings = warnings(&cfg, None, false);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("MCPGATE_SESSION_SECRET") && w.contains("guarded")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("dry-run")),
            "{warnings:?}"
        );
        assert!(
            !super::warnings(&cfg, None, true)
                .iter()
                .any(|w| w.contains("MCPGATE_SESSION_SECRET")),
            "no warning once the secret is set"
        );
    }

    #[test]
    fn an_open_admin_listener_off_loopback_is_warned_about() {
        let cfg = load(
            "[gateway]\nadmin = \"0.0.0.0:9901\"\nallow_unauthenticated_admin = true\n\
             [[api]]\npath = \"/a\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n",
        );
        let addr: SocketAddr = "0.0.0.0:9901".parse().unwrap_or_else(|e| panic!("{e}"));
        let w = warnings(&cfg, Some(addr), true);
        assert!(w.iter().any(|w| w.contains("no authentication")), "{w:?}");
        let loopback: SocketAddr = "127.0.0.1:9901".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(warnings(&cfg, Some(loopback), true).is_empty());
        assert!(admin_line(&cfg, loopback).contains("no authentication"));
    }
}
