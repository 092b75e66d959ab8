//! Rate limits and quotas as a feature of the request path (docs/configuration.md, "Rate limits
//! and quotas"). Two phases count:
//!
//! - `admit`: rules without `methods` count every HTTP request to the API, before its body is
//!   read; a refusal is 429 with `Retry-After`.
//! - `decide`, after the ACL (a call it refused is never counted): rules with `methods` count
//!   each JSON-RPC message their selector picks. A refused request gets a JSON-RPC error
//!   ([`THROTTLED`], `data.retryAfterMs`) with HTTP 200 so MCP clients see it as the call's
//!   answer; a refused notification-only body gets 429.
//!
//! A request's charges are all-or-nothing across rules: node-scope cells first (a CAS each,
//! given back if a later rule refuses), then every cluster-scope rule in one Redis round trip
//! (`redis.rs`, the script in `mcpgate_policies::limits::cluster`). A refused request never
//! reaches the upstream; an allowed one's answer carries `RateLimit-Policy` and `RateLimit`
//! (`response_head`).

pub mod metrics;
pub mod redis;
pub mod state;

use std::cell::{OnceCell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use mcpgate_codec::http::HeadWriter;
use mcpgate_codec::jsonrpc::{Kind, Target};
use mcpgate_policies::acl::{AuthInfo, ConditionContext, McpFacts, Outcome as AclOutcome};
use mcpgate_policies::auth::Principal;
use mcpgate_policies::limits::cluster::{key_digest, Charge, ChargeKind};
use mcpgate_policies::limits::header::{ceil_secs, push_limit, push_policy};
use mcpgate_policies::limits::rule::KeySpec;
use mcpgate_policies::limits::{Decision, Limit, THROTTLED, THROTTLED_MESSAGE};
use smallvec::SmallVec;

use crate::config::{Api, LimitRule, RedisSettings, Scope, Stage};
use crate::context::RequestCtx;
use crate::errors::reason;
use crate::features::acl::exchange::auth_info;
use crate::phases::{Answer, Body, Phases, Request, Response, Step};
use crate::snapshot::{ApiState, Snapshot};
use redis::RedisClient;
use state::LimitsExchange;

/// What a fail-closed cluster rule asks the client to wait when Redis cannot answer.
const STORE_DOWN_RETRY_MS: u64 = 1000;

/// Process-wide: every worker must find a key's cell under the same hash.
static KEY_HASH: LazyLock<ahash::RandomState> = LazyLock::new(ahash::RandomState::new);
/// Process-wide: node-scope TATs are nanoseconds since this instant, on every worker.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// The monotonic clock of node-scope rates, nanoseconds.
fn mono_ns() -> u64 {
    u64::try_from(EPOCH.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The feature: this worker's Redis client (made on first use of a cluster rule).
#[derive(Default)]
pub struct Limits {
    redis: RefCell<Option<Rc<RedisClient>>>,
}

/// One key's cost under one rule, for one request.
struct Pending {
    rule: usize,
    hash: u64,
    tag: &'static str,
    material: SmallVec<[u8; 48]>,
    cost: u32,
}

/// What the request's charges came to.
#[derive(Default)]
struct Evaluation {
    /// Per rule that decided (node rules, and cluster rules Redis answered for).
    decisions: SmallVec<[(usize, Decision); 4]>,
    /// The first rule that refused.
    refused_by: Option<usize>,
    retry_after_ms: u64,
}

/// The request facts a rule's CEL key or condition reads: the same variables as an ACL condition,
/// borrowed from the request head (nothing is copied unless an expression asks).
struct Facts<'a> {
    method: &'static str,
    req: Request<'a>,
    client_ip: IpAddr,
    principal: Option<&'a Principal>,
    auth: OnceCell<Option<AuthInfo>>,
}

impl ConditionContext for Facts<'_> {
    fn request_method(&self) -> &str {
        self.method
    }
    fn request_path(&self) -> &str {
        std::str::from_utf8(self.req.path()).unwrap_or_default()
    }
    fn for_each_header(&self, visit: &mut dyn FnMut(&str, &str)) {
        for (name, value) in self.req.head.headers(self.req.buf) {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            visit(&name, &String::from_utf8_lossy(value));
        }
    }
    fn client_ip(&self) -> Option<IpAddr> {
        Some(self.client_ip)
    }
    fn auth(&self) -> Option<&AuthInfo> {
        self.auth
            .get_or_init(|| self.principal.map(auth_info))
            .as_ref()
    }
}

/// Whether `rule` counts this request at all (plans, condition).
fn applies(rule: &LimitRule, facts: &Facts<'_>, mcp: McpFacts<'_>) -> bool {
    let compiled = &rule.rule;
    if !compiled.plans.is_empty() {
        match facts.principal {
            Some(p) if compiled.plans.contains(&p.plan) => {}
            _ => return false,
        }
    }
    compiled
        .condition
        .as_ref()
        .is_none_or(|c| c.holds(facts, mcp))
}

/// The key a request has under `rule`: its kind's tag and value. A value the request lacks (no
/// subject, no such header, an expression that fails) falls back to the client address, so
/// leaving something out never escapes a limit.
fn key_of(
    rule: &LimitRule,
    facts: &Facts<'_>,
    mcp: McpFacts<'_>,
) -> (&'static str, SmallVec<[u8; 48]>) {
    let spec = &rule.rule.key;
    let value: Option<SmallVec<[u8; 48]>> = match spec {
        KeySpec::Global => Some(SmallVec::new()),
        KeySpec::Subject => facts
            .principal
            .and_then(|p| p.subject.as_deref())
            .map(|s| SmallVec::from_slice(s.as_bytes())),
        KeySpec::ClientId => facts
            .principal
            .and_then(|p| p.client_id.as_deref())
            .map(|s| SmallVec::from_slice(s.as_bytes())),
        KeySpec::ApiKey(headers) => headers
            .iter()
            .find_map(|h| facts.req.header(h).filter(|v| !v.is_empty()))
            .map(SmallVec::from_slice),
        KeySpec::Header(name) => facts.req.header(name).map(SmallVec::from_slice),
        KeySpec::ClientIp => None,
        KeySpec::Expression(e) => match e.key(facts, mcp) {
            Ok(k) => Some(SmallVec::from_slice(k.as_bytes())),
            Err(why) => {
                crate::debug!(
                    "rate limit {}: key expression failed ({why}); keyed by client address",
                    rule.rule.name
                );
                None
            }
        },
    };
    match value {
        Some(v) => (spec.tag(), v),
        None => {
            let ip = facts.client_ip.to_string();
            ("ip", SmallVec::from_slice(ip.as_bytes()))
        }
    }
}

fn add_charge(
    pending: &mut SmallVec<[Pending; 4]>,
    rule: usize,
    tag: &'static str,
    material: SmallVec<[u8; 48]>,
) {
    let hash = KEY_HASH.hash_one((tag, &material[..]));
    if let Some(p) = pending
        .iter_mut()
        .find(|p| p.rule == rule && p.hash == hash && p.tag == tag && p.material == material)
    {
        p.cost = p.cost.saturating_add(1);
        return;
    }
    pending.push(Pending {
        rule,
        hash,
        tag,
        material,
        cost: 1,
    });
}

/// The MCP facts of one message, as conditions and CEL keys see them.
fn mcp_facts<'m>(method: &'m str, target: &'m Target) -> McpFacts<'m> {
    let (name, uri) = match target {
        Target::Name(n) | Target::PromptRef(n) => (n.as_str(), ""),
        Target::Uri(u) | Target::ResourceRef(u) => ("", u.as_str()),
        Target::None => ("", ""),
    };
    McpFacts { method, name, uri }
}

/// Whether the ACL let the `judged`-th request/notification of the body through (every message
/// passes when the API has no ACL).
fn acl_lets_through(ctx: &RequestCtx, judged: usize) -> bool {
    let Some(acl) = ctx.acl.as_deref() else {
        return true;
    };
    acl.records.get(judged).is_none_or(|r| {
        matches!(
            r.outcome,
            AclOutcome::Allowed | AclOutcome::DryRunRefused | AclOutcome::DryRunDropped
        )
    })
}

fn decision_of_rate(o: mcpgate_policies::limits::gcra::Outcome) -> Decision {
    Decision {
        allowed: o.allowed,
        remaining: o.remaining,
        retry_after_ms: o.retry_after_ns.div_ceil(1_000_000),
        reset_ms: o.reset_ns.div_ceil(1_000_000),
    }
}

fn decision_of_quota(o: mcpgate_policies::limits::quota::Outcome) -> Decision {
    Decision {
        allowed: o.allowed,
        remaining: o.remaining,
        retry_after_ms: o.retry_after_ms,
        reset_ms: o.reset_ms,
    }
}

/// Logs a line at most every 10 s (a Redis outage must not flood the log at request rate).
fn warn_sometimes(message: impl FnOnce() -> String) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = mono_ns() / 1_000_000_000;
    let last = LAST.load(Ordering::Relaxed);
    if (last == 0 || now >= last + 10)
        && LAST
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        crate::warn!("{}", message());
    }
}

