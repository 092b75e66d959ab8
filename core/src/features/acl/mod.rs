//! The MCP ACL as a feature of the request path (docs/acl.md): `decide` judges every client
//! message against the API's compiled ACL (refused requests answered here, refused batch elements
//! cut out of the forwarded body); on the way back every answer that may carry a list is judged
//! whole (`body_filter`) and every event of a stream one by one (`event_filter`), and a refused
//! server→client request is answered to the upstream in the background.
//!
//! An API without an ACL costs one `Option` check per phase: nothing is classified, buffered or
//! copied for it.

pub mod exchange;

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::{Duration, Instant};

use mcpgate_codec::filter::ListFilter;
use mcpgate_codec::http::RequestWriter;
use mcpgate_codec::jsonrpc::Classifier;
use monoio::io::AsyncWriteRentExt;

use crate::config::Upstream;
use crate::context::{HttpMethod, RequestCtx};
use crate::engine::io::read_more;
use crate::engine::upstream;
use crate::errors::{Error, ErrorKind};
use crate::phases::{Answer, Body, BufferedAnswer, Event, EventStep, Phases, Request, Step};
use exchange::{AclExchange, Judgment, Rewrite};
use mcpgate_codec::http::HttpError;

/// The ACL feature, with the classifier and list filter it uses for upstream events (per
/// worker: their scratch is reused from one event to the next).
#[derive(Default)]
pub struct Acl {
    classifier: RefCell<Classifier>,
    filter: RefCell<ListFilter>,
}

impl Phases for Acl {
    /// Judges the POST body's messages (every request of an API with an ACL gets its exchange
    /// state: GET streams are judged too).
    async fn decide(&self, ctx: &mut RequestCtx, req: Request<'_>, body: Body<'_>) -> Step {
        let Some(acl) = ctx.api().and_then(|a| a.acl.as_ref()).map(|a| a.0.clone()) else {
            return Step::Continue;
        };
        let mut ex = AclExchange::new(
            acl,
            ctx.method.as_str(),
            req.path(),
            req.head.headers(req.buf),
            ctx.peer.ip(),
            ctx.principal.clone(),
        );
        ex.facts.tls = ctx.tls.clone();
        let judgment = if ctx.method == HttpMethod::Post && !body.bytes.is_empty() {
            match body.message {
                None => exchange::refuse_unreadable(body.bytes, &mut self.classifier.borrow_mut()),
                Some(classified) => exchange::judge(&mut ex, body.bytes, classified),
            }
        } else {
            Judgment::Forward
        };
        if let Some(forwarded) = ex.rewritten_body.take() {
            ctx.forward_body = Some(forwarded);
        }
        ctx.acl = Some(Box::new(ex));
        match judgment.response() {
            Some(response) => Step::Answer(Answer::Raw {
                response,
                close: false,
            }),
            None => Step::Continue,
        }
    }

    fn buffers_body(&self, ctx: &RequestCtx, status: u16) -> bool {
        ctx.acl.as_ref().is_some_and(|a| a.judges_answer(status))
    }

    /// Filters every list the answer carries and merges a batch's refusals; an answer that is
    /// not JSON-RPC cannot be judged and is not relayed (502).
    fn body_filter(
        &self,
        ctx: &mut RequestCtx,
        answer: &mut BufferedAnswer<'_>,
    ) -> Result<(), Error> {
        let Some(acl) = ctx.acl.as_deref_mut() else {
            return Ok(());
        };
        if !acl.judges_answer(answer.status) {
            return Ok(());
        }
        // 202 / 204 carry no JSON-RPC answer (the legacy transport's POST reply says "Accepted").
        let no_answer = matches!(answer.status, 202 | 204) || answer.body.trim_ascii().is_empty();
        if no_answer && acl.injected.is_empty() {
            return Ok(());
        }
        if !(200..300).contains(&answer.status) && acl.injected.is_empty() {
            return Ok(());
        }
        let input: &[u8] = if no_answer { &[] } else { &answer.body };
        let mut rewritten = Vec::with_capacity(input.len() + 64);
        if let Err(e) = acl.rewrite_json(input, &mut rewritten) {
            crate::warn!("upstream answer cannot be judged by the ACL ({e}); answered 502 instead");
            return Err(ErrorKind::UpstreamMalformed(HttpError::Malformed(
                "answer cannot be filtered",
            ))
            .into());
        }
        if no_answer {
            // The upstream accepted the forwarded part of a batch whose other elements were
            // refused: the gateway's errors are the answer.
            answer.gateway_answers = true;
            answer.status = 200;
            answer.body = Cow::Owned(rewritten);
        } else if rewritten != *answer.body {
            answer.body = Cow::Owned(rewritten);
        }
        Ok(())
    }

