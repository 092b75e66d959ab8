//! ACL decision cost on the hot path: literal / ANY rule sets (target ≤ 100 ns per decision),
//! ungoverned methods, list filtering of a 100-entry list, and a conditional rule for scale.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use mcpgate_policies::acl::{
    Acl, AclConfig, AclMethod, ListKind, McpRequest, RequestInfo, RuleConfig, Target,
};

fn literal_acl(n: usize) -> Acl {
    let names: Vec<String> = (0..n).map(|i| format!("tool_{i}")).collect();
    let config = AclConfig {
        rules: vec![RuleConfig {
            methods: vec![AclMethod::ToolsList, AclMethod::ToolsCall],
            names: Some(names),
            ..RuleConfig::default()
        }],
        ..AclConfig::default()
    };
    Acl::compile(&config, None).expect("bench ACL")
}

fn bench(c: &mut Criterion) {
    let ctx = RequestInfo {
        method: "POST",
        path: "/mcp",
        ..RequestInfo::default()
    };
    let echo = Acl::from_gravitee_json(include_str!("../../examples/acl/tools-echo-only.json"))
        .expect("example");
    let any = Acl::from_gravitee_json(
        r#"{"authorizations":[{"authorizedFeatures":[{"type":"TOOLS","methods":["TOOLS_LIST","TOOLS_CALL"]}]}]}"#,
    )
    .expect("any");
    let hundred = literal_acl(100);

    let mut g = c.benchmark_group("acl_decide");
    let call = |name| McpRequest::new("tools/call", Target::Name(name));
    let req = call("echo");
    g.bench_function("literal_1_allow", |b| {
        b.iter(|| black_box(echo.decide(black_box(&req), &ctx).verdict))
    });
    g.bench_function("any_allow", |b| {
        b.iter(|| black_box(any.decide(black_box(&req), &ctx).verdict))
    });
    let hit = call("tool_57");
    g.bench_function("literal_100_allow", |b| {
        b.iter(|| black_box(hundred.decide(black_box(&hit), &ctx).verdict))
    });
    let miss = call("tool_x");
    g.bench_function("literal_100_refuse", |b| {
        b.iter(|| black_box(hundred.decide(black_box(&miss), &ctx).verdict))
    });
    let ping = McpRequest::new("notifications/initialized", Target::None);
    g.bench_function("ungoverned", |b| {
        b.iter(|| black_box(hundred.decide(black_box(&ping), &ctx).verdict))
    });
    let list = McpRequest::new("tools/list", Target::None);
    g.bench_function("list_request", |b| {
        b.iter(|| black_box(hundred.decide(black_box(&list), &ctx).list))
    });

    let conditional = Acl::from_gravitee_json(include_str!("../../examples/acl/conditional.json"))
        .expect("example");
    let headers: &[(&str, &str)] = &[
        ("host", "gw"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("x-tier", "gold"),
    ];
    let cond_ctx = RequestInfo { headers, ..ctx };
    // The example grants `get-.*|echo` under the condition: a name it matches reaches CEL.
    let get_weather = call("get-weather");
    g.bench_function("cel_condition_allow", |b| {
        b.iter(|| {
            black_box(
                conditional
                    .decide(black_box(&get_weather), &cond_ctx)
                    .verdict,
            )
        })
    });
    let weather = call("get_weather");
    let header_only: AclConfig = AclConfig {
        rules: vec![RuleConfig {
            methods: vec![AclMethod::ToolsCall],
            names: Some(vec!["get_weather".into()]),
            condition: Some("request.headers['x-tier'] == 'gold'".into()),
            ..RuleConfig::default()
        }],
        ..AclConfig::default()
    };
    let header_only = Acl::compile(&header_only, None).expect("header ACL");
    g.bench_function("cel_header_condition_allow", |b| {
        b.iter(|| black_box(header_only.decide(black_box(&weather), &cond_ctx).verdict))
    });
    g.finish();

    let mut g = c.benchmark_group("acl_list_filter");
    let entries: Vec<String> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                format!("tool_{i}")
            } else {
                format!("other_{i}")
            }
        })
        .collect();
    g.bench_function("keep_100_entries_literal_100", |b| {
        b.iter(|| {
            let mut filter = hundred.list_filter(ListKind::Tools, &ctx);
            let kept = entries.iter().filter(|e| filter.keep(e)).count();
            black_box(kept)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
