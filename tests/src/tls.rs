//! TLS for the end-to-end tests: certificates made at test time with rcgen (a CA, servers,
//! clients, an expired certificate, a second CA nobody trusts) written as PEM files, a blocking
//! HTTPS client over rustls that reports what the handshake established, and an `https://`
//! upstream (Node's `https` module in front of an HTTP MCP server: `tests/js/https_upstream.mjs`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use crate::http::{read_response, RawResponse};
use crate::net::{free_port, wait_for_listener, wait_for_ready_line};
use crate::peers::Sdk;
use crate::process::ManagedChild;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate's DER bytes (to compare with what a handshake presented).
    pub der: Vec<u8>,
}

/// A certificate authority and the directory its files go to (removed on drop).
pub struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    ca_pem: PathBuf,
}

fn fail<T>(what: &str, e: impl std::fmt::Display) -> T {
    panic!("{what}: {e}")
}

impl Pki {
    /// A fresh CA named `name` in a scratch directory of its own.
    pub fn new(name: &str) -> Pki {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mcpgate-tls-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&dir.display().to_string(), e));
        let ca_key = KeyPair::generate().unwrap_or_else(|e| fail("CA key", e));
        let mut params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail("CA params", e));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| fail("CA certificate", e));
        let ca_pem = dir.join("ca.pem");
        write(&ca_pem, &ca.pem());
        Pki {
            dir,
            ca,
            ca_key,
            ca_pem,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM): what clients and the gateway trust.
    pub fn ca(&self) -> &Path {
        &self.ca_pem
    }

    fn issue(&self, stem: &str, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap_or_else(|e| fail("key", e));
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .unwrap_or_else(|e| fail("certificate", e));
        let issued = Issued {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
            der: cert.der().to_vec(),
        };
        write(&issued.cert, &cert.pem());
        write(&issued.key, &key.serialize_pem());
        issued
    }

    fn server_params(names: &[&str]) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| fail("server params", e));
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        for name in names {
            let san = match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => {
                    SanType::DnsName((*name).try_into().unwrap_or_else(|e| fail("DNS name", e)))
                }
            };
            params.subject_alt_names.push(san);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params
    }

    /// A server certificate for `names` (DNS names or IP addresses), written as `stem.pem/.key`.
    pub fn server(&self, stem: &str, names: &[&str]) -> Issued {
        self.issue(stem, Self::server_params(names))
    }

    /// Like [`Pki::server`], but valid only in 2020.
    pub fn expired_server(&self, stem: &str, names: &[&str]) -> Issued {
        let mut params = Self::server_params(names);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        self.issue(stem, params)
    }

    /// A client certificate with common name `cn` and, when given, a URI SAN (a SPIFFE ID).
    pub fn client(&self, stem: &str, cn: &str, uri: Option<&str>) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| fail("client params", e));
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "mcpgate tests");
        if let Some(uri) = uri {
            params.subject_alt_names.push(SanType::URI(
                uri.try_into().unwrap_or_else(|e| fail("URI", e)),
            ));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(stem, params)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `text` to `path` atomically (a rename), the way cert-manager and certbot replace files.
pub fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap_or_else(|e| fail(&tmp.display().to_string(), e));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| fail(&path.display().to_string(), e));
}

/// A blocking HTTPS client: one trust store, optionally a client certificate.
#[derive(Clone)]
pub struct HttpsClient {
    config: Arc<rustls::ClientConfig>,
}

