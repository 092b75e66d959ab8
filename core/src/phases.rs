//! The request path as named phases over one per-request context, after Pingora's `ProxyHttp`:
//! every phase is a method of [`Phases`] with a default that does nothing, each feature (plans,
//! ACL, routing, the exchange log, …) is one module implementing the phases it needs, and
//! [`Pipeline::run`] below is the one place that calls them, in this order:
//!
//! | side | phase | what happens | features |
//! |---|---|---|---|
//! | request | `route` | pick the API (or answer a path the gateway serves itself) | auth (well-known metadata), routing |
//! | | — | refuse a body that cannot be read (framing, size, charset) | engine |
//! | | `authenticate` | the API's plans; `ctx.principal` | auth |
//! | | `admit` | HTTP-level rate limits (rules without `methods`: no body needed) | limits |
//! | | — | read the body, classify it (JSON-RPC) | engine |
//! | | `inspect` | look at the request (header/body agreement, what to record) | protocol, observe |
//! | | `decide` | judge each message (the ACL, then the pin policy); refused ones are answered here; then the MCP-level rate limits count what was let through | acl, integrity, limits |
//! | | `serve_from_cache` | answer from a cache instead of the upstream; the answer then goes through the body filters after the cache | integrity (list cache) |
//! | | `serve` | a virtual API (several upstreams) is served by the gateway: its JSON answers go through the same filters | virtual_server |
//! | | `upstream_request` | edit the forwarded head (credentials, session id) | auth |
//! | | — | forward on a pooled connection, read the response head | engine |
//! | response | `response_head` | edit the upstream's head (session sealing, challenges) | auth, observe |
//! | | `buffers_body` + `body_filter` | a non-stream answer read whole and rewritten | integrity (fills the cache, compares pins, hides), then acl, observe |
//! | | `body_seen` | a pass-through answer, as it went by | observe |
//! | | `events_start` + `event_filter` | each event of an event stream | routing (endpoint), integrity (as for bodies; `list_changed`), acl, observe |
//! | | `local_answer` | the gateway answered itself (any phase above, or an error) | observe |
//! | | `record` | the exchange is over, however it ended | observe |
//!
//! A phase that answers the client returns [`Step::Answer`]; the request stops there (Pingora's
//! "response already sent"). The I/O between phases is the engine's ([`ExchangeIo`], implemented
//! by `crate::engine::exchange`), so this file reads as the whole life of a request.
//!
//! Every phase runs every feature, in the order of [`Features`] (a phase a feature does not
//! implement is a no-op that compiles away), except where the order says why it differs. Adding
//! a feature: a module under `crate::features` implementing [`Phases`], a field in [`Features`]
//! and in each list below; its per-request state is a field of `RequestCtx`, its
//! per-worker-per-snapshot state a field of `snapshot::ApiState`.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use mcpgate_codec::http::{RequestHead, ResponseHead};
use mcpgate_codec::jsonrpc::{Classified, Classifier, Kind};
use smallvec::SmallVec;

use crate::context::{HttpMethod, RequestCtx, RpcInfo};
use crate::errors::Error;
use crate::features::{
    acl::Acl, auth::Auth, integrity::Integrity, limits::Limits, observe::Observe,
    protocol::Protocol, routing::Routing, virtual_server::VirtualServer,
};

/// A phase's verdict.
#[derive(Debug)]
pub enum Step {
    Continue,
    /// Stop here and answer the client with this.
    Answer(Answer),
}

/// What the gateway answers instead of the upstream.
#[derive(Debug)]
pub enum Answer {
    /// An error, written as a JSON-RPC error response with the error's status.
    Error(Error),
    /// A complete HTTP response the phase built itself (a 401 with its challenge, an ACL
    /// refusal, metadata). `close`: the request body may be unread.
    Raw { response: Vec<u8>, close: bool },
    /// An event stream the gateway writes itself (a virtual API's answer or GET stream).
    Stream(crate::engine::local_stream::LocalStream),
}

