//! The ACL's behaviour as a client sees it: the seed guide's scenarios for tools, resources and
//! prompts, patterns, conditions, dry-run, and the ways around the ACL that must stay closed.
#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is the point

use mcpgate_policies::acl::{
    Acl, AclConfig, AuthInfo, Basis, ListKind, McpRequest, Outcome, RequestInfo, Target, Verdict,
    INVALID_PARAMS, METHOD_NOT_FOUND, RESOURCE_NOT_FOUND,
};

const DENY_ALL: &str = include_str!("../../examples/acl/deny-all.json");
const TOOLS_LIST_ONLY: &str = include_str!("../../examples/acl/tools-list-only.json");
const TOOLS_ECHO_ONLY: &str = include_str!("../../examples/acl/tools-echo-only.json");
const RESOURCES_AND_PROMPTS: &str = include_str!("../../examples/acl/resources-and-prompts.json");
const CONDITIONAL: &str = include_str!("../../examples/acl/conditional.json");

fn acl(json: &str) -> Acl {
    Acl::from_gravitee_json(json).unwrap()
}

fn native(toml_text: &str) -> Acl {
    let config: AclConfig = toml::from_str(toml_text).unwrap();
    Acl::compile(&config, None).unwrap()
}

fn no_ctx() -> RequestInfo<'static> {
    RequestInfo::default()
}

fn verdict(acl: &Acl, method: &str, target: Target<'_>) -> Verdict {
    acl.decide(&McpRequest::new(method, target), &no_ctx())
        .verdict
}

fn visible(acl: &Acl, kind: ListKind, keys: &[&str]) -> Vec<String> {
    let ctx = no_ctx();
    let mut filter = acl.list_filter(kind, &ctx);
    keys.iter()
        .filter(|k| filter.keep(k))
        .map(|k| k.to_string())
        .collect()
}

const TOOLS: &[&str] = &["echo", "add", "longRunningOperation", "xecho", "echox"];

#[test]
fn no_rules_connects_but_sees_and_calls_nothing() {
    for acl in [acl(DENY_ALL), native(""), acl("{}")] {
        for method in [
            "initialize",
            "ping",
            "notifications/initialized",
            "notifications/cancelled",
            "logging/setLevel",
            "tasks/list",
        ] {
            let d = acl.decide(&McpRequest::new(method, Target::None), &no_ctx());
            assert_eq!(d.verdict, Verdict::Allow, "{method}");
            assert_eq!(d.basis, Basis::NotGoverned, "{method}");
        }
        // completion/complete with no ref names nothing the ACL hides.
        assert_eq!(
            verdict(&acl, "completion/complete", Target::None),
            Verdict::Allow
        );
        for kind in [
            ListKind::Tools,
            ListKind::Prompts,
            ListKind::Resources,
            ListKind::ResourceTemplates,
        ] {
            let d = acl.decide(&McpRequest::new(kind.method(), Target::None), &no_ctx());
            assert_eq!((d.verdict, d.list), (Verdict::Allow, Some(kind)));
            let ctx = no_ctx();
            let filter = acl.list_filter(kind, &ctx);
            assert!(filter.keeps_none() && !filter.keeps_all());
            assert!(visible(&acl, kind, TOOLS).is_empty());
        }
        let d = acl.decide(
            &McpRequest::new("tools/call", Target::Name("echo")),
            &no_ctx(),
        );
        assert_eq!(d.verdict, Verdict::Refuse);
        assert_eq!(d.basis, Basis::ImplicitDeny);
        let err = d.error.unwrap();
        assert_eq!(
            (err.code, err.message.as_ref()),
            (INVALID_PARAMS, "Unknown tool: echo")
        );
        let d = acl.decide(
            &McpRequest::new("prompts/get", Target::Name("p")),
            &no_ctx(),
        );
        assert_eq!(d.error.unwrap().code, INVALID_PARAMS);
        let d = acl.decide(
            &McpRequest::new("resources/read", Target::Uri("a://b")),
            &no_ctx(),
        );
        let err = d.error.unwrap();
        assert_eq!(
            (err.code, err.message.as_ref()),
            (RESOURCE_NOT_FOUND, "Resource not found")
        );
    }
}

