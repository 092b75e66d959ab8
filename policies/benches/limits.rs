//! The node-scope limiter's hot path, and the alternative it was chosen over: a GCRA decision on
//! a key's shared `AtomicU64` cell through the worker's local cache (one CAS), against the same
//! decision under a mutex-guarded map, on one thread and with 2 threads hitting one key (the
//! worst case: every decision contends). `cargo bench -p mcpgate-policies --bench limits`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mcpgate_policies::limits::store::{LocalCache, NodeStore};
use mcpgate_policies::limits::{Period, Quota, Rate};

/// A rate that never refuses: what is measured is the decision, not the refusal path.
fn rate() -> Rate {
    match Rate::new(1_000_000_000, Duration::from_secs(1), 1_000_000_000) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64 + 1
}

fn single_thread(c: &mut Criterion) {
    let rate = rate();
    let epoch = Instant::now();
    let mut g = c.benchmark_group("limits_1_thread");
    g.bench_function("gcra_decide_pure", |b| {
        let mut tat = 0;
        b.iter(|| {
            let (next, out) = rate.decide(tat, now_ns(epoch), 1);
            tat = next.unwrap_or(tat);
            black_box(out)
        })
    });
    let quota = match Quota::new(u32::MAX, Period::Day) {
        Ok(q) => q,
        Err(e) => panic!("{e}"),
    };
    g.bench_function("quota_decide_pure", |b| {
        let mut v = 0;
        b.iter(|| {
            let (next, out) = quota.decide(v, 1_700_000_000_000, 1);
            v = next.map_or(0, |n| n & 0xffff_ffff_0000_0000);
            black_box(out)
        })
    });
    let store = NodeStore::new(100_000);
    let mut local = LocalCache::new(16 * 1024);
    g.bench_function("node_store_hot_key", |b| {
        b.iter(|| {
            let now = now_ns(epoch);
            black_box(store.update(&mut local, black_box(42), now + 1, |tat| {
                rate.decide(tat, now, 1)
            }))
        })
    });
    let keys: Vec<u64> = (0..10_000u64)
        .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let mut i = 0;
    g.bench_function("node_store_10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let now = now_ns(epoch);
            black_box(store.update(&mut local, keys[i], now + 1, |tat| rate.decide(tat, now, 1)))
        })
    });
    let map: Mutex<HashMap<u64, u64>> = Mutex::new(HashMap::new());
    g.bench_function("mutex_map_hot_key", |b| {
        b.iter(|| {
            let now = now_ns(epoch);
            let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
            let tat = m.entry(black_box(42)).or_insert(0);
            let (next, out) = rate.decide(*tat, now, 1);
            if let Some(n) = next {
                *tat = n;
            }
            black_box(out)
        })
    });
    g.finish();
}

/// `threads` threads each doing `per_thread` decisions on one key; the time of the slowest.
fn contended(threads: usize, per_thread: u64, decide: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let decide = Arc::clone(&decide);
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for _ in 0..per_thread {
                    decide();
                }
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .max()
        .unwrap_or_default()
}

fn two_threads(c: &mut Criterion) {
    let rate = rate();
    let epoch = Instant::now();
    let mut g = c.benchmark_group("limits_2_threads_one_key");
    let store = Arc::new(NodeStore::new(100_000));
    g.bench_function("node_store_cas", |b| {
        b.iter_custom(|iters| {
            let store = Arc::clone(&store);
            let per_thread = iters.div_ceil(2);
            // Each thread's own local cache, as each worker has its own.
            contended(
                2,
                per_thread,
                Arc::new(move || {
                    thread_local! {
                        static LOCAL: std::cell::RefCell<LocalCache> =
                            std::cell::RefCell::new(LocalCache::new(1024));
                    }
                    LOCAL.with(|l| {
                        let now = now_ns(epoch);
                        black_box(store.update(&mut l.borrow_mut(), 42, now + 1, |tat| {
                            rate.decide(tat, now, 1)
                        }));
                    })
                }),
            )
        })
    });
    let map: Arc<Mutex<HashMap<u64, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    g.bench_function("mutex_map", |b| {
        b.iter_custom(|iters| {
            let map = Arc::clone(&map);
            contended(
                2,
                iters.div_ceil(2),
                Arc::new(move || {
                    let now = now_ns(epoch);
                    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
                    let tat = m.entry(42).or_insert(0);
                    if let (Some(n), _) = rate.decide(*tat, now, 1) {
                        *tat = n;
                    }
                }),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, single_thread, two_threads);
criterion_main!(benches);
