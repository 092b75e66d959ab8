//! A cheap first look at one JSON-RPC message's envelope: is it a request or a notification, and
//! which method. For the exchange log's view of server→client traffic, where classifying every
//! progress notification with [`jsonrpc::Classifier`](crate::jsonrpc::Classifier) would cost more
//! than the rest of recording it (a simd-json parse has a fixed cost a 150-byte message cannot
//! amortise).
//!
//! Never for a decision: the ACL judges every message with the classifier (or, for a plain
//! response, with the list filter's validating pass, `filter::ListFilter::filter_response`,
//! which reads the envelope as it validates the whole message). This reader is
//! conservative: it answers only for the plain shape (one object; keys and the method without
//! escapes; no `result` or `error`; a method that names no target), and returns `None` otherwise,
//! so the caller falls back to the classifier. It does not validate what it skips (the contents of
//! `params`, unknown members): on input the classifier refuses it may still answer, but on input the
//! classifier accepts the two always agree (fuzz target `envelope_peek`).

use memchr::memchr2;

use crate::jsonrpc::Kind;
use crate::limits::MAX_JSON_DEPTH;

/// What [`peek`] saw: a request or a notification and its method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// [`Kind::Request`] or [`Kind::Notification`].
    pub kind: Kind,
    pub method: &'a str,
}

/// Methods whose messages carry a target (`params.name`, `params.uri`, `params.ref`): the
/// classifier extracts it, so these are left to it.
const TARGETED: &[&str] = &[
    "tools/call",
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "notifications/resources/updated",
    "completion/complete",
];

/// The envelope of `input` when it is one plainly written request or notification (see the module
/// docs); `None` means "ask the classifier".
pub fn peek(input: &[u8]) -> Option<Envelope<'_>> {
    let mut r = Reader { input, at: 0 };
    r.skip_ws();
    r.eat(b'{')?;
    let (mut version, mut id, mut method, mut params) = (false, false, None, false);
    loop {
        r.skip_ws();
        let key = r.plain_string()?;
        r.skip_ws();
        r.eat(b':')?;
        r.skip_ws();
        match key {
            b"jsonrpc" if !version => {
                version = true;
                if r.plain_string()? != b"2.0" {
                    return None;
                }
            }
            b"id" if !id => {
                id = true;
                r.id()?;
            }
            b"method" if method.is_none() => {
                method = Some(std::str::from_utf8(r.plain_string()?).ok()?);
            }
            b"params" if !params => {
                params = true;
                if r.peek_byte()? != b'{' {
                    return None;
                }
                r.skip_value()?;
            }
            // A second copy of a field the classifier reads (it refuses those), or a response.
            b"jsonrpc" | b"id" | b"method" | b"params" | b"result" | b"error" => return None,
            _ => r.skip_value()?,
        }
        r.skip_ws();
        match r.next_byte()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    r.skip_ws();
    let method = method?;
    if !version || r.at != input.len() || TARGETED.contains(&method) {
        return None;
    }
    let kind = if id {
        Kind::Request
    } else {
        Kind::Notification
    };
    Some(Envelope { kind, method })
}

