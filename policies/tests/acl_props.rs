//! Properties of the ACL over generated rule sets and names.
#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is the point

use mcpgate_policies::acl::{
    Acl, AclConfig, AclMethod, ListKind, McpRequest, RequestInfo, RuleConfig, Target, Verdict,
};
use proptest::prelude::*;

/// Names from a small alphabet so generated patterns and names collide often.
fn name() -> impl Strategy<Value = String> {
    "[a-cX.]{0,4}"
}

#[derive(Debug, Clone)]
enum Pat {
    Any,
    Names(Vec<String>),
    Regex(String),
}

fn pat() -> impl Strategy<Value = Pat> {
    prop_oneof![
        Just(Pat::Any),
        prop::collection::vec("[a-cX.]{1,4}", 1..4).prop_map(Pat::Names),
        // Regex fragments over the same alphabet, including alternation and dots.
        "[a-c.|*]{1,5}".prop_filter_map("valid regex", |r| regex::Regex::new(&r)
            .ok()
            .map(|_| Pat::Regex(r))),
    ]
}

fn rule(methods: Vec<AclMethod>, pat: Pat) -> RuleConfig {
    let mut rule = RuleConfig {
        methods,
        ..RuleConfig::default()
    };
    match pat {
        Pat::Any => {}
        Pat::Names(n) => rule.names = Some(n),
        Pat::Regex(r) => rule.pattern = Some(r),
    }
    rule
}

fn methods() -> impl Strategy<Value = Vec<AclMethod>> {
    prop_oneof![
        Just(vec![AclMethod::ToolsList]),
        Just(vec![AclMethod::ToolsCall]),
        Just(vec![AclMethod::ToolsList, AclMethod::ToolsCall]),
    ]
}

proptest! {
    /// A rule granting both list and call makes every callable name visible; and with only
    /// unconditional rules, visibility and callability are each exactly "some rule grants it".
    #[test]
    fn callable_by_a_list_and_call_rule_implies_visible(
        both in prop::collection::vec(pat(), 0..4),
        others in prop::collection::vec((methods(), pat()), 0..4),
        names in prop::collection::vec(name(), 1..8),
    ) {
        let mut rules: Vec<RuleConfig> = both
            .iter()
            .cloned()
            .map(|p| rule(vec![AclMethod::ToolsList, AclMethod::ToolsCall], p))
            .collect();
        rules.extend(others.iter().cloned().map(|(m, p)| rule(m, p)));
        let acl = Acl::compile(&AclConfig { rules: rules.clone(), ..AclConfig::default() }, None).unwrap();
        let ctx = RequestInfo::default();
        for n in &names {
            let decision = acl.decide(&McpRequest::new("tools/call", Target::Name(n)), &ctx);
            let mut filter = acl.list_filter(ListKind::Tools, &ctx);
            let shown = filter.keep(n);
            let granted_by_both = both.iter().any(|p| matches(p, n));
            if decision.verdict == Verdict::Allow && granted_by_both {
                prop_assert!(shown, "{n:?} callable via a list+call rule but hidden");
            }
            let expect_call = rules.iter().any(|r| r.methods.contains(&AclMethod::ToolsCall) && matches(&pat_of(r), n));
            let expect_list = rules.iter().any(|r| r.methods.contains(&AclMethod::ToolsList) && matches(&pat_of(r), n));
            prop_assert_eq!(decision.verdict == Verdict::Allow, expect_call, "call {:?}", n);
            prop_assert_eq!(shown, expect_list, "list {:?}", n);
        }
    }

    /// Nothing but exact governed method names reach the rules; near-misses never pass.
    #[test]
    fn case_variants_of_tools_call_never_pass(mask in prop::collection::vec(any::<bool>(), 10)) {
        let method: String = "tools/call"
            .chars()
            .zip(mask.iter())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        let acl = Acl::from_gravitee_json(r#"{"authorizations":[]}"#).unwrap();
        let d = acl.decide(&McpRequest::new(&method, Target::Name("echo")), &RequestInfo::default());
        prop_assert_eq!(d.verdict, Verdict::Refuse);
    }
}

fn pat_of(rule: &RuleConfig) -> Pat {
    match (&rule.names, &rule.pattern) {
        (Some(n), _) => Pat::Names(n.clone()),
        (None, Some(r)) => Pat::Regex(r.clone()),
        (None, None) => Pat::Any,
    }
}

/// Reference semantics: a name matches a pattern as a whole.
fn matches(pat: &Pat, name: &str) -> bool {
    match pat {
        Pat::Any => true,
        Pat::Names(names) => names.iter().any(|n| n == name),
        Pat::Regex(r) => regex::Regex::new(&format!("^(?:{r})$"))
            .unwrap()
            .is_match(name),
    }
}
