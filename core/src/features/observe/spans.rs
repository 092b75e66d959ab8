//! The exchange's trace as spans (docs/observability.md, "Traces"): at the `record` phase a
//! sampled exchange becomes a server span (`{method} {target}`) with children for the phases
//! that ran — `route`, `authenticate`, `acl` (APIs with an ACL) and `upstream` (a client span
//! whose id is the `traceparent` parent the upstream got) — from the marks `Pipeline::run` left
//! in `RequestCtx::trace`. Spans wait in a per-worker batch handed to the exporter thread
//! when full or at the worker's tick, never on the request's time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpgate_policies::acl::{Basis, Outcome as AclOutcome};

use crate::context::RequestCtx;
use crate::observe::trace::{self, SpanData, SpanKind, StatusCode, TraceCtx, TraceExporter, Value};

/// How long a worker keeps a partial batch before handing it over.
const WORKER_FLUSH: Duration = Duration::from_millis(200);

/// A worker's side of tracing.
pub struct WorkerSpans {
    exporter: Arc<TraceExporter>,
    /// Threshold on new trace ids (`crate::observe::trace::threshold`).
    pub threshold: u64,
    pending: Vec<SpanData>,
    batch: usize,
    last_flush: Instant,
}

impl WorkerSpans {
    pub fn new(exporter: Arc<TraceExporter>) -> Self {
        let batch = exporter.config.batch_size.clamp(1, 256);
        WorkerSpans {
            threshold: trace::threshold_ppm(exporter.config.sample_ppm),
            exporter,
            pending: Vec::with_capacity(batch),
            batch,
            last_flush: Instant::now(),
        }
    }

    pub fn push(&mut self, spans: impl IntoIterator<Item = SpanData>) {
        self.pending.extend(spans);
        if self.pending.len() >= self.batch {
            self.flush();
        }
    }

    /// From the worker's tick: hands over a partial batch that has waited long enough.
    pub fn tick(&mut self) {
        if !self.pending.is_empty() && self.last_flush.elapsed() >= WORKER_FLUSH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        self.last_flush = Instant::now();
        if !self.pending.is_empty() {
            let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(self.batch));
            self.exporter.offer(batch);
        }
    }
}

impl Drop for WorkerSpans {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The attribute naming a message's target, after the MCP semantic conventions.
fn target_key(method: &str) -> &'static str {
    if method.starts_with("tools/") {
        "gen_ai.tool.name"
    } else if method.starts_with("resources/") {
        "mcp.resource.uri"
    } else if method.starts_with("prompts/") {
        "gen_ai.prompt.name"
    } else {
        "mcpgate.target"
    }
}

