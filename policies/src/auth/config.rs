//! Auth configuration: the serde "user" structs an API's `[api.auth]` table deserialises into
//! (TOML-friendly, unknown fields refused), and their validation into the immutable runtime
//! [`ApiAuth`]. Every error names the offending field (`plans[1].keys[0].pem`). Files (key files,
//! secrets) are read through a [`FileSource`] the engine provides, so this stays free of I/O.

use serde::Deserialize;

use super::apikey::{self, ApiKeyEntry, ApiKeyPlan, DEFAULT_API_KEY_HEADER};
use super::cache::DEFAULT_CAPACITY;
use super::jwks::{KeySet, DEFAULT_MIN_REFETCH_INTERVAL_SECS};
use super::jwt::{JwtRules, DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_BYTES};
use super::keys::{Algorithm, AlgorithmSet, VerifyingKey};
use super::metadata::PublicUrl;
use super::plan::{ApiAuth, IntrospectionClient, JwtPlan, OAuth2Plan, Plan, TokenValidation};

/// Default lifetime of a cached positive introspection answer (never beyond the token's `exp`).
pub const DEFAULT_INTROSPECTION_CACHE_SECS: u64 = 60;
/// Default maximum age of a JWKS before the next request refreshes it.
pub const DEFAULT_JWKS_MAX_AGE_SECS: u64 = 3600;
/// Default lifetime of a cached negative introspection answer.
pub const DEFAULT_INTROSPECTION_NEGATIVE_CACHE_SECS: u64 = 10;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfigUser {
    /// The API's public URL (its RFC 8707 resource identifier: what `aud` must hold). The
    /// engine may supply it from the gateway/API configuration instead.
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    pub plans: Vec<PlanUser>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum PlanUser {
    #[serde(rename = "keyless")]
    Keyless(KeylessUser),
    #[serde(rename = "api_key")]
    ApiKey(ApiKeyUser),
    #[serde(rename = "jwt")]
    Jwt(JwtUser),
    #[serde(rename = "oauth2")]
    OAuth2(OAuth2User),
    /// Admits a request whose TLS connection carried a client certificate the listener verified
    /// (`[gateway.tls] client_ca`); the subject is the certificate's identity.
    #[serde(rename = "client_cert")]
    ClientCert(ClientCertUser),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeylessUser {}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertUser {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyUser {
    /// Header carrying the key; default `X-API-Key`.
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub keys: Vec<ApiKeyUserEntry>,
    /// One key per line, optionally `subject key`.
    #[serde(default)]
    pub keys_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ApiKeyUserEntry {
    Key(String),
    WithSubject { key: String, subject: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKeyUser {
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub pem: Option<String>,
    #[serde(default)]
    pub pem_file: Option<String>,
    /// A JWK object (a TOML inline table or a JSON-ish table).
    #[serde(default)]
    pub jwk: Option<serde_json::Value>,
    /// A JWKS document on disk.
    #[serde(default)]
    pub jwks_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtUser {
    #[serde(default)]
    pub keys: Vec<StaticKeyUser>,
    /// HMAC secret (≥ 32 bytes, used as UTF-8 bytes). Enables HS* and nothing else does.
    #[serde(default)]
    pub hmac_secret: Option<String>,
    #[serde(default)]
    pub hmac_secret_file: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values; default: the API's public URL. `[]` turns the check off (static
    /// JWT plans only, for tokens minted without an audience).
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Default: every algorithm the configured keys can verify.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    #[serde(default)]
    pub leeway_seconds: Option<u64>,
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    #[serde(default)]
    pub cache_capacity: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ValidationUser {
    Jwt,
    Introspection,
    Auto,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2User {
    /// The authorization server's issuer identifier.
    pub issuer: String,
    /// Advertised in the PRM; default `[issuer]`.
    #[serde(default)]
    pub authorization_servers: Option<Vec<String>>,
    /// Default: discovered from the AS metadata.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Default `jwt`, or `auto` when client credentials for introspection are configured.
    #[serde(default)]
    pub validation: Option<ValidationUser>,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<String>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Advertised in the PRM; default: `required_scopes`.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// Default: the API's public URL (and nothing else: RFC 8707).
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Default: every asymmetric algorithm.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub leeway_seconds: Option<u64>,
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    #[serde(default)]
    pub jwks_refetch_interval_seconds: Option<u64>,
    /// Default 3600: the JWKS is refreshed at least this often.
    #[serde(default)]
    pub jwks_max_age_seconds: Option<u64>,
    #[serde(default)]
    pub introspection_cache_seconds: Option<u64>,
    #[serde(default)]
    pub cache_capacity: Option<usize>,
}

/// Reads the files a configuration names. The engine implements it over the filesystem
/// (relative to the config file); tests over a map.
pub trait FileSource {
    fn read_to_string(&self, path: &str) -> Result<String, String>;
}

/// A source with no files: every `*_file` setting fails with a clear error.
pub struct NoFiles;

impl FileSource for NoFiles {
    fn read_to_string(&self, path: &str) -> Result<String, String> {
        Err(format!("file {path:?}: no file access here"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AuthConfigError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl ToString) -> AuthConfigError {
    AuthConfigError {
        field: field.into(),
        message: message.to_string(),
    }
}

/// The context a validation needs from outside the auth table.
pub struct CompileContext<'a> {
    /// The API's public URL when the engine knows it from elsewhere; `public_url` in the table
    /// takes precedence.
    pub public_url: Option<&'a str>,
    pub files: &'a dyn FileSource,
}

impl AuthConfigUser {
    /// Validates and converts into the runtime form.
    pub fn compile(&self, ctx: &CompileContext<'_>) -> Result<ApiAuth, AuthConfigError> {
        if self.plans.is_empty() {
            return Err(err(
                "plans",
                "at least one plan is required (use `type = \"keyless\"` for none)",
            ));
        }
        let public_url = self.public_url.as_deref().or(ctx.public_url);
        let resource = public_url
            .map(|url| PublicUrl::parse(url).map_err(|e| err("public_url", e)))
            .transpose()?;
        let mut plans = Vec::with_capacity(self.plans.len());
        for (i, plan) in self.plans.iter().enumerate() {
            let at = |field: &str| {
                format!(
                    "plans[{i}]{}{field}",
                    if field.is_empty() { "" } else { "." }
                )
            };
            let needs_resource = || {
                resource
                    .as_ref()
                    .map(PublicUrl::as_resource)
                    .ok_or_else(|| {
                        err(
                            at("type"),
                            "token plans need the API's `public_url` (the audience)",
                        )
                    })
            };
            plans.push(match plan {
                PlanUser::Keyless(_) => Plan::Keyless,
                PlanUser::ClientCert(_) => Plan::ClientCert,
                PlanUser::ApiKey(user) => Plan::ApiKey(compile_api_key(user, ctx.files, &at)?),
                PlanUser::Jwt(user) => {
                    let audience = match &user.audiences {
                        Some(list) => list.clone(),
                        None => vec![needs_resource()?],
                    };
                    Plan::Jwt(compile_jwt(user, audience, ctx.files, &at)?)
                }
                PlanUser::OAuth2(user) => {
                    Plan::OAuth2(compile_oauth2(user, needs_resource()?, ctx.files, &at)?)
                }
            });
        }
        let prm = resource
            .as_ref()
            .and_then(|r| ApiAuth::build_prm(r, &plans, self.resource_name.clone()));
        Ok(ApiAuth {
            plans,
            resource,
            prm,
        })
    }
}

fn compile_api_key(
    user: &ApiKeyUser,
    files: &dyn FileSource,
    at: &dyn Fn(&str) -> String,
) -> Result<ApiKeyPlan, AuthConfigError> {
    let mut entries: Vec<ApiKeyEntry> = user
        .keys
        .iter()
        .enumerate()
        .map(|(n, entry)| match entry {
            ApiKeyUserEntry::Key(key) => ApiKeyEntry {
                key: key.clone(),
                subject: format!("api-key-{}", n + 1),
            },
            ApiKeyUserEntry::WithSubject { key, subject } => ApiKeyEntry {
                key: key.clone(),
                subject: subject.clone(),
            },
        })
        .collect();
    let inline = entries.len();
    if let Some(path) = &user.keys_file {
        let text = files
            .read_to_string(path)
            .map_err(|e| err(at("keys_file"), e))?;
        entries.extend(apikey::parse_keys_file(&text));
    }
    let header = user.header.as_deref().unwrap_or(DEFAULT_API_KEY_HEADER);
    ApiKeyPlan::new(header, &entries).map_err(|e| {
        let field = match &e {
            apikey::ApiKeyError::TooShort(i)
            | apikey::ApiKeyError::TooLong(i)
            | apikey::ApiKeyError::Duplicate(i)
                if *i < inline =>
            {
                at(&format!("keys[{i}]"))
            }
            apikey::ApiKeyError::TooShort(_)
            | apikey::ApiKeyError::TooLong(_)
            | apikey::ApiKeyError::Duplicate(_) => at("keys_file"),
            apikey::ApiKeyError::HeaderName(_) => at("header"),
            apikey::ApiKeyError::Empty | apikey::ApiKeyError::Random => at("keys"),
        };
        err(field, e)
    })
}

fn parse_algorithms(
    names: &Option<Vec<String>>,
    default: AlgorithmSet,
    at: &dyn Fn(&str) -> String,
) -> Result<AlgorithmSet, AuthConfigError> {
    let Some(names) = names else {
        return Ok(default);
    };
    let mut set = AlgorithmSet::empty();
    for (i, name) in names.iter().enumerate() {
        let alg = Algorithm::from_name(name).ok_or_else(|| {
            err(
                at(&format!("algorithms[{i}]")),
                format!("unsupported algorithm {name:?} (`none` is never accepted)"),
            )
        })?;
        set.insert(alg);
    }
    if set.is_empty() {
        return Err(err(at("algorithms"), "empty"));
    }
    Ok(set)
}

fn rules(
    algorithms: AlgorithmSet,
    audiences: Vec<String>,
    issuer: Option<&str>,
    required_scopes: &[String],
    leeway: Option<u64>,
    max_token_bytes: Option<usize>,
    at: &dyn Fn(&str) -> String,
) -> Result<JwtRules, AuthConfigError> {
    for (i, scope) in required_scopes.iter().enumerate() {
        // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
        if scope.is_empty()
            || !scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            return Err(err(
                at(&format!("required_scopes[{i}]")),
                "not a valid scope token",
            ));
        }
    }
    let max_token_bytes = max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    if !(64..=1 << 20).contains(&max_token_bytes) {
        return Err(err(at("max_token_bytes"), "must be between 64 and 1048576"));
    }
    let leeway_secs = leeway.unwrap_or(DEFAULT_LEEWAY_SECS);
    if leeway_secs > 600 {
        return Err(err(
            at("leeway_seconds"),
            "more than 600 s of leeway defeats expiry",
        ));
    }
    Ok(JwtRules {
        algorithms,
        issuer: issuer.map(Into::into),
        audiences: audiences.into_iter().map(Into::into).collect(),
        leeway_secs,
        max_token_bytes,
        required_scopes: required_scopes.iter().map(|s| s.as_str().into()).collect(),
    })
}

fn compile_jwt(
    user: &JwtUser,
    audiences: Vec<String>,
    files: &dyn FileSource,
    at: &dyn Fn(&str) -> String,
) -> Result<JwtPlan, AuthConfigError> {
    let mut keys = Vec::new();
    for (i, key_user) in user.keys.iter().enumerate() {
        let field = |name: &str| at(&format!("keys[{i}].{name}"));
        let sources = [
            key_user.pem.is_some(),
            key_user.pem_file.is_some(),
            key_user.jwk.is_some(),
            key_user.jwks_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(err(
                at(&format!("keys[{i}]")),
                "exactly one of pem, pem_file, jwk, jwks_file",
            ));
        }
        let mut loaded = if let Some(pem) = &key_user.pem {
            vec![VerifyingKey::from_pem(pem).map_err(|e| err(field("pem"), e))?]
        } else if let Some(path) = &key_user.pem_file {
            let pem = files
                .read_to_string(path)
                .map_err(|e| err(field("pem_file"), e))?;
            vec![VerifyingKey::from_pem(&pem).map_err(|e| err(field("pem_file"), e))?]
        } else if let Some(jwk) = &key_user.jwk {
            vec![VerifyingKey::from_jwk(jwk, true).map_err(|e| err(field("jwk"), e))?]
        } else if let Some(path) = &key_user.jwks_file {
            let text = files
                .read_to_string(path)
                .map_err(|e| err(field("jwks_file"), e))?;
            let (set, _skipped) = KeySet::from_jwks_json_with(text.as_bytes(), true)
                .map_err(|e| err(field("jwks_file"), e))?;
            set.iter().cloned().collect()
        } else {
            Vec::new()
        };
        if let Some(kid) = &key_user.kid {
            if loaded.len() != 1 {
                return Err(err(field("kid"), "a kid names a single key"));
            }
            loaded = loaded
                .into_iter()
                .map(|k| k.with_kid(kid.as_str()))
                .collect();
        }
        keys.extend(loaded);
    }
    let secret = match (&user.hmac_secret, &user.hmac_secret_file) {
        (Some(_), Some(_)) => {
            return Err(err(
                at("hmac_secret"),
                "set hmac_secret or hmac_secret_file, not both",
            ))
        }
        (Some(secret), None) => Some((secret.clone(), "hmac_secret")),
        (None, Some(path)) => {
            let text = files
                .read_to_string(path)
                .map_err(|e| err(at("hmac_secret_file"), e))?;
            Some((
                text.trim_end_matches(['\r', '\n']).to_owned(),
                "hmac_secret_file",
            ))
        }
        (None, None) => None,
    };
    if let Some((secret, name)) = secret {
        keys.push(VerifyingKey::hmac(secret.as_bytes()).map_err(|e| err(at(name), e))?);
    }
    if keys.is_empty() {
        return Err(err(
            at("keys"),
            "a JWT plan needs at least one key or an hmac_secret",
        ));
    }
    let usable: AlgorithmSet = keys.iter().flat_map(|k| k.algorithms().iter()).collect();
    let algorithms = parse_algorithms(&user.algorithms, usable, at)?;
    if let Some(alg) = algorithms.iter().find(|alg| !usable.contains(*alg)) {
        return Err(err(
            at("algorithms"),
            format!("no configured key can verify {}", alg.name()),
        ));
    }
    let keys = KeySet::new(keys).map_err(|e| err(at("keys"), e))?;
    let rules = rules(
        algorithms,
        audiences,
        user.issuer.as_deref(),
        &user.required_scopes,
        user.leeway_seconds,
        user.max_token_bytes,
        at,
    )?;
    Ok(JwtPlan {
        rules,
        keys,
        cache_capacity: cache_capacity(user.cache_capacity, at)?,
    })
}

fn cache_capacity(
    value: Option<usize>,
    at: &dyn Fn(&str) -> String,
) -> Result<usize, AuthConfigError> {
    let capacity = value.unwrap_or(DEFAULT_CAPACITY);
    if !(1..=1 << 20).contains(&capacity) {
        return Err(err(at("cache_capacity"), "must be between 1 and 1048576"));
    }
    Ok(capacity)
}

fn compile_oauth2(
    user: &OAuth2User,
    resource: String,
    files: &dyn FileSource,
    at: &dyn Fn(&str) -> String,
) -> Result<OAuth2Plan, AuthConfigError> {
    PublicUrl::parse(&user.issuer).map_err(|e| err(at("issuer"), e))?;
    let audiences = match &user.audiences {
        Some(list) if list.is_empty() => {
            return Err(err(
                at("audiences"),
                "an OAuth2 plan always checks the audience",
            ))
        }
        Some(list) => list.clone(),
        None => vec![resource],
    };
    let asymmetric: AlgorithmSet = Algorithm::ALL
        .into_iter()
        .filter(|alg| alg.family() != super::keys::KeyFamily::Hmac)
        .collect();
    let algorithms = parse_algorithms(&user.algorithms, asymmetric, at)?;
    if algorithms.iter().any(|alg| !asymmetric.contains(alg)) {
        return Err(err(
            at("algorithms"),
            "HS* needs a shared secret: use a `jwt` plan",
        ));
    }
    let client_secret = match (&user.client_secret, &user.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(err(
                at("client_secret"),
                "set client_secret or client_secret_file, not both",
            ))
        }
        (Some(secret), None) => Some(secret.clone()),
        (None, Some(path)) => Some(
            files
                .read_to_string(path)
                .map_err(|e| err(at("client_secret_file"), e))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    let introspection = match (&user.client_id, client_secret) {
        (Some(client_id), Some(client_secret)) => Some(IntrospectionClient {
            endpoint: user.introspection_endpoint.clone(),
            client_id: client_id.clone(),
            client_secret,
        }),
        (None, None) if user.introspection_endpoint.is_none() => None,
        _ => {
            return Err(err(
                at("client_id"),
                "introspection needs client_id and client_secret",
            ))
        }
    };
    let validation = match user.validation {
        Some(ValidationUser::Jwt) => TokenValidation::Jwt,
        Some(ValidationUser::Introspection) => TokenValidation::Introspection,
        Some(ValidationUser::Auto) => TokenValidation::Auto,
        None if introspection.is_some() => TokenValidation::Auto,
        None => TokenValidation::Jwt,
    };
    if validation != TokenValidation::Jwt && introspection.is_none() {
        return Err(err(
            at("validation"),
            "introspection needs client_id and client_secret",
        ));
    }
    for (name, url) in [
        ("jwks_uri", &user.jwks_uri),
        ("introspection_endpoint", &user.introspection_endpoint),
    ] {
        if let Some(url) = url {
            PublicUrl::parse(url).map_err(|e| err(at(name), e))?;
        }
    }
    let rules = rules(
        algorithms,
        audiences,
        Some(&user.issuer),
        &user.required_scopes,
        user.leeway_seconds,
        user.max_token_bytes,
        at,
    )?;
    let refetch = user
        .jwks_refetch_interval_seconds
        .unwrap_or(DEFAULT_MIN_REFETCH_INTERVAL_SECS);
    if refetch == 0 {
        return Err(err(
            at("jwks_refetch_interval_seconds"),
            "must be at least 1",
        ));
    }
    Ok(OAuth2Plan {
        authorization_servers: user
            .authorization_servers
            .clone()
            .unwrap_or_else(|| vec![user.issuer.clone()]),
        scopes_supported: user
            .scopes_supported
            .clone()
            .unwrap_or_else(|| user.required_scopes.clone()),
        issuer: user.issuer.clone(),
        jwks_uri: user.jwks_uri.clone(),
        validation,
        introspection,
        jwks_refetch_interval_secs: refetch,
        jwks_max_age_secs: user
            .jwks_max_age_seconds
            .unwrap_or(DEFAULT_JWKS_MAX_AGE_SECS)
            .max(refetch),
        introspection_cache_secs: user
            .introspection_cache_seconds
            .unwrap_or(DEFAULT_INTROSPECTION_CACHE_SECS),
        introspection_negative_cache_secs: DEFAULT_INTROSPECTION_NEGATIVE_CACHE_SECS,
        cache_capacity: cache_capacity(user.cache_capacity, at)?,
        rules,
    })
}
