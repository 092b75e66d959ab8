//! One worker: a thread, optionally pinned to a core, running a monoio runtime (io_uring, or epoll)
//! over its own SO_REUSEPORT listener. Owns everything per-worker: the upstream pool, the pipeline
//! (its features and their scratch), the current configuration snapshot with this worker's state
//! for it, the connection and in-flight counters.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::deadlines::Deadlines;
use super::shared::Shared;
use super::trim::Trimmer;
use super::upstream::Pool;
use crate::features::{
    acl::Acl, auth::Auth, integrity::Integrity, limits::Limits, observe::Observe,
    protocol::Protocol, routing::Routing, virtual_server::VirtualServer,
};
use crate::observe::ObserveHub;
use crate::phases::{Features, Pipeline};
use crate::snapshot::Snapshot;

pub struct Worker {
    pub shared: Arc<Shared>,
    /// The snapshot new requests are served under (requests in flight hold theirs).
    snapshot: RefCell<Rc<Snapshot>>,
    pub pool: RefCell<Pool>,
    pub pipeline: Pipeline,
    pub connections: Cell<usize>,
    pub in_flight: Cell<usize>,
    /// The deadlines of the worker's event streams (one ticker for all of them).
    pub deadlines: Rc<Deadlines>,
    /// Gives the heap's free pages back after a burst of stream starts.
    pub trim: Trimmer,
    drain_waiters: DrainWaiters,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, hub: &ObserveHub) -> Worker {
        let recording = shared.config().log.gateway.enabled;
        let features = Features {
            auth: Auth,
            routing: Routing,
            protocol: Protocol,
            acl: Acl::default(),
            limits: Limits::default(),
            integrity: Integrity::new(Arc::clone(&shared.integrity)),
            virtual_server: VirtualServer::default(),
            observe: Observe::new(hub, recording),
        };
        // Generation first: a reload racing with this read is then seen by the next request.
        let generation = shared.generation();
        let snapshot = Rc::new(Snapshot::prepare(shared.config(), generation));
        Worker {
            snapshot: RefCell::new(snapshot),
            shared,
            pool: RefCell::new(Pool::new()),
            pipeline: Pipeline::new(features),
            connections: Cell::new(0),
            in_flight: Cell::new(0),
            deadlines: Rc::default(),
            trim: Trimmer::default(),
            drain_waiters: DrainWaiters::default(),
        }
    }

    /// The snapshot for the next request: after a reload, this worker's state for the new
    /// configuration is prepared whole, then committed; the old one lives on with the requests
    /// that hold it.
    pub fn snapshot(&self) -> Rc<Snapshot> {
        let generation = self.shared.generation();
        let mut current = self.snapshot.borrow_mut();
        if current.generation != generation {
            *current = Rc::new(Snapshot::prepare(self.shared.config(), generation));
        }
        Rc::clone(&current)
    }

    pub fn draining(&self) -> bool {
        self.shared.draining()
    }

    /// Wakes every task waiting in [`Worker::drained`] (the accept loop saw the drain).
    pub fn fire_drain(&self) {
        self.drain_waiters.fire();
    }

    /// Completes when the gateway drains. Woken by the worker's own drain poll, so thousands of
    /// idle streams waiting on it cost no timer each.
    pub fn drained(&self) -> Drained<'_> {
        Drained {
            worker: self,
            key: None,
        }
    }
}

/// The tasks waiting in [`Worker::drained`], woken all at once when the worker sees the drain.
#[derive(Default)]
struct DrainWaiters {
    fired: Cell<bool>,
    next_key: Cell<u64>,
    wakers: RefCell<HashMap<u64, Waker>>,
}

impl DrainWaiters {
    fn fire(&self) {
        self.fired.set(true);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers.into_values() {
            waker.wake();
        }
    }
}

/// See [`Worker::drained`]; deregisters itself when dropped unfinished.
pub struct Drained<'a> {
    worker: &'a Worker,
    key: Option<u64>,
}

impl Future for Drained<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let worker = self.worker;
        let waiters = &worker.drain_waiters;
        if waiters.fired.get() || worker.draining() {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = waiters.next_key.get();
                waiters.next_key.set(key.wrapping_add(1));
                key
            }
        };
        let mut wakers = waiters.wakers.borrow_mut();
        match wakers.get_mut(&key) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => w.clone_from(cx.waker()),
            None => {
                wakers.insert(key, cx.waker().clone());
            }
        }
        drop(wakers);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Drained<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.worker.drain_waiters.wakers.borrow_mut().remove(&key);
        }
    }
}

/// Marks a request in flight for the drain on shutdown; decrements on drop, whatever the outcome.
pub struct InFlight(Rc<Worker>);

impl InFlight {
    pub fn new(worker: &Rc<Worker>) -> Self {
        worker.in_flight.set(worker.in_flight.get() + 1);
        InFlight(worker.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
    }
}
