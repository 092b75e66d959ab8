//! Event streams the gateway writes itself (a virtual API's answer that carries progress and
//! server→client requests as they happen, and its standalone GET stream): a task on the worker
//! produces JSON-RPC messages into a [`channel`], the exchange writes each as a `message` event,
//! chunked, through the `event_filter` chain (so the ACL judges relayed server→client requests as
//! it judges an upstream's), with a comment every [`KEEPALIVE`] while nothing comes (a client that
//! went away is seen at the next write; the producer is told through
//! [`EventSender::receiver_gone`]).
//!
//! Single-threaded like the worker: `Rc<RefCell<…>>`, no locks.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use mcpgate_codec::http::{encode_chunk, LAST_CHUNK};
use monoio::io::AsyncWriteRent;

use super::io::write_all_within;
use crate::context::RequestCtx;
use crate::phases::{Event, EventStep, Pipeline};

/// A comment is written after this long without an event (proxies and clients that time out idle
/// streams keep it; a client that left is noticed).
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// Messages a producer may queue ahead of a slow client before it waits.
const QUEUE: usize = 256;

/// One message of a local stream.
#[derive(Debug)]
pub enum LocalEvent {
    /// A notification or server→client request (JSON).
    Message(Vec<u8>),
    /// The answer to the client's request: the last event, recorded in the exchange log.
    Answer(Vec<u8>),
}

#[derive(Default)]
struct State {
    queue: VecDeque<LocalEvent>,
    /// The writer waiting for a message.
    reader: Option<Waker>,
    /// Producers waiting for room, or for the writer to go.
    producers: Vec<Waker>,
    /// Live [`EventSender`]s (a GET stream has one per upstream leg); none: the stream ends.
    senders: usize,
    receiver_gone: bool,
}

impl State {
    fn wait_as_producer(&mut self, waker: &Waker) {
        if !self.producers.iter().any(|w| w.will_wake(waker)) {
            self.producers.push(waker.clone());
        }
    }
}

/// The producer's end.
pub struct EventSender(Rc<RefCell<State>>);

/// The writer's end.
pub struct EventReceiver(Rc<RefCell<State>>);

/// A new stream's two ends.
pub fn channel() -> (EventSender, EventReceiver) {
    let state = Rc::new(RefCell::new(State {
        senders: 1,
        ..State::default()
    }));
    (EventSender(Rc::clone(&state)), EventReceiver(state))
}

impl EventSender {
    /// Queues `event`, waiting while the queue is full. `false`: nobody reads any more.
    pub async fn send(&self, event: LocalEvent) -> bool {
        poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            if s.receiver_gone {
                return Poll::Ready(false);
            }
            if s.queue.len() >= QUEUE {
                s.wait_as_producer(cx.waker());
                return Poll::Pending;
            }
            Poll::Ready(true)
        })
        .await
            && {
                let mut s = self.0.borrow_mut();
                s.queue.push_back(event);
                if let Some(w) = s.reader.take() {
                    w.wake();
                }
                true
            }
    }

    /// Completes when the writer is gone (the client left or the exchange ended).
    pub async fn receiver_gone(&self) {
        poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            if s.receiver_gone {
                Poll::Ready(())
            } else {
                s.wait_as_producer(cx.waker());
                Poll::Pending
            }
        })
        .await
    }

    pub fn is_receiver_gone(&self) -> bool {
        self.0.borrow().receiver_gone
    }
}

impl Clone for EventSender {
    fn clone(&self) -> Self {
        self.0.borrow_mut().senders += 1;
        EventSender(Rc::clone(&self.0))
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.senders -= 1;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }
}

impl EventReceiver {
    /// The next message; `None` once the producer is done and the queue is empty.
    pub async fn next(&self) -> Option<LocalEvent> {
        poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            if let Some(event) = s.queue.pop_front() {
                for w in s.producers.drain(..) {
                    w.wake();
                }
                return Poll::Ready(Some(event));
            }
            if s.senders == 0 {
                return Poll::Ready(None);
            }
            s.reader = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.receiver_gone = true;
        s.queue.clear();
        for w in s.producers.drain(..) {
            w.wake();
        }
    }
}

impl std::fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventReceiver")
    }
}