#[test]
fn tools_list_any_only_lists_everything_calls_nothing() {
    let acl = acl(TOOLS_LIST_ONLY);
    let ctx = no_ctx();
    assert!(acl.list_filter(ListKind::Tools, &ctx).keeps_all());
    assert_eq!(visible(&acl, ListKind::Tools, TOOLS), TOOLS);
    for tool in TOOLS {
        assert_eq!(
            verdict(&acl, "tools/call", Target::Name(tool)),
            Verdict::Refuse
        );
    }
    // Granting tools says nothing about prompts or resources.
    assert!(visible(&acl, ListKind::Prompts, &["echo"]).is_empty());
}

#[test]
fn tools_literal_echo_is_the_only_tool() {
    for acl in [
        acl(TOOLS_ECHO_ONLY),
        native("[[rule]]\nmethods = [\"tools/list\", \"tools/call\"]\nnames = [\"echo\"]\n"),
    ] {
        assert_eq!(visible(&acl, ListKind::Tools, TOOLS), ["echo"]);
        let d = acl.decide(
            &McpRequest::new("tools/call", Target::Name("echo")),
            &no_ctx(),
        );
        assert_eq!((d.verdict, d.basis), (Verdict::Allow, Basis::Rule(0)));
        for other in ["add", "xecho", "echox", "Echo", "echo ", ""] {
            assert_eq!(
                verdict(&acl, "tools/call", Target::Name(other)),
                Verdict::Refuse,
                "{other:?}"
            );
        }
    }
}

#[test]
fn resources_and_prompts_follow_the_same_rules() {
    let acl = acl(RESOURCES_AND_PROMPTS);
    let uris = [
        "demo://resource/static/document/architecture.md",
        "demo://resource/static/document/how-it-works.md",
        "demo://resource/static/document/Architecture.md",
        "demo://resource/static/document/notes.txt",
        "xdemo://resource/static/document/a.md",
        "demo://resource/dynamic/text/1",
    ];
    assert_eq!(
        visible(&acl, ListKind::Resources, &uris),
        [
            "demo://resource/static/document/architecture.md",
            "demo://resource/static/document/how-it-works.md"
        ]
    );
    assert_eq!(
        visible(
            &acl,
            ListKind::ResourceTemplates,
            &[
                "demo://resource/dynamic/text/{resourceId}",
                "demo://resource/dynamic/blob/{resourceId}"
            ]
        ),
        ["demo://resource/dynamic/text/{resourceId}"]
    );
    assert_eq!(
        verdict(
            &acl,
            "resources/read",
            Target::Uri("demo://resource/static/document/features.md")
        ),
        Verdict::Allow
    );
    assert_eq!(
        verdict(
            &acl,
            "resources/read",
            Target::Uri("demo://resource/static/document/../secret.md")
        ),
        Verdict::Refuse
    );
    for method in ["resources/subscribe", "resources/unsubscribe"] {
        assert_eq!(
            verdict(
                &acl,
                method,
                Target::Uri("demo://resource/static/document/features.md")
            ),
            Verdict::Allow
        );
        assert_eq!(
            verdict(&acl, method, Target::Uri("demo://resource/dynamic/text/1")),
            Verdict::Refuse
        );
    }
    assert_eq!(
        visible(
            &acl,
            ListKind::Prompts,
            &[
                "simple-prompt",
                "args-prompt",
                "completable-prompt",
                "resource-prompt"
            ]
        ),
        ["simple-prompt", "args-prompt", "completable-prompt"]
    );
    assert_eq!(
        verdict(&acl, "prompts/get", Target::Name("simple-prompt")),
        Verdict::Allow
    );
    let d = acl.decide(
        &McpRequest::new("prompts/get", Target::Name("resource-prompt")),
        &no_ctx(),
    );
    let err = d.error.unwrap();
    assert_eq!(
        (err.code, err.message.as_ref()),
        (INVALID_PARAMS, "Unknown prompt: resource-prompt")
    );
    // Tools were not granted at all.
    assert_eq!(
        verdict(&acl, "tools/call", Target::Name("echo")),
        Verdict::Refuse
    );
}

#[test]
fn subscribe_needs_its_own_grant() {
    let read_only = native("[[rule]]\nmethods = [\"resources/read\"]\n");
    assert_eq!(
        verdict(&read_only, "resources/read", Target::Uri("a://1")),
        Verdict::Allow
    );
    assert_eq!(
        verdict(&read_only, "resources/subscribe", Target::Uri("a://1")),
        Verdict::Refuse
    );
    let subscribe = native("[[rule]]\nmethods = [\"RESOURCES_SUBSCRIBE\"]\n");
    assert_eq!(
        verdict(&subscribe, "resources/subscribe", Target::Uri("a://1")),
        Verdict::Allow
    );
    assert_eq!(
        verdict(&subscribe, "resources/read", Target::Uri("a://1")),
        Verdict::Refuse
    );
}

