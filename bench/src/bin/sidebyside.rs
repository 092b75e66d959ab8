//! sidebyside: one command that measures the same MCP workload direct to the origin, through
//! mcpgate and through nginx (a blind keep-alive reverse proxy), in one run, and prints a table and
//! writes JSON of the medians over several repetitions. Every run is one combination of
//! workers × origin (our mock, nginx as a trivial origin, server-everything) × load generator
//! (our loadgen, wrk) × leg, and records which; ratios are taken within a combination. It
//! generates mcpgate's configs for the ACL / JWT scenarios and runs A/B variants of mcpgate
//! interleaved with the other legs. `--smoke` runs every leg briefly (for CI) and fails loudly
//! when a leg cannot run. Method: see bench/README.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use mcpgate_bench::client::{self, Target};
use mcpgate_bench::gateconf::{
    api_policies_toml, generated_template, render, JwtKey, Policies, POLICIES_PLACEHOLDER,
};
use mcpgate_bench::mcp::{write_request_body, Catalogue, Scenario};
use mcpgate_bench::origin::{nginx_origin_conf, NginxOriginBodies, OriginKind, NGINX_LIKE_HEADERS};
use mcpgate_bench::report::{median, LoadReport, Percentiles};
use mcpgate_bench::runtime::{raise_nofile_limit, Driver};
use mcpgate_bench::wrk::{monotonic_ns, WrkOutput, WrkScript, ID_SENTINEL};
use mcpgate_bench::{perfstat, procstat};
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
    /// Worker threads of mcpgate = worker processes of nginx, comma-separated for several
    /// settings one after the other (e.g. `1,2`). Default: available cores.
    #[arg(long, value_delimiter = ',')]
    workers: Vec<usize>,
    /// Threads of the mock upstream (worker processes of the nginx origin). Default: available
    /// cores.
    #[arg(long)]
    mock_threads: Option<usize>,
    /// Load generators, comma-separated: ours (loadgen), wrk.
    #[arg(long = "loadgen", default_value = "ours", value_delimiter = ',')]
    loadgens: Vec<LoadgenKind>,
    /// Origins behind the legs, comma-separated: mock, mock-hdr (the mock adding nginx's Server,
    /// Date and Connection fields), nginx (trivial `return 200` origin), everything
    /// (@modelcontextprotocol/server-everything; calls its `echo` tool).
    #[arg(long = "origin", default_value = "mock", value_delimiter = ',')]
    origins: Vec<OriginKind>,
    /// Only the closed-loop pass (CPU per request, max rps); no fixed-rate latency pass.
    #[arg(long)]
    closed_only: bool,
    /// The wrk binary.
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
    /// The node binary (for the everything origin).
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// server-everything's entry point. Default: tests/js/node_modules/… of this checkout
    /// (installed by `npm ci` in tests/js).
    #[arg(long)]
    everything: Option<PathBuf>,
    /// `perf stat` the proxy's processes over every closed-loop window (`--perf-events`) and
    /// report counts per request. Tracing costs the proxies a little: take ratios without it.
    #[arg(long)]
    perf_stat: bool,
    /// Events for `--perf-stat` (perf's -e list).
    #[arg(long, default_value = mcpgate_bench::perfstat::DEFAULT_EVENTS)]
    perf_events: String,
    /// `perf record -g` the proxy's processes over every closed-loop window into DIR (one
    /// perf.data per run, named after the run).
    #[arg(long, value_name = "DIR")]
    perf_record: Option<PathBuf>,
    /// The perf binary.
    #[arg(long, default_value = "perf")]
    perf: PathBuf,
    /// Legs to run, comma-separated: direct, mcpgate, nginx.
    #[arg(long, default_value = "direct,mcpgate,nginx", value_delimiter = ',')]
    legs: Vec<String>,
    /// Scenarios, comma-separated: call-json, call-sse, list, list-acl, list-acl-jwt, idle-sse.
    #[arg(
        long,
        default_value = "call-json,call-sse,list,list-acl,list-acl-jwt,idle-sse",
        value_delimiter = ','
    )]
    scenarios: Vec<Scenario>,
    /// The mcpgate binary. Default: `mcpgate` next to this binary (same target dir).
    #[arg(long)]
    mcpgate: Option<PathBuf>,
    /// mcpgate configuration template for the plain scenarios: `{upstream}` in it is replaced by
    /// the mock's URL; it must route /mcp-proxy. Without it mcpgate runs `--upstream ... --path
    /// /mcp-proxy`. The list-acl scenarios use it too if it has `{api_policies}` at the end of the
    /// /mcp-proxy `[[api]]` table (replaced by the ACL / plan), else the harness's own config.
    #[arg(long)]
    mcpgate_config: Option<PathBuf>,
    /// An extra mcpgate leg NAME running config template FILE (`{upstream}`, optional
    /// `{api_policies}` as for --mcpgate-config; without it the leg skips the list-acl scenarios),
    /// rotated with the other legs and compared with the mcpgate leg ("vs mcpgate"). Repeatable.
    #[arg(long = "mcpgate-variant", value_name = "NAME=FILE")]
    variants: Vec<String>,
    /// An extra mcpgate leg NAME running another mcpgate BINARY with exactly the mcpgate leg's
    /// configs (a before/after of two builds in one run), rotated with the other legs and
    /// compared with the mcpgate leg ("vs mcpgate"). Repeatable.
    #[arg(long = "mcpgate-binary-variant", value_name = "NAME=BINARY")]
    binary_variants: Vec<String>,
    /// A/B of exchange recording: adds the variant `mcpgate-nolog` (`[gateway.log] enabled =
    /// false`) and runs the mcpgate leg from the same generated config with `enabled = true`.
    #[arg(long)]
    observe_ab: bool,
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

/// Which load generator drives a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
enum LoadgenKind {
    /// `loadgen` (ours): closed and open loop, idle streams.
    Ours,
    /// Debian's `wrk` with a generated Lua script: closed loop only.
    Wrk,
}

impl LoadgenKind {
    fn name(self) -> &'static str {
        match self {
            LoadgenKind::Ours => "ours",
            LoadgenKind::Wrk => "wrk",
        }
    }
}

impl std::str::FromStr for LoadgenKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ours" | "loadgen" => Ok(LoadgenKind::Ours),
            "wrk" => Ok(LoadgenKind::Wrk),
            other => Err(format!(
                "unknown load generator {other:?} (expected ours or wrk)"
            )),
        }
    }
}

/// One setting of everything but the leg: the unit inside which legs are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Combo {
    workers: usize,
    origin: OriginKind,
    loadgen: LoadgenKind,
}

