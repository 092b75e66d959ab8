//! TLS in the configuration (issue 13): `[gateway.tls]` (the `listen` listener speaks TLS),
//! `[[gateway.listeners]]` (more listeners, each plain or with its own `tls` table), `[api.tls]`
//! (an `https://` upstream's trust store, name, client certificate), and the command line's
//! `--tls-cert/--tls-key` and `--upstream-ca`. Files are read and every configuration built at
//! load, so `mcpgate check` and a SIGHUP reload refuse a bad certificate before anything runs
//! with it; errors name the field. Paths are relative to the config file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{parse_addr, ConfigError, Overrides, Validator};
use crate::tls::client::{self, Roots, UpstreamTls, UpstreamTlsSettings};
use crate::tls::server::{
    self, ClientAuth, LoadedServerTls, ServerTlsSettings, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_WATCH_INTERVAL,
};
use crate::tls::{CertKeyPaths, MinVersion};

/// `[gateway.tls]`, or a listener's `tls` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserServerTls {
    /// PEM certificate chain, leaf first: the default certificate.
    pub cert: Option<Spanned<String>>,
    /// Its private key (PKCS#8, PKCS#1 or SEC1 PEM).
    pub key: Option<Spanned<String>>,
    /// More certificates, each served to clients whose SNI it covers.
    #[serde(default)]
    pub certificates: Vec<UserCertKey>,
    /// `"1.2"` (default: TLS 1.2 and 1.3) or `"1.3"`.
    pub min_version: Option<Spanned<String>>,
    /// A CA bundle client certificates must chain to (mTLS).
    pub client_ca: Option<Spanned<String>>,
    /// `"required"` (default with `client_ca`) or `"optional"`.
    pub client_auth: Option<Spanned<String>>,
    pub handshake_timeout: Option<Spanned<String>>,
    /// How often the files are checked for changes, or `"off"`.
    pub watch: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCertKey {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

/// `[[gateway.listeners]]`: a listener besides `listen`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserListener {
    pub listen: Spanned<String>,
    pub tls: Option<UserServerTls>,
}

/// `[api.tls]`: how to reach an `https://` upstream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpstreamTls {
    /// `"webpki"` (default), `"system"` or `"none"` (only `ca`).
    pub roots: Option<Spanned<String>>,
    /// A PEM bundle of trust anchors, added to `roots`.
    pub ca: Option<Spanned<String>>,
    /// The name verified and sent as SNI, instead of the URL's host.
    pub server_name: Option<Spanned<String>>,
    pub client_cert: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    /// Development only: no certificate or name check at all.
    pub insecure_skip_verify: Option<bool>,
}

/// A client listener: its address and, when it speaks TLS, its settings and built configuration.
#[derive(Debug, Clone)]
pub struct Listener {
    pub addr: SocketAddr,
    pub tls: Option<ListenerTls>,
}

impl PartialEq for Listener {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
            && self.tls.as_ref().map(|t| &t.settings) == other.tls.as_ref().map(|t| &t.settings)
    }
}

impl Eq for Listener {}

/// A TLS listener's settings and the configuration built from them at load.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub settings: ServerTlsSettings,
    pub loaded: LoadedServerTls,
}

impl ListenerTls {
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.loaded.config.clone()
    }
}