    /// Refusals of a batch's elements lead the stream of its answers.
    fn events_start(&self, ctx: &mut RequestCtx, out: &mut Vec<u8>) {
        if let Some(acl) = ctx.acl.as_deref_mut() {
            acl.injected_events(out);
        }
    }

    fn event_filter(&self, ctx: &mut RequestCtx, event: &mut Event<'_>) -> EventStep {
        let Some(acl) = ctx.acl.as_deref_mut() else {
            return EventStep::Relay;
        };
        if event.jsonrpc_data().is_none() {
            return EventStep::Relay;
        }
        // A rewrite goes into the buffer the relay lends each event (the worker's), not a fresh
        // one: the relay writes it out from there and takes it back.
        let mut rewritten = event.take_scratch();
        let data = event.jsonrpc_data().unwrap_or_default();
        let verdict = acl.judge_event_into(
            data,
            &mut self.classifier.borrow_mut(),
            &mut self.filter.borrow_mut(),
            &mut rewritten,
        );
        if let Some(answer) = verdict.answer_upstream {
            let config = &ctx.snapshot.config;
            match ctx.api.and_then(|i| config.apis.get(i)) {
                // A virtual API's relayed request: the refusal goes to the leg that asked.
                Some(api) if api.virtual_server.is_some() => {
                    crate::features::virtual_server::answer_refused(ctx, answer)
                }
                Some(api) => answer_upstream(
                    &api.upstream,
                    &acl.upstream_headers,
                    answer,
                    config.gateway.timeouts.upstream_connect,
                ),
                None => {}
            }
        }
        match verdict.relay {
            Rewrite::Forward => {
                event.give_back_scratch(rewritten);
                EventStep::Relay
            }
            Rewrite::Written => {
                event.data = Cow::Owned(rewritten);
                EventStep::Relay
            }
            Rewrite::Drop => {
                event.give_back_scratch(rewritten);
                EventStep::Drop
            }
        }
    }
}

/// Answers a server→client request the ACL refused: POSTs `answer` (a JSON-RPC error, or a batch
/// of them) to the upstream's MCP endpoint with the client's session headers, in the background.
/// Nothing waits for it; a failure is logged.
fn answer_upstream(
    upstream: &Upstream,
    session_headers: &[(&'static str, Vec<u8>)],
    answer: Vec<u8>,
    limit: Duration,
) {
    let mut request = Vec::with_capacity(answer.len() + 256);
    let mut writer =
        RequestWriter::new(&mut request, "POST", &upstream.path, &upstream.host_header);
    writer
        .header("content-type", b"application/json")
        .header("accept", b"application/json, text/event-stream");
    for (name, value) in session_headers {
        writer.header(name, value);
    }
    writer.header("connection", b"close");
    if let Err(e) = writer.finish(&answer) {
        crate::warn!("ACL: cannot answer the upstream's refused request: {e}");
        return;
    }
    let addrs = upstream.addrs.clone();
    let tls = upstream.tls.clone();
    monoio::spawn(async move {
        let deadline = Instant::now() + limit;
        let mut conn = match upstream::connect(&addrs, limit, tls.as_ref()).await {
            Ok(conn) => conn,
            Err(e) => {
                crate::warn!("ACL: cannot answer the upstream's refused request: {e}");
                return;
            }
        };
        let (res, _) = conn.stream.write_all(request).await;
        if let Err(e) = res {
            crate::warn!("ACL: cannot answer the upstream's refused request: {e}");
            return;
        }
        // Read the status line so the upstream is not reset mid-request; the answer is ignored.
        let wait = deadline.saturating_duration_since(Instant::now());
        let _ = read_more(&mut conn.stream, &mut conn.buf, wait).await;
    });
}
