//! The per-worker cache of validated credentials (JWT verifications and introspection answers):
//! bounded, first-in-first-out eviction, and no entry outlives the expiry it was stored with
//! (the token's `exp`, or less). `!Sync` by design: one per worker, no locks.
//!
//! The map is keyed by a 64-bit hash of the token under a per-cache random seed, and each entry
//! keeps the token itself: a hit requires byte equality, so a hash collision can never hand one
//! client another's principal. Because the seed is secret, a client cannot aim a token at a
//! cached entry's bucket, so the (rare) equality compare leaks nothing an attacker can steer.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

/// Default number of entries per cache.
pub const DEFAULT_CAPACITY: usize = 4096;

struct Entry<V> {
    token: Box<[u8]>,
    value: V,
    expires_at: u64,
    seq: u64,
}

/// Hashes are already uniformly distributed: the map uses them as they are.
#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; fold anything else in for completeness.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default, Clone, Copy)]
struct BuildPassThrough;

impl BuildHasher for BuildPassThrough {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

pub struct TokenCache<V> {
    capacity: usize,
    seed: ahash::RandomState,
    map: HashMap<u64, Entry<V>, BuildPassThrough>,
    /// Insertion order for eviction: (key, seq). Stale pairs (entry replaced or removed) are
    /// skipped when popped and compacted away when they pile up.
    order: VecDeque<(u64, u64)>,
    next_seq: u64,
}

impl<V: Clone> TokenCache<V> {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        TokenCache {
            capacity,
            seed: ahash::RandomState::new(),
            // Grow on demand: most workers never see `capacity` distinct tokens.
            map: HashMap::with_capacity_and_hasher(capacity.min(64), BuildPassThrough),
            order: VecDeque::with_capacity(capacity.min(64)),
            next_seq: 0,
        }
    }

    fn key(&self, token: &[u8]) -> u64 {
        self.seed.hash_one(token)
    }

    /// The cached value for `token`, if present and not expired at `now`.
    pub fn get(&mut self, token: &[u8], now: u64) -> Option<V> {
        let key = self.key(token);
        let entry = self.map.get(&key)?;
        if *entry.token != *token {
            return None;
        }
        if now >= entry.expires_at {
            self.map.remove(&key);
            return None;
        }
        Some(entry.value.clone())
    }

    /// Stores `value` for `token` until `expires_at` (exclusive). Already-expired values are not
    /// stored; when full, the oldest entry goes.
    pub fn insert(&mut self, token: &[u8], value: V, expires_at: u64, now: u64) {
        if expires_at <= now {
            return;
        }
        let key = self.key(token);
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.capacity {
                match self.order.pop_front() {
                    Some((old_key, seq)) => {
                        if self.map.get(&old_key).is_some_and(|e| e.seq == seq) {
                            self.map.remove(&old_key);
                        }
                    }
                    // Unreachable while every live entry has its pair in `order`; stay bounded
                    // regardless.
                    None => self.map.clear(),
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.map.insert(
            key,
            Entry {
                token: token.into(),
                value,
                expires_at,
                seq,
            },
        );
        self.order.push_back((key, seq));
        if self.order.len() > 2 * self.capacity {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}
