//! List filter: byte preservation, fail-closed entries, and a serde_json reference model.
#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is the point

use mcpgate_codec::filter::{FilterError, FilterOutcome, ListFilter, ListKind, ListSet};
use proptest::prelude::*;
use serde_json::Value;

fn run(
    input: &str,
    kind: ListKind,
    keep: impl FnMut(&str) -> bool,
) -> Result<(String, FilterOutcome), FilterError> {
    let mut out = b"prefix:".to_vec();
    let outcome = ListFilter::new().filter(input.as_bytes(), kind, keep, &mut out)?;
    assert!(out.starts_with(b"prefix:"), "filter appends");
    Ok((String::from_utf8(out[7..].to_vec()).unwrap(), outcome))
}

#[test]
fn method_to_kind() {
    assert_eq!(ListKind::from_method("tools/list"), Some(ListKind::Tools));
    assert_eq!(
        ListKind::from_method("prompts/list"),
        Some(ListKind::Prompts)
    );
    assert_eq!(
        ListKind::from_method("resources/list"),
        Some(ListKind::Resources)
    );
    assert_eq!(
        ListKind::from_method("resources/templates/list"),
        Some(ListKind::ResourceTemplates)
    );
    assert_eq!(ListKind::from_method("tools/call"), None);
}

const PRETTY: &str = r#"{
  "jsonrpc": "2.0",
  "id": 2,
  "result": {
    "tools": [
      { "name": "a", "inputSchema": {"type":"object","properties":{"x":{"type":"string","enum":["]","}",","]}}} },
      { "name": "b", "description": "B \"quoted\" \\ [x]" },
      { "name": "c" }
    ],
    "nextCursor": "cur-1",
    "_meta": {"k": [1, 2.5e3, true, null]},
    "ttlMs": 5000,
    "unknown": {"tools": [{"name": "not-the-list"}]}
  }
}"#;

#[test]
fn nothing_removed_is_byte_identical() {
    let (out, o) = run(PRETTY, ListKind::Tools, |_| true).unwrap();
    assert_eq!(out, PRETTY);
    assert_eq!(
        o,
        FilterOutcome {
            kept: 3,
            removed: 0
        }
    );
}

#[test]
fn removal_preserves_everything_else() {
    for refused in [
        &["a"][..],
        &["b"],
        &["c"],
        &["a", "b"],
        &["b", "c"],
        &["a", "c"],
        &["a", "b", "c"],
    ] {
        let (out, o) = run(PRETTY, ListKind::Tools, |n| !refused.contains(&n)).unwrap();
        assert_eq!(o.removed, refused.len());
        let got: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let mut want: Value = serde_json::from_str(PRETTY).unwrap();
        want["result"]["tools"]
            .as_array_mut()
            .unwrap()
            .retain(|t| !refused.contains(&t["name"].as_str().unwrap()));
        assert_eq!(got, want, "{refused:?}");
        // Untouched parts keep their exact bytes.
        assert!(out.contains(r#""nextCursor": "cur-1","#));
        assert!(out.contains(r#""unknown": {"tools": [{"name": "not-the-list"}]}"#));
        assert!(out.starts_with("{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 2,"));
    }
}

#[test]
fn exact_splice_bytes() {
    let input = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}, {"name":"b"} ,{"name":"c"}],"nextCursor":"n"}}"#;
    let (out, _) = run(input, ListKind::Tools, |n| n != "b").unwrap();
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}, {"name":"c"}],"nextCursor":"n"}}"#
    );
    let (out, _) = run(input, ListKind::Tools, |n| n == "c").unwrap();
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"c"}],"nextCursor":"n"}}"#
    );
    let (out, _) = run(input, ListKind::Tools, |n| n == "a").unwrap();
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"nextCursor":"n"}}"#
    );
    let (out, _) = run(input, ListKind::Tools, |_| false).unwrap();
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"nextCursor":"n"}}"#
    );
}

#[test]
fn each_kind_uses_its_key() {
    let cases = [
        (
            ListKind::Prompts,
            r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"p1"},{"name":"p2"}]}}"#,
            "p1",
        ),
        (
            ListKind::Resources,
            r#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"file:///a","name":"x"},{"uri":"file:///b","name":"y"}]}}"#,
            "file:///a",
        ),
        (
            ListKind::ResourceTemplates,
            r#"{"jsonrpc":"2.0","id":1,"result":{"resourceTemplates":[{"uriTemplate":"t://{a}","name":"x"},{"uriTemplate":"t://{b}","name":"y"}]}}"#,
            "t://{a}",
        ),
    ];
    for (kind, input, allowed) in cases {
        let mut seen = Vec::new();
        let (out, o) = run(input, kind, |n| {
            seen.push(n.to_owned());
            n == allowed
        })
        .unwrap();
        assert_eq!(
            o,
            FilterOutcome {
                kept: 1,
                removed: 1
            },
            "{kind:?}"
        );
        assert_eq!(seen.len(), 2);
        assert!(out.contains(allowed));
    }
}

