//! The per-API plan table `[api.plan]` (authentication) and the public URL it needs, compiled once
//! at load into the snapshot with `mcpgate_policies::auth` (which owns the plan semantics and
//! names the offending field). Three spellings are accepted, all with `type` per plan:
//! a single plan (`[api.plan] type = "api_key" ...`), a list (`[[api.plan]]`), or the full form
//! (`[api.plan] public_url/resource_name` + `[[api.plan.plans]]`). Key files are read relative to
//! the config file.

use std::sync::Arc;

use mcpgate_policies::auth::{ApiAuth, AuthConfigUser, CompileContext, FileSource};
use serde::Deserialize;

use super::user::UserApi;
use super::{ConfigError, Validator};

/// An API's compiled plans, shared by every worker of a snapshot. Two snapshots' plans are equal
/// only when they are the same compiled object (a reload always recompiles).
#[derive(Clone)]
pub struct ApiAuthCfg {
    pub auth: Arc<ApiAuth>,
    /// The API's public URL (the resource identifier and the base of its well-known URLs).
    pub public_url: String,
    /// Request headers carrying credentials for the plans, never forwarded upstream
    /// (`authorization` and each API-key plan's header), lowercase.
    pub credential_headers: Vec<String>,
}

impl PartialEq for ApiAuthCfg {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.auth, &other.auth)
    }
}

impl Eq for ApiAuthCfg {}

impl std::fmt::Debug for ApiAuthCfg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ApiAuthCfg({} plans, {})",
            self.auth.plans().len(),
            self.public_url
        )
    }
}

struct ConfigFiles<'v, 'a> {
    validator: &'v Validator<'a>,
}

impl FileSource for ConfigFiles<'_, '_> {
    fn read_to_string(&self, path: &str) -> Result<String, String> {
        let file = std::path::Path::new(path);
        let full = match std::path::Path::new(self.validator.source).parent() {
            Some(dir) if !file.is_absolute() && !self.validator.source.starts_with('<') => {
                dir.join(file)
            }
            _ => file.to_path_buf(),
        };
        std::fs::read_to_string(&full).map_err(|e| format!("cannot read `{}`: {e}", full.display()))
    }
}

/// The API's public URL: its own `public_url`, else the gateway's `public_url` + the API path,
/// else `http://<listen address><path>` (right only when clients reach the gateway directly).
pub(super) fn effective_public_url(
    api_public_url: Option<&str>,
    gateway_public_url: Option<&str>,
    default_base: &str,
    path: &str,
) -> String {
    let path = if path == "/" { "" } else { path };
    match (api_public_url, gateway_public_url) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Some(base)) => format!("{}{path}", base.trim_end_matches('/')),
        // `https://` when the `listen` listener speaks TLS.
        (None, None) => format!("{default_base}{path}"),
    }
}

impl Validator<'_> {
    /// `[api.plan]` of api `i`; `None` when absent (the API is open: keyless, no challenge).
    pub(super) fn api_auth(
        &self,
        i: usize,
        api: &UserApi,
        public_url: &str,
    ) -> Result<Option<ApiAuthCfg>, ConfigError> {
        let Some(table) = &api.plan else {
            return Ok(None);
        };
        let field = format!("api[{i}].plan");
        let span = Some(table.span());
        let value = table.get_ref().clone();
        let user = match &value {
            toml::Value::Array(_) => {
                let mut wrapper = toml::map::Map::new();
                wrapper.insert("plans".into(), value);
                AuthConfigUser::deserialize(toml::Value::Table(wrapper))
            }
            toml::Value::Table(t) if t.contains_key("type") => {
                let mut wrapper = toml::map::Map::new();
                wrapper.insert("plans".into(), toml::Value::Array(vec![value.clone()]));
                AuthConfigUser::deserialize(toml::Value::Table(wrapper))
            }
            _ => AuthConfigUser::deserialize(value),
        }
        .map_err(|e| {
            let message = e.message().trim_end();
            // The plan's own key or value, not the `[api.plan]` line.
            let at = super::spans::named_in_message(self.text, &table.span(), message);
            self.invalid(at.or(span.clone()), &field, message)
        })?;
        let files = ConfigFiles { validator: self };
        let auth = user
            .compile(&CompileContext {
                public_url: Some(public_url),
                files: &files,
            })
            .map_err(|e| {
                let (sep, sub) = match table.get_ref() {
                    // The single-plan spelling has no `plans[0]` in the file.
                    toml::Value::Table(t) if t.contains_key("type") => {
                        ("", e.field.strip_prefix("plans[0]").unwrap_or(&e.field))
                    }
                    _ => (".", e.field.as_str()),
                };
                let sep = if sub.starts_with('.') || sub.is_empty() {
                    ""
                } else {
                    sep
                };
                self.invalid(span.clone(), &format!("{field}{sep}{sub}"), e.message)
            })?;
        let public_url = auth
            .resource()
            .map(|r| r.as_resource())
            .unwrap_or_else(|| public_url.to_string());
        let mut credential_headers = vec!["authorization".to_owned()];
        for plan in auth.plans() {
            if let mcpgate_policies::auth::Plan::ApiKey(p) = plan {
                let name = p.header().to_ascii_lowercase();
                if !credential_headers.contains(&name) {
                    credential_headers.push(name);
                }
            }
        }
        Ok(Some(ApiAuthCfg {
            auth: Arc::new(auth),
            public_url,
            credential_headers,
        }))
    }
}

