//! What a virtual API relays as it happens, over its Streamable HTTP legs and shared links:
//! - a routed request (`tools/call`, `prompts/get`, a prompt's completion) whose client accepts an
//!   event stream is answered on one ([`call`]): the upstream's progress, logging and
//!   server→client requests (sampling, elicitation, roots) reach the client as they come, then
//!   the answer;
//! - the client's standalone GET stream ([`listen`]) merges every leg's GET stream, and tells the
//!   client `list_changed` when a leg's upstream goes away or comes back (its names leave or
//!   rejoin the merged lists);
//! - the client's answers to relayed requests go back to the upstream that asked
//!   ([`answer_upstream`]).
//!
//! A server→client request's id is rewritten to `mcpgate:<upstream>:<id>`
//! (`mcpgate_policies::virtual_server::relayed_id`), so the answer is routed by whichever worker
//! or replica receives it; notifications pass unchanged (each client has its own session on each
//! HTTP upstream, so progress tokens and request ids are the client's own).

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use mcpgate_codec::sse::{event_data, SseParser};
use mcpgate_policies::virtual_server::{relayed_id, Leg};
use serde_json::{json, Value};

use std::sync::Arc;

use super::health;
use super::shared::{Call, CallEvent, Listener};
use crate::engine::http_client::{self, StreamingResponse, MAX_BODY};
use crate::engine::local_stream::{self, EventSender, LocalEvent};

/// One leg of the client's session on one Streamable HTTP upstream.
#[derive(Debug, Clone)]
pub struct LegTarget {
    pub api: String,
    pub upstream: String,
    pub url: String,
    pub leg: Leg,
}

impl LegTarget {
    /// The leg's session headers, then `extra`.
    fn headers<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        leg_headers(Some(&self.leg), extra)
    }
}

/// `extra`, then `leg`'s session id and protocol version (those it has).
pub fn leg_headers<'a>(
    leg: Option<&'a Leg>,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut headers = extra.to_vec();
    if let Some(leg) = leg {
        if !leg.session.is_empty() {
            headers.push(("mcp-session-id", leg.session.as_str()));
        }
        if !leg.version.is_empty() {
            headers.push(("mcp-protocol-version", leg.version.as_str()));
        }
    }
    headers
}

/// The JSON messages of a whole event-stream body (one per `message` event).
pub fn stream_messages(body: &[u8]) -> Result<Vec<Value>, String> {
    Events::new(MAX_BODY).feed(body)
}

/// A whole event stream's `message` events, their data unparsed (a merged list reads the
/// answer's bytes), in order; the same events [`stream_messages`] parses.
pub fn stream_data(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    Events::new(MAX_BODY).feed_with(body, |data| out.push(data.to_vec()))?;
    Ok(out)
}

use super::shared::LIST_CHANGED;

/// Waits between attempts to reopen a leg's GET stream.
const REOPEN_MIN: Duration = Duration::from_millis(250);
const REOPEN_MAX: Duration = Duration::from_secs(5);
/// A GET stream of an upstream silent this long is taken for dead and reopened (the gateway's
/// default `sse_idle`).
const STREAM_IDLE: Duration = Duration::from_secs(300);

/// An upstream's message as the client sees it: a server→client request with its id relayed,
/// a notification unchanged; `None` for anything else (an answer to no request of the client's).
pub fn relayed_message(upstream: &str, mut message: Value) -> Option<Vec<u8>> {
    message.get("method")?;
    if let Some(id) = message.get("id").cloned() {
        message["id"] = relayed_id(upstream, &id);
    }
    serde_json::to_vec(&message).ok()
}

/// Events of an upstream's event stream, as JSON messages, fed piece by piece.
struct Events {
    parser: SseParser,
    pending: Vec<u8>,
    /// The last event id seen (to resume with `Last-Event-ID`) and the last `retry` (ms).
    last_id: Option<String>,
    retry: Option<u64>,
}

impl Events {
    fn new(max_event: usize) -> Self {
        Events {
            parser: SseParser::with_max_event(max_event),
            pending: Vec::new(),
            last_id: None,
            retry: None,
        }
    }

