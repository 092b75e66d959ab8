//! Tool integrity, properties: the canonical digest does not see key order or whitespace but
//! sees every value; the diff is empty exactly when the digests agree; the list cache never
//! exceeds its bounds and serves what it was given until its TTL or epoch says otherwise.
#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is the point

use std::time::{Duration, Instant};

use mcpgate_codec::filter::ListKind;
use mcpgate_codec::list_answer::TtlMs;
use mcpgate_policies::integrity::cache::{ttl_of, ListCache, ListKey, ScopeKey, TtlRules};
use mcpgate_policies::integrity::canonical::{canonical, digest};
use mcpgate_policies::integrity::diff::diff;
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1.0e6f64..1.0e6).prop_map(Value::from),
        "[a-z \"\\\\\u{e9}\u{1F600}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Writes `v` as JSON with object members in an order drawn from `order` and whitespace drawn
/// from `spaces`, strings with every `a` escaped as `\u0061`.
fn scrambled(v: &Value, order: &mut impl Iterator<Item = u32>, out: &mut String) {
    let ws = |out: &mut String, n: u32| {
        for _ in 0..(n % 3) {
            out.push(if n % 2 == 0 { ' ' } else { '\n' });
        }
    };
    match v {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // A deterministic shuffle driven by the drawn numbers.
            for i in (1..members.len()).rev() {
                let j = order.next().unwrap_or(0) as usize % (i + 1);
                members.swap(i, j);
            }
            out.push('{');
            for (i, (k, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out, order.next().unwrap_or(0));
                out.push_str(&serde_json::to_string(k).unwrap().replace('a', "\\u0061"));
                out.push(':');
                ws(out, order.next().unwrap_or(0));
                scrambled(item, order, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out, order.next().unwrap_or(0));
                scrambled(item, order, out);
            }
            out.push(']');
        }
        Value::String(s) => {
            out.push_str(&serde_json::to_string(s).unwrap().replace('a', "\\u0061"))
        }
        other => out.push_str(&other.to_string()),
    }
}

proptest! {
    #[test]
    fn the_digest_ignores_order_whitespace_and_escapes(v in json_value(), seed in prop::collection::vec(any::<u32>(), 64)) {
        let mut text = String::new();
        scrambled(&v, &mut seed.into_iter().cycle(), &mut text);
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(canonical(&v), canonical(&reparsed));
        prop_assert_eq!(digest(&v), digest(&reparsed));
        // The canonical text is itself JSON for the same value.
        let back: Value = serde_json::from_str(&canonical(&v)).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn the_diff_is_empty_exactly_when_the_digests_agree(a in json_value(), b in json_value()) {
        let same_digest = digest(&a) == digest(&b);
        prop_assert_eq!(diff(&a, &b).is_empty(), same_digest);
        prop_assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn the_ttl_never_exceeds_the_maximum(ms in any::<u64>(), default_ms in 0u64..10_000_000, max_ms in 1u64..10_000_000) {
        let rules = TtlRules { default: Duration::from_millis(default_ms), max: Duration::from_millis(max_ms) };
        for ttl in [TtlMs::Millis(ms), TtlMs::Absent] {
            if let Some(d) = ttl_of(ttl, rules) {
                prop_assert!(d <= rules.max && !d.is_zero());
            }
        }
        prop_assert_eq!(ttl_of(TtlMs::Millis(0), rules), None);
    }

    #[test]
    fn the_cache_stays_within_its_bounds(
        ops in prop::collection::vec((0u8..3, 0u8..12, 0usize..400, 0u64..3), 1..200),
        max_entries in 1usize..8,
        max_bytes in 200usize..2000,
    ) {
        let mut cache = ListCache::new(max_entries, max_bytes);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let key = |k: u8| (
            ListKey { kind: ListKind::Tools, cursor: Some(k.to_string().into()), protocol_version: None, capabilities: 0 },
            ScopeKey::Public,
        );
        for (op, k, len, epoch) in ops {
            match op {
                0 | 1 => {
                    let value = vec![k; len].into_boxed_slice();
                    let kept = cache.insert(key(k), value, later, epoch);
                    if kept {
                        // Just inserted: found, with its bytes, until evicted.
                        let got = cache.get(&key(k), now, epoch).map(<[u8]>::to_vec);
                        prop_assert_eq!(got, Some(vec![k; len]));
                    }
                }
                _ => {
                    if let Some(v) = cache.get(&key(k), now, epoch) {
                        prop_assert!(v.iter().all(|b| *b == k));
                    }
                }
            }
            prop_assert!(cache.len() <= max_entries);
            prop_assert!(cache.bytes() <= max_bytes);
        }
    }
}
