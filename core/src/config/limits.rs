//! Rate limits and quotas in the configuration: `[[api.limit]]` rules, `[gateway.redis]` (the
//! store of cluster-scope rules) and `mcpgate run --limit 'METHOD[:NAME]=N/INTERVAL'`, validated
//! into [`ApiLimits`] with `mcpgate_policies::limits` (errors name the rule and field:
//! `api[0].limit[1].rate`). docs/configuration.md, "Rate limits and quotas", documents each key.
//!
//! A rule also owns its runtime state ([`RuleState`]: the node-wide store of its keys and its
//! counters), shared by every worker through the snapshot. A reload keeps the state of every rule
//! whose fingerprint (API, name, budget, key, scope) did not change ([`carry_over`]), so a SIGHUP
//! does not hand every caller a fresh budget.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use mcpgate_policies::auth::PlanKind;
use mcpgate_policies::limits::rule::{parse_plans, Expression, KeySpec, Selector};
use mcpgate_policies::limits::spec::{parse_cli_limit, parse_quota, parse_rate};
use mcpgate_policies::limits::store::NodeStore;
use mcpgate_policies::limits::{valid_rule_name, Limit, LimitError, Quota, Rate};
use serde::Deserialize;

use super::user::UserApi;
use super::{ApiAuthCfg, Config, ConfigError, Validator};

/// Keys a rule keeps per process when `max_keys` is not given.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// `[gateway.redis] timeout` when not given.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// `[gateway.redis] prefix` when not given.
pub const DEFAULT_REDIS_PREFIX: &str = "mcpgate:rl:";

/// One `[[api.limit]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserLimitRule {
    name: String,
    /// Absent: an HTTP-level rule (every HTTP request to the API, before its body is read).
    methods: Option<Vec<String>>,
    names: Option<Vec<String>>,
    pattern: Option<String>,
    key: Option<String>,
    key_expression: Option<String>,
    rate: Option<String>,
    burst: Option<u32>,
    quota: Option<String>,
    scope: Option<String>,
    /// Cluster scope: what to do when Redis cannot answer (`"open"`: allow, `"closed"`: refuse).
    on_redis_error: Option<String>,
    plans: Option<Vec<String>>,
    condition: Option<String>,
    max_keys: Option<usize>,
}

/// `[gateway.redis]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserRedis {
    address: String,
    timeout: Option<String>,
    prefix: Option<String>,
}

/// Where cluster-scope rules keep their state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Resolved at load (`host:port` or `IP:PORT`).
    pub addr: SocketAddr,
    /// The configured address, for logs.
    pub address: String,
    /// How long a decision waits for Redis (connect or answer) before the rule's
    /// `on_redis_error` applies.
    pub timeout: Duration,
    /// Prepended to every key the gateway writes.
    pub prefix: String,
}

/// Where a rule is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Exact across the workers of this process.
    Node,
    /// Shared by every gateway using the same Redis; `fail_open`: allow when Redis cannot answer.
    Cluster { fail_open: bool },
}

/// Which phase counts a rule.
#[derive(Debug)]
pub enum Stage {
    /// `admit`: every HTTP request to the API, before the body is read (no `methods`).
    Http,
    /// `decide`, after the ACL: each JSON-RPC message the selector picks.
    Message(Selector),
}

/// A rule's immutable part.
#[derive(Debug)]
pub struct CompiledRule {
    pub name: String,
    pub stage: Stage,
    pub key: KeySpec,
    pub limit: Limit,
    pub scope: Scope,
    /// Empty: every caller.
    pub plans: Vec<PlanKind>,
    pub condition: Option<Expression>,
    pub max_keys: usize,
    /// What must be equal, within one API, for a reload to keep the rule's state.
    pub fingerprint: String,
}