impl From<Error> for Answer {
    fn from(e: Error) -> Self {
        Answer::Error(e)
    }
}

impl Step {
    /// A raw answer, keeping the connection.
    pub fn raw(response: Vec<u8>) -> Step {
        Step::Answer(Answer::Raw {
            response,
            close: false,
        })
    }

    pub fn error(e: impl Into<Error>) -> Step {
        Step::Answer(Answer::Error(e.into()))
    }
}

/// The client's request head as the request-side phases see it (offsets into `buf`).
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
}

impl<'a> Request<'a> {
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.head.header(self.buf, name)
    }
    pub fn path(&self) -> &'a [u8] {
        self.head.path(self.buf)
    }
}

/// A request body and its JSON-RPC classification (`None`: no body, or not JSON-RPC).
#[derive(Clone, Copy)]
pub struct Body<'a> {
    pub bytes: &'a [u8],
    pub message: Option<&'a Classified>,
}

/// What the phases change in the request forwarded upstream.
#[derive(Default)]
pub struct UpstreamEdits<'a> {
    /// Header fields that stay at the gateway (credentials of the API's plans).
    pub remove: SmallVec<[&'a str; 4]>,
    /// `Mcp-Session-Id` to send instead of the client's.
    pub session_id: Option<&'a [u8]>,
}

/// The upstream's response head, at the start of `buf`, as the response-side phases see it.
pub struct Response<'a> {
    pub buf: &'a mut Vec<u8>,
    pub head: &'a mut ResponseHead,
}

impl Response<'_> {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.header(self.buf, name)
    }

    /// Replaces the head with `new_head` (a complete head, as `HeadWriter` writes it); kept as
    /// it was if `new_head` does not parse as exactly one head.
    pub fn replace_head(&mut self, new_head: Vec<u8>) {
        if let Ok(Some(parsed)) = ResponseHead::parse(&new_head) {
            if parsed.head_len == new_head.len() {
                let old = self.head.head_len.min(self.buf.len());
                self.buf.splice(..old, new_head);
                *self.head = parsed;
            }
        }
    }
}

/// A non-stream answer read whole, as the body filters see it.
pub struct BufferedAnswer<'a> {
    pub status: u16,
    /// The body the client will get; a filter that changes it makes it `Owned`.
    pub body: Cow<'a, [u8]>,
    /// Set by a filter that answers in the upstream's place (a 200 JSON answer of its own,
    /// written with a fresh head instead of the upstream's).
    pub gateway_answers: bool,
}

/// One event of an upstream event stream, as the event filters see it.
pub struct Event<'a> {
    pub event_type: Option<&'a [u8]>,
    pub id: Option<&'a [u8]>,
    pub retry: Option<u64>,
    /// The event's data (joined lines); a filter that rewrites it makes it `Owned`.
    pub data: Cow<'a, [u8]>,
    /// The event exactly as the upstream sent it.
    pub upstream_raw: &'a [u8],
    /// Only comment lines (a keep-alive): no data to judge.
    pub is_comment_only: bool,
    /// A buffer lent by the relay (the worker's, [`Pipeline::take_event_scratch`]) for a filter
    /// that rewrites `data`: it fills it and makes it `data` (`Cow::Owned`), so a rewrite
    /// allocates nothing, and the relay writes the event out from it and takes it back.
    pub scratch: Vec<u8>,
}

impl Event<'_> {
    /// The lent buffer, empty (see [`Event::scratch`]); give it back
    /// ([`Event::give_back_scratch`]) unless it becomes `data`.
    pub fn take_scratch(&mut self) -> Vec<u8> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch
    }

    pub fn give_back_scratch(&mut self, scratch: Vec<u8>) {
        self.scratch = scratch;
    }

    /// `data` of a `message` event (JSON-RPC), `None` for any other type or a comment.
    pub fn jsonrpc_data(&self) -> Option<&[u8]> {
        (!self.is_comment_only && matches!(self.event_type, None | Some(b"message")))
            .then_some(&*self.data)
    }
}

