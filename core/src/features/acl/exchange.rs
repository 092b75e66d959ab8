//! The ACL's state for one exchange and its judgments, without I/O: the verdict on every client
//! message (each batch element), and the rewrites of what comes back — list results filtered in
//! JSON bodies and SSE events whatever request they answer, server→client messages about hidden
//! things dropped, refused server→client requests answered upstream instead of shown.
//! The feature around it (`super`) reads and writes; this module is given bytes.

use std::cell::OnceCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use mcpgate_codec::filter::{
    FilterError, ListFilter as CodecListFilter, ListKind, ListSet, ListsOutcome, ResponseFilter,
};
use mcpgate_codec::jsonrpc::{
    error_response, Classified, Classifier, Kind, Message, Target as CodecTarget,
};
use mcpgate_policies::acl::{
    Acl, AuthInfo, ConditionContext, DecisionRecord, ListFilter as PolicyListFilter, McpRequest,
    Target, Verdict,
};
use mcpgate_policies::auth::Principal;
use mcpgate_policies::tls::TlsFacts;

use crate::errors::{write_response, INTERNAL_ERROR};

/// The request facts a condition may read, owned so list answers (read after the request buffer
/// has moved on) are judged against the same request.
#[derive(Debug, Default)]
pub struct RequestFacts {
    pub(super) method: &'static str,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) client_ip: Option<IpAddr>,
    /// Who the API's plan authenticated (shared with the request context, not copied).
    pub(super) principal: Option<Rc<Principal>>,
    /// The `auth` view of `principal`, built on the first condition that reads `auth` — an ACL
    /// without such a condition never pays for copying the claims.
    pub(super) auth: OnceCell<Option<AuthInfo>>,
    /// The client connection's TLS facts (the CEL `connection` variable), shared, not copied.
    pub(super) tls: Option<Rc<TlsFacts>>,
}

impl RequestFacts {
    /// Facts with a principal only (request parts empty), for tests of `auth` conditions.
    #[cfg(test)]
    fn with_principal(principal: Principal) -> Self {
        RequestFacts {
            principal: Some(Rc::new(principal)),
            ..RequestFacts::default()
        }
    }
}

/// A principal as the ACL's CEL `auth` variable sees it: absent subject / client id are empty
/// strings, claims that are not an object (never, for a JWT) are an empty map.
pub(crate) fn auth_info(principal: &Principal) -> AuthInfo {
    AuthInfo {
        subject: principal.subject.as_deref().unwrap_or_default().to_owned(),
        client_id: principal
            .client_id
            .as_deref()
            .unwrap_or_default()
            .to_owned(),
        scopes: principal.scopes.iter().map(|s| s.to_string()).collect(),
        claims: principal.claims.as_object().cloned().unwrap_or_default(),
    }
}

impl ConditionContext for RequestFacts {
    fn request_method(&self) -> &str {
        self.method
    }
    fn request_path(&self) -> &str {
        &self.path
    }
    fn for_each_header(&self, visit: &mut dyn FnMut(&str, &str)) {
        for (name, value) in &self.headers {
            visit(name, value);
        }
    }
    fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }
    fn auth(&self) -> Option<&AuthInfo> {
        self.auth
            .get_or_init(|| self.principal.as_deref().map(auth_info))
            .as_ref()
    }
    fn connection(&self) -> Option<&TlsFacts> {
        self.tls.as_deref()
    }
}

/// The ACL's state for one exchange, kept in `RequestCtx::acl` (also what the exchange log
/// reads: [`AclExchange::records`]).
#[derive(Debug)]
pub struct AclExchange {
    pub acl: Arc<Acl>,
    pub facts: RequestFacts,
    /// Gateway-written error answers for refused elements of a batch whose other elements went
    /// upstream; merged into the upstream's answer.
    pub injected: Vec<Vec<u8>>,
    /// The body to forward instead of the client's (a batch without its refused elements).
    pub rewritten_body: Option<Vec<u8>>,
    /// Headers a gateway-written answer to a refused server→client request carries upstream.
    pub upstream_headers: Vec<(&'static str, Vec<u8>)>,
    /// Every decision of this exchange, in order: one per judged message, one per filtered list.
    pub records: Vec<DecisionRecord>,
    /// The decision on the server→client message [`AclExchange::judge_event`] judged last
    /// (`None` after any other event), for that message's own exchange record.
    pub server_decision: Option<DecisionRecord>,
}

/// Which request headers the gateway repeats when it answers the upstream itself.
const UPSTREAM_ANSWER_HEADERS: [&str; 3] =
    ["mcp-session-id", "mcp-protocol-version", "authorization"];

impl AclExchange {
    /// The state for one exchange: the request's facts (copied: list answers are judged after
    /// the request buffer has moved on) and the headers a gateway-written upstream answer repeats.
    pub fn new<'h>(
        acl: Arc<Acl>,
        method: &'static str,
        path: &[u8],
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        client_ip: IpAddr,
        principal: Option<Rc<Principal>>,
    ) -> Self {
        let mut facts_headers = Vec::new();
        let mut upstream_headers = Vec::new();
        for (name, value) in headers {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            if let Some(keep) = UPSTREAM_ANSWER_HEADERS.iter().find(|h| **h == name) {
                upstream_headers.push((*keep, value.to_vec()));
            }
            facts_headers.push((name, String::from_utf8_lossy(value).into_owned()));
        }
        AclExchange {
            acl,
            facts: RequestFacts {
                method,
                path: String::from_utf8_lossy(path).into_owned(),
                headers: facts_headers,
                client_ip: Some(client_ip),
                principal,
                auth: OnceCell::new(),
                tls: None,
            },
            injected: Vec::new(),
            rewritten_body: None,
            upstream_headers,
            records: Vec::new(),
            server_decision: None,
        }
    }

