//! The only state shared between threads: the current configuration snapshot (swapped whole on
//! reload) and the lifecycle flags. Workers keep their own `Arc` of the snapshot and look at the
//! generation counter once per request; the mutex is taken only when it moved.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::Config;

pub struct Shared {
    /// Tool integrity's process-wide state (list epochs, pin findings, cache counters).
    pub integrity: Arc<crate::features::integrity::Registry>,
    generation: AtomicU64,
    current: Mutex<Arc<Config>>,
    draining: AtomicBool,
    ready: AtomicBool,
}

impl Shared {
    pub fn new(config: Config) -> Self {
        crate::features::virtual_server::shared::reconcile(&config);
        Shared {
            integrity: Arc::default(),
            generation: AtomicU64::new(0),
            current: Mutex::new(Arc::new(config)),
            draining: AtomicBool::new(false),
            ready: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn replace_config(&self, config: Config) {
        // Shared (stdio, legacy SSE) upstreams a reload added start, those it removed are stopped.
        crate::features::virtual_server::shared::reconcile(&config);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Replaces the snapshot only if it is still `expected` (a background update must not undo
    /// a reload that happened while it was being built). Returns whether it replaced it.
    pub fn replace_config_if_current(&self, expected: &Arc<Config>, config: Config) -> bool {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&current, expected) {
            return false;
        }
        crate::features::virtual_server::shared::reconcile(&config);
        *current = Arc::new(config);
        // Bumped under the lock, like `replace_config` is observed: a worker that sees the new
        // generation then reads the new snapshot.
        self.generation.fetch_add(1, Ordering::Release);
        true
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.draining()
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_default, Overrides};

    #[test]
    fn replacements_move_the_generation_and_a_stale_update_is_refused() {
        let cfg = load_default(&Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        let shared = Shared::new(cfg.clone());
        let first = shared.config();
        let g0 = shared.generation();
        let mut next = cfg.clone();
        next.source = "reloaded".into();
        shared.replace_config(next);
        assert_eq!(shared.generation(), g0 + 1);
        assert_eq!(shared.config().source, "reloaded");
        // A background update built from the first snapshot must not undo the reload.
        assert!(!shared.replace_config_if_current(&first, cfg));
        assert_eq!(shared.config().source, "reloaded");
        assert_eq!(shared.generation(), g0 + 1);
    }
}
