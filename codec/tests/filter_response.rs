//! `ListFilter::filter_response`, the one-pass filter of an event's data: it answers only for a
//! plainly written response, and where it answers it agrees with the classifier (the message is
//! a `Kind::Response` carrying exactly the lists found) and with `filter_lists` (same bytes).
#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is the point

use mcpgate_codec::filter::{ListFilter, ListKind, ListSet, ResponseFilter};
use mcpgate_codec::jsonrpc::{Classified, Classifier, Kind};
use proptest::prelude::*;

/// Keeps tools/prompts named `a…` or `echo`, any resource.
fn keep(kind: ListKind, key: &str) -> bool {
    kind == ListKind::Resources || key.starts_with('a') || key == "echo"
}

fn filtered(input: &str) -> (ResponseFilter, Vec<u8>) {
    let mut out = b"prefix:".to_vec();
    let r = ListFilter::new()
        .filter_response(input.as_bytes(), ListSet::ALL, keep, &mut out)
        .unwrap();
    assert!(out.starts_with(b"prefix:"), "appends");
    (r, out.split_off(7))
}

/// What the classifier and `filter_lists` make of `input`, where `filter_response` answered.
fn agrees(input: &[u8]) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let answered = ListFilter::new().filter_response(input, ListSet::ALL, keep, &mut out);
    let Ok(ResponseFilter::Response { lists, changed }) = answered else {
        // Not plain, or not filterable: the caller asks the classifier, as it always did.
        prop_assert!(out.is_empty(), "wrote on {:?}", answered);
        return Ok(());
    };
    let classified = Classifier::new().classify(input);
    let Ok(Classified::Single(m)) = &classified else {
        return Err(TestCaseError::fail(format!(
            "filter_response answered where the classifier said {classified:?}: {}",
            String::from_utf8_lossy(input)
        )));
    };
    prop_assert_eq!(m.kind, Kind::Response);
    prop_assert_eq!(m.lists, lists.found());
    let mut reference = Vec::new();
    let o = ListFilter::new()
        .filter_lists(input, ListSet::ALL, keep, &mut reference)
        .unwrap();
    prop_assert_eq!(o, lists);
    prop_assert_eq!(changed, o.removed() > 0);
    if changed {
        prop_assert_eq!(out, reference);
    } else {
        prop_assert!(out.is_empty());
        prop_assert_eq!(reference.as_slice(), input);
    }
    Ok(())
}

#[test]
fn a_plain_list_answer_is_filtered_in_one_pass() {
    let answer = r#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"x"},{"name":"echo"}],"nextCursor":"c"}}"#;
    let (r, out) = filtered(answer);
    assert!(matches!(r, ResponseFilter::Response { changed: true, .. }));
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"echo"}],"nextCursor":"c"}}"#
    );
    // Nothing removed: nothing written, the message is its own filtered form.
    let kept = r#" {"result":{"tools":[{"name":"a1"}]},"id":"q\"1","jsonrpc":"2\u002e0","x":[1]} "#;
    let (r, out) = filtered(kept);
    match r {
        ResponseFilter::Response { lists, changed } => {
            assert!(!changed);
            assert_eq!(lists.found(), ListSet::of(ListKind::Tools));
        }
        other => panic!("{other:?}"),
    }
    assert!(out.is_empty());
    // No list at all (a tool call's answer).
    let (r, _) = filtered(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#);
    assert!(
        matches!(r, ResponseFilter::Response { changed: false, lists } if lists.found().is_empty())
    );
    for input in [answer, kept] {
        agrees(input.as_bytes()).unwrap();
    }
}

