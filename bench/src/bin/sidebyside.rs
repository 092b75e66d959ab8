//! sidebyside: one command that measures the same MCP workload direct to the mock upstream,
//! through mcpgate and through nginx (a blind keep-alive reverse proxy), in one run, and prints a
//! table and writes JSON of the medians over several repetitions. `--smoke` runs every leg
//! briefly (for CI) and fails loudly when a leg cannot run. Method: see bench/README.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use mcpgate_bench::mcp::Scenario;
use mcpgate_bench::procstat;
use mcpgate_bench::report::{median, LoadReport};
use mcpgate_bench::runtime::raise_nofile_limit;
use serde::Serialize;

#[derive(Parser, Debug, Clone, Serialize)]
#[command(about = "Side-by-side load harness: direct vs mcpgate vs nginx, one run")]
struct Args {
    /// CI mode: one short repetition of every leg and scenario; fails on any error.
    #[arg(long)]
    smoke: bool,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Measured seconds per load run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds before each measured run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Keep-alive client connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: u64,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    loadgen_threads: u64,
    /// Worker threads of mcpgate = worker processes of nginx. Default: available cores.
    #[arg(long)]
    workers: Option<usize>,
    /// Threads of the mock upstream. Default: available cores.
    #[arg(long)]
    mock_threads: Option<usize>,
    /// Legs to run, comma-separated: direct, mcpgate, nginx.
    #[arg(long, default_value = "direct,mcpgate,nginx", value_delimiter = ',')]
    legs: Vec<String>,
    /// Scenarios, comma-separated: call-json, call-sse, list, idle-sse.
    #[arg(
        long,
        default_value = "call-json,call-sse,list,idle-sse",
        value_delimiter = ','
    )]
    scenarios: Vec<Scenario>,
    /// The mcpgate binary. Default: `mcpgate` next to this binary (same target dir).
    #[arg(long)]
    mcpgate: Option<PathBuf>,
    /// mcpgate configuration template (hook for ACL / JWT runs): `{upstream}` in it is replaced by
    /// the mock's URL; it must route /mcp-proxy. Without it mcpgate runs `--upstream ... --path /mcp-proxy`.
    #[arg(long)]
    mcpgate_config: Option<PathBuf>,
    /// Extra request header "Name: value" sent on every leg (e.g. `Authorization: Bearer ...`).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Niceness for the harness and everything it starts (e.g. -10 on a machine shared with
    /// builds: lowers scheduling noise; needs root).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    nice: i32,
    /// Pin with taskset: the proxy on CPU 1, the mock and the load generator on CPU 0 (pair it with
    /// `--workers 1`). Default: nothing pinned, everything shares all cores.
    #[arg(long)]
    pin: bool,
    /// `--driver` passed to mcpgate (auto = do not pass one).
    #[arg(long, default_value = "auto", value_parser = ["auto", "uring", "epoll"])]
    mcpgate_driver: String,
    /// The nginx binary.
    #[arg(long, default_value = "nginx")]
    nginx: PathBuf,
    /// Concurrent GET SSE streams of the idle scenario.
    #[arg(long, default_value_t = 10_000)]
    idle_streams: u64,
    /// Seconds the idle streams are held (and measured) once open.
    #[arg(long, default_value_t = 10.0)]
    idle_hold: f64,
    /// Interval of the mock's keep-alive comments on idle streams, ms.
    #[arg(long, default_value_t = 5000)]
    sse_keepalive_ms: u64,
    /// Tools in the mock's `tools/list`.
    #[arg(long, default_value_t = 100)]
    tools: usize,
    /// Text length of a `tools/call` result, bytes.
    #[arg(long, default_value_t = 256)]
    result_bytes: usize,
    /// Open-loop rate as a fraction of the slowest leg's closed-loop max (first repetition).
    #[arg(long, default_value_t = 0.5)]
    rate_fraction: f64,
    /// Fixed open-loop rate (requests/s) for every scenario instead of the fraction.
    #[arg(long)]
    rate: Option<f64>,
    /// Where the JSON goes.
    #[arg(long, default_value = "target/bench/side_by_side.json")]
    out: PathBuf,
}

