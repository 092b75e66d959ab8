//! Plans (authentication) as a feature of the request path (docs/auth.md): the `authenticate`
//! phase runs the API's plans (JWT, API key, OAuth2 with JWKS or introspection; the fetches in
//! `plan_io`), refusals carry MCP's `WWW-Authenticate` challenge (401/403), the protected-resource
//! metadata is served at the well-known paths (`route`: Mode B the gateway's own, Mode A the
//! upstream's with `resource` rewritten), credentials stay at the gateway and the upstream gets its
//! own session id (`upstream_request`), and the upstream's session id is sealed to the subject
//! (`<upstream id>.<HMAC(subject ‖ id)>`) so any worker or replica checks the binding without
//! shared state; Mode A rewrites the upstream's challenge to point at the gateway (`response_head`).

pub mod plan_io;
pub mod state;

use std::sync::Arc;

use mcpgate_codec::http::{HeadWriter, RequestHead, ResponseHead};
use mcpgate_policies::auth::challenge::rewrite_resource_metadata;
use mcpgate_policies::auth::metadata::PRM_WELL_KNOWN;
use mcpgate_policies::auth::request::HeaderLookup;
use mcpgate_policies::auth::{AuthError, PublicUrl, Refusal};
use smallvec::SmallVec;

use crate::config::{ApiAuthCfg, Config};
use crate::context::{HttpMethod, RequestCtx};
use crate::errors::reason;
use crate::phases::{Phases, Request, Response, Step, UpstreamEdits};

/// The parsed request head as the plans' header source (no copy).
pub struct HeadHeaders<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
}

impl<'a> HeaderLookup<'a> for HeadHeaders<'a> {
    fn header_values(&self, name: &str) -> SmallVec<[&'a [u8]; 2]> {
        self.head
            .headers(self.buf)
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
            .collect()
    }
}

/// The API's plans, when it has any.
pub fn api_auth(ctx: &RequestCtx) -> Option<&ApiAuthCfg> {
    ctx.api().and_then(|a| a.auth.as_ref())
}

fn json_rpc_error_body(code: i32, message: &str) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    })
    .to_string()
}

