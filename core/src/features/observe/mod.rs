//! The exchange log as a feature of the request path (docs/observability.md): the phases note
//! what the request is (`inspect`), when the upstream answered (`response_head`), what the client
//! got (`body_filter`, `body_seen`, `local_answer`) and every server→client message relayed on a
//! stream (`event_filter`, after the ACL judged it), and `record` turns the notes into exchange
//! records — one per JSON-RPC message of the request, plus one per server→client message. The
//! recording API itself (rings, metrics, sinks) is `crate::observe`.
//!
//! Cost rule: nothing here parses what the engine does not already have in hand, except, when
//! recording is on, answers and event `data` that a SIMD substring search says may be a
//! server→client message (`"method"`), a JSON-RPC error (`"error"`) or a tool's failure
//! (`"isError"`): a plain server message's method is read by the codec's envelope reader, anything
//! else is classified to learn what to record.

pub mod spans;
pub mod state;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use mcpgate_codec::envelope;
use mcpgate_codec::jsonrpc::{Classifier, Kind};
use mcpgate_policies::acl::{Basis, DecisionRecord, Outcome as AclOutcome};

use crate::config::{Config, LogSink};
use crate::context::{HttpMethod, RequestCtx};
use crate::errors::{Error, ErrorKind};
use crate::features::acl::exchange::AclExchange;
use crate::observe::exchange::{NotedMessage, PendingCapture};
use crate::observe::{
    self, AclDecision, Capture, ExchangeKind, ExchangeRecord, Label, ObserveConfig, ObserveHub,
    SessionTag, SinkError, SinkTarget, UpstreamFailure, WorkerObserver,
};
use crate::phases::{Body, BufferedAnswer, Event, EventStep, Phases, Request, Response, Step};

/// Method label of a POST whose body was not JSON-RPC (or never read).
const UNPARSED: &str = "(unparsed)";
/// Raw response bytes kept for a capture beyond its cap, so redaction sees whole secrets.
const CAPTURE_SLACK: usize = 1024;

/// The common tail of the `"error"` and `"isError"` keys: one SIMD pass over an answer finds
/// both. Built once: `memmem::find` would rebuild the searcher for every answer.
static ERROR_KEY_TAIL: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"rror\""));
static METHOD_KEY: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\"method\""));

/// Whether `body` may be a JSON-RPC error (`"error": {`) or a tool's failure (`"isError": true`),
/// so worth classifying. The value is looked at too: many servers send `"isError": false` on
/// every result, which must not cost a parse. A false positive (the bytes inside a string) only
/// costs the classification.
fn may_carry_error(body: &[u8]) -> bool {
    ERROR_KEY_TAIL.find_iter(body).any(|at| {
        let before = |n: usize| at.checked_sub(n).and_then(|s| body.get(s..at));
        let value = body.get(at + 5..).unwrap_or_default();
        if before(2) == Some(b"\"e") {
            value_starts_with(value, b'{')
        } else if before(4) == Some(b"\"isE") {
            value_starts_with(value, b't')
        } else {
            false
        }
    })
}

/// `rest` (what follows a key's closing quote) is `:` then a value starting with `first`.
fn value_starts_with(rest: &[u8], first: u8) -> bool {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut bytes = rest.iter().skip_while(|b| is_ws(b));
    bytes.next() == Some(&b':') && bytes.find(|b| !is_ws(b)) == Some(&first)
}

/// The hub's settings from the snapshot the gateway starts with (a reload does not change them).
pub fn observe_config(config: &Config) -> ObserveConfig {
    let log = &config.log.gateway;
    let mut allow = std::collections::HashMap::new();
    for api in &config.apis {
        if let Some(list) = &api.log.target_allow_list {
            allow.insert(api.name.clone(), list.clone());
        }
    }
    ObserveConfig {
        ring_capacity: log.ring_capacity,
        sink: match &log.sink {
            LogSink::Off => SinkTarget::None,
            LogSink::Stdout => SinkTarget::Stdout,
            LogSink::File(p) => SinkTarget::File(p.clone()),
        },
        target_labels_per_api: log.target_labels_per_api,
        targets_tracked_per_worker: log.target_labels_per_api.max(256),
        target_allow_list: allow,
        redact_headers: log.redact_headers.clone(),
        redact_fields: log.redact_fields.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        traces: config.traces.clone(),
        ..ObserveConfig::default()
    }
}

