//! The list cache's byte-level reads against serde_json as the reference: a request's cursor is
//! what serde_json decodes; a cached `result` rebuilt with another id is the same JSON value
//! with that id; whitespace and member order do not change what is read.
#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is the point

use mcpgate_codec::filter::ListKind;
use mcpgate_codec::list_answer::{list_answer, list_request, write_answer, TtlMs};
use proptest::prelude::*;
use serde_json::{json, Value};

fn id_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        "[a-z0-9 \"\\\\\u{e9}]{0,10}".prop_map(Value::String),
    ]
}

proptest! {
    #[test]
    fn the_cursor_is_what_serde_json_reads(cursor in proptest::option::of("[ -~\u{e9}\u{1F600}\n]{0,20}"), pretty in any::<bool>()) {
        let mut params = json!({"_meta": {"progressToken": 1}});
        if let Some(c) = &cursor {
            params["cursor"] = Value::String(c.clone());
        }
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params});
        let text = if pretty { serde_json::to_string_pretty(&request).unwrap() } else { request.to_string() };
        let read = list_request(text.as_bytes()).unwrap();
        prop_assert_eq!(read.cursor, cursor);
    }

    #[test]
    fn an_answer_rebuilt_with_another_id_is_the_same_result(
        old_id in id_strategy(),
        new_id in id_strategy(),
        names in prop::collection::vec("[a-z_]{1,8}", 0..6),
        ttl in proptest::option::of(0u64..1_000_000),
        scope in proptest::option::of(prop_oneof![Just("public"), Just("private")]),
        pretty in any::<bool>(),
    ) {
        let tools: Vec<Value> = names.iter().map(|n| json!({"name": n, "inputSchema": {"type": "object"}})).collect();
        let mut result = json!({"tools": tools});
        if let Some(t) = ttl { result["ttlMs"] = json!(t); }
        if let Some(s) = scope { result["cacheScope"] = json!(s); }
        let answer = json!({"jsonrpc": "2.0", "id": old_id, "result": result});
        let text = if pretty { serde_json::to_string_pretty(&answer).unwrap() } else { answer.to_string() };
        let parts = list_answer(text.as_bytes()).unwrap().unwrap();
        prop_assert!(parts.lists.contains(ListKind::Tools));
        prop_assert_eq!(parts.ttl_ms, ttl.map_or(TtlMs::Absent, TtlMs::Millis));
        prop_assert_eq!(parts.cache_scope.as_deref(), scope);
        let id_raw = &text.as_bytes()[parts.id.clone().unwrap()];
        prop_assert_eq!(serde_json::from_slice::<Value>(id_raw).unwrap(), old_id);
        let new_id_raw = new_id.to_string();
        let mut rebuilt = Vec::new();
        write_answer(Some(new_id_raw.as_bytes()), &text.as_bytes()[parts.result.clone()], &mut rebuilt);
        let rebuilt: Value = serde_json::from_slice(&rebuilt).unwrap();
        prop_assert_eq!(rebuilt, json!({"jsonrpc": "2.0", "id": new_id, "result": result}));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = list_request(&bytes);
        let _ = list_answer(&bytes);
    }
}
