//! What a rule applies to and how it tells callers apart, compiled at load: the selector (MCP
//! methods and a name / URI pattern, the ACL's ANY / LITERAL / EXPRESSION), the plans and CEL
//! condition it is restricted to, and its key (subject, client id, API key, client address, a
//! header, a CEL expression over the ACL-condition context, or one key for everyone).
//!
//! The key material is hashed by the engine: keys never reach a store, a log or Redis in clear
//! (an API key is a secret).

use std::sync::Arc;

use ahash::AHashSet;

use crate::acl::condition::{Condition, Evaluator, McpFacts};
use crate::acl::pattern::{compile_anchored, Pattern};
use crate::acl::ConditionContext;
use crate::auth::PlanKind;

use super::LimitError;

/// Which JSON-RPC messages a rule counts.
#[derive(Debug, Clone)]
pub struct Selector {
    /// `None`: every method (`"*"`).
    methods: Option<AHashSet<Box<str>>>,
    /// Matched against the message's name (tools, prompts) or URI (resources); `Any` also
    /// selects messages without one.
    target: Pattern,
}

impl Selector {
    /// `methods`: exact JSON-RPC method names, or `["*"]`. `names` (LITERAL) and `pattern`
    /// (EXPRESSION, anchored) are exclusive; neither is ANY.
    pub fn compile(
        methods: &[String],
        names: Option<&[String]>,
        pattern: Option<&str>,
    ) -> Result<Selector, LimitError> {
        if methods.is_empty() {
            return Err(LimitError::new(
                "methods",
                "give at least one method, or \"*\"",
            ));
        }
        let methods = if methods.iter().any(|m| m == "*") {
            if methods.len() > 1 {
                return Err(LimitError::new("methods", "\"*\" stands alone"));
            }
            None
        } else {
            for (i, m) in methods.iter().enumerate() {
                if m.is_empty() || m.trim() != m {
                    return Err(LimitError::new(
                        format!("methods[{i}]"),
                        "a method name, exact (no spaces)",
                    ));
                }
            }
            Some(methods.iter().map(|m| Box::from(m.as_str())).collect())
        };
        let target = match (names, pattern) {
            (Some(_), Some(_)) => {
                return Err(LimitError::new(
                    "names",
                    "`names` and `pattern` are exclusive",
                ))
            }
            (Some(names), None) => {
                if names.is_empty() || names.iter().any(String::is_empty) {
                    return Err(LimitError::new(
                        "names",
                        "names must be non-empty strings (omit `names` to match any)",
                    ));
                }
                Pattern::Names(names.iter().map(|n| Box::from(n.as_str())).collect())
            }
            (None, Some(source)) => Pattern::Expression(
                compile_anchored(source).map_err(|e| LimitError::new("pattern", e.to_string()))?,
            ),
            (None, None) => Pattern::Any,
        };
        Ok(Selector { methods, target })
    }

    /// Whether the message `method` naming `target` (its tool / prompt name or resource URI,
    /// escapes decoded) is counted.
    #[inline]
    pub fn selects(&self, method: &str, target: Option<&str>) -> bool {
        if let Some(methods) = &self.methods {
            if !methods.contains(method) {
                return false;
            }
        }
        match (&self.target, target) {
            (Pattern::Any, _) => true,
            (pattern, Some(t)) => pattern.matches(t),
            (_, None) => false,
        }
    }
}

/// A CEL expression over the ACL-condition context (`request`, `auth`, `mcp`).
pub struct Expression {
    env: Arc<cel::Env>,
    condition: Condition,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Expression")
    }
}

impl Expression {
    /// Compiled with the ACL's limits (size, nesting, depth).
    pub fn compile(source: &str) -> Result<Expression, String> {
        let env = Arc::new(cel::Env::stdlib());
        let condition = Condition::compile(&env, source)?;
        Ok(Expression { env, condition })
    }