/// An event filter's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStep {
    Relay,
    Drop,
}

/// The phases, in the order [`Pipeline::run`] calls them; each does nothing unless a feature
/// implements it. Async phases may do I/O on the worker (never blocking it).
#[allow(async_fn_in_trait)] // the engine is single-threaded: no `Send` bound is wanted
pub trait Phases {
    /// Pick the API (`ctx.api`), or answer a path the gateway serves itself.
    async fn route(&self, _ctx: &mut RequestCtx, _req: Request<'_>) -> Step {
        Step::Continue
    }
    /// Authenticate against the API's plans.
    async fn authenticate(&self, _ctx: &mut RequestCtx, _req: Request<'_>) -> Step {
        Step::Continue
    }
    /// Admission control (rate limits, quotas).
    async fn admit(&self, _ctx: &mut RequestCtx, _req: Request<'_>) -> Step {
        Step::Continue
    }
    /// Look at the read body and its classification.
    fn inspect(&self, _ctx: &mut RequestCtx, _req: Request<'_>, _body: Body<'_>) -> Step {
        Step::Continue
    }
    /// Judge the messages; may set `ctx.forward_body` (the body to forward instead). Async: a
    /// cluster-scope rate limit asks Redis.
    async fn decide(&self, _ctx: &mut RequestCtx, _req: Request<'_>, _body: Body<'_>) -> Step {
        Step::Continue
    }
    /// Answer from a cache.
    async fn serve_from_cache(
        &self,
        _ctx: &mut RequestCtx,
        _req: Request<'_>,
        _body: Body<'_>,
    ) -> Step {
        Step::Continue
    }
    /// Serve the request at the gateway instead of forwarding it (a virtual API over several
    /// upstreams): a JSON answer goes in `ctx.cached_answer` (then through the same body filters
    /// as a cached one), anything else is a [`Step::Answer`].
    async fn serve(&self, _ctx: &mut RequestCtx, _req: Request<'_>, _body: Body<'_>) -> Step {
        Step::Continue
    }
    /// Edit the request head forwarded upstream.
    fn upstream_request<'c>(&self, _ctx: &'c RequestCtx, _edits: &mut UpstreamEdits<'c>) {}
    /// Look at (and edit) the upstream's response head.
    fn response_head(&self, _ctx: &mut RequestCtx, _resp: &mut Response<'_>) {}
    /// Whether this non-stream answer must be read whole and passed to [`Phases::body_filter`].
    fn buffers_body(&self, _ctx: &RequestCtx, _status: u16) -> bool {
        false
    }
    /// Rewrite (or look at) a buffered answer. An error means the answer cannot be relayed.
    fn body_filter(
        &self,
        _ctx: &mut RequestCtx,
        _answer: &mut BufferedAnswer<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// Whether [`Phases::body_seen`] wants a pass-through answer's (small) body.
    fn sees_body(&self, _ctx: &RequestCtx) -> bool {
        false
    }
    /// A pass-through answer's body, complete and small enough to have been kept.
    fn body_seen(&self, _ctx: &mut RequestCtx, _body: &[u8]) {}
    /// Events written to the client before the upstream's (already SSE-framed).
    fn events_start(&self, _ctx: &mut RequestCtx, _out: &mut Vec<u8>) {}
    /// One upstream event: relay (possibly rewritten) or drop.
    fn event_filter(&self, _ctx: &mut RequestCtx, _event: &mut Event<'_>) -> EventStep {
        EventStep::Relay
    }
    /// The gateway answered itself with `response` (`error`: the failure it reports, if any).
    fn local_answer(&self, _ctx: &mut RequestCtx, _response: &[u8], _error: Option<&Error>) {}
    /// The exchange is over, however it ended.
    fn record(&self, _ctx: &mut RequestCtx) {}
}

/// The engine's side of one exchange: the I/O between phases.
#[allow(async_fn_in_trait)]
pub trait ExchangeIo {
    /// The client's request head.
    fn request(&self) -> Request<'_>;
    /// Refuses, before reading it, a body the gateway will not read (framing, size, charset).
    fn check_body(&mut self, ctx: &RequestCtx) -> Result<(), Error>;
    /// Reads the whole body (bounded by the limits).
    async fn read_body(&mut self, ctx: &RequestCtx) -> Result<(), Error>;
    /// The body read by [`ExchangeIo::read_body`] (empty before, or without one).
    fn body(&self) -> &[u8];
    /// Sends the request upstream (with `edits`, and `ctx.forward_body` instead of the body when
    /// set) and reads the response head.
    async fn forward(&mut self, ctx: &RequestCtx, edits: &UpstreamEdits<'_>) -> Result<(), Error>;
    /// The response head read by [`ExchangeIo::forward`].
    fn response(&mut self) -> Option<Response<'_>>;
    /// Relays the answer through the response-side phases.
    async fn relay(&mut self, ctx: &mut RequestCtx, pipeline: &Pipeline) -> Result<(), Error>;
}

/// The features, in the order their phases run (observe last: it records what the others did).
/// Integrity comes after the ACL on the request side (the ACL refuses first what a subject may
/// not use at all) and before it on the response side (the list cache keeps the upstream's
/// answer as it came, and every answer, cached or not, is cut by the ACL for its subject).
/// Limits count last on the request side: a call the ACL or the pin policy refuses is never counted.
pub struct Features {
    pub auth: Auth,
    pub routing: Routing,
    pub protocol: Protocol,
    pub acl: Acl,
    pub limits: Limits,
    pub integrity: Integrity,
    /// A virtual API's server (`serve`); the pass-through APIs never reach it past a flag test.
    pub virtual_server: VirtualServer,
    pub observe: Observe,
}

/// Runs `$call` on the listed features, in that order, as `$f`; a `Step::Answer` stops the
/// phase there.
macro_rules! each_until_answer {
    ($features:expr, [$($field:ident),+], |$f:ident| $call:expr) => {{
        let features = $features;
        'phase: {
            $(
                let $f = &features.$field;
                if let Step::Answer(a) = $call {
                    break 'phase Step::Answer(a);
                }
            )+
            Step::Continue
        }
    }};
}

/// Runs `$call` on the listed features, in that order, for phases without a verdict.
macro_rules! each {
    ($features:expr, [$($field:ident),+], |$f:ident| $call:expr) => {{
        let features = $features;
        $(
            let $f = &features.$field;
            $call;
        )+
    }};
}

/// A worker's pipeline: its features (with their per-worker scratch) and the request classifier.
pub struct Pipeline {
    pub features: Features,
    classifier: RefCell<Classifier>,
    /// The buffer lent to each event for a rewrite of its data ([`Event::scratch`]).
    event_scratch: Cell<Vec<u8>>,
}

/// A rewritten event up to this size leaves its buffer to the next one; a larger one's is freed
/// (one huge event must not pin its size in the worker for good).
const EVENT_SCRATCH_RETAIN: usize = 256 * 1024;

impl Pipeline {
    pub fn new(features: Features) -> Self {
        Pipeline {
            features,
            classifier: RefCell::new(Classifier::new()),
            event_scratch: Cell::new(Vec::new()),
        }
    }

    /// The worker's buffer for rewritten events, to lend to each event of a pass
    /// ([`Event::scratch`]) and give back before the pass awaits anything.
    pub fn take_event_scratch(&self) -> Vec<u8> {
        self.event_scratch.take()
    }

    pub fn give_back_event_scratch(&self, mut scratch: Vec<u8>) {
        if scratch.capacity() > EVENT_SCRATCH_RETAIN {
            return;
        }
        scratch.clear();
        self.event_scratch.set(scratch);
    }

    /// The whole life of one exchange up to its answer. `Err`: stop here and answer with this
    /// (or, once the response started, close). `record` is the caller's, after any outcome.
    pub async fn run<X: ExchangeIo>(&self, ctx: &mut RequestCtx, io: &mut X) -> Result<(), Answer> {
        let f = &self.features;
        // Request side.
        // The gateway's own paths (well-known metadata) before the APIs' prefixes.
        let routed = each_until_answer!(
            f,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.route(ctx, io.request()).await
        );
        // Phase boundaries for a sampled trace's child spans (one branch when not traced).
        ctx.trace_mark(|t, now| t.route_end = Some(now));
        step(routed)?;
        io.check_body(ctx)?;
        ctx.trace_mark(|t, now| t.auth_start = Some(now));
        let authenticated = each_until_answer!(
            f,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.authenticate(ctx, io.request()).await
        );
        ctx.trace_mark(|t, now| t.auth_end = Some(now));
        step(authenticated)?;
        step(each_until_answer!(
            f,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.admit(ctx, io.request()).await
        ))?;
        io.read_body(ctx).await?;
        let message = self.classify(ctx, io.body());
        let body = Body {
            bytes: io.body(),
            message: message.as_ref(),
        };
        // The recorder first: a request refused by a later check is recorded with its messages.
        step(each_until_answer!(
            f,
            [observe, auth, routing, protocol, acl, integrity, limits],
            |x| x.inspect(ctx, io.request(), body)
        ))?;
        ctx.trace_mark(|t, now| t.decide_start = Some(now));
        let decided = each_until_answer!(
            f,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.decide(ctx, io.request(), body).await
        );
        ctx.trace_mark(|t, now| t.decide_end = Some(now));
        step(decided)?;
        step(each_until_answer!(
            f,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.serve_from_cache(ctx, io.request(), body).await
        ))?;
        if ctx.cached_answer.is_none() {
            step(f.virtual_server.serve(ctx, io.request(), body).await)?;
        }
        if let Some(cached) = ctx.cached_answer.take() {
            return Err(self.cached_answer(ctx, cached));
        }
        drop(message);
        ctx.trace_mark(|t, now| t.forward_start = Some(now));
        let mut edits = UpstreamEdits::default();
        each!(
            f,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.upstream_request(ctx, &mut edits)
        );
        let forwarded = io.forward(ctx, &edits).await;
        drop(edits);
        ctx.trace_mark(|t, now| t.forward_head = Some(now));
        forwarded?;
        // Response side.
        if let Some(mut resp) = io.response() {
            // Sealing the session id first, so the recorder tags what the client holds.
            each!(
                f,
                [auth, routing, protocol, acl, integrity, limits, observe],
                |x| x.response_head(ctx, &mut resp)
            );
        }
        io.relay(ctx, self).await?;
        Ok(())
    }

    /// An answer a cache served (`ctx.cached_answer`): through the body filters that follow the
    /// cache — the pin policy, the ACL (each subject sees only what it may) — then written by the
    /// gateway. The recorder notes it as written, in `local_answer`.
    fn cached_answer(&self, ctx: &mut RequestCtx, body: Vec<u8>) -> Answer {
        let mut answer = BufferedAnswer {
            status: 200,
            body: Cow::Owned(body),
            gateway_answers: true,
        };
        let mut result = Ok(());
        each!(
            &self.features,
            [auth, routing, protocol, integrity, acl],
            |x| if result.is_ok() {
                result = x.body_filter(ctx, &mut answer);
            }
        );
        if let Err(e) = result {
            return Answer::Error(e);
        }
        let response = match ctx.answer_form.as_deref() {
            Some(form) => form.write(answer.status, &answer.body),
            None => {
                let mut response = Vec::with_capacity(answer.body.len() + 96);
                crate::errors::write_response(
                    answer.status,
                    "application/json",
                    &answer.body,
                    false,
                    &mut response,
                );
                response
            }
        };
        Answer::Raw {
            response,
            close: false,
        }
    }

    /// The JSON-RPC classification of a POST body (`None`: no body, not a POST, or not JSON-RPC:
    /// without an ACL it goes to the upstream as it is, which answers it).
    fn classify(&self, ctx: &mut RequestCtx, body: &[u8]) -> Option<Classified> {
        if ctx.method != HttpMethod::Post || body.is_empty() {
            return None;
        }
        match self.classifier.borrow_mut().classify(body) {
            Ok(classified) => {
                let messages = classified.messages();
                let id_raw = match &classified {
                    Classified::Single(m) if m.kind == Kind::Request => {
                        m.id_bytes(body).map(<[u8]>::to_vec)
                    }
                    _ => None,
                };
                ctx.rpc = Some(RpcInfo {
                    id_raw,
                    method: messages.first().and_then(|m| m.method.clone()),
                    no_request: messages.iter().all(|m| m.kind != Kind::Request),
                    messages: messages.len(),
                });
                Some(classified)
            }
            Err(e) => {
                crate::debug!(
                    "inspect: body is not JSON-RPC ({}); judged by the features that need it",
                    e.message()
                );
                None
            }
        }
    }

    // The response-side phases, for the engine's relay.

    pub fn buffers_body(&self, ctx: &RequestCtx, status: u16) -> bool {
        let mut any = false;
        each!(
            &self.features,
            [auth, routing, protocol, integrity, acl, limits, observe],
            |x| any |= x.buffers_body(ctx, status)
        );
        any
    }

    /// Integrity before the ACL (it caches and pins the upstream's answer as it came), the
    /// recorder last: it sees what the client gets.
    pub fn body_filter(
        &self,
        ctx: &mut RequestCtx,
        answer: &mut BufferedAnswer<'_>,
    ) -> Result<(), Error> {
        let mut result = Ok(());
        each!(
            &self.features,
            [auth, routing, protocol, integrity, acl, limits, observe],
            |x| if result.is_ok() {
                result = x.body_filter(ctx, answer);
            }
        );
        result
    }

    pub fn sees_body(&self, ctx: &RequestCtx) -> bool {
        let mut any = false;
        each!(
            &self.features,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| any |= x.sees_body(ctx)
        );
        any
    }

    pub fn body_seen(&self, ctx: &mut RequestCtx, body: &[u8]) {
        each!(
            &self.features,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.body_seen(ctx, body)
        );
    }

    pub fn events_start(&self, ctx: &mut RequestCtx, out: &mut Vec<u8>) {
        each!(
            &self.features,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.events_start(ctx, out)
        );
    }

    /// The event filters, in order; once one drops the event the others before the recorder
    /// are skipped, and the recorder sees every event, a dropped one too (its decision is
    /// recorded though the client never sees it).
    pub fn event_filter(&self, ctx: &mut RequestCtx, event: &mut Event<'_>) -> EventStep {
        let mut verdict = EventStep::Relay;
        each!(
            &self.features,
            [auth, routing, protocol, integrity, acl, limits],
            |x| if verdict == EventStep::Relay {
                verdict = x.event_filter(ctx, event);
            }
        );
        let observed = self.features.observe.event_filter(ctx, event);
        if verdict == EventStep::Relay {
            observed
        } else {
            verdict
        }
    }

    pub fn local_answer(&self, ctx: &mut RequestCtx, response: &[u8], error: Option<&Error>) {
        each!(
            &self.features,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.local_answer(ctx, response, error)
        );
    }

    pub fn record(&self, ctx: &mut RequestCtx) {
        each!(
            &self.features,
            [auth, routing, protocol, acl, integrity, limits, observe],
            |x| x.record(ctx)
        );
    }
}

fn step(s: Step) -> Result<(), Answer> {
    match s {
        Step::Continue => Ok(()),
        Step::Answer(a) => Err(a),
    }
}
