//! Loading ACLs: Gravitee JSON accepted verbatim and round-tripped, the native `[api.acl]` TOML
//! form with the same meaning, and configuration errors that name the rule and field.
#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is the point

use mcpgate_policies::acl::{
    Acl, AclConfig, GraviteeAcl, ListKind, McpRequest, RequestInfo, Target, Verdict,
};
use serde::Deserialize;

const EXAMPLES: [(&str, &str); 5] = [
    ("deny-all", include_str!("../../examples/acl/deny-all.json")),
    (
        "tools-list-only",
        include_str!("../../examples/acl/tools-list-only.json"),
    ),
    (
        "tools-echo-only",
        include_str!("../../examples/acl/tools-echo-only.json"),
    ),
    (
        "resources-and-prompts",
        include_str!("../../examples/acl/resources-and-prompts.json"),
    ),
    (
        "conditional",
        include_str!("../../examples/acl/conditional.json"),
    ),
];

/// The docs' own example, as Gravitee's UI saves it.
const GRAVITEE_DOC_EXAMPLE: &str = r#"{"authorizations":[{"authorizedFeatures":[{"type":"TOOLS","methods":["TOOLS_LIST","TOOLS_CALL"],"patternType":"LITERAL","patternValue":"get_weather"}],"condition":"request.headers['x-team'] == 'weather'"}]}"#;