/// The spans of one finished exchange (before the exchange log's `record` takes its notes).
pub fn exchange_spans(ctx: &RequestCtx, t: &TraceCtx) -> Vec<SpanData> {
    let now = Instant::now();
    let ns = |i: Instant| t.unix_ns(ctx.started, i);
    let end_ns = ns(now);
    let first = ctx.obs.messages.first();
    let method: Option<String> = first
        .map(|m| m.method.to_string())
        .or_else(|| ctx.rpc.as_ref().and_then(|r| r.method.clone()));
    let target = first.and_then(|m| m.target.as_ref()).map(|l| l.to_string());
    let api = ctx.api();

    let mut attrs: Vec<(&'static str, Value)> = Vec::with_capacity(14);
    attrs.push(("mcpgate.request_id", Value::Str(ctx.request_id.to_string())));
    attrs.push((
        "http.request.method",
        Value::Str(ctx.method.as_str().into()),
    ));
    attrs.push(("client.address", Value::Str(ctx.peer.ip().to_string())));
    if let Some(m) = &method {
        attrs.push(("mcp.method.name", Value::Str(m.clone())));
        attrs.push(("rpc.system", Value::Str("jsonrpc".into())));
    }
    if let (Some(m), Some(target)) = (&method, &target) {
        attrs.push((target_key(m), Value::Str(target.clone())));
    }
    if let Some(n) = ctx.rpc.as_ref().map(|r| r.messages).filter(|n| *n > 1) {
        attrs.push(("mcpgate.batch.size", Value::Int(n as i64)));
    }
    if let Some(tag) = ctx.obs.session {
        // The tag the exchange log shows, never the id (a bearer-like secret).
        attrs.push(("mcp.session.id", Value::Str(tag.to_string())));
    }
    if let Some(api) = api {
        attrs.push(("mcpgate.api", Value::Str(api.name.clone())));
    }
    if let Some(subject) = ctx.principal.as_ref().and_then(|p| p.subject.as_deref()) {
        attrs.push(("enduser.id", Value::Str(subject.to_owned())));
    }
    if ctx.status != 0 {
        attrs.push((
            "http.response.status_code",
            Value::Int(i64::from(ctx.status)),
        ));
    }
    if let Some(code) = ctx.obs.jsonrpc_error {
        attrs.push(("rpc.jsonrpc.error_code", Value::Int(code)));
    }
    let acl_decision = ctx.acl.as_deref().and_then(|acl| {
        let d = acl.records.first()?;
        let decision = match d.outcome {
            AclOutcome::Refused | AclOutcome::Dropped => "deny",
            AclOutcome::DryRunRefused | AclOutcome::DryRunDropped => "would_deny",
            AclOutcome::Allowed => "allow",
        };
        let rule = match d.basis {
            Basis::NotGoverned => return None,
            Basis::Rule(r) => acl.acl.rule_label(r).map(str::to_owned),
            _ => None,
        };
        Some((decision, rule))
    });
    if let Some((decision, _)) = &acl_decision {
        attrs.push(("mcpgate.acl.decision", Value::Str((*decision).into())));
    }
    let failure = ctx.obs.upstream_failure.map(|f| f.as_str());
    let (status, status_message) = if let Some(f) = failure {
        (StatusCode::Error, Some(format!("upstream: {f}")))
    } else if ctx.status >= 500 {
        (StatusCode::Error, Some(format!("HTTP {}", ctx.status)))
    } else if let Some(code) = ctx.obs.jsonrpc_error {
        (StatusCode::Error, Some(format!("JSON-RPC error {code}")))
    } else {
        (StatusCode::Unset, None)
    };
    let name = match (&method, &target) {
        (Some(m), Some(target)) => format!("{m} {target}"),
        (Some(m), None) => m.clone(),
        (None, _) => match api {
            Some(api) => format!("{} {}", ctx.method.as_str(), api.path),
            None => ctx.method.as_str().to_owned(),
        },
    };

    let mut spans = Vec::with_capacity(5);
    spans.push(SpanData {
        trace_id: t.trace_id,
        span_id: t.span_id,
        parent_span_id: t.parent_span_id,
        trace_state: t.trace_state.clone(),
        name,
        kind: SpanKind::Server,
        start_unix_ns: t.start_unix_ns,
        end_unix_ns: end_ns,
        attributes: attrs,
        status,
        status_message,
    });
    let child = |name: &str, kind, start: Instant, end: Instant, attributes, span_id| SpanData {
        trace_id: t.trace_id,
        span_id,
        parent_span_id: Some(t.span_id),
        trace_state: None,
        name: name.to_owned(),
        kind,
        start_unix_ns: ns(start),
        end_unix_ns: ns(end),
        attributes,
        status: StatusCode::Unset,
        status_message: None,
    };
    let api_attr = || {
        api.map(|a| vec![("mcpgate.api", Value::Str(a.name.clone()))])
            .unwrap_or_default()
    };
    spans.push(child(
        "route",
        SpanKind::Internal,
        ctx.started,
        t.route_end.unwrap_or(now),
        api_attr(),
        trace::new_span_id(),
    ));
    if let (Some(start), Some(end)) = (t.auth_start, t.auth_end) {
        let mut a = Vec::new();
        if let Some(api) = api {
            a.push(("mcpgate.api.has_plans", Value::Bool(api.auth.is_some())));
        }
        if ctx.principal.is_some() {
            a.push(("mcpgate.authenticated", Value::Bool(true)));
        }
        spans.push(child(
            "authenticate",
            SpanKind::Internal,
            start,
            end,
            a,
            trace::new_span_id(),
        ));
    }
    if let (Some(start), Some(end), Some(_)) = (t.decide_start, t.decide_end, ctx.acl.as_ref()) {
        let mut a = Vec::new();
        if let Some((decision, rule)) = &acl_decision {
            a.push(("mcpgate.acl.decision", Value::Str((*decision).into())));
            a.push((
                "mcpgate.acl.rule",
                Value::Str(rule.clone().unwrap_or_else(|| "implicit_deny".into())),
            ));
        }
        spans.push(child(
            "acl",
            SpanKind::Internal,
            start,
            end,
            a,
            trace::new_span_id(),
        ));
    }
    if let Some(start) = t.forward_start {
        let mut a = Vec::new();
        if let Some(api) = api {
            a.push(("url.full", Value::Str(api.upstream.url.clone())));
            a.push((
                "server.address",
                Value::Str(api.upstream.host_header.clone()),
            ));
        }
        if t.forward_head.is_some() && ctx.status != 0 {
            a.push((
                "http.response.status_code",
                Value::Int(i64::from(ctx.status)),
            ));
        }
        let mut s = child(
            "upstream",
            SpanKind::Client,
            start,
            now,
            a,
            t.upstream_span_id,
        );
        if let Some(f) = failure {
            s.status = StatusCode::Error;
            s.status_message = Some(format!("upstream: {f}"));
        }
        spans.push(s);
    }
    spans
}