/// A gateway-written event stream: extra response headers, then the events.
#[derive(Debug)]
pub struct LocalStream {
    /// Besides `content-type`, `cache-control` and the framing (`mcp-session-id`, …).
    pub headers: Vec<(&'static str, String)>,
    pub events: EventReceiver,
}

/// How writing a local stream ended.
pub enum StreamEnd {
    /// Every event written and the stream terminated: the connection can serve another request.
    Complete,
    /// The client went away, stopped reading, or the gateway drains: close the connection.
    Cut,
}

/// Writes `stream` to the client: the head (already in `out`, ending with the blank line), then
/// each event through the event filters, chunked.
pub async fn write<W: AsyncWriteRent>(
    ctx: &mut RequestCtx,
    pipeline: &Pipeline,
    stream: LocalStream,
    wr: &mut W,
    out: &mut Vec<u8>,
    draining: impl Fn() -> bool,
) -> StreamEnd {
    let write_limit = ctx.config().gateway.timeouts.client_write;
    ctx.response_started = true;
    ctx.event_stream = true;
    ctx.bytes_to_client += out.len() as u64;
    if write_all_within(wr, out, write_limit).await.is_err() {
        return StreamEnd::Cut;
    }
    let mut event = Vec::with_capacity(512);
    loop {
        let next = monoio::time::timeout(KEEPALIVE, stream.events.next()).await;
        out.clear();
        match next {
            Ok(Some(LocalEvent::Message(data))) => {
                if !filtered_event(ctx, pipeline, &data, &mut event) {
                    continue;
                }
                encode_chunk(&event, out);
            }
            Ok(Some(LocalEvent::Answer(data))) => {
                if filtered_event(ctx, pipeline, &data, &mut event) {
                    encode_chunk(&event, out);
                }
                // The exchange log notes the answer as the gateway's own.
                let mut noted = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
                noted.extend_from_slice(&data);
                pipeline.local_answer(ctx, &noted, None);
            }
            Ok(None) => {
                out.extend_from_slice(LAST_CHUNK);
                ctx.bytes_to_client += out.len() as u64;
                return match write_all_within(wr, out, write_limit).await {
                    Ok(()) => StreamEnd::Complete,
                    Err(_) => StreamEnd::Cut,
                };
            }
            Err(_) if draining() => return StreamEnd::Cut,
            Err(_) => encode_chunk(b": keepalive\n\n", out),
        }
        ctx.bytes_to_client += out.len() as u64;
        if write_all_within(wr, out, write_limit).await.is_err() {
            return StreamEnd::Cut;
        }
    }
}

/// `data` as a `message` event in `event` after the event filters; `false`: dropped.
fn filtered_event(
    ctx: &mut RequestCtx,
    pipeline: &Pipeline,
    data: &[u8],
    event: &mut Vec<u8>,
) -> bool {
    let mut view = Event {
        event_type: Some(b"message"),
        id: None,
        retry: None,
        data: Cow::Borrowed(data),
        upstream_raw: &[],
        is_comment_only: false,
        scratch: pipeline.take_event_scratch(),
    };
    let step = pipeline.event_filter(ctx, &mut view);
    pipeline.give_back_event_scratch(std::mem::take(&mut view.scratch));
    if step == EventStep::Drop {
        return false;
    }
    event.clear();
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(&view.data);
    event.extend_from_slice(b"\n\n");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .block_on(f)
    }

    #[test]
    fn messages_arrive_in_order_then_the_end() {
        block_on(async {
            let (tx, rx) = channel();
            monoio::spawn(async move {
                for i in 0..(QUEUE + 10) {
                    assert!(tx.send(LocalEvent::Message(vec![i as u8])).await);
                }
                assert!(tx.send(LocalEvent::Answer(b"end".to_vec())).await);
            });
            let mut n = 0;
            while let Some(e) = rx.next().await {
                match e {
                    LocalEvent::Message(m) => {
                        assert_eq!(m, [n as u8]);
                        n += 1;
                    }
                    LocalEvent::Answer(a) => assert_eq!(a, b"end"),
                }
            }
            assert_eq!(n, QUEUE + 10);
        });
    }

    #[test]
    fn a_producer_learns_that_the_reader_left() {
        block_on(async {
            let (tx, rx) = channel();
            let waiter = monoio::spawn(async move {
                tx.receiver_gone().await;
                tx.send(LocalEvent::Message(Vec::new())).await
            });
            drop(rx);
            assert!(!waiter.await);
        });
    }
}