pub fn start_hub(config: &Config) -> Result<ObserveHub, SinkError> {
    ObserveHub::start(observe_config(config))
}

/// A worker's recorder plus the classifier it uses for answers (the pipeline's is busy with
/// requests and lives in another `RefCell`).
pub struct WorkerObs {
    pub obs: WorkerObserver,
    classifier: Classifier,
    enabled: bool,
    /// Session id → tag: a keyed hash per record otherwise. Bounded; cleared when full.
    session_tags: HashMap<Box<[u8]>, SessionTag, ahash::RandomState>,
}

/// Sessions whose tags a worker remembers before it starts over.
const SESSION_TAGS_CACHED: usize = 4096;

impl WorkerObs {
    pub fn new(hub: &ObserveHub, enabled: bool) -> Self {
        Self {
            obs: hub.worker(),
            classifier: Classifier::new(),
            enabled,
            session_tags: HashMap::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The name and upstream labels of the exchange's API, interned once per snapshot.
    fn api_labels(&mut self, ctx: &RequestCtx) -> Option<(Label, Label)> {
        let api = ctx.api()?;
        let mut slot = ctx.api_state()?.observe.labels.borrow_mut();
        let obs = &mut self.obs;
        Some(
            slot.get_or_insert_with(|| (obs.label(&api.name), obs.label(&api.upstream.url)))
                .clone(),
        )
    }

    fn session_tag(&mut self, session_id: &[u8]) -> SessionTag {
        if let Some(tag) = self.session_tags.get(session_id) {
            return *tag;
        }
        if self.session_tags.len() >= SESSION_TAGS_CACHED {
            self.session_tags.clear();
        }
        let tag = SessionTag::from_secret(session_id);
        self.session_tags.insert(session_id.into(), tag);
        tag
    }
}

/// The exchange log feature: the worker's recorder (never borrowed across an `.await`), and its
/// trace spans when `[gateway.traces]` is on.
pub struct Observe {
    worker: RefCell<WorkerObs>,
    spans: Option<RefCell<spans::WorkerSpans>>,
}

impl Observe {
    pub fn new(hub: &ObserveHub, enabled: bool) -> Self {
        Observe {
            worker: RefCell::new(WorkerObs::new(hub, enabled)),
            spans: hub
                .tracer()
                .map(|t| RefCell::new(spans::WorkerSpans::new(Arc::clone(t)))),
        }
    }

    /// Decides whether the exchange is traced (the client's `traceparent` followed, else the
    /// sample ratio) and sets `ctx.trace`. Nothing without `[gateway.traces]`.
    pub fn start_trace(
        &self,
        ctx: &mut RequestCtx,
        traceparent: Option<&[u8]>,
        tracestate: Option<&[u8]>,
    ) {
        if let Some(s) = &self.spans {
            let threshold = s.borrow().threshold;
            ctx.trace = observe::trace::start(traceparent, tracestate, threshold, ctx.started);
        }
    }

    pub fn enabled(&self) -> bool {
        self.worker.borrow().enabled
    }

    /// From the worker's periodic wake-up: publishes an idle worker's last records and spans.
    pub fn tick(&self) {
        if let Ok(mut w) = self.worker.try_borrow_mut() {
            if w.enabled {
                w.obs.tick(observe::now_unix_ms());
            }
        }
        if let Some(Ok(mut s)) = self.spans.as_ref().map(RefCell::try_borrow_mut) {
            s.tick();
        }
    }

    /// Counts the connection in `mcpgate_connections_active` until dropped.
    pub fn connection_guard(&self) -> Option<observe::ConnectionGuard> {
        let w = self.worker.borrow();
        w.enabled.then(|| w.obs.connection_opened())
    }

    /// Counts an event stream in `mcpgate_sse_streams_open` until dropped.
    pub fn sse_guard(&self) -> Option<observe::SseStreamGuard> {
        let w = self.worker.borrow();
        w.enabled.then(|| w.obs.sse_stream_opened())
    }
}

impl Phases for Observe {
    fn inspect(&self, ctx: &mut RequestCtx, req: Request<'_>, body: Body<'_>) -> Step {
        note_request(&self.worker, ctx, req, body);
        Step::Continue
    }

    fn response_head(&self, ctx: &mut RequestCtx, resp: &mut Response<'_>) {
        note_response_head(ctx, resp);
    }

    fn body_filter(
        &self,
        ctx: &mut RequestCtx,
        answer: &mut BufferedAnswer<'_>,
    ) -> Result<(), Error> {
        note_answer(&self.worker, ctx, &answer.body);
        Ok(())
    }

    fn sees_body(&self, ctx: &RequestCtx) -> bool {
        ctx.obs.on
    }

    fn body_seen(&self, ctx: &mut RequestCtx, body: &[u8]) {
        note_answer(&self.worker, ctx, body);
    }

    fn event_filter(&self, ctx: &mut RequestCtx, event: &mut Event<'_>) -> EventStep {
        note_sse_event(&self.worker, ctx, &event.data, event.upstream_raw);
        EventStep::Relay
    }

    fn local_answer(&self, ctx: &mut RequestCtx, response: &[u8], error: Option<&Error>) {
        match error {
            Some(e) => note_gateway_error(ctx, e),
            None => note_raw_answer(&self.worker, ctx, response),
        }
    }

    fn record(&self, ctx: &mut RequestCtx) {
        // Before the exchange log takes its notes (the messages).
        if let (Some(spans), Some(t)) = (&self.spans, ctx.trace.as_deref()) {
            let built = spans::exchange_spans(ctx, t);
            spans.borrow_mut().push(built);
        }
        record(&self.worker, ctx);
    }
}

/// After `inspect`: what the request is (messages, session, size) and, with capture on, its
/// redacted headers and body. Also for GET/DELETE (no messages), so stream records carry the session.
fn note_request(
    worker: &RefCell<WorkerObs>,
    ctx: &mut RequestCtx,
    req: Request<'_>,
    body: Body<'_>,
) {
    let mut w = worker.borrow_mut();
    if !w.enabled {
        return;
    }
    let (buf, head, message) = (req.buf, req.head, body.message);
    let body = body.bytes;
    let notes = &mut ctx.obs;
    notes.on = true;
    notes.request_bytes = (head.head_len + body.len()) as u64;
    let session_id = head.header(buf, "mcp-session-id");
    // With plans the client holds a sealed id; tag the upstream's, which `initialize`'s answer
    // also carries, so every record of a session has the same tag.
    notes.session = ctx
        .upstream_session
        .as_deref()
        .map(str::as_bytes)
        .or(session_id)
        .map(|id| w.session_tag(id));
    if let Some(classified) = message {
        for m in classified.messages() {
            let kind = match m.kind {
                Kind::Request => ExchangeKind::Request,
                Kind::Notification => ExchangeKind::Notification,
                // A client's answer to a server→client request: that exchange was recorded when
                // the request went by on a stream.
                Kind::Response | Kind::ErrorResponse => continue,
            };
            let Some(method) = m.method.as_deref() else {
                continue;
            };
            let method = w.obs.label(method);
            let target = m.target.as_str().map(|t| w.obs.target_label(t));
            notes.messages.push(NotedMessage {
                kind,
                method,
                target,
            });
        }
    }
    let Some(policy) = ctx.api().map(|a| &a.log) else {
        return;
    };
    if !policy.capture {
        return;
    }
    let max_bytes = policy.capture_max_bytes;
    let authorization = head.header(buf, "authorization");
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    if let Some(a) = authorization {
        secrets.push(a.to_vec());
        if let Some(pos) = memchr::memchr(b' ', a) {
            let credential = a.get(pos + 1..).unwrap_or_default().trim_ascii();
            if !credential.is_empty() {
                secrets.push(credential.to_vec());
            }
        }
    }
    if let Some(s) = session_id {
        secrets.push(s.to_vec());
    }
    if let Some(s) = ctx.upstream_session.as_deref() {
        secrets.push(s.as_bytes().to_vec());
    }
    let secret_refs: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).collect();
    let red = w.obs.redactor();
    let request_headers = red.headers(
        head.headers(buf)
            .map(|(n, v)| (std::str::from_utf8(n).unwrap_or("?"), v)),
        &secret_refs,
    );
    let request_body = (!body.is_empty()).then(|| red.body(body, max_bytes, &secret_refs));
    ctx.obs.capture = Some(Box::new(PendingCapture {
        request_headers,
        request_body,
        response_raw: Vec::new(),
        raw_limit: max_bytes.saturating_add(CAPTURE_SLACK),
        max_bytes,
        secrets,
    }));
}

/// The upstream's response head arrived: first byte, and the session a POST `initialize` opened
/// (the upstream's id: with plans the client got a sealed one, which the auth feature replaced).
fn note_response_head(ctx: &mut RequestCtx, resp: &Response<'_>) {
    if !ctx.obs.on {
        return;
    }
    ctx.obs.first_byte = Some(Instant::now());
    if ctx.obs.session.is_none() {
        let upstream_id = ctx.upstream_session.as_deref().map(str::as_bytes);
        if let Some(id) = upstream_id.or_else(|| resp.header("mcp-session-id")) {
            ctx.obs.session = Some(SessionTag::from_secret(id));
            if let Some(c) = ctx.obs.capture.as_mut() {
                c.secrets.push(id.to_vec());
            }
        }
    }
}

/// A complete body the client got: its error code when it is a JSON-RPC error.
fn note_answer(worker: &RefCell<WorkerObs>, ctx: &mut RequestCtx, body: &[u8]) {
    let notes = &mut ctx.obs;
    if !notes.on {
        return;
    }
    if let Some(c) = notes.capture.as_mut() {
        c.push_response(body);
    }
    if !may_carry_error(body) {
        return;
    }
    let mut w = worker.borrow_mut();
    if let Ok(classified) = w.classifier.classify(body) {
        notes.jsonrpc_error = classified.messages().iter().find_map(|m| m.error_code);
        notes.tool_error = classified.messages().iter().any(|m| m.tool_error);
    }
}

/// One event from the upstream's stream, after the ACL judged it: the answer to the POST (its
/// error code), or a server→client request or notification, recorded as its own exchange with
/// the ACL's decision on it — a refused or dropped one too, though the client never saw it.
fn note_sse_event(worker: &RefCell<WorkerObs>, ctx: &mut RequestCtx, data: &[u8], raw: &[u8]) {
    if !ctx.obs.on {
        return;
    }
    if let Some(c) = ctx.obs.capture.as_mut() {
        c.push_response(raw);
    }
    // Only server→client messages (they have a method) and failed answers say anything worth
    // a parse; a plain result, the usual last event of a POST's stream, is skipped.
    if data.is_empty() || (METHOD_KEY.find(data).is_none() && !may_carry_error(data)) {
        return;
    }
    let mut w = worker.borrow_mut();
    let w = &mut *w;
    let acl = ctx.acl.as_deref();
    // The usual server message (a progress notification, a log message) is plain enough for the
    // envelope reader, at a fraction of a classification's cost.
    if let Some(env) = envelope::peek(data) {
        record_server_message(w, ctx, env.kind, env.method, None, raw, acl);
        return;
    }
    let Ok(classified) = w.classifier.classify(data) else {
        return;
    };
    for m in classified.messages() {
        match m.kind {
            Kind::ErrorResponse if ctx.method == HttpMethod::Post => {
                ctx.obs.jsonrpc_error = ctx.obs.jsonrpc_error.or(m.error_code);
            }
            Kind::Response if ctx.method == HttpMethod::Post => {
                ctx.obs.tool_error |= m.tool_error;
            }
            Kind::Response | Kind::ErrorResponse => {}
            Kind::Request | Kind::Notification => {
                let method = m.method.as_deref().unwrap_or(UNPARSED);
                record_server_message(w, ctx, m.kind, method, m.target.as_str(), raw, acl);
            }
        }
    }
}

/// Records a server→client request or notification (`kind`: as its envelope says), with the
/// ACL's decision on it when the exchange has an ACL.
fn record_server_message(
    w: &mut WorkerObs,
    ctx: &RequestCtx,
    kind: Kind,
    method: &str,
    target: Option<&str>,
    raw: &[u8],
    acl: Option<&AclExchange>,
) {
    let Some((api_label, upstream)) = w.api_labels(ctx) else {
        return;
    };
    let obs = &mut w.obs;
    let kind = if kind == Kind::Request {
        ExchangeKind::ServerRequest
    } else {
        ExchangeKind::ServerNotification
    };
    let method = obs.label(method);
    let mut r = ExchangeRecord::new(observe::now_unix_ms(), api_label, method, kind);
    r.request_id = Some(ctx.request_id.clone());
    r.target = target.map(|t| obs.target_label(t));
    r.session = ctx.obs.session;
    r.client = Some(ctx.peer.ip());
    r.response_bytes = raw.len() as u64;
    r.upstream = Some(upstream);
    if let Some((acl, d)) = acl.and_then(|a| a.server_decision.as_ref().map(|d| (a, d))) {
        (r.acl_decision, r.acl_rule) = decision_fields(obs, acl, d);
    }
    obs.record(r);
}

/// The gateway wrote a complete response itself (an ACL refusal, a plan's 401/403): its
/// JSON-RPC error code when its body has one.
fn note_raw_answer(worker: &RefCell<WorkerObs>, ctx: &mut RequestCtx, response: &[u8]) {
    if !ctx.obs.on {
        return;
    }
    ctx.obs.first_byte.get_or_insert_with(Instant::now);
    let body = memchr::memmem::find(response, b"\r\n\r\n")
        .and_then(|i| response.get(i + 4..))
        .unwrap_or_default();
    note_answer(worker, ctx, body);
}

/// The gateway answered with an error: its JSON-RPC code, and which upstream failure it was.
fn note_gateway_error(ctx: &mut RequestCtx, err: &Error) {
    if !ctx.obs.on {
        return;
    }
    ctx.obs.first_byte.get_or_insert_with(Instant::now);
    ctx.obs.jsonrpc_error = Some(err.jsonrpc_code());
    ctx.obs.upstream_failure = match err.kind {
        ErrorKind::UpstreamConnect(_) => Some(UpstreamFailure::Connect),
        ErrorKind::UpstreamTls(_) => Some(UpstreamFailure::Tls),
        ErrorKind::UpstreamConnectTimeout | ErrorKind::UpstreamTimeout => {
            Some(UpstreamFailure::Timeout)
        }
        ErrorKind::UpstreamIo(_) | ErrorKind::UpstreamClosed => Some(UpstreamFailure::Reset),
        ErrorKind::UpstreamMalformed(_) => Some(UpstreamFailure::BadResponse),
        _ => None,
    };
}

/// The record phase: one record per client→server message of the request (a POST that was not
/// JSON-RPC gets one under `(unparsed)`); GET/DELETE leave only their streams' records.
fn record(worker: &RefCell<WorkerObs>, ctx: &mut RequestCtx) {
    // Not `ctx.obs.on`: a POST refused before `inspect` (413, timeouts) is recorded too.
    let mut w = worker.borrow_mut();
    if !w.enabled() {
        return;
    }
    if ctx.obs.client_write_timeout {
        w.obs.client_write_timed_out();
    }
    let Some((api_label, upstream)) = w.api_labels(ctx) else {
        return;
    };
    let obs = &mut w.obs;
    // A virtual API: the upstream that served the exchange, by its configured name.
    let upstream = match ctx.served_by.as_deref() {
        Some(name) => obs.label(name),
        None => upstream,
    };
    let messages = std::mem::take(&mut ctx.obs.messages);
    // Nothing to record: GET/DELETE (their streams' messages are recorded as they pass), and
    // a POST carrying only the client's answers to server→client requests (recorded with those).
    if messages.is_empty() && (ctx.method != HttpMethod::Post || ctx.rpc.is_some()) {
        return;
    }
    let total = ctx.started.elapsed();
    let total_us = u64::try_from(total.as_micros()).unwrap_or(u64::MAX);
    let first_byte_us = ctx.obs.first_byte.map_or(total_us, |t| {
        u64::try_from(t.saturating_duration_since(ctx.started).as_micros()).unwrap_or(u64::MAX)
    });
    let time_ms = observe::now_unix_ms().saturating_sub(total_us / 1000);
    let subject = ctx
        .principal
        .as_ref()
        .and_then(|p| p.subject.as_deref())
        .map(|s| obs.label(s));
    let client_cert = ctx
        .tls
        .as_ref()
        .and_then(|t| t.client_cert.as_ref())
        .map(|c| obs.label(c.identity()));
    let mut capture = ctx.obs.capture.take().map(|c| {
        let secrets: Vec<&[u8]> = c.secrets.iter().map(Vec::as_slice).collect();
        let response_body = (!c.response_raw.is_empty())
            .then(|| obs.redactor().body(&c.response_raw, c.max_bytes, &secrets));
        Box::new(Capture {
            request_headers: Some(c.request_headers),
            request_body: c.request_body,
            response_headers: None,
            response_body,
        })
    });
    let unparsed = [NotedMessage {
        kind: ExchangeKind::Request,
        method: obs.label(UNPARSED),
        target: None,
    }];
    let list: &[NotedMessage] = if messages.is_empty() {
        &unparsed
    } else {
        &messages
    };
    for (i, m) in list.iter().enumerate() {
        let mut r = ExchangeRecord::new(time_ms, api_label.clone(), m.method.clone(), m.kind);
        r.request_id = Some(ctx.request_id.clone());
        r.target = m.target.clone();
        r.session = ctx.obs.session;
        r.subject = subject.clone();
        r.client_cert = client_cert.clone();
        r.client = Some(ctx.peer.ip());
        if let Some(acl) = ctx.acl.as_deref() {
            (r.acl_decision, r.acl_rule) = acl_fields(obs, acl, i);
        }
        if let Some(rule) = ctx.limits.as_ref().and_then(|l| l.throttled.as_deref()) {
            r.limit_rule = Some(obs.label(rule));
        }
        r.http_status = ctx.status;
        r.upstream = Some(upstream.clone());
        r.upstream_failure = ctx.obs.upstream_failure;
        r.first_byte_us = first_byte_us;
        r.total_us = total_us;
        if i == 0 {
            // A batch's bytes and answer are the HTTP exchange's; they go on its first message.
            r.jsonrpc_error = ctx.obs.jsonrpc_error;
            r.tool_error = ctx.obs.tool_error;
            r.request_bytes = ctx.obs.request_bytes;
            r.response_bytes = ctx.bytes_to_client;
            r.capture = capture.take();
        }
        obs.record(r);
    }
}

/// The ACL's verdict on the `i`-th client→server message: `decide` judged exactly the requests and
/// notifications, in order, before any list filter or server message added its own decisions.
/// Messages outside the ACL (`initialize`, `ping`…) have none; a denial without a rule is the
/// implicit deny, other refusals name why.
fn acl_fields(
    obs: &mut WorkerObserver,
    acl: &AclExchange,
    i: usize,
) -> (Option<AclDecision>, Option<Label>) {
    match acl.records.get(i) {
        Some(d) => decision_fields(obs, acl, d),
        None => (None, None),
    }
}

/// A decision as the exchange record shows it: allow/deny and the rule (or reason) behind it.
fn decision_fields(
    obs: &mut WorkerObserver,
    acl: &AclExchange,
    d: &DecisionRecord,
) -> (Option<AclDecision>, Option<Label>) {
    let decision = match d.outcome {
        AclOutcome::Refused | AclOutcome::Dropped => AclDecision::Deny,
        AclOutcome::DryRunRefused | AclOutcome::DryRunDropped => AclDecision::WouldDeny,
        AclOutcome::Allowed => AclDecision::Allow,
    };
    let rule = match d.basis {
        Basis::NotGoverned => return (None, None),
        Basis::Rule(r) => acl.acl.rule_label(r).map(|l| obs.label(l)),
        Basis::DisguisedMethod => Some(obs.label("disguised_method")),
        Basis::MissingTarget => Some(obs.label("missing_target")),
        Basis::NonNormalUri => Some(obs.label("non_normal_uri")),
        Basis::ServerRequests => Some(obs.label("server_requests")),
        _ => None,
    };
    (Some(decision), rule)
}

#[cfg(test)]
mod tests {
    use super::may_carry_error;

    #[test]
    fn only_error_objects_and_true_tool_failures_are_worth_a_parse() {
        for yes in [
            &br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"x"}}"#[..],
            br#"{"id":1,"error" : {"code":1}}"#,
            br#"{"result":{"content":[],"isError":true},"id":1}"#,
            br#"{"result":{"isError" :
                true}}"#,
        ] {
            assert!(may_carry_error(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#[..],
            br#"{"result":{"content":[{"type":"text","text":"no error"}]}}"#,
            br#"{"result":{"content":[{"type":"text","text":"an error"}]}}"#,
            br#"{"result":{"error":"a field named error that is a string"}}"#,
            br#"{"result":{"isError":null}}"#,
            br#"{"result":{"error""#,
            b"",
        ] {
            assert!(!may_carry_error(no), "{}", String::from_utf8_lossy(no));
        }
    }
}
