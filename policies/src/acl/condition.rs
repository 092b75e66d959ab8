//! ACL rule conditions in CEL: compiled at load, evaluated lazily on the hot path over four
//! variables — `request` (method, path, headers, client_ip), `auth` (subject, client_id, scopes,
//! claims), `mcp` (method, name, uri) and `connection` (TLS version, SNI, ALPN and the verified
//! client certificate, see [`crate::tls`]). The CEL context is built at most once per message and
//! only when a rule with a condition is actually reached.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use cel::{Env, Program, Value};

use crate::tls::TlsFacts;

/// Longest condition source accepted (bytes); bounds parser and evaluator recursion.
pub const MAX_CONDITION_LEN: usize = 4096;
/// Deepest bracket / unary-operator nesting accepted by the pre-parse scan (guards the parser).
const MAX_CONDITION_NESTING: usize = 64;
/// Deepest expression tree accepted (guards the evaluator, which recurses per level and, in
/// unoptimised builds, uses tens of KiB of stack per arithmetic level: 50 levels overflowed a
/// 2 MiB thread in a debug build). Real conditions are a handful of levels deep.
pub const MAX_CONDITION_DEPTH: usize = 24;

/// What a condition may look at, supplied by the engine per HTTP request. Called only when a
/// condition is evaluated, so implementations may be lazy.
pub trait ConditionContext {
    /// HTTP method of the carrying request (`POST`, `GET`).
    fn request_method(&self) -> &str;
    fn request_path(&self) -> &str;
    /// Every header as received; names are lower-cased by the ACL, repeated names joined with
    /// `", "`.
    fn for_each_header(&self, visit: &mut dyn FnMut(&str, &str));
    fn client_ip(&self) -> Option<IpAddr>;
    /// The authenticated caller, if the API's plan authenticates.
    fn auth(&self) -> Option<&AuthInfo> {
        None
    }
    /// The client connection's TLS facts; `None` on a plain-HTTP listener.
    fn connection(&self) -> Option<&TlsFacts> {
        None
    }
}

/// The credential facts a condition may use (filled by the plan; empty until auth lands).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthInfo {
    pub subject: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// A ready-made [`ConditionContext`] over borrowed parts, for the engine and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub client_ip: Option<IpAddr>,
    pub auth: Option<&'a AuthInfo>,
    pub connection: Option<&'a TlsFacts>,
}

impl ConditionContext for RequestInfo<'_> {
    fn request_method(&self) -> &str {
        self.method
    }
    fn request_path(&self) -> &str {
        self.path
    }
    fn for_each_header(&self, visit: &mut dyn FnMut(&str, &str)) {
        for (name, value) in self.headers {
            visit(name, value);
        }
    }
    fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }
    fn auth(&self) -> Option<&AuthInfo> {
        self.auth
    }
    fn connection(&self) -> Option<&TlsFacts> {
        self.connection
    }
}

/// A compiled condition.
#[derive(Debug)]
pub struct Condition {
    program: Program,
    /// Whether the expression may read `mcp` (over-approximated): if not, a list filter evaluates
    /// it once per list instead of once per entry.
    uses_mcp: bool,
    /// Whether it reads `request` / `auth`: only those variables are built for it.
    uses_request: bool,
    uses_auth: bool,
    uses_connection: bool,
}

impl Condition {
    pub fn compile(env: &Env, source: &str) -> Result<Condition, String> {
        if source.len() > MAX_CONDITION_LEN {
            return Err(format!("longer than {MAX_CONDITION_LEN} bytes"));
        }
        if nesting(source) > MAX_CONDITION_NESTING {
            return Err(format!("nested deeper than {MAX_CONDITION_NESTING}"));
        }
        let program = env.compile(source).map_err(|e| e.to_string())?;
        if tree_depth(program.expression(), MAX_CONDITION_DEPTH) > MAX_CONDITION_DEPTH {
            return Err(format!(
                "expression nested deeper than {MAX_CONDITION_DEPTH} levels"
            ));
        }
        let references = program.references();
        let uses_mcp = references.has_variable("mcp");
        let uses_request = references.has_variable("request");
        let uses_auth = references.has_variable("auth");
        let uses_connection = references.has_variable("connection");
        drop(references);
        Ok(Condition {
            program,
            uses_mcp,
            uses_request,
            uses_auth,
            uses_connection,
        })
    }

    pub fn uses_mcp(&self) -> bool {
        self.uses_mcp
    }
}

