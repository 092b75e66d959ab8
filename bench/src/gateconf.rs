//! The mcpgate configurations the side-by-side harness generates itself, and the bearer token it
//! mints for them: the half-catalogue MCP ACL of `list-acl`, the JWT plan of `list-acl-jwt`, and the
//! recording-off twin of `--observe-ab`. Generated here (not kept as files) so they follow the
//! mock's catalogue size and cannot drift from what the load generator expects.
//!
//! Templates are plain text with two placeholders: `{upstream}` (the mock's URL) and
//! `{api_policies}` (the keys and sub-tables this module appends to the `/mcp-proxy` API: nothing
//! for the plain scenarios, the ACL, or the ACL and the plan). `{api_policies}` must therefore sit
//! at the end of that `[[api]]` table.

use std::fmt::Write as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::mcp::Scenario;

/// The public URL of the benchmarked API: the token's audience, as a deployment behind a load
/// balancer would configure it (`public_url`), independent of the port the harness picks.
pub const PUBLIC_URL: &str = "https://gw.bench.mcpgate.example/mcp-proxy";
/// The token issuer the JWT plan requires.
pub const ISSUER: &str = "https://issuer.bench.mcpgate.example";
/// The scope the plan requires; tokens carry it among others.
pub const REQUIRED_SCOPE: &str = "mcp:tools";
/// Lifetime of a minted token: an hour, as an authorization server would issue it.
pub const TOKEN_LIFETIME_SECONDS: u64 = 3600;

/// Placeholders in a mcpgate configuration template.
pub const UPSTREAM_PLACEHOLDER: &str = "{upstream}";
pub const POLICIES_PLACEHOLDER: &str = "{api_policies}";

/// What a gateway leg enforces on the API, by scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policies {
    /// Plain proxy (call-json, call-sse, list, idle-sse).
    None,
    /// The half-catalogue ACL on `tools/list` and `tools/call`.
    Acl,
    /// The same ACL behind a `jwt` plan.
    AclJwt,
}

impl Policies {
    pub fn for_scenario(scenario: Scenario) -> Self {
        if scenario.has_jwt() {
            Policies::AclJwt
        } else if scenario.has_acl() {
            Policies::Acl
        } else {
            Policies::None
        }
    }

    /// For file names and messages.
    pub fn slug(self) -> &'static str {
        match self {
            Policies::None => "plain",
            Policies::Acl => "acl",
            Policies::AclJwt => "acl-jwt",
        }
    }
}

/// The HMAC key shared by the generated plan and the minter: random per run, hex (64 bytes of
/// UTF-8, twice HS256's 32-byte minimum).
#[derive(Clone)]
pub struct JwtKey {
    secret: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub struct RandomUnavailable;

impl JwtKey {
    pub fn random() -> Result<Self, RandomUnavailable> {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| RandomUnavailable)?;
        Ok(Self::from_secret(bytes.iter().fold(
            String::new(),
            |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            },
        )))
    }

    pub fn from_secret(secret: String) -> Self {
        Self { secret }
    }

    /// A compact HS256 JWS with the claims a real client's token would carry for this API:
    /// `iss`, `sub`, `aud` = [`PUBLIC_URL`], `iat`, `exp` an hour ahead, `scope` and `client_id`.
    pub fn mint(&self, now_unix: u64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": "bench-user",
            "aud": PUBLIC_URL,
            "iat": now_unix,
            "exp": now_unix + TOKEN_LIFETIME_SECONDS,
            "scope": format!("{REQUIRED_SCOPE} mcp:read"),
            "client_id": "mcpgate-bench",
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.as_bytes());
        let tag = ring::hmac::sign(&key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }
}

