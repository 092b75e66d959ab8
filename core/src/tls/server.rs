//! A client listener's TLS: its settings ([`ServerTlsSettings`], from `[gateway.tls]`), the
//! `rustls::ServerConfig` built from them, and the [`TlsAcceptor`] every worker takes it from.
//!
//! - Certificates are chosen by SNI among the listener's certificates, by the DNS names each one
//!   covers (its subjectAltName, wildcards one label deep); a client sending no SNI, or a name no
//!   certificate covers, gets the first (default) one.
//! - TLS 1.2 and 1.3, or 1.3 only. ALPN offers `http/1.1` only: a client that offers ALPN without
//!   it (an `h2`-only client) gets a `no_application_protocol` alert, not a connection it cannot
//!   use; a client that offers no ALPN at all is served.
//! - Client certificates (mTLS): verified against a CA bundle, required or optional.
//! - Reload: [`TlsAcceptor::install`] swaps the configuration whole; handshakes in progress and
//!   established connections keep the one they started with. The session cache and ticketer
//!   carry over, so clients resume across a certificate rotation.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::identity::{name_matches, served_names};
use super::watch::FileStamps;
use super::{load_certified_key, load_roots, CertKeyPaths, MinVersion, PemError};

/// `[gateway.tls] handshake_timeout` when not given.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `[gateway.tls] watch` when not given: how often the files are checked for changes.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// Whether a listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client must present a certificate that chains to the CA bundle.
    Required,
    /// A certificate is verified if presented; clients without one are served too (an API's
    /// `client_cert` plan or an ACL condition on `connection.mtls` then decides).
    Optional,
}

/// A listener's TLS settings, as validated from the configuration (paths resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsSettings {
    /// The first is the default certificate; the others are chosen by SNI.
    pub certs: Vec<CertKeyPaths>,
    /// A CA bundle that client certificates must chain to, and whether one is required.
    pub client_ca: Option<(PathBuf, ClientAuth)>,
    pub min_version: MinVersion,
    pub handshake_timeout: Duration,
    /// How often the certificate, key and CA files are checked for changes; `None`: only on
    /// SIGHUP.
    pub watch: Option<Duration>,
}

impl ServerTlsSettings {
    /// Every file the configuration reads, for the watcher.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .certs
            .iter()
            .flat_map(|c| [c.cert.clone(), c.key.clone()])
            .collect();
        if let Some((ca, _)) = &self.client_ca {
            files.push(ca.clone());
        }
        files
    }
}

/// Why a listener's TLS configuration cannot be built; `field` is relative to the listener's TLS
/// table (`cert`, `certificates[1].key`, `client_ca`).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {source}")]
pub struct ServerTlsError {
    pub field: String,
    #[source]
    pub source: PemError,
}

/// A built configuration and what it serves (for the startup log and the watcher).
#[derive(Debug, Clone)]
pub struct LoadedServerTls {
    pub config: Arc<ServerConfig>,
    /// One line per certificate: its subject, names and expiry.
    pub summary: Vec<String>,
    /// The files' stamps when they were read: the watcher reloads when they change.
    pub stamps: FileStamps,
}

