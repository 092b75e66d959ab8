//! The virtual MCP server as a feature of the request path (`serve` phase): an API with
//! `[[api.upstream]]` tables is served by the gateway itself, which terminates the client's
//! session and holds one per upstream. Owns the I/O of that: `initialize` fanned out and merged
//! (version, capabilities, instructions; rules in `mcpgate_policies::virtual_server`), lists
//! merged with prefixed names and a gateway cursor (on the upstreams' bytes, without a `Value`
//! tree: `mcpgate_policies::merged_list`), calls / gets / reads routed by prefix (or by
//! which upstream listed a URI) and forwarded unprefixed, `ping`, the client's notifications and
//! its answers to relayed requests passed on, DELETE closing every upstream session, the failure
//! mode (`fail_open` / `fail_closed`) and legs opened again when their upstream is back
//! (`rejoin`). What is relayed as it happens — routed calls answered as event streams, the
//! client's GET stream — is `relay`'s. The upstream legs are Streamable HTTP (`http_leg`, on
//! keep-alive connections each worker keeps per upstream: `http_client::request_kept_alive`), or
//! links shared by the API's sessions (`shared`): stdio processes (`stdio`) and legacy HTTP+SSE
//! connections (`sse`).
//!
//! State: the client's `Mcp-Session-Id` seals (AES-GCM, bound to the subject, the binder of
//! `[gateway.sessions]`) every upstream's session id and negotiated version, so any worker or
//! replica serves the session. Per-worker memory: a hint of which upstream listed a resource URI
//! (a miss tries every upstream in order) and the legs this worker re-opened; per process, the
//! session ids DELETE ended.
//!
//! The ACL sees the client-visible (prefixed) names in `decide`, filters the merged lists in
//! `body_filter` (the answers go through `ctx.cached_answer`, like the list cache's) and the
//! streamed events in `event_filter`. A pass-through API (one `upstream` URL) never gets past the
//! first test of `serve`.

pub mod health;
pub mod relay;
pub mod shared;
pub mod sse;
pub mod stdio;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use mcpgate_codec::filter::ListKind;
use mcpgate_codec::jsonrpc::{error_response, Classified, Kind};
use mcpgate_codec::list_answer::write_answer;
use mcpgate_codec::list_merge::{message_parts, MessageParts};
use mcpgate_policies::merged_list::{ListMerge, MergeNote};
use mcpgate_policies::virtual_server::{
    combine_instructions, merge_capabilities, negotiate_version, parse_collided_uri,
    parse_relayed_id, Leg, ListCursor, VirtualSession,
};
use serde_json::{json, Value};

use crate::config::virtual_server::{Transport, VirtualServer as Server, VirtualUpstream};
use crate::context::{HttpMethod, RequestCtx};
use crate::engine::http_client;
use crate::engine::local_stream::{self, LocalStream};
use crate::phases::{Answer, Body, Phases, Request, Step};
use relay::LegTarget;

/// Why the virtual server answers with an error; each maps to an HTTP status and a JSON-RPC code.
#[derive(Debug, thiserror::Error)]
pub enum VirtualError {
    #[error("Session not found")]
    SessionNotFound,
    #[error("Bad Request: Mcp-Session-Id header is required")]
    NoSession,
    #[error("Bad Request: batches are not supported by a virtual API")]
    Batch,
    #[error("Parse error: the body is not a JSON-RPC message")]
    NotJsonRpc,
    #[error("Method not found: {0}")]
    MethodNotFound(String),
    #[error("Invalid params: {0}")]
    InvalidParams(String),
    /// A name no upstream of this session serves (the same words as the ACL's refusal, which
    /// reveal nothing).
    #[error("Unknown tool: {0}")]
    UnknownName(String),
    #[error("upstream `{0}` is unavailable: {1}")]
    Unavailable(String, String),
    #[error("cannot seal the session id: {0}")]
    Seal(String),
}

impl VirtualError {
    pub fn http_status(&self) -> u16 {
        match self {
            VirtualError::SessionNotFound => 404,
            VirtualError::NoSession | VirtualError::Batch | VirtualError::NotJsonRpc => 400,
            VirtualError::Seal(_) => 500,
            // A JSON-RPC error in a 200: the client's session goes on.
            VirtualError::MethodNotFound(_)
            | VirtualError::InvalidParams(_)
            | VirtualError::UnknownName(_)
            | VirtualError::Unavailable(..) => 200,
        }
    }

    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            VirtualError::SessionNotFound => -32001,
            VirtualError::NoSession | VirtualError::Batch => -32600,
            VirtualError::NotJsonRpc => -32700,
            VirtualError::MethodNotFound(_) => -32601,
            VirtualError::InvalidParams(_) | VirtualError::UnknownName(_) => -32602,
            VirtualError::Unavailable(..) | VirtualError::Seal(_) => -32603,
        }
    }
}

/// Where an upstream's answer carries the notifications about the request that preceded it
/// (progress): internal, never sent (only `result` / `error` are taken from an answer).
pub const NOTES: &str = "_mcpgate_notes";

/// How the gateway writes a virtual server's JSON answer once the body filters ran.
#[derive(Debug, Default)]
pub struct AnswerForm {
    /// `Mcp-Session-Id` to hand out (`initialize`).
    pub session_id: Option<String>,
    /// The client accepts only `text/event-stream`: one `message` event.
    pub sse: bool,
    /// The client accepts `text/event-stream` (besides JSON).
    pub accepts_sse: bool,
    /// Notifications about the request (progress), written as events before the answer when
    /// the client accepts an event stream. They arrive with the answer, not as they happened.
    pub events: Vec<Value>,
}

impl AnswerForm {
    pub fn write(&self, status: u16, body: &[u8]) -> Vec<u8> {
        let mut extra: Vec<(&str, &str)> = Vec::new();
        if let Some(id) = self.session_id.as_deref() {
            extra.push(("mcp-session-id", id));
        }
        if self.sse || (self.accepts_sse && !self.events.is_empty()) {
            let mut event = Vec::with_capacity(body.len() + 24);
            for note in &self.events {
                event.extend_from_slice(b"event: message\ndata: ");
                event.extend_from_slice(&serde_json::to_vec(note).unwrap_or_default());
                event.extend_from_slice(b"\n\n");
            }
            event.extend_from_slice(b"event: message\ndata: ");
            event.extend_from_slice(body);
            event.extend_from_slice(b"\n\n");
            extra.push(("cache-control", "no-cache"));
            crate::features::auth::raw_response(status, "text/event-stream", &extra, &event)
        } else {
            crate::features::auth::raw_response(status, "application/json", &extra, body)
        }
    }
}

/// How long `initialize` waits for a shared upstream (stdio, SSE) that is starting or restarting.
const STDIO_START_WAIT: Duration = Duration::from_secs(10);

/// Entries of the per-worker URI hint before it is cleared.
const URI_HINTS: usize = 10_000;

/// The feature's per-worker state: the id counter of upstream requests and the URI hints.
#[derive(Default)]
pub struct VirtualServer {
    next_id: Cell<u64>,
    /// (API name, resource URI) → the upstream that listed it.
    uri_hints: RefCell<HashMap<(String, String), String>>,
    /// Legs this worker opened again for sessions whose sealed leg is missing (the upstream was
    /// down at `initialize`) or was ended by its upstream (it restarted: 404). The client's
    /// session id cannot change, so the new leg lives here; each worker that serves the session
    /// opens its own (documented).
    rejoined: RefCell<HashMap<RejoinKey, Rejoined>>,
    /// (upstream, upstream session) of the legs this worker made a streamed call on.
    called_legs: RefCell<HashSet<(String, String)>>,
}

