//! The integrity feature's per-worker state for one API under one configuration snapshot (owned
//! by `snapshot::ApiState`, so a reload starts with an empty cache): the list cache, the fetches
//! other requests wait on (single flight), and this worker's view of the pin findings. Built on
//! the API's first request under the snapshot (it needs the process-wide registry, which the
//! snapshot does not hold). Never borrowed across an `.await`.

use std::cell::{Cell, OnceCell, Ref, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use mcpgate_codec::list_answer::write_answer;
use mcpgate_policies::integrity::cache::{AuthContext, CacheStats, ListCache, ListKey, ScopeKey};
use mcpgate_policies::integrity::pin::OnChange;

use super::registry::{CacheCounters, PinBook, PinView, UpstreamShared};
use crate::config::ApiCache;

/// Lazily built (see the module docs).
#[derive(Default)]
pub struct IntegrityApiState {
    cell: OnceCell<ApiIntegrity>,
}

impl IntegrityApiState {
    pub fn get_or_init(&self, init: impl FnOnce() -> ApiIntegrity) -> &ApiIntegrity {
        self.cell.get_or_init(init)
    }
}

pub struct ApiIntegrity {
    pub upstream: Arc<UpstreamShared>,
    pub cache: Option<CacheState>,
    pub pins: Option<PinHandle>,
}

/// In-flight fetches by page.
pub type Flights = Rc<RefCell<HashMap<ListKey, Rc<Flight>>>>;

pub struct CacheState {
    pub config: ApiCache,
    store: RefCell<ListCache>,
    pub flights: Flights,
    pub counters: Arc<CacheCounters>,
    /// The store's counts already added to `counters`.
    seen: Cell<CacheStats>,
}

impl CacheState {
    pub fn new(config: ApiCache, counters: Arc<CacheCounters>) -> Self {
        counters.entries.store(0, Ordering::Relaxed);
        counters.bytes.store(0, Ordering::Relaxed);
        CacheState {
            store: RefCell::new(ListCache::new(config.max_entries, config.max_bytes)),
            config,
            flights: Rc::default(),
            counters,
            seen: Cell::new(CacheStats::default()),
        }
    }

    /// Writes the cached answer for `key` (this context's private entry first, then the public
    /// one) with the client's request id into `out`; `false` on a miss.
    pub fn answer_into(
        &self,
        key: &ListKey,
        auth: AuthContext,
        epoch: u64,
        now: Instant,
        id_raw: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut store = self.store.borrow_mut();
        let mut found = false;
        for scope in [ScopeKey::Private(auth), ScopeKey::Public] {
            // Key clones only on a lookup, which already costs a hash of the same bytes.
            if let Some(result) = store.get(&(key.clone(), scope), now, epoch) {
                write_answer(id_raw, result, out);
                found = true;
                break;
            }
        }
        drop(store);
        self.sync();
        found
    }

    pub fn insert(
        &self,
        key: ListKey,
        scope: ScopeKey,
        result: &[u8],
        expires: Instant,
        epoch: u64,
    ) -> bool {
        let kept = self
            .store
            .borrow_mut()
            .insert((key, scope), result.into(), expires, epoch);
        self.sync();
        kept
    }

    /// Moves the store's eviction counts and sizes into the counters the scrape reads.
    fn sync(&self) {
        let store = self.store.borrow();
        let now = store.stats();
        let before = self.seen.replace(now);
        let c = &self.counters;
        c.evicted
            .fetch_add(now.evicted - before.evicted, Ordering::Relaxed);
        c.expired
            .fetch_add(now.expired - before.expired, Ordering::Relaxed);
        c.invalidated
            .fetch_add(now.invalidated - before.invalidated, Ordering::Relaxed);
        c.entries.store(
            i64::try_from(store.len()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        c.bytes.store(
            i64::try_from(store.bytes()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// A fetch of one page other requests may wait on.
#[derive(Default)]
pub struct Flight {
    done: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

/// Held (in the request's context) by the request that fetches a page: dropping it — the
/// answer cached, or the exchange over without one — wakes the requests waiting on it.
pub struct FlightGuard {
    key: ListKey,
    flight: Rc<Flight>,
    flights: Flights,
}

impl FlightGuard {
    /// Registers a fetch of `key`; `None` when one is already under way.
    pub fn start(flights: &Flights, key: &ListKey) -> Option<FlightGuard> {
        let mut map = flights.borrow_mut();
        if map.contains_key(key) {
            return None;
        }
        let flight = Rc::new(Flight::default());
        map.insert(key.clone(), Rc::clone(&flight));
        Some(FlightGuard {
            key: key.clone(),
            flight,
            flights: Rc::clone(flights),
        })
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.flights.try_borrow_mut() {
            if map
                .get(&self.key)
                .is_some_and(|f| Rc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.key);
            }
        }
        self.flight.done.set(true);
        for waker in self.flight.wakers.borrow_mut().drain(..) {
            waker.wake();
        }
    }
}

/// Completes when the fetch it waits on is over (whatever its outcome).
pub struct FlightWait(pub Rc<Flight>);

impl Future for FlightWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.done.get() {
            return Poll::Ready(());
        }
        let mut wakers = self.0.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// An API's pins as this worker applies them.
pub struct PinHandle {
    pub book: Arc<PinBook>,
    pub policy: OnChange,
    pub prompts: bool,
    view: RefCell<PinView>,
}

impl PinHandle {
    pub fn new(book: Arc<PinBook>, policy: OnChange, prompts: bool) -> Self {
        PinHandle {
            view: RefCell::new(book.view()),
            book,
            policy,
            prompts,
        }
    }

    /// The findings as of now (read again from the book only when its version moved).
    pub fn view(&self) -> Ref<'_, PinView> {
        let version = self.book.version();
        if self.view.borrow().version != version {
            *self.view.borrow_mut() = self.book.view();
        }
        self.view.borrow()
    }
}