/// A TOML basic string (quotes and escapes), for values the harness does not control.
fn toml_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// What replaces [`POLICIES_PLACEHOLDER`]: keys and sub-tables of the `/mcp-proxy` API, with an
/// ACL that admits exactly `visible` (the first half of the origin's catalogue).
pub fn api_policies_toml(policies: Policies, visible: &[String], key: &JwtKey) -> String {
    if policies == Policies::None {
        return String::new();
    }
    let names: Vec<String> = visible.iter().map(|n| toml_str(n)).collect();
    let mut t = format!(
        r#"public_url = {public_url}

# MCP ACL: tools/list shows, and tools/call admits, exactly the first half of the origin's tools.
[api.acl]
[[api.acl.rule]]
methods = ["tools/list", "tools/call"]
names = [{names}]
"#,
        public_url = toml_str(PUBLIC_URL),
        names = names.join(", "),
    );
    if policies == Policies::AclJwt {
        let _ = write!(
            t,
            r#"
# Static-key JWT plan: HS256, iss and aud (= public_url) checked, exp required, scope required.
[api.plan]
type = "jwt"
issuer = {issuer}
hmac_secret = {secret}
algorithms = ["HS256"]
required_scopes = [{scope}]
"#,
            issuer = toml_str(ISSUER),
            secret = toml_str(&key.secret),
            scope = toml_str(REQUIRED_SCOPE),
        );
    }
    t
}

/// The harness's own template: one API at `/mcp-proxy`; `recording` sets `[gateway.log] enabled`
/// (`None` leaves mcpgate's default, which is on).
pub fn generated_template(recording: Option<bool>) -> String {
    let mut t = String::from("# Generated by mcpgate-bench sidebyside.\n");
    if let Some(on) = recording {
        let _ = write!(
            t,
            "[gateway.log]\nenabled = {on}   # exchange recording (records, metrics)\n\n"
        );
    }
    t.push_str(
        "[[api]]\nname = \"bench\"\npath = \"/mcp-proxy\"\nupstream = \"{upstream}\"\n{api_policies}",
    );
    t
}