#[test]
fn expression_patterns_are_anchored() {
    let acl = native("[[rule]]\nmethods = [\"tools/list\", \"tools/call\"]\npattern = \"ec.o\"\n");
    assert_eq!(visible(&acl, ListKind::Tools, TOOLS), ["echo"]);
    assert_eq!(
        verdict(&acl, "tools/call", Target::Name("xecho")),
        Verdict::Refuse
    );
    assert_eq!(
        verdict(&acl, "tools/call", Target::Name("echox")),
        Verdict::Refuse
    );
    assert_eq!(
        verdict(&acl, "tools/call", Target::Name("ecXo")),
        Verdict::Allow
    );
    let alternation = acl_json_expression("a|b");
    assert_eq!(
        verdict(&alternation, "tools/call", Target::Name("ab")),
        Verdict::Refuse
    );
    assert_eq!(
        verdict(&alternation, "tools/call", Target::Name("b")),
        Verdict::Allow
    );
}

fn acl_json_expression(regex: &str) -> Acl {
    acl(&format!(
        r#"{{"authorizations":[{{"authorizedFeatures":[{{"type":"TOOLS","methods":["TOOLS_CALL"],"patternType":"EXPRESSION","patternValue":{}}}]}}]}}"#,
        serde_json::to_string(regex).unwrap()
    ))
}

#[test]
fn condition_on_a_header() {
    let acl = acl(CONDITIONAL);
    const GOLD: &[(&str, &str)] = &[("X-Tier", "gold")];
    const SILVER: &[(&str, &str)] = &[("x-tier", "silver")];
    let with = |headers: &'static [(&'static str, &'static str)]| RequestInfo {
        method: "POST",
        path: "/mcp",
        headers,
        ..RequestInfo::default()
    };
    let req = McpRequest::new("tools/call", Target::Name("get-sum"));
    let d = acl.decide(&req, &with(GOLD));
    assert_eq!((d.verdict, d.basis), (Verdict::Allow, Basis::Rule(1)));
    assert_eq!(acl.decide(&req, &with(SILVER)).verdict, Verdict::Refuse);
    // Header missing: the condition errors (no such key); fail closed and say why.
    let d = acl.decide(&req, &with(&[]));
    assert_eq!(d.verdict, Verdict::Refuse);
    assert_eq!(d.condition_failure.as_ref().map(|f| f.rule), Some(1));
    // The pattern is checked before the condition: a gold caller still cannot call `rm`.
    let d = acl.decide(
        &McpRequest::new("tools/call", Target::Name("rm")),
        &with(GOLD),
    );
    assert_eq!(d.verdict, Verdict::Refuse);
    assert_eq!(d.condition_failure, None);
}

#[test]
fn condition_on_a_claim_and_scopes() {
    let acl = native(
        r#"
        [[rule]]
        methods = ["tools/call", "tools/list"]
        names = ["deploy"]
        condition = "auth.claims.role == 'admin' && 'deploy' in auth.scopes"
        "#,
    );
    let mut claims = serde_json::Map::new();
    claims.insert("role".into(), "admin".into());
    let admin = AuthInfo {
        subject: "alice".into(),
        scopes: vec!["deploy".into()],
        claims,
        ..AuthInfo::default()
    };
    let user = AuthInfo {
        subject: "bob".into(),
        scopes: vec!["deploy".into()],
        ..AuthInfo::default()
    };
    let req = McpRequest::new("tools/call", Target::Name("deploy"));
    let as_ = |auth| RequestInfo {
        auth: Some(auth),
        ..RequestInfo::default()
    };
    assert_eq!(acl.decide(&req, &as_(&admin)).verdict, Verdict::Allow);
    assert_eq!(acl.decide(&req, &as_(&user)).verdict, Verdict::Refuse);
    // Lists honour the same condition.
    let ctx = as_(&admin);
    assert!(acl.list_filter(ListKind::Tools, &ctx).keep("deploy"));
    let ctx = as_(&user);
    let mut filter = acl.list_filter(ListKind::Tools, &ctx);
    assert!(!filter.keep("deploy"));
    assert!(
        filter.condition_failure().is_some(),
        "no such claim is an error"
    );
}

#[test]
fn list_conditions_may_look_at_each_entry() {
    let acl = native(
        r#"
        [[rule]]
        methods = ["tools/list"]
        condition = "mcp.name.startsWith('read_') && mcp.method == 'tools/list'"
        "#,
    );
    assert_eq!(
        visible(
            &acl,
            ListKind::Tools,
            &["read_file", "write_file", "read_dir"]
        ),
        ["read_file", "read_dir"]
    );
}