    /// Whether a non-stream answer with this status must be read whole and judged before it is
    /// relayed: every 2xx answer to a POST that can carry a result (not 202/204), since any
    /// response may carry a list whatever request it answers (the gateway does not trust its
    /// own pairing of answers to requests to decide what to filter); and any answer when
    /// refusals of a batch must be merged into it.
    pub fn judges_answer(&self, status: u16) -> bool {
        !self.injected.is_empty()
            || self.facts.method == "POST"
                && (200..300).contains(&status)
                && !matches!(status, 202 | 204)
    }
}

fn acl_target(t: &CodecTarget) -> Target<'_> {
    match t {
        CodecTarget::None => Target::None,
        CodecTarget::Name(s) => Target::Name(s),
        CodecTarget::Uri(s) => Target::Uri(s),
        CodecTarget::PromptRef(s) => Target::PromptRef(s),
        CodecTarget::ResourceRef(s) => Target::ResourceRef(s),
    }
}

/// What the ACL makes of a client's POST body.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgment {
    /// Forward it (possibly without refused batch elements: see `AclExchange::rewritten_body`).
    Forward,
    /// Answer the client with this JSON body and status; nothing goes upstream.
    Answer { status: u16, body: Vec<u8> },
    /// Answer 202 with no body (only refused notifications).
    Accepted,
}

impl Judgment {
    /// The complete HTTP response of a gateway answer.
    pub fn response(&self) -> Option<Vec<u8>> {
        match self {
            Judgment::Forward => None,
            Judgment::Answer { status, body } => {
                let mut response = Vec::with_capacity(body.len() + 96);
                write_response(*status, "application/json", body, false, &mut response);
                Some(response)
            }
            Judgment::Accepted => {
                Some(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_vec())
            }
        }
    }
}

/// A body the classifier refused (bad JSON, duplicate keys, bad envelope) is never forwarded to
/// an API with an ACL: the upstream might read it differently from the gateway.
pub fn refuse_unreadable(body: &[u8], classifier: &mut Classifier) -> Judgment {
    let (code, message) = match classifier.classify(body) {
        Err(e) => (e.code(), e.message().to_string()),
        Ok(_) => (-32600, "Invalid Request".to_string()),
    };
    let mut err = Vec::with_capacity(96);
    error_response(None, code, &message, &mut err);
    Judgment::Answer {
        status: 400,
        body: err,
    }
}

/// Judges each message; refused requests are answered by the gateway, refused notifications
/// dropped, and a batch with both kinds of elements forwarded without the refused ones.
pub fn judge(ex: &mut AclExchange, body: &[u8], classified: &Classified) -> Judgment {
    let messages = classified.messages();
    let mut allowed: Vec<bool> = Vec::with_capacity(messages.len());
    let mut refusals: Vec<Vec<u8>> = Vec::new();
    for m in messages {
        allowed.push(judge_one(ex, body, m, &mut refusals));
    }
    let allowed_count = allowed.iter().filter(|a| **a).count();
    match classified {
        Classified::Single(_) if allowed_count == 1 => Judgment::Forward,
        Classified::Single(_) => match refusals.pop() {
            Some(err) => Judgment::Answer {
                status: 200,
                body: err,
            },
            None => Judgment::Accepted,
        },
        Classified::Batch(_) if allowed_count == messages.len() => Judgment::Forward,
        Classified::Batch(_) if allowed_count == 0 => {
            if refusals.is_empty() {
                Judgment::Accepted
            } else {
                Judgment::Answer {
                    status: 200,
                    body: join_array(&refusals),
                }
            }
        }
        Classified::Batch(_) => {
            let mut forwarded = Vec::with_capacity(body.len());
            forwarded.push(b'[');
            for (m, _) in messages.iter().zip(&allowed).filter(|(_, a)| **a) {
                if forwarded.len() > 1 {
                    forwarded.push(b',');
                }
                forwarded.extend_from_slice(body.get(m.span.clone()).unwrap_or_default());
            }
            forwarded.push(b']');
            ex.rewritten_body = Some(forwarded);
            ex.injected = refusals;
            Judgment::Forward
        }
    }
}

