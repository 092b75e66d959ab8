//! The node-wide store of a rule's per-key state: one `AtomicU64` cell per key (a GCRA TAT or a
//! packed quota count), shared by every worker thread of the process, with a bounded number of
//! keys.
//!
//! Hot path without a lock: each worker keeps its own [`LocalCache`] from key to cell, so a key
//! it has seen before costs a worker-local hash lookup and one compare-and-swap loop on the
//! shared cell — exact across workers, since all of them update the same atomic. Only a key new
//! to this worker takes its shard's mutex, to find or create the cell.
//!
//! Bounded memory: past its capacity a shard evicts one cell, chosen among a few sampled ones
//! (Redis's approximated LRU): an idle cell first (one whose state is "full budget": forgetting it
//! loses nothing), else the stalest (lowest TAT, or oldest period). An evicted cell is marked
//! [`EVICTED`] so a worker still holding it in its local cache notices on its next update and
//! fetches the new one. Evictions are counted for the metric.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The value of a cell that left the store.
pub const EVICTED: u64 = u64::MAX;
/// Cells looked at to pick one to evict.
const EVICTION_SAMPLE: usize = 8;
/// Keys a shard is meant to hold at least, so small stores are not split thinly.
const MIN_KEYS_PER_SHARD: usize = 64;
const MAX_SHARDS: usize = 64;

/// One key's state.
#[derive(Debug, Default)]
pub struct Cell(AtomicU64);

/// The cell left the store (see [`EVICTED`]): fetch the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cell was evicted")]
pub struct Evicted;

impl Cell {
    pub fn load(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// The compare-and-swap loop: `decide(current)` returns the value to store (`None`: leave
    /// it) and a result. `Err(Evicted)` when the cell was evicted (fetch the current one and
    /// retry).
    #[inline]
    pub fn update<R>(&self, mut decide: impl FnMut(u64) -> (Option<u64>, R)) -> Result<R, Evicted> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if current == EVICTED {
                return Err(Evicted);
            }
            let (next, result) = decide(current);
            let Some(next) = next else {
                return Ok(result);
            };
            // A decision never stores EVICTED (TATs and packed quotas stay below it).
            let next = next.min(EVICTED - 1);
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(result),
                Err(seen) => current = seen,
            }
        }
    }
}

/// Keys are 64-bit hashes already: the maps use them as they are.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdentityMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

#[derive(Default)]
struct Shard {
    index: IdentityMap<usize>,
    slots: Vec<(u64, Arc<Cell>)>,
    rng: u64,
}

impl Shard {
    fn next_random(&mut self) -> u64 {
        // xorshift64*: only spreads the sample, needs no quality.
        let mut x = self.rng | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Drops one cell: an idle one among a sample if any, else the stalest of the sample.
    fn evict_one(&mut self, idle_below: u64) {
        let len = self.slots.len();
        if len == 0 {
            return;
        }
        let mut victim = None::<(usize, u64)>;
        for k in 0..EVICTION_SAMPLE.min(len) {
            // A small shard is scanned whole; a big one sampled.
            let i = if len <= EVICTION_SAMPLE {
                k
            } else {
                (self.next_random() % len as u64) as usize
            };
            let value = self.slots.get(i).map_or(0, |(_, c)| c.load());
            if value < idle_below {
                victim = Some((i, value));
                break;
            }
            if victim.is_none_or(|(_, v)| value < v) {
                victim = Some((i, value));
            }
        }
        let Some((i, _)) = victim else { return };
        let (key, cell) = self.slots.swap_remove(i);
        cell.0.store(EVICTED, Ordering::Release);
        self.index.remove(&key);
        if let Some((moved, _)) = self.slots.get(i) {
            self.index.insert(*moved, i);
        }
    }
}

/// A rule's cells, shared by every worker of the process (`Send + Sync`).
pub struct NodeStore {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    evictions: AtomicU64,
    len: AtomicUsize,
}

impl std::fmt::Debug for NodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStore")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .field("len", &self.len())
            .finish()
    }
}

impl NodeStore {
    /// A store holding at most about `capacity` keys (rounded up to a multiple of its shard
    /// count).
    pub fn new(capacity: usize) -> NodeStore {
        let capacity = capacity.max(1);
        let shards = (capacity / MIN_KEYS_PER_SHARD)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        let per_shard = capacity.div_ceil(shards);
        NodeStore {
            shards: (0..shards)
                .map(|i| {
                    Mutex::new(Shard {
                        rng: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
                        ..Shard::default()
                    })
                })
                .collect(),
            per_shard,
            evictions: AtomicU64::new(0),
            len: AtomicUsize::new(0),
        }
    }