#[test]
fn dry_run_decides_but_lets_through() {
    let config: AclConfig = toml::from_str(
        "dry_run = true\n[[rule]]\nmethods = [\"tools/list\", \"tools/call\"]\nnames = [\"echo\"]\n",
    )
    .unwrap();
    let acl = Acl::compile(&config, None).unwrap();
    let d = acl.decide(
        &McpRequest::new("tools/call", Target::Name("add")),
        &no_ctx(),
    );
    assert_eq!(d.verdict, Verdict::Refuse);
    assert!(d.dry_run && d.lets_through());
    assert_eq!(d.record().outcome, Outcome::DryRunRefused);
    let d = acl.decide(
        &McpRequest::new("tools/call", Target::Name("echo")),
        &no_ctx(),
    );
    assert!(!d.dry_run && d.lets_through());
    let ctx = no_ctx();
    let mut filter = acl.list_filter(ListKind::Tools, &ctx);
    assert!(TOOLS.iter().all(|t| filter.keep(t)));
    assert_eq!(filter.counts(), (1, 4));
    assert_eq!(filter.record().filtered, 4);
}

#[test]
fn near_miss_method_names_are_refused() {
    let acl = acl(TOOLS_LIST_ONLY);
    for method in [
        "Tools/Call",
        "TOOLS/CALL",
        "tools/call ",
        "\ttools/call",
        "tools/ｃall",
        "Resources/Read",
    ] {
        let d = acl.decide(&McpRequest::new(method, Target::Name("echo")), &no_ctx());
        assert_eq!(d.verdict, Verdict::Refuse, "{method:?}");
        assert_eq!(d.basis, Basis::DisguisedMethod);
        assert_eq!(d.error.unwrap().code, METHOD_NOT_FOUND);
    }
    // A near-miss list method is refused too, rather than relayed unfiltered.
    assert_eq!(verdict(&acl, "Tools/List", Target::None), Verdict::Refuse);
}

#[test]
fn completion_refs_are_judged_like_their_targets() {
    let acl = acl(RESOURCES_AND_PROMPTS);
    let v = |t| verdict(&acl, "completion/complete", t);
    assert_eq!(v(Target::PromptRef("simple-prompt")), Verdict::Allow);
    assert_eq!(v(Target::PromptRef("resource-prompt")), Verdict::Refuse);
    assert_eq!(
        v(Target::ResourceRef(
            "demo://resource/static/document/startup.md"
        )),
        Verdict::Allow
    );
    assert_eq!(
        v(Target::ResourceRef("demo://resource/dynamic/text/{x}")),
        Verdict::Refuse
    );
    let d = acl.decide(
        &McpRequest::new(
            "completion/complete",
            Target::ResourceRef("demo://resource/dynamic/text/{x}"),
        ),
        &no_ctx(),
    );
    assert_eq!(d.error.unwrap().code, RESOURCE_NOT_FOUND);
}

#[test]
fn missing_or_wrong_targets_are_refused() {
    let acl = native("[[rule]]\ntype = \"tools\"\n[[rule]]\ntype = \"resources\"\n");
    for (method, target) in [
        ("tools/call", Target::None),
        ("tools/call", Target::Uri("echo")),
        ("resources/read", Target::Name("x")),
        ("resources/subscribe", Target::None),
        ("prompts/get", Target::None),
        ("completion/complete", Target::Name("x")),
    ] {
        let d = acl.decide(&McpRequest::new(method, target), &no_ctx());
        assert_eq!(
            (d.verdict, d.basis),
            (Verdict::Refuse, Basis::MissingTarget),
            "{method}"
        );
        assert_eq!(d.error.unwrap().code, INVALID_PARAMS);
    }
}

