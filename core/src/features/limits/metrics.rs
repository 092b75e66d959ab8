//! The rate limits' `/metrics` families, rendered at scrape time from the current snapshot's rules
//! (their counters are atomics shared by every worker, kept across reloads) and the process's
//! Redis counters. Label cardinality is bounded by the configuration: one series per API × rule.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::config::{Config, Scope};
use crate::observe::metrics::escape_label_value;

use super::redis;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Appends the families (nothing when no API has a rule).
pub fn render(config: &Config, out: &mut String) {
    let rules: Vec<_> = config
        .apis
        .iter()
        .flat_map(|api| api.limits.rules.iter().map(move |r| (api, r)))
        .collect();
    if rules.is_empty() {
        return;
    }
    let labels = |api: &str, rule: &str| {
        format!(
            "api=\"{}\",rule=\"{}\"",
            escape_label_value(api),
            escape_label_value(rule)
        )
    };
    family(
        out,
        "mcpgate_ratelimit_decisions_total",
        "counter",
        "Units counted by each rate limit or quota rule, by decision (allowed, refused).",
    );
    for (api, r) in &rules {
        let l = labels(&api.name, &r.rule.name);
        let s = &r.state;
        let _ = writeln!(
            out,
            "mcpgate_ratelimit_decisions_total{{{l},decision=\"allowed\"}} {}",
            s.allowed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "mcpgate_ratelimit_decisions_total{{{l},decision=\"refused\"}} {}",
            s.refused.load(Ordering::Relaxed)
        );
    }
    family(
        out,
        "mcpgate_ratelimit_keys",
        "gauge",
        "Keys a node-scope rule holds in this process (at most its max_keys).",
    );
    for (api, r) in rules.iter().filter(|(_, r)| r.rule.scope == Scope::Node) {
        let _ = writeln!(
            out,
            "mcpgate_ratelimit_keys{{{}}} {}",
            labels(&api.name, &r.rule.name),
            r.state.store.len()
        );
    }
    family(
        out,
        "mcpgate_ratelimit_evictions_total",
        "counter",
        "Keys a node-scope rule dropped to stay within max_keys.",
    );
    for (api, r) in rules.iter().filter(|(_, r)| r.rule.scope == Scope::Node) {
        let _ = writeln!(
            out,
            "mcpgate_ratelimit_evictions_total{{{}}} {}",
            labels(&api.name, &r.rule.name),
            r.state.store.evictions()
        );
    }
    family(
        out,
        "mcpgate_ratelimit_store_errors_total",
        "counter",
        "Decisions of a cluster-scope rule that Redis could not make (its on_redis_error applied).",
    );
    for (api, r) in rules
        .iter()
        .filter(|(_, r)| matches!(r.rule.scope, Scope::Cluster { .. }))
    {
        let _ = writeln!(
            out,
            "mcpgate_ratelimit_store_errors_total{{{}}} {}",
            labels(&api.name, &r.rule.name),
            r.state.store_errors.load(Ordering::Relaxed)
        );
    }
    if config.redis.is_some() {
        for (name, help, value) in [
            (
                "mcpgate_ratelimit_redis_calls_total",
                "Calls sent to Redis (one per request with cluster-scope rules; two after Redis lost the script).",
                &redis::CALLS,
            ),
            (
                "mcpgate_ratelimit_redis_failures_total",
                "Redis calls without a usable answer (unreachable, timeout, error).",
                &redis::FAILURES,
            ),
            (
                "mcpgate_ratelimit_redis_connects_total",
                "Connections opened to Redis (one per worker, plus one per reconnection).",
                &redis::CONNECTS,
            ),
        ] {
            family(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }
}
