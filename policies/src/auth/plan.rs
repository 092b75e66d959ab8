//! An API's plans at run time and the per-request decision over them: try each plan in order,
//! admit on the first that accepts, otherwise refuse with the most informative reason. The
//! decision is a pure step function: when it needs I/O (a JWKS, an introspection call) it says
//! so and the engine comes back once it has the answer, which the per-worker state then holds.

use std::rc::Rc;
use std::sync::Arc;

use super::apikey::ApiKeyPlan;
use super::cache::TokenCache;
use super::challenge::BearerChallenge;
use super::error::{AuthError, ChallengeError, TokenProblem};
use super::introspection::{self, IntrospectionOutcome, IntrospectionUnavailable};
use super::jwks::{KeySet, RefetchPolicy};
use super::jwt::{self, JwtRules};
use super::metadata::{ProtectedResourceMetadata, PublicUrl};
use super::principal::{PlanKind, Principal};
use super::request::{self, HeaderLookup, RawAuthorization};

/// A static-key JWT plan.
#[derive(Debug)]
pub struct JwtPlan {
    pub rules: JwtRules,
    pub keys: KeySet,
    pub cache_capacity: usize,
}

/// How an OAuth2 plan validates tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenValidation {
    /// JWT access tokens against the authorization server's JWKS.
    Jwt,
    /// RFC 7662 introspection for every token.
    Introspection,
    /// JWT-shaped tokens locally, anything else by introspection.
    Auto,
}

/// Where the engine sends introspection requests, and as whom.
#[derive(Debug, Clone)]
pub struct IntrospectionClient {
    /// `None`: take `introspection_endpoint` from the AS metadata.
    pub endpoint: Option<String>,
    pub client_id: String,
    pub client_secret: String,
}

impl IntrospectionClient {
    /// The `Authorization` header value for the introspection request.
    pub fn authorization_header(&self) -> String {
        introspection::client_authorization(&self.client_id, &self.client_secret)
    }
}

#[derive(Debug)]
pub struct OAuth2Plan {
    pub rules: JwtRules,
    /// The authorization server's issuer identifier (also the required `iss`).
    pub issuer: String,
    /// Advertised in the PRM.
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// `None`: take `jwks_uri` from the AS metadata (see [`super::metadata::as_metadata_urls`]).
    pub jwks_uri: Option<String>,
    pub validation: TokenValidation,
    pub introspection: Option<IntrospectionClient>,
    pub jwks_refetch_interval_secs: u64,
    /// A JWKS older than this is refreshed in-band by the next request (rotation that removes a
    /// key takes effect within this time even if no unknown `kid` shows up).
    pub jwks_max_age_secs: u64,
    pub introspection_cache_secs: u64,
    pub introspection_negative_cache_secs: u64,
    pub cache_capacity: usize,
}

#[derive(Debug)]
pub enum Plan {
    Keyless,
    /// A client certificate verified by the TLS listener.
    ClientCert,
    ApiKey(ApiKeyPlan),
    Jwt(JwtPlan),
    OAuth2(OAuth2Plan),
}

impl Plan {
    fn token_rules(&self) -> Option<&JwtRules> {
        match self {
            Plan::Jwt(plan) => Some(&plan.rules),
            Plan::OAuth2(plan) => Some(&plan.rules),
            Plan::Keyless | Plan::ClientCert | Plan::ApiKey(_) => None,
        }
    }
}

/// A refusal and the plan it came from (for the challenge's `scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: AuthError,
    pub plan: Option<usize>,
}

/// What the engine does next.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthStep<'r> {
    Authenticated(Rc<Principal>),
    Refused(Refusal),
    /// Fetch plan `plan`'s JWKS, then [`WorkerAuthState::install_jwks`] (or
    /// [`WorkerAuthState::jwks_fetch_failed`]) and call `authenticate` again. The refetch
    /// policy has already recorded this attempt.
    FetchJwks {
        plan: usize,
    },
    /// Introspect `token` with plan `plan`'s client, then [`ApiAuth::complete_introspection`]
    /// and call `authenticate` again.
    Introspect {
        plan: usize,
        token: &'r str,
    },
}

