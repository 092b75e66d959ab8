//! TLS at both edges (rustls with the ring provider): what the configuration loader builds and the
//! engine uses, free of any runtime.
//!
//! - [`server`]: a client listener's `rustls::ServerConfig` (certificates chosen by SNI, TLS 1.2
//!   and 1.3 or 1.3 only, ALPN `http/1.1`, optional client certificates against a CA bundle) and
//!   the [`server::TlsAcceptor`] handle that swaps it on reload without touching open connections.
//! - [`client`]: an upstream's `rustls::ClientConfig` (webpki roots, the system store or a CA
//!   bundle; a development-only switch that skips verification; a client certificate), and the
//!   plain words for a failed upstream handshake.
//! - [`identity`]: what a TLS connection tells the request path (version, SNI, the verified client
//!   certificate's subject and names), for plans, ACL conditions and the exchange log.
//! - [`watch`]: the thread that reloads a listener's certificate when its files change on disk.
//!
//! The I/O adapter (rustls over monoio's owned-buffer sockets) is `crate::engine::tls_io`.

pub mod client;
pub mod identity;
pub mod server;
#[cfg(test)]
pub mod test_certs;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// The one crypto provider of the gateway (ring, like the policies' JWT checks).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The lowest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl MinVersion {
    pub fn parse(s: &str) -> Option<MinVersion> {
        match s {
            "1.2" => Some(MinVersion::Tls12),
            "1.3" => Some(MinVersion::Tls13),
            _ => None,
        }
    }

    pub(crate) fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => rustls::ALL_VERSIONS,
            MinVersion::Tls13 => &TLS13_ONLY,
        }
    }
}

/// A certificate chain file and its private key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKeyPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a PEM file could not be used; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no PEM certificate in the file", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: not a PEM file: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: unusable private key: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("{}: the private key does not match the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("{}: {message}", path.display())]
    Certificate { path: PathBuf, message: String },
    /// rustls refused the combination of settings.
    #[error("{0}")]
    Setup(String),
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM file, in order (a chain: leaf first; or a CA bundle).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = read(path)?;
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        certs.push(cert.map_err(|e| PemError::Pem {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?);
    }
    if certs.is_empty() {
        return Err(PemError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::NoKey {
            path: path.to_path_buf(),
        },
        other => PemError::Pem {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })
}

/// A chain and its key, checked to belong together (a rotated certificate written before its key
/// is refused here, not at the first handshake).
pub fn load_certified_key(paths: &CertKeyPaths) -> Result<CertifiedKey, PemError> {
    let chain = load_certs(&paths.cert)?;
    let key = load_key(&paths.key)?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| PemError::Key {
            path: paths.key.clone(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(PemError::Mismatch {
                cert: paths.cert.clone(),
                key: paths.key.clone(),
            })
        }
        Err(e) => Err(PemError::Certificate {
            path: paths.cert.clone(),
            message: e.to_string(),
        }),
    }
}

/// A root store from a PEM bundle: every certificate must be usable as a trust anchor.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, PemError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| PemError::Certificate {
            path: path.to_path_buf(),
            message: format!("not usable as a trust anchor: {e}"),
        })?;
    }
    Ok(roots)
}

/// Lower-case hex of `bytes` (fingerprints, serial numbers).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