    /// The value as key text: strings as they are, numbers and bools printed; anything else is
    /// an error.
    pub fn key(&self, ctx: &dyn ConditionContext, mcp: McpFacts<'_>) -> Result<String, String> {
        let mut evaluator = Evaluator::new(&self.env, ctx);
        match evaluator.value(&self.condition, mcp)? {
            cel::Value::String(s) => Ok(s.to_string()),
            cel::Value::Int(i) => Ok(i.to_string()),
            cel::Value::UInt(u) => Ok(u.to_string()),
            cel::Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!(
                "key evaluated to {:?}, not a string or number",
                other.type_of()
            )),
        }
    }

    /// Whether the condition holds. An evaluation error counts as true: a malformed request must
    /// not slip out of a limit.
    pub fn holds(&self, ctx: &dyn ConditionContext, mcp: McpFacts<'_>) -> bool {
        Evaluator::new(&self.env, ctx)
            .eval(&self.condition, mcp)
            .unwrap_or(true)
    }
}

/// How a rule tells callers apart.
#[derive(Debug)]
pub enum KeySpec {
    /// One bucket for every caller of the API.
    Global,
    /// The authenticated subject.
    Subject,
    /// The OAuth client id (`client_id`, else `azp`).
    ClientId,
    /// The API key presented (one of the API's API-key plan headers, lower-case names).
    ApiKey(Vec<String>),
    /// The client's address as the gateway sees it (the TCP peer).
    ClientIp,
    /// A request header (lower-case name).
    Header(String),
    Expression(Expression),
}

impl KeySpec {
    /// `subject`, `client_id`, `api_key`, `client_ip`, `global`, `header:<name>`; an
    /// `expression` is given separately (`key_expression`). `api_key_headers`: the API's API-key
    /// plan headers (empty: `api_key` is refused).
    pub fn parse(
        key: &str,
        expression: Option<&str>,
        api_key_headers: &[String],
    ) -> Result<KeySpec, LimitError> {
        if let Some(source) = expression {
            if !matches!(key, "" | "expression") {
                return Err(LimitError::new(
                    "key_expression",
                    "give `key` or `key_expression`, not both",
                ));
            }
            return Expression::compile(source)
                .map(KeySpec::Expression)
                .map_err(|e| LimitError::new("key_expression", e));
        }
        Ok(match key {
            "global" => KeySpec::Global,
            "subject" => KeySpec::Subject,
            "client_id" => KeySpec::ClientId,
            "client_ip" => KeySpec::ClientIp,
            "api_key" => {
                if api_key_headers.is_empty() {
                    return Err(LimitError::new(
                        "key",
                        "`api_key` needs an api_key plan on the API",
                    ));
                }
                KeySpec::ApiKey(api_key_headers.to_vec())
            }
            "expression" => {
                return Err(LimitError::new(
                    "key_expression",
                    "required by key = \"expression\"",
                ))
            }
            other => match other.strip_prefix("header:") {
                Some(name)
                    if !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
                {
                    KeySpec::Header(name.to_ascii_lowercase())
                }
                _ => {
                    return Err(LimitError::new(
                        "key",
                        format!(
                            "`{other}`: expected global, subject, client_id, api_key, client_ip, \
                             header:<name> or expression"
                        ),
                    ))
                }
            },
        })
    }

    /// The one-word tag of the key kind (what keys of different kinds are told apart by).
    pub fn tag(&self) -> &'static str {
        match self {
            KeySpec::Global => "global",
            KeySpec::Subject => "sub",
            KeySpec::ClientId => "cid",
            KeySpec::ApiKey(_) => "key",
            KeySpec::ClientIp => "ip",
            KeySpec::Header(_) => "hdr",
            KeySpec::Expression(_) => "cel",
        }
    }
}