#[test]
fn gravitee_examples_round_trip() {
    for (name, json) in EXAMPLES
        .iter()
        .copied()
        .chain([("doc", GRAVITEE_DOC_EXAMPLE)])
    {
        let parsed = Acl::parse_gravitee(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = serde_json::to_string(&parsed).unwrap();
        let reparsed: GraviteeAcl = Acl::parse_gravitee(&written).unwrap();
        assert_eq!(parsed, reparsed, "{name}");
        // Every field present in the input survives with the same value.
        let input: serde_json::Value = serde_json::from_str(json).unwrap();
        let output: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_subset(&input, &output, name);
        Acl::from_gravitee_json(json).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn assert_subset(input: &serde_json::Value, output: &serde_json::Value, at: &str) {
    match (input, output) {
        (serde_json::Value::Object(i), serde_json::Value::Object(o)) => {
            for (k, v) in i {
                let got = o.get(k).unwrap_or_else(|| panic!("{at}.{k} lost"));
                assert_subset(v, got, &format!("{at}.{k}"));
            }
        }
        (serde_json::Value::Array(i), serde_json::Value::Array(o)) => {
            assert_eq!(i.len(), o.len(), "{at}");
            for (n, (a, b)) in i.iter().zip(o).enumerate() {
                assert_subset(a, b, &format!("{at}[{n}]"));
            }
        }
        _ => assert_eq!(input, output, "{at}"),
    }
}

#[test]
fn gravitee_doc_example_behaves() {
    let acl = Acl::from_gravitee_json(GRAVITEE_DOC_EXAMPLE).unwrap();
    let headers: &[(&str, &str)] = &[("X-Team", "weather")];
    let ctx = RequestInfo {
        headers,
        ..RequestInfo::default()
    };
    let req = McpRequest::new("tools/call", Target::Name("get_weather"));
    assert_eq!(acl.decide(&req, &ctx).verdict, Verdict::Allow);
    assert_eq!(
        acl.decide(&req, &RequestInfo::default()).verdict,
        Verdict::Refuse
    );
    let mut filter = acl.list_filter(ListKind::Tools, &ctx);
    assert!(filter.keep("get_weather") && !filter.keep("echo"));
}

/// The engine's config embeds the ACL as `[api.acl]`; the same text deserialises here.
#[derive(Deserialize)]
struct EngineLike {
    api: ApiLike,
}
#[derive(Deserialize)]
struct ApiLike {
    acl: AclConfig,
}

#[test]
fn native_toml_means_the_same_as_gravitee_json() {
    let engine: EngineLike = toml::from_str(
        r#"
        [api.acl]
        [[api.acl.rule]]
        type = "TOOLS"
        methods = ["TOOLS_LIST", "TOOLS_CALL"]
        names = ["get_weather"]
        condition = "request.headers['x-team'] == 'weather'"
        "#,
    )
    .unwrap();
    let native = Acl::compile(&engine.api.acl, None).unwrap();
    let gravitee = Acl::from_gravitee_json(GRAVITEE_DOC_EXAMPLE).unwrap();
    let team: &[(&str, &str)] = &[("x-team", "weather")];
    let other: &[(&str, &str)] = &[("x-team", "sales")];
    for headers in [team, other] {
        let ctx = RequestInfo {
            headers,
            ..RequestInfo::default()
        };
        for name in ["get_weather", "echo"] {
            let req = McpRequest::new("tools/call", Target::Name(name));
            assert_eq!(
                native.decide(&req, &ctx).verdict,
                gravitee.decide(&req, &ctx).verdict,
                "{name} {headers:?}"
            );
            assert_eq!(
                native.list_filter(ListKind::Tools, &ctx).keep(name),
                gravitee.list_filter(ListKind::Tools, &ctx).keep(name)
            );
        }
    }
}

#[test]
fn inline_and_file_gravitee_come_before_native_rules() {
    let config: AclConfig = toml::from_str(&format!(
        "gravitee = '''{}'''\n[[rule]]\nmethods = [\"prompts/get\"]\n",
        include_str!("../../examples/acl/tools-echo-only.json")
    ))
    .unwrap();
    let acl = Acl::compile(&config, None).unwrap();
    assert_eq!(acl.rule_count(), 2);
    assert_eq!(acl.rule_label(0), Some("authorizations[0]"));
    assert_eq!(acl.rule_label(1), Some("rule[0]"));
    let config: AclConfig = toml::from_str("gravitee_file = \"acl.json\"").unwrap();
    let acl = Acl::compile(
        &config,
        Some(include_str!("../../examples/acl/tools-list-only.json")),
    )
    .unwrap();
    assert_eq!(acl.rule_count(), 1);
    let err = Acl::compile(&config, None).unwrap_err();
    assert_eq!(err.at, "gravitee_file");
    let both: AclConfig = toml::from_str("gravitee = '{}'\ngravitee_file = \"x\"").unwrap();
    assert!(Acl::compile(&both, Some("{}")).is_err());
}

fn gravitee_err(json: &str) -> (String, String) {
    let err = Acl::from_gravitee_json(json).unwrap_err();
    (err.at, err.message)
}

const OK_FEATURE: &str = r#"{"type":"TOOLS","methods":["TOOLS_LIST"]}"#;

#[test]
fn gravitee_errors_name_rule_and_field() {
    let wrap = |second: &str| {
        format!(
            r#"{{"authorizations":[{{"authorizedFeatures":[{OK_FEATURE}]}},{{"authorizedFeatures":[{OK_FEATURE},{second}]}}]}}"#
        )
    };
    let cases = [
        (
            r#"{"type":"TOOLS","methods":["TOOLS_DELETE"]}"#,
            "authorizations[1].authorizedFeatures[1].methods[0]",
            "TOOLS_DELETE",
        ),
        (
            r#"{"type":"WIDGETS","methods":[]}"#,
            "authorizations[1].authorizedFeatures[1].type",
            "WIDGETS",
        ),
        (
            r#"{"type":"TOOLS","methods":[],"colour":"red"}"#,
            "authorizations[1].authorizedFeatures[1]",
            "colour",
        ),
        (
            r#"{"type":"TOOLS","methods":["PROMPTS_GET"]}"#,
            "authorizations[1].authorizedFeatures[1].methods[0]",
            "not a TOOLS method",
        ),
        (
            r#"{"type":"TOOLS","methods":["TOOLS_CALL"],"patternType":"LITERAL"}"#,
            "authorizations[1].authorizedFeatures[1].patternValue",
            "LITERAL",
        ),
        (
            r#"{"type":"TOOLS","methods":["TOOLS_CALL"],"patternType":"EXPRESSION","patternValue":"a)|(b"}"#,
            "authorizations[1].authorizedFeatures[1].patternValue",
            "regular expression",
        ),
        (
            r#"{"type":"TOOLS","methods":["TOOLS_CALL"],"patternType":"GLOB","patternValue":"*"}"#,
            "authorizations[1].authorizedFeatures[1].patternType",
            "GLOB",
        ),
        (
            r#"{"type":"TOOLS","type":"PROMPTS","methods":[]}"#,
            "authorizations[1].authorizedFeatures[1]",
            "duplicate field",
        ),
    ];
    for (feature, at, needle) in cases {
        let (got_at, message) = gravitee_err(&wrap(feature));
        assert!(
            got_at.starts_with(at),
            "{feature}: at {got_at:?}, want {at:?}"
        );
        assert!(
            message.contains(needle),
            "{feature}: {message:?} lacks {needle:?}"
        );
    }
    let (at, message) = gravitee_err(
        r#"{"authorizations":[{"authorizedFeatures":[],"condition":"request.path =="}]}"#,
    );
    assert_eq!(at, "authorizations[0].condition");
    assert!(!message.is_empty());
    let (at, _) = gravitee_err(r#"{"authorizations":[],"extra":1}"#);
    assert_eq!(at, "extra");
    let (_, message) = gravitee_err(r#"{"authorizations":[]} trailing"#);
    assert!(message.contains("trailing"), "{message}");
}

#[test]
fn native_errors_name_rule_and_field() {
    let compile = |text: &str| {
        let config: AclConfig = toml::from_str(text).unwrap();
        Acl::compile(&config, None).unwrap_err()
    };
    let ok = "[[rule]]\nmethods = [\"tools/list\"]\n";
    let err = compile(&format!(
        "{ok}[[rule]]\ntype = \"TOOLS\"\nmethods = [\"prompts/get\"]\n"
    ));
    assert_eq!(err.at, "rule[1].methods[0]");
    let err = compile(&format!("{ok}[[rule]]\nnames = [\"x\"]\n"));
    assert_eq!(err.at, "rule[1].methods");
    let err = compile(&format!(
        "{ok}[[rule]]\nmethods = [\"tools/call\"]\nnames = []\n"
    ));
    assert_eq!(err.at, "rule[1].names");
    let err = compile(&format!(
        "{ok}[[rule]]\nmethods = [\"tools/call\"]\nnames = [\"a\"]\npattern = \"a\"\n"
    ));
    assert_eq!(err.at, "rule[1]");
    let err = compile(&format!(
        "{ok}[[rule]]\nmethods = [\"tools/call\"]\ncondition = \"auth.subject ==\"\n"
    ));
    assert_eq!(err.at, "rule[1].condition");
    let err = compile(&format!(
        "{ok}[[rule]]\nmethods = [\"tools/call\"]\nrefusal = {{ code = 99999999999, message = \"x\" }}\n"
    ));
    assert_eq!(err.at, "rule[1].refusal.code");
    // Unknown fields and methods are refused by the deserialiser, which names the key and line.
    for bad in [
        "[[rule]]\nmethods = [\"tools/delete\"]\n",
        "[[rule]]\nmethods = [\"tools/list\"]\ncolour = \"red\"\n",
        "dryrun = true\n",
        "server_requests = { sampling = \"maybe\" }\n",
    ] {
        let err = toml::from_str::<AclConfig>(bad).unwrap_err().to_string();
        assert!(err.contains("line"), "{bad}: {err}");
    }
}

#[test]
fn warnings_flag_probable_mistakes() {
    let acl = Acl::from_gravitee_json(
        r#"{"authorizations":[{"authorizedFeatures":[{"type":"TOOLS"},{"type":"TOOLS","methods":["TOOLS_LIST"],"patternValue":"stale"}]},{}]}"#,
    )
    .unwrap();
    let warnings = acl.warnings().join("\n");
    assert!(warnings.contains("authorizations[0].authorizedFeatures[0]: no methods"));
    assert!(warnings.contains("authorizations[0].authorizedFeatures[1].patternValue: ignored"));
    assert!(warnings.contains("authorizations[1]: no authorizedFeatures"));
}
