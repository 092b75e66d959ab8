//! The Gravitee ACL JSON (`Acl::parse_gravitee`, `Acl::from_gravitee_json`: what `acl_file` and
//! `--acl FILE` load) on arbitrary bytes. Invariants: no panic; whatever parses is JSON, and
//! survives a serialise → parse round trip unchanged; a load error says where; a loaded ACL
//! judges deterministically, never governs `initialize` / `ping` / notifications (an ACL lets a
//! client connect whatever its rules), and refuses a governed call without a name.
use mcpgate_policies::acl::{Acl, ListKind, McpRequest, RequestInfo, Target, Verdict};

/// Names a tool / prompt / resource rule might or might not match.
const NAMES: &[&str] = &[
    "echo",
    "get_weather",
    "",
    "ECHO",
    "a.b",
    "file:///etc/passwd",
    "é",
];

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let gravitee = match Acl::parse_gravitee(text) {
        Ok(g) => g,
        Err(e) => {
            // `at` is the serde path, which is empty for an unknown key spelled `""` at the top
            // (regressions/acl_json/crash-7986…): the message still says line and column.
            assert!(!e.message.is_empty(), "{e:?}");
            assert!(
                !e.at.is_empty() || e.message.contains("line"),
                "an error that says neither where nor on which line: {e:?}"
            );
            return;
        }
    };
    assert!(
        serde_json::from_str::<serde_json::Value>(text).is_ok(),
        "parse_gravitee accepted what serde_json refuses"
    );
    let json = serde_json::to_string(&gravitee).expect("a parsed ACL serialises");
    match Acl::parse_gravitee(&json) {
        Ok(again) => assert_eq!(again, gravitee, "round trip changed the ACL: {json}"),
        Err(e) => panic!("re-parsing the serialised ACL failed: {e}\n{json}"),
    }
    let acl = match Acl::from_gravitee_json(text) {
        Ok(acl) => acl,
        Err(e) => {
            assert!(!e.at.is_empty() && !e.message.is_empty(), "{e:?}");
            return;
        }
    };
    let ctx = RequestInfo {
        method: "POST",
        path: "/mcp",
        ..RequestInfo::default()
    };
    for method in [
        "initialize",
        "ping",
        "notifications/initialized",
        "notifications/cancelled",
    ] {
        let d = acl.decide(&McpRequest::new(method, Target::None), &ctx);
        assert!(d.lets_through(), "{method} refused: {d:?}");
    }
    for method in ["tools/call", "prompts/get", "resources/read"] {
        let d = acl.decide(&McpRequest::new(method, Target::None), &ctx);
        assert_eq!(
            d.verdict,
            Verdict::Refuse,
            "{method} without a target: {d:?}"
        );
    }
    for name in NAMES {
        for (method, target) in [
            ("tools/call", Target::Name(name)),
            ("prompts/get", Target::Name(name)),
            ("resources/read", Target::Uri(name)),
            ("completion/complete", Target::PromptRef(name)),
        ] {
            let req = McpRequest::new(method, target);
            let first = acl.decide(&req, &ctx);
            let second = acl.decide(&req, &ctx);
            assert_eq!(first, second, "{method} {name:?} decided twice differently");
            if first.verdict == Verdict::Refuse {
                assert!(
                    first.error.is_some(),
                    "a refusal without an error: {first:?}"
                );
            }
        }
        for kind in [ListKind::Tools, ListKind::Prompts, ListKind::Resources] {
            let mut filter = acl.list_filter(kind, &ctx);
            let kept = filter.keep(name);
            assert_eq!(acl.list_filter(kind, &ctx).keep(name), kept);
        }
    }
}