/// A rule's runtime state, shared by every worker and kept across reloads.
#[derive(Debug)]
pub struct RuleState {
    /// Node scope: each key's cell.
    pub store: NodeStore,
    pub allowed: AtomicU64,
    pub refused: AtomicU64,
    /// Cluster scope: decisions Redis could not make (the rule's fail mode applied).
    pub store_errors: AtomicU64,
}

impl RuleState {
    pub fn new(max_keys: usize) -> RuleState {
        RuleState {
            store: NodeStore::new(max_keys),
            allowed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LimitRule {
    pub rule: Arc<CompiledRule>,
    pub state: Arc<RuleState>,
}

/// An API's rules, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct ApiLimits {
    pub rules: Vec<LimitRule>,
}

impl ApiLimits {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule counts HTTP requests (`admit`) / JSON-RPC messages (`decide`).
    pub fn has_http_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.rule.stage, Stage::Http))
    }

    pub fn has_message_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.rule.stage, Stage::Message(_)))
    }

    pub fn has_cluster_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.rule.scope, Scope::Cluster { .. }))
    }
}

/// Two snapshots' rules are equal only when they are the same compiled objects.
impl PartialEq for ApiLimits {
    fn eq(&self, other: &Self) -> bool {
        self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| Arc::ptr_eq(&a.rule, &b.rule) && Arc::ptr_eq(&a.state, &b.state))
    }
}

impl Eq for ApiLimits {}

/// After a reload: each rule of `new` whose fingerprint matches a rule of the same API in `old`
/// takes over that rule's state (counts, keys, metrics).
pub fn carry_over(old: &Config, new: &mut Config) {
    for api in &mut new.apis {
        let Some(old_api) = old.apis.iter().find(|a| a.name == api.name) else {
            continue;
        };
        for rule in &mut api.limits.rules {
            if let Some(kept) = old_api
                .limits
                .rules
                .iter()
                .find(|r| r.rule.fingerprint == rule.rule.fingerprint)
            {
                rule.state = Arc::clone(&kept.state);
            }
        }
    }
}

fn make_rule(compiled: CompiledRule) -> LimitRule {
    let state = Arc::new(RuleState::new(compiled.max_keys));
    LimitRule {
        rule: Arc::new(compiled),
        state,
    }
}