/// The bytes a nested value is skipped by: strings and brackets.
static NESTING: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Where the first `"` or `\` of `rest` is. An envelope's strings are short, and a plain loop
/// beats memchr's per-call setup on those; a long one (a log message's data) goes to memchr.
fn quote_or_backslash(rest: &[u8]) -> Option<usize> {
    const SHORT: usize = 32;
    let short = rest.get(..SHORT.min(rest.len()))?;
    match short.iter().position(|&b| b == b'"' || b == b'\\') {
        Some(i) => Some(i),
        None => memchr2(b'"', b'\\', rest.get(short.len()..)?).map(|i| i + short.len()),
    }
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek_byte(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek_byte()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.next_byte()? == expected).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek_byte(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes, returned without its quotes; `None` for anything else.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = self.input.get(self.at..)?;
        let end = quote_or_backslash(rest)?;
        if rest.get(end) != Some(&b'"') {
            return None;
        }
        self.at += end + 1;
        rest.get(..end)
    }

    /// Any string, escapes included (skipped, not decoded).
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let rest = self.input.get(self.at..)?;
            let i = quote_or_backslash(rest)?;
            if rest.get(i) == Some(&b'"') {
                self.at += i + 1;
                return Some(());
            }
            self.at += i + 2; // the backslash and the character it escapes
        }
    }

    /// An `id` the classifier takes as one: a string or an integer literal (`null` and other
    /// values are left to it).
    fn id(&mut self) -> Option<()> {
        if self.peek_byte()? == b'"' {
            return self.skip_string();
        }
        let start = self.at;
        if self.peek_byte() == Some(b'-') {
            self.at += 1;
        }
        let digits = self.at;
        while self.peek_byte().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let len = self.at - digits;
        let leading_zero = len > 1 && self.input.get(digits) == Some(&b'0');
        // Integers up to 18 digits fit i64 whatever they are; longer ones are left to the
        // classifier (which refuses what does not fit).
        (len > 0 && len <= 18 && !leading_zero && self.at > start).then_some(())
    }

    /// Any value, nested ones by bracket depth (strings inside skipped whole).
    fn skip_value(&mut self) -> Option<()> {
        match self.peek_byte()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    let rest = self.input.get(self.at..)?;
                    self.at += rest.iter().position(|&b| NESTING[usize::from(b)])?;
                    match self.peek_byte()? {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            if depth > MAX_JSON_DEPTH {
                                return None;
                            }
                        }
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                // A scalar: up to the next delimiter; must not be empty.
                let start = self.at;
                while !matches!(
                    self.peek_byte()?,
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                ) {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Classified, Classifier, Target};

    /// Where both answer, they agree; returns the peek.
    fn checked(input: &str) -> Option<Envelope<'_>> {
        let env = peek(input.as_bytes());
        if let (Some(e), Ok(Classified::Single(m))) =
            (env, Classifier::new().classify(input.as_bytes()))
        {
            assert_eq!(m.kind, e.kind, "{input}");
            assert_eq!(m.method.as_deref(), Some(e.method), "{input}");
            assert_eq!(m.target, Target::None, "{input}");
        }
        env
    }

    #[test]
    fn reads_plain_notifications_and_requests() {
        let progress = r#"{"method":"notifications/progress","params":{"progressToken":"t-1","progress":1,"total":2,"message":"a \"quoted\" {step}"},"jsonrpc":"2.0"}"#;
        assert_eq!(
            checked(progress),
            Some(Envelope {
                kind: Kind::Notification,
                method: "notifications/progress"
            })
        );
        let sampling = " {\n \"jsonrpc\" : \"2.0\", \"id\": 7, \"method\": \"sampling/createMessage\", \"params\": {\"messages\": [[{}], []], \"n\": -1.5e3, \"ok\": true}}\r\n";
        assert_eq!(
            checked(sampling),
            Some(Envelope {
                kind: Kind::Request,
                method: "sampling/createMessage"
            })
        );
        let string_id =
            r#"{"jsonrpc":"2.0","id":"a\"b","method":"roots/list","x":[1,"]",{"y":null}]}"#;
        assert_eq!(checked(string_id).map(|e| e.kind), Some(Kind::Request));
    }

    #[test]
    fn leaves_everything_else_to_the_classifier() {
        for input in [
            // responses, errors, batches, targets
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#,
            r#"[{"jsonrpc":"2.0","method":"ping"}]"#,
            r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}}"#,
            // escapes where it would have to decode, duplicates, odd ids and versions
            r#"{"jsonrpc":"2.0","method":"notifications\/progress"}"#,
            r#"{"jsonrpc":"2.0","m\u0065thod":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"ping","method":"pong"}"#,
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":01,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1234567890123456789012,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","method":"ping"}"#,
            r#"{"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"ping","params":[]}"#,
            r#"{"jsonrpc":"2.0","method":5}"#,
            // truncated or trailing bytes
            r#"{"jsonrpc":"2.0","method":"ping""#,
            r#"{"jsonrpc":"2.0","method":"ping","params":{"a":[}"#,
            r#"{"jsonrpc":"2.0","method":"ping"} x"#,
            r#"{"jsonrpc":"2.0","method":"ping",}"#,
            "",
            "{}",
        ] {
            assert_eq!(checked(input), None, "{input}");
        }
    }

    #[test]
    fn deep_nesting_is_left_to_the_classifier() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","method":"ping","params":{{"a":{}{}}}}}"#,
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        assert_eq!(checked(&deep), None);
    }
}

#[cfg(test)]
mod differential {
    use super::*;
    use crate::jsonrpc::{Classified, Classifier, Target};
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("-12".to_owned()),
            Just("1.5e3".to_owned()),
            "[a-z\\\\\"{}\\[\\],: ]{0,8}"
                .prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z_]{1,6}", inner), 0..4).prop_map(|kv| {
                    let members: Vec<String> = kv
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    fn member() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(r#""jsonrpc":"2.0""#.to_owned()),
            Just(r#""jsonrpc" : "1.0""#.to_owned()),
            Just(r#""id":3"#.to_owned()),
            Just(r#""id":"x\"y""#.to_owned()),
            Just(r#""id":null"#.to_owned()),
            Just(r#""method":"notifications/progress""#.to_owned()),
            Just(r#""method":"sampling/createMessage""#.to_owned()),
            Just(r#""method":"tools/call""#.to_owned()),
            Just(r#""method":"a\/b""#.to_owned()),
            value().prop_map(|v| format!("\"params\":{v}")),
            value().prop_map(|v| format!("\"result\":{v}")),
            value().prop_map(|v| format!("\"other\":{v}")),
        ]
    }

    proptest! {
        /// On every message the classifier accepts, a peek that answers says the same.
        #[test]
        fn agrees_with_the_classifier(
            members in prop::collection::vec(member(), 0..6),
            ws in prop::sample::select(vec!["", " ", "\n\t"]),
        ) {
            let input = format!("{ws}{{{ws}{}{ws}}}{ws}", members.join(&format!("{ws},{ws}")));
            let env = peek(input.as_bytes());
            let classified = Classifier::new().classify(input.as_bytes());
            if let (Some(e), Ok(c)) = (env, &classified) {
                let Classified::Single(m) = c else {
                    panic!("peek answered for a batch: {input}");
                };
                prop_assert_eq!(m.kind, e.kind);
                prop_assert_eq!(m.method.as_deref(), Some(e.method));
                prop_assert_eq!(&m.target, &Target::None);
            }
            // The plain notification it exists for is always read.
            if let Ok(Classified::Single(m)) = &classified {
                let plain = m.method.as_deref() == Some("notifications/progress")
                    && !input.contains("\"id\"");
                if plain {
                    prop_assert!(env.is_some(), "{}", input);
                }
            }
        }
    }
}