#[test]
fn server_messages() {
    let acl = native(
        r#"
        server_requests = { sampling = "deny" }
        [[rule]]
        methods = ["resources/read"]
        names = ["file:///ok"]
        "#,
    );
    let s = |method, target| {
        acl.decide_server_message(&McpRequest::new(method, target), &no_ctx())
            .verdict
    };
    assert_eq!(
        s("notifications/resources/updated", Target::Uri("file:///ok")),
        Verdict::Allow
    );
    assert_eq!(
        s(
            "notifications/resources/updated",
            Target::Uri("file:///secret")
        ),
        Verdict::Drop
    );
    assert_eq!(
        s("notifications/resources/updated", Target::None),
        Verdict::Drop
    );
    assert_eq!(s("sampling/createMessage", Target::None), Verdict::Refuse);
    assert_eq!(s("elicitation/create", Target::None), Verdict::Allow);
    assert_eq!(s("roots/list", Target::None), Verdict::Allow);
    for list_changed in [
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
        "notifications/message",
        "notifications/progress",
        "ping",
    ] {
        assert_eq!(
            s(list_changed, Target::None),
            Verdict::Allow,
            "{list_changed}"
        );
    }
    assert_eq!(s("Sampling/CreateMessage", Target::None), Verdict::Refuse);
}

#[test]
fn explicit_refusal_replaces_the_default_error() {
    let acl = native(
        r#"
        [[rule]]
        methods = ["tools/list", "tools/call"]
        pattern = "premium_.*"
        condition = "request.headers['x-plan'] == 'premium'"
        refusal = { code = -32001, message = "Upgrade to premium" }
        "#,
    );
    let d = acl.decide(
        &McpRequest::new("tools/call", Target::Name("premium_x")),
        &no_ctx(),
    );
    let err = d.error.unwrap();
    assert_eq!(
        (err.code, err.message.as_ref()),
        (-32001, "Upgrade to premium")
    );
    // Outside the rule's pattern the default, revealing nothing, still applies.
    let d = acl.decide(
        &McpRequest::new("tools/call", Target::Name("other")),
        &no_ctx(),
    );
    assert_eq!(d.error.unwrap().code, INVALID_PARAMS);
}

#[test]
fn the_lowest_unconditional_rule_is_reported() {
    let acl = native(
        r#"
        [[rule]]
        methods = ["tools/call"]
        pattern = "e.*"
        [[rule]]
        methods = ["tools/call"]
        names = ["echo"]
        [[rule]]
        methods = ["tools/call"]
        "#,
    );
    let rule = |name| {
        acl.decide(
            &McpRequest::new("tools/call", Target::Name(name)),
            &no_ctx(),
        )
        .basis
    };
    assert_eq!(rule("echo"), Basis::Rule(0));
    assert_eq!(rule("add"), Basis::Rule(2));
    assert_eq!(acl.rule_label(1), Some("rule[1]"));
}

#[test]
fn default_refusal_does_not_echo_huge_names() {
    let acl = acl(DENY_ALL);
    let long = "x".repeat(10_000);
    let d = acl.decide(
        &McpRequest::new("tools/call", Target::Name(&long)),
        &no_ctx(),
    );
    assert!(d.error.unwrap().message.len() < 200);
}

