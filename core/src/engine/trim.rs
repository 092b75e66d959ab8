//! Gives the heap's free pages back to the kernel once a burst of long-lived event streams has
//! started (`malloc_trim(0)`), once per burst and per worker, never per request.
//!
//! Why: a stream's start allocates and touches large transient buffers (the client and upstream
//! read buffers, the answer buffer, the boxed request loop, ~46 KB together) and frees them once
//! its head left, while the small allocations the stream keeps for its whole life are placed
//! among them. glibc keeps the freed pages resident (it returns only the top of a heap on its
//! own), so thousands of idle streams kept about 2 KB each of freed but touched memory.
//! `malloc_trim(0)` `madvise`s the whole free pages inside every arena away. It walks the free
//! chunks, a millisecond or so for a heap of tens of MB, so it runs only after the burst is
//! quiet.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long no stream may start before the burst counts as over.
const QUIET: Duration = Duration::from_secs(1);

/// A burst that never goes quiet (streams starting every second forever) is trimmed after this.
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// The worker's trim state: starts counted since the last trim, and whether a trim is scheduled.
#[derive(Default)]
pub struct Trimmer {
    state: Rc<State>,
}

#[derive(Default)]
struct State {
    started: Cell<u64>,
    scheduled: Cell<bool>,
}

impl Trimmer {
    /// A long-lived stream started (its transient buffers are freed or about to be): schedules
    /// a trim for when the starts go quiet, unless one is already scheduled.
    pub fn stream_started(&self) {
        let state = &self.state;
        state.started.set(state.started.get().wrapping_add(1));
        if cfg!(all(target_os = "linux", target_env = "gnu")) && !state.scheduled.replace(true) {
            monoio::spawn(trim_when_quiet(Rc::clone(state)));
        }
    }
}

async fn trim_when_quiet(state: Rc<State>) {
    let first = Instant::now();
    loop {
        let seen = state.started.get();
        monoio::time::sleep(QUIET).await;
        if state.started.get() == seen || first.elapsed() >= LONGEST_WAIT {
            break;
        }
    }
    // Starts after this point schedule the next trim.
    state.scheduled.set(false);
    trim();
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free memory of the allocator's arenas (taking each
        // arena's lock); no pointer of ours is involved.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
