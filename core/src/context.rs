//! The per-request context every phase reads and writes (Pingora's `CTX`): what the request is,
//! which API and snapshot serve it, what each feature decided, and what the exchange log will
//! record. One per HTTP request; built by the engine, dropped after the `record` phase.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use mcpgate_policies::auth::Principal;
use mcpgate_policies::tls::TlsFacts;

use crate::config::{Api, Config};
use crate::features::acl::exchange::AclExchange;
use crate::features::integrity::IntegrityExchange;
use crate::features::limits::state::LimitsExchange;
use crate::observe::exchange::ExchangeNotes;
use crate::observe::trace::TraceCtx;
use crate::request_id::RequestId;
use crate::snapshot::{ApiState, Snapshot};

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

    /// GET, DELETE and HEAD may be sent again after a pooled connection closed unanswered.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            HttpMethod::Get | HttpMethod::Delete | HttpMethod::Head
        )
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
pub struct RequestCtx {
    pub started: Instant,
    /// The exchange's id (the client's `X-Request-Id` when sane): log lines, records, spans,
    /// the upstream request and the answer carry it.
    pub request_id: RequestId,
    /// The exchange's trace when it is sampled (`[gateway.traces]`); `None` costs nothing.
    pub trace: Option<Box<TraceCtx>>,
    pub peer: SocketAddr,
    /// The client connection's TLS facts (version, SNI, the verified client certificate);
    /// `None` on a plain listener. Shared by every request of the connection.
    pub tls: Option<Rc<TlsFacts>>,
    /// The configuration snapshot and this worker's state for it, held for the whole exchange
    /// (a reload meanwhile serves the next request).
    pub snapshot: Rc<Snapshot>,
    pub method: HttpMethod,
    /// Index into `config().apis`, set by the `route` phase.
    pub api: Option<usize>,
    pub rpc: Option<RpcInfo>,
    /// Status sent to the client (relayed or gateway-written).
    pub status: u16,
    /// Whether the answer was written by the gateway rather than relayed.
    pub local_answer: bool,
    /// Some bytes of the answer reached the client: a failure can no longer become an error
    /// status, the connection is closed instead.
    pub response_started: bool,
    pub event_stream: bool,
    pub bytes_to_client: u64,
    /// What the phases noted for the exchange log (`crate::features::observe`).
    pub obs: ExchangeNotes,
    /// The MCP ACL's state and decisions for this exchange; `None` when the API has no ACL.
    pub acl: Option<Box<AclExchange>>,
    /// Who the `authenticate` phase authenticated (subject, client id, scopes, claims): the ACL's
    /// `auth` variable. `None` when the API has no plans.
    pub principal: Option<Rc<Principal>>,
    /// The upstream's session id behind the sealed one the client presented or was given (APIs
    /// with plans).
    pub upstream_session: Option<Box<str>>,
    /// The body to forward instead of the client's (set by `decide`: a batch without its refused
    /// elements).
    pub forward_body: Option<Vec<u8>>,
    /// What the rate limits decided (headers for the answer, the rule that throttled); `None`
    /// when no rule counted this request.
    pub limits: Option<Box<LimitsExchange>>,
    /// The list cache's and pinning's state for this exchange (`crate::features::integrity`).
    pub integrity: Option<Box<IntegrityExchange>>,
    /// A JSON answer a cache served (set by `serve_from_cache`): the pipeline passes it through
    /// the body filters that follow the cache, then the gateway writes it.
    pub cached_answer: Option<Vec<u8>>,
    /// How the gateway writes `cached_answer` when a virtual server built it (its session id,
    /// SSE framing); `None`: plain JSON.
    pub answer_form: Option<Box<crate::features::virtual_server::AnswerForm>>,
    /// The upstream (by its configured name) that served this exchange on a virtual API, for the
    /// exchange log; `None`: the API's one upstream.
    pub served_by: Option<Box<str>>,
}

impl RequestCtx {
    pub fn new(peer: SocketAddr, snapshot: Rc<Snapshot>, method: HttpMethod) -> Self {
        RequestCtx {
            started: Instant::now(),
            request_id: RequestId::generate(),
            trace: None,
            peer,
            tls: None,
            snapshot,
            method,
            api: None,
            rpc: None,
            status: 0,
            local_answer: false,
            response_started: false,
            event_stream: false,
            bytes_to_client: 0,
            obs: Default::default(),
            acl: None,
            principal: None,
            upstream_session: None,
            forward_body: None,
            limits: None,
            integrity: None,
            cached_answer: None,
            answer_form: None,
            served_by: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.snapshot.config
    }

    /// The routed API.
    pub fn api(&self) -> Option<&Api> {
        self.api.and_then(|i| self.snapshot.config.apis.get(i))
    }

    /// This worker's state for the routed API.
    pub fn api_state(&self) -> Option<&ApiState> {
        self.api.and_then(|i| self.snapshot.apis.get(i))
    }

    /// Notes the time of a phase boundary on a sampled trace (`mark` picks the field); no clock
    /// read otherwise.
    #[inline]
    pub fn trace_mark(&mut self, mark: impl FnOnce(&mut TraceCtx, Instant)) {
        if let Some(t) = self.trace.as_deref_mut() {
            mark(t, Instant::now());
        }
    }

    /// Raw JSON id of the request, when known, for error bodies.
    pub fn id_raw(&self) -> Option<&[u8]> {
        self.rpc.as_ref().and_then(|r| r.id_raw.as_deref())
    }
}