impl Combo {
    /// `w1 wrk→nginx`: how tables and JSON name the combination.
    fn label(self) -> String {
        format!(
            "w{} {}→{}",
            self.workers,
            self.loadgen.name(),
            self.origin.name()
        )
    }
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

/// A command for `bin`, run under `taskset` on its role's CPU when `--pin` is on. The child gets
/// SIGTERM when the harness dies, however it dies (a long A/B run killed from outside would
/// otherwise leave its proxies and mock running; `Drop` only covers a normal exit).
fn placed(args: &Args, role: Role, bin: &Path) -> Command {
    let mut cmd = if args.pin {
        let cpu = match role {
            Role::Proxy => "1",
            Role::Fixture => "0",
        };
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", cpu]).arg(bin);
        cmd
    } else {
        Command::new(bin)
    };
    // SAFETY: prctl is async-signal-safe and touches only the child's own state; the death signal
    // survives the exec (and taskset's exec of the real binary).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
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

/// How a gateway leg configures mcpgate.
#[derive(Debug, Clone)]
struct GateSpec {
    /// The mcpgate binary of this leg; `None` = `--mcpgate` (or the sibling build).
    bin: Option<PathBuf>,
    /// Template for the plain scenarios; `None` = `--upstream … --path /mcp-proxy`.
    plain: Option<String>,
    /// The plain template is the user's (`--mcpgate-config` / a variant file): it may contain an
    /// ACL of its own, so `list` answers are not counted.
    plain_is_users: bool,
    /// Template (with `{api_policies}`) for the list-acl scenarios; `None` = the leg skips them.
    with_policies: Option<String>,
}

#[derive(Debug, Clone)]
enum LegKind {
    Direct,
    Nginx,
    Gateway(GateSpec),
}

/// A leg as asked for on the command line, before anything runs.
#[derive(Debug, Clone)]
struct LegSpec {
    name: String,
    kind: LegKind,
    /// An A/B variant, compared with the `mcpgate` leg.
    variant: bool,
}

impl LegSpec {
    fn gate(&self) -> Option<&GateSpec> {
        match &self.kind {
            LegKind::Gateway(g) => Some(g),
            _ => None,
        }
    }

    /// Whether this leg runs `scenario` at all (a variant without `{api_policies}` skips the
    /// list-acl scenarios rather than measure them unfiltered).
    fn runs(&self, scenario: Scenario) -> bool {
        match self.gate() {
            Some(g) if scenario.has_acl() => g.with_policies.is_some(),
            _ => true,
        }
    }
}

/// One running proxy (or the mock itself) that loadgen can be pointed at.
struct Endpoint {
    url: String,
    /// The proxy's processes (nginx: master + workers); empty for the direct leg.
    proxy_pids: Vec<u32>,
    procs: Vec<Proc>,
}

/// One way of reaching the mock: directly or through a proxy. A gateway leg runs one mcpgate per
/// policy set its scenarios need (plain, ACL, ACL + JWT), all idle but the one measured.
struct Leg {
    spec: LegSpec,
    endpoints: BTreeMap<Policies, Endpoint>,
}

impl Leg {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn endpoint(&self, scenario: Scenario) -> Option<&Endpoint> {
        let key = match self.spec.kind {
            LegKind::Gateway(_) => Policies::for_scenario(scenario),
            _ => Policies::None,
        };
        self.endpoints.get(&key)
    }

    fn procs_mut(&mut self) -> impl Iterator<Item = &mut Proc> {
        self.endpoints.values_mut().flat_map(|e| e.procs.iter_mut())
    }
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

/// The name of the `--observe-ab` variant.
const NOLOG_VARIANT: &str = "mcpgate-nolog";

fn read_template(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// A user's template as a gateway leg: the list-acl scenarios use it only if it has a place for
/// the policies. `fallback` is what they use otherwise (`None`: the leg skips them).
fn user_gate(text: String, fallback: Option<String>) -> GateSpec {
    let with_policies = if text.contains(POLICIES_PLACEHOLDER) {
        Some(text.clone())
    } else {
        fallback
    };
    GateSpec {
        bin: None,
        plain: Some(text),
        plain_is_users: true,
        with_policies,
    }
}

/// The legs of this run, in rotation order: `--legs`, then the A/B variants.
fn leg_specs(args: &Args) -> anyhow::Result<Vec<LegSpec>> {
    let mut specs = Vec::new();
    for name in &args.legs {
        let kind = match name.as_str() {
            "direct" => LegKind::Direct,
            "nginx" => LegKind::Nginx,
            "mcpgate" => LegKind::Gateway(match (&args.mcpgate_config, args.observe_ab) {
                (Some(_), true) => bail!(
                    "--observe-ab generates both configs of its A/B; compare a config of your own \
                     with --mcpgate-variant NAME=FILE instead of --mcpgate-config"
                ),
                (Some(path), false) => {
                    user_gate(read_template(path)?, Some(generated_template(None)))
                }
                // Both A/B legs from the same generated file, recording on vs off: nothing else
                // differs (the command-line leg would also differ in its API's name).
                (None, true) => GateSpec {
                    bin: None,
                    plain: Some(generated_template(Some(true))),
                    plain_is_users: false,
                    with_policies: Some(generated_template(Some(true))),
                },
                (None, false) => GateSpec {
                    bin: None,
                    plain: None,
                    plain_is_users: false,
                    with_policies: Some(generated_template(None)),
                },
            }),
            other => bail!("unknown leg {other:?} (expected direct, mcpgate or nginx)"),
        };
        if specs.iter().any(|s: &LegSpec| s.name == *name) {
            bail!("leg {name} is listed twice");
        }
        specs.push(LegSpec {
            name: name.clone(),
            kind,
            variant: false,
        });
    }
    let mut variants: Vec<(String, GateSpec)> = Vec::new();
    if args.observe_ab {
        let nolog = generated_template(Some(false));
        variants.push((
            NOLOG_VARIANT.to_owned(),
            GateSpec {
                bin: None,
                plain: Some(nolog.clone()),
                plain_is_users: false,
                with_policies: Some(nolog),
            },
        ));
    }
    for v in &args.variants {
        let (name, file) = v
            .split_once('=')
            .with_context(|| format!("--mcpgate-variant {v:?} is not NAME=FILE"))?;
        variants.push((
            name.to_owned(),
            user_gate(read_template(Path::new(file))?, None),
        ));
    }
    for v in &args.binary_variants {
        let (name, bin) = v
            .split_once('=')
            .with_context(|| format!("--mcpgate-binary-variant {v:?} is not NAME=BINARY"))?;
        let Some(LegKind::Gateway(base)) = specs
            .iter()
            .find(|s| s.name == BASELINE_LEG)
            .map(|s| s.kind.clone())
        else {
            bail!("--mcpgate-binary-variant runs the mcpgate leg's configs: add mcpgate to --legs");
        };
        variants.push((
            name.to_owned(),
            GateSpec {
                bin: Some(PathBuf::from(bin)),
                ..base
            },
        ));
    }
    if !variants.is_empty() && !args.legs.iter().any(|l| l == BASELINE_LEG) {
        bail!("A/B variants are compared with the mcpgate leg: add mcpgate to --legs");
    }
    for (name, gate) in variants {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            bail!("variant name {name:?}: use letters, digits, '-' and '_'");
        }
        if specs.iter().any(|s| s.name == name) {
            bail!("leg name {name} is used twice");
        }
        specs.push(LegSpec {
            name,
            kind: LegKind::Gateway(gate),
            variant: true,
        });
    }
    Ok(specs)
}

/// Where everything the harness starts lives, and what it shares.
struct Env<'a> {
    args: &'a Args,
    dir: &'a Path,
    origin: &'a OriginRun,
    workers: usize,
    jwt: &'a JwtKey,
}

/// A running origin: what the legs forward to, and its processes (watched as `mock` in reports,
/// whichever origin it is, so the field names stay those of earlier runs).
struct OriginRun {
    kind: OriginKind,
    port: u16,
    pids: Vec<u32>,
    procs: Vec<Proc>,
    /// Its `tools/list`, read once before the run: the ACL's names and the expected counts.
    catalogue: Catalogue,
}

impl OriginRun {
    fn upstream(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

/// The default entry point of server-everything: tests/js of this checkout.
fn default_everything() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/js/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// Starts `kind` and reads its catalogue. The mock and the nginx origin use `threads` threads /
/// worker processes; server-everything is one Node process.
fn start_origin(
    args: &Args,
    dir: &Path,
    kind: OriginKind,
    threads: usize,
    port: u16,
) -> anyhow::Result<OriginRun> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut procs = Vec::new();
    let pids = match kind {
        OriginKind::Mock | OriginKind::MockHdr => {
            let mut cmd = placed(args, Role::Fixture, &sibling("mock_upstream")?);
            if kind == OriginKind::MockHdr {
                for h in NGINX_LIKE_HEADERS {
                    cmd.args(["--extra-header", h]);
                }
            }
            cmd.args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--threads", &threads.to_string()])
                .args([
                    "--tools",
                    &args.tools.to_string(),
                    "--result-bytes",
                    &args.result_bytes.to_string(),
                ])
                .args(["--sse-keepalive-ms", &args.sse_keepalive_ms.to_string()]);
            let mut mock =
                Proc::spawn("mock_upstream", cmd, dir.join(format!("origin-{kind}.log")))?;
            mock.wait_ready("listening", Duration::from_secs(10), |log| {
                log.contains("listening on")
            })?;
            procs.push(mock);
            vec![procs[0].pid()]
        }
        OriginKind::Nginx => {
            let bin = find_in_path(&args.nginx).with_context(|| {
                format!(
                    "{} not found: install it (`apt-get install -y nginx`) or pass --nginx",
                    args.nginx.display()
                )
            })?;
            let sub = dir.join("origin-nginx");
            std::fs::create_dir_all(&sub)?;
            let conf = sub.join("nginx.conf");
            let bodies = NginxOriginBodies::new(args.tools, args.result_bytes);
            let text =
                nginx_origin_conf(&sub, port, threads, &bodies).map_err(anyhow::Error::msg)?;
            std::fs::write(&conf, text)?;
            let mut cmd = placed(args, Role::Fixture, &bin);
            cmd.arg("-p")
                .arg(&sub)
                .arg("-e")
                .arg(sub.join("nginx-error.log"))
                .arg("-c")
                .arg(&conf);
            let mut proc = Proc::spawn("nginx origin", cmd, dir.join("origin-nginx.log"))?;
            proc.wait_ready("accepting", Duration::from_secs(10), |_| accepts(addr))?;
            let master = proc.pid();
            let mut pids = Vec::new();
            proc.wait_ready("running all workers", Duration::from_secs(5), |_| {
                pids = procstat::children(master);
                pids.len() >= threads
            })?;
            pids.insert(0, master);
            procs.push(proc);
            pids
        }
        OriginKind::Everything => {
            let entry = args.everything.clone().unwrap_or_else(default_everything);
            require_file(&entry, "install it with `npm ci` in tests/js (bench/harness/ensure_tools.sh) or pass --everything")?;
            let node = find_in_path(&args.node).with_context(|| {
                format!(
                    "{} not found (apt-get install -y nodejs)",
                    args.node.display()
                )
            })?;
            let mut cmd = placed(args, Role::Fixture, &node);
            cmd.arg(&entry)
                .arg("streamableHttp")
                .env("PORT", port.to_string());
            let mut proc =
                Proc::spawn("server-everything", cmd, dir.join("origin-everything.log"))?;
            let ready = format!("listening on port {port}");
            proc.wait_ready("listening", Duration::from_secs(30), |log| {
                log.contains(&ready)
            })?;
            proc.wait_ready("accepting", Duration::from_secs(5), |_| accepts(addr))?;
            procs.push(proc);
            vec![procs[0].pid()]
        }
    };
    let catalogue = match kind {
        OriginKind::Mock | OriginKind::MockHdr | OriginKind::Nginx => Catalogue::mock(args.tools),
        OriginKind::Everything => {
            let target = Target::parse(&format!("http://127.0.0.1:{port}/mcp"))?;
            let mut body = Vec::new();
            write_request_body(Scenario::List, 1, None, &mut body);
            let (_, status, payload) =
                client::session_and_request(Driver::Auto, &target, &body, Duration::from_secs(10))
                    .context("reading server-everything's tools/list")?;
            if status != 200 {
                bail!("server-everything answered tools/list with HTTP {status}");
            }
            Catalogue::from_answer(&payload).with_context(|| {
                format!(
                    "server-everything's tools/list is not a tool list: {}",
                    String::from_utf8_lossy(&payload[..payload.len().min(300)])
                )
            })?
        }
    };
    Ok(OriginRun {
        kind,
        port,
        pids,
        procs,
        catalogue,
    })
}

/// Starts one mcpgate of `leg` for `policies`; `Ok(None)` when the leg skips them.
fn start_mcpgate(
    env: &Env<'_>,
    leg: &str,
    gate: &GateSpec,
    policies: Policies,
) -> anyhow::Result<Option<Endpoint>> {
    let args = env.args;
    let bin = match (&gate.bin, &args.mcpgate) {
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => sibling("mcpgate")?,
    };
    require_file(&bin, "build it with `cargo build -p mcpgate-core --release` (same CARGO_TARGET_DIR) or pass --mcpgate")?;
    let upstream = env.origin.upstream();
    let template = match policies {
        Policies::None => gate.plain.as_ref(),
        _ => match &gate.with_policies {
            Some(t) => Some(t),
            None => return Ok(None),
        },
    };
    let port = free_port()?;
    let admin = free_port()?;
    let mut cmd = placed(args, Role::Proxy, &bin);
    cmd.args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--workers", &env.workers.to_string()]);
    let stem = format!(
        "{leg}-{}-w{}-{}",
        env.origin.kind,
        env.workers,
        policies.slug()
    );
    match template {
        Some(template) => {
            let conf = env.dir.join(format!("{stem}.toml"));
            let policies_toml =
                api_policies_toml(policies, &env.origin.catalogue.acl_names(), env.jwt);
            std::fs::write(&conf, render(template, &upstream, &policies_toml))?;
            cmd.arg("--config").arg(conf);
        }
        None => {
            cmd.args(["--upstream", &upstream, "--path", "/mcp-proxy"]);
        }
    }
    if args.mcpgate_driver != "auto" {
        cmd.args(["--driver", &args.mcpgate_driver]);
    }
    let mut proc = Proc::spawn("mcpgate", cmd, env.dir.join(format!("{stem}.log")))?;
    proc.wait_ready("listening", Duration::from_secs(20), |log| {
        log.contains("mcpgate: listening on")
    })?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    proc.wait_ready("accepting", Duration::from_secs(5), |_| accepts(addr))?;
    Ok(Some(Endpoint {
        url: format!("http://127.0.0.1:{port}/mcp-proxy"),
        proxy_pids: vec![proc.pid()],
        procs: vec![proc],
    }))
}

/// Starts what `spec` needs for `policies` (direct and nginx: one endpoint for everything).
/// Failures are collected, not fatal: the other legs still run and the run exits 1 at the end.
fn start_leg(
    env: &Env<'_>,
    spec: &LegSpec,
    policies: &[Policies],
    failures: &mut Vec<String>,
) -> Leg {
    let mut endpoints = BTreeMap::new();
    match &spec.kind {
        LegKind::Direct => {
            endpoints.insert(
                Policies::None,
                Endpoint {
                    url: env.origin.upstream(),
                    proxy_pids: vec![],
                    procs: vec![],
                },
            );
        }
        LegKind::Nginx => match start_nginx(env) {
            Ok(e) => {
                endpoints.insert(Policies::None, e);
            }
            Err(e) => failures.push(format!("leg {} cannot run: {e:#}", spec.name)),
        },
        LegKind::Gateway(gate) => {
            for &p in policies {
                match start_mcpgate(env, &spec.name, gate, p) {
                    Ok(Some(e)) => {
                        endpoints.insert(p, e);
                    }
                    Ok(None) => {}
                    Err(e) => failures.push(format!(
                        "leg {} ({} config) cannot run: {e:#}",
                        spec.name,
                        p.slug()
                    )),
                }
            }
        }
    }
    Leg {
        spec: spec.clone(),
        endpoints,
    }
}

fn nginx_conf(
    dir: &Path,
    port: u16,
    mock_port: u16,
    workers: usize,
    idle_streams: u64,
    upstream_idle: &str,
) -> String {
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
        keepalive_timeout {upstream_idle};
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

fn start_nginx(env: &Env<'_>) -> anyhow::Result<Endpoint> {
    let (args, workers, mock_port) = (env.args, env.workers, env.origin.port);
    // One directory per nginx (pid file, temp paths): several run at once, one per origin.
    let dir = &env
        .dir
        .join(format!("nginx-proxy-{}-w{workers}", env.origin.kind));
    std::fs::create_dir_all(dir)?;
    let bin = find_in_path(&args.nginx).with_context(|| {
        format!("{} not found: install it (`apt-get update && apt-get install -y nginx`) or pass --nginx", args.nginx.display())
    })?;
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(
            dir,
            port,
            mock_port,
            workers,
            args.idle_streams,
            // Node's HTTP server closes keep-alive connections idle for 5 s: a proxy must let go
            // of them first, or a request sent just as Node closes one is lost (502).
            if env.origin.kind == OriginKind::Everything {
                "4s"
            } else {
                "300s"
            },
        ),
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
    Ok(Endpoint {
        url: format!("http://127.0.0.1:{port}/mcp-proxy"),
        proxy_pids: pids,
        procs: vec![proc],
    })
}

fn check_alive(legs: &mut [Leg], origin: &mut [Proc], failures: &mut Vec<String>) {
    for p in legs
        .iter_mut()
        .flat_map(|l| l.procs_mut())
        .chain(origin.iter_mut())
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
    /// `w1 wrk→nginx`: workers, load generator, origin (also as separate fields below).
    combo: String,
    workers: usize,
    origin: OriginKind,
    loadgen: LoadgenKind,
    leg: String,
    scenario: Scenario,
    /// Proxy memory (PSS) just before an idle-streams run, to get the cost per stream.
    proxy_pss_kb_before: Option<u64>,
    /// `--perf-stat`: the proxy's counts over the window, and the same per request.
    perf_counts: Option<BTreeMap<String, f64>>,
    perf_per_request: Option<BTreeMap<String, f64>>,
    /// `--perf-record`: the profile of this run.
    perf_data: Option<PathBuf>,
    report: LoadReport,
}

/// perf attached to a proxy over one window.
struct PerfRun {
    child: std::process::Child,
    out: PathBuf,
    started: Instant,
    record: bool,
}

/// What perf gave for one run.
#[derive(Default)]
struct PerfResult {
    counts: Option<BTreeMap<String, f64>>,
    per_request: Option<BTreeMap<String, f64>>,
    data: Option<PathBuf>,
}

struct Harness {
    args: Args,
    loadgen: PathBuf,
    /// wrk, when a combination uses it.
    wrk: Option<PathBuf>,
    jwt: JwtKey,
    failures: Vec<String>,
    runs: Vec<Run>,
    /// Where perf output goes (`--perf-record` DIR, else the run's temp dir).
    perf_dir: PathBuf,
}

impl Harness {
    /// Starts perf on `pids` for `seconds` when `--perf-stat` or `--perf-record` asks for it.
    fn perf_begin(
        &self,
        pids: &[u32],
        seconds: f64,
        label: &str,
    ) -> anyhow::Result<Option<PerfRun>> {
        let record = self.args.perf_record.is_some();
        if pids.is_empty() || !(self.args.perf_stat || record) {
            return Ok(None);
        }
        let slug: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let (mode, out) = if record {
            (
                perfstat::PerfMode::Record,
                self.perf_dir.join(format!("{slug}.perf.data")),
            )
        } else {
            (
                perfstat::PerfMode::Stat {
                    events: self.args.perf_events.clone(),
                },
                self.perf_dir.join(format!("{slug}.perf-stat.csv")),
            )
        };
        let child =
            perfstat::start(&self.args.perf, &mode, pids, seconds, &out).with_context(|| {
                format!(
                    "starting {} (apt-get install -y linux-perf)",
                    self.args.perf.display()
                )
            })?;
        Ok(Some(PerfRun {
            child,
            out,
            started: Instant::now(),
            record,
        }))
    }

    /// Waits for perf; counts per request, with `requests` completed over `window_s` scaled to
    /// the seconds perf actually counted.
    fn perf_end(perf: Option<PerfRun>, requests: u64, window_s: f64) -> anyhow::Result<PerfResult> {
        let Some(p) = perf else {
            return Ok(PerfResult::default());
        };
        let out = p.child.wait_with_output()?;
        let seconds = p.started.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "perf failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if p.record {
            return Ok(PerfResult {
                data: Some(p.out),
                ..Default::default()
            });
        }
        let counts = perfstat::parse_stat_csv(&std::fs::read_to_string(&p.out)?);
        let in_perf_window = requests as f64 * (seconds / window_s.max(1e-9)).min(1.0);
        let per_request = (in_perf_window > 0.0).then(|| {
            counts
                .iter()
                .map(|(k, v)| (k.clone(), v / in_perf_window))
                .collect()
        });
        Ok(PerfResult {
            counts: Some(counts),
            per_request,
            data: None,
        })
    }

    /// Tools every `tools/list` answer of `leg` must list in `scenario`, when that is known: the
    /// ACL's half through a gateway in the list-acl scenarios, the whole catalogue otherwise
    /// (except through a user's config, which may filter on its own).
    fn expected_list_entries(
        &self,
        leg: &LegSpec,
        origin: &OriginRun,
        scenario: Scenario,
    ) -> Option<usize> {
        if !scenario.is_list() {
            return None;
        }
        match leg.gate() {
            Some(_) if scenario.has_acl() => Some(origin.catalogue.entries_acl),
            Some(g) if g.plain_is_users => None,
            _ => Some(origin.catalogue.entries_full),
        }
    }

    /// `Authorization` for the JWT scenario: every leg sends the token (nginx and the origins
    /// ignore it), so all legs do the same work on the client side. Minted per run: a long A/B
    /// outlives an hour-long token.
    fn auth_header(&self, scenario: Scenario) -> Option<String> {
        scenario.has_jwt().then(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("Authorization: Bearer {}", self.jwt.mint(now))
        })
    }

    /// One measured run of `scenario` on `leg` in `combo`; `rate` = open loop (ours only).
    fn run_load(
        &mut self,
        leg: &Leg,
        origin: &OriginRun,
        combo: Combo,
        scenario: Scenario,
        rep: usize,
        rate: Option<f64>,
    ) -> anyhow::Result<Option<LoadReport>> {
        let Some(endpoint) = leg.endpoint(scenario) else {
            return Ok(None);
        };
        let mode = if scenario == Scenario::IdleSse {
            "idle"
        } else if rate.is_some() {
            "open"
        } else {
            "closed"
        };
        let label = format!(
            "{} {} {} {} (rep {})",
            combo.label(),
            leg.name(),
            scenario,
            mode,
            rep + 1
        );
        eprintln!("sidebyside: {label} ...");
        let url = format!("{}{}", endpoint.url, origin.kind.query(scenario));
        let expect = self.expected_list_entries(&leg.spec, origin, scenario);
        let outcome = match combo.loadgen {
            LoadgenKind::Ours => {
                self.run_ours(endpoint, origin, &url, scenario, expect, rate, &label)?
            }
            LoadgenKind::Wrk => self.run_wrk(endpoint, origin, &url, scenario, expect, &label),
        };
        let (report, proxy_pss_kb_before, perf) = match outcome {
            Ok(r) => r,
            Err(problem) => {
                self.failures.push(format!("{label}: {problem:#}"));
                return Ok(None);
            }
        };
        if let Some(problem) = judge(scenario, &report) {
            self.failures.push(format!("{label}: {problem}"));
        }
        self.runs.push(Run {
            rep,
            combo: combo.label(),
            workers: combo.workers,
            origin: combo.origin,
            loadgen: combo.loadgen,
            leg: leg.name().to_owned(),
            scenario,
            proxy_pss_kb_before,
            perf_counts: perf.counts,
            perf_per_request: perf.per_request,
            perf_data: perf.data,
            report: report.clone(),
        });
        Ok(Some(report))
    }

    /// A run of our loadgen. The outer error is the harness's own (fatal); the inner one means
    /// this leg could not run (a failure of the run, recorded by the caller).
    #[allow(clippy::too_many_arguments)]
    fn run_ours(
        &self,
        endpoint: &Endpoint,
        origin: &OriginRun,
        url: &str,
        scenario: Scenario,
        expect: Option<usize>,
        rate: Option<f64>,
        label: &str,
    ) -> anyhow::Result<anyhow::Result<(LoadReport, Option<u64>, PerfResult)>> {
        let a = &self.args;
        let mut cmd = placed(&self.args, Role::Fixture, &self.loadgen);
        let origin_pids: Vec<String> = origin.pids.iter().map(u32::to_string).collect();
        cmd.args(["--url", url, "--scenario", scenario.name()])
            .args(["--threads", &a.loadgen_threads.to_string()])
            .args(["--watch", &format!("mock={}", origin_pids.join(","))]);
        if let Some(n) = expect {
            cmd.args(["--expect-list-entries", &n.to_string()]);
        }
        if let Some(call) = origin.kind.tool_call() {
            cmd.args(["--tool", &call.name, "--arguments", &call.arguments]);
        }
        if let Some(h) = self.auth_header(scenario) {
            cmd.args(["--header", &h]);
        }
        if !endpoint.proxy_pids.is_empty() {
            let pids: Vec<String> = endpoint.proxy_pids.iter().map(u32::to_string).collect();
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
        let proxy_pss_kb_before =
            if scenario == Scenario::IdleSse && !endpoint.proxy_pids.is_empty() {
                Some(
                    procstat::sample(&endpoint.proxy_pids)
                        .with_context(|| format!("{label}: reading proxy memory"))?
                        .pss_kb,
                )
            } else {
                None
            };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.loadgen.display()))?;
        // perf over the measured window (closed or open loop): it opens `warmup` after loadgen's
        // start (plus its handshake, a few ms); perf stops a little before the window's end.
        let perf = if scenario != Scenario::IdleSse {
            std::thread::sleep(Duration::from_secs_f64(a.warmup.max(0.0) + 0.05));
            self.perf_begin(&endpoint.proxy_pids, (a.duration - 0.15).max(0.1), label)?
        } else {
            None
        };
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Ok(Err(anyhow::anyhow!(
                "loadgen failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let report: LoadReport = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "{label}: loadgen output is not a report: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        let perf = match Self::perf_end(perf, report.requests, report.window_seconds) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok((report, proxy_pss_kb_before, perf)))
    }

    /// A run of wrk: the session opened here first (through the leg, as a client would), then
    /// wrk for warm-up + duration, the proxy's and origin's CPU read from /proc at the edges of
    /// the window the script counts answers in.
    fn run_wrk(
        &self,
        endpoint: &Endpoint,
        origin: &OriginRun,
        url: &str,
        scenario: Scenario,
        expect: Option<usize>,
        label: &str,
    ) -> anyhow::Result<(LoadReport, Option<u64>, PerfResult)> {
        let a = &self.args;
        let wrk = self
            .wrk
            .as_ref()
            .context("wrk is not installed (apt-get install -y wrk) or pass --wrk")?;
        if scenario == Scenario::IdleSse {
            bail!("wrk does not hold idle streams");
        }
        let mut target = Target::parse(url)?;
        let auth = self.auth_header(scenario);
        for h in a.headers.iter().chain(auth.iter()) {
            target.add_header(h)?;
        }
        let timeout = Duration::from_secs(5);
        let session = client::open_session(Driver::Auto, &target, timeout)
            .context("opening the session for wrk")?;
        let mut headers: Vec<(String, String)> = vec![
            ("Host".into(), target.host.clone()),
            ("Content-Type".into(), "application/json".into()),
            (
                "Accept".into(),
                "application/json, text/event-stream".into(),
            ),
            (
                "MCP-Protocol-Version".into(),
                mcpgate_bench::mcp::PROTOCOL_VERSION.into(),
            ),
        ];
        if let Some(s) = &session {
            headers.push(("Mcp-Session-Id".into(), s.clone()));
        }
        for h in a.headers.iter().chain(auth.iter()) {
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
        // The body with a sentinel id, split by the script and joined with each request's id.
        let sentinel: u64 = ID_SENTINEL.parse().context("id sentinel")?;
        let mut body = Vec::new();
        write_request_body(
            scenario,
            sentinel,
            origin.kind.tool_call().as_ref(),
            &mut body,
        );
        let warmup = Duration::from_secs_f64(a.warmup.max(0.0));
        let measure = Duration::from_secs_f64(a.duration.max(0.1));
        let start_ns = monotonic_ns();
        let start = Instant::now();
        let window_start_ns = start_ns + u64::try_from(warmup.as_nanos()).unwrap_or(u64::MAX);
        let window_end_ns = window_start_ns + u64::try_from(measure.as_nanos()).unwrap_or(u64::MAX);
        let script = WrkScript {
            path: target.path.clone(),
            headers,
            body_template: String::from_utf8_lossy(&body).into_owned(),
            expect_entries: expect,
            window_start_ns,
            window_end_ns,
        };
        let lua =
            std::env::temp_dir().join(format!("mcpgate-sidebyside-{}-wrk.lua", std::process::id()));
        std::fs::write(&lua, script.lua())?;
        // wrk's -d is whole seconds: round up past the window's end.
        let total = (warmup + measure).as_secs_f64() + 0.3;
        let mut cmd = placed(a, Role::Fixture, wrk);
        cmd.args(["-t", &a.loadgen_threads.to_string()])
            .args(["-c", &a.connections.max(a.loadgen_threads).to_string()])
            .args(["-d", &format!("{}s", total.ceil() as u64)])
            .args(["--timeout", "5s", "-s"])
            .arg(&lua)
            .arg(format!("http://{}{}", target.host, target.path))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", wrk.display()))?;
        let groups: [(&str, &[u32]); 2] = [("proxy", &endpoint.proxy_pids), ("mock", &origin.pids)];
        std::thread::sleep((start + warmup).saturating_duration_since(Instant::now()));
        let t0 = Instant::now();
        let before: Vec<procstat::Sample> = groups
            .iter()
            .map(|(_, p)| procstat::sample(p))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("{label}: reading /proc"))?;
        let perf = self.perf_begin(&endpoint.proxy_pids, measure.as_secs_f64() - 0.05, label)?;
        std::thread::sleep((start + warmup + measure).saturating_duration_since(Instant::now()));
        let after: Vec<procstat::Sample> = groups
            .iter()
            .map(|(_, p)| procstat::sample(p))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("{label}: reading /proc"))?;
        let window_s = t0.elapsed().as_secs_f64();
        let out = child.wait_with_output()?;
        let _ = std::fs::remove_file(&lua);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(w) = WrkOutput::parse(&stdout).filter(|_| out.status.success()) else {
            bail!(
                "wrk failed ({}): {} {}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        };
        let requests = w.requests_in_window;
        let perf = Self::perf_end(perf, requests, window_s)?;
        let mut watched = BTreeMap::new();
        for ((name, pids), (b, af)) in groups.iter().zip(before.iter().zip(&after)) {
            if !pids.is_empty() {
                watched.insert(
                    (*name).to_owned(),
                    procstat::watched(pids, b, af, requests, window_s, true),
                );
            }
        }
        let first_error = match (w.first_error.is_empty(), w.socket_errors()) {
            (false, _) => Some(w.first_error.clone()),
            (true, 0) => None,
            (true, n) => Some(format!(
                "{n} socket errors (connect {}, read {}, write {}, timeout {})",
                w.connect_errors, w.read_errors, w.write_errors, w.timeouts
            )),
        };
        let report = LoadReport {
            scenario: scenario.to_string(),
            mode: "closed".to_owned(),
            url: url.to_owned(),
            driver: "wrk".to_owned(),
            connections: a.connections,
            threads: a.loadgen_threads,
            rate: None,
            window_seconds: window_s,
            requests,
            errors: w.errors_in_window + w.socket_errors(),
            first_error,
            rps: requests as f64 / window_s.max(1e-9),
            latency_us: Percentiles {
                p50: w.p50,
                p90: w.p90,
                p99: w.p99,
                p999: w.p999,
                max: w.max,
                mean: w.mean,
            },
            service_us: None,
            watched,
            streams: None,
        };
        Ok((report, None, perf))
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
    /// `w1 wrk→nginx`; the parts follow.
    combo: String,
    workers: usize,
    origin: String,
    loadgen: String,
    scenario: String,
    leg: String,
    reps: usize,
    rps: Option<f64>,
    proxy_cpu_us_per_req: Option<f64>,
    /// Spread of the closed-loop CPU µs/req over the repetitions.
    proxy_cpu_us_per_req_min: Option<f64>,
    proxy_cpu_us_per_req_max: Option<f64>,
    proxy_cpu_us_per_req_at_rate: Option<f64>,
    proxy_cpu_us_per_req_at_rate_min: Option<f64>,
    proxy_cpu_us_per_req_at_rate_max: Option<f64>,
    cpu_vs_nginx: Option<f64>,
    /// Per repetition, this leg's CPU µs/req ÷ nginx's in the same repetition and combination;
    /// the median, min and max of those ratios (closed loop).
    cpu_vs_nginx_paired: Option<f64>,
    cpu_vs_nginx_paired_min: Option<f64>,
    cpu_vs_nginx_paired_max: Option<f64>,
    /// A/B variants only: this leg's median CPU µs/req ÷ the mcpgate leg's (closed loop).
    cpu_vs_mcpgate: Option<f64>,
    /// A/B variants only: per repetition, this leg's CPU µs/req ÷ the mcpgate leg's in the same
    /// repetition; the median, min and max of those ratios (closed loop, then at the fixed rate).
    cpu_vs_mcpgate_paired: Option<f64>,
    cpu_vs_mcpgate_paired_min: Option<f64>,
    cpu_vs_mcpgate_paired_max: Option<f64>,
    cpu_at_rate_vs_mcpgate_paired: Option<f64>,
    /// Repetitions that gave a pair.
    ab_pairs: usize,
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
    /// `--perf-stat`: per event, the median over repetitions of the proxy's count per request
    /// (closed loop), and the same at the fixed rate.
    perf_per_request: BTreeMap<String, f64>,
    perf_per_request_at_rate: BTreeMap<String, f64>,
    errors: u64,
}

/// The key of a combination's scenario in the fixed-rate map.
fn rate_key(combo: Combo, scenario: Scenario) -> String {
    format!("{} {scenario}", combo.label())
}

fn summarize(
    runs: &[Run],
    combo: Combo,
    scenario: Scenario,
    leg: &str,
    rates: &BTreeMap<String, f64>,
) -> Summary {
    let label = combo.label();
    let runs_of = |mode: &str| -> Vec<&Run> {
        runs.iter()
            .filter(|r| {
                r.combo == label && r.scenario == scenario && r.leg == leg && r.report.mode == mode
            })
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
        combo: label.clone(),
        workers: combo.workers,
        origin: combo.origin.name().to_owned(),
        loadgen: combo.loadgen.name().to_owned(),
        scenario: scenario.to_string(),
        leg: leg.to_owned(),
        reps: closed.len().max(idle.len()),
        rate: rates.get(&rate_key(combo, scenario)).copied(),
        errors: runs
            .iter()
            .filter(|r| r.combo == label && r.scenario == scenario && r.leg == leg)
            .map(|r| r.report.errors)
            .sum(),
        ..Default::default()
    };
    s.rps = med(&closed, &|r| Some(r.rps));
    s.perf_per_request = perf_medians(&runs_of("closed"));
    s.perf_per_request_at_rate = perf_medians(&runs_of("open"));
    s.proxy_cpu_us_per_req = med(&closed, &proxy_cpu);
    s.proxy_cpu_us_per_req_at_rate = med(&open, &proxy_cpu);
    (s.proxy_cpu_us_per_req_min, s.proxy_cpu_us_per_req_max) = spread(&closed, &proxy_cpu);
    (
        s.proxy_cpu_us_per_req_at_rate_min,
        s.proxy_cpu_us_per_req_at_rate_max,
    ) = spread(&open, &proxy_cpu);
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

/// Per perf event, the median over `runs` of its count per request.
fn perf_medians(runs: &[&Run]) -> BTreeMap<String, f64> {
    let events: std::collections::BTreeSet<&String> = runs
        .iter()
        .filter_map(|r| r.perf_per_request.as_ref())
        .flat_map(|m| m.keys())
        .collect();
    events
        .into_iter()
        .filter_map(|e| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.perf_per_request.as_ref()?.get(e).copied())
                .collect();
            median(&values).map(|m| (e.clone(), m))
        })
        .collect()
}

/// Min and max of `f` over `rs`.
fn spread(
    rs: &[&LoadReport],
    f: &dyn Fn(&LoadReport) -> Option<f64>,
) -> (Option<f64>, Option<f64>) {
    let values: Vec<f64> = rs
        .iter()
        .filter_map(|r| f(r))
        .filter(|x| x.is_finite())
        .collect();
    (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    )
}

/// The leg every A/B variant is compared with.
const BASELINE_LEG: &str = "mcpgate";

/// Per repetition: `leg`'s proxy CPU µs/req ÷ `base`'s in the same repetition, combination,
/// scenario and mode. Pairing within a repetition cancels the machine's drift between
/// repetitions, which on a shared machine is larger than a few-percent effect.
fn paired_ratios(
    runs: &[Run],
    combo: &str,
    scenario: &str,
    leg: &str,
    base: &str,
    mode: &str,
) -> Vec<f64> {
    let cpu = |r: &Run| {
        r.report
            .watched
            .get("proxy")
            .and_then(|w| w.cpu_us_per_request)
    };
    let same = |r: &Run, name: &str| {
        r.combo == combo && r.scenario.name() == scenario && r.leg == name && r.report.mode == mode
    };
    runs.iter()
        .filter(|r| same(r, leg))
        .filter_map(|v| {
            let base = runs.iter().find(|b| same(b, base) && b.rep == v.rep)?;
            let (v, b) = (cpu(v)?, cpu(base)?);
            (b > 0.0).then(|| v / b)
        })
        .collect()
}

fn add_comparisons(summaries: &mut [Summary], runs: &[Run], variants: &[String]) {
    let snapshot = summaries.to_vec();
    for s in summaries.iter_mut() {
        let same = |leg: &str| {
            snapshot
                .iter()
                .find(|o| o.combo == s.combo && o.scenario == s.scenario && o.leg == leg)
        };
        if let (Some(mine), Some(nginx)) = (
            s.proxy_cpu_us_per_req,
            same("nginx").and_then(|n| n.proxy_cpu_us_per_req),
        ) {
            s.cpu_vs_nginx = (nginx > 0.0).then(|| mine / nginx);
        }
        if s.leg != "nginx" && s.leg != "direct" {
            let paired = paired_ratios(runs, &s.combo, &s.scenario, &s.leg, "nginx", "closed");
            s.cpu_vs_nginx_paired = median(&paired);
            s.cpu_vs_nginx_paired_min = paired.iter().copied().reduce(f64::min);
            s.cpu_vs_nginx_paired_max = paired.iter().copied().reduce(f64::max);
        }
        if let Some(direct) = same("direct") {
            if s.leg != "direct" {
                s.added_p50_us_vs_direct = s.p50_us.zip(direct.p50_us).map(|(a, b)| a - b);
                s.added_p99_us_vs_direct = s.p99_us.zip(direct.p99_us).map(|(a, b)| a - b);
            }
        }
        if variants.contains(&s.leg) {
            if let (Some(mine), Some(base)) = (
                s.proxy_cpu_us_per_req,
                same(BASELINE_LEG).and_then(|b| b.proxy_cpu_us_per_req),
            ) {
                s.cpu_vs_mcpgate = (base > 0.0).then(|| mine / base);
            }
            let closed = paired_ratios(runs, &s.combo, &s.scenario, &s.leg, BASELINE_LEG, "closed");
            s.ab_pairs = closed.len();
            s.cpu_vs_mcpgate_paired = median(&closed);
            s.cpu_vs_mcpgate_paired_min = closed.iter().copied().reduce(f64::min);
            s.cpu_vs_mcpgate_paired_max = closed.iter().copied().reduce(f64::max);
            s.cpu_at_rate_vs_mcpgate_paired = median(&paired_ratios(
                runs,
                &s.combo,
                &s.scenario,
                &s.leg,
                BASELINE_LEG,
                "open",
            ));
        }
    }
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.decimals$}"))
}

fn fmt_range(lo: Option<f64>, hi: Option<f64>, decimals: usize) -> String {
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{lo:.decimals$}–{hi:.decimals$}"),
        _ => "-".to_owned(),
    }
}

/// A plain-text table: the first `left` columns left-aligned, the rest right-aligned, every
/// column as wide as its widest cell (widths in characters: `µ` and `–` are one each).
fn render_table(header: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            if i < left {
                let _ = write!(l, "{cell:<w$}");
            } else {
                let _ = write!(l, "{cell:>w$}");
            }
        }
        l.trim_end().to_owned()
    };
    let mut t = line(&mut header.iter().copied());
    t.push('\n');
    for row in rows {
        t.push_str(&line(&mut row.iter().map(String::as_str)));
        t.push('\n');
    }
    t
}

