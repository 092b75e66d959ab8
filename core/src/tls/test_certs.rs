//! Certificates made at test time (rcgen) for the TLS unit tests: a CA, servers, clients, written
//! as PEM files in a scratch directory removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::CertKeyPaths;

pub struct TestPki {
    pub dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

fn must<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

impl TestPki {
    pub fn new(name: &str) -> TestPki {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mcpgate-unit-tls-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        must("scratch dir", std::fs::create_dir_all(&dir));
        let ca_key = must("CA key", KeyPair::generate());
        let mut params = must("CA params", CertificateParams::new(Vec::<String>::new()));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = must("CA", params.self_signed(&ca_key));
        must("CA file", std::fs::write(dir.join("ca.pem"), ca.pem()));
        TestPki { dir, ca, ca_key }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn issue(&self, stem: &str, params: CertificateParams) -> CertKeyPaths {
        let key = must("key", KeyPair::generate());
        let cert = must("cert", params.signed_by(&key, &self.ca, &self.ca_key));
        let paths = CertKeyPaths {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        };
        must("cert file", std::fs::write(&paths.cert, cert.pem()));
        must("key file", std::fs::write(&paths.key, key.serialize_pem()));
        paths
    }

    pub fn server(&self, stem: &str, names: &[&str]) -> CertKeyPaths {
        let mut params = must("params", CertificateParams::new(Vec::<String>::new()));
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        for name in names {
            params.subject_alt_names.push(match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(must("name", (*name).try_into())),
            });
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(stem, params)
    }

    pub fn client(&self, stem: &str, cn: &str, uri: &str) -> CertKeyPaths {
        let mut params = must("params", CertificateParams::new(Vec::<String>::new()));
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .subject_alt_names
            .push(SanType::URI(must("uri", uri.try_into())));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(stem, params)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path as TOML string content.
pub fn toml_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}
