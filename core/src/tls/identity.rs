//! What a finished server handshake tells the request path ([`TlsFacts`]): version, SNI, ALPN and
//! the verified client certificate read with `x509-parser` (subject, issuer, SANs, serial,
//! SHA-256 fingerprint). Built once per connection, shared by its requests behind an `Rc`.
//!
//! Also the names a server certificate covers (its DNS SANs), which the SNI resolver matches.

use mcpgate_policies::tls::{ClientCertificate, TlsFacts};
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

/// The facts of an established server-side connection. A client certificate is present only
/// when the listener verified one (rustls refuses the handshake otherwise).
pub fn server_facts(conn: &rustls::ServerConnection) -> TlsFacts {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let client_cert = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| match client_certificate(leaf) {
            Ok(cert) => Some(cert),
            Err(e) => {
                // rustls verified the chain; a certificate x509-parser cannot read is unusual
                // enough to say so, and the request goes on as if none were presented.
                crate::warn!("a verified client certificate could not be read: {e}");
                None
            }
        });
    TlsFacts {
        version,
        sni: conn.server_name().unwrap_or_default().to_ascii_lowercase(),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
        client_cert,
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(format!("not a readable X.509 certificate: {e}")),
    }
}

/// Reads a (verified) client certificate.
pub fn client_certificate(der: &CertificateDer<'_>) -> Result<ClientCertificate, String> {
    let cert = parse(der)?;
    let mut out = ClientCertificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        common_name: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        serial: super::hex(cert.raw_serial()),
        fingerprint_sha256: super::hex(
            ring::digest::digest(&ring::digest::SHA256, der.as_ref()).as_ref(),
        ),
        not_after: cert.validity().not_after.timestamp(),
        ..ClientCertificate::default()
    };
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(n) => out.dns_names.push((*n).to_owned()),
            GeneralName::URI(u) => out.uris.push((*u).to_owned()),
            GeneralName::RFC822Name(e) => out.emails.push((*e).to_owned()),
            GeneralName::IPAddress(bytes) => {
                if let Some(ip) = ip_text(bytes) {
                    out.ips.push(ip);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(std::net::Ipv4Addr::from(v4).to_string());
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| std::net::Ipv6Addr::from(v6).to_string())
}

/// What a server certificate covers, for choosing it by SNI and for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedNames {
    /// DNS SANs, lower-cased (`*.example.com` kept as written: matched one label deep).
    pub dns: Vec<String>,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
    pub subject: String,
}

pub fn served_names(leaf: &CertificateDer<'_>) -> Result<ServedNames, String> {
    let cert = parse(leaf)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?;
    let dns = san
        .iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    Ok(ServedNames {
        dns,
        not_after: cert.validity().not_after.timestamp(),
        subject: cert.subject().to_string(),
    })
}

/// Whether `sni` (lower-cased) is covered by the SAN `pattern`: equal, or `*.rest` matching
/// exactly one label before `rest` (RFC 6125 §6.4.3, the leftmost label only).
pub fn name_matches(pattern: &str, sni: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => sni
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == sni,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("mcp.example", "mcp.example"));
        assert!(!name_matches("mcp.example", "other.example"));
        assert!(name_matches("*.example", "mcp.example"));
        assert!(!name_matches("*.example", "a.mcp.example"));
        assert!(!name_matches("*.example", "example"));
        assert!(!name_matches("*.example", ".example"));
    }

    #[test]
    fn ip_addresses_are_written_as_text() {
        assert_eq!(ip_text(&[127, 0, 0, 1]).as_deref(), Some("127.0.0.1"));
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(ip_text(&v6).as_deref(), Some("::1"));
        assert_eq!(ip_text(&[1, 2, 3]), None);
    }
}
