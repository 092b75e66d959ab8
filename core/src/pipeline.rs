//! The request pipeline as named phases over a per-request context, in the spirit of Pingora's
//! `ProxyHttp`: `route → plan → inspect → decide → forward → relay → record`.
//!
//! The synchronous phases (route, plan, inspect, decide, record) live here and are pure functions of
//! the request and the configuration snapshot; `forward` and `relay` are the I/O phases and live in
//! `crate::engine::proxy`, which calls these in order. A phase that answers the client itself
//! returns [`Flow::Respond`]; the engine writes that answer and the request stops there.
//!
//! Extension points: `plan` (authentication, a later issue) and `decide` (the MCP ACL) are no-ops
//! with their final signatures; `record` is the hook for the exchange log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mcpgate_codec::http::{HttpError, RequestHead};
use mcpgate_codec::jsonrpc::{Classified, Classifier, Kind};

use crate::config::{Api, Config};
use crate::errors::GatewayError;
use crate::route;

/// The HTTP methods the Streamable HTTP transport uses; anything else is passed to the upstream,
/// which decides (typically 405).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Get,
    Delete,
    Head,
    Other,
}

impl HttpMethod {
    pub fn from_bytes(m: &[u8]) -> HttpMethod {
        match m {
            b"POST" => HttpMethod::Post,
            b"GET" => HttpMethod::Get,
            b"DELETE" => HttpMethod::Delete,
            b"HEAD" => HttpMethod::Head,
            _ => HttpMethod::Other,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Get => "GET",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
            HttpMethod::Other => "other",
        }
    }
}

/// What `inspect` learned from a POST body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcInfo {
    /// Raw JSON of the request id (single requests only), for gateway-written error bodies.
    pub id_raw: Option<Vec<u8>>,
    /// The JSON-RPC method (first message of a batch), for the log.
    pub method: Option<String>,
    /// The body carries only notifications and/or responses (the upstream should answer 202).
    pub no_request: bool,
    /// Number of messages (1 unless a 2025-03-26 batch).
    pub messages: usize,
}

/// Per-request state carried through the phases.
#[derive(Debug)]
pub struct RequestCtx {
    pub started: Instant,
    pub peer: SocketAddr,
    pub config: Arc<Config>,
    pub method: HttpMethod,
    /// Index into `config.apis`, set by `route`.
    pub api: Option<usize>,
    pub rpc: Option<RpcInfo>,
    /// Status sent to the client (relayed or gateway-written).
    pub status: u16,
    /// Whether the answer was written by the gateway rather than relayed.
    pub local_answer: bool,
    pub event_stream: bool,
    pub bytes_to_client: u64,
    /// What the phases noted for the exchange log (`crate::engine::observe_glue`).
    pub obs: crate::observe::exchange::ExchangeNotes,
    /// The MCP ACL's state and decisions for this exchange; `None` when the API has no ACL.
    pub acl: Option<Box<crate::acl_phase::AclExchange>>,
    /// Who the `plan` phase authenticated (subject, client id, scopes, claims): the ACL's `auth`
    /// variable. `None` when the API has no plans.
    pub principal: Option<std::rc::Rc<mcpgate_policies::auth::Principal>>,
    /// The upstream's session id behind the sealed one the client presented (APIs with plans).
    pub upstream_session: Option<Box<str>>,
}

impl RequestCtx {
    pub fn new(peer: SocketAddr, config: Arc<Config>, method: HttpMethod) -> Self {
        RequestCtx {
            started: Instant::now(),
            peer,
            config,
            method,
            api: None,
            rpc: None,
            status: 0,
            local_answer: false,
            event_stream: false,
            bytes_to_client: 0,
            obs: Default::default(),
            acl: None,
            principal: None,
            upstream_session: None,
        }
    }

    pub fn api(&self) -> Option<&Api> {
        self.api.and_then(|i| self.config.apis.get(i))
    }