    /// Adds `piece`; the complete events' messages (data that is not JSON is skipped).
    fn feed(&mut self, piece: &[u8]) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        self.feed_with(piece, |data| {
            if let Ok(m) = serde_json::from_slice(data) {
                out.push(m);
            }
        })?;
        Ok(out)
    }

    /// Adds `piece`; `each` gets the data of every complete `message` event, unparsed.
    fn feed_with(&mut self, piece: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), String> {
        self.pending.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            let rest = self.pending.get(pos..).unwrap_or_default();
            match self.parser.next_event(rest) {
                Ok(Some((event, used))) => {
                    pos += used;
                    if let Some(id) = event.id_value(rest) {
                        self.last_id = Some(String::from_utf8_lossy(id).into_owned());
                    }
                    if event.retry.is_some() {
                        self.retry = event.retry;
                    }
                    let is_message = matches!(event.event_type(rest), None | Some(b"message"));
                    if is_message && !event.is_comment_only {
                        each(event_data(&event, rest));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(format!("a malformed event stream: {e}")),
            }
        }
        self.pending.drain(..pos.min(self.pending.len()));
        Ok(())
    }
}

/// Sends a routed request (the client's id, names unprefixed) on `target` and reads the
/// response head: what [`follow_call`] relays. `Err(SESSION_LOST)` when the upstream no longer
/// knows the leg's session (the caller opens a new leg and tries again).
pub async fn open_call(
    target: &LegTarget,
    message: &[u8],
    idle: Duration,
) -> Result<StreamingResponse, String> {
    let headers = target.headers(&[
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ]);
    let mut response = http_client::open_stream("POST", &target.url, &headers, message, idle)
        .await
        .map_err(|e| e.to_string())?;
    if response.status != 200 {
        let body = whole_body(&mut response, idle).await.unwrap_or_default();
        if !target.leg.session.is_empty() && super::session_lost(response.status, &body) {
            return Err(super::SESSION_LOST.to_string());
        }
        return Err(format!("HTTP {}", response.status));
    }
    Ok(response)
}

/// Producer of a routed request's event stream: relays what `response` ([`open_call`]) brings
/// until the answer. An upstream that fails is answered for with a JSON-RPC error under the
/// client's id.
pub async fn follow_call(
    tx: EventSender,
    target: LegTarget,
    side: Option<StreamingResponse>,
    opened: Result<StreamingResponse, String>,
    client_id: Value,
    idle: Duration,
) {
    // The side stream's reader stops when `stop` (this call's) goes.
    let (stop_tx, stop) = local_stream::channel();
    if let Some(side) = side {
        monoio::spawn(follow_side_stream(
            tx.clone(),
            stop_tx,
            target.upstream.clone(),
            side,
        ));
    } else {
        drop(stop_tx);
    }
    let outcome = match opened {
        Ok(response) => relay_call(&tx, &target, response, &client_id, idle).await,
        Err(why) => Err(why),
    };
    drop(stop);
    health::note(&target.api, &target.upstream, outcome.is_ok());
    if let Err(why) = outcome {
        crate::warn!(
            "virtual API {}: upstream {} failed a relayed call: {why}",
            target.api,
            target.upstream
        );
        let error = json!({"jsonrpc": "2.0", "id": client_id, "error": {
            "code": -32603,
            "message": format!("upstream `{}` is unavailable: {why}", target.upstream),
        }});
        let _ = tx
            .send(LocalEvent::Answer(
                serde_json::to_vec(&error).unwrap_or_default(),
            ))
            .await;
    }
}