impl Args {
    fn apply_smoke(&mut self) {
        self.reps = 1;
        self.duration = self.duration.min(0.5);
        self.warmup = self.warmup.min(0.2);
        self.connections = self.connections.min(8);
        self.idle_streams = self.idle_streams.min(500);
        self.idle_hold = self.idle_hold.min(0.5);
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped, so no run leaves strays.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        Ok(Self { name, child, log })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until `ready` holds, failing early (with the log) if the process exits.
    fn wait_ready(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before {what}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if ready(&log) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not {what} after {timeout:?}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} died during the run ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who a process is, for CPU placement under `--pin`.
#[derive(Clone, Copy)]
enum Role {
    Proxy,
    Fixture,
}

/// A command for `bin`, run under `taskset` on its role's CPU when `--pin` is on.
fn placed(args: &Args, role: Role, bin: &Path) -> Command {
    if !args.pin {
        return Command::new(bin);
    }
    let cpu = match role {
        Role::Proxy => "1",
        Role::Fixture => "0",
    };
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", cpu]).arg(bin);
    cmd
}

/// Fds a proxy needs besides two per stream (listeners, io_uring/epoll, admin, logs).
const PROXY_SPARE_FDS: u64 = 200;

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// One way of reaching the mock: directly or through a proxy.
struct Leg {
    name: String,
    url: String,
    /// The proxy's processes (nginx: master + workers); empty for the direct leg.
    proxy_pids: Vec<u32>,
    _procs: Vec<Proc>,
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("binary has no directory")?;
    Ok(dir.join(name))
}

fn require_file(path: &Path, hint: &str) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!("{} not found: {hint}", path.display());
    }
    Ok(())
}

fn start_mcpgate(args: &Args, dir: &Path, mock_port: u16, workers: usize) -> anyhow::Result<Leg> {
    let bin = match &args.mcpgate {
        Some(p) => p.clone(),
        None => sibling("mcpgate")?,
    };
    require_file(&bin, "build it with `cargo build -p mcpgate-core --release` (same CARGO_TARGET_DIR) or pass --mcpgate")?;
    let port = free_port()?;
    let admin = free_port()?;
    let mut cmd = placed(args, Role::Proxy, &bin);
    cmd.args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--workers", &workers.to_string()]);
    let upstream = format!("http://127.0.0.1:{mock_port}/mcp");
    match &args.mcpgate_config {
        Some(template) => {
            let text = std::fs::read_to_string(template)
                .with_context(|| format!("reading {}", template.display()))?;
            let conf = dir.join("mcpgate.toml");
            std::fs::write(&conf, text.replace("{upstream}", &upstream))?;
            cmd.arg("--config").arg(conf);
        }
        None => {
            cmd.args(["--upstream", &upstream, "--path", "/mcp-proxy"]);
        }
    }
    if args.mcpgate_driver != "auto" {
        cmd.args(["--driver", &args.mcpgate_driver]);
    }
    let mut proc = Proc::spawn("mcpgate", cmd, dir.join("mcpgate.log"))?;
    proc.wait_ready("listening", Duration::from_secs(20), |log| {
        log.contains("mcpgate: listening on")
    })?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    proc.wait_ready("accepting", Duration::from_secs(5), |_| accepts(addr))?;
    Ok(Leg {
        name: "mcpgate".into(),
        url: format!("http://127.0.0.1:{port}/mcp-proxy"),
        proxy_pids: vec![proc.pid()],
        _procs: vec![proc],
    })
}