/// Parses `plans = [...]` (the plan kinds a rule is restricted to).
pub fn parse_plans(plans: &[String]) -> Result<Vec<PlanKind>, LimitError> {
    plans
        .iter()
        .enumerate()
        .map(|(i, p)| match p.as_str() {
            "keyless" => Ok(PlanKind::Keyless),
            "api_key" => Ok(PlanKind::ApiKey),
            "jwt" => Ok(PlanKind::Jwt),
            "oauth2" => Ok(PlanKind::OAuth2),
            other => Err(LimitError::new(
                format!("plans[{i}]"),
                format!("`{other}`: expected keyless, api_key, jwt or oauth2"),
            )),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::acl::{AuthInfo, RequestInfo};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn selectors_match_methods_and_targets() {
        let any_call = Selector::compile(&s(&["tools/call"]), None, None).unwrap();
        assert!(any_call.selects("tools/call", Some("echo")));
        assert!(!any_call.selects("tools/list", None));
        let echo = Selector::compile(&s(&["tools/call"]), Some(&s(&["echo"])), None).unwrap();
        assert!(echo.selects("tools/call", Some("echo")));
        assert!(!echo.selects("tools/call", Some("echo2")));
        assert!(!echo.selects("tools/call", None));
        let get =
            Selector::compile(&s(&["tools/call", "prompts/get"]), None, Some("get_.*")).unwrap();
        assert!(get.selects("prompts/get", Some("get_x")));
        assert!(!get.selects("prompts/get", Some("xget_x")));
        let star = Selector::compile(&s(&["*"]), None, None).unwrap();
        assert!(star.selects("ping", None));
        assert!(Selector::compile(&[], None, None).is_err());
        assert!(Selector::compile(&s(&["*", "ping"]), None, None).is_err());
        assert!(Selector::compile(&s(&["tools/call "]), None, None).is_err());
        assert!(Selector::compile(&s(&["x"]), Some(&s(&["a"])), Some("b")).is_err());
        let err = Selector::compile(&s(&["x"]), None, Some("a)|(b")).unwrap_err();
        assert_eq!(err.at, "pattern");
    }

    #[test]
    fn keys_parse_and_name_their_field() {
        assert!(matches!(
            KeySpec::parse("subject", None, &[]),
            Ok(KeySpec::Subject)
        ));
        assert!(matches!(
            KeySpec::parse("header:X-Tenant", None, &[]),
            Ok(KeySpec::Header(h)) if h == "x-tenant"
        ));
        assert_eq!(KeySpec::parse("api_key", None, &[]).unwrap_err().at, "key");
        assert!(KeySpec::parse("api_key", None, &s(&["x-api-key"])).is_ok());
        assert_eq!(KeySpec::parse("nope", None, &[]).unwrap_err().at, "key");
        assert_eq!(KeySpec::parse("header:", None, &[]).unwrap_err().at, "key");
        assert_eq!(
            KeySpec::parse("", Some("request.path =="), &[])
                .unwrap_err()
                .at,
            "key_expression"
        );
        assert_eq!(
            KeySpec::parse("subject", Some("'a'"), &[]).unwrap_err().at,
            "key_expression"
        );
        assert!(parse_plans(&s(&["jwt", "api_key"])).is_ok());
        assert_eq!(parse_plans(&s(&["gold"])).unwrap_err().at, "plans[0]");
    }

    #[test]
    fn cel_keys_and_conditions_see_the_acl_context() {
        let mut claims = serde_json::Map::new();
        claims.insert("tenant".into(), "acme".into());
        let auth = AuthInfo {
            subject: "alice".into(),
            claims,
            ..AuthInfo::default()
        };
        let headers = [("x-team", "blue")];
        let req = RequestInfo {
            method: "POST",
            path: "/mcp",
            headers: &headers,
            client_ip: Some("10.0.0.1".parse().unwrap()),
            auth: Some(&auth),
            connection: None,
        };
        let mcp = McpFacts {
            method: "tools/call",
            name: "echo",
            uri: "",
        };
        let key = Expression::compile("auth.claims.tenant + '/' + mcp.name").unwrap();
        assert_eq!(key.key(&req, mcp).unwrap(), "acme/echo");
        let n = Expression::compile("size(request.headers['x-team'])").unwrap();
        assert_eq!(n.key(&req, mcp).unwrap(), "4");
        let list = Expression::compile("[1]").unwrap();
        assert!(list.key(&req, mcp).is_err());
        let cond = Expression::compile("request.headers['x-team'] == 'blue'").unwrap();
        assert!(cond.holds(&req, mcp));
        let missing = Expression::compile("request.headers['nope'] == 'x'").unwrap();
        assert!(missing.holds(&req, mcp), "an error counts as true");
        let no = Expression::compile("auth.subject == 'bob'").unwrap();
        assert!(!no.holds(&req, mcp));
    }
}
