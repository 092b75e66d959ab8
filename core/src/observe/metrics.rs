//! Prometheus text exposition (format 0.0.4), written by hand: the format is a few lines of rules and
//! a crate would bring its own registry and locking we do not want. Built at scrape time from the
//! merge of every worker's published tallies; histograms come from the merged hdrhistograms,
//! exported with fixed buckets (bucket edges are exact to hdrhistogram's 1 % resolution).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::hub::ObserveHub;
use super::record::Label;
use super::shared::OTHER;
use super::tally::Map;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of `mcpgate_request_duration_seconds`.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// `label_value` escaped for the exposition format (`\`, `"` and newline).
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// The whole `/metrics` body.
pub fn render(hub: &ObserveHub) -> String {
    let merged = hub.merged();
    let t = &merged.tallies;
    let mut out = String::with_capacity(4096);

    // Fold targets past the per-api label budget into `other`, then sum what folded together.
    let mut seen: Map<Label, Map<Label, u64>> = Map::default();
    for (k, n) in &t.requests {
        if let Some(target) = &k.target {
            *seen
                .entry(k.api.clone())
                .or_default()
                .entry(target.clone())
                .or_default() += n;
        }
    }
    let seen: Map<Label, Vec<(Label, u64)>> = seen
        .into_iter()
        .map(|(api, m)| (api, m.into_iter().collect()))
        .collect();
    let labels = hub.target_labels(&seen);
    let mut requests: BTreeMap<(&str, &str, &str, &str), u64> = BTreeMap::new();
    for (k, n) in &t.requests {
        let target = match &k.target {
            Some(tg) => labels
                .get(&(k.api.clone(), tg.clone()))
                .map_or(OTHER, |l| &**l),
            None => "",
        };
        *requests
            .entry((&k.api, &k.method, target, k.outcome.as_str()))
            .or_default() += n;
    }
    header(
        &mut out,
        "mcpgate_requests_total",
        "counter",
        "JSON-RPC exchanges by API, method, target (tool, resource or prompt) and outcome.",
    );
    for ((api, method, target, outcome), n) in &requests {
        sample(
            &mut out,
            "mcpgate_requests_total",
            &[
                ("api", api),
                ("method", method),
                ("target", target),
                ("outcome", outcome),
            ],
            n,
        );
    }

    header(
        &mut out,
        "mcpgate_jsonrpc_errors_total",
        "counter",
        "JSON-RPC error answers by API and error code.",
    );
    let errors: BTreeMap<(&str, String), u64> = t
        .jsonrpc_errors
        .iter()
        .map(|((api, code), n)| {
            (
                (
                    &**api,
                    code.map_or_else(|| OTHER.to_string(), |c| c.to_string()),
                ),
                *n,
            )
        })
        .collect();
    for ((api, code), n) in &errors {
        sample(
            &mut out,
            "mcpgate_jsonrpc_errors_total",
            &[("api", api), ("code", code)],
            n,
        );
    }

    header(
        &mut out,
        "mcpgate_acl_denials_total",
        "counter",
        "Messages refused by the MCP ACL, by API and deciding rule (implicit_deny when no rule matched).",
    );
    let denials = |dry_run: bool| -> BTreeMap<(&str, &str), u64> {
        let mut by_rule = BTreeMap::new();
        for ((api, rule, d), n) in &t.acl_denials {
            if *d == dry_run {
                *by_rule
                    .entry((&**api, rule.as_deref().unwrap_or("implicit_deny")))
                    .or_default() += *n;
            }
        }
        by_rule
    };
    for ((api, rule), n) in &denials(false) {
        sample(
            &mut out,
            "mcpgate_acl_denials_total",
            &[("api", api), ("rule", rule)],
            n,
        );
    }
    header(
        &mut out,
        "mcpgate_acl_would_deny_total",
        "counter",
        "Messages an ACL in dry-run let through although its rules refuse them, by API and rule.",
    );
    for ((api, rule), n) in &denials(true) {
        sample(
            &mut out,
            "mcpgate_acl_would_deny_total",
            &[("api", api), ("rule", rule)],
            n,
        );
    }

    header(
        &mut out,
        "mcpgate_upstream_errors_total",
        "counter",
        "Failed upstream legs by API and kind (connect, timeout, reset, bad_response).",
    );
    let upstream: BTreeMap<(&str, &str), u64> = t
        .upstream_errors
        .iter()
        .map(|((api, kind), n)| ((&**api, kind.as_str()), *n))
        .collect();
    for ((api, kind), n) in &upstream {
        sample(
            &mut out,
            "mcpgate_upstream_errors_total",
            &[("api", api), ("kind", kind)],
            n,
        );
    }

    header(
        &mut out,
        "mcpgate_request_duration_seconds",
        "histogram",
        "Time from the start of an exchange to its last response byte, by API and method.",
    );
    let latency: BTreeMap<(&str, &str), _> = t
        .latency
        .iter()
        .map(|((api, method), l)| ((&**api, &**method), l))
        .collect();
    for ((api, method), l) in &latency {
        for le in DURATION_BUCKETS {
            let us = (le * 1_000_000.0) as u64;
            let n = l.hist.count_between(0, us);
            let le = le.to_string();
            sample(
                &mut out,
                "mcpgate_request_duration_seconds_bucket",
                &[("api", api), ("method", method), ("le", &le)],
                n,
            );
        }
        let total = l.hist.len();
        sample(
            &mut out,
            "mcpgate_request_duration_seconds_bucket",
            &[("api", api), ("method", method), ("le", "+Inf")],
            total,
        );
        sample(
            &mut out,
            "mcpgate_request_duration_seconds_sum",
            &[("api", api), ("method", method)],
            l.sum_us as f64 / 1_000_000.0,
        );
        sample(
            &mut out,
            "mcpgate_request_duration_seconds_count",
            &[("api", api), ("method", method)],
            total,
        );
    }

    header(
        &mut out,
        "mcpgate_sse_streams_open",
        "gauge",
        "SSE streams currently open to clients.",
    );
    sample(
        &mut out,
        "mcpgate_sse_streams_open",
        &[],
        merged.sse_streams_open,
    );
    header(
        &mut out,
        "mcpgate_client_write_timeouts_total",
        "counter",
        "Answers cut off because the client accepted no byte within timeouts.client_write.",
    );
    sample(
        &mut out,
        "mcpgate_client_write_timeouts_total",
        &[],
        merged.client_write_timeouts,
    );
    header(
        &mut out,
        "mcpgate_connections_active",
        "gauge",
        "Client connections currently open.",
    );
    sample(
        &mut out,
        "mcpgate_connections_active",
        &[],
        merged.connections_active,
    );
    header(
        &mut out,
        "mcpgate_log_records_dropped_total",
        "counter",
        "Exchange records not written to the JSON-lines sink because its queue was full.",
    );
    sample(
        &mut out,
        "mcpgate_log_records_dropped_total",
        &[],
        hub.log_records_dropped(),
    );
    header(
        &mut out,
        "mcpgate_build_info",
        "gauge",
        "Always 1; the version label says which build runs.",
    );
    sample(
        &mut out,
        "mcpgate_build_info",
        &[("version", &hub.config().version)],
        1,
    );
    for source in hub.sources() {
        source.metrics(&mut out);
    }
    out
}
