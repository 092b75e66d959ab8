//! List filter on arbitrary bytes: no panic; when it succeeds the output is valid JSON whose
//! entries are a subset (in order) of the input's, and with nothing removed it is the input.
//! The one-pass filter of event data (`filter_response`, which the ACL trusts instead of the
//! classifier for a plain response) answers only where the classifier sees a single
//! `Kind::Response` carrying exactly the lists it found, and writes what `filter_lists` writes.
use mcpgate_codec::filter::{ListFilter, ListKind, ListSet, ResponseFilter};
use mcpgate_codec::jsonrpc::{Classified, Classifier, Kind};
use serde_json::Value;

/// `filter_response` against the classifier and `filter_lists` (the ACL's slower, older path).
fn one_pass_agrees(message: &[u8], keep: impl Fn(ListKind, &str) -> bool) {
    let mut out = Vec::new();
    let answered = ListFilter::new().filter_response(message, ListSet::ALL, &keep, &mut out);
    let Ok(ResponseFilter::Response { lists, changed }) = answered else {
        assert!(out.is_empty(), "wrote on {answered:?}");
        return;
    };
    match Classifier::new().classify(message) {
        Ok(Classified::Single(m)) => {
            assert_eq!(m.kind, Kind::Response, "one pass answered a {:?}", m.kind);
            assert_eq!(m.lists, lists.found(), "lists differ from the classifier's");
        }
        other => panic!("one pass answered where the classifier said {other:?}"),
    }
    let mut reference = Vec::new();
    let outcome = ListFilter::new().filter_lists(message, ListSet::ALL, &keep, &mut reference);
    assert_eq!(
        outcome.as_ref().ok(),
        Some(&lists),
        "filter_lists disagrees"
    );
    if changed {
        assert_eq!(out, reference);
    } else {
        assert!(out.is_empty());
        assert_eq!(reference, message);
    }
}

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let kind = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ][usize::from(selector & 3)];
    // Keep names whose byte sum has the bit chosen by the selector.
    let bit = (selector >> 2) & 7;
    let keep = |n: &str| n.bytes().fold(0u8, |a, b| a.wrapping_add(b)) >> bit & 1 == 1;
    one_pass_agrees(message, |_, n| keep(n));
    let mut out = Vec::new();
    let Ok(outcome) = ListFilter::new().filter(message, kind, keep, &mut out) else {
        assert!(out.is_empty());
        return;
    };
    let input: Value = match serde_json::from_slice(message) {
        Ok(v) => v,
        // serde_json refuses numbers beyond f64 range (JSON itself has no such limit); the
        // filter copies number bytes verbatim, so nothing here can be checked against it.
        Err(e) if e.to_string().contains("number out of range") => return,
        Err(e) => panic!("filter accepted invalid JSON: {e}"),
    };
    let output: Value = serde_json::from_slice(&out).expect("filter wrote invalid JSON");
    if outcome.removed == 0 {
        assert_eq!(out, message);
    }
    let list = |v: &Value| {
        v.get("result")
            .and_then(|r| r.get(kind.list_key()))
            .and_then(Value::as_array)
            .cloned()
    };
    match (list(&input), list(&output)) {
        (Some(before), Some(after)) => {
            assert_eq!(after.len(), outcome.kept);
            assert_eq!(before.len(), outcome.kept + outcome.removed);
            let mut it = before.iter();
            for e in &after {
                assert!(it.any(|b| b == e), "output entry not in input order");
                let name = e
                    .get(kind.entry_key())
                    .and_then(Value::as_str)
                    .expect("kept entry has its key");
                assert!(keep(name));
            }
            // Everything outside the list is unchanged.
            let strip = |mut v: Value| {
                v["result"][kind.list_key()] = Value::Null;
                v
            };
            assert_eq!(strip(input), strip(output));
        }
        (None, None) => assert_eq!(out, message),
        _ => panic!("list appeared or vanished"),
    }
}