/// One message: `true` when it goes upstream. A refused request's error is pushed on `refusals`.
fn judge_one(ex: &mut AclExchange, body: &[u8], m: &Message, refusals: &mut Vec<Vec<u8>>) -> bool {
    if !matches!(m.kind, Kind::Request | Kind::Notification) {
        // The client's answers to server→client requests are not governed.
        return true;
    }
    let method = m.method.as_deref().unwrap_or_default();
    let decision = ex
        .acl
        .decide(&McpRequest::new(method, acl_target(&m.target)), &ex.facts);
    ex.records.push(decision.record());
    if decision.lets_through() {
        return true;
    }
    if m.kind == Kind::Request {
        let mut err = Vec::with_capacity(96);
        let (code, message) = match &decision.error {
            Some(e) => (e.code, e.message.as_ref()),
            None => (mcpgate_policies::acl::INVALID_PARAMS, "Invalid params"),
        };
        error_response(m.id_bytes(body), code, message, &mut err);
        refusals.push(err);
    }
    false
}

fn join_array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    out
}

/// Filters every list of `kinds` in one response (`message`, a whole JSON-RPC response) into
/// `out`, one decision record per list found. Errors leave `out` as it was.
fn filter_lists(
    acl: &Acl,
    facts: &RequestFacts,
    message: &[u8],
    kinds: ListSet,
    out: &mut Vec<u8>,
    records: &mut Vec<DecisionRecord>,
) -> Result<(), FilterError> {
    with_list_filters(acl, facts, records, |keep| {
        CodecListFilter::new()
            .filter_lists(message, kinds, keep, out)
            .map(|o| (o, ()))
    })
}

