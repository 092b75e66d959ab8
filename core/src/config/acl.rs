//! The per-API MCP ACL in the configuration: `[api.acl]` (native TOML, optionally with inline or
//! file Gravitee JSON), `acl_file = "x.json"` (Gravitee JSON as-is) and `mcpgate run --acl FILE`,
//! compiled once at load into the snapshot. Errors name the API and the rule; warnings are logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcpgate_policies::acl::{Acl, AclConfig, AclError};
use serde::Deserialize;

use super::user::UserApi;
use super::{ApiAcl, ConfigError, Validator};

impl Validator<'_> {
    /// Files named in the config are relative to the config file's directory.
    pub(super) fn relative_to_config(&self, file: &str) -> PathBuf {
        let path = Path::new(file);
        if path.is_absolute() || self.source.starts_with('<') {
            return path.to_path_buf();
        }
        match Path::new(self.source).parent() {
            Some(dir) => dir.join(path),
            None => path.to_path_buf(),
        }
    }

    fn read_acl_file(&self, path: &Path, field: &str) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
            location: self.source.to_string(),
            field: field.to_string(),
            message: format!("cannot read `{}`: {e}", path.display()),
        })
    }

    fn acl_error(
        &self,
        span: Option<std::ops::Range<usize>>,
        field: &str,
        e: AclError,
    ) -> ConfigError {
        self.invalid(span, field, e.to_string())
    }

    fn loaded(&self, field: &str, acl: Acl) -> ApiAcl {
        for warning in acl.warnings() {
            crate::warn!("{}: {field}: {warning}", self.source);
        }
        ApiAcl(Arc::new(acl))
    }

    /// `[api.acl]` and / or `acl_file` of api `i`; `None` when it has neither (no policy).
    pub(super) fn api_acl(&self, i: usize, api: &UserApi) -> Result<Option<ApiAcl>, ConfigError> {
        let field = format!("api[{i}].acl");
        match (&api.acl, &api.acl_file) {
            (None, None) => Ok(None),
            (Some(table), Some(file)) => Err(self.invalid(
                Some(file.span()),
                &format!("api[{i}].acl_file"),
                format!(
                    "give either [api.acl] or acl_file, not both (put the file in the table as \
                     gravitee_file; the table is at byte {})",
                    table.span().start
                ),
            )),
            (None, Some(file)) => {
                let path = self.relative_to_config(file.get_ref());
                let text = self.read_acl_file(&path, &format!("api[{i}].acl_file"))?;
                let acl = Acl::from_gravitee_json(&text).map_err(|e| {
                    self.acl_error(
                        Some(file.span()),
                        &format!("api[{i}].acl_file ({})", path.display()),
                        e,
                    )
                })?;
                Ok(Some(self.loaded(&field, acl)))
            }
            (Some(table), None) => {
                let config = AclConfig::deserialize(table.get_ref().clone()).map_err(|e| {
                    self.invalid(Some(table.span()), &field, e.message().trim_end())
                })?;
                let file_text = match &config.gravitee_file {
                    Some(file) => {
                        let path = self.relative_to_config(file);
                        Some(self.read_acl_file(&path, &format!("{field}.gravitee_file"))?)
                    }
                    None => None,
                };
                let acl = Acl::compile(&config, file_text.as_deref())
                    .map_err(|e| self.acl_error(Some(table.span()), &field, e))?;
                Ok(Some(self.loaded(&field, acl)))
            }
        }
    }

    /// `mcpgate run --acl FILE`.
    pub(super) fn command_line_acl(&self, file: &Path) -> Result<ApiAcl, ConfigError> {
        let text = self.read_acl_file(file, "--acl")?;
        let acl = Acl::from_gravitee_json(&text)
            .map_err(|e| self.acl_error(None, &format!("--acl ({})", file.display()), e))?;
        Ok(self.loaded("--acl", acl))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load_file, load_str, Overrides};

    const API: &str =
        "[[api]]\nname = \"weather\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

    fn load(extra: &str) -> Result<super::super::Config, String> {
        load_str(&format!("{API}{extra}"), "test.toml", &Overrides::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn no_acl_is_no_policy_and_an_empty_acl_compiles() {
        let cfg = load("").unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.apis.iter().all(|a| a.acl.is_none()));
        let cfg = load("[api.acl]\n").unwrap_or_else(|e| panic!("{e}"));
        let acl = cfg
            .apis
            .first()
            .and_then(|a| a.acl.as_ref())
            .map(|a| a.0.rule_count());
        assert_eq!(acl, Some(0));
    }

    #[test]
    fn errors_name_the_api_and_the_rule() {
        let err =
            load("[api.acl]\n[[api.acl.rule]]\nmethods = [\"tools/call\"]\npattern = \"a)|(b\"\n")
                .err()
                .unwrap_or_default();
        assert!(
            err.contains("api[0].acl") && err.contains("rule[0]"),
            "{err}"
        );
        let err = load("[api.acl]\n[[api.acl.rule]]\ntype = \"TOOLS\"\ncondition = \"{#request.headers['x'][0] == 'a'}\"\n")
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("api[0].acl") && err.contains("rule[0].condition"),
            "{err}"
        );
        let err = load("[api.acl]\nbogus = 1\n").err().unwrap_or_default();
        assert!(err.contains("api[0].acl") && err.contains("bogus"), "{err}");
        let err = load("acl_file = \"/nonexistent/acl.json\"\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("api[0].acl_file"), "{err}");
    }

    #[test]
    fn acl_file_is_relative_to_the_config_and_cli_acl_applies_to_the_single_api() {
        let dir = std::env::temp_dir().join(format!("mcpgate-acl-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let json = r#"{"authorizations":[{"authorizedFeatures":[{"type":"TOOLS","methods":["TOOLS_LIST"]}]}]}"#;
        std::fs::write(dir.join("acl.json"), json).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.join("gw.toml"),
            format!("{API}acl_file = \"acl.json\"\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let cfg = load_file(&dir.join("gw.toml"), &Overrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cfg.apis
                .first()
                .and_then(|a| a.acl.as_ref())
                .map(|a| a.0.rule_count()),
            Some(1)
        );

        let ov = Overrides {
            upstream: Some("http://127.0.0.1:4000/mcp".into()),
            acl: Some(dir.join("acl.json")),
            ..Overrides::default()
        };
        let cfg = super::super::load_default(&ov).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.apis.first().is_some_and(|a| a.acl.is_some()));
        std::fs::write(
            dir.join("bad.json"),
            r#"{"authorizations":[{"authorizedFeatures":[{"methods":["TOOLS_LIST"]}]}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ov = Overrides {
            acl: Some(dir.join("bad.json")),
            ..ov
        };
        let err = super::super::load_default(&ov)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("--acl") && err.contains("authorizations[0]"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
