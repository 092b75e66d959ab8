//! The ACL's `condition` over token claims, end to end (issues 5 and 6): the real
//! server-everything behind mcpgate with a `jwt` plan (static ES256 key, tokens minted here) and
//! an ACL granting `echo` to everyone but `get-sum` only when
//! `'tools:admin' in auth.scopes || auth.claims.role == 'admin'`. The official TypeScript SDK
//! client (scenario `acl_probe`, token in its `Authorization` header) lists and calls through
//! the gateway; raw HTTP checks the refusal on the wire.
//!
//! Expected lists are the upstream's own answer (asked directly), filtered by what the ACL grants.

use mcpgate_tests::auth::{now, SigningKey};
use mcpgate_tests::http::{initialize_body, post_mcp, RawResponse};
use mcpgate_tests::peers::run_client_with_env;
use mcpgate_tests::{run_client, Gateway, GatewaySpec, Sdk, ServerEverything};
use serde_json::{json, Value};

const API: &str = "/mcp";
const ISSUER: &str = "https://issuer.mcpgate.test";
const ADMIN_CONDITION: &str = "'tools:admin' in auth.scopes || auth.claims.role == 'admin'";

struct Setup {
    server: ServerEverything,
    gateway: Gateway,
    key: SigningKey,
}

impl Setup {
    fn start() -> Self {
        let key = SigningKey::generate("claims-k1");
        let server = ServerEverything::start();
        let jwk = key.jwk();
        let text = |field: &str| jwk[field].as_str().unwrap_or_default().to_owned();
        let config = format!(
            "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 2\n\n\
             [[api]]\nname = \"claims\"\npath = \"{API}\"\nupstream = \"{upstream}\"\n\
             public_url = \"http://{{listen}}{API}\"\n\n\
             [[api.plan]]\ntype = \"jwt\"\nissuer = \"{ISSUER}\"\n\
             keys = [{{ jwk = {{ kty = \"EC\", crv = \"P-256\", alg = \"ES256\", kid = \"{kid}\", \
             x = \"{x}\", y = \"{y}\" }} }}]\n\n\
             [api.acl]\n\
             [[api.acl.rule]]\nmethods = [\"tools/list\", \"tools/call\"]\nnames = [\"echo\"]\n\
             [[api.acl.rule]]\nmethods = [\"tools/list\", \"tools/call\"]\nnames = [\"get-sum\"]\n\
             condition = \"{ADMIN_CONDITION}\"\n",
            upstream = server.upstream_url(),
            kid = key.kid,
            x = text("x"),
            y = text("y"),
        );
        let gateway = Gateway::start(&GatewaySpec::config(config));
        Setup {
            server,
            gateway,
            key,
        }
    }

    /// A valid token for this API with `subject`, `scope` and extra claims.
    fn token(&self, subject: &str, scope: &str, extra: Value) -> String {
        let t = now();
        let mut claims = json!({
            "iss": ISSUER, "aud": format!("http://{}{API}", self.gateway.addr()),
            "sub": subject, "client_id": "claims-test", "scope": scope,
            "iat": t, "exp": t + 300,
        });
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        self.key.mint(&claims)
    }

    /// The TS SDK's observations through the gateway, sending `token`.
    fn probe(&self, token: &str) -> Value {
        let authorization = format!("Bearer {token}");
        run_client_with_env(
            Sdk::TypeScript,
            &self.gateway.url(API),
            "acl_probe",
            &[("MCPGATE_E2E_AUTHORIZATION", authorization.as_str())],
        )
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The upstream's tools kept by `grants`, in the driver's (sorted) order.
fn granted(direct: &Value, grants: &[&str]) -> Vec<String> {
    strings(&direct["tools"])
        .into_iter()
        .filter(|t| grants.contains(&t.as_str()))
        .collect()
}

fn assert_sees_only_echo(through: &Value, direct: &Value, who: &str) {
    assert_eq!(
        strings(&through["tools"]),
        granted(direct, &["echo"]),
        "{who}: {through}"
    );
    assert_eq!(through["calls"]["echo"], json!("ok"), "{who}: {through}");
    assert_eq!(
        through["calls"]["get-sum"]["code"],
        json!(-32602),
        "{who} called get-sum: {through}"
    );
}

fn assert_sees_both(through: &Value, direct: &Value, who: &str) {
    assert_eq!(
        strings(&through["tools"]),
        granted(direct, &["echo", "get-sum"]),
        "{who}: {through}"
    );
    assert_eq!(through["calls"]["echo"], json!("ok"), "{who}: {through}");
    assert_eq!(through["calls"]["get-sum"], json!("ok"), "{who}: {through}");
}

#[test]
fn get_sum_is_listed_and_callable_only_with_the_admin_scope_or_claim() {
    let s = Setup::start();
    let direct = run_client(Sdk::TypeScript, &s.server.mcp_url(), "acl_probe");
    assert_eq!(
        granted(&direct, &["echo", "get-sum"]).len(),
        2,
        "server-everything lacks echo or get-sum: {direct}"
    );
    assert_eq!(direct["calls"]["get-sum"], json!("ok"), "{direct}");

    let reader = s.token("reader", "tools:read", json!({"role": "user"}));
    assert_sees_only_echo(&s.probe(&reader), &direct, "scope tools:read, role user");

    let by_scope = s.token("scoped-admin", "tools:read tools:admin", json!({}));
    assert_sees_both(&s.probe(&by_scope), &direct, "scope tools:admin");

    let by_claim = s.token("claimed-admin", "", json!({"role": "admin"}));
    assert_sees_both(&s.probe(&by_claim), &direct, "claim role admin");
}

fn post(s: &Setup, token: &str, session: Option<&str>, body: &str) -> RawResponse {
    let authorization = format!("Bearer {token}");
    let mut headers = vec![("Authorization", authorization.as_str())];
    if let Some(id) = session {
        headers.push(("Mcp-Session-Id", id));
        headers.push(("Mcp-Protocol-Version", "2025-06-18"));
    }
    post_mcp(s.gateway.addr(), API, &headers, body).unwrap_or_else(|e| panic!("{e}"))
}

/// The single JSON-RPC answer to `id` in a JSON or SSE response.
fn answer(r: &RawResponse, id: u64) -> Value {
    let messages = r
        .jsonrpc_messages()
        .unwrap_or_else(|e| panic!("{e}: {}", r.body_text()));
    messages
        .into_iter()
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| panic!("no answer to {id}: {} {}", r.status, r.body_text()))
}

#[test]
fn the_refusal_on_the_wire_depends_on_the_token_alone() {
    let s = Setup::start();
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":2,"b":3}}}"#;
    for (subject, scope, admin) in [
        ("plain", "tools:read", false),
        ("boss", "tools:admin", true),
    ] {
        let token = s.token(subject, scope, json!({}));
        let init = post(&s, &token, None, &initialize_body(1));
        assert_eq!(init.status, 200, "{}", init.body_text());
        let session = init
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("no session: {:?}", init.headers))
            .to_owned();
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let r = post(&s, &token, Some(&session), initialized);
        assert_eq!(r.status, 202, "{}", r.body_text());

        let a = answer(&post(&s, &token, Some(&session), call), 7);
        if admin {
            let text = a["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default();
            assert!(text.contains('5'), "{subject}: {a}");
        } else {
            assert_eq!(a["error"]["code"], json!(-32602), "{subject}: {a}");
            assert_eq!(
                a["error"]["message"],
                json!("Unknown tool: get-sum"),
                "{subject}: {a}"
            );
        }
    }
}