/// Runs one codec filter (`run`, given the ACL's judgment of each entry) and records one
/// decision per list it found. Each list's policy filter is built on its first entry.
fn with_list_filters<T>(
    acl: &Acl,
    facts: &RequestFacts,
    records: &mut Vec<DecisionRecord>,
    run: impl FnOnce(&mut dyn FnMut(ListKind, &str) -> bool) -> Result<(ListsOutcome, T), FilterError>,
) -> Result<T, FilterError> {
    let mut filters: [Option<PolicyListFilter<'_>>; 4] = Default::default();
    let (outcome, value) = run(&mut |kind, key| match filters.get_mut(kind.index()) {
        Some(slot) => slot
            .get_or_insert_with(|| acl.list_filter(kind, facts))
            .keep(key),
        None => false,
    })?;
    for kind in outcome.found().iter() {
        let record = match filters.get(kind.index()).and_then(Option::as_ref) {
            Some(filter) => filter.record(),
            None => acl.list_filter(kind, facts).record(),
        };
        records.push(record);
    }
    Ok(value)
}

impl AclExchange {
    /// Filters one classified JSON-RPC response if its result carries a list, appending the
    /// filtered message to `out`; `Ok(false)` (nothing appended) when there is nothing to filter.
    fn filter_response(
        &mut self,
        message: &[u8],
        m: &Message,
        out: &mut Vec<u8>,
    ) -> Result<bool, FilterError> {
        if m.kind != Kind::Response || m.lists.is_empty() {
            return Ok(false);
        }
        filter_lists(
            &self.acl,
            &self.facts,
            message,
            m.lists,
            out,
            &mut self.records,
        )?;
        Ok(true)
    }

    /// Rewrites a buffered JSON answer: every list a response carries filtered (whatever its
    /// id), injected refusals merged (into the array of a batch answer, or as the answer itself
    /// when the upstream sent none). An answer that is not JSON-RPC is an error: with an ACL,
    /// what cannot be judged is not relayed.
    pub fn rewrite_json(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        let trimmed = body.trim_ascii();
        if self.injected.is_empty() && trimmed.first() == Some(&b'{') {
            // One response: the codec's filter validates the whole message and filters whatever
            // lists its result carries in one pass, without a classification first.
            return filter_lists(
                &self.acl,
                &self.facts,
                body,
                ListSet::ALL,
                out,
                &mut self.records,
            );
        }
        let mut elements: Vec<Vec<u8>> = Vec::new();
        if !trimmed.is_empty() {
            let classified = Classifier::new()
                .classify(body)
                .map_err(|_| FilterError::InvalidJson { offset: 0 })?;
            for m in classified.messages() {
                let element = body.get(m.span.clone()).unwrap_or_default();
                let mut filtered = Vec::with_capacity(element.len());
                if !self.filter_response(element, m, &mut filtered)? {
                    filtered.extend_from_slice(element);
                }
                elements.push(filtered);
            }
            if self.injected.is_empty() {
                if let (Classified::Single(_), Some(only)) = (&classified, elements.first()) {
                    out.extend_from_slice(only);
                    return Ok(());
                }
            }
        }
        elements.append(&mut self.injected);
        out.extend_from_slice(&join_array(&elements));
        Ok(())
    }

    /// Injected refusals as SSE events, written at the start of a batch's event stream.
    pub fn injected_events(&mut self, out: &mut Vec<u8>) {
        for err in self.injected.drain(..) {
            mcpgate_codec::sse::write_event(out, Some(b"message"), None, None, &err);
        }
    }

    /// Judges one SSE `message` event's data (a JSON-RPC message or a 2025-03-26 batch from the
    /// upstream), with fresh buffers; the engine's path is [`AclExchange::judge_event_into`].
    #[cfg(test)]
    pub fn judge_event(&mut self, data: &[u8], classifier: &mut Classifier) -> EventVerdict {
        let mut out = Vec::new();
        let judged = self.judge_event_into(data, classifier, &mut CodecListFilter::new(), &mut out);
        EventVerdict {
            relay: match judged.relay {
                Rewrite::Forward => Relay::Forward,
                Rewrite::Written => Relay::Replace(out),
                Rewrite::Drop => Relay::Drop,
            },
            answer_upstream: judged.answer_upstream,
        }
    }

    /// Judges one SSE `message` event's data (a JSON-RPC message or a 2025-03-26 batch from the
    /// upstream); a rewrite is appended to `out` (the worker's scratch, [`Rewrite::Written`]).
    /// Fails closed: data that is not JSON-RPC is not relayed.
    ///
    /// The usual event of a stream answering a POST is a plain response, and the ACL's only
    /// business with a response is the lists its result carries: the codec's
    /// `filter_response` reads the envelope and filters in one validating pass, as the JSON
    /// path does, without a classification first. It answers only when the message is plainly
    /// a response (agreeing with the classifier there, see the codec's tests); anything else —
    /// a server→client request or notification, a batch, an odd envelope, a list it cannot
    /// filter — goes to the classifier and the judgment below, exactly as before.
    pub fn judge_event_into(
        &mut self,
        data: &[u8],
        classifier: &mut Classifier,
        filter: &mut CodecListFilter,
        out: &mut Vec<u8>,
    ) -> EventJudged {
        self.server_decision = None;
        let trimmed = data.trim_ascii();
        if trimmed.is_empty() {
            // A priming event (2025-11-25) or an empty keep-alive: nothing to judge.
            return EventJudged::with(Rewrite::Forward);
        }
        if trimmed.first() == Some(&b'{') {
            let mark = out.len();
            let (acl, facts) = (&*self.acl, &self.facts);
            let plain = with_list_filters(acl, facts, &mut self.records, |keep| {
                match filter.filter_response(data, ListSet::ALL, keep, out)? {
                    ResponseFilter::Response { lists, changed } => Ok((lists, Some(changed))),
                    ResponseFilter::NotPlain => Ok((ListsOutcome::default(), None)),
                }
            });
            match plain {
                Ok(Some(true)) => return EventJudged::with(Rewrite::Written),
                // Every entry kept (or no list): the event goes as the upstream wrote it.
                Ok(Some(false)) => return EventJudged::with(Rewrite::Forward),
                // Not plainly a response, or not filterable: judged as before (nothing was
                // written, no decision recorded).
                Ok(None) | Err(_) => out.truncate(mark),
            }
        }
        let classified = match classifier.classify(data) {
            Ok(c) => c,
            Err(e) => {
                crate::warn!(
                    "ACL: an upstream event is not JSON-RPC ({}); not relayed",
                    e.message()
                );
                return EventJudged::with(Rewrite::Drop);
            }
        };
        match classified {
            Classified::Single(m) => {
                let mut answers = Vec::new();
                let relay = match self.judge_server_element(data, &m, &mut answers) {
                    Element::Keep => Rewrite::Forward,
                    Element::Replace(d) => {
                        out.extend_from_slice(&d);
                        Rewrite::Written
                    }
                    Element::Drop => Rewrite::Drop,
                };
                EventJudged {
                    relay,
                    answer_upstream: answers.pop(),
                }
            }
            Classified::Batch(messages) => {
                let mut kept: Vec<Vec<u8>> = Vec::with_capacity(messages.len());
                let mut answers = Vec::new();
                let mut changed = false;
                let mut first_decision = None;
                for m in &messages {
                    let element = data.get(m.span.clone()).unwrap_or_default();
                    let rebased = Message {
                        id: m.id.clone().map(|r| {
                            r.start.saturating_sub(m.span.start)..r.end.saturating_sub(m.span.start)
                        }),
                        ..m.clone()
                    };
                    match self.judge_server_element(element, &rebased, &mut answers) {
                        Element::Keep => kept.push(element.to_vec()),
                        Element::Replace(d) => {
                            changed = true;
                            kept.push(d);
                        }
                        Element::Drop => changed = true,
                    }
                    first_decision = first_decision.or(self.server_decision);
                }
                self.server_decision = first_decision;
                let answer_upstream = match answers.len() {
                    0 => None,
                    1 => answers.pop(),
                    _ => Some(join_array(&answers)),
                };
                let relay = match (changed, kept.is_empty()) {
                    (false, _) => Rewrite::Forward,
                    (true, true) => Rewrite::Drop,
                    (true, false) => {
                        out.extend_from_slice(&join_array(&kept));
                        Rewrite::Written
                    }
                };
                EventJudged {
                    relay,
                    answer_upstream,
                }
            }
        }
    }

    /// One server→client message (or batch element; ids in `m` index `data`).
    fn judge_server_element(
        &mut self,
        data: &[u8],
        m: &Message,
        answers: &mut Vec<Vec<u8>>,
    ) -> Element {
        match m.kind {
            Kind::Response => {
                let mut out = Vec::with_capacity(data.len());
                match self.filter_response(data, m, &mut out) {
                    Ok(true) => Element::Replace(out),
                    Ok(false) => Element::Keep,
                    Err(e) => {
                        crate::warn!("list answer cannot be filtered ({e}); replaced by an error");
                        let mut err = Vec::with_capacity(128);
                        error_response(
                            m.id_bytes(data),
                            INTERNAL_ERROR,
                            "the gateway could not filter the upstream's answer",
                            &mut err,
                        );
                        Element::Replace(err)
                    }
                }
            }
            Kind::ErrorResponse => Element::Keep,
            Kind::Request | Kind::Notification => {
                let method = m.method.as_deref().unwrap_or_default();
                let decision = self.acl.decide_server_message(
                    &McpRequest::new(method, acl_target(&m.target)),
                    &self.facts,
                );
                self.server_decision = Some(decision.record());
                if decision.lets_through() {
                    if decision.verdict != Verdict::Allow {
                        self.records.push(decision.record());
                    }
                    return Element::Keep;
                }
                self.records.push(decision.record());
                if let (Kind::Request, Some(e)) = (m.kind, &decision.error) {
                    let mut err = Vec::with_capacity(96);
                    error_response(m.id_bytes(data), e.code, &e.message, &mut err);
                    answers.push(err);
                }
                Element::Drop
            }
        }
    }
}

/// What becomes of one message of an upstream event.
enum Element {
    Keep,
    Replace(Vec<u8>),
    Drop,
}

/// What the relay does with one upstream event's data (with fresh buffers, for the tests).
#[cfg(test)]
#[derive(Debug, PartialEq, Eq)]
pub enum Relay {
    /// Relay it byte for byte.
    Forward,
    /// Relay an event with this data instead (same event type and id).
    Replace(Vec<u8>),
    /// Do not relay it.
    Drop,
}

/// The ACL's verdict on one upstream event (with fresh buffers, for the tests).
#[cfg(test)]
#[derive(Debug, PartialEq, Eq)]
pub struct EventVerdict {
    pub relay: Relay,
    pub answer_upstream: Option<Vec<u8>>,
}

#[cfg(test)]
impl EventVerdict {
    fn forward() -> Self {
        EventVerdict {
            relay: Relay::Forward,
            answer_upstream: None,
        }
    }
    fn drop() -> Self {
        EventVerdict {
            relay: Relay::Drop,
            answer_upstream: None,
        }
    }
}

/// What the relay does with one upstream event's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Relay it byte for byte.
    Forward,
    /// Relay an event with the data appended to the caller's buffer instead (same event type
    /// and id).
    Written,
    /// Do not relay it.
    Drop,
}