/// Reads every file and builds the configuration. Certificates already expired load (the
/// operator may be mid-rotation) but are reported in the summary.
pub fn build(settings: &ServerTlsSettings) -> Result<LoadedServerTls, ServerTlsError> {
    // Stamps first: a file replaced while we read it is then seen as changed by the watcher.
    let stamps = FileStamps::take(&settings.files());
    let mut resolver = SniResolver { certs: Vec::new() };
    let mut summary = Vec::new();
    for (i, paths) in settings.certs.iter().enumerate() {
        let (cert_field, key_field) = if i == 0 {
            ("cert".to_string(), "key".to_string())
        } else {
            (
                format!("certificates[{}].cert", i - 1),
                format!("certificates[{}].key", i - 1),
            )
        };
        let key = load_certified_key(paths).map_err(|source| ServerTlsError {
            field: match source {
                PemError::NoKey { .. } | PemError::Key { .. } | PemError::Mismatch { .. } => {
                    key_field.clone()
                }
                PemError::Read { ref path, .. } | PemError::Pem { ref path, .. }
                    if *path == paths.key =>
                {
                    key_field.clone()
                }
                _ => cert_field.clone(),
            },
            source,
        })?;
        let leaf = key.end_entity_cert().map_err(|e| ServerTlsError {
            field: cert_field.clone(),
            source: PemError::Certificate {
                path: paths.cert.clone(),
                message: e.to_string(),
            },
        })?;
        let names = served_names(leaf).map_err(|message| ServerTlsError {
            field: cert_field.clone(),
            source: PemError::Certificate {
                path: paths.cert.clone(),
                message,
            },
        })?;
        let now = crate::observe::now_unix_ms() / 1000;
        let expired = i64::try_from(now).is_ok_and(|now| names.not_after < now);
        summary.push(format!(
            "{}: {} [{}]{}",
            paths.cert.display(),
            names.subject,
            names.dns.join(", "),
            if expired { " (EXPIRED)" } else { "" }
        ));
        resolver.certs.push((names.dns, Arc::new(key)));
    }
    let provider = super::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(settings.min_version.versions())
        .map_err(|e| ServerTlsError {
            field: "min_version".into(),
            source: PemError::Setup(e.to_string()),
        })?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some((ca, mode)) => {
            let roots = load_roots(ca).map_err(|source| ServerTlsError {
                field: "client_ca".into(),
                source,
            })?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = match mode {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier.build().map_err(|e| ServerTlsError {
                field: "client_ca".into(),
                source: PemError::Setup(format!("{}: {e}", ca.display())),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(LoadedServerTls {
        config: Arc::new(config),
        summary,
        stamps,
    })
}

/// Picks the certificate for a ClientHello's SNI.
#[derive(Debug)]
struct SniResolver {
    /// (DNS names covered, key), in configuration order; the first is the default.
    certs: Vec<(Vec<String>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|sni| {
            // rustls lower-cases nothing; names compare case-insensitively (RFC 4343).
            let sni = sni.to_ascii_lowercase();
            self.certs
                .iter()
                .find(|(names, _)| names.iter().any(|n| n == &sni))
                .or_else(|| {
                    self.certs
                        .iter()
                        .find(|(names, _)| names.iter().any(|n| name_matches(n, &sni)))
                })
        });
        chosen.or(self.certs.first()).map(|(_, key)| key.clone())
    }
}

/// What a worker needs at each accept: the current configuration and the handshake timeout.
#[derive(Debug, Clone)]
pub struct Current {
    pub config: Arc<ServerConfig>,
    pub handshake_timeout: Duration,
}

/// A TLS listener's configuration as the workers see it, swapped whole on reload. One per TLS
/// listener, shared by every worker; read once per accepted connection.
#[derive(Debug)]
pub struct TlsAcceptor {
    /// The listener's address, for log lines.
    pub label: String,
    current: RwLock<Current>,
    /// The settings and the stamps of the files the current configuration was read from.
    source: RwLock<(ServerTlsSettings, FileStamps)>,
}

impl TlsAcceptor {
    pub fn new(label: String, settings: ServerTlsSettings, loaded: &LoadedServerTls) -> Self {
        TlsAcceptor {
            label,
            current: RwLock::new(Current {
                config: loaded.config.clone(),
                handshake_timeout: settings.handshake_timeout,
            }),
            source: RwLock::new((settings, loaded.stamps.clone())),
        }
    }

    pub fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The settings in force (the watcher rebuilds from them).
    pub fn settings(&self) -> (ServerTlsSettings, FileStamps) {
        self.source
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Installs a newly built configuration. Sessions established under the old one can still be
    /// resumed: its session cache and ticketer are carried over.
    pub fn install(&self, settings: ServerTlsSettings, loaded: &LoadedServerTls) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut config = (*loaded.config).clone();
        config.session_storage = current.config.session_storage.clone();
        config.ticketer = current.config.ticketer.clone();
        *current = Current {
            config: Arc::new(config),
            handshake_timeout: settings.handshake_timeout,
        };
        drop(current);
        *self.source.write().unwrap_or_else(PoisonError::into_inner) =
            (settings, loaded.stamps.clone());
    }

    /// Records the stamps of files that failed to load, so the watcher does not retry (and log)
    /// the same bad files on every tick; a further change is tried again.
    pub fn note_failed_stamps(&self, stamps: FileStamps) {
        self.source
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .1 = stamps;
    }
}
