//! Differential test of what the ACL judges against what an upstream acts on (issue 21): the
//! same request bodies go to the gateway's classifier (and its resource-URI check) and to the
//! official SDKs' own decoding — TypeScript (`readRequestBody`, `JSON.parse`,
//! `JSONRPCMessageSchema`, `new URL`) and Python (`json.loads`, `JSONRPCMessage`, `AnyUrl`).
//!
//! Whenever the gateway accepts a message (and so would judge and forward it), each SDK that
//! accepts it too must read the same method, the same name, the same id (by JSON-RPC value), and
//! resolve the resource URI to exactly the text the ACL matched. A disagreement is a way around
//! the ACL; the test prints the body and both readings.
//!
//! The corpus is generated from a fixed seed: hostile spellings of methods, names, ids and URIs
//! (escapes, duplicate keys, `-0`, dot segments, percent-escapes, case, whitespace, backslashes,
//! odd hosts and ports) combined at random, plus byte-level mutations.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use mcpgate_codec::jsonrpc::{Classified, Classifier, Kind, Target};
use mcpgate_policies::acl::uri;
use mcpgate_tests::process::run_to_completion;
use mcpgate_tests::Sdk;
use serde_json::Value;

const CASES: usize = 8000;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items
            .get(self.below(items.len()))
            .copied()
            .unwrap_or_default()
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const METHODS: &[&str] = &[
    "tools/call",
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "completion/complete",
    "tools/list",
    "ping",
    r"\u0074ools/call",
    r"resources\/read",
    "Tools/call",
    "tools/call ",
    r"tools/call\u0000",
    r"resources/rea\u0064",
];

const NAMES: &[&str] = &[
    "echo",
    "get-sum",
    r"\u0065cho",
    r"ech\u006F",
    r"get\u002dsum",
    "Echo",
    "echo ",
    r"echo\u0000",
    r"echo\u200b",
    r"\ud83d\ude00",
    r"\ud800",
    "é",
    r"e\/cho",
];

const IDS: &[&str] = &[
    "1",
    "-0",
    "0",
    "-1",
    "9007199254740991",
    "\"1\"",
    r#""\u0031""#,
    r#""a\"b""#,
    "1.0",
    "1e0",
    "null",
    "true",
    "[1]",
];

/// URI bases and the hostile edits applied to them.
const URI_BASES: &[&str] = &[
    "demo://resource/static/document/architecture.md",
    "demo://resource/dynamic/text/42",
    "file:///home/user/notes.txt",
    "https://example.com/a/b.txt",
    "http://127.0.0.1:3001/x",
    "https://Example.COM:443/p?q=1",
    "http://[::1]:8080/x",
    "urn:isbn:0451450523",
    "mailto:someone@example.com",
    "demo:opaque/path",
    "s3://bucket/key",
];

const URI_EDITS: &[&str] = &[
    "",
    "/../secret",
    "/%2e%2e/secret",
    "/%2E%2e/secret",
    "/.%2e/secret",
    "/./x",
    "/.\t./secret",
    "/..\n/secret",
    "\\..\\secret",
    "/%61",
    "/%7e",
    "/%2f",
    "/%zz",
    "/a b",
    "#/../frag",
    "?q=/../x",
    "?q='a'",
    "/é",
    "//double",
    "/x/..",
];

const HOST_EDITS: &[(&str, &str)] = &[
    ("example.com", "EXAMPLE.com"),
    ("example.com", "ex%61mple.com"),
    ("127.0.0.1", "127.1"),
    ("127.0.0.1", "0x7f.0.0.1"),
    ("127.0.0.1", "2130706433"),
    (":3001", ":03001"),
    (":443", ":443"),
    (":8080", ":"),
    ("[::1]", "[0:0::1]"),
    ("[::1]", "[::FFFF:7f00:1]"),
    ("demo://", "DEMO://"),
    ("https://", "HTTPS://"),
    ("https://", "https:"),
    ("file:///", "file://localhost/"),
];

fn uri(rng: &mut Rng) -> String {
    let mut u = rng.pick(URI_BASES).to_owned();
    if rng.chance(3) {
        let (from, to) = HOST_EDITS
            .get(rng.below(HOST_EDITS.len()))
            .copied()
            .unwrap_or(("", ""));
        if !from.is_empty() {
            u = u.replacen(from, to, 1);
        }
    }
    u.push_str(rng.pick(URI_EDITS));
    if rng.chance(4) {
        u.push_str(rng.pick(URI_EDITS));
    }
    u
}