/// The ACL's verdict on one upstream event ([`AclExchange::judge_event_into`]).
#[derive(Debug, PartialEq, Eq)]
pub struct EventJudged {
    pub relay: Rewrite,
    /// A JSON-RPC error answer (or a batch of them) to POST to the upstream for server→client
    /// requests the ACL refused.
    pub answer_upstream: Option<Vec<u8>>,
}

impl EventJudged {
    fn with(relay: Rewrite) -> Self {
        EventJudged {
            relay,
            answer_upstream: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_policies::acl::{AclConfig, Outcome, Permission};

    fn exchange(acl: Acl) -> AclExchange {
        AclExchange {
            acl: Arc::new(acl),
            facts: RequestFacts {
                method: "POST",
                ..RequestFacts::default()
            },
            injected: Vec::new(),
            rewritten_body: None,
            upstream_headers: Vec::new(),
            records: Vec::new(),
            server_decision: None,
        }
    }

    fn echo_only() -> AclExchange {
        let json = r#"{"authorizations":[{"authorizedFeatures":[{"type":"TOOLS","methods":["TOOLS_LIST","TOOLS_CALL"],"patternType":"LITERAL","patternValue":"echo"},{"type":"RESOURCES","methods":["RESOURCES_READ"],"patternType":"LITERAL","patternValue":"file:///ok"}]}]}"#;
        exchange(Acl::from_gravitee_json(json).unwrap_or_else(|e| panic!("{e}")))
    }

    fn judged(ex: &mut AclExchange, body: &str) -> Judgment {
        let classified = Classifier::new()
            .classify(body.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        judge(ex, body.as_bytes(), &classified)
    }

    fn raw_body(flow: &Judgment) -> (String, String) {
        match flow.response() {
            Some(response) => {
                let text = String::from_utf8_lossy(&response).into_owned();
                let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
                (head.to_owned(), body.to_owned())
            }
            None => panic!("expected a gateway answer, got {flow:?}"),
        }
    }

    #[test]
    fn refused_request_is_answered_with_its_id_and_recorded() {
        let mut ex = echo_only();
        let flow = judged(
            &mut ex,
            r#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"get-sum"}}"#,
        );
        let (head, body) = raw_body(&flow);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert_eq!(
            body,
            r#"{"jsonrpc":"2.0","id":"a\"b","error":{"code":-32602,"message":"Unknown tool: get-sum"}}"#
        );
        assert_eq!(ex.records.len(), 1);
        assert_eq!(
            ex.records.first().map(|r| r.outcome),
            Some(Outcome::Refused)
        );
    }

    #[test]
    fn a_list_answer_is_filtered_whatever_request_it_answers() {
        let mut ex = echo_only();
        let flow = judged(
            &mut ex,
            r#"{"jsonrpc":"2.0","id":"a7","method":"tools/list"}"#,
        );
        assert_eq!(flow, Judgment::Forward);
        assert!(ex.judges_answer(200));
        assert!(!ex.judges_answer(202) && !ex.judges_answer(404));
        let mut out = Vec::new();
        let answer =
            br#"{"jsonrpc":"2.0","id":"\u0061\u0037","result":{"tools":[{"name":"a"},{"name":"echo"}]}}"#;
        ex.rewrite_json(answer, &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"jsonrpc":"2.0","id":"\u0061\u0037","result":{"tools":[{"name":"echo"}]}}"#
        );
        assert_eq!(ex.records.last().map(|r| r.filtered), Some(1));

        // An id the gateway would not pair (`-0` answered as `0`), a batch, and a list in the
        // answer to a call: each filtered all the same.
        for answer in [
            r#"{"jsonrpc":"2.0","id":0,"result":{"tools":[{"name":"get-sum"},{"name":"echo"}]}}"#,
            r#"[{"jsonrpc":"2.0","id":0,"result":{"tools":[{"name":"get-sum"},{"name":"echo"}]}}]"#,
        ] {
            let mut ex = echo_only();
            judged(
                &mut ex,
                r#"{"jsonrpc":"2.0","id":-0,"method":"tools/call","params":{"name":"echo"}}"#,
            );
            let mut out = Vec::new();
            ex.rewrite_json(answer.as_bytes(), &mut out)
                .unwrap_or_else(|e| panic!("{e}"));
            let text = String::from_utf8_lossy(&out);
            assert!(
                !text.contains("get-sum") && text.contains("echo"),
                "{answer} -> {text}"
            );
        }
        // What is not JSON-RPC cannot be judged: an error, never relayed.
        let mut ex = echo_only();
        assert!(ex.rewrite_json(b"{\"tools\": [", &mut Vec::new()).is_err());
        assert!(ex.rewrite_json(b"<html>", &mut Vec::new()).is_err());
    }

    #[test]
    fn mixed_batch_forwards_the_allowed_elements_only() {
        let mut ex = echo_only();
        let flow = judged(
            &mut ex,
            r#"[ {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}} , {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nope"}} ]"#,
        );
        assert_eq!(flow, Judgment::Forward);
        assert_eq!(
            ex.rewritten_body.as_deref().map(String::from_utf8_lossy),
            Some(
                r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}]"#
                    .into()
            )
        );
        assert_eq!(ex.injected.len(), 1);
        let mut events = Vec::new();
        ex.injected_events(&mut events);
        assert!(
            String::from_utf8_lossy(&events)
                .starts_with("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,"),
            "{}",
            String::from_utf8_lossy(&events)
        );
    }