fn table(summaries: &[Summary], variants: &[String]) -> String {
    let mut t = String::new();
    let requests: Vec<&Summary> = summaries
        .iter()
        .filter(|s| s.scenario != "idle-sse")
        .collect();
    let ab = !variants.is_empty();
    if !requests.is_empty() {
        let mut header = vec![
            "combo",
            "scenario",
            "leg",
            "max rps",
            "cpu µs/req",
            "min–max",
            "@rate",
            "vs nginx",
            "paired (min–max)",
        ];
        if ab {
            header.push("vs mcpgate");
        }
        header.extend(["rate", "p50", "p99", "p99.9", "+p99", "mem MB"]);
        let rows: Vec<Vec<String>> = requests
            .iter()
            .map(|s| {
                let paired = match s.cpu_vs_nginx_paired {
                    Some(p) => format!(
                        "{p:.2} ({})",
                        fmt_range(s.cpu_vs_nginx_paired_min, s.cpu_vs_nginx_paired_max, 2)
                    ),
                    None => "-".to_owned(),
                };
                let mut row = vec![
                    s.combo.clone(),
                    s.scenario.clone(),
                    s.leg.clone(),
                    fmt_opt(s.rps, 0),
                    fmt_opt(s.proxy_cpu_us_per_req, 1),
                    fmt_range(s.proxy_cpu_us_per_req_min, s.proxy_cpu_us_per_req_max, 1),
                    fmt_opt(s.proxy_cpu_us_per_req_at_rate, 1),
                    fmt_opt(s.cpu_vs_nginx, 2),
                    paired,
                ];
                if ab {
                    row.push(fmt_opt(s.cpu_vs_mcpgate, 3));
                }
                row.extend([
                    fmt_opt(s.rate, 0),
                    fmt_opt(s.p50_us, 0),
                    fmt_opt(s.p99_us, 0),
                    fmt_opt(s.p999_us, 0),
                    fmt_opt(s.added_p99_us_vs_direct, 0),
                    fmt_opt(s.proxy_mem_mb, 1),
                ]);
                row
            })
            .collect();
        t.push_str(&render_table(&header, &rows, 3));
    }
    if ab {
        let base = |combo: &str, scenario: &str| {
            summaries
                .iter()
                .find(|o| o.combo == combo && o.scenario == scenario && o.leg == BASELINE_LEG)
        };
        let rows: Vec<Vec<String>> = requests
            .iter()
            .filter(|s| variants.contains(&s.leg))
            .map(|s| {
                let b = base(&s.combo, &s.scenario);
                vec![
                    s.combo.clone(),
                    s.scenario.clone(),
                    s.leg.clone(),
                    s.ab_pairs.to_string(),
                    fmt_opt(b.and_then(|b| b.proxy_cpu_us_per_req), 2),
                    fmt_range(
                        b.and_then(|b| b.proxy_cpu_us_per_req_min),
                        b.and_then(|b| b.proxy_cpu_us_per_req_max),
                        1,
                    ),
                    fmt_opt(s.proxy_cpu_us_per_req, 2),
                    fmt_range(s.proxy_cpu_us_per_req_min, s.proxy_cpu_us_per_req_max, 1),
                    fmt_opt(s.cpu_vs_mcpgate, 3),
                    fmt_opt(s.cpu_vs_mcpgate_paired, 3),
                    fmt_range(s.cpu_vs_mcpgate_paired_min, s.cpu_vs_mcpgate_paired_max, 3),
                    fmt_opt(s.cpu_at_rate_vs_mcpgate_paired, 3),
                ]
            })
            .collect();
        let _ = writeln!(
            t,
            "\nA/B against the mcpgate leg: proxy CPU µs/req, closed loop; paired = the median over \
             repetitions of variant ÷ mcpgate within each repetition"
        );
        t.push_str(&render_table(
            &[
                "combo",
                "scenario",
                "leg",
                "pairs",
                "mcpgate µs",
                "min–max",
                "leg µs",
                "min–max",
                "ratio of medians",
                "paired",
                "paired min–max",
                "paired @rate",
            ],
            &rows,
            3,
        ));
    }
    // (summary, mode, counts): closed loop, then at the fixed rate.
    let perf: Vec<(&Summary, &str, &BTreeMap<String, f64>)> = requests
        .iter()
        .flat_map(|s| {
            [
                (*s, "closed", &s.perf_per_request),
                (*s, "@rate", &s.perf_per_request_at_rate),
            ]
        })
        .filter(|(_, _, m)| !m.is_empty())
        .collect();
    if !perf.is_empty() {
        let events: std::collections::BTreeSet<&String> =
            perf.iter().flat_map(|(_, _, m)| m.keys()).collect();
        let short = |e: &str| -> String {
            match e {
                "task-clock" => "task-clock µs".to_owned(),
                "raw_syscalls:sys_enter" => "all syscalls".to_owned(),
                other => match other.strip_prefix("io_uring:io_uring_") {
                    Some(op) => format!("uring {op}"),
                    None => other
                        .strip_prefix("syscalls:sys_enter_")
                        .unwrap_or(other)
                        .to_owned(),
                },
            }
        };
        let mut header: Vec<String> = ["combo", "scenario", "leg", "mode"]
            .map(str::to_owned)
            .to_vec();
        header.extend(events.iter().map(|e| short(e)));
        let rows: Vec<Vec<String>> = perf
            .iter()
            .map(|(s, mode, counts)| {
                let mut row = vec![
                    s.combo.clone(),
                    s.scenario.clone(),
                    s.leg.clone(),
                    (*mode).to_owned(),
                ];
                for e in &events {
                    // perf's task-clock is in ms: per request, µs reads better.
                    let scale = if e.as_str() == "task-clock" {
                        1000.0
                    } else {
                        1.0
                    };
                    row.push(fmt_opt(counts.get(*e).map(|v| v * scale), 2));
                }
                row
            })
            .collect();
        let _ = writeln!(
            t,
            "\nperf stat of the proxy's processes, per request (medians over repetitions)"
        );
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        t.push_str(&render_table(&header, &rows, 4));
    }
    let idle: Vec<&Summary> = summaries
        .iter()
        .filter(|s| s.scenario == "idle-sse")
        .collect();
    if !idle.is_empty() {
        t.push('\n');
        let rows: Vec<Vec<String>> = idle
            .iter()
            .map(|s| {
                vec![
                    s.combo.clone(),
                    s.scenario.clone(),
                    s.leg.clone(),
                    fmt_opt(s.idle_streams_open, 0),
                    fmt_opt(s.proxy_mem_mb, 1),
                    fmt_opt(s.idle_proxy_kb_per_stream, 2),
                    fmt_opt(s.idle_proxy_cpu_percent, 2),
                ]
            })
            .collect();
        t.push_str(&render_table(
            &[
                "combo",
                "scenario",
                "leg",
                "streams open",
                "proxy mem MB",
                "KB/stream",
                "proxy CPU % idle",
            ],
            &rows,
            3,
        ));
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
    /// /proc/loadavg when the run ended (`machine` has the start's).
    loadavg_at_end: String,
    /// mcpgate's own startup line (workers, driver actually used).
    mcpgate_banner: Option<String>,
    args: &'a Args,
    workers: &'a [usize],
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
    // Taken now: the date and load average the run starts with (the end's would hide what the
    // machine was doing while it measured).
    let m = machine(nofile);
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
    let workers_list: Vec<usize> = if args.workers.is_empty() {
        vec![cores]
    } else {
        args.workers.clone()
    };
    if workers_list.contains(&0) {
        bail!("--workers must be at least 1");
    }
    let origin_threads = args.mock_threads.unwrap_or(cores).max(1);
    let loadgen = sibling("loadgen")?;
    let build_hint = "build with `cargo build -p mcpgate-bench --release --bins`";
    require_file(&loadgen, build_hint)?;
    require_file(&sibling("mock_upstream")?, build_hint)?;
    let mut loadgens = args.loadgens.clone();
    loadgens.dedup();
    let mut origins = args.origins.clone();
    origins.dedup();

    let dir = std::env::temp_dir().join(format!("mcpgate-sidebyside-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("sidebyside: logs and configs in {}", dir.display());

    let jwt = JwtKey::random()?;
    let specs = leg_specs(&args)?;
    let variant_names: Vec<String> = specs
        .iter()
        .filter(|s| s.variant)
        .map(|s| s.name.clone())
        .collect();
    let request_scenarios: Vec<Scenario> = args
        .scenarios
        .iter()
        .copied()
        .filter(|s| *s != Scenario::IdleSse)
        .collect();
    let mut needed: Vec<Policies> = args
        .scenarios
        .iter()
        .map(|&s| Policies::for_scenario(s))
        .collect();
    needed.sort();
    needed.dedup();
    for spec in &specs {
        for sc in args.scenarios.iter().filter(|&&sc| !spec.runs(sc)) {
            eprintln!(
                "sidebyside: NOTE: leg {} skips {sc}: its config has no {POLICIES_PLACEHOLDER}",
                spec.name
            );
        }
    }
    if args.scenarios.contains(&Scenario::IdleSse)
        && (origins.iter().any(|&o| o != OriginKind::Mock) || loadgens.contains(&LoadgenKind::Wrk))
    {
        eprintln!("sidebyside: NOTE: idle-sse runs with our loadgen and the mock origin only");
    }

    let wrk = find_in_path(&args.wrk);
    let mut h = Harness {
        args: args.clone(),
        loadgen,
        wrk,
        jwt: jwt.clone(),
        failures: Vec::new(),
        runs: Vec::new(),
        perf_dir: args.perf_record.clone().unwrap_or_else(|| dir.clone()),
    };
    if let Some(d) = &args.perf_record {
        std::fs::create_dir_all(d)?;
    }
    if loadgens.contains(&LoadgenKind::Wrk) && h.wrk.is_none() {
        h.failures.push(format!(
            "load generator wrk cannot run: {} not found (apt-get install -y wrk, or pass --wrk)",
            args.wrk.display()
        ));
        loadgens.retain(|&l| l != LoadgenKind::Wrk);
    }
    let mut mcpgate_banner = None;
    let mut rates: BTreeMap<String, f64> = BTreeMap::new();
    let mut combos: Vec<Combo> = Vec::new();
    for &workers in &workers_list {
        // Every origin and its legs run side by side, so the repetitions interleave all of them.
        let mut running: Vec<(OriginRun, Vec<Leg>)> = Vec::new();
        for &kind in &origins {
            let origin = match free_port()
                .and_then(|port| start_origin(&args, &dir, kind, origin_threads, port))
            {
                Ok(o) => o,
                Err(e) => {
                    h.failures.push(format!(
                        "origin {kind} (workers {workers}) cannot run: {e:#}"
                    ));
                    continue;
                }
            };
            let env = Env {
                args: &args,
                dir: &dir,
                origin: &origin,
                workers,
                jwt: &jwt,
            };
            let legs: Vec<Leg> = specs
                .iter()
                .map(|spec| start_leg(&env, spec, &needed, &mut h.failures))
                .collect();
            running.push((origin, legs));
        }
        if mcpgate_banner.is_none() {
            mcpgate_banner = banner(&dir);
        }
        for rep in 0..args.reps {
            for (origin, legs) in &mut running {
                // An origin that died (killed from outside, or crashed) is a failure of the run;
                // started again on its port, the other repetitions still measure something.
                let mut dead = Vec::new();
                check_alive(&mut [], &mut origin.procs, &mut dead);
                if !dead.is_empty() {
                    h.failures.extend(dead);
                    origin.procs.clear();
                    match start_origin(&args, &dir, origin.kind, origin_threads, origin.port) {
                        Ok(fresh) => *origin = fresh,
                        Err(e) => {
                            h.failures
                                .push(format!("origin {} not restarted: {e:#}", origin.kind));
                            continue;
                        }
                    }
                }
                let (origin, legs) = (&*origin, &*legs);
                // Rotating the order spreads drift of a shared machine over all legs.
                let order: Vec<usize> = (0..legs.len())
                    .map(|i| (i + rep) % legs.len().max(1))
                    .collect();
                for &scenario in request_scenarios
                    .iter()
                    .filter(|&&s| origin.kind.supports(s))
                {
                    for &lg in &loadgens {
                        let combo = Combo {
                            workers,
                            origin: origin.kind,
                            loadgen: lg,
                        };
                        if !combos.contains(&combo) {
                            combos.push(combo);
                        }
                        let mut max_rps = Vec::new();
                        for &i in &order {
                            if let Some(r) =
                                h.run_load(&legs[i], origin, combo, scenario, rep, None)?
                            {
                                if r.requests > 0 {
                                    max_rps.push(r.rps);
                                }
                            }
                        }
                        // The fixed-rate pass needs an open loop: our loadgen only.
                        if lg != LoadgenKind::Ours || args.closed_only {
                            continue;
                        }
                        let key = rate_key(combo, scenario);
                        let rate = match (args.rate, rates.get(&key)) {
                            (Some(r), _) => Some(r),
                            (None, Some(r)) => Some(*r),
                            (None, None) => max_rps
                                .iter()
                                .copied()
                                .reduce(f64::min)
                                .map(|m| (m * args.rate_fraction).max(1.0)),
                        };
                        let Some(rate) = rate else { continue };
                        rates.insert(key, rate);
                        for &i in &order {
                            h.run_load(&legs[i], origin, combo, scenario, rep, Some(rate))?;
                        }
                    }
                }
            }
            for (origin, legs) in &mut running {
                check_alive(legs, &mut origin.procs, &mut h.failures);
            }
        }
        // Idle streams run last, each on a freshly started proxy, so their memory neither
        // inflates the request scenarios' figures nor depends on what earlier repetitions left
        // allocated. Our loadgen and the mock only.
        for (_, legs) in &mut running {
            legs.clear();
        }
        let mock = running
            .iter_mut()
            .map(|(o, _)| o)
            .find(|o| o.kind == OriginKind::Mock);
        if let Some(origin) = mock.filter(|_| args.scenarios.contains(&Scenario::IdleSse)) {
            let combo = Combo {
                workers,
                origin: OriginKind::Mock,
                loadgen: LoadgenKind::Ours,
            };
            if !combos.contains(&combo) {
                combos.push(combo);
            }
            for rep in 0..args.reps {
                for k in 0..specs.len() {
                    let spec = &specs[(k + rep) % specs.len()];
                    let env = Env {
                        args: &args,
                        dir: &dir,
                        origin,
                        workers,
                        jwt: &jwt,
                    };
                    let mut leg = start_leg(&env, spec, &[Policies::None], &mut h.failures);
                    if leg.endpoint(Scenario::IdleSse).is_some() {
                        h.run_load(&leg, origin, combo, Scenario::IdleSse, rep, None)?;
                        check_alive(
                            std::slice::from_mut(&mut leg),
                            &mut origin.procs,
                            &mut h.failures,
                        );
                    }
                }
            }
        }
        drop(running);
    }

    let mut summaries = Vec::new();
    for &combo in &combos {
        for &scenario in &args.scenarios {
            let ran = h
                .runs
                .iter()
                .any(|r| r.combo == combo.label() && r.scenario == scenario);
            if !ran {
                continue;
            }
            for spec in specs.iter().filter(|s| s.runs(scenario)) {
                summaries.push(summarize(&h.runs, combo, scenario, &spec.name, &rates));
            }
        }
    }
    add_comparisons(&mut summaries, &h.runs, &variant_names);
    let t = table(&summaries, &variant_names);
    println!("{t}");
    println!(
        "started {} · nproc {} · kernel {} · {} · io_uring available: {} · workers {:?} · reps {} (medians) · load average at start {}",
        m.date_utc, m.nproc, m.kernel, m.cpu_model, m.io_uring_available, workers_list, args.reps, m.loadavg_at_start
    );
    if let Some(b) = &mcpgate_banner {
        println!("{b}");
    }
    let output = Output {
        machine: m,
        loadavg_at_end: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        mcpgate_banner,
        args: &args,
        workers: &workers_list,
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

/// mcpgate's own startup line (workers, driver actually used), from the first mcpgate log.
fn banner(dir: &Path) -> Option<String> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mcpgate") && n.ends_with(".log"))
        })
        .collect();
    logs.sort();
    logs.iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|log| {
            log.lines()
                .find(|l| l.contains("listening on"))
                .map(str::to_owned)
        })
}