    /// Raw JSON id of the request, when known, for error bodies.
    pub fn id_raw(&self) -> Option<&[u8]> {
        self.rpc.as_ref().and_then(|r| r.id_raw.as_deref())
    }
}

/// A phase's verdict.
#[derive(Debug)]
pub enum Flow {
    Continue,
    /// Stop here and answer the client with this error (the engine writes it as JSON-RPC).
    Respond(GatewayError),
    /// Stop here: the phase built the complete HTTP response itself (e.g. a 401 with its
    /// `WWW-Authenticate` challenge); the engine writes these bytes as they are. Set
    /// `close` when the request body may be unread.
    RespondRaw {
        response: Vec<u8>,
        close: bool,
    },
}

/// The per-worker pipeline: owns the reusable scratch the phases need (the JSON-RPC classifier).
pub struct Pipeline {
    classifier: Classifier,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline {
    pub fn new() -> Self {
        Pipeline {
            classifier: Classifier::new(),
        }
    }

    /// Phase 1: pick the API by longest entrypoint prefix; unknown paths are answered 404.
    pub fn route(&mut self, ctx: &mut RequestCtx, buf: &[u8], head: &RequestHead) -> Flow {
        let target = route::origin_form(head.target(buf));
        let path = target.split(|&b| b == b'?').next().unwrap_or_default();
        if route::has_dot_segment(path) {
            return Flow::Respond(GatewayError::Request(HttpError::Malformed(
                "dot segment in the request path",
            )));
        }
        match route::route(&ctx.config.apis, path) {
            Some(i) => {
                ctx.api = Some(i);
                Flow::Continue
            }
            None => Flow::Respond(GatewayError::NotFound),
        }
    }

    /// Phase 2, synchronous part: nothing yet. Authentication needs I/O (JWKS, introspection), so
    /// the plan phase proper is `crate::engine::auth_io::plan`, run right after this.
    pub fn plan(&mut self, _ctx: &mut RequestCtx, _buf: &[u8], _head: &RequestHead) -> Flow {
        Flow::Continue
    }

    /// Phase 3: classify a POST body (JSON-RPC message or batch). An unparsable body is not refused
    /// here: with no ACL there is nothing to protect, and the upstream answers it faithfully.
    /// Returns the classification for `decide` (offsets index `body`).
    pub fn inspect(&mut self, ctx: &mut RequestCtx, body: &[u8]) -> Option<Classified> {
        if ctx.method != HttpMethod::Post || body.is_empty() {
            return None;
        }
        match self.classifier.classify(body) {
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
                    "inspect: body is not JSON-RPC ({}); passed to the upstream as is",
                    e.message()
                );
                None
            }
        }
    }

    /// Phase 4: judge the classified message(s) against the API's ACL (`message` is `None` for
    /// GET/DELETE and for bodies that are not JSON-RPC; with an ACL such a body is refused).
    /// `buf` holds the request head. See `crate::acl_phase`.
    pub fn decide(
        &mut self,
        ctx: &mut RequestCtx,
        buf: &[u8],
        head: &RequestHead,
        body: &[u8],
        message: Option<&Classified>,
    ) -> Flow {
        crate::acl_phase::decide(ctx, buf, head, body, message, &mut self.classifier)
    }

    /// Phase 7: the exchange is over (relayed, answered locally, or failed). Hook for the exchange
    /// log; for now a debug line without session ids or credentials.
    pub fn record(&mut self, ctx: &RequestCtx) {
        if crate::log::enabled(crate::log::Level::Debug) {
            let rpc = ctx
                .rpc
                .as_ref()
                .and_then(|r| r.method.as_deref())
                .unwrap_or("-");
            crate::debug!(
                "{} {} -> {}{} rpc={} {}B {:?}",
                ctx.method.as_str(),
                ctx.api().map_or("(no api)", |a| a.path.as_str()),
                ctx.status,
                if ctx.event_stream { " (sse)" } else { "" },
                rpc,
                ctx.bytes_to_client,
                ctx.started.elapsed()
            );
        }
    }
}