/// Depth of the expression tree, counted without recursion and giving up past `limit`.
fn tree_depth(root: &cel::common::ast::IdedExpr, limit: usize) -> usize {
    use cel::common::ast::{EntryExpr, Expr};
    let mut max = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        max = max.max(depth);
        if max > limit {
            break;
        }
        let next = depth + 1;
        match &node.expr {
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    stack.push((target, next));
                }
                stack.extend(call.args.iter().map(|a| (a, next)));
            }
            Expr::Comprehension(c) => {
                for part in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    stack.push((part, next));
                }
            }
            Expr::List(list) => stack.extend(list.elements.iter().map(|e| (e, next))),
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            stack.push((&e.key, next));
                            stack.push((&e.value, next));
                        }
                        EntryExpr::StructField(f) => stack.push((&f.value, next)),
                    }
                }
            }
            Expr::Struct(st) => {
                for entry in &st.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            stack.push((&e.key, next));
                            stack.push((&e.value, next));
                        }
                        EntryExpr::StructField(f) => stack.push((&f.value, next)),
                    }
                }
            }
            Expr::Select(select) => stack.push((&select.operand, next)),
            Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
        }
    }
    max
}

/// Rough nesting depth before parsing: brackets, runs of unary operators and member chains
/// (`a.b.c…`), outside string literals. The parser recurses on each of these.
fn nesting(source: &str) -> usize {
    let (mut depth, mut max, mut unary_run, mut chain) = (0usize, 0usize, 0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c == '!' || c == '-' {
            unary_run += 1;
        } else if !c.is_whitespace() {
            unary_run = 0;
        }
        if c == '.' {
            chain += 1;
        } else if c.is_whitespace() || "&|=!<>+-*/%?:,".contains(c) {
            chain = 0;
        }
        max = max.max(depth + unary_run + chain);
    }
    max
}

/// The MCP facts of the message being judged.
#[derive(Debug, Clone, Copy, Default)]
pub struct McpFacts<'a> {
    pub method: &'a str,
    pub name: &'a str,
    pub uri: &'a str,
}

/// Why a condition did not hold, beyond evaluating to `false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionFailure {
    pub rule: u32,
    pub message: Box<str>,
}

/// Per-message evaluation state: the CEL context is built on first use and reused, and each of
/// `request` / `auth` is bound only once a condition that reads it is evaluated.
pub struct Evaluator<'a> {
    env: &'a Arc<Env>,
    ctx: &'a dyn ConditionContext,
    cel: Option<cel::Context<'static, 'static>>,
    has_request: bool,
    has_auth: bool,
    has_connection: bool,
}

impl<'a> Evaluator<'a> {
    pub fn new(env: &'a Arc<Env>, ctx: &'a dyn ConditionContext) -> Self {
        Evaluator {
            env,
            ctx,
            cel: None,
            has_request: false,
            has_auth: false,
            has_connection: false,
        }
    }

    /// `Ok(true)` only when the condition evaluated to the boolean `true`.
    pub fn eval(&mut self, condition: &Condition, mcp: McpFacts<'_>) -> Result<bool, String> {
        match self.value(condition, mcp)? {
            Value::Bool(holds) => Ok(holds),
            other => Err(format!(
                "condition evaluated to {:?}, not a bool",
                other.type_of()
            )),
        }
    }

    /// The expression's value, whatever its type (a rate limit's CEL key is a string or a
    /// number, not a bool).
    pub fn value(&mut self, condition: &Condition, mcp: McpFacts<'_>) -> Result<Value, String> {
        let env = self.env;
        let cel = self
            .cel
            .get_or_insert_with(|| cel::Context::with_env(Arc::clone(env)));
        if condition.uses_request && !self.has_request {
            cel.add_variable_from_value("request", request_value(self.ctx));
            self.has_request = true;
        }
        if condition.uses_auth && !self.has_auth {
            cel.add_variable_from_value("auth", auth_value(self.ctx));
            self.has_auth = true;
        }
        if condition.uses_connection && !self.has_connection {
            cel.add_variable_from_value("connection", connection_value(self.ctx.connection()));
            self.has_connection = true;
        }
        if condition.uses_mcp {
            cel.add_variable_from_value("mcp", mcp_value(mcp));
        }
        condition.program.execute(cel).map_err(|e| e.to_string())
    }
}

fn request_value(ctx: &dyn ConditionContext) -> Value {
    let mut headers: HashMap<String, String> = HashMap::new();
    ctx.for_each_header(&mut |name, value| {
        let name = name.to_ascii_lowercase();
        match headers.get_mut(&name) {
            Some(joined) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            None => {
                headers.insert(name, value.to_owned());
            }
        }
    });
    let mut request: HashMap<&str, Value> = HashMap::with_capacity(4);
    request.insert("method", ctx.request_method().into());
    request.insert("path", ctx.request_path().into());
    request.insert("headers", headers.into());
    request.insert(
        "client_ip",
        ctx.client_ip()
            .map(|ip| ip.to_string())
            .unwrap_or_default()
            .into(),
    );
    request.into()
}

