//! The virtual server's merged lists on arbitrary upstream answers (`mcpgate_codec::list_merge`
//! read by `mcpgate_policies::merged_list::ListMerge`): no panic on any bytes, and
//! - `message_parts`: every range it reports lies inside the message, on a value that parses;
//! - the merge, fed as `core` feeds it (the byte path first, a full parse when the byte path
//!   declines), always gives one syntactically valid JSON object;
//! - when every answer is JSON serde_json reads (numbers in range), the merge gives the same JSON
//!   value as the `Value` path alone (what a shared link's parsed answers take).
//!
//! Input: the first byte picks the list kind, the rest is split at NUL bytes into up to three
//! upstreams' `result`s (the first one is also read as a whole message).
use mcpgate_codec::filter::ListKind;
use mcpgate_codec::list_merge::message_parts;
use mcpgate_policies::merged_list::{ListMerge, MergeNote};
use mcpgate_policies::virtual_server::Naming;
use serde::de::IgnoredAny;
use serde_json::Value;

const KINDS: [ListKind; 4] = [
    ListKind::Tools,
    ListKind::Prompts,
    ListKind::Resources,
    ListKind::ResourceTemplates,
];

fn merge(naming: &Naming, kind: ListKind, results: &[&[u8]], raw: bool) -> Vec<u8> {
    let mut merge = ListMerge::new(naming, kind);
    let mut note = |_: MergeNote<'_>| {};
    for (i, r) in results.iter().enumerate() {
        if raw && merge.add_raw(i, r, &mut note).is_ok() {
            continue;
        }
        if let Ok(v) = serde_json::from_slice::<Value>(r) {
            merge.add_value(i, v, &mut note);
        }
    }
    merge.finish()
}

/// The target's body.
pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(selector) % KINDS.len()];
    let results: Vec<&[u8]> = rest.split(|&b| b == 0).take(3).collect();
    if let Some(first) = results.first() {
        if let Ok(parts) = message_parts(first) {
            for range in [parts.id, parts.result, parts.error].into_iter().flatten() {
                let value = first.get(range.clone());
                assert!(value.is_some(), "range {range:?} outside the message");
                let parsed = value.map(serde_json::from_slice::<IgnoredAny>);
                assert!(
                    matches!(parsed, Some(Ok(_))),
                    "range {range:?} is not one value"
                );
            }
        }
    }
    let naming = Naming {
        upstreams: ["a", "up-2", "c.3"]
            .iter()
            .take(results.len())
            .map(|s| s.to_string())
            .collect(),
        separator: "__".into(),
    };
    let merged = merge(&naming, kind, &results, true);
    assert!(
        serde_json::from_slice::<IgnoredAny>(&merged).is_ok(),
        "merged list is not JSON: {}",
        String::from_utf8_lossy(&merged)
    );
    assert_eq!(merged.first(), Some(&b'{'));
    if results
        .iter()
        .all(|r| serde_json::from_slice::<Value>(r).is_ok())
    {
        let fast: Value = serde_json::from_slice(&merged).unwrap_or(Value::Null);
        let slow_bytes = merge(&naming, kind, &results, false);
        let slow: Value = serde_json::from_slice(&slow_bytes).unwrap_or(Value::Null);
        assert_eq!(fast, slow, "byte and Value merges differ");
    }
}