    /// Keys held right now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys it holds.
    pub fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// Keys dropped to make room for new ones since the store was made.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// The cell of `key`, created when missing (under the shard's lock). `idle_below`: values
    /// below it are "full budget" (see the module doc), preferred when a cell must go.
    fn shared_cell(&self, key: u64, idle_below: u64) -> Arc<Cell> {
        // High bits pick the shard, so the shard's map still sees well-spread low bits.
        let shard_index = (key >> 58) as usize % self.shards.len();
        let Some(shard) = self.shards.get(shard_index) else {
            return Arc::new(Cell::default());
        };
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&i) = shard.index.get(&key) {
            if let Some((_, cell)) = shard.slots.get(i) {
                return Arc::clone(cell);
            }
        }
        if shard.slots.len() >= self.per_shard {
            shard.evict_one(idle_below);
            self.evictions.fetch_add(1, Ordering::Relaxed);
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        let cell = Arc::new(Cell::default());
        let i = shard.slots.len();
        shard.slots.push((key, Arc::clone(&cell)));
        shard.index.insert(key, i);
        self.len.fetch_add(1, Ordering::Relaxed);
        cell
    }

    /// Runs `decide` on `key`'s cell (see [`Cell::update`]) through the worker's `local` cache.
    #[inline]
    pub fn update<R>(
        &self,
        local: &mut LocalCache,
        key: u64,
        idle_below: u64,
        mut decide: impl FnMut(u64) -> (Option<u64>, R),
    ) -> R {
        loop {
            let cell = match local.map.get(&key) {
                Some(cell) => Arc::clone(cell),
                None => {
                    let cell = self.shared_cell(key, idle_below);
                    local.insert(key, Arc::clone(&cell));
                    cell
                }
            };
            match cell.update(&mut decide) {
                Ok(result) => return result,
                // Evicted meanwhile: forget it here and fetch (or create) the live one.
                Err(Evicted) => {
                    local.map.remove(&key);
                }
            }
        }
    }
}

/// One worker's map from key to cell for one store (no lock: it is the worker's own). Bounded:
/// cleared when full, since the shared store can always hand the cells out again.
#[derive(Debug)]
pub struct LocalCache {
    map: IdentityMap<Arc<Cell>>,
    capacity: usize,
}

impl LocalCache {
    pub fn new(capacity: usize) -> LocalCache {
        LocalCache {
            map: IdentityMap::default(),
            capacity: capacity.max(1),
        }
    }

    fn insert(&mut self, key: u64, cell: Arc<Cell>) {
        if self.map.len() >= self.capacity {
            self.map.clear();
        }
        self.map.insert(key, cell);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::limits::gcra::Rate;
    use std::time::Duration;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_shareable() {
        assert_send_sync::<NodeStore>();
    }

    /// N threads (the workers), each with its own local cache, hammer one key: exactly `burst`
    /// are allowed, never one more.
    #[test]
    fn exact_across_threads() {
        let store = Arc::new(NodeStore::new(1000));
        let rate = Rate::new(100, Duration::from_secs(3600), 100).unwrap();
        let allowed = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                let allowed = Arc::clone(&allowed);
                std::thread::spawn(move || {
                    let mut local = LocalCache::new(16);
                    for _ in 0..1000 {
                        let ok = store.update(&mut local, 42, 1, |tat| {
                            let (next, out) = rate.decide(tat, 1, 1);
                            (next, out.allowed)
                        });
                        if ok {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(allowed.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn capacity_is_held_and_evictions_counted() {
        let store = NodeStore::new(10);
        let mut local = LocalCache::new(4);
        for key in 0..100u64 {
            store.update(
                &mut local,
                key.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                0,
                |_| (Some(5), ()),
            );
            assert!(store.len() <= store.capacity());
        }
        assert_eq!(store.len(), store.capacity());
        assert_eq!(store.evictions(), 100 - store.capacity() as u64);
        assert!(local.len() <= 4);
    }

    /// A worker holding an evicted cell notices and uses the live one: the count stays exact.
    #[test]
    fn an_evicted_cell_is_noticed_by_a_worker_that_cached_it() {
        let store = NodeStore::new(1);
        let mut a = LocalCache::new(8);
        let mut b = LocalCache::new(8);
        store.update(&mut a, 1, 0, |v| (Some(v + 1), ()));
        // Key 2 takes the only slot: key 1's cell is evicted while `a` still holds it.
        store.update(&mut b, 2, 0, |v| (Some(v + 1), ()));
        assert_eq!(store.evictions(), 1);
        let seen = store.update(&mut a, 1, 0, |v| (Some(v + 1), v));
        assert_eq!(seen, 0, "the evicted cell's value must not be used");
    }

    #[test]
    fn idle_cells_are_evicted_first() {
        let store = NodeStore::new(2);
        let mut local = LocalCache::new(8);
        store.update(&mut local, 10, 0, |_| (Some(100), ()));
        store.update(&mut local, 20, 0, |_| (Some(5), ()));
        // Values below 50 are idle: key 20 goes, key 10 (busy) stays.
        store.update(&mut local, 30, 50, |_| (Some(200), ()));
        let mut fresh = LocalCache::new(8);
        assert_eq!(store.update(&mut fresh, 10, 50, |v| (None, v)), 100);
    }
}
