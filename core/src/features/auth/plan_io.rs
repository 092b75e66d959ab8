//! The I/O half of the plans: the `authenticate` phase's loop over `ApiAuth::authenticate`,
//! performing the fetches it asks for (JWKS, discovered from the authorization server's RFC 8414
//! / OIDC metadata unless configured; RFC 7662 introspection) with `crate::engine::http_client`,
//! each bounded by [`FETCH_LIMIT`] so a slow authorization server delays only the requests that
//! need it; and the well-known paths (Mode B: the local PRM; Mode A: the upstream's PRM with
//! `resource` rewritten, cached per worker). The state these use is the snapshot's
//! (`super::state`), borrowed briefly between awaits, never across one.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcpgate_codec::http::RequestHead;
use mcpgate_policies::auth::metadata::{as_metadata_urls, rewrite_upstream_prm, PRM_WELL_KNOWN};
use mcpgate_policies::auth::plan::OAuth2Plan;
use mcpgate_policies::auth::{
    introspection, ApiAuth, AuthRequest, AuthStep, AuthorizationServerMetadata, KeySet, Plan,
};

use std::rc::Rc;
use std::sync::Arc;

use super::state::PlanState;
use super::HeadHeaders;
use crate::context::RequestCtx;
use crate::engine::http_client::{self, FetchError};
use crate::errors::ErrorKind;
use crate::phases::Step;
use crate::snapshot::Snapshot;

/// Upper bound of one control-plane fetch (connect, request, whole answer).
pub const FETCH_LIMIT: Duration = Duration::from_secs(3);
/// Steps one request may take through the plans (each fetch is one).
const MAX_ROUNDS: usize = 6;
/// How long an upstream's protected-resource metadata is reused (Mode A).
const UPSTREAM_PRM_TTL: Duration = Duration::from_secs(60);