#[test]
fn anything_but_a_plain_response_is_left_to_the_classifier() {
    for input in [
        // requests, notifications, errors, batches
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1}}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"sampling/createMessage","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"method":"x"}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"m\u0065thod":"x"}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"params":{}}"#,
        // the envelope: missing, twice, odd types or versions
        r#"{"id":1,"result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"i\u0064":2,"result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"1.0","id":1,"result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":2.0,"id":1,"result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","id":null,"result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1e2,"result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1234567890123456789,"result":{"tools":[{"name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","id":{},"result":{"tools":[{"name":"x"}]}}"#,
        // numbers the classifier may refuse or read differently
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"x","n":123456789012345678901234}]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"x","n":1e400}]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"x","n":0.123456789012345678}]}}"#,
    ] {
        let mut out = Vec::new();
        let r = ListFilter::new().filter_response(input.as_bytes(), ListSet::ALL, keep, &mut out);
        assert!(
            matches!(r, Ok(ResponseFilter::NotPlain) | Err(_)),
            "{input}: {r:?}"
        );
        assert!(out.is_empty(), "{input}");
    }
    // What filter_lists refuses is refused here too (the caller then asks the classifier).
    for input in [
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"x"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{},"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}} x"#,
        "[]",
        "",
    ] {
        let mut out = Vec::new();
        let r = ListFilter::new().filter_response(input.as_bytes(), ListSet::ALL, keep, &mut out);
        assert!(
            matches!(r, Err(_) | Ok(ResponseFilter::NotPlain)),
            "{input}: {r:?}"
        );
        assert!(out.is_empty(), "{input}");
    }
}

/// Top-level members, some envelope-breaking, in any order and any number.
fn member() -> impl Strategy<Value = String> {
    let entry = prop_oneof![
        Just(r#"{"name":"a1"}"#),
        Just(r#"{"name":"b\u0032","x":[1,2.5e3,-0]}"#),
        Just(r#"{"name":"echo","name":"x"}"#),
        Just(r#"{"uri":"file:///a"}"#),
        Just(r#"{"name":"x","n":123456789012345678901}"#),
        Just(r#"{"name":"x","n":1e999}"#),
        Just("7"),
    ];
    let list = (
        prop::sample::select(vec!["tools", "prompts", "resources", "t\\u006fols"]),
        prop::collection::vec(entry, 0..4),
    )
        .prop_map(|(k, es)| format!(r#""{k}":[{}]"#, es.join(",")));
    let result = prop::collection::vec(
        prop_oneof![list, Just(r#""nextCursor":"c""#.to_owned())],
        0..3,
    )
    .prop_map(|ms| format!(r#""result":{{{}}}"#, ms.join(",")));
    prop_oneof![
        4 => result,
        1 => Just(r#""result":[]"#.to_owned()),
        3 => Just(r#""jsonrpc":"2.0""#.to_owned()),
        1 => Just(r#""jsonrpc":"1.0""#.to_owned()),
        1 => Just(r#""js\u006enrpc":"2.0""#.to_owned()),
        3 => Just(r#""id":3"#.to_owned()),
        1 => Just(r#""id":"x\"y""#.to_owned()),
        1 => Just(r#""id":null"#.to_owned()),
        1 => Just(r#""id":-0"#.to_owned()),
        1 => Just(r#""id":99999999999999999999"#.to_owned()),
        1 => Just(r#""method":"notifications/progress""#.to_owned()),
        1 => Just(r#""params":{}"#.to_owned()),
        1 => Just(r#""error":{"code":-1,"message":"m"}"#.to_owned()),
        1 => Just(r#""other":{"tools":[{"name":"zz"}]}"#.to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// On every message where `filter_response` answers, the classifier says "a response with
    /// these lists" and `filter_lists` writes the same bytes.
    #[test]
    fn agrees_with_the_classifier_and_filter_lists(
        members in prop::collection::vec(member(), 0..6),
        ws in prop::sample::select(vec!["", " ", "\n\t"]),
    ) {
        let input = format!("{ws}{{{ws}{}{ws}}}{ws}", members.join(&format!("{ws},{ws}")));
        agrees(input.as_bytes())?;
    }
}