/// Which leg was opened again: the API, the upstream, and what identified the lost leg (the
/// upstream session id it had, or the client's session id when it had none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RejoinKey {
    api: String,
    upstream: String,
    lost: String,
}

enum Rejoined {
    Leg(Leg),
    /// The last attempt failed then: the next waits [`REJOIN_EVERY`].
    Tried(std::time::Instant),
}

/// How often a worker tries again to open a lost leg of one session.
const REJOIN_EVERY: Duration = Duration::from_secs(5);
/// How long such an attempt may delay the request that makes it.
const REJOIN_LIMIT: Duration = Duration::from_secs(2);
/// Entries of [`VirtualServer::rejoined`] before it is cleared.
const REJOINED: usize = 10_000;
/// Entries of [`VirtualServer::called_legs`] before it is cleared.
const CALLED_LEGS: usize = 10_000;

impl Phases for VirtualServer {
    async fn serve(&self, ctx: &mut RequestCtx, req: Request<'_>, body: Body<'_>) -> Step {
        let Some(server) = ctx.api().and_then(|a| a.virtual_server.clone()) else {
            return Step::Continue;
        };
        match self.handle(ctx, req, body, &server).await {
            Ok(step) => step,
            Err(e) => error_step(ctx, &e),
        }
    }
}

/// A gateway-written JSON-RPC error with the request's id.
fn error_step(ctx: &RequestCtx, e: &VirtualError) -> Step {
    let mut body = Vec::with_capacity(128);
    error_response(ctx.id_raw(), e.jsonrpc_code(), &e.to_string(), &mut body);
    Step::raw(crate::features::auth::raw_response(
        e.http_status(),
        "application/json",
        &[],
        &body,
    ))
}

/// Whether the client accepts event streams, and only them (else JSON, which every client must
/// accept on POST).
fn accepts_sse(req: Request<'_>) -> (bool, bool) {
    let accept = req
        .header("accept")
        .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
        .unwrap_or_default();
    let sse = accept.contains("text/event-stream");
    (sse, sse && !accept.contains("application/json"))
}