impl Validator<'_> {
    fn path(&self, value: &Spanned<String>) -> PathBuf {
        self.relative_to_config(value.get_ref())
    }

    /// The listeners: `listen` (with `[gateway.tls]` or `--tls-cert/--tls-key`) first, then
    /// `[[gateway.listeners]]`.
    pub(super) fn listeners(
        &self,
        main: SocketAddr,
        tls: Option<UserServerTls>,
        more: Vec<UserListener>,
        ov: &Overrides,
    ) -> Result<Vec<Listener>, ConfigError> {
        let main_tls = match (&ov.tls_cert, &ov.tls_key) {
            (Some(cert), Some(key)) => {
                let mut user = tls.unwrap_or_default();
                user.certificates.clear();
                let settings = self.server_settings("--tls-cert", user, |v| self.path(v))?;
                let settings = ServerTlsSettings {
                    certs: vec![CertKeyPaths {
                        cert: cert.clone(),
                        key: key.clone(),
                    }],
                    ..settings
                };
                Some(self.build_listener_tls("--tls-cert", settings)?)
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(self.invalid(
                    None,
                    "--tls-cert",
                    "--tls-cert and --tls-key go together",
                ))
            }
            (None, None) => match tls {
                Some(user) => {
                    let settings = self.server_settings("gateway.tls", user, |v| self.path(v))?;
                    Some(self.build_listener_tls("gateway.tls", settings)?)
                }
                None => None,
            },
        };
        let mut listeners = vec![Listener {
            addr: main,
            tls: main_tls,
        }];
        for (i, l) in more.into_iter().enumerate() {
            let field = format!("gateway.listeners[{i}]");
            let addr = parse_addr(l.listen.get_ref())
                .map_err(|m| self.invalid(Some(l.listen.span()), &format!("{field}.listen"), m))?;
            if let Some(j) = listeners
                .iter()
                .position(|o| o.addr == addr && addr.port() != 0)
            {
                return Err(self.invalid(
                    Some(l.listen.span()),
                    &format!("{field}.listen"),
                    format!(
                        "`{addr}` is already {}",
                        if j == 0 {
                            "gateway.listen".to_string()
                        } else {
                            format!("gateway.listeners[{}].listen", j - 1)
                        }
                    ),
                ));
            }
            let tls = match l.tls {
                Some(user) => {
                    let at = format!("{field}.tls");
                    let settings = self.server_settings(&at, user, |v| self.path(v))?;
                    Some(self.build_listener_tls(&at, settings)?)
                }
                None => None,
            };
            listeners.push(Listener { addr, tls });
        }
        Ok(listeners)
    }

    fn build_listener_tls(
        &self,
        at: &str,
        settings: ServerTlsSettings,
    ) -> Result<ListenerTls, ConfigError> {
        let loaded = server::build(&settings).map_err(|e| {
            let field = match at.strip_prefix("--") {
                Some(_) if e.field == "key" => "--tls-key".to_string(),
                Some(_) => at.to_string(),
                None => format!("{at}.{}", e.field),
            };
            self.invalid(None, &field, e.source.to_string())
        })?;
        Ok(ListenerTls { settings, loaded })
    }

    fn server_settings(
        &self,
        at: &str,
        user: UserServerTls,
        path: impl Fn(&Spanned<String>) -> PathBuf,
    ) -> Result<ServerTlsSettings, ConfigError> {
        let field = |name: &str| {
            if at.starts_with("--") {
                at.to_string()
            } else {
                format!("{at}.{name}")
            }
        };
        let mut certs = Vec::new();
        match (&user.cert, &user.key) {
            (Some(cert), Some(key)) => certs.push(CertKeyPaths {
                cert: path(cert),
                key: path(key),
            }),
            (None, None) if at.starts_with("--") => {}
            (Some(c), None) => {
                return Err(self.invalid(Some(c.span()), &field("key"), "required with `cert`"))
            }
            (None, Some(k)) => {
                return Err(self.invalid(Some(k.span()), &field("cert"), "required with `key`"))
            }
            (None, None) => {
                return Err(self.invalid(
                    None,
                    &field("cert"),
                    "a TLS listener needs `cert` and `key` (PEM files)",
                ))
            }
        }
        for c in &user.certificates {
            certs.push(CertKeyPaths {
                cert: path(&c.cert),
                key: path(&c.key),
            });
        }
        let min_version = match &user.min_version {
            None => MinVersion::Tls12,
            Some(v) => MinVersion::parse(v.get_ref()).ok_or_else(|| {
                self.invalid(
                    Some(v.span()),
                    &field("min_version"),
                    "expected \"1.2\" (TLS 1.2 and 1.3) or \"1.3\" (TLS 1.3 only)",
                )
            })?,
        };
        let client_auth = match &user.client_auth {
            None => ClientAuth::Required,
            Some(v) => match v.get_ref().as_str() {
                "required" => ClientAuth::Required,
                "optional" => ClientAuth::Optional,
                _ => {
                    return Err(self.invalid(
                        Some(v.span()),
                        &field("client_auth"),
                        "expected \"required\" or \"optional\"",
                    ))
                }
            },
        };
        let client_ca =
            match &user.client_ca {
                Some(ca) => Some((path(ca), client_auth)),
                None if user.client_auth.is_some() => return Err(self.invalid(
                    None,
                    &field("client_auth"),
                    "needs `client_ca` (the CA bundle client certificates are verified against)",
                )),
                None => None,
            };
        let handshake_timeout = self.duration_at(
            user.handshake_timeout,
            &field("handshake_timeout"),
            DEFAULT_HANDSHAKE_TIMEOUT,
        )?;
        let watch = match user.watch {
            Some(w) if w.get_ref() == "off" => None,
            w => Some(self.duration_at(w, &field("watch"), DEFAULT_WATCH_INTERVAL)?),
        };
        Ok(ServerTlsSettings {
            certs,
            client_ca,
            min_version,
            handshake_timeout,
            watch,
        })
    }

    /// `[api.tls]` of api `i` (or the command line's `--upstream-ca`), for its upstream at `host`.
    /// `None` for an `http://` upstream; an `[api.tls]` on one is refused (it would do nothing).
    pub(super) fn upstream_tls(
        &self,
        field: &str,
        https: bool,
        host: &str,
        user: Option<UserUpstreamTls>,
        command_line_ca: Option<&PathBuf>,
    ) -> Result<Option<UpstreamTls>, ConfigError> {
        if !https {
            if user.is_some() {
                return Err(self.invalid(
                    None,
                    field,
                    "only for an https:// upstream (this one is http://)",
                ));
            }
            if command_line_ca.is_some() {
                return Err(self.invalid(None, "--upstream-ca", "only for an https:// --upstream"));
            }
            return Ok(None);
        }
        let user = user.unwrap_or_default();
        let at = |name: &str| format!("{field}.{name}");
        let mut settings = UpstreamTlsSettings::default();
        if let Some(r) = &user.roots {
            settings.roots = Roots::parse(r.get_ref()).ok_or_else(|| {
                self.invalid(
                    Some(r.span()),
                    &at("roots"),
                    "expected \"webpki\" (Mozilla's roots), \"system\" (the OS store) or \"none\"",
                )
            })?;
        }
        settings.ca = match (command_line_ca, &user.ca) {
            (Some(ca), _) => Some(ca.clone()),
            (None, Some(ca)) => Some(self.path(ca)),
            (None, None) => None,
        };
        if let Some(name) = &user.server_name {
            settings.server_name = Some(name.get_ref().clone());
        }
        settings.client_cert = match (&user.client_cert, &user.client_key) {
            (Some(cert), Some(key)) => Some(CertKeyPaths {
                cert: self.path(cert),
                key: self.path(key),
            }),
            (None, None) => None,
            (Some(c), None) => {
                return Err(self.invalid(
                    Some(c.span()),
                    &at("client_key"),
                    "required with `client_cert`",
                ))
            }
            (None, Some(k)) => {
                return Err(self.invalid(
                    Some(k.span()),
                    &at("client_cert"),
                    "required with `client_key`",
                ))
            }
        };
        settings.insecure_skip_verify = user.insecure_skip_verify.unwrap_or(false);
        let built = client::build(&settings, host).map_err(|e| {
            let name = if e.field == "ca" && command_line_ca.is_some() {
                "--upstream-ca".to_string()
            } else {
                at(&e.field)
            };
            self.invalid(None, &name, e.source.to_string())
        })?;
        if built.insecure_skip_verify {
            // At every load (start and reload): an operator must not be able to miss it.
            crate::warn!(
                "{}: {}: insecure_skip_verify = true: the upstream's certificate and name are NOT \
                 checked; anyone on the path can impersonate it. Development only.",
                self.source,
                at("insecure_skip_verify")
            );
        }
        Ok(Some(built))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, Overrides};
    use crate::tls::test_certs::{toml_path, TestPki};

    const API: &str = "\n[[api]]\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

    fn err(text: &str, ov: &Overrides) -> String {
        match load_str(text, "t.toml", ov) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn listeners_load_with_their_certificates_and_public_urls_turn_https() {
        let pki = TestPki::new("cfg");
        let gw = pki.server("gw", &["localhost", "*.example.test"]);
        let other = pki.server("other", &["other.test"]);
        let text = format!(
            "[gateway]\nlisten = \"127.0.0.1:8443\"\n[gateway.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
             min_version = \"1.3\"\nclient_ca = \"{}\"\nclient_auth = \"optional\"\nwatch = \"off\"\n\
             [[gateway.tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n\
             [[gateway.listeners]]\nlisten = \"127.0.0.1:8080\"\n{API}\
             [[api.plan]]\ntype = \"client_cert\"\n",
            toml_path(&gw.cert),
            toml_path(&gw.key),
            toml_path(&pki.ca()),
            toml_path(&other.cert),
            toml_path(&other.key),
        );
        let cfg =
            load_str(&text, "t.toml", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        let listeners = &cfg.gateway.listeners;
        assert_eq!(listeners.len(), 2);
        let tls = listeners[0]
            .tls
            .as_ref()
            .unwrap_or_else(|| panic!("no TLS"));
        assert_eq!(tls.settings.certs.len(), 2);
        assert_eq!(tls.settings.watch, None);
        assert_eq!(tls.loaded.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(
            tls.loaded.summary[0].contains("localhost, *.example.test"),
            "{:?}",
            tls.loaded.summary
        );
        assert!(listeners[1].tls.is_none());
        assert_eq!(cfg.gateway.default_base_url(), "https://127.0.0.1:8443");
        assert_eq!(
            cfg.apis[0].auth.as_ref().map(|a| a.public_url.as_str()),
            Some("https://127.0.0.1:8443/mcp")
        );
    }

    #[test]
    fn errors_name_the_field() {
        let pki = TestPki::new("cfg-errors");
        let gw = pki.server("gw", &["localhost"]);
        let other = pki.server("other", &["localhost"]);
        let (cert, key) = (toml_path(&gw.cert), toml_path(&gw.key));
        let none = Overrides::default();
        let tls = |extra: &str| {
            format!("[gateway.tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n{extra}{API}")
        };
        for (text, expected) in [
            (
                format!("[gateway.tls]\ncert = \"{cert}\"\nkey = \"{}\"\n{API}", toml_path(&other.key)),
                "gateway.tls.key: ",
            ),
            (format!("[gateway.tls]\ncert = \"{cert}\"\n{API}"), "gateway.tls.key: required with `cert`"),
            (tls("min_version = \"1.1\"\n"), "gateway.tls.min_version: expected \"1.2\""),
            (tls("client_auth = \"optional\"\n"), "gateway.tls.client_auth: needs `client_ca`"),
            (tls("handshake_timeout = \"0s\"\n"), "gateway.tls.handshake_timeout: "),
            (
                format!("[gateway.tls]\ncert = \"{key}\"\nkey = \"{key}\"\n{API}"),
                "gateway.tls.cert: ",
            ),
            (
                format!(
                    "[[gateway.listeners]]\nlisten = \"127.0.0.1:9\"\n[gateway.listeners.tls]\n\
                     cert = \"{}\"\nkey = \"{key}\"\n{API}",
                    toml_path(&pki.path("missing.pem"))
                ),
                "gateway.listeners[0].tls.cert: ",
            ),
            (
                format!("[gateway]\nlisten = \"127.0.0.1:9\"\n[[gateway.listeners]]\nlisten = \"127.0.0.1:9\"\n{API}"),
                "gateway.listeners[0].listen: `127.0.0.1:9` is already gateway.listen",
            ),
            (format!("{API}[api.tls]\nroots = \"webpki\"\n"), "api[0].tls: only for an https:// upstream"),
            (
                "[[api]]\npath = \"/m\"\nupstream = \"https://127.0.0.1:1/mcp\"\n[api.tls]\nroots = \"none\"\n".into(),
                "api[0].tls.ca: no trust anchors",
            ),
            (
                "[[api]]\npath = \"/m\"\nupstream = \"https://127.0.0.1:1/mcp\"\n[api.tls]\nroots = \"mozilla\"\n".into(),
                "api[0].tls.roots: expected",
            ),
            (
                format!("[[api]]\npath = \"/m\"\nupstream = \"https://127.0.0.1:1/mcp\"\n[api.tls]\nclient_cert = \"{cert}\"\n"),
                "api[0].tls.client_key: required with `client_cert`",
            ),
            (
                format!(
                    "[[api]]\npath = \"/m\"\nupstream = \"https://127.0.0.1:1/mcp\"\n[api.tls]\n\
                     client_cert = \"{cert}\"\nclient_key = \"{}\"\n",
                    toml_path(&other.key)
                ),
                "api[0].tls.client_key: ",
            ),
        ] {
            let e = err(&text, &none);
            assert!(e.contains(expected), "expected {expected:?} in: {e}");
        }
        let ov = Overrides {
            tls_cert: Some(gw.cert.clone()),
            ..Overrides::default()
        };
        assert!(err(API, &ov).contains("--tls-cert: --tls-cert and --tls-key go together"));
        let ov = Overrides {
            tls_cert: Some(gw.cert.clone()),
            tls_key: Some(other.key.clone()),
            ..Overrides::default()
        };
        assert!(
            err(API, &ov).starts_with("command line: --tls-key: "),
            "{}",
            err(API, &ov)
        );
        let ov = Overrides {
            upstream: Some("http://127.0.0.1:1/mcp".into()),
            upstream_ca: Some(pki.ca()),
            ..Overrides::default()
        };
        assert!(err(API, &ov).contains("--upstream-ca: only for an https:// --upstream"));
    }

    #[test]
    fn https_upstreams_get_a_tls_client_each() {
        let pki = TestPki::new("cfg-up");
        let text = format!(
            "[[api]]\npath = \"/a\"\nupstream = \"https://127.0.0.1:1/mcp\"\n\
             [[api]]\npath = \"/b\"\nupstream = \"https://localhost:2/mcp\"\n\
             [api.tls]\nroots = \"none\"\nca = \"{}\"\nserver_name = \"mcp.internal\"\n",
            toml_path(&pki.ca())
        );
        let cfg =
            load_str(&text, "t.toml", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (&cfg.apis[0].upstream, &cfg.apis[1].upstream);
        assert_eq!((a.port, a.host_header.as_str()), (1, "127.0.0.1:1"));
        let (ta, tb) = (
            a.tls.as_ref().unwrap_or_else(|| panic!("no TLS for /a")),
            b.tls.as_ref().unwrap_or_else(|| panic!("no TLS for /b")),
        );
        assert_eq!(format!("{:?}", tb.server_name), "DnsName(\"mcp.internal\")");
        assert_ne!(ta.id, tb.id);
        assert_ne!(a.pool_key(), b.pool_key());
        let plain =
            load_str(API, "t.toml", &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.apis[0].upstream.pool_key().tls, 0);
        assert_eq!(plain.gateway.default_base_url(), "http://127.0.0.1:8080");
    }
}
