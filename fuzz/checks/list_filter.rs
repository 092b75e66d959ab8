//! List filter on arbitrary bytes: no panic; when it succeeds the output is valid JSON whose
//! entries are a subset (in order) of the input's, and with nothing removed it is the input.
use mcpgate_codec::filter::{ListFilter, ListKind};
use serde_json::Value;

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
