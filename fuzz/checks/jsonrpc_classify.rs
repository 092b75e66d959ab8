//! JSON-RPC classifier on arbitrary bytes: no panic; whatever it accepts serde_json parses too,
//! with the same envelope (ids, method, spans agree with serde_json's reading).
use mcpgate_codec::jsonrpc::{Classified, Classifier, Kind, Message};
use serde_json::Value;

fn agree(m: &Message, input: &[u8], v: &Value) {
    let obj = v.as_object().expect("accepted message is an object");
    assert_eq!(obj.get("jsonrpc").and_then(Value::as_str), Some("2.0"));
    let span: Value = serde_json::from_slice(&input[m.span.clone()]).expect("span is JSON");
    assert_eq!(&span, v);
    match m.id_bytes(input) {
        Some(raw) => {
            let id: Value = serde_json::from_slice(raw).expect("raw id is JSON");
            assert_eq!(Some(&id), obj.get("id"));
            let integer_literal = raw.iter().all(|b| b.is_ascii_digit() || *b == b'-');
            assert!(id.is_string() || integer_literal);
        }
        None => assert!(obj.get("id").is_none_or(Value::is_null)),
    }
    assert_eq!(
        m.method.as_deref(),
        obj.get("method").and_then(Value::as_str)
    );
    match m.kind {
        Kind::Request | Kind::Notification => assert!(obj.get("method").is_some()),
        Kind::Response => assert!(obj.get("result").is_some() && obj.get("error").is_none()),
        Kind::ErrorResponse => assert!(obj.get("error").is_some() && obj.get("result").is_none()),
    }
    if let Some(t) = m.target.as_str() {
        let params = &obj["params"];
        let found = [
            &params["name"],
            &params["uri"],
            &params["ref"]["name"],
            &params["ref"]["uri"],
        ]
        .into_iter()
        .any(|c| c.as_str() == Some(t));
        assert!(found, "target {t:?} not in params");
    }
    if let Some(raw) = m.progress_token_bytes(input) {
        let token: Value = serde_json::from_slice(raw).expect("raw token is JSON");
        assert_eq!(token, obj["params"]["_meta"]["progressToken"]);
    }
}

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let mut classifier = Classifier::new();
    let Ok(classified) = classifier.classify(data) else {
        return;
    };
    let v: Value =
        serde_json::from_slice(data).expect("classifier accepted what serde_json refuses");
    match (&classified, &v) {
        (Classified::Single(m), _) => agree(m, data, &v),
        (Classified::Batch(ms), Value::Array(items)) => {
            assert_eq!(ms.len(), items.len());
            for (m, item) in ms.iter().zip(items) {
                agree(m, data, item);
            }
        }
        _ => panic!("batch classified from a non-array"),
    }
    // Reuse must give the same answer.
    assert_eq!(classifier.classify(data).ok(), Some(classified));
}