/// `template` with its placeholders filled in.
pub fn render(template: &str, upstream: &str, policies_toml: &str) -> String {
    template
        .replace(UPSTREAM_PLACEHOLDER, upstream)
        .replace(POLICIES_PLACEHOLDER, policies_toml)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims_of(token: &str) -> serde_json::Value {
        let claims = token.split('.').nth(1).unwrap_or_default();
        let bytes = URL_SAFE_NO_PAD.decode(claims).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[test]
    fn minted_token_verifies_under_the_generated_plan() {
        let key = JwtKey::from_secret("k".repeat(40));
        let now = 1_800_000_000;
        let token = key.mint(now);
        let claims = claims_of(&token);
        assert_eq!(claims["aud"], PUBLIC_URL);
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["exp"], now + TOKEN_LIFETIME_SECONDS);
        // The gateway's own plan compiler and validator judge the token, from the generated TOML.
        let config = render(
            &generated_template(None),
            "http://127.0.0.1:1/mcp",
            &api_policies_toml(Policies::AclJwt, &crate::mcp::acl_visible_tools(100), &key),
        );
        let doc: toml::Value = toml::from_str(&config).unwrap_or_else(|e| panic!("{e}\n{config}"));
        let plan = doc["api"][0]["plan"].clone();
        assert!(
            plan.get("audiences").is_none(),
            "aud defaults to the API's public_url"
        );
        let auth: mcpgate_policies::auth::AuthConfigUser = toml::Value::Table(
            [
                ("public_url".to_owned(), doc["api"][0]["public_url"].clone()),
                ("plans".to_owned(), toml::Value::Array(vec![plan])),
            ]
            .into_iter()
            .collect(),
        )
        .try_into()
        .unwrap_or_else(|e| panic!("{e}"));
        let api = auth
            .compile(&mcpgate_policies::auth::CompileContext {
                public_url: None,
                files: &mcpgate_policies::auth::NoFiles,
            })
            .unwrap_or_else(|e| panic!("{e:?}"));
        // One request with `Authorization: Bearer <token>` through a compiled plan, at `at`:
        // the step's variant name (`Authenticated`, `Refused`, …) and its debug form.
        let authenticate = |api: &mcpgate_policies::auth::ApiAuth,
                            state: &mut mcpgate_policies::auth::WorkerAuthState,
                            token: &str,
                            at: u64| {
            let header = format!("Bearer {token}");
            let headers = [("authorization", header.as_str())];
            let headers = mcpgate_policies::auth::request::StrHeaders(&headers);
            let req = mcpgate_policies::auth::AuthRequest {
                headers: &headers,
                query: None,
                client_cert: None,
            };
            let step = api.authenticate(&req, state, at);
            let variant = match step {
                mcpgate_policies::auth::AuthStep::Authenticated(_) => "Authenticated",
                mcpgate_policies::auth::AuthStep::Refused(_) => "Refused",
                _ => "other",
            };
            (variant, format!("{step:?}"))
        };
        let mut state = api.new_worker_state();
        let (step, debug) = authenticate(&api, &mut state, &token, now + 10);
        assert_eq!(step, "Authenticated", "{debug}");
        // The same token an hour later is expired; another key's token is refused.
        let (late, debug) = authenticate(
            &api,
            &mut state,
            &token,
            now + TOKEN_LIFETIME_SECONDS + 3600,
        );
        assert_eq!(late, "Refused", "{debug}");
        let forged = JwtKey::from_secret("x".repeat(40)).mint(now);
        let (step, debug) = authenticate(&api, &mut state, &forged, now + 10);
        assert_eq!(step, "Refused", "{debug}");
        // A plan for another public URL (audience) refuses the token.
        let mut elsewhere = auth.clone();
        elsewhere.public_url = Some("https://elsewhere.example/mcp".to_owned());
        let elsewhere = elsewhere
            .compile(&mcpgate_policies::auth::CompileContext {
                public_url: None,
                files: &mcpgate_policies::auth::NoFiles,
            })
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mut state = elsewhere.new_worker_state();
        let (step, debug) = authenticate(&elsewhere, &mut state, &token, now + 10);
        assert_eq!(step, "Refused", "{debug}");
    }

    #[test]
    fn generated_acl_shows_exactly_half_of_the_catalogue() {
        let key = JwtKey::from_secret("k".repeat(40));
        let config = render(
            &generated_template(Some(false)),
            "http://127.0.0.1:1/mcp",
            &api_policies_toml(Policies::Acl, &crate::mcp::acl_visible_tools(100), &key),
        );
        let doc: toml::Value = toml::from_str(&config).unwrap_or_else(|e| panic!("{e}\n{config}"));
        assert_eq!(doc["gateway"]["log"]["enabled"].as_bool(), Some(false));
        assert!(doc["api"][0].get("plan").is_none());
        let acl_cfg: mcpgate_policies::acl::AclConfig = doc["api"][0]["acl"]
            .clone()
            .try_into()
            .unwrap_or_else(|e| panic!("{e}"));
        let acl =
            mcpgate_policies::acl::Acl::compile(&acl_cfg, None).unwrap_or_else(|e| panic!("{e:?}"));
        let ctx = mcpgate_policies::acl::RequestInfo::default();
        let mut filter = acl.list_filter(mcpgate_policies::acl::ListKind::Tools, &ctx);
        let kept = (0..100)
            .filter(|&i| filter.keep(&crate::mcp::tool_name(i)))
            .count();
        assert_eq!(kept, 50);
    }

    #[test]
    fn plain_policies_add_nothing() {
        let key = JwtKey::from_secret("k".repeat(40));
        assert_eq!(api_policies_toml(Policies::None, &[], &key), "");
        let config = render(&generated_template(None), "http://u/mcp", "");
        assert!(!config.contains("gateway.log") && config.contains("upstream = \"http://u/mcp\""));
    }
}