impl Validator<'_> {
    /// `gateway.public_url`: an absolute http(s) base URL, kept without its trailing `/`.
    pub(super) fn gateway_public_url(
        &self,
        value: Option<toml::Spanned<String>>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let url = value.get_ref();
        if mcpgate_policies::auth::PublicUrl::parse(url).is_err() {
            return Err(self.invalid(
                Some(value.span()),
                "gateway.public_url",
                "must be an absolute http:// or https:// URL without query, fragment or userinfo",
            ));
        }
        Ok(Some(url.trim_end_matches('/').to_string()))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, Overrides};

    const API: &str = "[gateway]\nlisten = \"127.0.0.1:8080\"\n[[api]]\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

    fn load(text: &str) -> Result<crate::config::Config, String> {
        load_str(text, "test.toml", &Overrides::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn no_plan_means_open() {
        let cfg = load(API).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.apis.iter().all(|a| a.auth.is_none()));
    }

    #[test]
    fn single_plan_list_and_full_forms() {
        let key = "k-0123456789abcdef";
        let single = format!("{API}[api.plan]\ntype = \"api_key\"\nkeys = [\"{key}\"]\n");
        let list = format!("{API}[[api.plan]]\ntype = \"keyless\"\n[[api.plan]]\ntype = \"api_key\"\nkeys = [\"{key}\"]\n");
        let full = format!(
            "{API}[api.plan]\nresource_name = \"x\"\n[[api.plan.plans]]\ntype = \"keyless\"\n"
        );
        for (text, plans) in [(single, 1), (list, 2), (full, 1)] {
            let cfg = load(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let auth = cfg.apis.first().and_then(|a| a.auth.clone());
            assert_eq!(auth.map(|a| a.auth.plans().len()), Some(plans), "{text}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = load(&format!(
            "{API}[api.plan]\ntype = \"api_key\"\nkeys = [\"short\"]\n"
        ))
        .err()
        .unwrap_or_default();
        assert!(e.contains("api[0].plan.keys[0]"), "{e}");
        let e = load(&format!(
            "{API}[[api.plan]]\ntype = \"keyless\"\n[[api.plan]]\ntype = \"jwt\"\nalgorithms = [\"none\"]\nhmac_secret = \"0123456789abcdef0123456789abcdef\"\n"
        ))
        .err()
        .unwrap_or_default();
        assert!(e.contains("api[0].plan.plans[1].algorithms[0]"), "{e}");
        assert!(e.starts_with("test.toml:"), "{e}");
        let e = load(&API.replace("[gateway]\n", "[gateway]\npublic_url = \"ftp://x\"\n"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("gateway.public_url"), "{e}");
    }

    #[test]
    fn https_issuers_are_accepted() {
        let ok = load(&format!(
            "{API}[api.plan]\ntype = \"oauth2\"\nissuer = \"https://as.example\"\n"
        ));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn public_url_from_api_gateway_or_listen() {
        let oauth = "[api.plan]\ntype = \"oauth2\"\nissuer = \"http://127.0.0.1:9/\"\n";
        let url = |text: String| {
            load(&text)
                .unwrap_or_else(|e| panic!("{e}"))
                .apis
                .first()
                .and_then(|a| a.auth.clone())
                .map(|a| a.public_url)
        };
        assert_eq!(
            url(format!("{API}{oauth}")).as_deref(),
            Some("http://127.0.0.1:8080/mcp")
        );
        assert_eq!(
            url(format!(
                "{API}public_url = \"https://api.example/x/\"\n{oauth}"
            ))
            .as_deref(),
            Some("https://api.example/x")
        );
        let with_gateway = API.replace(
            "listen = \"127.0.0.1:8080\"\n",
            "listen = \"127.0.0.1:8080\"\npublic_url = \"https://GW.example/\"\n",
        );
        assert_eq!(
            url(format!("{with_gateway}{oauth}")).as_deref(),
            Some("https://gw.example/mcp")
        );
    }
}
