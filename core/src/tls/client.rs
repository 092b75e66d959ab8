//! An upstream's TLS (`https://` upstreams, `[api.tls]`): the trust store (Mozilla's roots from
//! `webpki-roots`, the operating system's store, a CA bundle, or a combination), the name checked
//! and sent as SNI (the URL's host, or `server_name`), an optional client certificate, and the
//! development-only `insecure_skip_verify`.
//!
//! One `rustls::ClientConfig` per API and configuration snapshot, shared by every worker: its
//! in-memory session cache lets each new pooled connection resume the previous session
//! (an abbreviated handshake) instead of paying for a full one.
//!
//! Hostname verification cannot be turned off on its own: the only way around it is
//! `insecure_skip_verify`, which skips every check and says so loudly at each start and reload.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::{load_certs, load_key, load_roots, CertKeyPaths, PemError};

/// Which built-in trust anchors an upstream's certificate may chain to (besides `ca`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// Mozilla's root program, compiled in (`webpki-roots`): the same everywhere.
    Webpki,
    /// The operating system's store (`/etc/ssl/certs` and friends, read at load).
    System,
    /// None: only the configured `ca` bundle.
    None,
}

impl Roots {
    pub fn parse(s: &str) -> Option<Roots> {
        match s {
            "webpki" => Some(Roots::Webpki),
            "system" => Some(Roots::System),
            "none" => Some(Roots::None),
            _ => None,
        }
    }
}

/// `[api.tls]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTlsSettings {
    pub roots: Roots,
    /// A PEM bundle of extra trust anchors.
    pub ca: Option<PathBuf>,
    /// The name to verify the certificate against and send as SNI, instead of the URL's host.
    pub server_name: Option<String>,
    pub client_cert: Option<CertKeyPaths>,
    /// Development only: accept any certificate for any name.
    pub insecure_skip_verify: bool,
}

impl Default for UpstreamTlsSettings {
    fn default() -> Self {
        UpstreamTlsSettings {
            roots: Roots::Webpki,
            ca: None,
            server_name: None,
            client_cert: None,
            insecure_skip_verify: false,
        }
    }
}

/// Why an upstream's TLS configuration cannot be built; `field` is relative to `[api.tls]`.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {source}")]
pub struct UpstreamTlsError {
    pub field: String,
    #[source]
    pub source: PemError,
}

fn setup(field: &str, message: impl Into<String>) -> UpstreamTlsError {
    UpstreamTlsError {
        field: field.to_string(),
        source: PemError::Setup(message.into()),
    }
}

/// An upstream's built TLS client: what connecting needs.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Unique per build: pooled connections are reused only under the configuration (trust
    /// store, client certificate, name) they were verified with.
    pub id: u64,
    pub config: Arc<ClientConfig>,
    /// Verified against the certificate and sent as SNI (not sent for an IP address).
    pub server_name: ServerName<'static>,
    pub insecure_skip_verify: bool,
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for UpstreamTls {}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("id", &self.id)
            .field("server_name", &self.server_name)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

/// Builds the client for an upstream whose URL host is `host` (a name, or an IP literal).
pub fn build(settings: &UpstreamTlsSettings, host: &str) -> Result<UpstreamTls, UpstreamTlsError> {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let name = settings.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| {
        setup(
            "server_name",
            format!("`{name}` is not a DNS name or IP address: {e}"),
        )
    })?;
    let provider = super::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup("roots", e.to_string()))?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        builder.with_root_certificates(trust_store(settings)?)
    };
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some(paths) => {
            let chain = load_certs(&paths.cert).map_err(|source| UpstreamTlsError {
                field: "client_cert".into(),
                source,
            })?;
            let key = load_key(&paths.key).map_err(|source| UpstreamTlsError {
                field: "client_key".into(),
                source,
            })?;
            // Checked here like a listener's pair: a mismatch would only show at the upstream.
            super::load_certified_key(paths).map_err(|source| UpstreamTlsError {
                field: "client_key".into(),
                source,
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| setup("client_key", e.to_string()))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(UpstreamTls {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        config: Arc::new(config),
        server_name,
        insecure_skip_verify: settings.insecure_skip_verify,
    })
}

fn trust_store(settings: &UpstreamTlsSettings) -> Result<rustls::RootCertStore, UpstreamTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match settings.roots {
        Roots::Webpki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "no certificates found".to_string(), |e| e.to_string());
                return Err(setup(
                    "roots",
                    format!("the system trust store is empty or unreadable: {why}"),
                ));
            }
        }
        Roots::None => {}
    }
    if let Some(ca) = &settings.ca {
        let bundle = load_roots(ca).map_err(|source| UpstreamTlsError {
            field: "ca".into(),
            source,
        })?;
        roots.roots.extend(bundle.roots);
    }
    if roots.is_empty() {
        return Err(setup(
            "ca",
            "no trust anchors: give a CA bundle (`ca`) with roots = \"none\"",
        ));
    }
    Ok(roots)
}

/// `insecure_skip_verify`: any certificate, any name. The handshake's signatures are still
/// checked (so the peer holds the key of the certificate it sent), which protects nothing
/// against an active attacker: development only.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A failed upstream handshake in the operator's words: what is wrong, then rustls' details.
pub fn describe_handshake_error(e: &rustls::Error) -> String {
    let what = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "certificate not trusted: its issuer is not in the API's trust store"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate not valid for the upstream's host name"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet"
            }
            CertificateError::Revoked => "certificate revoked",
            CertificateError::BadSignature => "certificate signature invalid",
            _ => "certificate refused",
        },
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
            "the upstream requires a client certificate"
        }
        rustls::Error::AlertReceived(_) => "the upstream refused the handshake",
        rustls::Error::NoApplicationProtocol => "the upstream does not speak HTTP/1.1 (ALPN)",
        _ => "handshake failed",
    };
    format!("{what} ({e})")
}
