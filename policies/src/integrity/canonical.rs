//! Canonical JSON and the digest of a definition: members sorted by key (code point order), no
//! insignificant whitespace, strings with serde_json's minimal escaping, numbers as serde_json
//! prints a parsed number (integers as written, others in their shortest round-trip form). Two
//! texts of the same JSON value — keys in another order, other whitespace, `\u0061` for `a` —
//! give the same bytes, so a server that re-serialises its tools differently does not look like
//! one that changed them.

use serde_json::Value;

/// Appends the canonical form of `value`.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted here, not by relying on the map: serde_json's `preserve_order` feature, if
            // any crate of the build turned it on, would keep the server's order.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json's escaping of a `&str` cannot fail and is deterministic.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\"")));
}

/// The canonical form of `value`.
pub fn canonical(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

/// `sha256:<64 hex digits>` of the canonical form.
pub fn digest(value: &Value) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, canonical(value).as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in d.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    #[test]
    fn key_order_whitespace_and_escapes_do_not_matter() {
        let a = parse(
            r#"{"name":"x","inputSchema":{"type":"object","properties":{"a":{"type":"string"}}}}"#,
        );
        let b = parse(
            "{ \"inputSchema\" : { \"properties\": {\"\\u0061\": {\"type\":\"string\"}}, \"type\": \"object\" },\n \"name\": \"x\" }",
        );
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(digest(&a), digest(&b));
        assert_eq!(
            canonical(&a),
            r#"{"inputSchema":{"properties":{"a":{"type":"string"}},"type":"object"},"name":"x"}"#
        );
        assert!(digest(&a).starts_with("sha256:") && digest(&a).len() == 71);
    }

    #[test]
    fn any_change_of_a_value_changes_the_digest() {
        let a = parse(r#"{"description":"Get the weather","n":[1,2]}"#);
        for other in [
            r#"{"description":"Get the weather.","n":[1,2]}"#,
            r#"{"description":"Get the weather","n":[2,1]}"#,
            r#"{"description":"Get the weather","n":[1,2],"x":null}"#,
            r#"{"description":"Get the weather","n":[1,2.5]}"#,
        ] {
            assert_ne!(digest(&a), digest(&parse(other)), "{other}");
        }
    }
}
