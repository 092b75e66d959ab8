//! loadgen: MCP-shaped HTTP/1.1 load generator (monoio + hdrhistogram).
//!
//! Closed loop (each keep-alive connection sends its next request when the previous answer is
//! complete: maximum throughput) or open loop (`--rate`: requests are scheduled at fixed intended
//! times and latency is counted from the intended time whenever the connection was still busy, so
//! a stalled server cannot hide its stall: no coordinated omission). `idle-sse` holds many GET SSE
//! streams open instead. Optionally samples CPU/RSS of other processes (`--watch`) over exactly
//! the measured window. Prints one JSON object (`mcpgate_bench::report::LoadReport`) on stdout.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use mcpgate_bench::client::{self, build_request, connect, exchange, request_prefix, Target};
use mcpgate_bench::http::parse_response_head;
use mcpgate_bench::mcp::{
    count_list_entries, list_entry_finder, write_request_body, Scenario, ToolCall, PROTOCOL_VERSION,
};
use mcpgate_bench::net::{BufConn, ConnError};
use mcpgate_bench::procstat::{self, Sample};
use mcpgate_bench::report::{IdleStreams, LoadReport, Percentiles};
use mcpgate_bench::runtime::{block_on, raise_nofile_limit, Driver};

#[derive(Parser, Debug, Clone)]
#[command(
    about = "MCP load generator: closed loop, open loop (no coordinated omission), idle SSE streams"
)]
struct Args {
    /// Target MCP endpoint, e.g. http://127.0.0.1:8080/mcp-proxy
    #[arg(long)]
    url: String,
    /// call-json, call-sse, list, list-acl, list-acl-jwt or idle-sse (the list-acl ones send
    /// `tools/list` like list; the gateway's config and the `--header` make the difference)
    #[arg(long, default_value = "call-json")]
    scenario: Scenario,
    /// Keep-alive connections (idle-sse: number of streams).
    #[arg(long, default_value_t = 32)]
    connections: u64,
    /// Runtimes (threads) sharing the connections.
    #[arg(long, default_value_t = 1)]
    threads: u64,
    /// Measured seconds (idle-sse: seconds the streams are held once all are open).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before the measured window starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Stop early after this many measured requests (0 = no cap).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// Open loop at this many requests/s in total; absent = closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Per-request timeout, milliseconds (idle-sse: for the response head).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Processes to measure over the window: NAME=PID[,PID...] (repeatable).
    #[arg(long = "watch")]
    watch: Vec<String>,
    /// Extra request header "Name: value" on every request (e.g. Authorization for a JWT plan).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// List scenarios: every `tools/list` answer must list exactly this many tools, else it counts
    /// as an error (proves an ACL really filtered, or that a blind proxy did not).
    #[arg(long)]
    expect_list_entries: Option<usize>,
    /// Skip `initialize` (no Mcp-Session-Id header).
    #[arg(long)]
    no_session: bool,
    /// Call scenarios: the tool to call instead of the mock's (`tool_7`, `sse_tool_7`), e.g.
    /// `echo` on server-everything.
    #[arg(long)]
    tool: Option<String>,
    /// Call scenarios with `--tool`: its arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    arguments: String,
    /// auto (io_uring, else epoll), uring or epoll.
    #[arg(long, default_value = "auto")]
    driver: Driver,
}

/// Timing and stop signal shared by the measuring thread and the load threads.
struct Shared {
    warm_end: Instant,
    end: Instant,
    stop: AtomicBool,
    measured: AtomicU64,
    cap: u64,
    /// idle-sse: set by each load thread once its streams are opened (or failed).
    opened_threads: AtomicU64,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Per-thread results, merged at the end.
struct ThreadStats {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    streams: IdleStreams,
}

impl ThreadStats {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency: Histogram::new_with_bounds(1, 120_000_000, 3)?,
            service: Histogram::new_with_bounds(1, 120_000_000, 3)?,
            requests: 0,
            errors: 0,
            first_error: None,
            streams: IdleStreams::default(),
        })
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

struct ConnPlan {
    /// Global index of the connection, for staggering open-loop schedules.
    index: u64,
    /// Open loop: interval between this connection's intended sends.
    interval: Option<Duration>,
}

/// What every connection task of one thread shares.
struct LoopCtx {
    scenario: Scenario,
    target: Rc<Target>,
    prefix: Rc<Vec<u8>>,
    shared: Arc<Shared>,
    stats: Rc<RefCell<ThreadStats>>,
    start: Instant,
    timeout: Duration,
    rate: Option<f64>,
    /// Tools every list answer must have (`--expect-list-entries`).
    expect_entries: Option<usize>,
    entry_finder: memchr::memmem::Finder<'static>,
    /// `--tool`: what a call scenario calls instead of the mock's tool.
    call: Option<ToolCall>,
}