impl Validator<'_> {
    /// `[[api.limit]]` of api `i`.
    pub(super) fn api_limits(
        &self,
        i: usize,
        api: &UserApi,
        auth: Option<&ApiAuthCfg>,
        redis: Option<&RedisSettings>,
    ) -> Result<ApiLimits, ConfigError> {
        let Some(value) = &api.limit else {
            return Ok(ApiLimits::default());
        };
        let field = format!("api[{i}].limit");
        let span = Some(value.span());
        let users: Vec<UserLimitRule> = match value.get_ref() {
            toml::Value::Array(_) => Vec::<UserLimitRule>::deserialize(value.get_ref().clone()),
            // `[api.limit]` (one table) instead of `[[api.limit]]`.
            toml::Value::Table(_) => {
                UserLimitRule::deserialize(value.get_ref().clone()).map(|r| vec![r])
            }
            _ => {
                return Err(self.invalid(span, &field, "expected [[api.limit]] tables"));
            }
        }
        .map_err(|e| self.invalid(span.clone(), &field, e.message().trim_end()))?;
        let api_key_headers: Vec<String> = auth
            .map(|a| {
                a.credential_headers
                    .iter()
                    .filter(|h| *h != "authorization")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut rules = Vec::with_capacity(users.len());
        for (j, user) in users.into_iter().enumerate() {
            let at = format!("{field}[{j}]");
            if rules.iter().any(|r: &LimitRule| r.rule.name == user.name) {
                return Err(self.invalid(
                    span.clone(),
                    &format!("{at}.name"),
                    format!("`{}` names another rule of this API", user.name),
                ));
            }
            let compiled = compile_rule(user, &api_key_headers, auth.is_some(), redis)
                .map_err(|e| self.invalid(span.clone(), &format!("{at}.{}", e.at), e.message))?;
            rules.push(make_rule(compiled));
        }
        Ok(ApiLimits { rules })
    }

    /// `[gateway.redis]`.
    pub(super) fn redis(
        &self,
        value: Option<toml::Spanned<toml::Value>>,
        resolve_timeout: Duration,
    ) -> Result<Option<RedisSettings>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let span = Some(value.span());
        let user = UserRedis::deserialize(value.into_inner())
            .map_err(|e| self.invalid(span.clone(), "gateway.redis", e.message().trim_end()))?;
        let (host, port) = user
            .address
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| {
                self.invalid(
                    span.clone(),
                    "gateway.redis.address",
                    format!("`{}` is not host:port", user.address),
                )
            })?;
        let addr = crate::dns::resolve_blocking(host, port, resolve_timeout)
            .ok()
            .and_then(|a| a.first().copied())
            .ok_or_else(|| {
                self.invalid(
                    span.clone(),
                    "gateway.redis.address",
                    format!("`{}` does not resolve", user.address),
                )
            })?;
        let timeout = match &user.timeout {
            None => DEFAULT_REDIS_TIMEOUT,
            Some(t) => super::parse_duration(t)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    self.invalid(
                        span.clone(),
                        "gateway.redis.timeout",
                        format!("`{t}` is not a positive duration like \"50ms\""),
                    )
                })?,
        };
        let prefix = user
            .prefix
            .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_string());
        if prefix.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(self.invalid(
                span,
                "gateway.redis.prefix",
                "no spaces or control characters",
            ));
        }
        Ok(Some(RedisSettings {
            addr,
            address: user.address,
            timeout,
            prefix,
        }))
    }

    /// `--limit` flags: node-scope rates keyed by subject (else client address), one rule each,
    /// named `cli-0`, `cli-1`, … in order, added to every API.
    pub(super) fn command_line_limits(
        &self,
        flags: &[String],
    ) -> Result<Vec<LimitRule>, ConfigError> {
        flags
            .iter()
            .enumerate()
            .map(|(i, flag)| {
                let cli =
                    parse_cli_limit(flag).map_err(|e| self.invalid(None, &e.at, e.message))?;
                let names = cli.name.map(|n| vec![n]);
                let invalid = |e: LimitError| {
                    self.invalid(None, "--limit", format!("`{flag}`: {}", e.message))
                };
                let selector =
                    Selector::compile(&[cli.method], names.as_deref(), None).map_err(invalid)?;
                let limit =
                    Limit::Rate(Rate::new(cli.count, cli.interval, cli.count).map_err(invalid)?);
                let name = format!("cli-{i}");
                Ok(make_rule(CompiledRule {
                    fingerprint: format!("{name}\u{0}{flag}"),
                    name,
                    stage: Stage::Message(selector),
                    key: KeySpec::Subject,
                    limit,
                    scope: Scope::Node,
                    plans: Vec::new(),
                    condition: None,
                    max_keys: DEFAULT_MAX_KEYS,
                }))
            })
            .collect()
    }
}