    #[test]
    fn server_messages_about_hidden_things_are_dropped_or_answered_upstream() {
        let mut ex = echo_only();
        let mut classifier = Classifier::new();
        let hidden = br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///secret"}}"#;
        assert_eq!(
            ex.judge_event(hidden, &mut classifier),
            EventVerdict::drop()
        );
        let outcome = |ex: &AclExchange| ex.server_decision.map(|d| d.outcome);
        assert_eq!(outcome(&ex), Some(Outcome::Dropped));
        let visible = br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///ok"}}"#;
        assert_eq!(
            ex.judge_event(visible, &mut classifier),
            EventVerdict::forward()
        );
        assert_eq!(outcome(&ex), Some(Outcome::Allowed));
        let answer = br#"{"jsonrpc":"2.0","id":3,"result":{}}"#;
        assert_eq!(
            ex.judge_event(answer, &mut classifier),
            EventVerdict::forward()
        );
        assert_eq!(outcome(&ex), None);

        let config = AclConfig {
            server_requests: mcpgate_policies::acl::ServerRequestsConfig {
                sampling: Permission::Deny,
                ..Default::default()
            },
            ..AclConfig::default()
        };
        let mut ex = exchange(Acl::compile(&config, None).unwrap_or_else(|e| panic!("{e}")));
        let sampling =
            br#"{"jsonrpc":"2.0","id":42,"method":"sampling/createMessage","params":{}}"#;
        match ex.judge_event(sampling, &mut classifier) {
            EventVerdict {
                relay: Relay::Drop,
                answer_upstream: Some(answer),
            } => assert_eq!(
                String::from_utf8_lossy(&answer),
                r#"{"jsonrpc":"2.0","id":42,"error":{"code":-32601,"message":"Method not found"}}"#
            ),
            other => panic!("sampling was not refused: {other:?}"),
        }
        assert_eq!(
            ex.server_decision.map(|d| (d.outcome, d.basis)),
            Some((
                Outcome::Refused,
                mcpgate_policies::acl::Basis::ServerRequests
            ))
        );
        let roots = br#"{"jsonrpc":"2.0","id":43,"method":"roots/list"}"#;
        assert_eq!(
            ex.judge_event(roots, &mut classifier),
            EventVerdict::forward()
        );
    }

