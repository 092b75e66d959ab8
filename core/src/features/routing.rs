//! Routing as a feature of the request path: the longest entrypoint prefix picks the API (a path
//! with dot segments is refused, a path no API serves is 404), the legacy HTTP+SSE transport's
//! `endpoint` event is pointed back at the gateway, and the exchange's one debug line. The
//! request-target rewrite itself is `crate::route` (pure), applied by the engine's forward.

use std::borrow::Cow;

use mcpgate_codec::http::HttpError;

use crate::context::RequestCtx;
use crate::errors::ErrorKind;
use crate::phases::{Event, EventStep, Phases, Request, Step};
use crate::route;

#[derive(Default)]
pub struct Routing;

impl Phases for Routing {
    async fn route(&self, ctx: &mut RequestCtx, req: Request<'_>) -> Step {
        if ctx.api.is_some() {
            // Routed by an earlier feature (a well-known path about an API).
            return Step::Continue;
        }
        let target = route::origin_form(req.head.target(req.buf));
        let path = target.split(|&b| b == b'?').next().unwrap_or_default();
        if route::has_dot_segment(path) {
            return Step::error(HttpError::Malformed("dot segment in the request path"));
        }
        match route::route(&ctx.config().apis, path) {
            Some(i) => {
                ctx.api = Some(i);
                Step::Continue
            }
            None => Step::error(ErrorKind::NotFound),
        }
    }

    /// Legacy HTTP+SSE (2024-11-05): the POST endpoint the upstream announces must point at the
    /// gateway, under the API's entrypoint.
    fn event_filter(&self, ctx: &mut RequestCtx, event: &mut Event<'_>) -> EventStep {
        if event.event_type != Some(b"endpoint") {
            return EventStep::Relay;
        }
        if let Some(api) = ctx.api() {
            if let Some(url) = route::rewrite_endpoint(&api.path, &api.upstream.path, &event.data) {
                event.data = Cow::Owned(url);
            }
        }
        EventStep::Relay
    }

    fn record(&self, ctx: &mut RequestCtx) {
        if crate::log::enabled(crate::log::Level::Debug) {
            let rpc = ctx
                .rpc
                .as_ref()
                .and_then(|r| r.method.as_deref())
                .unwrap_or("-");
            crate::debug!(
                "{} {} -> {}{} rpc={} {}B {:?}",
                ctx.method.as_str(),
                ctx.api().map_or("(no api)", |a| a.path.as_str()),
                ctx.status,
                if ctx.event_stream { " (sse)" } else { "" },
                rpc,
                ctx.bytes_to_client,
                ctx.started.elapsed()
            );
        }
    }
}