fn nginx_conf(dir: &Path, port: u16, mock_port: u16, workers: usize, idle_streams: u64) -> String {
    let d = dir.display();
    // nginx preallocates its connection table, so size it for the idle scenario (a client and an
    // upstream connection per stream, spread unevenly over reuseport workers) and no larger.
    let worker_connections = (idle_streams * 2 * 3 / 2 / workers.max(1) as u64).max(1024) + 512;
    format!(
        r#"# Generated by mcpgate-bench sidebyside: nginx as a blind keep-alive reverse proxy.
worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream mock {{
        server 127.0.0.1:{mock_port};
        keepalive 256;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=8192 reuseport;
        location /mcp-proxy {{
            proxy_pass http://mock/mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
"#
    )
}

fn find_in_path(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return bin.is_file().then(|| bin.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

fn start_nginx(args: &Args, dir: &Path, mock_port: u16, workers: usize) -> anyhow::Result<Leg> {
    let bin = find_in_path(&args.nginx).with_context(|| {
        format!("{} not found: install it (`apt-get update && apt-get install -y nginx`) or pass --nginx", args.nginx.display())
    })?;
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(dir, port, mock_port, workers, args.idle_streams),
    )?;
    let mut cmd = placed(args, Role::Proxy, &bin);
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-c")
        .arg(&conf);
    let mut proc = Proc::spawn("nginx", cmd, dir.join("nginx.log"))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    proc.wait_ready("accepting", Duration::from_secs(10), |_| accepts(addr))?;
    let master = proc.pid();
    let mut pids = Vec::new();
    proc.wait_ready("running all workers", Duration::from_secs(5), |_| {
        pids = procstat::children(master);
        pids.len() >= workers
    })?;
    pids.insert(0, master);
    Ok(Leg {
        name: "nginx".into(),
        url: format!("http://127.0.0.1:{port}/mcp-proxy"),
        proxy_pids: pids,
        _procs: vec![proc],
    })
}

fn check_alive(legs: &mut [Leg], mock: &mut Proc, failures: &mut Vec<String>) {
    for p in legs
        .iter_mut()
        .flat_map(|l| l._procs.iter_mut())
        .chain(std::iter::once(mock))
    {
        if let Err(e) = p.ensure_running() {
            failures.push(format!("{e:#}"));
        }
    }
}

/// One load generator run, its report and who it was against.
#[derive(Debug, Clone, Serialize)]
struct Run {
    rep: usize,
    leg: String,
    scenario: Scenario,
    /// Proxy memory (PSS) just before an idle-streams run, to get the cost per stream.
    proxy_pss_kb_before: Option<u64>,
    report: LoadReport,
}

struct Harness {
    args: Args,
    loadgen: PathBuf,
    mock_pid: u32,
    failures: Vec<String>,
    runs: Vec<Run>,
}

impl Harness {
    fn loadgen(
        &mut self,
        leg: &Leg,
        scenario: Scenario,
        rep: usize,
        rate: Option<f64>,
    ) -> anyhow::Result<Option<LoadReport>> {
        let a = &self.args;
        let mut cmd = placed(&self.args, Role::Fixture, &self.loadgen);
        cmd.args(["--url", &leg.url, "--scenario", scenario.name()])
            .args(["--threads", &a.loadgen_threads.to_string()])
            .args(["--watch", &format!("mock={}", self.mock_pid)]);
        if !leg.proxy_pids.is_empty() {
            let pids: Vec<String> = leg.proxy_pids.iter().map(u32::to_string).collect();
            cmd.args(["--watch", &format!("proxy={}", pids.join(","))]);
        }
        if scenario == Scenario::IdleSse {
            cmd.args([
                "--connections",
                &a.idle_streams.to_string(),
                "--duration",
                &a.idle_hold.to_string(),
            ])
            .args(["--timeout-ms", "30000"]);
        } else {
            cmd.args(["--connections", &a.connections.to_string()])
                .args([
                    "--duration",
                    &a.duration.to_string(),
                    "--warmup",
                    &a.warmup.to_string(),
                ]);
        }
        if let Some(r) = rate {
            cmd.args(["--rate", &format!("{r:.0}")]);
        }
        for h in &a.headers {
            cmd.args(["--header", h]);
        }
        let mode = if scenario == Scenario::IdleSse {
            "idle"
        } else if rate.is_some() {
            "open"
        } else {
            "closed"
        };
        let label = format!("{} {} {} (rep {})", leg.name, scenario, mode, rep + 1);
        eprintln!("sidebyside: {label} ...");
        let proxy_pss_kb_before = if scenario == Scenario::IdleSse && !leg.proxy_pids.is_empty() {
            Some(
                procstat::sample(&leg.proxy_pids)
                    .with_context(|| format!("{label}: reading proxy memory"))?
                    .pss_kb,
            )
        } else {
            None
        };
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.loadgen.display()))?;
        if !out.status.success() {
            self.failures.push(format!(
                "{label}: loadgen failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return Ok(None);
        }
        let report: LoadReport = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "{label}: loadgen output is not a report: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        if let Some(problem) = judge(scenario, &report) {
            self.failures.push(format!("{label}: {problem}"));
        }
        self.runs.push(Run {
            rep,
            leg: leg.name.clone(),
            scenario,
            proxy_pss_kb_before,
            report: report.clone(),
        });
        Ok(Some(report))
    }
}

/// Why a run does not count as having run, if it does not.
fn judge(scenario: Scenario, r: &LoadReport) -> Option<String> {
    if scenario == Scenario::IdleSse {
        let s = r.streams.clone().unwrap_or_default();
        if s.opened < s.wanted || s.dropped > 0 {
            return Some(format!(
                "{} of {} streams opened, {} dropped; first error: {}",
                s.opened,
                s.wanted,
                s.dropped,
                r.first_error.as_deref().unwrap_or("-")
            ));
        }
        return None;
    }
    if r.requests == 0 {
        return Some(format!(
            "no request succeeded; first error: {}",
            r.first_error.as_deref().unwrap_or("-")
        ));
    }
    // A proxy that fails a few requests in a thousand is broken, not slow.
    if r.errors * 1000 > r.requests {
        return Some(format!(
            "{} errors for {} requests; first: {}",
            r.errors,
            r.requests,
            r.first_error.as_deref().unwrap_or("-")
        ));
    }
    None
}

/// Medians over repetitions of one leg in one scenario.
#[derive(Debug, Clone, Default, Serialize)]
struct Summary {
    scenario: String,
    leg: String,
    reps: usize,
    rps: Option<f64>,
    proxy_cpu_us_per_req: Option<f64>,
    proxy_cpu_us_per_req_at_rate: Option<f64>,
    cpu_vs_nginx: Option<f64>,
    mock_cpu_us_per_req: Option<f64>,
    rate: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    added_p50_us_vs_direct: Option<f64>,
    added_p99_us_vs_direct: Option<f64>,
    /// Proxy memory: PSS summed over its processes (nginx: master + workers), MiB.
    proxy_mem_mb: Option<f64>,
    proxy_rss_mb: Option<f64>,
    idle_streams_open: Option<f64>,
    idle_proxy_cpu_percent: Option<f64>,
    /// (PSS while holding the streams - PSS before opening them) / streams.
    idle_proxy_kb_per_stream: Option<f64>,
    errors: u64,
}

fn summarize(
    runs: &[Run],
    scenario: Scenario,
    leg: &str,
    rates: &BTreeMap<String, f64>,
) -> Summary {
    let runs_of = |mode: &str| -> Vec<&Run> {
        runs.iter()
            .filter(|r| r.scenario == scenario && r.leg == leg && r.report.mode == mode)
            .collect()
    };
    let mine =
        |mode: &str| -> Vec<&LoadReport> { runs_of(mode).into_iter().map(|r| &r.report).collect() };
    let med = |rs: &[&LoadReport], f: &dyn Fn(&LoadReport) -> Option<f64>| {
        median(&rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let proxy_cpu = |r: &LoadReport| r.watched.get("proxy").and_then(|w| w.cpu_us_per_request);
    let closed = mine("closed");
    let open = mine("open");
    let idle = mine("idle");
    let mut s = Summary {
        scenario: scenario.to_string(),
        leg: leg.to_owned(),
        reps: closed.len().max(idle.len()),
        rate: rates.get(scenario.name()).copied(),
        errors: runs
            .iter()
            .filter(|r| r.scenario == scenario && r.leg == leg)
            .map(|r| r.report.errors)
            .sum(),
        ..Default::default()
    };
    s.rps = med(&closed, &|r| Some(r.rps));
    s.proxy_cpu_us_per_req = med(&closed, &proxy_cpu);
    s.proxy_cpu_us_per_req_at_rate = med(&open, &proxy_cpu);
    s.mock_cpu_us_per_req = med(&closed, &|r| {
        r.watched.get("mock").and_then(|w| w.cpu_us_per_request)
    });
    s.p50_us = med(&open, &|r| Some(r.latency_us.p50 as f64));
    s.p99_us = med(&open, &|r| Some(r.latency_us.p99 as f64));
    s.p999_us = med(&open, &|r| Some(r.latency_us.p999 as f64));
    s.proxy_rss_mb = med(&closed, &|r| {
        r.watched.get("proxy").map(|w| w.rss_kb_end as f64 / 1024.0)
    });
    s.proxy_mem_mb = med(&closed, &|r| {
        r.watched.get("proxy").map(|w| w.pss_kb_end as f64 / 1024.0)
    });
    if scenario == Scenario::IdleSse {
        s.idle_streams_open = med(&idle, &|r| r.streams.as_ref().map(|st| st.opened as f64));
        s.idle_proxy_cpu_percent = med(&idle, &|r| r.watched.get("proxy").map(|w| w.cpu_percent));
        s.proxy_rss_mb = med(&idle, &|r| {
            r.watched.get("proxy").map(|w| w.rss_kb_end as f64 / 1024.0)
        });
        s.proxy_mem_mb = med(&idle, &|r| {
            r.watched.get("proxy").map(|w| w.pss_kb_end as f64 / 1024.0)
        });
        let per_stream: Vec<f64> = runs_of("idle")
            .into_iter()
            .filter_map(|run| {
                let w = run.report.watched.get("proxy")?;
                let n = run.report.streams.as_ref()?.opened;
                let before = run.proxy_pss_kb_before?;
                (n > 0).then(|| (w.pss_kb_end as f64 - before as f64) / n as f64)
            })
            .collect();
        s.idle_proxy_kb_per_stream = median(&per_stream);
    }
    s
}

fn add_comparisons(summaries: &mut [Summary]) {
    let snapshot = summaries.to_vec();
    for s in summaries.iter_mut() {
        let same = |leg: &str| {
            snapshot
                .iter()
                .find(|o| o.scenario == s.scenario && o.leg == leg)
        };
        if let (Some(mine), Some(nginx)) = (
            s.proxy_cpu_us_per_req,
            same("nginx").and_then(|n| n.proxy_cpu_us_per_req),
        ) {
            s.cpu_vs_nginx = (nginx > 0.0).then(|| mine / nginx);
        }
        if let Some(direct) = same("direct") {
            if s.leg != "direct" {
                s.added_p50_us_vs_direct = s.p50_us.zip(direct.p50_us).map(|(a, b)| a - b);
                s.added_p99_us_vs_direct = s.p99_us.zip(direct.p99_us).map(|(a, b)| a - b);
            }
        }
    }
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.decimals$}"))
}

fn table(summaries: &[Summary]) -> String {
    let mut t = String::new();
    let has_requests = summaries.iter().any(|s| s.scenario != "idle-sse");
    if has_requests {
        let _ = writeln!(
            t,
            "{:<10} {:<8} {:>9} {:>10} {:>10} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8}",
            "scenario",
            "leg",
            "max rps",
            "cpu µs/req",
            "@rate",
            "vs nginx",
            "rate",
            "p50",
            "p99",
            "p99.9",
            "+p99",
            "mem MB"
        );
    }
    for s in summaries.iter().filter(|s| s.scenario != "idle-sse") {
        let _ = writeln!(
            t,
            "{:<10} {:<8} {:>9} {:>10} {:>10} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8}",
            s.scenario,
            s.leg,
            fmt_opt(s.rps, 0),
            fmt_opt(s.proxy_cpu_us_per_req, 1),
            fmt_opt(s.proxy_cpu_us_per_req_at_rate, 1),
            fmt_opt(s.cpu_vs_nginx, 2),
            fmt_opt(s.rate, 0),
            fmt_opt(s.p50_us, 0),
            fmt_opt(s.p99_us, 0),
            fmt_opt(s.p999_us, 0),
            fmt_opt(s.added_p99_us_vs_direct, 0),
            fmt_opt(s.proxy_mem_mb, 1),
        );
    }
    let idle: Vec<&Summary> = summaries
        .iter()
        .filter(|s| s.scenario == "idle-sse")
        .collect();
    if !idle.is_empty() {
        let _ = writeln!(
            t,
            "\n{:<10} {:<8} {:>12} {:>12} {:>14} {:>16}",
            "scenario", "leg", "streams open", "proxy mem MB", "KB/stream", "proxy CPU % idle"
        );
        for s in idle {
            let _ = writeln!(
                t,
                "{:<10} {:<8} {:>12} {:>12} {:>14} {:>16}",
                s.scenario,
                s.leg,
                fmt_opt(s.idle_streams_open, 0),
                fmt_opt(s.proxy_mem_mb, 1),
                fmt_opt(s.idle_proxy_kb_per_stream, 2),
                fmt_opt(s.idle_proxy_cpu_percent, 2),
            );
        }
    }
    t
}

#[derive(Serialize)]
struct Machine {
    date_utc: String,
    nproc: usize,
    kernel: String,
    cpu_model: String,
    io_uring_available: bool,
    loadavg_at_start: String,
    nofile_limit: u64,
}

fn machine(nofile: u64) -> Machine {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    Machine {
        date_utc: date,
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        kernel: read("/proc/sys/kernel/osrelease"),
        cpu_model,
        io_uring_available: monoio::utils::detect_uring(),
        loadavg_at_start: read("/proc/loadavg"),
        nofile_limit: nofile,
    }
}

#[derive(Serialize)]
struct Output<'a> {
    machine: Machine,
    /// mcpgate's own startup line (workers, driver actually used).
    mcpgate_banner: Option<String>,
    args: &'a Args,
    workers: usize,
    rates: &'a BTreeMap<String, f64>,
    summary: &'a [Summary],
    failures: &'a [String],
    runs: &'a [Run],
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.apply_smoke();
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    if args.nice != 0 {
        // SAFETY: setpriority on our own process; children inherit the niceness.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, args.nice) };
        if rc != 0 {
            bail!(
                "setpriority({}) failed: {}",
                args.nice,
                std::io::Error::last_os_error()
            );
        }
    }
    // 10,000 streams through a proxy: 10k client fds in the loadgen, 20k in the proxy, 10k in the mock.
    let nofile = raise_nofile_limit(65_536);
    // A proxy holds two fds per stream plus a few of its own; when the hard limit cannot be raised
    // (containers without CAP_SYS_RESOURCE), hold as many streams as fit and say so.
    let fit = nofile.saturating_sub(PROXY_SPARE_FDS) / 2;
    if args.scenarios.contains(&Scenario::IdleSse) && fit < args.idle_streams {
        if fit < 100 {
            bail!("open-files limit {nofile} is too low for idle streams; raise `ulimit -n`");
        }
        eprintln!(
            "sidebyside: NOTE: open-files limit {nofile} (hard limit not raisable here) fits {fit} streams per proxy, not {}: holding {fit}",
            args.idle_streams
        );
        args.idle_streams = fit;
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let workers = args.workers.unwrap_or(cores);
    let loadgen = sibling("loadgen")?;
    let mock_bin = sibling("mock_upstream")?;
    let build_hint = "build with `cargo build -p mcpgate-bench --release --bins`";
    require_file(&loadgen, build_hint)?;
    require_file(&mock_bin, build_hint)?;

    let dir = std::env::temp_dir().join(format!("mcpgate-sidebyside-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("sidebyside: logs and configs in {}", dir.display());

    let mock_port = free_port()?;
    let mut mock_cmd = placed(&args, Role::Fixture, &mock_bin);
    mock_cmd
        .args(["--listen", &format!("127.0.0.1:{mock_port}")])
        .args(["--threads", &args.mock_threads.unwrap_or(cores).to_string()])
        .args([
            "--tools",
            &args.tools.to_string(),
            "--result-bytes",
            &args.result_bytes.to_string(),
        ])
        .args(["--sse-keepalive-ms", &args.sse_keepalive_ms.to_string()]);
    let mut mock = Proc::spawn("mock_upstream", mock_cmd, dir.join("mock.log"))?;
    mock.wait_ready("listening", Duration::from_secs(10), |log| {
        log.contains("listening on")
    })?;

    let mut failures = Vec::new();
    for name in &args.legs {
        if !["direct", "mcpgate", "nginx"].contains(&name.as_str()) {
            bail!("unknown leg {name:?} (expected direct, mcpgate or nginx)");
        }
    }
    let start_leg = |name: &str| -> anyhow::Result<Leg> {
        match name {
            "mcpgate" => start_mcpgate(&args, &dir, mock_port, workers),
            "nginx" => start_nginx(&args, &dir, mock_port, workers),
            _ => Ok(Leg {
                name: "direct".into(),
                url: format!("http://127.0.0.1:{mock_port}/mcp"),
                proxy_pids: vec![],
                _procs: vec![],
            }),
        }
    };
    let mut legs = Vec::new();
    for name in &args.legs {
        match start_leg(name) {
            Ok(l) => legs.push(l),
            Err(e) => failures.push(format!("leg {name} cannot run: {e:#}")),
        }
    }

    let mut h = Harness {
        args: args.clone(),
        loadgen,
        mock_pid: mock.pid(),
        failures,
        runs: Vec::new(),
    };
    let mcpgate_banner = std::fs::read_to_string(dir.join("mcpgate.log"))
        .ok()
        .and_then(|log| {
            log.lines()
                .find(|l| l.contains("listening on"))
                .map(str::to_owned)
        });
    let request_scenarios: Vec<Scenario> = args
        .scenarios
        .iter()
        .copied()
        .filter(|s| *s != Scenario::IdleSse)
        .collect();
    let mut rates: BTreeMap<String, f64> = BTreeMap::new();
    for rep in 0..args.reps {
        // Rotating the order spreads drift of a shared machine over all legs.
        let order: Vec<usize> = (0..legs.len())
            .map(|i| (i + rep) % legs.len().max(1))
            .collect();
        for &scenario in &request_scenarios {
            let mut max_rps = Vec::new();
            for &i in &order {
                if let Some(r) = h.loadgen(&legs[i], scenario, rep, None)? {
                    if r.requests > 0 {
                        max_rps.push(r.rps);
                    }
                }
            }
            let rate = match (args.rate, rates.get(scenario.name())) {
                (Some(r), _) => Some(r),
                (None, Some(r)) => Some(*r),
                (None, None) => max_rps
                    .iter()
                    .copied()
                    .reduce(f64::min)
                    .map(|m| (m * args.rate_fraction).max(1.0)),
            };
            let Some(rate) = rate else { continue };
            rates.insert(scenario.name().to_owned(), rate);
            for &i in &order {
                h.loadgen(&legs[i], scenario, rep, Some(rate))?;
            }
        }
        check_alive(&mut legs, &mut mock, &mut h.failures);
    }
    let leg_names: Vec<String> = legs.iter().map(|l| l.name.clone()).collect();
    drop(legs);

    // Idle streams run last, each on a freshly started proxy, so their memory neither inflates the
    // request scenarios' figures nor depends on what earlier repetitions left allocated.
    if args.scenarios.contains(&Scenario::IdleSse) {
        for rep in 0..args.reps {
            for k in 0..leg_names.len() {
                let name = &leg_names[(k + rep) % leg_names.len()];
                match start_leg(name) {
                    Ok(mut leg) => {
                        h.loadgen(&leg, Scenario::IdleSse, rep, None)?;
                        check_alive(std::slice::from_mut(&mut leg), &mut mock, &mut h.failures);
                    }
                    Err(e) => h
                        .failures
                        .push(format!("leg {name} cannot restart for idle-sse: {e:#}")),
                }
            }
        }
    }
    let legs = leg_names;

    let mut summaries = Vec::new();
    for &scenario in &args.scenarios {
        for leg in &legs {
            summaries.push(summarize(&h.runs, scenario, leg, &rates));
        }
    }
    add_comparisons(&mut summaries);
    let t = table(&summaries);
    println!("{t}");
    let m = machine(nofile);
    println!(
        "{} · nproc {} · kernel {} · {} · io_uring available: {} · workers {} · reps {} (medians)",
        m.date_utc, m.nproc, m.kernel, m.cpu_model, m.io_uring_available, workers, args.reps
    );
    if let Some(b) = &mcpgate_banner {
        println!("{b}");
    }
    let output = Output {
        machine: m,
        mcpgate_banner,
        args: &args,
        workers,
        rates: &rates,
        summary: &summaries,
        failures: &h.failures,
        runs: &h.runs,
    };
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&output)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("JSON written to {}", args.out.display());
    drop(mock);
    if !h.failures.is_empty() {
        eprintln!("\nsidebyside: FAILED — {} problem(s):", h.failures.len());
        for f in &h.failures {
            eprintln!("  - {f}");
        }
        std::process::exit(1);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