async fn relay_call(
    tx: &EventSender,
    target: &LegTarget,
    mut response: StreamingResponse,
    client_id: &Value,
    idle: Duration,
) -> Result<(), String> {
    let is_answer = |m: &Value| {
        &m["id"] == client_id && (m.get("result").is_some() || m.get("error").is_some())
    };
    if !response.is_event_stream() {
        let body = whole_body(&mut response, idle).await?;
        let messages = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(all)) => all,
            Ok(one) => vec![one],
            Err(e) => return Err(format!("an answer that is not JSON: {e}")),
        };
        let answer = messages
            .into_iter()
            .find(is_answer)
            .ok_or("no answer to the request in the upstream's response")?;
        let _ = tx
            .send(LocalEvent::Answer(
                serde_json::to_vec(&answer).unwrap_or_default(),
            ))
            .await;
        return Ok(());
    }
    let mut events = Events::new(MAX_BODY);
    let mut resumed = 0;
    loop {
        let piece = match response.next(idle).await.map_err(|e| e.to_string())? {
            Some(piece) => piece,
            None => {
                // Ended before the answer: an upstream that gave its events ids may have closed
                // the stream on purpose (SEP-1699 polling) and answers on a resumed one.
                let last_id = events.last_id.clone();
                let Some(last_id) = last_id.filter(|_| resumed < MAX_RESUMES) else {
                    return Err("the upstream's stream ended before the answer".into());
                };
                resumed += 1;
                let wait = Duration::from_millis(events.retry.unwrap_or(0).min(MAX_RETRY_MS));
                monoio::time::sleep(wait).await;
                response = resume(target, &last_id, idle).await?;
                continue;
            }
        };
        for m in events.feed(&piece)? {
            if is_answer(&m) {
                let answer = serde_json::to_vec(&m).unwrap_or_default();
                let _ = tx.send(LocalEvent::Answer(answer)).await;
                // The stream ends after the answer: read its end so the connection is kept.
                while let Ok(Some(_)) = response.next(Duration::from_millis(200)).await {}
                return Ok(());
            }
            if let Some(relayed) = relayed_message(&target.upstream, m) {
                if !tx.send(LocalEvent::Message(relayed)).await {
                    return Ok(()); // the client left; the upstream's answer is of no use now
                }
            }
        }
    }
}

/// How often a call's stream is resumed after its upstream closed it before the answer.
const MAX_RESUMES: u32 = 5;
/// The longest `retry` an upstream may ask the gateway to wait before resuming.
const MAX_RETRY_MS: u64 = 5_000;

/// Resumes a call's stream the upstream closed: `GET` with `Last-Event-ID`.
async fn resume(
    target: &LegTarget,
    last_id: &str,
    idle: Duration,
) -> Result<StreamingResponse, String> {
    let headers = target.headers(&[("accept", "text/event-stream"), ("last-event-id", last_id)]);
    let response = http_client::open_stream("GET", &target.url, &headers, b"", idle)
        .await
        .map_err(|e| format!("resuming its stream: {e}"))?;
    if response.status != 200 || !response.is_event_stream() {
        return Err(format!("resuming its stream: HTTP {}", response.status));
    }
    Ok(response)
}

async fn whole_body(response: &mut StreamingResponse, idle: Duration) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(piece) = response.next(idle).await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&piece);
        if body.len() > MAX_BODY {
            return Err(format!("an answer larger than {MAX_BODY} bytes"));
        }
    }
    Ok(body)
}

/// Producer of the client's GET stream over `targets`: each leg's own GET stream relayed while
/// the client stays; `list_changed` when a leg goes away or comes back.
pub async fn listen(
    tx: EventSender,
    targets: Vec<LegTarget>,
    links: Vec<(String, Arc<Listener>)>,
    open_limit: Duration,
) {
    let mut tasks = Vec::new();
    for target in targets {
        let tx = tx.clone();
        tasks.push(monoio::spawn(async move {
            listen_leg(&tx, &target, open_limit).await;
        }));
    }
    for (upstream, listener) in links {
        let tx = tx.clone();
        tasks.push(monoio::spawn(async move {
            listen_link(&tx, &upstream, &listener).await;
        }));
    }
    drop(tx);
    for task in tasks {
        task.await;
    }
}

/// Relays what a shared link (stdio, legacy SSE) broadcasts to its API's clients, while the
/// client stays.
async fn listen_link(tx: &EventSender, upstream: &str, listener: &Listener) {
    loop {
        let message = match first_of(listener.next(), tx.receiver_gone()).await {
            Either::Left(message) => message,
            Either::Right(()) => return,
        };
        if let Some(relayed) = relayed_message(upstream, message) {
            if !tx.send(LocalEvent::Message(relayed)).await {
                return;
            }
        }
    }
}