fn compile_rule(
    user: UserLimitRule,
    api_key_headers: &[String],
    has_plans: bool,
    redis: Option<&RedisSettings>,
) -> Result<CompiledRule, LimitError> {
    if !valid_rule_name(&user.name) {
        return Err(LimitError::new(
            "name",
            "1 to 64 of A-Z a-z 0-9 _ - . (it is a metric label and a header token)",
        ));
    }
    let stage = match &user.methods {
        None => {
            if user.names.is_some() || user.pattern.is_some() {
                return Err(LimitError::new(
                    "methods",
                    "`names` / `pattern` select messages: give the methods they apply to",
                ));
            }
            Stage::Http
        }
        Some(methods) => Stage::Message(Selector::compile(
            methods,
            user.names.as_deref(),
            user.pattern.as_deref(),
        )?),
    };
    let key = KeySpec::parse(
        user.key
            .as_deref()
            .unwrap_or(if user.key_expression.is_some() {
                "expression"
            } else {
                "subject"
            }),
        user.key_expression.as_deref(),
        api_key_headers,
    )?;
    let limit = match (&user.rate, &user.quota) {
        (Some(_), Some(_)) => {
            return Err(LimitError::new("quota", "give `rate` or `quota`, not both"))
        }
        (None, None) => return Err(LimitError::new("rate", "give `rate` or `quota`")),
        (Some(rate), None) => {
            let (count, interval) = parse_rate(rate)?;
            Limit::Rate(Rate::new(count, interval, user.burst.unwrap_or(count))?)
        }
        (None, Some(quota)) => {
            if user.burst.is_some() {
                return Err(LimitError::new("burst", "only for a `rate`"));
            }
            let (count, period) = parse_quota(quota)?;
            Limit::Quota(Quota::new(count, period)?)
        }
    };
    let scope = match user.scope.as_deref().unwrap_or("node") {
        "node" => {
            if user.on_redis_error.is_some() {
                return Err(LimitError::new(
                    "on_redis_error",
                    "only for scope = \"cluster\"",
                ));
            }
            Scope::Node
        }
        "cluster" => {
            if redis.is_none() {
                return Err(LimitError::new(
                    "scope",
                    "\"cluster\" needs [gateway.redis] (the store the gateways share)",
                ));
            }
            let fail_open = match user.on_redis_error.as_deref().unwrap_or("open") {
                "open" => true,
                "closed" => false,
                other => {
                    return Err(LimitError::new(
                        "on_redis_error",
                        format!("`{other}`: expected \"open\" or \"closed\""),
                    ))
                }
            };
            Scope::Cluster { fail_open }
        }
        other => {
            return Err(LimitError::new(
                "scope",
                format!("`{other}`: expected \"node\" or \"cluster\""),
            ))
        }
    };
    let plans = parse_plans(user.plans.as_deref().unwrap_or_default())?;
    if !plans.is_empty() && !has_plans {
        return Err(LimitError::new(
            "plans",
            "the API has no [api.plan]: no request would ever match",
        ));
    }
    let condition = user
        .condition
        .as_deref()
        .map(Expression::compile)
        .transpose()
        .map_err(|e| LimitError::new("condition", e))?;
    let max_keys = match user.max_keys {
        None => DEFAULT_MAX_KEYS,
        Some(0) => return Err(LimitError::new("max_keys", "must be positive")),
        Some(n) => n,
    };
    let fingerprint = format!(
        "{}\u{0}{limit:?}\u{0}{scope:?}\u{0}{}\u{0}{max_keys}",
        user.name,
        key.tag()
    );
    Ok(CompiledRule {
        name: user.name,
        stage,
        key,
        limit,
        scope,
        plans,
        condition,
        max_keys,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{load_str, Overrides};
    use super::*;

    const API: &str =
        "[[api]]\nname = \"w\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

    fn load(extra: &str) -> Result<Config, String> {
        load_str(&format!("{API}{extra}"), "test.toml", &Overrides::default())
            .map_err(|e| e.to_string())
    }

    fn err(extra: &str) -> String {
        load(extra).err().unwrap_or_default()
    }

    #[test]
    fn rules_load_in_both_stages() {
        let cfg = load(
            "[[api.limit]]\nname = \"calls\"\nmethods = [\"tools/call\"]\nnames = [\"echo\"]\nrate = \"5/1m\"\nburst = 2\n\
             [[api.limit]]\nname = \"http\"\nkey = \"client_ip\"\nquota = \"1000/day\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let limits = &cfg.apis[0].limits;
        assert_eq!(limits.rules.len(), 2);
        assert!(limits.has_http_rules() && limits.has_message_rules());
        assert!(!limits.has_cluster_rules());
        assert!(matches!(limits.rules[0].rule.limit, Limit::Rate(r) if r.burst() == 2));
        assert!(matches!(limits.rules[1].rule.key, KeySpec::ClientIp));
    }

    #[test]
    fn errors_name_the_rule_and_field() {
        let cases = [
            ("[[api.limit]]\nname = \"a b\"\nrate = \"1/s\"\n", "api[0].limit[0].name"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"x/s\"\n", "api[0].limit[0].rate"),
            ("[[api.limit]]\nname = \"a\"\n", "api[0].limit[0].rate"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\nquota = \"1/day\"\n", "api[0].limit[0].quota"),
            ("[[api.limit]]\nname = \"a\"\nquota = \"1/week\"\n", "api[0].limit[0].quota"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\nnames = [\"x\"]\n", "api[0].limit[0].methods"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\nscope = \"cluster\"\n", "api[0].limit[0].scope"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\nkey = \"api_key\"\n", "api[0].limit[0].key"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\nplans = [\"jwt\"]\n", "api[0].limit[0].plans"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\ncondition = \"(\"\n", "api[0].limit[0].condition"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\nmethods = [\"x\"]\npattern = \"(\"\n", "api[0].limit[0].pattern"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\n[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\n", "api[0].limit[1].name"),
            ("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\nmax_keys = 0\n", "api[0].limit[0].max_keys"),
        ];
        for (text, field) in cases {
            let e = err(text);
            assert!(e.contains(field), "{text}\n-> {e}");
            assert!(e.starts_with("test.toml:"), "{e}");
        }
        // An unknown key is named by the parser.
        let e = err("[[api.limit]]\nname = \"a\"\nrate = \"1/s\"\nbrust = 3\n");
        assert!(e.contains("brust"), "{e}");
    }

    #[test]
    fn cluster_rules_need_redis_and_reloads_keep_state() {
        let redis = "[gateway.redis]\naddress = \"127.0.0.1:6379\"\ntimeout = \"50ms\"\n";
        let text = format!(
            "{redis}{API}[[api.limit]]\nname = \"c\"\nrate = \"1/s\"\nscope = \"cluster\"\non_redis_error = \"closed\"\n"
        );
        let cfg =
            load_str(&text, "t.toml", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cfg.redis.as_ref().map(|r| r.timeout),
            Some(Duration::from_millis(50))
        );
        assert!(matches!(
            cfg.apis[0].limits.rules[0].rule.scope,
            Scope::Cluster { fail_open: false }
        ));
        let mut again =
            load_str(&text, "t.toml", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!Arc::ptr_eq(
            &cfg.apis[0].limits.rules[0].state,
            &again.apis[0].limits.rules[0].state
        ));
        carry_over(&cfg, &mut again);
        assert!(Arc::ptr_eq(
            &cfg.apis[0].limits.rules[0].state,
            &again.apis[0].limits.rules[0].state
        ));
        // A changed budget starts afresh.
        let mut changed = load_str(&text.replace("1/s", "2/s"), "t.toml", &Overrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        carry_over(&cfg, &mut changed);
        assert!(!Arc::ptr_eq(
            &cfg.apis[0].limits.rules[0].state,
            &changed.apis[0].limits.rules[0].state
        ));
        let e = load_str(
            &format!("[gateway.redis]\naddress = \"nohostport\"\n{API}"),
            "t.toml",
            &Overrides::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("gateway.redis.address"), "{e}");
    }

    #[test]
    fn command_line_limits_apply_to_every_api() {
        let ov = Overrides {
            limits: vec!["tools/call=5/60s".into(), "tools/call:echo=2/10s".into()],
            ..Overrides::default()
        };
        let cfg = load_str(API, "t.toml", &ov).unwrap_or_else(|e| panic!("{e}"));
        let rules = &cfg.apis[0].limits.rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].rule.name, "cli-1");
        assert!(matches!(rules[0].rule.key, KeySpec::Subject));
        let bad = Overrides {
            limits: vec!["tools/call".into()],
            ..Overrides::default()
        };
        let e = load_str(API, "t.toml", &bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("command line: --limit"), "{e}");
    }
}