#[test]
fn escaped_names_are_decoded() {
    let input = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"n\u0061me":"\u0065cho"},{"name":"\ud83d\ude00\n"}]}}"#;
    let mut seen = Vec::new();
    run(input, ListKind::Tools, |n| {
        seen.push(n.to_owned());
        true
    })
    .unwrap();
    assert_eq!(seen, vec!["echo".to_owned(), "😀\n".to_owned()]);
}

#[test]
fn malformed_entries_fail_closed() {
    let input = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
        {"name":"ok"},
        {"description":"no name"},
        {"name":"dup","name":"secret"},
        {"name":"ok2","n\u0061me":"secret"},
        {"name":5},
        "not an object",
        {"name":"last"}]}}"#;
    let (out, o) = run(input, ListKind::Tools, |_| true).unwrap();
    assert_eq!(
        o,
        FilterOutcome {
            kept: 2,
            removed: 5
        }
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<_> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, vec![Value::from("ok"), Value::from("last")]);
}

#[test]
fn passes_through_error_responses_and_missing_lists() {
    for input in [
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
    ] {
        let (out, o) = run(input, ListKind::Tools, |_| false).unwrap();
        assert_eq!(out, input);
        assert_eq!(o, FilterOutcome::default());
    }
}

#[test]
fn refuses_what_it_cannot_filter_safely() {
    let cases: &[(&[u8], FilterError)] = &[
        (br#"[{"jsonrpc":"2.0"}]"#, FilterError::NotAnObject),
        (
            br#"{"result":{"tools":[]},"result":{"tools":[{"name":"x"}]}}"#,
            FilterError::DuplicateKey("result"),
        ),
        (
            br#"{"result":{"tools":[],"t\u006fols":[{"name":"x"}]}}"#,
            FilterError::DuplicateKey("tools"),
        ),
        (
            br#"{"result":{"tools":{"name":"x"}}}"#,
            FilterError::ListNotArray("tools"),
        ),
        (
            b"{\"result\":{\"tools\":[{\"name\":\"\xff\"}]}}",
            FilterError::InvalidUtf8,
        ),
    ];
    for (input, want) in cases {
        let mut out = Vec::new();
        assert_eq!(
            ListFilter::new().filter(input, ListKind::Tools, |_| true, &mut out),
            Err(want.clone())
        );
        assert!(out.is_empty());
    }
    for bad in [
        r#"{"result":{"tools":[{"name":"x"}]}"#,
        r#"{"result":{"tools":[{"name":"x"},]}}"#,
        r#"{"result":{"tools":[{"name":"x"}]}} trailing"#,
        r#"{"result":{"tools":[{"name":"x","s":tru}]}}"#,
        r#"{"result":{"tools":[{"name":"x","s":01}]}}"#,
        r#"{"result":{"tools":[{"name":"x","s":1.}]}}"#,
        r#"{"result":{"tools":[{"name":"x","s":"\q"}]}}"#,
        r#"{"result":{"tools":[{"name":"\ud800"}]}}"#,
        "{\"result\":{\"tools\":[{\"name\":\"tab\there\"}]}}",
    ] {
        let r =
            ListFilter::new().filter(bad.as_bytes(), ListKind::Tools, |_| true, &mut Vec::new());
        assert!(
            matches!(r, Err(FilterError::InvalidJson { .. })),
            "{bad}: {r:?}"
        );
    }
    let deep = format!(
        r#"{{"result":{{"tools":[{{"name":"x","s":{}{}}}]}}}}"#,
        "[".repeat(80),
        "]".repeat(80)
    );
    assert_eq!(
        ListFilter::new().filter(deep.as_bytes(), ListKind::Tools, |_| true, &mut Vec::new()),
        Err(FilterError::TooDeep)
    );
}

#[test]
fn works_on_sse_event_data() {
    use mcpgate_codec::sse::SseParser;
    let stream = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\n\n";
    let mut p = SseParser::new();
    let (ev, _) = p.next_event(stream).unwrap().unwrap();
    let mut out = Vec::new();
    let o = ListFilter::new()
        .filter(p.data(&ev, stream), ListKind::Tools, |n| n == "b", &mut out)
        .unwrap();
    assert_eq!(o.removed, 1);
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"}]}}"#
    );
}