/// The request as the plans see it.
pub struct AuthRequest<'h, 'r> {
    pub headers: &'h dyn HeaderLookup<'r>,
    /// The query string (after `?`), if any.
    pub query: Option<&'r str>,
    /// The client certificate the TLS listener verified, if any (the `client_cert` plan).
    pub client_cert: Option<&'h crate::tls::ClientCertificate>,
}

/// One API's authentication: immutable, shared by every worker.
#[derive(Debug)]
pub struct ApiAuth {
    pub(crate) plans: Vec<Plan>,
    pub(crate) resource: Option<PublicUrl>,
    /// Mode B: the PRM document and the URL challenges point at.
    pub(crate) prm: Option<(String, String)>,
}

// The snapshot is shared by every worker thread.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<ApiAuth>();
    shared::<KeySet>();
};

/// Per-worker mutable state for one API: caches and JWKS. `!Sync`; one per worker.
pub struct WorkerAuthState {
    plans: Vec<PlanState>,
}

struct PlanState {
    verified: TokenCache<Rc<Principal>>,
    introspected: TokenCache<Result<Rc<Principal>, AuthError>>,
    jwks: Option<Arc<KeySet>>,
    jwks_installed_at: u64,
    refetch: RefetchPolicy,
}

impl WorkerAuthState {
    /// Installs a freshly fetched key set for an OAuth2 plan. Tokens verified with the previous
    /// set are forgotten, so a key the authorization server withdrew stops working at once.
    pub fn install_jwks(&mut self, plan: usize, keys: Arc<KeySet>, now: u64) {
        if let Some(state) = self.plans.get_mut(plan) {
            state.jwks = Some(keys);
            state.jwks_installed_at = now;
            state.verified.clear();
        }
    }

    /// The fetch failed: nothing to install; the refetch policy already counts the attempt, so
    /// the next `authenticate` refuses instead of asking again.
    pub fn jwks_fetch_failed(&mut self, plan: usize) {
        let _ = plan;
    }

    /// Whether a JWKS is loaded for `plan` (for readiness checks).
    pub fn has_jwks(&self, plan: usize) -> bool {
        self.plans.get(plan).is_some_and(|s| s.jwks.is_some())
    }

    /// Lets the engine fetch a JWKS at startup without a request asking for it.
    pub fn try_begin_jwks_fetch(&mut self, plan: usize, now: u64) -> bool {
        self.plans
            .get_mut(plan)
            .is_some_and(|s| s.refetch.try_begin(now))
    }

    pub fn cached_entries(&self) -> usize {
        self.plans
            .iter()
            .map(|s| s.verified.len() + s.introspected.len())
            .sum()
    }
}

impl ApiAuth {
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// The API's public resource URL, when a token plan needs one.
    pub fn resource(&self) -> Option<&PublicUrl> {
        self.resource.as_ref()
    }

    /// Mode B: the request path at which to serve [`ApiAuth::protected_resource_metadata`].
    pub fn prm_path(&self) -> Option<String> {
        self.prm
            .as_ref()
            .and(self.resource.as_ref())
            .map(PublicUrl::prm_path)
    }

    /// Mode B: the PRM JSON document (serialised once at load).
    pub fn protected_resource_metadata(&self) -> Option<&str> {
        self.prm.as_ref().map(|(json, _)| json.as_str())
    }

    pub fn new_worker_state(&self) -> WorkerAuthState {
        WorkerAuthState {
            plans: self
                .plans
                .iter()
                .map(|plan| {
                    let (capacity, interval) = match plan {
                        Plan::Jwt(p) => (p.cache_capacity, 0),
                        Plan::OAuth2(p) => (p.cache_capacity, p.jwks_refetch_interval_secs),
                        Plan::Keyless | Plan::ClientCert | Plan::ApiKey(_) => (1, 0),
                    };
                    PlanState {
                        verified: TokenCache::new(capacity),
                        introspected: TokenCache::new(capacity),
                        jwks: None,
                        jwks_installed_at: 0,
                        refetch: RefetchPolicy::new(interval),
                    }
                })
                .collect(),
        }
    }

