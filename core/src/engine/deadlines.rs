//! Per-worker deadlines for the waits of client connections and event streams: one small slot
//! per connection (and per stream) in a table the worker owns, checked by one ticker task every
//! [`TICK`] while any slot is armed, instead of a monoio timer per wait. A monoio `Sleep` is 640
//! bytes aligned to 128 and a stream held one for its whole life (thousands of idle GET
//! streams); a slot is 32 bytes. On the request path a `monoio::time::timeout` per read and
//! write registered and removed a timer in monoio's wheel and read the clock each time; arming
//! a slot is a store into the table (and one clock read, none for [`Deadline::until`]).
//!
//! Precision is [`TICK`]: a wait ends between its limit and a tick later. The limits it serves
//! (`client_header`, `keepalive_idle`, `client_body`, `upstream_response_head`, `client_write`,
//! `sse_idle`) are hundreds of milliseconds to minutes.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the armed slots are checked.
pub const TICK: Duration = Duration::from_millis(100);

/// The worker's table of deadlines (see the module's documentation).
#[derive(Default)]
pub struct Deadlines {
    table: RefCell<Table>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    /// Slots no [`Deadline`] holds, reused first.
    free: Vec<usize>,
    /// Slots with a deadline set.
    armed: usize,
    /// A ticker task is running (it stops when nothing is armed).
    ticking: bool,
}

#[derive(Default)]
struct Slot {
    deadline: Option<Instant>,
    /// The deadline passed (set by the ticker, cleared by the next arm).
    fired: bool,
    waker: Option<Waker>,
}

impl Deadlines {
    /// A slot of the table, held by one stream for its life.
    pub fn slot(self: &Rc<Self>) -> Deadline {
        let mut t = self.table.borrow_mut();
        let slot = match t.free.pop() {
            Some(i) => i,
            None => {
                t.slots.push(Slot::default());
                t.slots.len() - 1
            }
        };
        Deadline {
            owner: Rc::clone(self),
            slot,
        }
    }
}

/// One stream's slot: at most one wait at a time is bounded by it.
pub struct Deadline {
    owner: Rc<Deadlines>,
    slot: usize,
}

impl Deadline {
    fn arm(&self, at: Instant) {
        let mut t = self.owner.table.borrow_mut();
        let start_ticker = !t.ticking;
        let Some(slot) = t.slots.get_mut(self.slot) else {
            return;
        };
        let newly = slot.deadline.is_none();
        slot.deadline = Some(at);
        slot.fired = false;
        if newly {
            t.armed += 1;
        }
        if start_ticker {
            t.ticking = true;
            drop(t);
            monoio::spawn(tick(Rc::clone(&self.owner)));
        }
    }

    fn disarm(&self) {
        let mut t = self.owner.table.borrow_mut();
        let Some(slot) = t.slots.get_mut(self.slot) else {
            return;
        };
        let was_armed = slot.deadline.take().is_some();
        slot.fired = false;
        slot.waker = None;
        if was_armed {
            t.armed -= 1;
        }
    }

    /// Ready once the armed deadline passed; otherwise the waker is kept for the ticker.
    fn poll_passed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut t = self.owner.table.borrow_mut();
        let Some(slot) = t.slots.get_mut(self.slot) else {
            return Poll::Ready(());
        };
        if slot.fired {
            return Poll::Ready(());
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => w.clone_from(cx.waker()),
            None => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// `fut` bounded by `limit`; `None` once it passed (the caller then drops `fut`, cancelling
    /// its I/O). Pinned by the caller: taken by value, an async fn keeps the argument and its
    /// pinned move both in its state, doubling the size of the stream's largest wait.
    pub async fn within<F: Future>(&self, limit: Duration, fut: Pin<&mut F>) -> Option<F::Output> {
        self.until(Instant::now() + limit, fut).await
    }

    /// `fut` bounded by the instant `at` (several waits against one deadline read the clock
    /// once); `None` once it passed. `fut` is polled first, as `monoio::time::timeout` does: a
    /// wait whose I/O completed is not lost to a deadline that passed meanwhile.
    pub async fn until<F: Future>(&self, at: Instant, mut fut: Pin<&mut F>) -> Option<F::Output> {
        self.arm(at);
        // Disarmed however the wait ends, dropped unfinished included.
        let _armed = Armed(self);
        poll_fn(|cx| {
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            self.poll_passed(cx).map(|()| None)
        })
        .await
    }
}

struct Armed<'a>(&'a Deadline);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.disarm();
        self.owner.table.borrow_mut().free.push(self.slot);
    }
}

/// Wakes the waits whose deadline passed, every [`TICK`], until nothing is armed.
async fn tick(table: Rc<Deadlines>) {
    let mut due: Vec<Waker> = Vec::new();
    loop {
        monoio::time::sleep(TICK).await;
        let now = Instant::now();
        {
            let mut t = table.table.borrow_mut();
            if t.armed == 0 {
                t.ticking = false;
                return;
            }
            for slot in t.slots.iter_mut() {
                if !slot.fired && slot.deadline.is_some_and(|d| d <= now) {
                    slot.fired = true;
                    due.extend(slot.waker.take());
                }
            }
        }
        // Woken outside the table's borrow: a waker may run code that arms or drops a slot.
        for waker in due.drain(..) {
            waker.wake();
        }
    }
}