impl Limits {
    fn redis_client(&self, settings: &RedisSettings) -> Rc<RedisClient> {
        let mut slot = self.redis.borrow_mut();
        match &*slot {
            Some(client) if client.addr() == settings.addr => Rc::clone(client),
            _ => {
                let client = RedisClient::new(settings.addr);
                *slot = Some(Rc::clone(&client));
                client
            }
        }
    }

    /// Decides every charge of a request, all or nothing.
    async fn evaluate(
        &self,
        api: &Api,
        state: &ApiState,
        redis: Option<&RedisSettings>,
        pending: &[Pending],
    ) -> Evaluation {
        let rules = &api.limits.rules;
        let mut ev = Evaluation::default();
        let now_ns = mono_ns();
        let now_ms = crate::observe::now_unix_ms();
        let mut taken: SmallVec<[usize; 4]> = SmallVec::new();
        {
            let mut locals = state.limits.locals.borrow_mut();
            for (k, p) in pending.iter().enumerate() {
                let (Some(rule), Some(local)) = (rules.get(p.rule), locals.get_mut(p.rule)) else {
                    continue;
                };
                if rule.rule.scope != Scope::Node {
                    continue;
                }
                let store = &rule.state.store;
                let decision = match rule.rule.limit {
                    Limit::Rate(rate) => decision_of_rate(store.update(
                        local,
                        p.hash,
                        now_ns.saturating_add(1),
                        |tat| rate.decide(tat, now_ns, p.cost),
                    )),
                    Limit::Quota(quota) => decision_of_quota(store.update(
                        local,
                        p.hash,
                        quota.idle_below(now_ms),
                        |v| quota.decide(v, now_ms, p.cost),
                    )),
                };
                ev.decisions.push((p.rule, decision));
                if decision.allowed {
                    taken.push(k);
                } else {
                    ev.refused_by = Some(p.rule);
                    ev.retry_after_ms = decision.retry_after_ms;
                    break;
                }
            }
        }
        if ev.refused_by.is_none() {
            self.evaluate_cluster(api, redis, pending, now_ms, &mut ev)
                .await;
        }
        if ev.refused_by.is_some() {
            self.refund(api, state, pending, &taken);
        }
        ev
    }