    #[test]
    fn every_event_carrying_a_list_is_filtered_without_knowing_its_id() {
        let mut ex = echo_only();
        let mut classifier = Classifier::new();
        let answer =
            br#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"x"},{"name":"echo"}]}}"#;
        assert_eq!(
            ex.judge_event(answer, &mut classifier).relay,
            Relay::Replace(
                br#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"echo"}]}}"#.to_vec()
            )
        );
        let other = br#"{"jsonrpc":"2.0","id":10,"result":{"content":[]}}"#;
        assert_eq!(
            ex.judge_event(other, &mut classifier),
            EventVerdict::forward()
        );
        // A batch of answers: each element judged, the array rebuilt.
        let batch = br#"[{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"p"}]}},{"jsonrpc":"2.0","id":2,"result":{}}]"#;
        assert_eq!(
            ex.judge_event(batch, &mut classifier).relay,
            Relay::Replace(
                br#"[{"jsonrpc":"2.0","id":1,"result":{"prompts":[]}},{"jsonrpc":"2.0","id":2,"result":{}}]"#
                    .to_vec()
            )
        );
        // Data that is not JSON-RPC is not relayed; an empty priming event is.
        assert_eq!(
            ex.judge_event(b"{\"result\":", &mut classifier),
            EventVerdict::drop()
        );
        assert_eq!(
            ex.judge_event(b"", &mut classifier),
            EventVerdict::forward()
        );
    }

