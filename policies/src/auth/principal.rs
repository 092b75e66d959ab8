//! Who a request acts for, as the ACL's CEL `auth` variable sees it: subject, client id, scopes
//! and every claim. Built once per validated credential and shared (behind `Rc`) by cache hits.

use smallvec::SmallVec;

/// Which kind of plan admitted the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    Keyless,
    ApiKey,
    Jwt,
    OAuth2,
    /// A verified TLS client certificate (mTLS).
    ClientCert,
}

impl PlanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::Keyless => "keyless",
            PlanKind::ApiKey => "api_key",
            PlanKind::Jwt => "jwt",
            PlanKind::OAuth2 => "oauth2",
            PlanKind::ClientCert => "client_cert",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `sub` (or the API key's configured subject); `None` for keyless requests.
    pub subject: Option<Box<str>>,
    /// `client_id`, else `azp`.
    pub client_id: Option<Box<str>>,
    /// Union of the space-separated `scope` string and the `scp` array (or string).
    pub scopes: SmallVec<[Box<str>; 4]>,
    /// Every claim, as received (an object; `{}` for keyless and API keys).
    pub claims: serde_json::Value,
    /// `exp` when known: cached results never outlive it.
    pub expires_at: Option<u64>,
    /// Filled in by the plan that admitted the request.
    pub plan: PlanKind,
}

impl Principal {
    pub fn anonymous() -> Self {
        Principal {
            subject: None,
            client_id: None,
            scopes: SmallVec::new(),
            claims: serde_json::Value::Object(serde_json::Map::new()),
            expires_at: None,
            plan: PlanKind::Keyless,
        }
    }

    pub(crate) fn from_claims(claims: serde_json::Value, expires_at: Option<u64>) -> Self {
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_str())
                .map(Box::<str>::from)
        };
        let subject = text("sub");
        let client_id = text("client_id").or_else(|| text("azp"));
        let mut scopes: SmallVec<[Box<str>; 4]> = SmallVec::new();
        let mut add = |scope: &str| {
            if !scope.is_empty() && !scopes.iter().any(|s| &**s == scope) {
                scopes.push(scope.into());
            }
        };
        if let Some(scope) = claims.get("scope").and_then(|v| v.as_str()) {
            scope.split(' ').for_each(&mut add);
        }
        match claims.get("scp") {
            Some(serde_json::Value::Array(values)) => {
                values.iter().filter_map(|v| v.as_str()).for_each(&mut add)
            }
            Some(serde_json::Value::String(scp)) => scp.split(' ').for_each(&mut add),
            _ => {}
        }
        Principal {
            subject,
            client_id,
            scopes,
            claims,
            expires_at,
            plan: PlanKind::Jwt,
        }
    }

    /// The holder of a verified client certificate: its identity (URI, DNS or e-mail SAN, else
    /// the common name, else the subject) as the subject, the certificate's facts as claims.
    pub fn from_client_cert(cert: &crate::tls::ClientCertificate) -> Self {
        Principal {
            subject: Some(cert.identity().into()),
            client_id: None,
            scopes: SmallVec::new(),
            claims: cert.to_json(),
            expires_at: u64::try_from(cert.not_after).ok(),
            plan: PlanKind::ClientCert,
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }

    /// The value bound to the ACL's CEL `auth` variable:
    /// `{"subject", "client_id", "scopes", "claims", "plan"}` (absent values are `null`).
    pub fn to_cel_value(&self) -> serde_json::Value {
        serde_json::json!({
            "subject": self.subject.as_deref(),
            "client_id": self.client_id.as_deref(),
            "scopes": self.scopes.iter().map(|s| &**s).collect::<Vec<&str>>(),
            "claims": self.claims,
            "plan": self.plan.as_str(),
        })
    }
}