    /// The cluster-scope charges, in one Redis call.
    async fn evaluate_cluster(
        &self,
        api: &Api,
        redis: Option<&RedisSettings>,
        pending: &[Pending],
        now_ms: u64,
        ev: &mut Evaluation,
    ) {
        let rules = &api.limits.rules;
        let cluster: SmallVec<[&Pending; 4]> = pending
            .iter()
            .filter(|p| {
                rules
                    .get(p.rule)
                    .is_some_and(|r| matches!(r.rule.scope, Scope::Cluster { .. }))
            })
            .collect();
        let Some(settings) = redis.filter(|_| !cluster.is_empty()) else {
            return;
        };
        let charges: Vec<Charge> = cluster
            .iter()
            .filter_map(|p| {
                let rule = rules.get(p.rule)?;
                let digest = key_digest(p.tag, &p.material);
                let (key, kind) = match rule.rule.limit {
                    Limit::Rate(rate) => (
                        format!(
                            "{}{}:{}:{digest}",
                            settings.prefix, api.name, rule.rule.name
                        ),
                        ChargeKind::Rate {
                            emission_us: (rate.emission_ns() / 1000).max(1),
                            burst: rate.burst(),
                        },
                    ),
                    Limit::Quota(quota) => {
                        let window = quota.period().window(now_ms);
                        (
                            format!(
                                "{}{}:{}:{digest}:{}",
                                settings.prefix, api.name, rule.rule.name, window.id
                            ),
                            ChargeKind::Quota {
                                limit: quota.limit(),
                                period_end_ms: window.end_ms,
                            },
                        )
                    }
                };
                Some(Charge {
                    key,
                    kind,
                    cost: p.cost,
                })
            })
            .collect();
        let client = self.redis_client(settings);
        match client.decide(&charges, settings.timeout).await {
            Ok(outcomes) => {
                for (p, o) in cluster.iter().zip(outcomes) {
                    let d = Decision {
                        allowed: o.allowed,
                        remaining: o.remaining,
                        retry_after_ms: o.retry_after_ms,
                        reset_ms: o.reset_ms,
                    };
                    ev.decisions.push((p.rule, d));
                    if !d.allowed {
                        ev.refused_by.get_or_insert(p.rule);
                        ev.retry_after_ms = ev.retry_after_ms.max(d.retry_after_ms);
                    }
                }
            }
            Err(e) => {
                for p in &cluster {
                    let Some(rule) = rules.get(p.rule) else {
                        continue;
                    };
                    rule.state.store_errors.fetch_add(1, Ordering::Relaxed);
                    if let Scope::Cluster { fail_open: false } = rule.rule.scope {
                        ev.refused_by.get_or_insert(p.rule);
                        ev.retry_after_ms = ev.retry_after_ms.max(STORE_DOWN_RETRY_MS);
                    }
                }
                warn_sometimes(|| {
                    format!(
                        "rate limits: api {}: Redis could not decide ({e}); rules with \
                         on_redis_error = \"open\" allowed the request, \"closed\" refused it",
                        api.name
                    )
                });
            }
        }
    }