impl VirtualServer {
    async fn handle(
        &self,
        ctx: &mut RequestCtx,
        req: Request<'_>,
        body: Body<'_>,
        server: &Arc<Server>,
    ) -> Result<Step, VirtualError> {
        match ctx.method {
            HttpMethod::Post => {}
            HttpMethod::Delete => {
                // With the legs this worker re-opened in place of lost ones: they end too.
                let session = self.open(ctx, req, server).await?;
                if let Some(id) = req.header("mcp-session-id") {
                    end_session(&String::from_utf8_lossy(id));
                }
                self.close(ctx, server, &session).await;
                return Ok(Step::raw(crate::features::auth::raw_response(
                    200,
                    "",
                    &[],
                    b"",
                )));
            }
            HttpMethod::Get => {
                let session = self.open(ctx, req, server).await?;
                remember_session(ctx, &session);
                let targets = streamable_legs(ctx, server, &session);
                let api = ctx.api().map_or("", |a| a.name.as_str());
                // Every shared link of the API (one down at initialize rejoins when it is back).
                let links: Vec<_> = server
                    .upstreams
                    .iter()
                    .filter_map(|up| {
                        shared::link(api, &up.name, &up.transport)
                            .map(|link| (up.name.clone(), link.listen()))
                    })
                    .collect();
                if targets.is_empty() && links.is_empty() {
                    // No upstream in the session at all.
                    return Ok(Step::raw(crate::features::auth::raw_response(
                        405,
                        "",
                        &[("allow", "POST, DELETE")],
                        b"",
                    )));
                }
                let (tx, events) = local_stream::channel();
                monoio::spawn(relay::listen(tx, targets, links, server.call_timeout));
                return Ok(Step::Answer(Answer::Stream(LocalStream {
                    headers: Vec::new(),
                    events,
                })));
            }
            _ => {
                return Ok(Step::raw(crate::features::auth::raw_response(
                    405,
                    "",
                    &[("allow", "GET, POST, DELETE")],
                    b"",
                )))
            }
        }
        let message = match body.message {
            Some(Classified::Single(m)) => m,
            Some(Classified::Batch(_)) => return Err(VirtualError::Batch),
            None => return Err(VirtualError::NotJsonRpc),
        };
        let value: Value =
            serde_json::from_slice(body.bytes).map_err(|_| VirtualError::NotJsonRpc)?;
        if message.kind != Kind::Request {
            // Notifications and the client's answers to relayed requests.
            let session = self.open(ctx, req, server).await?;
            self.pass_on(ctx, server, &session, &client_session(req), value)
                .await;
            return Ok(Step::raw(crate::features::auth::raw_response(
                202,
                "",
                &[],
                b"",
            )));
        }
        let params = value.get("params").cloned().unwrap_or(Value::Null);
        let method = message.method.clone().unwrap_or_default();
        let (sse, only_sse) = accepts_sse(req);
        let mut form = AnswerForm {
            session_id: None,
            sse: only_sse,
            accepts_sse: sse,
            events: Vec::new(),
        };
        let answer = if method == "initialize" {
            let (result, sealed) = self.initialize(ctx, server, &params).await?;
            form.session_id = Some(sealed);
            Ok(Reply::Parsed(result))
        } else if let Some(kind) = ListKind::from_method(&method) {
            let session = self.open(ctx, req, server).await?;
            self.list(ctx, server, &session, params, kind)
                .await?
                .map(Reply::Merged)
        } else {
            let session = self.open(ctx, req, server).await?;
            if sse {
                let origin = client_session(req);
                if let Some(stream) = self
                    .stream_routed(ctx, server, &session, &origin, &method, &params)
                    .await?
                {
                    remember_session(ctx, &session);
                    return Ok(Step::Answer(Answer::Stream(stream)));
                }
            }
            let answer = self
                .dispatch(ctx, server, &session, &method, params)
                .await?;
            // Progress a routed call collected (see `forward`).
            if let Some(earlier) = ctx.answer_form.take() {
                form.events = earlier.events;
            }
            answer.map(Reply::Parsed)
        };
        let out = match answer {
            Ok(Reply::Merged(result)) => {
                // Built as bytes: the client's id as it sent it.
                let mut out = Vec::with_capacity(result.len() + 48);
                write_answer(ctx.id_raw(), &result, &mut out);
                out
            }
            Ok(Reply::Parsed(result)) => {
                let id = parsed_id(ctx);
                serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
                    .unwrap_or_default()
            }
            Err(error) => {
                let id = parsed_id(ctx);
                serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "error": error}))
                    .unwrap_or_default()
            }
        };
        ctx.cached_answer = Some(out);
        ctx.answer_form = Some(Box::new(form));
        Ok(Step::Continue)
    }

    fn next_id(&self) -> u64 {
        let id = self.next_id.get().wrapping_add(1);
        self.next_id.set(id);
        id
    }

    /// One request to one upstream: its whole JSON-RPC answer (`result` or `error`), and for
    /// `initialize` the session id it gave.
    async fn request(
        &self,
        ctx: &RequestCtx,
        server: &Server,
        up: &VirtualUpstream,
        leg: Option<&Leg>,
        method: &str,
        params: Value,
    ) -> Result<(Value, Option<String>), String> {
        self.request_as(ctx, server, up, leg, method, params, false)
            .await
            .map(|(answer, session)| (answer.into_value(), session))
    }

    /// [`VirtualServer::request`], the answer left raw when `raw` and the leg can (a Streamable
    /// HTTP leg: a merged list reads its bytes).
    #[allow(clippy::too_many_arguments)]
    async fn request_as(
        &self,
        ctx: &RequestCtx,
        server: &Server,
        up: &VirtualUpstream,
        leg: Option<&Leg>,
        method: &str,
        params: Value,
        raw: bool,
    ) -> Result<(LegAnswer, Option<String>), String> {
        let mut outcome = self
            .request_leg(ctx, server, up, leg, method, params.clone(), raw)
            .await;
        if let (Err(why), Some(lost)) = (&outcome, leg) {
            // The upstream no longer knows the session (it restarted): a new one, then again.
            if why == SESSION_LOST && !lost.session.is_empty() {
                if let Some(fresh) = self
                    .rejoin(ctx, server, up, &lost.session, &lost.version)
                    .await
                {
                    outcome = self
                        .request_leg(ctx, server, up, Some(&fresh), method, params, raw)
                        .await;
                }
            }
        }
        health::note(
            ctx.api().map_or("", |a| a.name.as_str()),
            &up.name,
            outcome.is_ok(),
        );
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    async fn request_leg(
        &self,
        ctx: &RequestCtx,
        server: &Server,
        up: &VirtualUpstream,
        leg: Option<&Leg>,
        method: &str,
        params: Value,
        raw: bool,
    ) -> Result<(LegAnswer, Option<String>), String> {
        match &up.transport {
            Transport::Http { url } => {
                // The client's own id: each client has its own session on an HTTP upstream, so
                // its ids are unique there, and its `notifications/cancelled` names them.
                let id = client_id(ctx).unwrap_or_else(|| json!(self.next_id()));
                let message =
                    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
                if raw {
                    return http_leg_raw(url, leg, &message, server.call_timeout).await;
                }
                http_leg(url, leg, &message, server.call_timeout)
                    .await
                    .map(|(answer, session)| (LegAnswer::Parsed(answer), session))
            }
            Transport::Stdio(_) | Transport::Sse { .. } => {
                let api = ctx.api().map_or("", |a| a.name.as_str());
                let link = shared::link(api, &up.name, &up.transport)
                    .ok_or_else(|| "the upstream is not configured".to_string())?;
                match monoio::time::timeout(server.call_timeout, link.request(method, params)).await
                {
                    Ok(Ok(answer)) => Ok((LegAnswer::Parsed(answer), None)),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {:?}", server.call_timeout)),
                }
            }
        }
    }

    async fn initialize(
        &self,
        ctx: &mut RequestCtx,
        server: &Arc<Server>,
        params: &Value,
    ) -> Result<(Value, String), VirtualError> {
        // The client's capabilities go to each Streamable HTTP upstream as they are (its
        // server→client requests are relayed); shared links were initialized by the gateway.
        let ctx_ref: &RequestCtx = ctx;
        let legs = join_all(server.upstreams.iter().map(|up| {
            let forwarded = params.clone();
            async move { self.initialize_one(ctx_ref, server, up, forwarded).await }
        }))
        .await;
        let mut session = VirtualSession::default();
        let mut results = Vec::new();
        for (up, outcome) in server.upstreams.iter().zip(legs) {
            match outcome {
                Ok((leg, result)) => {
                    session.legs.insert(up.name.clone(), leg);
                    results.push((up.name.as_str(), result));
                }
                Err(why) if server.fail_closed => {
                    return Err(VirtualError::Unavailable(up.name.clone(), why))
                }
                Err(why) => crate::warn!(
                    "virtual API {}: upstream {} left out of a new session: {why}",
                    ctx.api().map_or("", |a| a.name.as_str()),
                    up.name
                ),
            }
        }
        if results.is_empty() {
            return Err(VirtualError::Unavailable(
                "*".into(),
                "no upstream answered initialize".into(),
            ));
        }
        session.version = negotiate_version(session.legs.values().map(|l| l.version.as_str()))
            .unwrap_or_default();
        let capabilities =
            merge_capabilities(results.iter().filter_map(|(_, r)| r.get("capabilities")));
        let instructions = combine_instructions(
            results
                .iter()
                .map(|(name, r)| (*name, r.get("instructions").and_then(Value::as_str))),
        );
        let api_name = ctx.api().map_or("mcpgate", |a| a.name.as_str());
        let mut result = json!({
            "protocolVersion": session.version,
            "capabilities": capabilities,
            "serverInfo": {"name": api_name, "version": env!("CARGO_PKG_VERSION")},
        });
        if let Some(text) = instructions {
            result["instructions"] = Value::String(text);
        }
        let subject = ctx
            .principal
            .as_ref()
            .and_then(|p| p.subject.as_deref())
            .map(str::to_owned);
        let sealed = ctx
            .config()
            .gateway
            .sessions
            .binder
            .seal(subject.as_deref(), &session.to_payload())
            .map_err(|e| VirtualError::Seal(e.to_string()))?;
        ctx.served_by = Some(
            results
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(",")
                .into(),
        );
        Ok((result, sealed))
    }

    /// The client's session with this worker's re-opened legs in place of lost ones, and a
    /// new attempt (at most every [`REJOIN_EVERY`]) for upstreams it lacks.
    async fn open(
        &self,
        ctx: &mut RequestCtx,
        req: Request<'_>,
        server: &Arc<Server>,
    ) -> Result<VirtualSession, VirtualError> {
        if req
            .header("mcp-session-id")
            .is_some_and(|id| was_ended(&String::from_utf8_lossy(id)))
        {
            return Err(VirtualError::SessionNotFound);
        }
        let mut session = open_session(ctx, req)?;
        let api = ctx.api().map_or("", |a| a.name.as_str()).to_owned();
        let client_key = || {
            req.header("mcp-session-id")
                .map(|v| format!("client:{}", String::from_utf8_lossy(v)))
                .unwrap_or_default()
        };
        for up in &server.upstreams {
            let lost = match session.legs.get(&up.name) {
                Some(leg) if leg.session.is_empty() => continue,
                Some(leg) => leg.session.clone(),
                None => client_key(),
            };
            let key = RejoinKey {
                api: api.clone(),
                upstream: up.name.clone(),
                lost: lost.clone(),
            };
            let known = match self.rejoined.borrow().get(&key) {
                Some(Rejoined::Leg(leg)) => Some(Some(leg.clone())),
                Some(Rejoined::Tried(at)) if at.elapsed() < REJOIN_EVERY => Some(None),
                _ => None,
            };
            match known {
                Some(Some(leg)) => {
                    session.legs.insert(up.name.clone(), leg);
                }
                Some(None) => {}
                None if !session.legs.contains_key(&up.name) => {
                    let version = session.version.clone();
                    if let Some(leg) = self.rejoin(ctx, server, up, &lost, &version).await {
                        session.legs.insert(up.name.clone(), leg);
                    }
                }
                None => {}
            }
        }
        Ok(session)
    }

    /// Opens a new leg to `up` in place of the one identified by `lost`, remembered on this
    /// worker. The upstream is told what the gateway can promise for a client it has not heard:
    /// no sampling, elicitation or roots.
    async fn rejoin(
        &self,
        ctx: &RequestCtx,
        server: &Server,
        up: &VirtualUpstream,
        lost: &str,
        version: &str,
    ) -> Option<Leg> {
        let api = ctx.api().map_or("", |a| a.name.as_str()).to_owned();
        let key = RejoinKey {
            api: api.clone(),
            upstream: up.name.clone(),
            lost: lost.to_owned(),
        };
        if let Some(Rejoined::Tried(at)) = self.rejoined.borrow().get(&key) {
            if at.elapsed() < REJOIN_EVERY {
                return None;
            }
        }
        let params = json!({
            "protocolVersion": if version.is_empty() { shared::PROTOCOL_VERSION } else { version },
            "capabilities": {},
            "clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")},
        });
        let limit = server.call_timeout.min(REJOIN_LIMIT);
        let attempt =
            monoio::time::timeout(limit, self.initialize_one(ctx, server, up, params)).await;
        let mut rejoined = self.rejoined.borrow_mut();
        if rejoined.len() >= REJOINED {
            rejoined.clear();
        }
        match attempt {
            Ok(Ok((leg, _))) => {
                crate::info!("virtual API {api}: upstream {} rejoined a session", up.name);
                rejoined.insert(key, Rejoined::Leg(leg.clone()));
                Some(leg)
            }
            Ok(Err(why)) => {
                crate::debug!(
                    "virtual API {api}: upstream {} cannot rejoin: {why}",
                    up.name
                );
                rejoined.insert(key, Rejoined::Tried(std::time::Instant::now()));
                None
            }
            Err(_) => {
                rejoined.insert(key, Rejoined::Tried(std::time::Instant::now()));
                None
            }
        }
    }

    async fn initialize_one(
        &self,
        ctx: &RequestCtx,
        server: &Server,
        up: &VirtualUpstream,
        params: Value,
    ) -> Result<(Leg, Value), String> {
        let (answer, session) = match &up.transport {
            Transport::Stdio(_) | Transport::Sse { .. } => {
                // The shared link (stdio process, SSE stream) was initialized by its supervisor.
                let api = ctx.api().map_or("", |a| a.name.as_str());
                let link = shared::link(api, &up.name, &up.transport)
                    .ok_or_else(|| "the upstream is not configured".to_string())?;
                // Just started or reconnecting: wait for it a little (a client connecting as the
                // gateway starts must not find its shared upstreams missing).
                let deadline =
                    std::time::Instant::now() + server.call_timeout.min(STDIO_START_WAIT);
                let init = loop {
                    if let Some(init) = link.init() {
                        break init;
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(format!("the {} upstream is not connected", link.kind()));
                    }
                    monoio::time::sleep(Duration::from_millis(25)).await;
                };
                (json!({"result": init.result}), None)
            }
            Transport::Http { url } => {
                // Not `request`: no session to rejoin yet.
                let outcome = self
                    .request_leg(ctx, server, up, None, "initialize", params, false)
                    .await
                    .map(|(answer, session)| (answer.into_value(), session));
                health::note(
                    ctx.api().map_or("", |a| a.name.as_str()),
                    &up.name,
                    outcome.is_ok(),
                );
                let (answer, session) = outcome?;
                let leg = Leg {
                    session: session.clone().unwrap_or_default(),
                    version: String::new(),
                };
                let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
                let version = answer["result"]["protocolVersion"]
                    .as_str()
                    .map(str::to_owned);
                let leg = Leg {
                    version: version.unwrap_or_default(),
                    ..leg
                };
                http_leg(url, Some(&leg), &initialized, server.call_timeout).await?;
                (answer, session)
            }
        };
        let Some(result) = answer.get("result").cloned() else {
            return Err(format!("initialize refused: {}", answer["error"]));
        };
        let version = result["protocolVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((
            Leg {
                session: session.unwrap_or_default(),
                version,
            },
            result,
        ))
    }

    /// Everything but `initialize` and the lists: `Ok(Ok(result))`, `Ok(Err(error object))` (an
    /// upstream's JSON-RPC error, passed on), or the gateway's own error.
    async fn dispatch(
        &self,
        ctx: &mut RequestCtx,
        server: &Arc<Server>,
        session: &VirtualSession,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, Value>, VirtualError> {
        match method {
            "ping" => Ok(Ok(json!({}))),
            "tools/call" | "prompts/get" => {
                let name = params["name"].as_str().unwrap_or_default().to_owned();
                let (index, own) = server
                    .naming
                    .route(&name)
                    .filter(|(i, _)| session.legs.contains_key(&server.naming.upstreams[*i]))
                    .ok_or_else(|| VirtualError::UnknownName(name.clone()))?;
                let mut params = params;
                params["name"] = Value::String(own.to_owned());
                self.forward(ctx, server, session, index, method, params)
                    .await
            }
            "completion/complete" => match params["ref"]["type"].as_str() {
                Some("ref/prompt") => {
                    let name = params["ref"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let (index, own) = server
                        .naming
                        .route(&name)
                        .ok_or_else(|| VirtualError::UnknownName(name.clone()))?;
                    let mut params = params;
                    params["ref"]["name"] = Value::String(own.to_owned());
                    self.forward(ctx, server, session, index, method, params)
                        .await
                }
                _ => {
                    let uri = params["ref"]["uri"].as_str().unwrap_or_default().to_owned();
                    self.by_uri(ctx, server, session, &uri, method, params)
                        .await
                }
            },
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let uri = params["uri"].as_str().unwrap_or_default().to_owned();
                self.by_uri(ctx, server, session, &uri, method, params)
                    .await
            }
            "logging/setLevel" => {
                let ctx_ref: &RequestCtx = ctx;
                let _ = join_all(session_upstreams(server, session).map(|(_, up, leg)| {
                    self.request(ctx_ref, server, up, Some(leg), method, params.clone())
                }))
                .await;
                Ok(Ok(json!({})))
            }
            other => Err(VirtualError::MethodNotFound(other.to_owned())),
        }
    }

    /// A routed request (`tools/call`, `prompts/get`, a prompt's completion) to a Streamable HTTP leg,
    /// answered as an event stream (progress and server→client requests as they come); `None`:
    /// answered whole (another method, another transport, or a name no leg serves — whose
    /// error `dispatch` gives).
    async fn stream_routed(
        &self,
        ctx: &mut RequestCtx,
        server: &Arc<Server>,
        session: &VirtualSession,
        client_session: &str,
        method: &str,
        params: &Value,
    ) -> Result<Option<LocalStream>, VirtualError> {
        let pointer = match method {
            "tools/call" | "prompts/get" => "/name",
            "completion/complete" if params["ref"]["type"] == "ref/prompt" => "/ref/name",
            _ => return Ok(None),
        };
        let name = params
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some((index, own)) = server.naming.route(name) else {
            return Ok(None);
        };
        let up = &server.upstreams[index];
        let Some(leg) = session.legs.get(&up.name) else {
            return Ok(None);
        };
        let mut params = params.clone();
        if let Some(slot) = params.pointer_mut(pointer) {
            *slot = Value::String(own.to_owned());
        }
        let id = client_id(ctx).unwrap_or(Value::Null);
        let api = ctx.api().map_or("", |a| a.name.as_str()).to_owned();
        if let Some(link) = shared::link(&api, &up.name, &up.transport) {
            // A shared link (stdio, legacy SSE): not running → the buffered path's error.
            let origin = format!("{client_session}/{id}");
            let Ok(call) = link.call(method, params, origin) else {
                return Ok(None);
            };
            ctx.served_by = Some(up.name.as_str().into());
            let (tx, events) = local_stream::channel();
            monoio::spawn(relay::follow_link_call(
                tx,
                api,
                up.name.clone(),
                call,
                id,
                server.call_timeout,
            ));
            return Ok(Some(LocalStream {
                headers: Vec::new(),
                events,
            }));
        }
        let Transport::Http { url } = &up.transport else {
            return Ok(None);
        };
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let target = LegTarget {
            api: ctx.api().map_or("", |a| a.name.as_str()).to_owned(),
            upstream: up.name.clone(),
            url: url.clone(),
            leg: leg.clone(),
        };
        ctx.served_by = Some(up.name.as_str().into());
        let message = serde_json::to_vec(&message).unwrap_or_default();
        let mut target = target;
        let side = if self.first_call_here(&target) {
            relay::open_side_stream(&target, server.call_timeout).await
        } else {
            None
        };
        let mut opened = relay::open_call(&target, &message, server.call_timeout).await;
        if matches!(&opened, Err(why) if why == SESSION_LOST) {
            // The upstream restarted: a new leg, then the call again.
            let lost = target.leg.clone();
            if let Some(fresh) = self
                .rejoin(ctx, server, up, &lost.session, &lost.version)
                .await
            {
                target.leg = fresh;
                opened = relay::open_call(&target, &message, server.call_timeout).await;
            }
        }
        let (tx, events) = local_stream::channel();
        monoio::spawn(relay::follow_call(
            tx,
            target,
            side,
            opened,
            id,
            server.call_timeout,
        ));
        Ok(Some(LocalStream {
            headers: Vec::new(),
            events,
        }))
    }

    /// Whether this is the first streamed call this worker makes on `target`'s leg (then the
    /// leg's GET stream is opened beside it: `relay::open_side_stream`). Bounded: past
    /// [`CALLED_LEGS`] the memory is cleared, which costs at most one more GET per leg.
    fn first_call_here(&self, target: &LegTarget) -> bool {
        if target.leg.session.is_empty() {
            return false;
        }
        let mut called = self.called_legs.borrow_mut();
        if called.len() >= CALLED_LEGS {
            called.clear();
        }
        called.insert((target.upstream.clone(), target.leg.session.clone()))
    }

    /// A notification or an answer from the client: `notifications/cancelled` and
    /// `notifications/roots/list_changed` go to every HTTP leg (the request ids are the client's
    /// own there; an upstream that does not know one ignores it); an answer to a relayed request
    /// goes to the upstream that asked. The rest (`initialized`: the gateway sent its own) stops
    /// here. Failures are logged: the client gets its 202 either way.
    async fn pass_on(
        &self,
        ctx: &RequestCtx,
        server: &Server,
        session: &VirtualSession,
        client_session: &str,
        message: Value,
    ) {
        let api = ctx.api().map_or("", |a| a.name.as_str());
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            if !matches!(
                method,
                "notifications/cancelled" | "notifications/roots/list_changed"
            ) {
                return;
            }
            if method == "notifications/cancelled" {
                // A streamed call on a shared link: the link knows it by its own id.
                let params = &message["params"];
                let origin = format!("{client_session}/{}", params["requestId"]);
                for up in &server.upstreams {
                    if let Some(link) = shared::link(api, &up.name, &up.transport) {
                        if link.cancel(&origin, params.get("reason")) {
                            return;
                        }
                    }
                }
            }
            let sends = session_upstreams(server, session).filter_map(|(_, up, leg)| {
                let Transport::Http { url } = &up.transport else {
                    return None;
                };
                let message = &message;
                Some(async move {
                    if let Err(e) = http_leg(url, Some(leg), message, server.call_timeout).await {
                        crate::debug!("virtual API {api}: {method} to {}: {e}", up.name);
                    }
                })
            });
            join_all(sends).await;
            return;
        }
        if let Err(e) = answer_relayed(ctx, server, session, message).await {
            crate::warn!("virtual API {api}: a client's answer to a relayed request: {e}");
        }
    }

    /// One request to upstream `index` of the session.
    async fn forward(
        &self,
        ctx: &mut RequestCtx,
        server: &Server,
        session: &VirtualSession,
        index: usize,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, Value>, VirtualError> {
        let up = &server.upstreams[index];
        let leg = session.legs.get(&up.name).ok_or_else(|| {
            VirtualError::Unavailable(up.name.clone(), "not in this session".into())
        })?;
        ctx.served_by = Some(up.name.as_str().into());
        let (mut answer, _) = self
            .request(ctx, server, up, Some(leg), method, params)
            .await
            .map_err(|why| VirtualError::Unavailable(up.name.clone(), why))?;
        if let Some(Value::Array(notes)) = answer.as_object_mut().and_then(|a| a.remove(NOTES)) {
            ctx.answer_form = Some(Box::new(AnswerForm {
                events: notes,
                ..AnswerForm::default()
            }));
        }
        Ok(split_answer(answer))
    }

    /// A request about a resource URI: first to the upstream that listed it (this worker's
    /// hint), then to each other upstream of the session in order; the first answer that is
    /// not an error wins, else the first error is passed on.
    async fn by_uri(
        &self,
        ctx: &mut RequestCtx,
        server: &Server,
        session: &VirtualSession,
        uri: &str,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, Value>, VirtualError> {
        if let Some((upstream, own)) = parse_collided_uri(uri) {
            // A URI two upstreams listed: the later one's, as the gateway rewrote it.
            let index = session_upstreams(server, session)
                .find(|(_, up, _)| up.name == upstream)
                .map(|(i, _, _)| i)
                .ok_or_else(|| VirtualError::InvalidParams(format!("no upstream has {uri}")))?;
            let mut params = params;
            for pointer in ["/uri", "/ref/uri"] {
                if let Some(slot) = params.pointer_mut(pointer).filter(|v| *v == uri) {
                    *slot = Value::String(own.clone());
                }
            }
            let answer = self
                .forward(ctx, server, session, index, method, params)
                .await?;
            return Ok(answer.map(|mut result| {
                // The contents' URIs as the client knows them.
                for content in result["contents"].as_array_mut().into_iter().flatten() {
                    if content["uri"] == own.as_str() {
                        content["uri"] = Value::String(uri.to_owned());
                    }
                }
                result
            }));
        }
        let api = ctx.api().map_or("", |a| a.name.as_str()).to_owned();
        let hint = self.uri_hints.borrow().get(&(api, uri.to_owned())).cloned();
        let mut order: Vec<_> = session_upstreams(server, session).collect();
        order.sort_by_key(|(_, up, _)| Some(&up.name) != hint.as_ref());
        let mut first_error = None;
        for (_, up, leg) in order {
            match self
                .request(ctx, server, up, Some(leg), method, params.clone())
                .await
            {
                Ok((answer, _)) => match split_answer(answer) {
                    Ok(result) => {
                        ctx.served_by = Some(up.name.as_str().into());
                        return Ok(Ok(result));
                    }
                    Err(error) => {
                        first_error.get_or_insert(Ok(Err(error)));
                    }
                },
                Err(why) => {
                    if server.fail_closed {
                        return Err(VirtualError::Unavailable(up.name.clone(), why));
                    }
                    first_error.get_or_insert(Err(VirtualError::Unavailable(up.name.clone(), why)));
                }
            }
        }
        first_error.unwrap_or_else(|| {
            Err(VirtualError::InvalidParams(format!(
                "no upstream has {uri}"
            )))
        })
    }

    /// A list merged across the session's upstreams (those the cursor names, or all), names
    /// prefixed (resources: collided URIs rewritten), with a gateway cursor for the upstreams
    /// that have more pages: the merged `result`, as bytes (`mcpgate_policies::merged_list`).
    async fn list(
        &self,
        ctx: &mut RequestCtx,
        server: &Server,
        session: &VirtualSession,
        params: Value,
        kind: ListKind,
    ) -> Result<Result<Vec<u8>, Value>, VirtualError> {
        let method = kind.method();
        let cursor = match params.get("cursor").and_then(Value::as_str) {
            Some(c) => Some(
                ListCursor::decode(c)
                    .ok_or_else(|| VirtualError::InvalidParams("unknown cursor".into()))?,
            ),
            None => None,
        };
        let targets: Vec<_> = session_upstreams(server, session)
            .filter_map(|(i, up, leg)| match &cursor {
                None => Some((i, up, leg, None)),
                Some(c) => c
                    .pending
                    .get(&up.name)
                    .map(|c| (i, up, leg, Some(c.clone()))),
            })
            .collect();
        let ctx_ref: &RequestCtx = ctx;
        let answers = join_all(targets.iter().map(|(_, up, leg, cursor)| {
            let mut p = params.clone();
            match cursor {
                Some(c) => p["cursor"] = Value::String(c.clone()),
                None if p.is_object() => {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("cursor");
                    }
                }
                None => p = json!({}),
            }
            self.request_as(ctx_ref, server, up, Some(*leg), method, p, true)
        }))
        .await;
        let api = ctx.api().map_or("", |a| a.name.as_str()).to_owned();
        let mut merge = ListMerge::new(&server.naming, kind);
        let mut served = Vec::new();
        for ((index, up, _, _), answer) in targets.iter().zip(answers) {
            let mut note = |n: MergeNote<'_>| match n {
                MergeNote::LeftOut(e) => {
                    crate::warn!("virtual API {api}: {} {method}: left out: {e}", up.name);
                }
                MergeNote::Twice(name) => {
                    crate::warn!(
                        "virtual API {api}: {method}: `{name}` listed twice, the first kept"
                    );
                }
                MergeNote::Listed(uri) => {
                    let mut hints = self.uri_hints.borrow_mut();
                    if hints.len() >= URI_HINTS {
                        hints.clear();
                    }
                    hints.insert((api.clone(), uri.to_owned()), up.name.clone());
                }
            };
            // What the byte merge refuses is parsed and merged as a `Value`, as it always was.
            let part = match answer.and_then(|(answer, _)| list_part(answer)) {
                Ok(Ok(ListPart::Raw(message, result))) => {
                    let result = message.get(result).unwrap_or_default();
                    if merge.add_raw(*index, result, &mut note).is_ok() {
                        served.push(up.name.as_str());
                        continue;
                    }
                    serde_json::from_slice::<Value>(result)
                        .map(Ok)
                        .map_err(|e| format!("an answer that is not JSON: {e}"))
                }
                Ok(Ok(ListPart::Parsed(result))) => Ok(Ok(result)),
                Ok(Err(error)) => Ok(Err(error)),
                Err(why) => Err(why),
            };
            match part {
                Ok(Ok(result)) => {
                    served.push(up.name.as_str());
                    merge.add_value(*index, result, &mut note);
                }
                Ok(Err(error)) => {
                    crate::warn!(
                        "virtual API {api}: {} answered {method} with {error}",
                        up.name
                    );
                    if server.fail_closed {
                        return Ok(Err(error));
                    }
                }
                Err(why) => {
                    crate::warn!("virtual API {api}: {} left out of {method}: {why}", up.name);
                    if server.fail_closed {
                        return Err(VirtualError::Unavailable(up.name.clone(), why));
                    }
                }
            }
        }
        ctx.served_by = Some(served.join(",").into());
        Ok(Ok(merge.finish()))
    }

    /// DELETE: ends every upstream session of the client's (errors only logged: the client's
    /// session ends regardless).
    async fn close(&self, ctx: &RequestCtx, server: &Server, session: &VirtualSession) {
        let deletes =
            session_upstreams(server, session).filter_map(|(_, up, leg)| match &up.transport {
                Transport::Http { url } if !leg.session.is_empty() => Some(async move {
                    let headers = [
                        ("mcp-session-id", leg.session.as_str()),
                        ("mcp-protocol-version", leg.version.as_str()),
                    ];
                    if let Err(e) = http_client::request_kept_alive(
                        "DELETE",
                        url,
                        &headers,
                        b"",
                        server.call_timeout,
                    )
                    .await
                    {
                        crate::debug!("virtual: DELETE to {}: {e}", up.name);
                    }
                }),
                _ => None,
            });
        join_all(deletes).await;
        let _ = ctx;
    }
}