/// Runs `f` on this worker's plan state for API `api` (`None`: no plans). A short borrow, never
/// held across an `.await`.
fn with_plans<R>(
    snapshot: &Snapshot,
    api: usize,
    f: impl FnOnce(&mut PlanState) -> R,
) -> Option<R> {
    let plans = snapshot.apis.get(api)?.auth.plans.as_ref()?;
    let mut plans = plans.borrow_mut();
    Some(f(&mut plans))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `authenticate` phase: the request against the API's plans; on success the principal is
/// in `ctx.principal` (the ACL's `auth` variable) and a presented session id has been checked
/// against it. No plans: nothing to do.
pub async fn authenticate(ctx: &mut RequestCtx, buf: &[u8], head: &RequestHead) -> Step {
    let Some(api) = ctx.api else {
        return Step::Continue;
    };
    let snapshot = Rc::clone(&ctx.snapshot);
    let Some(auth) = snapshot.config.apis.get(api).and_then(|a| a.auth.as_ref()) else {
        return Step::Continue;
    };
    let headers = HeadHeaders { buf, head };
    let query = head.query(buf).map(String::from_utf8_lossy);
    let tls = ctx.tls.clone();
    let request = AuthRequest {
        headers: &headers,
        query: query.as_deref(),
        client_cert: tls.as_ref().and_then(|t| t.client_cert.as_ref()),
    };
    for _ in 0..MAX_ROUNDS {
        let now = unix_now();
        let step = with_plans(&snapshot, api, |w| {
            auth.auth.authenticate(&request, &mut w.state, now)
        });
        match step {
            None => return Step::Continue,
            Some(AuthStep::Authenticated(principal)) => {
                ctx.principal = Some(principal);
                return super::open_session(ctx, buf, head);
            }
            Some(AuthStep::Refused(refusal)) => {
                crate::debug!("api {}: refused: {}", api, refusal.error);
                return super::refusal_step(auth, &refusal);
            }
            Some(AuthStep::FetchJwks { plan }) => {
                let fetched = fetch_jwks(&snapshot, api, &auth.auth, plan).await;
                let now = unix_now();
                with_plans(&snapshot, api, |w| match fetched {
                    Ok(keys) => w.state.install_jwks(plan, Arc::new(keys), now),
                    Err(e) => {
                        crate::warn!("api {api}: plan {plan}: JWKS fetch failed: {e}");
                        w.state.jwks_fetch_failed(plan);
                    }
                });
            }
            Some(AuthStep::Introspect { plan, token }) => {
                match introspect(&snapshot, api, &auth.auth, plan, token).await {
                    // The status is the policy's to read: a 4xx refuses the token (401), a 5xx
                    // leaves it unjudged (503, below).
                    Ok((status, body)) => {
                        let now = unix_now();
                        let judged = with_plans(&snapshot, api, |w| {
                            auth.auth.complete_introspection_answer(
                                plan,
                                token,
                                status,
                                &body,
                                &mut w.state,
                                now,
                            )
                        });
                        match judged {
                            Some(Err(e)) => {
                                crate::warn!("api {api}: plan {plan}: introspection failed: {e}");
                                return unavailable();
                            }
                            _ if (400..500).contains(&status) => crate::warn!(
                                "api {api}: plan {plan}: introspection endpoint answered {status}: \
                                 token refused{}",
                                if matches!(status, 401 | 403) {
                                    " (check the plan's client_id / client_secret)"
                                } else {
                                    ""
                                }
                            ),
                            _ => {}
                        }
                    }
                    Err(e) => {
                        crate::warn!("api {api}: plan {plan}: introspection failed: {e}");
                        return unavailable();
                    }
                }
            }
        }
    }
    unavailable()
}

/// The plan's authorization server could not be reached (or answered nothing usable) within
/// the request's fetch rounds: 503, not a refusal, since the credential was never judged.
fn unavailable() -> Step {
    Step::error(ErrorKind::AuthServerUnavailable)
}

fn oauth_plan(auth: &ApiAuth, plan: usize) -> Option<&OAuth2Plan> {
    match auth.plans().get(plan) {
        Some(Plan::OAuth2(p)) => Some(p),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
enum AuthFetchError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("{url}: status {status}")]
    Status { url: String, status: u16 },
    #[error("{0}")]
    Document(String),
    #[error("no {0} configured or advertised by the authorization server")]
    NoEndpoint(&'static str),
}

/// Reads the AS metadata (first URL answering 200 wins) and remembers its endpoints.
async fn discover(
    snapshot: &Snapshot,
    api: usize,
    plan: usize,
    issuer: &str,
) -> Result<(), AuthFetchError> {
    let urls = as_metadata_urls(issuer).map_err(|e| AuthFetchError::Document(e.to_string()))?;
    let mut last = AuthFetchError::NoEndpoint("authorization server metadata");
    for url in urls {
        match http_client::get(&url, FETCH_LIMIT).await {
            Ok(r) if r.status == 200 => {
                let meta = AuthorizationServerMetadata::parse(&r.body, issuer)
                    .map_err(|e| AuthFetchError::Document(format!("{url}: {e}")))?;
                with_plans(snapshot, api, |w| {
                    if let Some(d) = w.discovered.get_mut(plan) {
                        d.jwks_uri = meta.jwks_uri.clone();
                        d.introspection_endpoint = meta.introspection_endpoint.clone();
                    }
                });
                return Ok(());
            }
            Ok(r) => {
                last = AuthFetchError::Status {
                    url,
                    status: r.status,
                }
            }
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}

async fn fetch_jwks(
    snapshot: &Snapshot,
    api: usize,
    auth: &ApiAuth,
    plan: usize,
) -> Result<KeySet, AuthFetchError> {
    let oauth = oauth_plan(auth, plan).ok_or(AuthFetchError::NoEndpoint("OAuth2 plan"))?;
    let uri = match &oauth.jwks_uri {
        Some(u) => u.clone(),
        None => {
            let known = with_plans(snapshot, api, |w| {
                w.discovered.get(plan).and_then(|d| d.jwks_uri.clone())
            })
            .flatten();
            match known {
                Some(u) => u,
                None => {
                    discover(snapshot, api, plan, &oauth.issuer).await?;
                    with_plans(snapshot, api, |w| {
                        w.discovered.get(plan).and_then(|d| d.jwks_uri.clone())
                    })
                    .flatten()
                    .ok_or(AuthFetchError::NoEndpoint("jwks_uri"))?
                }
            }
        }
    };
    let response = http_client::get(&uri, FETCH_LIMIT).await?;
    if response.status != 200 {
        return Err(AuthFetchError::Status {
            url: uri,
            status: response.status,
        });
    }
    KeySet::from_jwks_json(&response.body)
        .map_err(|e| AuthFetchError::Document(format!("{uri}: {e}")))
}

async fn introspect(
    snapshot: &Snapshot,
    api: usize,
    auth: &ApiAuth,
    plan: usize,
    token: &str,
) -> Result<(u16, Vec<u8>), AuthFetchError> {
    let oauth = oauth_plan(auth, plan).ok_or(AuthFetchError::NoEndpoint("OAuth2 plan"))?;
    let client = oauth
        .introspection
        .as_ref()
        .ok_or(AuthFetchError::NoEndpoint("introspection client"))?;
    let endpoint = match &client.endpoint {
        Some(e) => e.clone(),
        None => {
            let known = with_plans(snapshot, api, |w| {
                w.discovered
                    .get(plan)
                    .and_then(|d| d.introspection_endpoint.clone())
            })
            .flatten();
            match known {
                Some(e) => e,
                None => {
                    discover(snapshot, api, plan, &oauth.issuer).await?;
                    with_plans(snapshot, api, |w| {
                        w.discovered
                            .get(plan)
                            .and_then(|d| d.introspection_endpoint.clone())
                    })
                    .flatten()
                    .ok_or(AuthFetchError::NoEndpoint("introspection_endpoint"))?
                }
            }
        }
    };
    let authorization = client.authorization_header();
    let body = introspection::request_body(token);
    let response = http_client::request(
        "POST",
        &endpoint,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
            ("authorization", &authorization),
        ],
        body.as_bytes(),
        FETCH_LIMIT,
    )
    .await?;
    Ok((response.status, response.body))
}

/// The `route` phase's part: requests under `/.well-known/oauth-protected-resource`. Mode B
/// serves the local PRM; Mode A (an API without plans) serves the upstream's, with `resource`
/// rewritten to the gateway's public URL (cached per worker for [`UPSTREAM_PRM_TTL`]).
/// `Continue`: not such a request (routing goes on).
pub async fn well_known(ctx: &mut RequestCtx, buf: &[u8], head: &RequestHead) -> Step {
    let path = head.path(buf);
    if !path.starts_with(PRM_WELL_KNOWN.as_bytes()) {
        return Step::Continue;
    }
    let method = head.method(buf);
    if let Some(step) = super::serve_prm(ctx, method, path) {
        return step;
    }
    let Some(api) = super::well_known_target(ctx.config(), path) else {
        return Step::Continue;
    };
    if ctx.config().apis.get(api).is_some_and(|a| a.auth.is_some()) {
        return Step::Continue; // plans without an OAuth2 plan publish no PRM
    }
    ctx.api = Some(api);
    let snapshot = Rc::clone(&ctx.snapshot);
    let Some(state) = snapshot.apis.get(api) else {
        return Step::Continue;
    };
    let cached = state
        .auth
        .upstream_prm
        .borrow()
        .clone()
        .filter(|(at, _)| at.elapsed() < UPSTREAM_PRM_TTL);
    let document = match cached {
        Some((_, doc)) => doc,
        None => {
            let doc = fetch_upstream_prm(ctx).await;
            *state.auth.upstream_prm.borrow_mut() = Some((Instant::now(), doc.clone()));
            doc
        }
    };
    match document {
        Some(doc) => super::prm_answer(method, ctx.method, &doc),
        None => Step::error(ErrorKind::NotFound),
    }
}

/// Mode A: the upstream's PRM (path-suffixed, then root), `resource` rewritten.
async fn fetch_upstream_prm(ctx: &RequestCtx) -> Option<Vec<u8>> {
    let api = ctx.api()?;
    let public = super::mode_a_public_url(ctx)?;
    let upstream_path = if api.upstream.path == "/" {
        ""
    } else {
        api.upstream.path.as_str()
    };
    let scheme = match api.upstream.scheme {
        crate::urls::Scheme::Http => "http",
        crate::urls::Scheme::Https => "https",
    };
    let base = format!("{scheme}://{}{PRM_WELL_KNOWN}", api.upstream.host_header);
    for url in [format!("{base}{upstream_path}"), base.clone()] {
        // Over the upstream's own TLS settings: the same trust store and name as its traffic.
        match http_client::get_from_upstream(&url, FETCH_LIMIT, api.upstream.tls.as_ref()).await {
            Ok(r) if r.status == 200 => match rewrite_upstream_prm(&r.body, &public) {
                Ok(doc) => return Some(doc),
                Err(e) => crate::warn!("api {}: upstream PRM at {url}: {e}", api.name),
            },
            Ok(_) => {}
            Err(e) => crate::debug!("api {}: upstream PRM at {url}: {e}", api.name),
        }
    }
    None
}