fn auth_value(ctx: &dyn ConditionContext) -> Value {
    let empty = AuthInfo::default();
    let auth_info = ctx.auth().unwrap_or(&empty);
    let mut auth: HashMap<&str, Value> = HashMap::with_capacity(4);
    auth.insert("subject", auth_info.subject.as_str().into());
    auth.insert("client_id", auth_info.client_id.as_str().into());
    auth.insert(
        "scopes",
        auth_info
            .scopes
            .iter()
            .map(|s| Value::from(s.as_str()))
            .collect::<Vec<_>>()
            .into(),
    );
    auth.insert("claims", json_object(&auth_info.claims));
    auth.into()
}

/// `connection`: always a complete map, so a condition reads `connection.mtls` or
/// `connection.client_cert.common_name` on a plain or certificate-less connection without an
/// evaluation error (absent strings are empty, absent lists empty, `tls`/`mtls` false).
fn connection_value(tls: Option<&TlsFacts>) -> Value {
    let strings = |items: &[String]| -> Value {
        items
            .iter()
            .map(|s| Value::from(s.as_str()))
            .collect::<Vec<_>>()
            .into()
    };
    let cert = tls.and_then(|t| t.client_cert.as_ref());
    let empty = Vec::new();
    let mut client: HashMap<&str, Value> = HashMap::with_capacity(10);
    let text =
        |f: fn(&crate::tls::ClientCertificate) -> &str| -> Value { cert.map_or("", f).into() };
    client.insert("subject", text(|c| &c.subject));
    client.insert("issuer", text(|c| &c.issuer));
    client.insert(
        "common_name",
        text(|c| c.common_name.as_deref().unwrap_or_default()),
    );
    client.insert("identity", text(|c| c.identity()));
    client.insert("serial", text(|c| &c.serial));
    client.insert("fingerprint_sha256", text(|c| &c.fingerprint_sha256));
    client.insert("dns_names", strings(cert.map_or(&empty, |c| &c.dns_names)));
    client.insert("uris", strings(cert.map_or(&empty, |c| &c.uris)));
    client.insert("emails", strings(cert.map_or(&empty, |c| &c.emails)));
    client.insert("ips", strings(cert.map_or(&empty, |c| &c.ips)));
    let mut connection: HashMap<&str, Value> = HashMap::with_capacity(6);
    connection.insert("tls", tls.is_some().into());
    connection.insert("mtls", cert.is_some().into());
    connection.insert("tls_version", tls.map_or("", |t| t.version).into());
    connection.insert("sni", tls.map_or("", |t| t.sni.as_str()).into());
    connection.insert("alpn", tls.map_or("", |t| t.alpn.as_str()).into());
    connection.insert("client_cert", client.into());
    connection.into()
}

fn mcp_value(mcp: McpFacts<'_>) -> Value {
    let mut map: HashMap<&str, Value> = HashMap::with_capacity(3);
    map.insert("method", mcp.method.into());
    map.insert("name", mcp.name.into());
    map.insert("uri", mcp.uri.into());
    map.into()
}

fn json_object(object: &serde_json::Map<String, serde_json::Value>) -> Value {
    object
        .iter()
        .map(|(k, v)| (k.as_str(), json_value(v)))
        .collect::<HashMap<&str, Value>>()
        .into()
}

