//! The admin listener, on its own threads with blocking I/O (it serves operators and probes, not
//! traffic): `GET /healthz` (the process is up), `GET /readyz` (accepting traffic; 503 while
//! starting or draining), the observability routes of `crate::observe::handle_admin`
//! (`/metrics`, `/api/logs`, `/api/summary`, the console at `/`) and the management API of
//! `crate::manage` (`/api/manage/...`, `/api/openapi.json`, `/api/session`).
//!
//! One thread per connection (up to [`MAX_THREADS`], then served inline): a management call may
//! wait seconds on an upstream (`.../live`) and must not hold up `/healthz`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcpgate_codec::http::{RequestBody, RequestHead};

use super::Shared;
use crate::errors::write_response;
use crate::manage::Manager;
use crate::observe::{self, ObserveHub};

/// Connections served at once on their own thread.
const MAX_THREADS: usize = 32;
/// Largest request body (a management write: one API as JSON).
const MAX_BODY: usize = 1024 * 1024;

pub fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
    hub: ObserveHub,
    manager: Arc<Manager>,
) -> std::io::Result<()> {
    listener.set_nonblocking(false)?;
    let busy = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("mcpgate-admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if busy.fetch_add(1, Ordering::AcqRel) >= MAX_THREADS {
                            busy.fetch_sub(1, Ordering::AcqRel);
                            serve(stream, &shared, &hub, &manager);
                            continue;
                        }
                        let (shared, hub, manager, busy2) =
                            (shared.clone(), hub.clone(), manager.clone(), busy.clone());
                        let spawned = std::thread::Builder::new()
                            .name("mcpgate-admin-conn".into())
                            .spawn(move || {
                                serve(stream, &shared, &hub, &manager);
                                busy2.fetch_sub(1, Ordering::AcqRel);
                            });
                        if let Err(e) = spawned {
                            busy.fetch_sub(1, Ordering::AcqRel);
                            crate::warn!("admin: cannot start a thread: {e}");
                        }
                    }
                    Err(e) => {
                        crate::warn!("admin: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })?;
    Ok(())
}

/// One request per connection: probes do not need keep-alive.
fn serve(mut stream: TcpStream, shared: &Shared, hub: &ObserveHub, manager: &Manager) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head = loop {
        match RequestHead::parse(&buf) {
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() < 8192 => {}
            _ => return respond_raw(&mut stream, 400, "text/plain", b"bad request\n"),
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    };
    // The body (management writes): Content-Length only, bounded.
    let body_len = match head.body_framing(&buf) {
        Ok(RequestBody::None) => 0,
        Ok(RequestBody::Length(n)) if n as usize <= MAX_BODY => n as usize,
        Ok(RequestBody::Length(_)) => {
            return respond_raw(
                &mut stream,
                413,
                "application/json",
                b"{\"error\":\"body too large\"}",
            )
        }
        Ok(RequestBody::Chunked) => {
            return respond_raw(
                &mut stream,
                411,
                "application/json",
                b"{\"error\":\"send the body with Content-Length\"}",
            )
        }
        Err(_) => return respond_raw(&mut stream, 400, "text/plain", b"bad request\n"),
    };
    while buf.len() < head.head_len + body_len {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    let body = buf
        .get(head.head_len..head.head_len + body_len)
        .unwrap_or_default();
    // The whole request-target: the log API reads its filters from the query.
    let method = std::str::from_utf8(head.method(&buf)).unwrap_or("");
    let target = std::str::from_utf8(head.target(&buf)).unwrap_or("/");
    // Admin authentication (crate::admin_auth): everything but the probes needs the token.
    let lookup = |name: &str| head.header(&buf, name);
    let config = shared.config();
    let auth = &config.gateway.admin_auth;
    if let Some(reply) = crate::admin_auth::gate(method, target, &lookup, auth) {
        let _ = stream.write_all(&reply);
        return;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path.starts_with("/api/") {
        // The gate admitted it, so this finds the credential; a session that expired in between
        // is refused rather than recorded as anyone else.
        let Some(credential) = crate::admin_auth::Credential::of(&lookup, auth) else {
            return respond_raw(
                &mut stream,
                401,
                "application/json",
                b"{\"error\":\"the session expired; sign in again\"}",
            );
        };
        let request = crate::manage::Request {
            method,
            path,
            query,
            body,
            if_match: lookup("if-match").and_then(|v| std::str::from_utf8(v).ok()),
            credential: &credential,
        };
        if let Some((status, json)) = manager.handle(&request, &config) {
            let body = serde_json::to_vec(&json).unwrap_or_default();
            let body = if method == "HEAD" { &[][..] } else { &body[..] };
            return respond_raw(&mut stream, status, "application/json", body);
        }
    }
    if let Some((status, content_type, body)) = observe::handle_admin(method, target, hub) {
        let body = if method == "HEAD" { &[][..] } else { &body[..] };
        return respond_raw(&mut stream, status, content_type, body);
    }
    let (status, body): (u16, &[u8]) = respond(head.method(&buf), head.path(&buf), shared);
    respond_raw(&mut stream, status, "text/plain; charset=utf-8", body);
}

fn respond(method: &[u8], path: &[u8], shared: &Shared) -> (u16, &'static [u8]) {
    if method != b"GET" && method != b"HEAD" {
        return (405, b"method not allowed\n");
    }
    match path {
        b"/healthz" => (200, b"ok\n"),
        b"/readyz" if shared.ready() => (200, b"ready\n"),
        b"/readyz" => (503, b"not ready\n"),
        _ => (404, b"not found\n"),
    }
}

fn respond_raw(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let mut out = Vec::with_capacity(128 + body.len());
    write_response(status, content_type, body, true, &mut out);
    let _ = stream.write_all(&out);
}