    /// Gives back the node-scope units a refused request had taken.
    fn refund(&self, api: &Api, state: &ApiState, pending: &[Pending], taken: &[usize]) {
        let mut locals = state.limits.locals.borrow_mut();
        for &k in taken {
            let Some(p) = pending.get(k) else { continue };
            let (Some(rule), Some(local)) = (api.limits.rules.get(p.rule), locals.get_mut(p.rule))
            else {
                continue;
            };
            let store = &rule.state.store;
            match rule.rule.limit {
                Limit::Rate(rate) => {
                    store.update(local, p.hash, 0, |tat| (Some(rate.refund(tat, p.cost)), ()))
                }
                Limit::Quota(_) => store.update(local, p.hash, 0, |v| {
                    (Some(mcpgate_policies::limits::Quota::refund(v, p.cost)), ())
                }),
            }
        }
    }

    /// Runs the charges and records what they came to in `ctx.limits` and the rules' counters.
    /// `Err(rule index, retry after)`: refused.
    async fn charge(
        &self,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
        api_index: usize,
        pending: &[Pending],
    ) -> Result<(), (usize, u64)> {
        let (Some(api), Some(state)) = (
            snapshot.config.apis.get(api_index),
            snapshot.apis.get(api_index),
        ) else {
            return Ok(());
        };
        let ev = self
            .evaluate(api, state, snapshot.config.redis.as_ref(), pending)
            .await;
        let rules = &api.limits.rules;
        let lx = ctx.limits.get_or_insert_with(Default::default);
        for (rule_index, decision) in &ev.decisions {
            if let Some(rule) = rules.get(*rule_index) {
                push_policy(&mut lx.policy, &rule.rule.name, &rule.rule.limit);
                push_limit(&mut lx.limit, &rule.rule.name, &rule.rule.limit, decision);
            }
        }
        match ev.refused_by {
            None => {
                for p in pending {
                    if let Some(rule) = rules.get(p.rule) {
                        rule.state
                            .allowed
                            .fetch_add(u64::from(p.cost), Ordering::Relaxed);
                    }
                }
                Ok(())
            }
            Some(r) => {
                if let Some(rule) = rules.get(r) {
                    let cost: u32 = pending.iter().filter(|p| p.rule == r).map(|p| p.cost).sum();
                    rule.state
                        .refused
                        .fetch_add(u64::from(cost.max(1)), Ordering::Relaxed);
                    lx.throttled = Some(rule.rule.name.as_str().into());
                }
                Err((r, ev.retry_after_ms.max(1)))
            }
        }
    }
}