/// A generated JSON value for entry bodies (no duplicate keys: serde_json's map would merge them).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z\\]\\[{}\",:\\\\\n é😀]{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn entry() -> impl Strategy<Value = Value> {
    (
        proptest::option::weighted(
            0.9,
            prop_oneof![
                "[a-e\"\\\\/é]{1,3}".prop_map(Value::from),
                Just(Value::from(7)),
            ],
        ),
        proptest::collection::btree_map("[f-z]{1,6}", json_value(), 0..3),
    )
        .prop_map(|(name, rest)| {
            let mut m: serde_json::Map<String, Value> = rest.into_iter().collect();
            if let Some(n) = name {
                m.insert("name".into(), n);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn matches_serde_json_reference_model(
        entries in proptest::collection::vec(entry(), 0..8),
        extra in proptest::collection::btree_map("[a-z]{1,6}", json_value(), 0..3),
        refused in "[a-e]{0,3}",
        pretty in any::<bool>(),
    ) {
        let mut result: serde_json::Map<String, Value> = extra.into_iter().filter(|(k, _)| k != "tools").collect();
        result.insert("tools".into(), Value::from(entries));
        let msg = serde_json::json!({"jsonrpc": "2.0", "id": 3, "result": result});
        let input = if pretty { serde_json::to_string_pretty(&msg).unwrap() } else { msg.to_string() };
        let allowed = |n: &str| !n.chars().any(|c| refused.contains(c));

        let mut out = Vec::new();
        let outcome = ListFilter::new().filter(input.as_bytes(), ListKind::Tools, allowed, &mut out).unwrap();
        let got: Value = serde_json::from_slice(&out).unwrap();

        // Compare against the input re-parsed (serde_json's float printing is not round-trip exact).
        let mut want: Value = serde_json::from_str(&input).unwrap();
        let list = want["result"]["tools"].as_array_mut().unwrap();
        let before = list.len();
        list.retain(|e| e.get("name").and_then(Value::as_str).is_some_and(allowed));
        prop_assert_eq!(outcome.kept, list.len());
        prop_assert_eq!(outcome.removed, before - list.len());
        prop_assert_eq!(&got, &want);
        if outcome.removed == 0 {
            prop_assert_eq!(out, input.into_bytes());
        }
    }
}

fn run_all(
    input: &str,
    keep: impl FnMut(ListKind, &str) -> bool,
) -> Result<(String, mcpgate_codec::filter::ListsOutcome), FilterError> {
    let mut out = Vec::new();
    let outcome = ListFilter::new().filter_lists(input.as_bytes(), ListSet::ALL, keep, &mut out)?;
    Ok((String::from_utf8(out).unwrap(), outcome))
}

#[test]
fn every_list_a_result_carries_is_filtered_in_one_pass() {
    let input = r#"{"jsonrpc":"2.0","id":0,"result":{"tools":[{"name":"a"},{"name":"echo"}],"x":1,"prompts":[{"name":"p"}, {"name":"simple-prompt"}],"resources":[{"uri":"u:a"}],"resourceTemplates":[]}}"#;
    let keep = |kind: ListKind, key: &str| match kind {
        ListKind::Tools => key == "echo",
        ListKind::Prompts => key == "simple-prompt",
        ListKind::Resources | ListKind::ResourceTemplates => false,
    };
    let (out, outcome) = run_all(input, keep).unwrap();
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":0,"result":{"tools":[{"name":"echo"}],"x":1,"prompts":[{"name":"simple-prompt"}],"resources":[],"resourceTemplates":[]}}"#
    );
    assert_eq!(
        outcome.get(ListKind::Tools),
        Some(FilterOutcome {
            kept: 1,
            removed: 1
        })
    );
    assert_eq!(
        outcome.get(ListKind::Resources),
        Some(FilterOutcome {
            kept: 0,
            removed: 1
        })
    );
    assert_eq!(
        outcome.get(ListKind::ResourceTemplates),
        Some(FilterOutcome::default())
    );
    assert_eq!(outcome.found(), ListSet::ALL);
    assert_eq!(outcome.removed(), 3);
    // Kept first entries of later arrays keep the bytes between arrays.
    let (out, _) = run_all(input, |kind, _| kind == ListKind::Prompts).unwrap();
    assert!(
        out.contains(
            r#""tools":[],"x":1,"prompts":[{"name":"p"}, {"name":"simple-prompt"}],"resources":[]"#
        ),
        "{out}"
    );
}

#[test]
fn list_keys_are_found_by_their_decoded_name_and_duplicates_refused() {
    let escaped = r#"{"jsonrpc":"2.0","id":1,"result":{"t\u006fols":[{"name":"secret"}]}}"#;
    let (out, outcome) = run_all(escaped, |_, _| false).unwrap();
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":1,"result":{"t\u006fols":[]}}"#
    );
    assert_eq!(outcome.found(), ListSet::of(ListKind::Tools));
    let dup = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[{"name":"x"}]}}"#;
    assert_eq!(
        run_all(dup, |_, _| true).unwrap_err(),
        FilterError::DuplicateKey("tools")
    );
    let no_list =
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"tools"}]}}"#;
    let (out, outcome) = run_all(no_list, |_, _| false).unwrap();
    assert_eq!(out, no_list);
    assert!(outcome.found().is_empty());
}