/// A JSON string literal of `raw` (which may already hold JSON escapes from the tables): plain
/// characters that JSON forbids unescaped (tabs, newlines) are escaped, nothing else.
fn json_str(raw: &str) -> String {
    let mut out = String::from("\"");
    for c in raw.chars() {
        match c {
            '\t' => out.push_str(r"\t"),
            '\n' => out.push_str(r"\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn key(rng: &mut Rng, k: &str) -> String {
    if rng.chance(12) {
        // The key spelled with an escape: the same member to every parser.
        let mut chars = k.chars();
        let first = chars.next().map(u32::from).unwrap_or_default();
        format!("\"\\u{first:04x}{}\"", chars.as_str())
    } else {
        format!("\"{k}\"")
    }
}

fn message(rng: &mut Rng) -> Vec<u8> {
    // Half the corpus reads resources: URIs are where parsers differ most.
    let method = if rng.chance(2) {
        rng.pick(&["resources/read", "resources/subscribe"])
    } else {
        rng.pick(METHODS)
    };
    let mut params: Vec<String> = Vec::new();
    let bare_method = method.replace(r"\u0074", "t");
    if bare_method.contains("complet") {
        let reference = if rng.chance(2) {
            format!(
                r#"{{"type":"ref/prompt","name":{}}}"#,
                json_str(rng.pick(NAMES))
            )
        } else {
            format!(r#"{{"type":"ref/resource","uri":{}}}"#, json_str(&uri(rng)))
        };
        params.push(format!("{}:{reference}", key(rng, "ref")));
        params.push(r#""argument":{"name":"x","value":"y"}"#.to_owned());
    } else if bare_method.contains("resources") {
        params.push(format!("{}:{}", key(rng, "uri"), json_str(&uri(rng))));
    } else {
        params.push(format!(
            "{}:{}",
            key(rng, "name"),
            json_str(rng.pick(NAMES))
        ));
        params.push(r#""arguments":{"message":"hi","a":1,"b":2}"#.to_owned());
    }
    if rng.chance(8) {
        // A second copy of the target member: parsers disagree on which wins.
        let dup = if bare_method.contains("resources") {
            format!(r#""uri":{}"#, json_str(&uri(rng)))
        } else {
            format!(r#""name":{}"#, json_str(rng.pick(NAMES)))
        };
        params.push(dup);
    }
    let mut members = vec![
        format!("{}:\"2.0\"", key(rng, "jsonrpc")),
        format!("{}:{}", key(rng, "method"), json_str(method)),
        format!("{}:{{{}}}", key(rng, "params"), params.join(",")),
    ];
    if !rng.chance(6) {
        members.push(format!("{}:{}", key(rng, "id"), rng.pick(IDS)));
    }
    if rng.chance(10) {
        members.push(format!(r#""method":{}"#, json_str(rng.pick(METHODS))));
    }
    if rng.chance(10) {
        members.push(format!(r#""id":{}"#, rng.pick(IDS)));
    }
    // Member order does not matter to JSON; it does to "last one wins" parsers.
    for i in (1..members.len()).rev() {
        members.swap(i, rng.below(i + 1));
    }
    let ws = if rng.chance(5) { " \n\t" } else { "" };
    let mut body = format!("{{{ws}{}{ws}}}", members.join(&format!(",{ws}"))).into_bytes();
    if rng.chance(15) && !body.is_empty() {
        // A byte-level mutation: most make invalid JSON for everyone, some do not.
        let at = rng.below(body.len());
        let replacement = [b'"', b'\\', b'\0', 0xC3, 0xFF, b'}', b'{', b','][rng.below(8)];
        if let Some(b) = body.get_mut(at) {
            *b = replacement;
        }
    }
    if rng.chance(40) {
        let mut with_bom = vec![0xEF, 0xBB, 0xBF];
        with_bom.extend_from_slice(&body);
        body = with_bom;
    }
    body
}

/// What the gateway judges of one body; `None` when it refuses the body (nothing forwarded
/// on an API with an ACL) or the message is outside what is compared.
#[derive(Debug)]
struct GatewayView {
    method: String,
    id: Option<Value>,
    name: Option<String>,
    /// A `params.uri` in normal form (a URI the ACL judges as written).
    uri: Option<String>,
}

fn gateway_view(classifier: &mut Classifier, body: &[u8]) -> Option<GatewayView> {
    let Ok(Classified::Single(m)) = classifier.classify(body) else {
        return None;
    };
    if !matches!(m.kind, Kind::Request | Kind::Notification) {
        return None;
    }
    let id = match m.id_bytes(body) {
        Some(raw) => Some(serde_json::from_slice(raw).ok()?),
        None => None,
    };
    let (name, uri) = match &m.target {
        Target::Name(n) | Target::PromptRef(n) => (Some(n.clone()), None),
        Target::Uri(u) => {
            // A URI not in normal form is refused by the ACL: nothing is forwarded.
            uri::check(u).ok()?;
            (None, Some(u.clone()))
        }
        Target::ResourceRef(_) | Target::None => (None, None),
    };
    Some(GatewayView {
        method: m.method.clone()?,
        id,
        name,
        uri,
    })
}

/// Equal as JSON-RPC ids: numbers by value (`-0` is `0`), strings as decoded.
fn same_id(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Checks one SDK's reading against the gateway's; the disagreements, described.
fn disagreements(gw: &GatewayView, sdk: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if sdk["method"].as_str() != Some(gw.method.as_str()) {
        found.push(format!(
            "method: gateway {:?}, sdk {}",
            gw.method, sdk["method"]
        ));
    }
    match (&gw.id, sdk["hasId"].as_bool()) {
        (Some(id), Some(true)) if !same_id(id, &sdk["id"]) => {
            found.push(format!("id: gateway {id}, sdk {}", sdk["id"]))
        }
        (Some(_), Some(false)) | (None, Some(true)) => found.push(format!(
            "request vs notification: gateway id {:?}, sdk {}",
            gw.id, sdk["id"]
        )),
        _ => {}
    }
    let names_governed = matches!(gw.method.as_str(), "tools/call" | "prompts/get");
    if names_governed && sdk["name"].as_str() != gw.name.as_deref() {
        found.push(format!("name: gateway {:?}, sdk {}", gw.name, sdk["name"]));
    }
    if let Some(u) = &gw.uri {
        if sdk["uri"].as_str() != Some(u.as_str()) {
            found.push(format!("uri: gateway {u:?}, sdk {}", sdk["uri"]));
        }
        // What the upstream looks the resource up by; `null` = it refuses the URI itself.
        match &sdk["uriHref"] {
            Value::String(href) if href != u => found.push(format!(
                "resolved uri: gateway judged {u:?}, sdk acts on {href:?}"
            )),
            _ => {}
        }
    }
    found
}

fn sdk_views(sdk: Sdk, script: &str, corpus: &std::path::Path, expected: usize) -> Vec<Value> {
    let mut command = sdk.script_command(script);
    command.arg(corpus);
    let finished = run_to_completion(command, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{sdk:?} differential script: {e}"));
    assert!(
        finished.status.is_some_and(|s| s.success()) && !finished.timed_out,
        "{sdk:?} differential script failed: {}",
        finished.stderr
    );
    let views: Vec<Value> = finished
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{sdk:?} printed {l:?}: {e}")))
        .collect();
    assert_eq!(views.len(), expected, "{sdk:?} answered every body");
    views
}

#[test]
fn the_gateway_judges_what_the_sdks_act_on() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let bodies: Vec<Vec<u8>> = (0..CASES).map(|_| message(&mut rng)).collect();
    let corpus =
        std::env::temp_dir().join(format!("mcpgate-differential-{}.b64", std::process::id()));
    let text: String = bodies
        .iter()
        .map(|b| base64::engine::general_purpose::STANDARD.encode(b) + "\n")
        .collect();
    std::fs::write(&corpus, text).unwrap_or_else(|e| panic!("{e}"));
    let ts = sdk_views(Sdk::TypeScript, "differential.mjs", &corpus, bodies.len());
    let py = sdk_views(Sdk::Python, "differential.py", &corpus, bodies.len());
    let _ = std::fs::remove_file(&corpus);

    let mut classifier = Classifier::new();
    let mut compared: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let Some(gw) = gateway_view(&mut classifier, body) else {
            continue;
        };
        for (sdk, views) in [("typescript", &ts), ("python", &py)] {
            let Some(view) = views.get(i).filter(|v| v["ok"] == Value::Bool(true)) else {
                continue;
            };
            *compared.entry(sdk).or_default() += 1;
            if gw.uri.is_some() {
                *compared.entry("uri").or_default() += 1;
            }
            for d in disagreements(&gw, view) {
                failures.push(format!(
                    "{sdk}: {d}\n    body: {}",
                    String::from_utf8_lossy(body)
                ));
            }
        }
    }
    eprintln!("compared: {compared:?}");
    assert!(
        failures.is_empty(),
        "{} disagreements, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Not vacuous: many bodies were accepted by the gateway and an SDK alike.
    for (what, min) in [("typescript", 1000), ("python", 1000), ("uri", 500)] {
        let n = compared.get(what).copied().unwrap_or_default();
        assert!(n >= min, "only {n} comparisons for {what}: {compared:?}");
    }
}