/// Producer of a routed request's event stream over a shared link: its progress and the
/// server→client requests taken to be about it as they come, then the answer under the
/// client's id. `idle`: the longest wait for the next of them.
pub async fn follow_link_call(
    tx: EventSender,
    api: String,
    upstream: String,
    mut call: Call,
    client_id: Value,
    idle: Duration,
) {
    let outcome = loop {
        let event =
            match first_of(monoio::time::timeout(idle, call.next()), tx.receiver_gone()).await {
                Either::Left(Ok(event)) => event,
                Either::Left(Err(_)) => break Err(format!("nothing from it for {idle:?}")),
                Either::Right(()) => return, // the client left: dropping the call forgets it
            };
        match event {
            CallEvent::Note(note) => {
                if let Some(relayed) = relayed_message(&upstream, note) {
                    if !tx.send(LocalEvent::Message(relayed)).await {
                        return;
                    }
                }
            }
            CallEvent::Answer(Ok(mut answer)) => {
                answer["id"] = client_id.clone();
                let bytes = serde_json::to_vec(&answer).unwrap_or_default();
                let _ = tx.send(LocalEvent::Answer(bytes)).await;
                break Ok(());
            }
            CallEvent::Answer(Err(e)) => break Err(e.to_string()),
        }
    };
    health::note(&api, &upstream, outcome.is_ok());
    if let Err(why) = outcome {
        crate::warn!("virtual API {api}: upstream {upstream} failed a relayed call: {why}");
        let error = json!({"jsonrpc": "2.0", "id": client_id, "error": {
            "code": -32603,
            "message": format!("upstream `{upstream}` is unavailable: {why}"),
        }});
        let _ = tx
            .send(LocalEvent::Answer(
                serde_json::to_vec(&error).unwrap_or_default(),
            ))
            .await;
    }
}

/// How one attempt to follow a leg's GET stream ended.
enum LegEnd {
    /// The upstream has no GET stream (405) or no longer knows the session (404/400).
    Never,
    /// The stream ended or broke; `reached`: the upstream answered at all.
    Lost { reached: bool },
    /// The client left.
    ClientGone,
}

async fn listen_leg(tx: &EventSender, target: &LegTarget, open_limit: Duration) {
    let mut wait = REOPEN_MIN;
    let mut up = true;
    loop {
        let end = match first_of(follow_leg(tx, target, open_limit), tx.receiver_gone()).await {
            Either::Left(end) => end,
            Either::Right(()) => return,
        };
        let reached = match end {
            LegEnd::ClientGone => return,
            // Back, but without this session (it restarted): the next request opens a new
            // leg (`VirtualServer::rejoin`), so its names return to the lists.
            LegEnd::Never if !up => {
                crate::info!(
                    "virtual API {}: upstream {} is back (a new session on the next request)",
                    target.api,
                    target.upstream
                );
                send_list_changed(tx).await;
                return;
            }
            LegEnd::Never => return,
            LegEnd::Lost { reached } => reached,
        };
        if reached {
            wait = REOPEN_MIN;
        }
        if reached != up {
            up = reached;
            crate::info!(
                "virtual API {}: upstream {} {} a client's stream",
                target.api,
                target.upstream,
                if up { "is back on" } else { "dropped out of" }
            );
            if !send_list_changed(tx).await {
                return;
            }
        }
        if let Either::Right(()) = first_of(monoio::time::sleep(wait), tx.receiver_gone()).await {
            return;
        }
        wait = (wait * 2).min(REOPEN_MAX);
    }
}

/// Tells the client every merged list may have changed; `false`: it left.
async fn send_list_changed(tx: &EventSender) -> bool {
    for method in LIST_CHANGED {
        let note = json!({"jsonrpc": "2.0", "method": method});
        let bytes = serde_json::to_vec(&note).unwrap_or_default();
        if !tx.send(LocalEvent::Message(bytes)).await {
            return false;
        }
    }
    true
}

