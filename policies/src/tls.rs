//! What a client's TLS connection tells the policies: the protocol version, the server name it
//! asked for (SNI), the application protocol, and the client certificate the gateway verified
//! against its CA bundle (mTLS). The engine fills these in once per connection; the ACL's CEL
//! `connection` variable and the `client_cert` plan read them. No I/O, no X.509 parsing here.

/// A client certificate that passed the listener's verification (chain to the configured CA
/// bundle, validity period, client-auth usage). Names are as written in the certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject distinguished name, RFC 4514 style (`CN=alice, O=Acme`).
    pub subject: String,
    pub issuer: String,
    /// The subject's first common name, if any.
    pub common_name: Option<String>,
    /// Subject alternative names by kind, in certificate order.
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    pub emails: Vec<String>,
    pub ips: Vec<String>,
    /// Lower-case hex of the serial number's bytes.
    pub serial: String,
    /// Lower-case hex SHA-256 of the certificate's DER bytes.
    pub fingerprint_sha256: String,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
}

impl ClientCertificate {
    /// The one name that identifies the holder, in order of preference: a URI SAN (a SPIFFE ID,
    /// say), a DNS SAN, an e-mail SAN, the common name, the whole subject.
    pub fn identity(&self) -> &str {
        self.uris
            .first()
            .or(self.dns_names.first())
            .or(self.emails.first())
            .or(self.common_name.as_ref())
            .map_or(self.subject.as_str(), String::as_str)
    }

    /// The certificate as JSON (the `client_cert` plan's claims).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "subject": self.subject,
            "issuer": self.issuer,
            "common_name": self.common_name,
            "dns_names": self.dns_names,
            "uris": self.uris,
            "emails": self.emails,
            "ips": self.ips,
            "serial": self.serial,
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_after": self.not_after,
        })
    }
}

/// One TLS connection, as far as the request path is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFacts {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The server name the client sent (SNI), lower-cased; empty when it sent none.
    pub sni: String,
    /// The negotiated application protocol (`http/1.1`), empty when the client offered none.
    pub alpn: String,
    /// The verified client certificate, when the listener asks for one and the client sent it.
    pub client_cert: Option<ClientCertificate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_prefers_uri_then_dns_then_email_then_cn_then_subject() {
        let mut c = ClientCertificate {
            subject: "CN=alice, O=Acme".into(),
            ..ClientCertificate::default()
        };
        assert_eq!(c.identity(), "CN=alice, O=Acme");
        c.common_name = Some("alice".into());
        assert_eq!(c.identity(), "alice");
        c.emails = vec!["alice@acme.example".into()];
        assert_eq!(c.identity(), "alice@acme.example");
        c.dns_names = vec!["alice.acme.example".into()];
        assert_eq!(c.identity(), "alice.acme.example");
        c.uris = vec!["spiffe://acme/alice".into()];
        assert_eq!(c.identity(), "spiffe://acme/alice");
        assert_eq!(c.to_json()["uris"][0], "spiffe://acme/alice");
    }
}