#[test]
fn hundred_literal_names() {
    let names: Vec<String> = (0..100).map(|i| format!("tool_{i}")).collect();
    let config = AclConfig {
        rules: vec![mcpgate_policies::acl::RuleConfig {
            methods: vec![
                mcpgate_policies::acl::AclMethod::ToolsCall,
                mcpgate_policies::acl::AclMethod::ToolsList,
            ],
            names: Some(names.clone()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let acl = Acl::compile(&config, None).unwrap();
    for name in &names {
        assert_eq!(
            verdict(&acl, "tools/call", Target::Name(name)),
            Verdict::Allow
        );
    }
    assert_eq!(
        verdict(&acl, "tools/call", Target::Name("tool_100")),
        Verdict::Refuse
    );
}

#[test]
fn refusal_of_a_rule_that_covers_but_does_not_grant_the_method() {
    let acl = native(
        r#"
        [[rule]]
        methods = ["tools/list"]
        names = ["deploy"]
        refusal = { code = -32003, message = "deploy is read-only here" }
        "#,
    );
    assert_eq!(
        visible(&acl, ListKind::Tools, &["deploy", "echo"]),
        ["deploy"]
    );
    let d = acl.decide(
        &McpRequest::new("tools/call", Target::Name("deploy")),
        &no_ctx(),
    );
    let err = d.error.unwrap();
    assert_eq!(
        (err.code, err.message.as_ref()),
        (-32003, "deploy is read-only here")
    );
    // A refusal on a tools rule says nothing about prompts of the same name.
    let d = acl.decide(
        &McpRequest::new("prompts/get", Target::Name("deploy")),
        &no_ctx(),
    );
    assert_eq!(d.error.unwrap().code, INVALID_PARAMS);
}

#[test]
fn gravitee_el_conditions_are_translated_or_refused_never_ignored() {
    // A common form is translated to CEL and decides like it.
    let acl = Acl::from_gravitee_json(
        r#"{"authorizations":[{"authorizedFeatures":[{"type":"TOOLS","methods":["TOOLS_CALL"]}],"condition":"{#request.headers['X-Team'][0] == 'y'}"}]}"#,
    )
    .unwrap();
    assert_eq!(
        acl.el_translations()
            .iter()
            .map(|t| (t.at.as_str(), t.cel.as_str()))
            .collect::<Vec<_>>(),
        vec![(
            "authorizations[0].condition",
            "request.headers['x-team'] == 'y'"
        )]
    );
    let call = McpRequest::new("tools/call", Target::Name("echo"));
    const GOOD: &[(&str, &str)] = &[("x-team", "y")];
    const BAD: &[(&str, &str)] = &[("x-team", "z")];
    let with = |headers| RequestInfo {
        headers,
        ..RequestInfo::default()
    };
    assert!(acl.decide(&call, &with(GOOD)).lets_through());
    assert!(!acl.decide(&call, &with(BAD)).lets_through());
    // Anything else is refused at load, naming the rule, with the CEL to write instead.
    let err = Acl::from_gravitee_json(
        r#"{"authorizations":[{"authorizedFeatures":[{"type":"TOOLS","methods":["TOOLS_CALL"]}],"condition":"{#request.params['x'][0] == 'y'}"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.at, "authorizations[0].condition");
    assert!(
        err.message.contains("write the condition in CEL instead"),
        "{err}"
    );
}

#[test]
fn dry_run_still_runs_the_list_filter_to_count() {
    let config: AclConfig = toml::from_str("dry_run = true\n").unwrap();
    let acl = Acl::compile(&config, None).unwrap();
    let ctx = no_ctx();
    let mut filter = acl.list_filter(ListKind::Prompts, &ctx);
    assert!(!filter.keeps_all() && !filter.keeps_none());
    assert!(filter.keep("p1") && filter.keep("p2"));
    assert_eq!(filter.record().filtered, 2);
}

/// Issue 21: a URI is judged only in normal form, so a pattern cannot approve one resource while
/// the upstream's URL parser reads another.
#[test]
fn resource_uris_not_in_normal_form_are_refused_everywhere() {
    let acl = native(
        "[[rule]]\ntype = \"resources\"\nmethods = [\"resources/list\", \"resources/read\", \"resources/subscribe\", \"resources/templates/list\"]\npattern = \"demo://resource/static/document/a.*\"\n",
    );
    let allowed = "demo://resource/static/document/architecture.md";
    assert_eq!(
        verdict(&acl, "resources/read", Target::Uri(allowed)),
        Verdict::Allow
    );
    for sneaky in [
        "demo://resource/static/document/a/../features.md",
        "demo://resource/static/document/a/%2e%2e/features.md",
        "demo://resource/static/document/a/.\t./features.md",
        "demo://resource/static/document/a/../../../dynamic/text/42",
        "DEMO://resource/static/document/architecture.md",
        "demo://resource/static/document/%61rchitecture.md",
    ] {
        for method in ["resources/read", "resources/subscribe"] {
            let d = acl.decide(&McpRequest::new(method, Target::Uri(sneaky)), &no_ctx());
            assert_eq!(d.verdict, Verdict::Refuse, "{method} {sneaky:?}");
            assert_eq!(d.basis, Basis::NonNormalUri, "{sneaky:?}");
            assert_eq!(d.error.unwrap().code, INVALID_PARAMS);
        }
        let d = acl.decide_server_message(
            &McpRequest::new("notifications/resources/updated", Target::Uri(sneaky)),
            &no_ctx(),
        );
        assert_eq!(d.verdict, Verdict::Drop, "{sneaky:?}");
    }
    assert_eq!(
        visible(
            &acl,
            ListKind::Resources,
            &[allowed, "demo://resource/static/document/a/../features.md"]
        ),
        [allowed]
    );
    let d = acl.decide(
        &McpRequest::new(
            "completion/complete",
            Target::ResourceRef("demo://resource/static/document/a/../{file}"),
        ),
        &no_ctx(),
    );
    assert_eq!(d.verdict, Verdict::Refuse);
    // Even an ANY grant scans resource lists for URIs it would refuse to read.
    let any = native("[[rule]]\ntype = \"resources\"\n");
    assert_eq!(
        visible(
            &any,
            ListKind::Resources,
            &["demo://x/a/../b", "demo://x/b"]
        ),
        ["demo://x/b"]
    );
}
