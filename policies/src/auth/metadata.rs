//! Discovery documents: the API's public resource URL and the RFC 9728 well-known URLs built from
//! it, the protected-resource metadata (PRM) the gateway serves (Mode B) or rewrites (Mode A),
//! and the authorization-server metadata (RFC 8414 / OpenID Connect Discovery) the engine fetches
//! from the URLs listed here (mcp-brief §6.3 step 2).

use serde::Serialize;

pub const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
const OAUTH_AS_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
const OPENID_WELL_KNOWN: &str = "/.well-known/openid-configuration";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("URL must be absolute http(s) without userinfo, query or fragment: {0:?}")]
    BadUrl(String),
    #[error("metadata is not a JSON object")]
    NotObject,
    #[error("metadata field `{0}` is missing or not a string")]
    MissingField(&'static str),
    #[error("metadata issuer {found:?} differs from the expected {expected:?} (RFC 8414 §3.3)")]
    IssuerMismatch { expected: String, found: String },
}

/// An absolute http(s) URL split into origin and path, normalised as RFC 8707 / mcp-brief §6.3
/// step 5 want a resource identifier: lowercase scheme and host, no fragment, no query, no
/// userinfo, no trailing slash (except the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `https://host[:port]`
    origin: Box<str>,
    /// `""` for the root, else starts with `/` and does not end with one.
    path: Box<str>,
}

impl PublicUrl {
    pub fn parse(url: &str) -> Result<PublicUrl, MetadataError> {
        let bad = || MetadataError::BadUrl(url.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(bad());
        }
        if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let path = path.trim_end_matches('/');
        Ok(PublicUrl {
            origin: format!("{scheme}://{}", authority.to_ascii_lowercase()).into(),
            path: path.into(),
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `""` for the root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The resource identifier: what `aud` must hold and what the PRM's `resource` says.
    pub fn as_resource(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }

    /// The request path at which the gateway serves this resource's PRM (RFC 9728 §3.1: the
    /// well-known segment goes between the host and the path).
    pub fn prm_path(&self) -> String {
        format!("{PRM_WELL_KNOWN}{}", self.path)
    }

    /// The path-suffixed PRM URL, the one the challenges point to.
    pub fn prm_url(&self) -> String {
        format!("{}{}", self.origin, self.prm_path())
    }

    /// The root PRM URL. Serve a document there only when the gateway fronts a single resource
    /// (its `resource` is then this API's URL, which clients accept only when same-origin).
    pub fn prm_root_url(&self) -> String {
        format!("{}{PRM_WELL_KNOWN}", self.origin)
    }
}

/// The PRM document (RFC 9728 §2) for Mode B. Serialised once at config load.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProtectedResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    pub bearer_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

impl ProtectedResourceMetadata {
    pub fn new(
        resource: &PublicUrl,
        authorization_servers: Vec<String>,
        scopes_supported: Vec<String>,
    ) -> Self {
        ProtectedResourceMetadata {
            resource: resource.as_resource(),
            authorization_servers,
            scopes_supported,
            // Header only: the gateway refuses tokens in the query string and never reads bodies
            // for credentials.
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain strings and vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Mode A: the upstream's PRM with `resource` set to the gateway's public URL (clients check it,
/// and send it back as `resource=` so the token's audience becomes the gateway URL). Every other
/// field is kept.
pub fn rewrite_upstream_prm(document: &[u8], public: &PublicUrl) -> Result<Vec<u8>, MetadataError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(document).map_err(|_| MetadataError::NotObject)?;
    let object = value.as_object_mut().ok_or(MetadataError::NotObject)?;
    object.insert(
        "resource".to_owned(),
        serde_json::Value::String(public.as_resource()),
    );
    serde_json::to_vec(&value).map_err(|_| MetadataError::NotObject)
}

/// Authorization-server metadata: the fields the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub introspection_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
}

impl AuthorizationServerMetadata {
    /// Parses a metadata document and checks that its `issuer` is the one it was discovered
    /// for (RFC 8414 §3.3, OIDC Discovery §4.3), else it is refused (mix-up defence).
    pub fn parse(document: &[u8], expected_issuer: &str) -> Result<Self, MetadataError> {
        let value: serde_json::Value =
            serde_json::from_slice(document).map_err(|_| MetadataError::NotObject)?;
        let object = value.as_object().ok_or(MetadataError::NotObject)?;
        let text = |name: &str| object.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let issuer = text("issuer").ok_or(MetadataError::MissingField("issuer"))?;
        if issuer != expected_issuer {
            return Err(MetadataError::IssuerMismatch {
                expected: expected_issuer.to_owned(),
                found: issuer,
            });
        }
        Ok(AuthorizationServerMetadata {
            issuer,
            jwks_uri: text("jwks_uri"),
            introspection_endpoint: text("introspection_endpoint"),
            token_endpoint: text("token_endpoint"),
        })
    }
}

/// The metadata URLs to try, in order, for an issuer (mcp-brief §6.3 step 2, 2025-11-25):
/// with a path, RFC 8414 path-inserted, OIDC path-inserted, then OIDC path-appended; without a
/// path, RFC 8414 then OIDC at the root.
pub fn as_metadata_urls(issuer: &str) -> Result<Vec<String>, MetadataError> {
    let url = PublicUrl::parse(issuer)?;
    let (origin, path) = (url.origin(), url.path());
    Ok(if path.is_empty() {
        vec![
            format!("{origin}{OAUTH_AS_WELL_KNOWN}"),
            format!("{origin}{OPENID_WELL_KNOWN}"),
        ]
    } else {
        vec![
            format!("{origin}{OAUTH_AS_WELL_KNOWN}{path}"),
            format!("{origin}{OPENID_WELL_KNOWN}{path}"),
            format!("{origin}{path}{OPENID_WELL_KNOWN}"),
        ]
    })
}
