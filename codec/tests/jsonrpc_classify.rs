//! JSON-RPC classifier: envelope rules, security rules, raw ids, and agreement with serde_json.
#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is the point

use mcpgate_codec::jsonrpc::{error_response, Classified, Classifier, Kind, Message, Target};
use mcpgate_codec::limits::{MAX_BATCH_LEN, MAX_JSON_DEPTH};
use proptest::prelude::*;
use serde_json::Value;

fn one(input: &str) -> Message {
    match Classifier::new().classify(input.as_bytes()) {
        Ok(Classified::Single(m)) => m,
        other => panic!("expected a single message for {input}: {other:?}"),
    }
}

fn err(input: &[u8]) -> (i64, String) {
    match Classifier::new().classify(input) {
        Err(e) => (e.code(), e.message().to_owned()),
        Ok(c) => panic!(
            "expected an error for {:?}: {c:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

const TOOLS_CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Oslo"},"_meta":{"progressToken":"p7"}}}"#;

#[test]
fn tools_call_request() {
    let m = one(TOOLS_CALL);
    assert_eq!(m.kind, Kind::Request);
    assert_eq!(m.id_bytes(TOOLS_CALL.as_bytes()), Some(&b"7"[..]));
    assert_eq!(m.method.as_deref(), Some("tools/call"));
    assert_eq!(m.target, Target::Name("get_weather".into()));
    assert_eq!(
        m.progress_token_bytes(TOOLS_CALL.as_bytes()),
        Some(&b"\"p7\""[..])
    );
    assert_eq!(m.span, 0..TOOLS_CALL.len());
}

#[test]
fn raw_id_keeps_type_and_spelling() {
    for id in [
        r#""1""#,
        "1",
        "-12",
        r#""a\"b\\c""#,
        r#""\u0031""#,
        "18446744073709551615",
    ] {
        let input = format!(r#"{{ "jsonrpc" : "2.0" , "id" :  {id}  , "method":"ping"}}"#);
        let m = one(&input);
        assert_eq!(m.id_bytes(input.as_bytes()), Some(id.as_bytes()), "{input}");
    }
}

#[test]
fn ids_that_are_not_string_or_integer_are_refused() {
    for id in ["1.5", "1e3", "true", "[1]", "{}"] {
        let input = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        assert_eq!(err(input.as_bytes()).0, -32600, "{input}");
    }
    assert_eq!(
        err(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).0,
        -32600
    );
    assert_eq!(err(br#"{"jsonrpc":"2.0","id":null,"result":{}}"#).0, -32600);
    let m = one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#);
    assert_eq!(
        (m.kind, m.id, m.error_code),
        (Kind::ErrorResponse, None, Some(-32700))
    );
    let m = one(r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"x"}}"#);
    assert_eq!(m.kind, Kind::ErrorResponse);
}

#[test]
fn kinds() {
    assert_eq!(
        one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).kind,
        Kind::Notification
    );
    assert_eq!(
        one(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).kind,
        Kind::Response
    );
    let m = one(r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"Unknown tool"}}"#);
    assert_eq!((m.kind, m.error_code), (Kind::ErrorResponse, Some(-32602)));
}

#[test]
fn tool_errors_are_results_with_is_error_true() {
    let failed = one(
        r#"{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"boom"}],"isError":true}}"#,
    );
    assert_eq!((failed.kind, failed.tool_error), (Kind::Response, true));
    for ok in [
        r#"{"jsonrpc":"2.0","id":4,"result":{"content":[],"isError":false}}"#,
        r#"{"jsonrpc":"2.0","id":4,"result":{"content":[]}}"#,
        r#"{"jsonrpc":"2.0","id":4,"result":[1]}"#,
        r#"{"jsonrpc":"2.0","id":4,"result":{"isError":"true"}}"#,
        // Only the top level of `result` counts: a tool's structured output may say anything.
        r#"{"jsonrpc":"2.0","id":4,"result":{"structuredContent":{"isError":true}}}"#,
        // Text that mentions the key is not the key.
        r#"{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"\"isError\":true"}]}}"#,
    ] {
        assert!(!one(ok).tool_error, "{ok}");
    }
    let e = one(r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"x"}}"#);
    assert!(!e.tool_error);
}

#[test]
fn envelope_rules() {
    let cases: &[&[u8]] = &[
        br#"{"id":1,"method":"ping"}"#,
        br#"{"jsonrpc":"2.1","id":1,"method":"ping"}"#,
        br#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":5}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
        br#"{"jsonrpc":"2.0","id":1}"#,
        br#"{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"error":{"code":1.5}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}"#,
        br#"{"jsonrpc":"2.0","id":1,"params":{}}"#,
        br#"[]"#,
        br#""just a string""#,
        br#"[1]"#,
    ];
    for c in cases {
        assert_eq!(err(c).0, -32600, "{}", String::from_utf8_lossy(c));
    }
}

#[test]
fn escapes_are_decoded() {
    let m = one(
        r#"{"jsonrpc":"2.0","id":1,"m\u0065thod":"tools/c\u0061ll","params":{"n\u0061me":"\u0065cho"}}"#,
    );
    assert_eq!(m.method.as_deref(), Some("tools/call"));
    assert_eq!(m.target, Target::Name("echo".into()));
}

#[test]
fn duplicate_keys_are_refused() {
    let cases = [
        r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{},"params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{},"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":1},"error":{"code":2}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","n\u0061me":"b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","uri":"b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{},"ref":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{},"_meta":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a","name":"b"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","type":"ref/resource","uri":"x","name":"a"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"a","uri":"b"}}}"#,
    ];
    for c in cases {
        let (code, msg) = err(c.as_bytes());
        assert_eq!(code, -32600, "{c}");
        assert!(msg.contains("duplicate"), "{msg}");
    }
    // Duplicates elsewhere are the upstream's business.
    one(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":1,"x":2}}}"#,
    );
}

#[test]
fn targets_per_method() {
    let t = |method: &str, params: &str| {
        one(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#
        ))
        .target
    };
    assert_eq!(
        t("prompts/get", r#"{"name":"p"}"#),
        Target::Name("p".into())
    );
    for m in [
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "notifications/resources/updated",
    ] {
        assert_eq!(
            t(m, r#"{"uri":"file:///a"}"#),
            Target::Uri("file:///a".into()),
            "{m}"
        );
    }
    assert_eq!(
        t(
            "completion/complete",
            r#"{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"v"}}"#
        ),
        Target::PromptRef("p".into())
    );
    assert_eq!(
        t(
            "completion/complete",
            r#"{"ref":{"uri":"res://x","type":"ref/resource"}}"#
        ),
        Target::ResourceRef("res://x".into())
    );
    assert_eq!(
        t(
            "completion/complete",
            r#"{"ref":{"type":"ref/other","name":"p"}}"#
        ),
        Target::None
    );
    assert_eq!(t("tools/list", r#"{"name":"ignored"}"#), Target::None);
    assert_eq!(t("tools/call", r#"{}"#), Target::None);
    assert_eq!(
        err(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#).0,
        -32600
    );
    assert_eq!(
        err(br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":null}}"#).0,
        -32600
    );
}

#[test]
fn progress_token_raw() {
    let input =
        r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken": 42 }}}"#;
    assert_eq!(
        one(input).progress_token_bytes(input.as_bytes()),
        Some(&b"42"[..])
    );
    assert_eq!(
        err(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken":{}}}}"#).0,
        -32600
    );
}

#[test]
fn parse_errors() {
    assert_eq!(err(b"{").0, -32700);
    assert_eq!(err(b"").0, -32700);
    assert_eq!(
        err(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}").0,
        -32700
    );
    assert_eq!(
        err(br#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#).0,
        -32700
    );
    assert_eq!(
        err(br#"{"jsonrpc":"2.0","id":1,"method":"ping",}"#).0,
        -32700
    );
}

#[test]
fn depth_is_bounded() {
    let deep = |n: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"a":{}{}}}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    one(&deep(8));
    assert_eq!(err(deep(MAX_JSON_DEPTH + 1).as_bytes()).0, -32600);
}

#[test]
fn batches() {
    let input = r#" [ {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}} ,{"jsonrpc":"2.0","method":"notifications/x"}] "#;
    let Ok(Classified::Batch(msgs)) = Classifier::new().classify(input.as_bytes()) else {
        panic!("batch expected")
    };
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].target, Target::Name("a".into()));
    assert_eq!(
        &input[msgs[0].span.clone()],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#
    );
    assert_eq!(
        &input[msgs[1].span.clone()],
        r#"{"jsonrpc":"2.0","method":"notifications/x"}"#
    );
    assert_eq!(msgs[1].kind, Kind::Notification);
    let long = format!(
        "[{}]",
        vec![r#"{"jsonrpc":"2.0","method":"n"}"#; MAX_BATCH_LEN + 1].join(",")
    );
    assert_eq!(err(long.as_bytes()).0, -32600);
    // One bad element refuses the batch.
    assert_eq!(
        err(br#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":1,"id":2,"method":"n"}]"#).0,
        -32600
    );
}

#[test]
fn classifier_reuse_does_not_leak_state() {
    let mut c = Classifier::new();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{{"name":"{}"}}}}"#,
        "n".repeat(10_000)
    );
    assert!(c.classify(big.as_bytes()).is_ok());
    let Classified::Single(m) = c.classify(TOOLS_CALL.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(m.target, Target::Name("get_weather".into()));
    assert!(c.classify(b"{").is_err());
    assert!(c.classify(TOOLS_CALL.as_bytes()).is_ok());
}

#[test]
fn error_response_body() {
    let mut out = Vec::new();
    error_response(Some(b"\"7\""), -32602, "Unknown tool: \"x\"\n", &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["id"], Value::String("7".into()));
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["error"]["message"], "Unknown tool: \"x\"\n");
    out.clear();
    error_response(None, -32700, "Parse error", &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["id"], Value::Null);
    assert_eq!(v["jsonrpc"], "2.0");
}

fn id_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z0-9\"\\\\é]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[a-z]{1,4}".prop_map(|s| format!("\"\\u0041{s}\"")),
    ]
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z_/:.é\"\\\\\u{1F600}-]{0,12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn agrees_with_serde_json(
        id in id_strategy(),
        method in prop_oneof![Just("tools/call"), Just("prompts/get"), Just("resources/read"), Just("completion/complete"), Just("ping")],
        name in name_strategy(),
        token in proptest::option::of(id_strategy()),
        pretty in any::<bool>(),
        escape_keys in any::<bool>(),
    ) {
        let name_json = serde_json::to_string(&name).unwrap();
        let params = match method {
            "resources/read" => format!(r#"{{"uri":{name_json}}}"#),
            "completion/complete" => format!(r#"{{"ref":{{"type":"ref/prompt","name":{name_json}}}}}"#),
            _ => format!(r#"{{"name":{name_json},"arguments":{{"k":[1,2,{{"z":null}}]}}}}"#),
        };
        let meta = token.map(|t| format!(r#","_meta":{{"progressToken":{t}}}"#)).unwrap_or_default();
        let params = format!("{}{meta}}}", &params[..params.len() - 1]);
        let method_key = if escape_keys { "\"m\\u0065thod\"" } else { "\"method\"" };
        let mut input = format!(r#"{{"jsonrpc":"2.0","id":{id},{method_key}:"{method}","params":{params}}}"#);
        if pretty {
            let v: Value = serde_json::from_str(&input).unwrap();
            input = serde_json::to_string_pretty(&v).unwrap();
        }
        let reference: Value = serde_json::from_str(&input).unwrap();
        let m = match Classifier::new().classify(input.as_bytes()) {
            Ok(Classified::Single(m)) => m,
            other => return Err(TestCaseError::fail(format!("{other:?} for {input}"))),
        };
        let raw_id: Value = serde_json::from_slice(m.id_bytes(input.as_bytes()).unwrap()).unwrap();
        prop_assert_eq!(&raw_id, &reference["id"]);
        prop_assert_eq!(m.method.as_deref(), reference["method"].as_str());
        let expected_target = match method {
            "resources/read" => Target::Uri(name.clone()),
            "completion/complete" => Target::PromptRef(name.clone()),
            "ping" => Target::None,
            _ => Target::Name(name.clone()),
        };
        prop_assert_eq!(&m.target, &expected_target);
        match m.progress_token_bytes(input.as_bytes()) {
            Some(raw) => prop_assert_eq!(&serde_json::from_slice::<Value>(raw).unwrap(), &reference["params"]["_meta"]["progressToken"]),
            None => prop_assert!(reference["params"].get("_meta").is_none()),
        }
    }
}

#[test]
fn a_large_message_does_not_pin_its_size_in_the_classifier() {
    // Classified correctly either way; the scratch it grew is released afterwards (the only
    // observable sign here is that a second, small message still classifies).
    let mut c = Classifier::new();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{}"}}}}}}"#,
        "x".repeat(1 << 20)
    );
    let m = c.classify(big.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.messages().len(), 1);
    let small = br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let m = c.classify(small).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.messages().first().and_then(|m| m.method.as_deref()),
        Some("ping")
    );
}