    /// `get-sum` and `file:///admin` only for callers holding the `tools:admin` scope or the
    /// `role: admin` claim; `echo` for everyone.
    fn admin_only(principal: Option<Principal>) -> AclExchange {
        let json = r#"{"authorizations":[
            {"authorizedFeatures":[{"type":"TOOLS","methods":["TOOLS_LIST","TOOLS_CALL"],"patternType":"LITERAL","patternValue":"echo"}]},
            {"authorizedFeatures":[{"type":"TOOLS","methods":["TOOLS_LIST","TOOLS_CALL"],"patternType":"LITERAL","patternValue":"get-sum"},
                                   {"type":"RESOURCES","methods":["RESOURCES_READ"],"patternType":"LITERAL","patternValue":"file:///admin"}],
             "condition":"'tools:admin' in auth.scopes || auth.claims.role == 'admin'"}]}"#;
        let mut ex = exchange(Acl::from_gravitee_json(json).unwrap_or_else(|e| panic!("{e}")));
        if let Some(p) = principal {
            ex.facts = RequestFacts::with_principal(p);
        }
        ex
    }

    fn principal(scopes: &[&str], claims: serde_json::Value) -> Principal {
        let mut p = Principal::anonymous();
        p.subject = Some("alice".into());
        p.scopes = scopes.iter().map(|s| Box::from(*s)).collect();
        p.claims = claims;
        p
    }

    fn filtered_tools(ex: &mut AclExchange) -> String {
        let flow = judged(ex, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!(flow, Judgment::Forward);
        let answer =
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"get-sum"}]}}"#;
        let mut out = Vec::new();
        ex.rewrite_json(answer, &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out).into_owned()
    }

    fn call_refused(ex: &mut AclExchange, tool: &str) -> bool {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{tool}"}}}}"#
        );
        match judged(ex, &body) {
            Judgment::Forward => false,
            Judgment::Answer { .. } | Judgment::Accepted => true,
        }
    }

    #[test]
    fn auth_conditions_see_the_authenticated_principal() {
        let without = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}]}}"#;
        let with =
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"get-sum"}]}}"#;
        let cases = [
            (None, false),
            (
                Some(principal(&["tools:read"], serde_json::json!({}))),
                false,
            ),
            (
                Some(principal(&["tools:admin"], serde_json::json!({}))),
                true,
            ),
            (
                Some(principal(&[], serde_json::json!({"role": "user"}))),
                false,
            ),
            (
                Some(principal(&[], serde_json::json!({"role": "admin"}))),
                true,
            ),
        ];
        for (p, admin) in cases {
            let label = format!("{p:?}");
            let mut ex = admin_only(p.clone());
            assert_eq!(
                filtered_tools(&mut ex),
                if admin { with } else { without },
                "{label}"
            );
            let mut ex = admin_only(p.clone());
            assert_eq!(call_refused(&mut ex, "get-sum"), !admin, "{label}");
            assert!(!call_refused(&mut ex, "echo"), "{label}");
            // Server→client: an update about a URI only admins may read reaches admins only.
            let mut ex = admin_only(p);
            let update = br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///admin"}}"#;
            let verdict = ex.judge_event(update, &mut Classifier::new());
            let expected = if admin {
                EventVerdict::forward()
            } else {
                EventVerdict::drop()
            };
            assert_eq!(verdict, expected, "{label}");
        }
    }

    #[test]
    fn the_auth_view_is_built_only_for_a_condition_that_reads_it() {
        let admin = principal(&["tools:admin"], serde_json::json!({"role": "admin"}));
        // No condition at all.
        let mut ex = echo_only();
        ex.facts = RequestFacts::with_principal(admin.clone());
        filtered_tools(&mut ex);
        call_refused(&mut ex, "get-sum");
        assert!(ex.facts.auth.get().is_none());
        // A condition reading `request` only.
        let json = r#"{"authorizations":[{"authorizedFeatures":[{"type":"TOOLS","methods":["TOOLS_LIST","TOOLS_CALL"],"patternType":"ANY"}],"condition":"request.method == 'POST'"}]}"#;
        let mut ex = exchange(Acl::from_gravitee_json(json).unwrap_or_else(|e| panic!("{e}")));
        ex.facts = RequestFacts::with_principal(admin.clone());
        call_refused(&mut ex, "get-sum");
        assert!(ex.facts.auth.get().is_none());
        // A condition reading `auth`: built once, from the principal.
        let mut ex = admin_only(Some(admin));
        assert!(!call_refused(&mut ex, "get-sum"));
        assert_eq!(
            ex.facts
                .auth
                .get()
                .and_then(|a| a.as_ref())
                .map(|a| a.subject.as_str()),
            Some("alice")
        );
    }

    #[test]
    fn an_unfilterable_list_answer_becomes_an_error_for_its_id() {
        let mut ex = echo_only();
        let mut classifier = Classifier::new();
        let bad = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":{"name":"x"}}}"#;
        match ex.judge_event(bad, &mut classifier).relay {
            Relay::Replace(data) => {
                let text = String::from_utf8_lossy(&data);
                assert!(
                    text.contains(r#""id":3"#) && text.contains("-32603"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
