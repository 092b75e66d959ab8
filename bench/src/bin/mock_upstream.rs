//! mock_upstream: a fast mock MCP server (Streamable HTTP) for the load harness.
//!
//! One monoio runtime per thread, each with its own SO_REUSEPORT listener, so the fixture is never
//! the bottleneck. Answers `initialize` (with an `Mcp-Session-Id`), notifications with 202,
//! `tools/list` with a generated catalogue, `tools/call` as JSON or as a short chunked SSE stream
//! (tools named `sse_*`, or every call with `--call-mode sse`), GET as a long-lived SSE stream with
//! periodic keep-alive comments, DELETE with 200. `--extra-header` adds fields to every answer
//! (e.g. the `Server`, `Date` and `Connection: keep-alive` nginx sends), to tell what a proxy pays
//! for an origin's headers apart from everything else that differs between origins.

use std::cell::Cell;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mcpgate_bench::http::{parse_request_head, write_chunk, Method, LAST_CHUNK};
use mcpgate_bench::mcp::{parse_envelope, MockAnswers, SSE_TOOL_PREFIX};
use mcpgate_bench::net::{BufConn, ConnError};
use mcpgate_bench::runtime::{block_on, raise_nofile_limit, Driver};
use monoio::io::AsyncReadRent;
use monoio::net::{ListenerOpts, TcpListener};

#[derive(Parser, Debug, Clone)]
#[command(about = "Mock MCP upstream (Streamable HTTP) for the mcpgate load harness")]
struct Args {
    /// Address to listen on (port 0 picks one; it is printed).
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// Runtimes (threads), each with its own SO_REUSEPORT listener. Default: available cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Number of tools in the `tools/list` answer.
    #[arg(long, default_value_t = 100)]
    tools: usize,
    /// Length of the text content of a `tools/call` result, bytes.
    #[arg(long, default_value_t = 256)]
    result_bytes: usize,
    /// How `tools/call` is answered (tools named `sse_*` always get SSE).
    #[arg(long, default_value = "json", value_parser = ["json", "sse"])]
    call_mode: String,
    /// Interval of `: keepalive` comments on GET streams, milliseconds.
    #[arg(long, default_value_t = 5000)]
    sse_keepalive_ms: u64,
    /// auto (io_uring, else epoll), uring or epoll.
    #[arg(long, default_value = "auto")]
    driver: Driver,
    /// A header field "Name: value" added to every response head (repeatable).
    #[arg(long = "extra-header")]
    extra_headers: Vec<String>,
}

struct Ctx {
    answers: MockAnswers,
    /// `--extra-header` lines, each ending in CRLF.
    extra: Vec<u8>,
    /// The head of an SSE answer, extra fields included.
    sse_head: Vec<u8>,
    call_sse: bool,
    keepalive: Duration,
    thread: usize,
    sessions: Cell<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_nofile_limit(65_536);
    let threads = args
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let answers = Arc::new(MockAnswers::new(args.tools, args.result_bytes));
    let mut addr = args.listen;
    let mut handles = Vec::new();
    for thread in 0..threads {
        let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<SocketAddr>>();
        let answers = Arc::clone(&answers);
        let args = args.clone();
        let bind = addr;
        handles.push(std::thread::spawn(move || {
            let extra = extra_lines(&args.extra_headers);
            let mut sse_head = SSE_HEAD_START.to_vec();
            sse_head.extend_from_slice(&extra);
            sse_head.extend_from_slice(b"\r\n");
            let ctx = Rc::new(Ctx {
                answers: (*answers).clone(),
                extra,
                sse_head,
                call_sse: args.call_mode == "sse",
                keepalive: Duration::from_millis(args.sse_keepalive_ms.max(1)),
                thread,
                sessions: Cell::new(0),
            });
            let run = block_on(args.driver, async move {
                let listener =
                    match TcpListener::bind_with_config(bind, &ListenerOpts::new().backlog(8192)) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                let _ = tx.send(listener.local_addr());
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            let ctx = Rc::clone(&ctx);
                            monoio::spawn(async move {
                                let _ = stream.set_nodelay(true);
                                let _ = serve(BufConn::new(stream), ctx).await;
                            });
                        }
                        // Out of fds or similar: back off instead of spinning.
                        Err(_) => monoio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            });
            if let Err(e) = run {
                eprintln!("mock_upstream: thread {thread}: runtime failed: {e}");
            }
        }));
        // Later threads bind the port the first one got, so `--listen :0` works.
        addr = rx
            .recv()
            .context("listener thread died")?
            .with_context(|| format!("binding {bind}"))?;
    }
    eprintln!(
        "mock_upstream: listening on {addr} (threads {threads}, driver {}, tools {}, result {} B)",
        args.driver.effective(),
        args.tools,
        args.result_bytes
    );
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// An SSE answer's head without its blank line (extra fields go after it).
const SSE_HEAD_START: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n";

/// `--extra-header` values as header lines; malformed ones (no colon) are skipped with a note.
fn extra_lines(headers: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for h in headers {
        match h.split_once(':') {
            Some((name, value)) => {
                let _ = write!(out, "{}: {}\r\n", name.trim(), value.trim());
            }
            None => eprintln!("mock_upstream: ignoring --extra-header {h:?} (no colon)"),
        }
    }
    out
}