impl Phases for Limits {
    /// HTTP-level rules: every request to the API, before its body is read.
    async fn admit(&self, ctx: &mut RequestCtx, req: Request<'_>) -> Step {
        let Some(api_index) = ctx.api else {
            return Step::Continue;
        };
        let snapshot = Rc::clone(&ctx.snapshot);
        let Some(api) = snapshot.config.apis.get(api_index) else {
            return Step::Continue;
        };
        if !api.limits.has_http_rules() {
            return Step::Continue;
        }
        let principal = ctx.principal.clone();
        let mut pending: SmallVec<[Pending; 4]> = SmallVec::new();
        {
            let facts = Facts {
                method: ctx.method.as_str(),
                req,
                client_ip: ctx.peer.ip(),
                principal: principal.as_deref(),
                auth: OnceCell::new(),
            };
            for (i, rule) in api.limits.rules.iter().enumerate() {
                if !matches!(rule.rule.stage, Stage::Http) {
                    continue;
                }
                let mcp = McpFacts::default();
                if applies(rule, &facts, mcp) {
                    let (tag, material) = key_of(rule, &facts, mcp);
                    add_charge(&mut pending, i, tag, material);
                }
            }
        }
        if pending.is_empty() {
            return Step::Continue;
        }
        match self.charge(ctx, &snapshot, api_index, &pending).await {
            Ok(()) => Step::Continue,
            Err((rule, retry_after_ms)) => {
                let name = api
                    .limits
                    .rules
                    .get(rule)
                    .map_or("", |r| r.rule.name.as_str());
                let body = error_body(None, retry_after_ms, name);
                Step::Answer(Answer::Raw {
                    response: throttled_response(429, ctx.limits.as_deref(), retry_after_ms, &body),
                    close: false,
                })
            }
        }
    }

    /// MCP-level rules: each message the ACL let through that a selector picks.
    async fn decide(&self, ctx: &mut RequestCtx, req: Request<'_>, body: Body<'_>) -> Step {
        let (Some(api_index), Some(classified)) = (ctx.api, body.message) else {
            return Step::Continue;
        };
        let snapshot = Rc::clone(&ctx.snapshot);
        let Some(api) = snapshot.config.apis.get(api_index) else {
            return Step::Continue;
        };
        if !api.limits.has_message_rules() {
            return Step::Continue;
        }
        let principal = ctx.principal.clone();
        let messages = classified.messages();
        let mut pending: SmallVec<[Pending; 4]> = SmallVec::new();
        // Which messages were counted (their index), to answer each refused request.
        let mut counted: SmallVec<[usize; 4]> = SmallVec::new();
        {
            let facts = Facts {
                method: ctx.method.as_str(),
                req,
                client_ip: ctx.peer.ip(),
                principal: principal.as_deref(),
                auth: OnceCell::new(),
            };
            let mut judged = 0;
            for (i, m) in messages.iter().enumerate() {
                if !matches!(m.kind, Kind::Request | Kind::Notification) {
                    continue;
                }
                let through = acl_lets_through(ctx, judged);
                judged += 1;
                if !through {
                    continue;
                }
                let method = m.method.as_deref().unwrap_or_default();
                let mcp = mcp_facts(method, &m.target);
                let mut any = false;
                for (r, rule) in api.limits.rules.iter().enumerate() {
                    let Stage::Message(selector) = &rule.rule.stage else {
                        continue;
                    };
                    if !selector.selects(method, m.target.as_str()) || !applies(rule, &facts, mcp) {
                        continue;
                    }
                    let (tag, material) = key_of(rule, &facts, mcp);
                    add_charge(&mut pending, r, tag, material);
                    any = true;
                }
                // A batch is judged whole: each of its requests is answered if it is refused.
                let _ = any;
                counted.push(i);
            }
        }
        if pending.is_empty() {
            return Step::Continue;
        }
        let Err((rule, retry_after_ms)) = self.charge(ctx, &snapshot, api_index, &pending).await
        else {
            return Step::Continue;
        };
        let name = api
            .limits
            .rules
            .get(rule)
            .map_or("", |r| r.rule.name.as_str());
        // Every request the batch carried (past the ACL) gets the error; the ACL's own refusals
        // of the other elements stay as the ACL wrote them.
        let mut errors: Vec<Vec<u8>> = counted
            .iter()
            .filter_map(|&i| messages.get(i))
            .filter(|m| m.kind == Kind::Request)
            .map(|m| error_body(m.id_bytes(body.bytes), retry_after_ms, name))
            .collect();
        let batch = messages.len() > 1
            || matches!(classified, mcpgate_codec::jsonrpc::Classified::Batch(_));
        if let Some(acl) = ctx.acl.as_deref_mut() {
            errors.append(&mut acl.injected);
        }
        // The upstream sees none of it.
        ctx.forward_body = None;
        let response = match (errors.len(), batch) {
            (0, _) => {
                let body = error_body(None, retry_after_ms, name);
                throttled_response(429, ctx.limits.as_deref(), retry_after_ms, &body)
            }
            (1, false) => {
                let body = errors.pop().unwrap_or_default();
                throttled_response(200, ctx.limits.as_deref(), retry_after_ms, &body)
            }
            _ => {
                let mut joined =
                    Vec::with_capacity(errors.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
                joined.push(b'[');
                for (k, e) in errors.iter().enumerate() {
                    if k > 0 {
                        joined.push(b',');
                    }
                    joined.extend_from_slice(e);
                }
                joined.push(b']');
                throttled_response(200, ctx.limits.as_deref(), retry_after_ms, &joined)
            }
        };
        Step::Answer(Answer::Raw {
            response,
            close: false,
        })
    }

    /// The upstream's answer to a counted request carries the limits' state.
    fn response_head(&self, ctx: &mut RequestCtx, resp: &mut Response<'_>) {
        let Some(lx) = ctx.limits.as_deref() else {
            return;
        };
        if lx.policy.is_empty() {
            return;
        }
        let mut out =
            Vec::with_capacity(resp.head.head_len + lx.policy.len() + lx.limit.len() + 48);
        {
            let mut writer = HeadWriter::response(resp.buf, resp.head);
            writer.add_mut("ratelimit-policy", lx.policy.as_bytes());
            writer.add_mut("ratelimit", lx.limit.as_bytes());
            writer.write(&mut out);
        }
        resp.replace_head(out);
    }
}

/// `{"jsonrpc":"2.0","id":…,"error":{"code":-32029,"message":"Rate limit exceeded",
/// "data":{"retryAfterMs":…,"rule":"…"}}}` (`id`: the request's raw JSON, `null` without one).
fn error_body(id: Option<&[u8]>, retry_after_ms: u64, rule: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.unwrap_or(b"null"));
    out.extend_from_slice(
        format!(
            ",\"error\":{{\"code\":{THROTTLED},\"message\":\"{THROTTLED_MESSAGE}\",\"data\":{{\"retryAfterMs\":{retry_after_ms},\"rule\":\"{rule}\"}}}}}}"
        )
        .as_bytes(),
    );
    out
}