impl HttpsClient {
    /// Trusts `ca` only; offers ALPN `http/1.1`.
    pub fn new(ca: &Path, client: Option<&Issued>) -> HttpsClient {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap_or_else(|e| fail("CA file", e)) {
            roots
                .add(cert.unwrap_or_else(|e| fail("CA PEM", e)))
                .unwrap_or_else(|e| fail("CA", e));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| fail("versions", e))
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some(issued) => {
                let chain = CertificateDer::pem_file_iter(&issued.cert)
                    .unwrap_or_else(|e| fail("client cert", e))
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_else(|e| fail("client cert", e));
                let key = PrivateKeyDer::from_pem_file(&issued.key)
                    .unwrap_or_else(|e| fail("client key", e));
                builder
                    .with_client_auth_cert(chain, key)
                    .unwrap_or_else(|e| fail("client auth", e))
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        HttpsClient {
            config: Arc::new(config),
        }
    }

    /// Connects and completes the handshake with `server_name` as SNI and verified name.
    pub fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<HttpsConn, String> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
        let mut conn =
            rustls::ClientConnection::new(self.config.clone(), name).map_err(|e| e.to_string())?;
        let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        sock.set_write_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| format!("handshake with {addr}: {e}"))?;
        }
        Ok(HttpsConn {
            stream: rustls::StreamOwned::new(conn, sock),
        })
    }

    /// One request on a fresh connection.
    pub fn request(
        &self,
        addr: SocketAddr,
        server_name: &str,
        request: &[u8],
    ) -> Result<RawResponse, String> {
        self.connect(addr, server_name)?.request(request)
    }
}

/// An established HTTPS connection (keep-alive: several requests in turn).
pub struct HttpsConn {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl HttpsConn {
    pub fn request(&mut self, request: &[u8]) -> Result<RawResponse, String> {
        self.stream
            .write_all(request)
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("write: {e}"))?;
        read_response(&mut self.stream)
    }

    /// Reads to the end of the connection: `Ok(bytes read)` when the server ended it with a TLS
    /// close_notify, `Err` when the TCP connection ended without one (a truncation, to TLS) or
    /// nothing ended within the read timeout.
    pub fn read_to_close_notify(&mut self) -> Result<usize, String> {
        let mut rest = Vec::new();
        match self.stream.read_to_end(&mut rest) {
            Ok(_) => Ok(rest.len()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(format!(
                "the connection ended without close_notify (after {} more bytes)",
                rest.len()
            )),
            Err(e) => Err(format!("reading to the end: {e}")),
        }
    }

    /// The server's leaf certificate (DER).
    pub fn server_cert(&self) -> Option<Vec<u8>> {
        self.stream
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
    }

    pub fn alpn(&self) -> Option<String> {
        self.stream
            .conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }
}

/// An `https://` MCP upstream: Node's `https` server in front of an HTTP one (server-everything,
/// or a canned test upstream), optionally requiring client certificates; it counts connections
/// and resumed sessions (`GET /__tls`).
pub struct HttpsUpstream {
    process: ManagedChild,
    addr: SocketAddr,
}

impl HttpsUpstream {
    /// Serves `cert` in front of `target` (its `http://host:port` origin).
    pub fn start(cert: &Issued, target: SocketAddr, client_ca: Option<&Path>) -> HttpsUpstream {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut node = Sdk::TypeScript.script_command("https_upstream.mjs");
            node.arg(port.to_string())
                .arg(&cert.cert)
                .arg(&cert.key)
                .arg(format!("http://{target}"));
            if let Some(ca) = client_ca {
                node.arg(ca);
            }
            let mut process = ManagedChild::spawn(format!("https upstream :{port}"), node)
                .unwrap_or_else(|e| fail("node https_upstream.mjs", e));
            let ready =
                wait_for_listener(addr, &mut process, Duration::from_secs(30)).and_then(|()| {
                    wait_for_ready_line(
                        &mut process,
                        &format!("https upstream listening on port {port}"),
                        Duration::from_secs(30),
                    )
                });
            match ready {
                Ok(_) => return HttpsUpstream { process, addr },
                Err(e) => last_error = e,
            }
        }
        panic!("the https upstream did not start: {last_error}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `{connections, resumed, clientSubjects}` as the upstream counted them.
    pub fn stats(&self, ca: &Path) -> Value {
        let client = HttpsClient::new(ca, None);
        let request = format!(
            "GET /__tls HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            self.port()
        );
        let response = client
            .request(self.addr, "localhost", request.as_bytes())
            .unwrap_or_else(|e| fail("GET /__tls", e));
        response.json().unwrap_or_else(|e| fail("/__tls", e))
    }

    pub fn output(&self) -> String {
        self.process.output()
    }
}