fn json_value(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => s.as_str().into(),
        serde_json::Value::Array(items) => items.iter().map(json_value).collect::<Vec<_>>().into(),
        serde_json::Value::Object(object) => json_object(object),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env() -> Arc<Env> {
        Arc::new(Env::stdlib())
    }

    #[test]
    fn variables_are_visible() {
        let env = env();
        let mut claims = serde_json::Map::new();
        claims.insert("tier".into(), "gold".into());
        claims.insert("level".into(), 3.into());
        let auth = AuthInfo {
            subject: "alice".into(),
            client_id: "cli".into(),
            scopes: vec!["mcp:read".into()],
            claims,
        };
        let headers = [("X-Team", "blue"), ("x-team", "red")];
        let req = RequestInfo {
            method: "POST",
            path: "/mcp",
            headers: &headers,
            client_ip: Some("10.1.2.3".parse().unwrap()),
            auth: Some(&auth),
            connection: None,
        };
        let mut ev = Evaluator::new(&env, &req);
        let mcp = McpFacts {
            method: "tools/call",
            name: "echo",
            uri: "",
        };
        for (src, want) in [
            ("request.headers['x-team'] == 'blue, red'", true),
            ("request.method == 'POST' && request.path == '/mcp'", true),
            ("request.client_ip == '10.1.2.3'", true),
            ("auth.subject == 'alice' && auth.client_id == 'cli'", true),
            ("'mcp:read' in auth.scopes", true),
            ("auth.claims.tier == 'gold' && auth.claims.level >= 3", true),
            (
                "mcp.method == 'tools/call' && mcp.name == 'echo' && mcp.uri == ''",
                true,
            ),
            ("auth.claims.tier == 'silver'", false),
        ] {
            let cond = Condition::compile(&env, src).unwrap();
            assert_eq!(ev.eval(&cond, mcp), Ok(want), "{src}");
        }
    }

    #[test]
    fn connection_facts_are_visible_and_complete_without_tls() {
        let env = env();
        let tls = TlsFacts {
            version: "TLSv1.3",
            sni: "mcp.example".into(),
            alpn: "http/1.1".into(),
            client_cert: Some(crate::tls::ClientCertificate {
                subject: "CN=alice, O=Acme".into(),
                common_name: Some("alice".into()),
                uris: vec!["spiffe://acme/alice".into()],
                ..Default::default()
            }),
        };
        let with_tls = RequestInfo {
            connection: Some(&tls),
            ..RequestInfo::default()
        };
        let plain = RequestInfo::default();
        for (src, on_tls, on_plain) in [
            ("connection.tls && connection.mtls", true, false),
            ("connection.tls_version == 'TLSv1.3'", true, false),
            ("connection.sni == 'mcp.example'", true, false),
            ("connection.client_cert.common_name == 'alice'", true, false),
            (
                "'spiffe://acme/alice' in connection.client_cert.uris",
                true,
                false,
            ),
            (
                "connection.client_cert.identity == 'spiffe://acme/alice'",
                true,
                false,
            ),
            ("connection.client_cert.subject == ''", false, true),
            ("size(connection.client_cert.dns_names) == 0", true, true),
        ] {
            let cond = Condition::compile(&env, src).unwrap();
            assert_eq!(
                Evaluator::new(&env, &with_tls).eval(&cond, McpFacts::default()),
                Ok(on_tls),
                "{src} over TLS"
            );
            assert_eq!(
                Evaluator::new(&env, &plain).eval(&cond, McpFacts::default()),
                Ok(on_plain),
                "{src} over plain HTTP"
            );
        }
    }

    #[test]
    fn errors_and_non_bools_are_errors() {
        let env = env();
        let req = RequestInfo::default();
        let mut ev = Evaluator::new(&env, &req);
        for src in ["request.headers['missing'] == 'x'", "nosuchvar", "1 + 1"] {
            let cond = Condition::compile(&env, src).unwrap();
            assert!(ev.eval(&cond, McpFacts::default()).is_err(), "{src}");
        }
    }

    #[test]
    fn uses_mcp_is_detected() {
        let env = env();
        assert!(Condition::compile(&env, "mcp.name == 'x'")
            .unwrap()
            .uses_mcp());
        assert!(!Condition::compile(&env, "request.path == '/'")
            .unwrap()
            .uses_mcp());
    }

    #[test]
    fn hostile_sources_are_refused_not_crashing() {
        let env = env();
        assert!(Condition::compile(&env, &"!".repeat(3000)).is_err());
        assert!(
            Condition::compile(&env, &format!("{}true{}", "(".repeat(500), ")".repeat(500)))
                .is_err()
        );
        assert!(Condition::compile(&env, &"a".repeat(MAX_CONDITION_LEN + 1)).is_err());
        assert!(Condition::compile(&env, "request.path ==").is_err());
        // Long but flat expressions within the size limit compile (or fail) without crashing,
        // and evaluate without overflowing the stack.
        for deep in [
            format!("request{}.size() > 0", ".a".repeat(2000)),
            format!("[{}1{}]", "[".repeat(70), "]".repeat(70)),
            format!("1{} == 0", " + 1".repeat(1000)),
        ] {
            let err = Condition::compile(&env, &deep).unwrap_err();
            assert!(err.contains("deeper"), "{err}");
        }
        // Right at the limit: compiles and evaluates on a 2 MiB thread (the test harness's).
        let sum = format!("1{} == 0", " + 1".repeat(MAX_CONDITION_DEPTH - 3));
        let cond = Condition::compile(&env, &sum).unwrap();
        let req = RequestInfo::default();
        let mut ev = Evaluator::new(&env, &req);
        assert_eq!(ev.eval(&cond, McpFacts::default()), Ok(false));
        // Logical chains are balanced by the parser: 120 alternatives are fine.
        let any_of = (0..120)
            .map(|i| format!("auth.subject == 'u{i}'"))
            .collect::<Vec<_>>()
            .join(" || ");
        let cond = Condition::compile(&env, &any_of).unwrap();
        assert_eq!(ev.eval(&cond, McpFacts::default()), Ok(false));
    }
}