/// A throttled answer: `status`, `Retry-After` (seconds, rounded up), the limits' headers and a
/// JSON body.
fn throttled_response(
    status: u16,
    lx: Option<&LimitsExchange>,
    retry_after_ms: u64,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(
        format!("retry-after: {}\r\n", ceil_secs(retry_after_ms).max(1)).as_bytes(),
    );
    if let Some(lx) = lx.filter(|lx| !lx.policy.is_empty()) {
        out.extend_from_slice(format!("ratelimit-policy: {}\r\n", lx.policy).as_bytes());
        out.extend_from_slice(format!("ratelimit: {}\r\n", lx.limit).as_bytes());
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_json_rpc_error_with_the_retry_hint() {
        let body = error_body(Some(br#""a\"b""#), 1500, "calls");
        let v: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["error"]["code"], THROTTLED);
        assert_eq!(v["error"]["data"]["retryAfterMs"], 1500);
        assert_eq!(v["error"]["data"]["rule"], "calls");
        let null = error_body(None, 1, "x");
        assert!(null.starts_with(br#"{"jsonrpc":"2.0","id":null,"#));
    }

    #[test]
    fn throttled_answers_carry_retry_after_and_the_limit_headers() {
        let lx = LimitsExchange {
            policy: "\"calls\";q=2;w=60".into(),
            limit: "\"calls\";r=0;t=30".into(),
            throttled: Some("calls".into()),
        };
        let response = throttled_response(429, Some(&lx), 29_001, b"{}");
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 429 "), "{text}");
        assert!(text.contains("\r\nretry-after: 30\r\n"), "{text}");
        assert!(
            text.contains("\r\nratelimit-policy: \"calls\";q=2;w=60\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nratelimit: \"calls\";r=0;t=30\r\n"),
            "{text}"
        );
        assert!(text.ends_with("content-length: 2\r\n\r\n{}"), "{text}");
        // Without decisions (Redis down, fail closed): no RateLimit headers, still a retry hint.
        let bare = throttled_response(200, None, 1, b"{}");
        let text = String::from_utf8_lossy(&bare);
        assert!(text.contains("retry-after: 1\r\n") && !text.contains("ratelimit"));
    }
}