/// Client session ids ended by DELETE, in this gateway process (any worker): a sealed id stays
/// valid cryptographically, so without this a deleted session would go on (its legs re-opened).
/// Bounded: the oldest are forgotten past [`ENDED`]. Another replica does not see them
/// (documented); the upstream sessions themselves are ended either way.
fn ended() -> &'static std::sync::RwLock<(HashSet<String>, std::collections::VecDeque<String>)> {
    static ENDED_IDS: std::sync::OnceLock<
        std::sync::RwLock<(HashSet<String>, std::collections::VecDeque<String>)>,
    > = std::sync::OnceLock::new();
    ENDED_IDS.get_or_init(Default::default)
}

const ENDED: usize = 100_000;

fn end_session(id: &str) {
    let mut ended = ended()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if ended.0.insert(id.to_owned()) {
        ended.1.push_back(id.to_owned());
    }
    while ended.1.len() > ENDED {
        if let Some(old) = ended.1.pop_front() {
            ended.0.remove(&old);
        }
    }
}

fn was_ended(id: &str) -> bool {
    ended()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .0
        .contains(id)
}

/// The client's session id as it presented it (names its requests on shared links).
fn client_session(req: Request<'_>) -> String {
    req.header("mcp-session-id")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// The client's JSON-RPC id of this request.
fn client_id(ctx: &RequestCtx) -> Option<Value> {
    ctx.id_raw()
        .and_then(|raw| serde_json::from_slice(raw).ok())
}

/// The session's Streamable HTTP legs, as [`relay`] targets.
fn streamable_legs(ctx: &RequestCtx, server: &Server, session: &VirtualSession) -> Vec<LegTarget> {
    let api = ctx.api().map_or("", |a| a.name.as_str());
    session_upstreams(server, session)
        .filter_map(|(_, up, leg)| match &up.transport {
            Transport::Http { url } => Some(LegTarget {
                api: api.to_owned(),
                upstream: up.name.clone(),
                url: url.clone(),
                leg: leg.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Keeps the opened session on the exchange, for the ACL's answers to relayed requests it
/// refuses on the stream ([`answer_refused`]).
fn remember_session(ctx: &mut RequestCtx, session: &VirtualSession) {
    if ctx.upstream_session.is_none() {
        ctx.upstream_session = Some(session.to_payload().into());
    }
}

/// Where the answer to a relayed server→client request goes.
enum AskedBy {
    /// A Streamable HTTP leg of the client's session.
    Leg(LegTarget),
    /// A shared link (stdio, legacy SSE) of the API.
    Link(Arc<shared::Link>),
}

/// The upstream that asked the request `answer` answers, and the answer under its own id.
fn asked_by(
    api: &str,
    server: &Server,
    session: &VirtualSession,
    mut answer: Value,
) -> Result<(AskedBy, Value), String> {
    let (upstream, own) = parse_relayed_id(&answer["id"])
        .map(|(u, own)| (u.to_owned(), own))
        .ok_or("an id the gateway did not relay")?;
    answer["id"] = own;
    let up = server
        .upstreams
        .iter()
        .find(|up| up.name == upstream)
        .ok_or_else(|| format!("no upstream `{upstream}`"))?;
    if let Some(link) = shared::link(api, &up.name, &up.transport) {
        return Ok((AskedBy::Link(link), answer));
    }
    let (Transport::Http { url }, Some(leg)) = (&up.transport, session.legs.get(&upstream)) else {
        return Err(format!("upstream `{upstream}` is not in this session"));
    };
    let target = LegTarget {
        api: api.to_owned(),
        upstream,
        url: url.clone(),
        leg: leg.clone(),
    };
    Ok((AskedBy::Leg(target), answer))
}

async fn deliver(to: &AskedBy, answer: &Value, limit: Duration) -> Result<(), String> {
    match to {
        AskedBy::Leg(target) => relay::answer_upstream(target, answer, limit).await,
        AskedBy::Link(link) => link.respond(answer).map_err(|e| e.to_string()),
    }
}

/// An answer (`result` or `error`) to a request [`relay`] relayed, sent to the upstream that
/// asked under its own id.
async fn answer_relayed(
    ctx: &RequestCtx,
    server: &Server,
    session: &VirtualSession,
    answer: Value,
) -> Result<(), String> {
    let api = ctx.api().map_or("", |a| a.name.as_str());
    let (to, answer) = asked_by(api, server, session, answer)?;
    deliver(&to, &answer, server.call_timeout).await
}

/// The ACL refused a relayed server→client request on a virtual API's stream: its error answer
/// (`answer`, one message or a batch) goes to the upstream that asked, in the background.
pub fn answer_refused(ctx: &RequestCtx, answer: Vec<u8>) {
    let Some(server) = ctx.api().and_then(|a| a.virtual_server.clone()) else {
        return;
    };
    let Some(session) = ctx
        .upstream_session
        .as_deref()
        .and_then(VirtualSession::from_payload)
    else {
        return;
    };
    let messages = match serde_json::from_slice::<Value>(&answer) {
        Ok(Value::Array(all)) => all,
        Ok(one) => vec![one],
        Err(_) => return,
    };
    let api = ctx.api().map_or("", |a| a.name.as_str()).to_owned();
    let limit = server.call_timeout;
    for message in messages {
        let (to, answer) = match asked_by(&api, &server, &session, message) {
            Ok(found) => found,
            Err(e) => {
                crate::warn!("virtual API {api}: the ACL's refusal of a relayed request: {e}");
                continue;
            }
        };
        let api = api.clone();
        monoio::spawn(async move {
            if let Err(e) = deliver(&to, &answer, limit).await {
                crate::warn!("virtual API {api}: the ACL's refusal of a relayed request: {e}");
            }
        });
    }
}

/// The session's upstreams in configuration order, with their legs.
fn session_upstreams<'a>(
    server: &'a Server,
    session: &'a VirtualSession,
) -> impl Iterator<Item = (usize, &'a VirtualUpstream, &'a Leg)> {
    server
        .upstreams
        .iter()
        .enumerate()
        .filter_map(|(i, up)| session.legs.get(&up.name).map(|leg| (i, up, leg)))
}

/// The virtual session the client presents (opened by the plans already when the API has some).
fn open_session(ctx: &RequestCtx, req: Request<'_>) -> Result<VirtualSession, VirtualError> {
    let payload = match ctx.upstream_session.as_deref() {
        Some(p) => p.to_owned(),
        None => {
            let presented = req
                .header("mcp-session-id")
                .ok_or(VirtualError::NoSession)?;
            let presented =
                std::str::from_utf8(presented).map_err(|_| VirtualError::SessionNotFound)?;
            let subject = ctx.principal.as_ref().and_then(|p| p.subject.as_deref());
            ctx.config()
                .gateway
                .sessions
                .binder
                .open(subject, presented)
                .map_err(|_| VirtualError::SessionNotFound)?
        }
    };
    VirtualSession::from_payload(&payload).ok_or(VirtualError::SessionNotFound)
}

/// The answer the gateway writes: a result as a `Value`, or a merged list's, already bytes.
enum Reply {
    Parsed(Value),
    Merged(Vec<u8>),
}

/// The client's request id as a `Value` (`null` when it has none).
fn parsed_id(ctx: &RequestCtx) -> Value {
    ctx.id_raw()
        .and_then(|raw| serde_json::from_slice(raw).ok())
        .unwrap_or(Value::Null)
}

/// `result` or the `error` object of an upstream's answer.
fn split_answer(mut answer: Value) -> Result<Value, Value> {
    match answer.get_mut("error") {
        Some(error) => Err(error.take()),
        None => Ok(answer
            .get_mut("result")
            .map(Value::take)
            .unwrap_or(json!({}))),
    }
}

/// Why a leg failed when its upstream no longer knows the session (it restarted, or ended it).
pub(crate) const SESSION_LOST: &str = "the upstream no longer knows this session";

/// Whether an upstream's refusal says the session is unknown: 404, as the specification has
/// it, or a 400 that says so (server-everything and other Express-based servers answer an unknown
/// session id with 400 "No valid session ID provided").
pub(crate) fn session_lost(status: u16, body: &[u8]) -> bool {
    status == 404
        || (status == 400
            && String::from_utf8_lossy(body)
                .to_ascii_lowercase()
                .contains("session"))
}

/// An upstream's answer to one request: its JSON-RPC message parsed, or raw where a merged list
/// reads bytes ([`http_leg_raw`]).
enum LegAnswer {
    Parsed(Value),
    /// The whole message and where its members are.
    Raw {
        message: Vec<u8>,
        parts: MessageParts,
    },
}

impl LegAnswer {
    fn into_value(self) -> Value {
        match self {
            LegAnswer::Parsed(answer) => answer,
            LegAnswer::Raw { message, .. } => {
                serde_json::from_slice(&message).unwrap_or(Value::Null)
            }
        }
    }
}

/// What a merged list takes from one upstream's answer: its `result` raw (the message and the
/// range of `result`) or parsed; `Err` the `error` object it answered with.
enum ListPart {
    Raw(Vec<u8>, Range<usize>),
    Parsed(Value),
}

/// [`split_answer`] for a merged list, without parsing a raw `result`.
fn list_part(answer: LegAnswer) -> Result<Result<ListPart, Value>, String> {
    match answer {
        LegAnswer::Raw {
            message,
            parts:
                MessageParts {
                    result: Some(result),
                    error: None,
                    ..
                },
        } => Ok(Ok(ListPart::Raw(message, result))),
        // An error answer (rare): parsed whole, as [`http_leg`] would have.
        LegAnswer::Raw { message, .. } => serde_json::from_slice::<Value>(&message)
            .map(|answer| split_answer(answer).map(ListPart::Parsed))
            .map_err(|e| format!("an answer that is not JSON: {e}")),
        LegAnswer::Parsed(answer) => Ok(split_answer(answer).map(ListPart::Parsed)),
    }
}

/// POSTs one JSON-RPC message to a Streamable HTTP upstream: its 200 or 202 response.
async fn post_leg(
    url: &str,
    leg: Option<&Leg>,
    message: &Value,
    limit: Duration,
) -> Result<http_client::HttpResponse, String> {
    let body = serde_json::to_vec(message).map_err(|e| e.to_string())?;
    let headers = relay::leg_headers(
        leg,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
    );
    let response = http_client::request_kept_alive("POST", url, &headers, &body, limit)
        .await
        .map_err(|e| e.to_string())?;
    if response.status == 202 {
        return Ok(response);
    }
    if leg.is_some_and(|l| !l.session.is_empty()) && session_lost(response.status, &response.body) {
        return Err(SESSION_LOST.to_string());
    }
    if response.status != 200 {
        return Err(format!("HTTP {}", response.status));
    }
    Ok(response)
}

fn is_event_stream(response: &http_client::HttpResponse) -> bool {
    response
        .content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"))
}

const NO_ANSWER: &str = "no answer to the request in the upstream's response";

/// One JSON-RPC message POSTed to a Streamable HTTP upstream; its answer (the message with the
/// same id, from a JSON body or an event stream; `Null` for a 202) and the session id it gave.
async fn http_leg(
    url: &str,
    leg: Option<&Leg>,
    message: &Value,
    limit: Duration,
) -> Result<(Value, Option<String>), String> {
    let response = post_leg(url, leg, message, limit).await?;
    if response.status == 202 {
        return Ok((Value::Null, response.session_id));
    }
    let answer = answer_in(&response.body, is_event_stream(&response), &message["id"])?;
    Ok((answer, response.session_id))
}

/// The answer to request `id` in an upstream's response body, parsed.
fn answer_in(body: &[u8], is_stream: bool, id: &Value) -> Result<Value, String> {
    let messages: Vec<Value> = if is_stream {
        relay::stream_messages(body)?
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(all)) => all,
            Ok(one) => vec![one],
            Err(e) => return Err(format!("an answer that is not JSON: {e}")),
        }
    };
    // Progress about the request came first on its stream: kept with the answer (the client's
    // token went upstream unchanged: each client has its own upstream session).
    let mut notes = Vec::new();
    for m in messages {
        if &m["id"] == id && (m.get("result").is_some() || m.get("error").is_some()) {
            let mut answer = m;
            if !notes.is_empty() {
                answer[NOTES] = Value::Array(notes);
            }
            return Ok(answer);
        }
        if m["method"] == "notifications/progress" {
            notes.push(m);
        }
    }
    Err(NO_ANSWER.to_string())
}

/// [`http_leg`] for a list: the answer's message left raw (no `Value` tree of a whole list; the
/// progress notifications before it, which a merged list never sends, not kept). A body the
/// byte reading cannot decide (a batch, a member twice, what the scanner refuses) is read by
/// [`answer_in`], as before.
async fn http_leg_raw(
    url: &str,
    leg: Option<&Leg>,
    message: &Value,
    limit: Duration,
) -> Result<(LegAnswer, Option<String>), String> {
    let response = post_leg(url, leg, message, limit).await?;
    if response.status == 202 {
        return Ok((LegAnswer::Parsed(Value::Null), response.session_id));
    }
    let id = &message["id"];
    let is_stream = is_event_stream(&response);
    let found = if is_stream {
        raw_answer_in(relay::stream_data(&response.body)?, id)
    } else {
        raw_answer_in([response.body.as_slice()], id)
            .map(|found| found.map(|(message, parts)| (message.to_vec(), parts)))
    };
    let answer = match found {
        Some(Ok((message, parts))) => LegAnswer::Raw { message, parts },
        Some(Err(())) => return Err(NO_ANSWER.to_string()),
        None => LegAnswer::Parsed(answer_in(&response.body, is_stream, id)?),
    };
    Ok((answer, response.session_id))
}

/// The message among `messages` that answers `id` (the rule of [`answer_in`]): `Some(Err(()))`
/// when none does, `None` when one of them cannot be read without a full parse.
fn raw_answer_in<M: AsRef<[u8]>>(
    messages: impl IntoIterator<Item = M>,
    id: &Value,
) -> Option<Result<(M, MessageParts), ()>> {
    for m in messages {
        let parts = message_parts(m.as_ref()).ok()?;
        if parts.result.is_none() && parts.error.is_none() {
            continue;
        }
        let own = match &parts.id {
            Some(range) => serde_json::from_slice::<Value>(m.as_ref().get(range.clone())?).ok()?,
            None => Value::Null,
        };
        if &own == id {
            return Some(Ok((m, parts)));
        }
    }
    Some(Err(()))
}

/// Runs the futures concurrently on this worker; their outputs in order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (f, out) in pending.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_bodies_yield_their_messages() {
        let body =
            b"event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\r\n\r\n\
                     data: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":7,\"result\":{}}\n\n: comment\n\n";
        let messages = relay::stream_messages(body).unwrap_or_default();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(messages[1]["id"], 7);
    }

    #[test]
    fn answers_split_into_results_and_errors() {
        assert_eq!(
            split_answer(json!({"id":1,"result":{"a":1}})),
            Ok(json!({"a":1}))
        );
        assert_eq!(
            split_answer(json!({"id":1,"error":{"code":-1}})),
            Err(json!({"code":-1}))
        );
    }

    #[test]
    fn errors_map_to_status_and_code() {
        assert_eq!(VirtualError::SessionNotFound.http_status(), 404);
        assert_eq!(VirtualError::UnknownName("x".into()).jsonrpc_code(), -32602);
        assert_eq!(
            VirtualError::Unavailable("a".into(), "down".into()).http_status(),
            200
        );
    }

    #[test]
    fn join_all_keeps_the_order() {
        let out = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .block_on(join_all((0..3u64).map(|i| async move {
                monoio::time::sleep(Duration::from_millis(30 - 10 * i)).await;
                i
            })));
        assert_eq!(out, [0, 1, 2]);
    }

    #[test]
    fn a_list_answer_is_found_raw_among_the_messages() {
        let progress =
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#;
        let other = br#"{"jsonrpc":"2.0","id":6,"result":{"tools":[]}}"#;
        let answer = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"x"}]}}"#;
        let found = raw_answer_in([&progress[..], &other[..], &answer[..]], &json!(7));
        let Some(Ok((message, parts))) = found else {
            panic!("no answer found")
        };
        assert_eq!(message, &answer[..]);
        assert_eq!(
            parts.result.and_then(|r| message.get(r)),
            Some(&br#"{"tools":[{"name":"x"}]}"#[..])
        );
        // Ids compare as JSON values, as the parsed path compares them.
        let spelled = br#"{"id":"\u0061","error":{"code":-1,"message":"no"}}"#;
        assert!(matches!(
            raw_answer_in([&spelled[..]], &json!("a")),
            Some(Ok(_))
        ));
        // None answers: as the parsed path, no answer.
        assert!(matches!(
            raw_answer_in([&other[..]], &json!(7)),
            Some(Err(()))
        ));
        // What the byte reading does not decide goes the parsed way.
        for doubtful in [
            &br#"[{"id":7,"result":{}}]"#[..],
            br#"{"id":7,"result":{},"result":{}}"#,
            b"not json",
        ] {
            assert!(raw_answer_in([doubtful], &json!(7)).is_none());
        }
    }

    #[test]
    fn list_parts_split_results_and_errors() {
        let message = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#.to_vec();
        let parts = message_parts(&message).unwrap_or_default();
        let Ok(Ok(ListPart::Raw(message, range))) = list_part(LegAnswer::Raw { message, parts })
        else {
            panic!("not raw")
        };
        assert_eq!(message.get(range), Some(&br#"{"tools":[]}"#[..]));
        let message =
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#.to_vec();
        let parts = message_parts(&message).unwrap_or_default();
        assert!(matches!(
            list_part(LegAnswer::Raw { message, parts }),
            Ok(Err(e)) if e == json!({"code":-32601,"message":"no"})
        ));
        assert!(matches!(
            list_part(LegAnswer::Parsed(json!({"id":1,"result":{"a":1}}))),
            Ok(Ok(ListPart::Parsed(r))) if r == json!({"a":1})
        ));
    }
}