    /// Decides one request. Call again after performing the I/O a returned step asks for.
    pub fn authenticate<'r>(
        &self,
        req: &AuthRequest<'_, 'r>,
        state: &mut WorkerAuthState,
        now: u64,
    ) -> AuthStep<'r> {
        if let Err(error) = request::refuse_query_token(req.query) {
            return self.refuse_request(error);
        }
        let raw_bearer = match request::raw_authorization(req.headers) {
            Ok(RawAuthorization::Bearer(token)) => Some(token),
            Ok(RawAuthorization::Absent | RawAuthorization::OtherScheme) => None,
            Err(error) => return self.refuse_request(error),
        };
        // Validated at most once, and only when a cache miss (or any other outcome than a
        // cache hit) needs it: a malformed header is still a 400 whatever the plans say.
        let mut bearer_text: Option<&'r str> = None;
        let mut bearer = |raw: &'r [u8]| -> Result<&'r str, AuthError> {
            if let Some(text) = bearer_text {
                return Ok(text);
            }
            let text = request::validate_token(raw)?;
            bearer_text = Some(text);
            Ok(text)
        };
        let mut best: Option<Refusal> = None;
        let mut record = |error: AuthError, plan: usize| {
            if best
                .as_ref()
                .is_none_or(|b| error.precedence() > b.error.precedence())
            {
                best = Some(Refusal {
                    error,
                    plan: Some(plan),
                });
            }
        };
        let mut credential_seen = false;
        // Set by a cache hit: those exact bytes were validated when first seen.
        let mut bearer_proven = false;
        for (index, plan) in self.plans.iter().enumerate() {
            let Some(plan_state) = state.plans.get_mut(index) else {
                continue;
            };
            let outcome = match plan {
                Plan::Keyless => continue,
                Plan::ClientCert => match req.client_cert {
                    Some(cert) => Ok(Rc::new(Principal::from_client_cert(cert))),
                    None => continue,
                },
                Plan::ApiKey(api_key) => {
                    let values = req.headers.header_values(api_key.header());
                    match values.as_slice() {
                        [] => continue,
                        [value] => api_key.check(value).map(Rc::new),
                        _ => Err(AuthError::InvalidRequest("more than one API key header")),
                    }
                }
                Plan::Jwt(jwt_plan) => {
                    let Some(raw) = raw_bearer else { continue };
                    match plan_state.verified.get(raw, now) {
                        Some(hit) => {
                            bearer_proven = true;
                            jwt::check_scopes(&hit, &jwt_plan.rules.required_scopes).map(|()| hit)
                        }
                        None => match bearer(raw) {
                            Err(error) => return self.refuse_request(error),
                            Ok(token) => verify_cached(
                                token,
                                &jwt_plan.keys,
                                &jwt_plan.rules,
                                PlanKind::Jwt,
                                &mut plan_state.verified,
                                now,
                            ),
                        },
                    }
                }
                Plan::OAuth2(oauth) => {
                    let Some(raw) = raw_bearer else { continue };
                    // A stale (or absent) JWKS must be refreshed before any hit is served.
                    let jwks_fresh = plan_state.jwks.is_some()
                        && now.saturating_sub(plan_state.jwks_installed_at)
                            < oauth.jwks_max_age_secs;
                    let cached = match oauth.validation {
                        TokenValidation::Introspection => None,
                        TokenValidation::Jwt | TokenValidation::Auto if jwks_fresh => {
                            plan_state.verified.get(raw, now)
                        }
                        TokenValidation::Jwt | TokenValidation::Auto => None,
                    };
                    if let Some(hit) = cached {
                        bearer_proven = true;
                        jwt::check_scopes(&hit, &oauth.rules.required_scopes).map(|()| hit)
                    } else {
                        let token = match bearer(raw) {
                            Ok(token) => token,
                            Err(error) => return self.refuse_request(error),
                        };
                        let use_jwt = match oauth.validation {
                            TokenValidation::Jwt => true,
                            TokenValidation::Introspection => false,
                            TokenValidation::Auto => jwt::looks_like_jwt(token),
                        };
                        if use_jwt {
                            match oauth_jwt(token, oauth, plan_state, now) {
                                Ok(outcome) => outcome,
                                Err(()) => return AuthStep::FetchJwks { plan: index },
                            }
                        } else if token.len() > oauth.rules.max_token_bytes {
                            Err(TokenProblem::TooLong.into())
                        } else {
                            match plan_state.introspected.get(token.as_bytes(), now) {
                                Some(cached) => cached,
                                None => return AuthStep::Introspect { plan: index, token },
                            }
                        }
                    }
                }
            };
            credential_seen = true;
            match outcome {
                Ok(principal) => {
                    // A malformed bearer header next to an accepted API key is still a 400.
                    if let Some(raw) = raw_bearer.filter(|_| !bearer_proven) {
                        if let Err(error) = bearer(raw) {
                            return self.refuse_request(error);
                        }
                    }
                    return AuthStep::Authenticated(principal);
                }
                Err(error) => record(error, index),
            }
        }
        if let Some(raw) = raw_bearer.filter(|_| !bearer_proven) {
            if let Err(error) = bearer(raw) {
                return self.refuse_request(error);
            }
        }
        if let Some(refusal) = best {
            return AuthStep::Refused(refusal);
        }
        if !credential_seen && self.plans.iter().any(|p| matches!(p, Plan::Keyless)) {
            return AuthStep::Authenticated(Rc::new(Principal::anonymous()));
        }
        AuthStep::Refused(Refusal {
            error: AuthError::MissingCredentials,
            plan: self.first_token_plan(),
        })
    }

    fn refuse_request<'r>(&self, error: AuthError) -> AuthStep<'r> {
        AuthStep::Refused(Refusal {
            error,
            plan: self.first_token_plan(),
        })
    }

    /// Records an introspection answer (the raw response body of a 200) for `token` in the
    /// worker's cache; the next `authenticate` finds it. A transport failure is the engine's to
    /// answer (503): it must not call this. See [`ApiAuth::complete_introspection_answer`] for
    /// an answer of any status.
    pub fn complete_introspection(
        &self,
        plan: usize,
        token: &str,
        body: &[u8],
        state: &mut WorkerAuthState,
        now: u64,
    ) {
        let _ = self.complete_introspection_answer(plan, token, 200, body, state, now);
    }

    /// Records an introspection answer of HTTP status `status` for `token`: a 200 is judged by
    /// its body, a 4xx is a refusal (401 `invalid_token`, cached like an inactive answer), and
    /// anything else is `Err`: the server could not judge the token, nothing is cached, and the
    /// engine answers 503.
    pub fn complete_introspection_answer(
        &self,
        plan: usize,
        token: &str,
        status: u16,
        body: &[u8],
        state: &mut WorkerAuthState,
        now: u64,
    ) -> Result<(), IntrospectionUnavailable> {
        let (Some(Plan::OAuth2(oauth)), Some(plan_state)) =
            (self.plans.get(plan), state.plans.get_mut(plan))
        else {
            return Ok(());
        };
        let IntrospectionOutcome {
            result,
            cache_until,
        } = introspection::evaluate_answer(
            status,
            body,
            &oauth.rules,
            now,
            oauth.introspection_cache_secs,
            oauth.introspection_negative_cache_secs,
        )?;
        // The answer must be usable by the very next call even with a zero TTL.
        let cache_until = cache_until.max(now.saturating_add(1));
        plan_state
            .introspected
            .insert(token.as_bytes(), result.map(Rc::new), cache_until, now);
        Ok(())
    }

    /// The `WWW-Authenticate` value for a refusal (`None` for a 404, or for an API whose only
    /// credential plans are API keys: there is no registered challenge scheme for those).
    pub fn challenge(&self, refusal: &Refusal) -> Option<String> {
        if !refusal.error.wants_challenge() {
            return None;
        }
        let plan_index = refusal
            .plan
            .filter(|i| self.plans.get(*i).and_then(Plan::token_rules).is_some())
            .or_else(|| self.first_token_plan())?;
        let rules = self.plans.get(plan_index).and_then(Plan::token_rules)?;
        let scope = rules
            .required_scopes
            .iter()
            .map(|s| &**s)
            .collect::<Vec<_>>()
            .join(" ");
        let error = match refusal.error.challenge_error() {
            ChallengeError::None => None,
            other => Some(other),
        };
        let challenge = BearerChallenge {
            resource_metadata: self.prm.as_ref().map(|(_, url)| url.as_str()),
            scope: Some(scope.as_str()),
            error,
        };
        Some(challenge.to_header_value())
    }

    fn first_token_plan(&self) -> Option<usize> {
        self.plans
            .iter()
            .position(|p| matches!(p, Plan::OAuth2(_)))
            .or_else(|| self.plans.iter().position(|p| matches!(p, Plan::Jwt(_))))
    }

    pub(crate) fn build_prm(
        resource: &PublicUrl,
        plans: &[Plan],
        resource_name: Option<String>,
    ) -> Option<(String, String)> {
        let oauth = plans.iter().find_map(|p| match p {
            Plan::OAuth2(o) => Some(o),
            _ => None,
        })?;
        let mut prm = ProtectedResourceMetadata::new(
            resource,
            oauth.authorization_servers.clone(),
            oauth.scopes_supported.clone(),
        );
        prm.resource_name = resource_name;
        Some((prm.to_json(), resource.prm_url()))
    }
}