/// One life of a leg's GET stream.
async fn follow_leg(tx: &EventSender, target: &LegTarget, open_limit: Duration) -> LegEnd {
    let headers = target.headers(&[("accept", "text/event-stream")]);
    let mut response =
        match http_client::open_stream("GET", &target.url, &headers, b"", open_limit).await {
            Ok(r) => r,
            Err(e) => {
                crate::debug!(
                    "virtual API {}: GET stream of {}: {e}",
                    target.api,
                    target.upstream
                );
                return LegEnd::Lost { reached: false };
            }
        };
    match response.status {
        200 if response.is_event_stream() => {}
        405 | 404 | 400 => return LegEnd::Never,
        _ => return LegEnd::Lost { reached: true },
    }
    relay_get_stream(tx, &target.upstream, &mut response).await
}

/// Relays an open GET stream's messages until it ends or breaks (`Lost`), or the client leaves.
/// A stream silent for [`STREAM_IDLE`] is taken for dead (a read given up is not resumed: its
/// bytes may be lost, so the connection goes with it).
async fn relay_get_stream(
    tx: &EventSender,
    upstream: &str,
    response: &mut StreamingResponse,
) -> LegEnd {
    let mut events = Events::new(MAX_BODY);
    loop {
        let Ok(Some(piece)) = response.next(STREAM_IDLE).await else {
            return LegEnd::Lost { reached: true };
        };
        let Ok(messages) = events.feed(&piece) else {
            return LegEnd::Lost { reached: true };
        };
        for m in messages {
            if let Some(relayed) = relayed_message(upstream, m) {
                if !tx.send(LocalEvent::Message(relayed)).await {
                    return LegEnd::ClientGone;
                }
            }
        }
    }
}

/// Opens a leg's standalone GET stream for the first streamed call a worker makes in a session:
/// a server that sends a call's requests on that stream (the specification says they SHOULD go
/// on the call's own) would otherwise lose them while the client's own GET is not open yet —
/// the SDK clients open it right after `initialize` without waiting, racing their first call.
/// `None`: the upstream has no such stream, or one is open already (409: the client's).
pub async fn open_side_stream(target: &LegTarget, limit: Duration) -> Option<StreamingResponse> {
    let headers = target.headers(&[("accept", "text/event-stream")]);
    let response = http_client::open_stream("GET", &target.url, &headers, b"", limit)
        .await
        .ok()?;
    (response.status == 200 && response.is_event_stream()).then_some(response)
}

/// Relays a side stream ([`open_side_stream`]) into a call's event stream until `stop`'s reader
/// is dropped (the call is over) or the client leaves.
async fn follow_side_stream(
    tx: EventSender,
    stop: EventSender,
    upstream: String,
    mut side: StreamingResponse,
) {
    let _ = first_of(
        relay_get_stream(&tx, &upstream, &mut side),
        stop.receiver_gone(),
    )
    .await;
}

/// The client's answer to a relayed request (its id already the upstream's own), POSTed to the
/// upstream that asked.
pub async fn answer_upstream(
    target: &LegTarget,
    answer: &Value,
    limit: Duration,
) -> Result<(), String> {
    let body = serde_json::to_vec(answer).map_err(|e| e.to_string())?;
    let headers = target.headers(&[
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ]);
    let response = http_client::request_kept_alive("POST", &target.url, &headers, &body, limit)
        .await
        .map_err(|e| e.to_string())?;
    match response.status {
        200..=299 => Ok(()),
        other => Err(format!("HTTP {other}")),
    }
}

pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Whichever of `a` and `b` completes first (the other is dropped).
pub async fn first_of<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_relayed_ids_and_notifications_pass() {
        let request = json!({"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{}});
        let out: Value = serde_json::from_slice(&relayed_message("a", request).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(out["id"], "mcpgate:a:3");
        let note =
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1}});
        let out: Value =
            serde_json::from_slice(&relayed_message("a", note.clone()).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(out, note);
        assert!(relayed_message("a", json!({"jsonrpc":"2.0","id":1,"result":{}})).is_none());
    }

    #[test]
    fn events_split_across_pieces_yield_whole_messages() {
        let mut events = Events::new(1 << 20);
        let stream = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\r\n\r\n: c\n\ndata: {\"id\":1,\r\ndata: \"result\":{}}\n\n";
        let mut seen = Vec::new();
        for piece in stream.chunks(7) {
            seen.extend(events.feed(piece).unwrap_or_default());
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[1]["id"], 1);
    }
}
