//! The admin listener, on its own thread with blocking I/O (it serves operators and probes, not
//! traffic): `GET /healthz` (the process is up), `GET /readyz` (accepting traffic; 503 while
//! starting or draining), and the observability routes of `crate::observe::handle_admin`
//! (`/metrics`, `/api/logs`, `/api/summary`, the console at `/`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use mcpgate_codec::http::RequestHead;

use super::Shared;
use crate::errors::write_response;
use crate::observe::{self, ObserveHub};

pub fn spawn(listener: TcpListener, shared: Arc<Shared>, hub: ObserveHub) -> std::io::Result<()> {
    listener.set_nonblocking(false)?;
    std::thread::Builder::new()
        .name("mcpgate-admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => serve(stream, &shared, &hub),
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
fn serve(mut stream: TcpStream, shared: &Shared, hub: &ObserveHub) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
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
    // The whole request-target: the log API reads its filters from the query.
    let method = std::str::from_utf8(head.method(&buf)).unwrap_or("");
    let target = std::str::from_utf8(head.target(&buf)).unwrap_or("/");
    // Admin authentication (crate::admin_auth): everything but the probes needs the token.
    let lookup = |name: &str| head.header(&buf, name);
    let auth = &shared.config().gateway.admin_auth;
    if let Some(reply) = crate::admin_auth::gate(method, target, &lookup, auth) {
        let _ = stream.write_all(&reply);
        return;
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