async fn request_loop(plan: ConnPlan, ctx: Rc<LoopCtx>) {
    let LoopCtx {
        scenario,
        ref target,
        ref prefix,
        ref shared,
        ref stats,
        start,
        timeout,
        rate,
        expect_entries,
        ref entry_finder,
        ref call,
    } = *ctx;
    let mut conn: Option<BufConn> = None;
    let mut body = Vec::with_capacity(512);
    let mut req = Vec::with_capacity(1024);
    let mut payload = Vec::with_capacity(32 * 1024);
    let mut id = plan.index << 40;
    // Open loop: the first send of connection k is at k/rate, then every `interval`.
    let mut intended = start + Duration::from_secs_f64(rate.map_or(0.0, |r| plan.index as f64 / r));
    let mut last_done = start;
    while !shared.stopped() && Instant::now() < shared.end {
        if plan.interval.is_some() {
            let now = Instant::now();
            if intended > now {
                monoio::time::sleep_until(monoio::time::Instant::from_std(intended)).await;
            }
        }
        let c = match conn.take() {
            Some(c) => c,
            None => match connect(target.addr).await {
                Ok(c) => c,
                Err(e) => {
                    if Instant::now() >= shared.warm_end {
                        stats.borrow_mut().error(format!("connect: {e}"));
                    }
                    monoio::time::sleep(Duration::from_millis(10)).await;
                    if let Some(interval) = plan.interval {
                        intended += interval;
                    }
                    continue;
                }
            },
        };
        let mut c = c;
        id += 1;
        write_request_body(scenario, id, call.as_ref(), &mut body);
        build_request(prefix, &body, &mut req);
        let sent = Instant::now();
        let outcome = monoio::time::timeout(
            timeout,
            exchange(&mut c, std::mem::take(&mut req), &mut payload),
        )
        .await;
        let done = Instant::now();
        let measured = done >= shared.warm_end && !shared.stopped();
        let verdict = match outcome {
            Err(_) => Err("timeout".to_owned()),
            Ok((res, back)) => {
                req = back;
                match res {
                    Err(e) => Err(e.to_string()),
                    Ok((head, reusable)) => {
                        if reusable {
                            conn = Some(c);
                        }
                        if head.status != 200 {
                            Err(format!(
                                "HTTP {}: {}",
                                head.status,
                                String::from_utf8_lossy(&payload[..payload.len().min(200)])
                            ))
                        } else if memchr::memmem::find(&payload, b"\"result\"").is_none() {
                            Err(format!(
                                "answer without a result: {}",
                                String::from_utf8_lossy(&payload[..payload.len().min(200)])
                            ))
                        } else if let Some(want) = expect_entries.filter(|_| scenario.is_list()) {
                            let got = count_list_entries(entry_finder, &payload);
                            if got == want {
                                Ok(())
                            } else {
                                Err(format!(
                                    "tools/list answer lists {got} tools, expected {want}"
                                ))
                            }
                        } else {
                            Ok(())
                        }
                    }
                }
            }
        };
        if measured {
            let mut st = stats.borrow_mut();
            match verdict {
                Ok(()) => {
                    // Busy at the intended time: the server made us late, so the wait counts.
                    // Idle: only our timer was late, which is not the server's doing.
                    let from = match plan.interval {
                        Some(_) if last_done > intended => intended,
                        _ => sent,
                    };
                    let _ = st.latency.record(micros(done - from));
                    let _ = st.service.record(micros(done - sent));
                    st.requests += 1;
                    let n = shared.measured.fetch_add(1, Ordering::Relaxed) + 1;
                    if shared.cap > 0 && n >= shared.cap {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) => st.error(e),
            }
        }
        last_done = done;
        if let Some(interval) = plan.interval {
            intended += interval;
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One idle GET stream: open it, then read keep-alives until told to stop.
async fn idle_stream(
    target: Rc<Target>,
    session: Option<Rc<str>>,
    shared: Arc<Shared>,
    stats: Rc<RefCell<ThreadStats>>,
    pending: Rc<Cell<u64>>,
    timeout: Duration,
) {
    let opened = async {
        let mut conn = connect(target.addr).await?;
        let mut req = Vec::new();
        let _ = write!(
            req,
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n",
            target.path, target.host
        );
        if let Some(s) = &session {
            let _ = write!(req, "Mcp-Session-Id: {s}\r\n");
        }
        req.extend_from_slice(target.extra_headers.as_bytes());
        req.extend_from_slice(b"\r\n");
        let (res, _) = conn.write_all(req).await;
        res?;
        let head = conn.read_head(|b| parse_response_head(b, false)).await?;
        Ok::<_, ConnError>((conn, head))
    };
    let outcome = monoio::time::timeout(timeout, opened).await;
    pending.set(pending.get().saturating_sub(1));
    let mut conn = match outcome {
        Ok(Ok((conn, head))) if head.status == 200 && head.is_sse => {
            stats.borrow_mut().streams.opened += 1;
            let n = head.len;
            let mut conn = conn;
            conn.consume(n);
            conn
        }
        Ok(Ok((_, head))) => {
            let mut st = stats.borrow_mut();
            st.streams.failed += 1;
            st.error(format!(
                "GET stream answered HTTP {} (sse: {})",
                head.status, head.is_sse
            ));
            return;
        }
        Ok(Err(e)) => {
            let mut st = stats.borrow_mut();
            st.streams.failed += 1;
            st.error(format!("GET stream: {e}"));
            return;
        }
        Err(_) => {
            let mut st = stats.borrow_mut();
            st.streams.failed += 1;
            st.error("GET stream: timeout".to_owned());
            return;
        }
    };
    // Counted as they arrive: at the end of the hold the process exits with the streams open.
    stats.borrow_mut().streams.keepalive_bytes += conn.pending().len() as u64;
    let n = conn.pending().len();
    conn.consume(n);
    loop {
        match conn.fill().await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let n = conn.pending().len();
                stats.borrow_mut().streams.keepalive_bytes += n as u64;
                conn.consume(n);
            }
        }
    }
    if !shared.stopped() {
        stats.borrow_mut().streams.dropped += 1;
    }
}

/// Streams opened at once: more would overflow accept backlogs and stall in SYN retries.
const OPEN_BATCH: u64 = 256;

async fn run_thread(
    args: Args,
    thread: u64,
    target: Rc<Target>,
    session: Option<String>,
    shared: Arc<Shared>,
    start: Instant,
) -> anyhow::Result<ThreadStats> {
    let stats = Rc::new(RefCell::new(ThreadStats::new()?));
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let mine: Vec<u64> = (0..args.connections)
        .filter(|c| c % args.threads == thread)
        .collect();
    if args.scenario == Scenario::IdleSse {
        let session: Option<Rc<str>> = session.map(Rc::from);
        let pending = Rc::new(Cell::new(0u64));
        for _ in &mine {
            while pending.get() >= OPEN_BATCH {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            pending.set(pending.get() + 1);
            monoio::spawn(idle_stream(
                target.clone(),
                session.clone(),
                shared.clone(),
                stats.clone(),
                pending.clone(),
                timeout,
            ));
        }
        while pending.get() > 0 {
            monoio::time::sleep(Duration::from_millis(2)).await;
        }
        stats.borrow_mut().streams.wanted = mine.len() as u64;
        shared.opened_threads.fetch_add(1, Ordering::SeqCst);
        while !shared.stopped() {
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
    } else {
        let prefix = Rc::new(request_prefix(&target, session.as_deref()));
        let interval = args
            .rate
            .map(|r| Duration::from_secs_f64(args.connections as f64 / r.max(0.001)));
        let ctx = Rc::new(LoopCtx {
            scenario: args.scenario,
            target: target.clone(),
            prefix,
            shared: shared.clone(),
            stats: stats.clone(),
            start,
            timeout,
            rate: args.rate,
            expect_entries: args.expect_list_entries,
            entry_finder: list_entry_finder(),
            call: args.tool.clone().map(|name| ToolCall {
                name,
                arguments: args.arguments.clone(),
            }),
        });
        let mut tasks = Vec::new();
        for index in mine {
            tasks.push(monoio::spawn(request_loop(
                ConnPlan { index, interval },
                ctx.clone(),
            )));
        }
        for t in tasks {
            t.await;
        }
    }
    let st = std::mem::replace(&mut *stats.borrow_mut(), ThreadStats::new()?);
    Ok(st)
}

struct WatchGroup {
    name: String,
    pids: Vec<u32>,
}

fn parse_watch(spec: &str) -> anyhow::Result<WatchGroup> {
    let (name, pids) = spec
        .split_once('=')
        .context("--watch wants NAME=PID[,PID...]")?;
    let pids = pids
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .with_context(|| format!("bad pid {p:?} in --watch"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(WatchGroup {
        name: name.to_owned(),
        pids,
    })
}

fn sample_all(groups: &[WatchGroup]) -> anyhow::Result<Vec<Sample>> {
    groups
        .iter()
        .map(|g| {
            procstat::sample(&g.pids)
                .with_context(|| format!("reading /proc for {} {:?}", g.name, g.pids))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.threads == 0 {
        bail!("--connections and --threads must be at least 1");
    }
    if args.scenario == Scenario::IdleSse {
        let limit = raise_nofile_limit(args.connections + 1024);
        if limit < args.connections + 64 {
            bail!(
                "open-files limit is {limit}, too low for {} streams (raise ulimit -n)",
                args.connections
            );
        }
    }
    let mut target = Target::parse(&args.url)?;
    for h in &args.headers {
        target.add_header(h).context("--header")?;
    }
    if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&args.arguments).is_err()
    {
        bail!("--arguments {:?} is not a JSON object", args.arguments);
    }
    let groups = args
        .watch
        .iter()
        .map(|w| parse_watch(w))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let session = if args.no_session {
        None
    } else {
        client::open_session(args.driver, &target, Duration::from_millis(args.timeout_ms))?
    };

    let start = Instant::now();
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let measure = Duration::from_secs_f64(args.duration.max(0.0));
    let idle = args.scenario == Scenario::IdleSse;
    let shared = Arc::new(Shared {
        warm_end: if idle { start } else { start + warmup },
        // Idle streams are held until the measuring thread says stop.
        end: if idle {
            start + Duration::from_secs(24 * 3600)
        } else {
            start + warmup + measure
        },
        stop: AtomicBool::new(false),
        measured: AtomicU64::new(0),
        cap: args.requests,
        opened_threads: AtomicU64::new(0),
    });
    let mut handles = Vec::new();
    for thread in 0..args.threads {
        let (args, shared, session) = (args.clone(), shared.clone(), session.clone());
        let target = target.clone();
        handles.push(std::thread::spawn(move || {
            let driver = args.driver;
            block_on(
                driver,
                run_thread(args, thread, Rc::new(target), session, shared, start),
            )
        }));
    }

    let mut open_seconds = 0.0;
    if idle {
        let open_deadline = Instant::now() + Duration::from_secs(120);
        while shared.opened_threads.load(Ordering::SeqCst) < args.threads
            && Instant::now() < open_deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        open_seconds = start.elapsed().as_secs_f64();
        // Let the proxies settle after the connection storm before measuring "idle".
        std::thread::sleep(Duration::from_millis(500));
    } else {
        std::thread::sleep(shared.warm_end.saturating_duration_since(Instant::now()));
    }
    let window_start = Instant::now();
    let before = sample_all(&groups)?;
    let window_end_planned = window_start + measure;
    while !shared.stopped() && Instant::now() < window_end_planned {
        std::thread::sleep(
            Duration::from_millis(2)
                .min(window_end_planned.saturating_duration_since(Instant::now())),
        );
    }
    let after = sample_all(&groups)?;
    shared.stop.store(true, Ordering::SeqCst);
    let window = window_start.elapsed();

    let mut total = ThreadStats::new()?;
    for h in handles {
        let st = h
            .join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))???;
        total.latency.add(&st.latency)?;
        total.service.add(&st.service)?;
        total.requests += st.requests;
        total.errors += st.errors;
        if total.first_error.is_none() {
            total.first_error = st.first_error;
        }
        let s = &mut total.streams;
        s.wanted += st.streams.wanted;
        s.opened += st.streams.opened;
        s.failed += st.streams.failed;
        s.dropped += st.streams.dropped;
        s.keepalive_bytes += st.streams.keepalive_bytes;
    }
    total.streams.open_seconds = open_seconds;

    let window_s = window.as_secs_f64().max(1e-9);
    let mut watched = BTreeMap::new();
    for ((g, b), a) in groups.iter().zip(&before).zip(&after) {
        watched.insert(
            g.name.clone(),
            procstat::watched(&g.pids, b, a, total.requests, window_s, !idle),
        );
    }
    let open_loop = args.rate.is_some();
    let report = LoadReport {
        scenario: args.scenario.to_string(),
        mode: if idle {
            "idle"
        } else if open_loop {
            "open"
        } else {
            "closed"
        }
        .to_owned(),
        url: args.url.clone(),
        driver: args.driver.effective().to_owned(),
        connections: args.connections,
        threads: args.threads,
        rate: args.rate,
        window_seconds: window_s,
        requests: total.requests,
        errors: total.errors,
        first_error: total.first_error,
        rps: total.requests as f64 / window_s,
        latency_us: Percentiles::from_histogram(&total.latency),
        service_us: open_loop.then(|| Percentiles::from_histogram(&total.service)),
        watched,
        streams: idle.then_some(total.streams),
    };
    println!("{}", serde_json::to_string(&report)?);
    // Idle streams are still open in the load threads; leaving now closes them all at once.
    std::process::exit(0);
}