/// A complete gateway-written response with optional extra header lines (each `name: value`).
pub fn raw_response(
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    if !content_type.is_empty() {
        out.extend_from_slice(format!("content-type: {content_type}\r\n").as_bytes());
    }
    for (name, value) in extra {
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            continue;
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// The answer to a refused request: status, challenge and a JSON-RPC error body.
pub fn refusal_step(auth: &ApiAuthCfg, refusal: &Refusal) -> Step {
    let status = refusal.error.http_status();
    let challenge = auth.auth.challenge(refusal);
    let message = match &refusal.error {
        AuthError::MissingCredentials | AuthError::InvalidApiKey | AuthError::InvalidToken(_) => {
            "Unauthorized"
        }
        AuthError::InsufficientScope => "Forbidden: insufficient scope",
        AuthError::InvalidRequest(_) => "Invalid request",
        AuthError::SessionNotFound => "Session not found",
    };
    let body = json_rpc_error_body(refusal.error.jsonrpc_code(), message);
    let mut extra: SmallVec<[(&str, &str); 2]> = SmallVec::new();
    if let Some(value) = challenge.as_deref() {
        extra.push(("www-authenticate", value));
        // Browser-based clients must be able to read the challenge.
        extra.push(("access-control-expose-headers", "WWW-Authenticate"));
    }
    Step::raw(raw_response(
        status,
        "application/json",
        &extra,
        body.as_bytes(),
    ))
}

/// 404 for a session id that is not this subject's (or not one the gateway minted).
pub fn session_not_found() -> Step {
    let body = json_rpc_error_body(
        AuthError::SessionNotFound.jsonrpc_code(),
        "Session not found",
    );
    Step::raw(raw_response(404, "application/json", &[], body.as_bytes()))
}

/// Checks the presented `Mcp-Session-Id` against the authenticated subject and keeps the
/// upstream's id for the forward phase. Runs after the plans admitted the request.
pub fn open_session(ctx: &mut RequestCtx, buf: &[u8], head: &RequestHead) -> Step {
    let Some(presented) = head.header(buf, "mcp-session-id") else {
        return Step::Continue;
    };
    let binder = Arc::clone(&ctx.config().gateway.sessions.binder);
    let subject = ctx.principal.as_ref().and_then(|p| p.subject.as_deref());
    let Ok(presented) = std::str::from_utf8(presented) else {
        return session_not_found();
    };
    match binder.open(subject, presented) {
        Ok(upstream_id) => {
            ctx.upstream_session = Some(upstream_id.into());
            Step::Continue
        }
        Err(_) => session_not_found(),
    }
}

/// The public URL of every API that would answer at `path` under the well-known prefix: the
/// path-suffixed form for each API, and the root form when exactly one API is served.
fn well_known_api(config: &Config, path: &[u8]) -> Option<usize> {
    let rest = path.strip_prefix(PRM_WELL_KNOWN.as_bytes())?;
    if rest.is_empty() || rest == b"/" {
        return (config.apis.len() == 1).then_some(0);
    }
    config.apis.iter().position(|api| {
        let api_path = if api.path == "/" {
            ""
        } else {
            api.path.as_str()
        };
        rest == api_path.as_bytes()
    })
}

/// Which API a request under `/.well-known/oauth-protected-resource` is about, if any.
pub fn well_known_target(config: &Config, path: &[u8]) -> Option<usize> {
    well_known_api(config, path)
}

const CORS: &[(&str, &str)] = &[
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, OPTIONS"),
    ("access-control-allow-headers", "*"),
    ("access-control-max-age", "86400"),
    ("cache-control", "max-age=300"),
];

/// Mode B: serves the PRM of an API with an OAuth2 plan (GET/HEAD), its CORS preflight
/// (OPTIONS), 405 for other methods. `None`: not a well-known path of an API with a local PRM.
pub fn serve_prm(ctx: &RequestCtx, method: &[u8], path: &[u8]) -> Option<Step> {
    let api = well_known_api(ctx.config(), path)?;
    let auth = ctx.config().apis.get(api)?.auth.as_ref()?;
    let document = auth.auth.protected_resource_metadata()?;
    Some(prm_answer(method, ctx.method, document.as_bytes()))
}

/// The answer at a well-known path for `document`.
pub fn prm_answer(method: &[u8], kind: HttpMethod, document: &[u8]) -> Step {
    let response = match (method, kind) {
        (b"OPTIONS", _) => raw_response(204, "", CORS, b""),
        (_, HttpMethod::Get) => raw_response(200, "application/json", CORS, document),
        (_, HttpMethod::Head) => {
            let mut r = raw_response(200, "application/json", CORS, document);
            r.truncate(r.len() - document.len());
            r
        }
        _ => raw_response(405, "", &[("allow", "GET, HEAD, OPTIONS")], b""),
    };
    Step::raw(response)
}

/// What the relay phase changes in the upstream's response head for an API with plans or a
/// secured upstream. `None`: nothing to change (the common case; no copy).
fn rewritten_response_head(
    ctx: &mut RequestCtx,
    buf: &[u8],
    head: &ResponseHead,
) -> Option<Vec<u8>> {
    let has_plans = ctx.api()?.auth.is_some();
    // Mode B: seal the upstream's session id to the subject (and keep the upstream's, which the
    // exchange log tags).
    let sealed = match (has_plans, head.header(buf, "mcp-session-id")) {
        (true, Some(id)) => {
            let id = std::str::from_utf8(id).ok()?;
            let subject = ctx.principal.as_ref().and_then(|p| p.subject.as_deref());
            // No randomness for a nonce is no safe id: leave the head alone rather than
            // hand out the upstream's id in clear.
            let sealed = match ctx.config().gateway.sessions.binder.seal(subject, id) {
                Ok(sealed) => sealed,
                Err(e) => {
                    crate::error!("cannot seal a session id: {e}");
                    return None;
                }
            };
            ctx.upstream_session = Some(id.into());
            Some(sealed)
        }
        _ => None,
    };
    // Mode A: the upstream's challenge points at its own metadata; point it at the gateway's.
    let mut challenges: SmallVec<[String; 1]> = SmallVec::new();
    let mode_a = !has_plans && matches!(head.status, 401 | 403);
    if mode_a {
        let public = mode_a_public_url(ctx)?;
        for (name, value) in head.headers(buf) {
            if name.eq_ignore_ascii_case(b"www-authenticate") {
                if let Some(v) = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| rewrite_resource_metadata(v, &public.prm_url()))
                {
                    challenges.push(v);
                }
            }
        }
    }
    if sealed.is_none() && !mode_a {
        return None;
    }
    // In place: `writer = writer.set(..)` would move the whole writer for every edit.
    let mut writer = HeadWriter::response(buf, head);
    if let Some(sealed) = sealed.as_deref() {
        writer.set_mut("mcp-session-id", sealed.as_bytes());
    }
    if mode_a {
        writer.remove_mut("www-authenticate");
        for c in &challenges {
            writer.add_mut("www-authenticate", c.as_bytes());
        }
    }
    let mut out = Vec::with_capacity(head.head_len + 64);
    writer.write(&mut out);
    Some(out)
}

/// Mode A: the API's public URL (its `public_url`, the gateway's, or the listen address).
pub fn mode_a_public_url(ctx: &RequestCtx) -> Option<PublicUrl> {
    let api = ctx.api()?;
    let url = match &api.public_url {
        Some(u) => u.clone(),
        None => {
            let path = if api.path == "/" {
                ""
            } else {
                api.path.as_str()
            };
            format!("{}{path}", ctx.config().gateway.default_base_url())
        }
    };
    PublicUrl::parse(&url).ok()
}

/// The plans feature (stateless per worker: its state lives in each snapshot's `ApiState`).
#[derive(Default)]
pub struct Auth;

impl Phases for Auth {
    /// Requests under `/.well-known/oauth-protected-resource` about one of the APIs.
    async fn route(&self, ctx: &mut RequestCtx, req: Request<'_>) -> Step {
        plan_io::well_known(ctx, req.buf, req.head).await
    }

    async fn authenticate(&self, ctx: &mut RequestCtx, req: Request<'_>) -> Step {
        plan_io::authenticate(ctx, req.buf, req.head).await
    }

    /// With plans the gateway is the resource server: the client's credentials stay here, and
    /// the upstream gets its own session id back.
    fn upstream_request<'c>(&self, ctx: &'c RequestCtx, edits: &mut UpstreamEdits<'c>) {
        if let Some(auth) = api_auth(ctx) {
            edits
                .remove
                .extend(auth.credential_headers.iter().map(String::as_str));
        }
        if let Some(id) = ctx.upstream_session.as_deref() {
            edits.session_id = Some(id.as_bytes());
        }
    }

    fn response_head(&self, ctx: &mut RequestCtx, resp: &mut Response<'_>) {
        if let Some(new_head) = rewritten_response_head(ctx, resp.buf, resp.head) {
            resp.replace_head(new_head);
        }
    }
}