/// A JWT check through the worker cache: a hit costs one hash and one compare; scopes are
/// checked on every request (they are per plan, the cache entry is per token).
fn verify_cached(
    token: &str,
    keys: &KeySet,
    rules: &JwtRules,
    kind: PlanKind,
    cache: &mut TokenCache<Rc<Principal>>,
    now: u64,
) -> Result<Rc<Principal>, AuthError> {
    let principal = match cache.get(token.as_bytes(), now) {
        Some(principal) => principal,
        None => {
            let mut principal = jwt::verify_jwt(token, keys, rules, now)?;
            principal.plan = kind;
            let principal = Rc::new(principal);
            if let Some(exp) = principal.expires_at {
                cache.insert(token.as_bytes(), principal.clone(), exp, now);
            }
            principal
        }
    };
    jwt::check_scopes(&principal, &rules.required_scopes)?;
    Ok(principal)
}

/// OAuth2 with JWTs: `Err(())` means "fetch the JWKS first" (none loaded yet, or an unknown
/// `kid` and the refetch policy allows a fetch now).
#[allow(clippy::result_unit_err)]
fn oauth_jwt(
    token: &str,
    oauth: &OAuth2Plan,
    state: &mut PlanState,
    now: u64,
) -> Result<Result<Rc<Principal>, AuthError>, ()> {
    let stale = now.saturating_sub(state.jwks_installed_at) >= oauth.jwks_max_age_secs;
    if (state.jwks.is_none() || stale) && state.refetch.try_begin(now) {
        return Err(());
    }
    // Disjoint field borrows: no Arc clone on the hot path.
    let Some(keys) = state.jwks.as_deref() else {
        return Ok(Err(TokenProblem::NoUsableKey.into()));
    };
    let outcome = verify_cached(
        token,
        keys,
        &oauth.rules,
        PlanKind::OAuth2,
        &mut state.verified,
        now,
    );
    match outcome {
        Err(AuthError::InvalidToken(TokenProblem::UnknownKid)) if state.refetch.try_begin(now) => {
            Err(())
        }
        outcome => Ok(outcome),
    }
}