fn json_head(out: &mut Vec<u8>, ctx: &Ctx, status: &str, body_len: usize, session: Option<&str>) {
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n"
    );
    if let Some(s) = session {
        let _ = write!(out, "Mcp-Session-Id: {s}\r\n");
    }
    out.extend_from_slice(&ctx.extra);
    out.extend_from_slice(b"\r\n");
}

fn empty(out: &mut Vec<u8>, ctx: &Ctx, status: &str) {
    let _ = write!(out, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n");
    out.extend_from_slice(&ctx.extra);
    out.extend_from_slice(b"\r\n");
}

/// Serves one keep-alive connection until the peer closes or misbehaves.
async fn serve(mut conn: BufConn, ctx: Rc<Ctx>) -> Result<(), ConnError> {
    let mut body = Vec::with_capacity(1024);
    let mut payload = Vec::with_capacity(32 * 1024);
    let mut out = Vec::with_capacity(32 * 1024);
    loop {
        let head = conn.read_head(parse_request_head).await?;
        body.clear();
        if !conn
            .read_body(head.len, head.framing, Some(&mut body))
            .await?
        {
            return Ok(());
        }
        out.clear();
        match head.method {
            Method::Get if head.accepts_sse => return idle_stream(conn, &ctx).await,
            Method::Get => empty(&mut out, &ctx, "405 Method Not Allowed"),
            Method::Delete => empty(&mut out, &ctx, "200 OK"),
            Method::Other => empty(&mut out, &ctx, "405 Method Not Allowed"),
            Method::Post => {
                if let Some(second) = answer_post(&ctx, &body, &mut payload, &mut out) {
                    // SSE answer: the progress event goes out on its own, as a real tool would.
                    let (res, first) = conn.write_all(std::mem::take(&mut out)).await;
                    out = first;
                    res?;
                    out.clear();
                    out.extend_from_slice(&second);
                }
            }
        }
        let (res, written) = conn.write_all(std::mem::take(&mut out)).await;
        out = written;
        res?;
        if head.close {
            return Ok(());
        }
    }
}

/// Writes the answer to one POST into `out`. For an SSE answer, returns the second part (result
/// event and last chunk), to be written after `out`.
fn answer_post(
    ctx: &Ctx,
    body: &[u8],
    payload: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    let Some(env) = parse_envelope(body) else {
        let msg = br#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"}}"#;
        json_head(out, ctx, "400 Bad Request", msg.len(), None);
        out.extend_from_slice(msg);
        return None;
    };
    let Some(id) = env.id.as_deref() else {
        empty(out, ctx, "202 Accepted");
        return None;
    };
    payload.clear();
    let mut session = None;
    match env.method.as_deref() {
        Some("initialize") => {
            let n = ctx.sessions.get() + 1;
            ctx.sessions.set(n);
            session = Some(format!("mock-{}-{n}", ctx.thread));
            MockAnswers::write_initialize(id.as_bytes(), payload);
        }
        Some("tools/list") => ctx.answers.write_list(id.as_bytes(), payload),
        Some("tools/call") => {
            let wants_sse = ctx.call_sse
                || env
                    .tool_name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(SSE_TOOL_PREFIX));
            if wants_sse {
                out.extend_from_slice(&ctx.sse_head);
                let mut event = b"event: message\ndata: ".to_vec();
                MockAnswers::write_progress(
                    env.progress_token.as_deref().unwrap_or("\"p\""),
                    &mut event,
                );
                event.extend_from_slice(b"\n\n");
                write_chunk(out, &event);
                event.clear();
                event.extend_from_slice(b"event: message\ndata: ");
                ctx.answers.write_call(id.as_bytes(), &mut event);
                event.extend_from_slice(b"\n\n");
                let mut second = Vec::with_capacity(event.len() + 16);
                write_chunk(&mut second, &event);
                second.extend_from_slice(LAST_CHUNK);
                return Some(second);
            }
            ctx.answers.write_call(id.as_bytes(), payload);
        }
        Some("ping") => {
            let _ = write!(payload, r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#);
        }
        _ => {
            let _ = write!(
                payload,
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"Method not found"}}}}"#
            );
        }
    }
    json_head(out, ctx, "200 OK", payload.len(), session.as_deref());
    out.extend_from_slice(payload);
    None
}

/// A standalone GET stream: held open with periodic keep-alive comments until the client leaves.
async fn idle_stream(mut conn: BufConn, ctx: &Ctx) -> Result<(), ConnError> {
    let mut out = ctx.sse_head.clone();
    write_chunk(&mut out, b": stream open\n\n");
    let (res, _) = conn.write_all(out).await;
    res?;
    let mut keepalive = Vec::new();
    write_chunk(&mut keepalive, b": keepalive\n\n");
    loop {
        // Reading while waiting notices a client that left; the timeout paces the comments.
        match monoio::time::timeout(ctx.keepalive, conn.stream.read(Vec::with_capacity(64))).await {
            Ok((Ok(0), _)) | Ok((Err(_), _)) => return Ok(()),
            Ok((Ok(_), _)) => {}
            Err(_) => {
                let (res, back) = conn.write_all(keepalive).await;
                keepalive = back;
                res?;
            }
        }
    }
}
