#!/usr/bin/env python3
"""Soak: mcpgate under steady half load for a long time, watched for leaks and failed requests.

    scripts/soak.py                         # 30 minutes (the figure recorded in bench/soak/)
    scripts/soak.py --duration 60           # the test command's form (scripts/test.sh)
    scripts/soak.py --record                # also append the result to bench/soak/RESULTS.md

What runs, all on loopback and all built from this checkout (release profile):
- the harness's mock MCP upstream (bench/src/bin/mock_upstream.rs: 100 tools, JSON and SSE
  answers, GET streams) — the soak is about the gateway, so its origin must not be the bottleneck;
- mcpgate with two APIs over it: `/mcp-proxy` plain pass-through, and `/mcp-acl` with the ACL
  (half the tools visible), the list cache and a rate-limit rule (with a ceiling far above the
  load, so every request runs the limiter without being refused);
- the harness's load generator (bench/src/bin/loadgen.rs), one process per traffic class, open
  loop (fixed intended send times, no coordinated omission): `tools/call` answered in JSON and in
  SSE on /mcp-proxy, `tools/list` on /mcp-acl (every answer must list exactly the visible tools),
  plus held GET event streams.

"Half load": each class is first run closed-loop for a few seconds to find its maximum rate on
this machine now; the soak then sends each class `--load` (0.5) × its share × that maximum, so the
classes together ask about half of what the machine can do.

Every `--interval` (10 s) the gateway's RSS, open file descriptors and CPU are sampled from /proc;
every `--reload-every` seconds it gets a SIGHUP (a reload under load). The run fails (exit 1) on:
any failed request; a class that did not get 95 % of its intended rate; RSS growing (the highest
sample of the last third above the highest of the first third by more than 10 % + 4 MiB); a client
connection still open 15 s after the load, or other descriptors (files, sockets that are
neither client nor pooled upstream connections) above their idle count; more pooled upstream
connections than the pool's cap; the gateway exiting, or
logging a panic. A JSON summary and the samples (CSV) are written to `--out`; `--record` appends
a line (date, machine, commit, figures) to bench/soak/RESULTS.md.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = 100
VISIBLE = TOOLS // 2
# Traffic classes: (name, scenario, path, share of the half load).
CLASSES = [
    ("call-json", "call-json", "/mcp-proxy", 0.5),
    ("call-sse", "call-sse", "/mcp-proxy", 0.25),
    ("list-acl", "list-acl", "/mcp-acl", 0.25),
]
IDLE_STREAMS = 64
RSS_GROWTH_RATIO = 1.10
RSS_GROWTH_SLACK_KB = 4096
FD_SLACK = 2
POOL_IDLE = 64  # [gateway.limits] upstream_pool_idle's default: idle upstream connections per worker


def log(message):
    print(f"soak: {message}", file=sys.stderr, flush=True)


def fail(message):
    log(f"FAILED: {message}")
    sys.exit(1)


def target_dir():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return Path(json.loads(out)["target_directory"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, deadline_s):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    fail(f"timed out after {deadline_s} s waiting for {what}")


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def proc_sample(pid):
    """RSS in KiB, open fds, CPU ticks (user + system) of one process."""
    rss_kb = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return rss_kb, fds, ticks


def tcp_sockets():
    """inode -> (local port, remote port, state) for every TCP socket of the machine."""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            table[f[9]] = (int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16), f[3])
    return table


def fd_kinds(pid, listen_port, upstream_port):
    """The gateway's fds by kind: client connections, upstream connections, everything else."""
    tcp = tcp_sockets()
    kinds = {"clients": 0, "upstream": 0, "other": 0}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed between listdir and readlink
        inode = target[len("socket:["):-1] if target.startswith("socket:[") else None
        local, remote, state = tcp.get(inode, (None, None, None))
        if local == listen_port and state != "0A":  # 0A = LISTEN
            kinds["clients"] += 1
        elif remote == upstream_port:
            kinds["upstream"] += 1
        else:
            kinds["other"] += 1
    return kinds


def gateway_config(listen_port, upstream, workers):
    visible = ", ".join(f'"tool_{i}"' for i in range(VISIBLE))
    return f"""# Generated by scripts/soak.py.
[gateway]
listen = "127.0.0.1:{listen_port}"
workers = {workers}
admin = ""

[[api]]
name = "plain"
path = "/mcp-proxy"
upstream = "{upstream}"

[[api]]
name = "governed"
path = "/mcp-acl"
upstream = "{upstream}"

[api.acl]
[[api.acl.rule]]
methods = ["tools/list", "tools/call"]
names = [{visible}]

[api.cache]
default_ttl = "2s"

[[api.limit]]
name = "ceiling"
key = "client_ip"
rate = "1000000/s"
"""


def loadgen_cmd(bins, url, scenario, *, duration, warmup, rate=None, connections=None):
    cmd = [
        str(bins / "loadgen"), "--url", url, "--scenario", scenario,
        "--duration", str(duration), "--warmup", str(warmup), "--timeout-ms", "5000",
    ]
    if scenario.startswith("list-acl"):
        cmd += ["--expect-list-entries", str(VISIBLE)]
    if rate is not None:
        cmd += ["--rate", f"{rate:.1f}"]
    if connections is not None:
        cmd += ["--connections", str(connections)]
    return cmd


def run_json(cmd):
    out = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} vCPU {model}, Linux {platform.release()}"


def commit():
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=1800.0, help="seconds of load (default 1800)")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--load", type=float, default=0.5, help="fraction of the measured maximum")
    ap.add_argument("--reload-every", type=float, default=None,
                    help="seconds between SIGHUPs (default: 300, or half the duration if shorter)")
    ap.add_argument("--workers", type=int, default=0, help="gateway workers (0 = one per core)")
    ap.add_argument("--out", type=Path, default=None, help="directory for summary.json, samples.csv")
    ap.add_argument("--record", action="store_true", help="append to bench/soak/RESULTS.md")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    args = ap.parse_args()

    reload_every = args.reload_every or min(300.0, args.duration / 2)
    tested_commit = commit()  # of the build below, not of whatever is checked out at the end
    tdir = target_dir()
    bins = tdir / "release"
    out_dir = args.out or tdir / "soak" / datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_build:
        log("cargo build --release -p mcpgate-bench --bins -p mcpgate-core")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "mcpgate-bench", "--bins",
                        "-p", "mcpgate-core"], cwd=ROOT, check=True)

    procs = []
    work = Path(tempfile.mkdtemp(prefix="mcpgate-soak-"))
    try:
        upstream_port = free_port()
        mock = subprocess.Popen(
            [str(bins / "mock_upstream"), "--listen", f"127.0.0.1:{upstream_port}",
             "--threads", "1", "--tools", str(TOOLS)],
            stdout=subprocess.DEVNULL, stderr=open(work / "mock.log", "w"))
        procs.append(mock)
        wait_for("the mock upstream", lambda: port_open(upstream_port), 10)

        listen_port = free_port()
        config = work / "soak.toml"
        config.write_text(gateway_config(listen_port, f"http://127.0.0.1:{upstream_port}/mcp",
                                         args.workers))
        gateway_log = work / "mcpgate.log"
        env = dict(os.environ, MCPGATE_LOG="info")
        gateway = subprocess.Popen([str(bins / "mcpgate"), "run", "--config", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=open(gateway_log, "w"), env=env)
        procs.append(gateway)
        wait_for("mcpgate's ready line",
                 lambda: "listening on" in gateway_log.read_text(errors="replace")
                 or gateway.poll() is not None, 20)
        if gateway.poll() is not None:
            fail(f"mcpgate exited at start:\n{gateway_log.read_text(errors='replace')}")
        base = f"http://127.0.0.1:{listen_port}"
        workers = args.workers or os.cpu_count()

        # Calibration: each class closed-loop on its own.
        targets = {}
        for name, scenario, path, share in CLASSES:
            report = run_json(loadgen_cmd(bins, base + path, scenario, duration=3, warmup=1))
            if report["errors"]:
                fail(f"calibration of {name}: {report['errors']} errors, first: {report['first_error']}")
            targets[name] = report["rps"] * share * args.load
            log(f"{name}: {report['rps']:.0f} req/s closed loop -> {targets[name]:.0f} req/s in the soak")

        idle_rss, idle_fds, _ = proc_sample(gateway.pid)
        idle_kinds = fd_kinds(gateway.pid, listen_port, upstream_port)
        log(f"idle gateway: RSS {idle_rss} KiB, {idle_fds} fds; {args.duration:.0f} s of load, "
            f"a sample every {args.interval:.0f} s, SIGHUP every {reload_every:.0f} s")

        loads = []
        for name, scenario, path, _ in CLASSES:
            cmd = loadgen_cmd(bins, base + path, scenario, duration=args.duration, warmup=0,
                              rate=targets[name])
            loads.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True)))
        streams = subprocess.Popen(
            loadgen_cmd(bins, base + "/mcp-proxy", "idle-sse", duration=args.duration, warmup=0,
                        connections=IDLE_STREAMS),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        loads.append(("idle-sse", streams))
        procs.extend(p for _, p in loads)

        ticks_per_s = os.sysconf("SC_CLK_TCK")
        samples = []
        start = time.monotonic()
        last_ticks, last_t = proc_sample(gateway.pid)[2], start
        next_sample, next_reload, reloads = start + args.interval, start + reload_every, 0
        while any(p.poll() is None for _, p in loads):
            now = time.monotonic()
            if gateway.poll() is not None:
                fail(f"mcpgate exited during the soak (status {gateway.returncode})")
            if now >= next_reload and now - start < args.duration - 1:
                gateway.send_signal(signal.SIGHUP)
                reloads += 1
                next_reload += reload_every
            if now >= next_sample:
                rss, fds, ticks = proc_sample(gateway.pid)
                cpu = 100.0 * (ticks - last_ticks) / ticks_per_s / (now - last_t)
                samples.append({"t_s": round(now - start, 1), "rss_kb": rss, "fds": fds,
                                "cpu_percent": round(cpu, 1)})
                last_ticks, last_t = ticks, now
                next_sample += args.interval
            time.sleep(0.05)

        reports = {}
        for name, p in loads:
            stdout, stderr = p.communicate()
            if p.returncode != 0:
                fail(f"loadgen {name} exited {p.returncode}: {stderr.strip()[-2000:]}")
            reports[name] = json.loads(stdout)

        # After the load every client connection must be gone and nothing else may have piled
        # up; the upstream pool keeps idle connections on purpose, up to its cap.
        after = {}

        def fds_back():
            after.update(fd_kinds(gateway.pid, listen_port, upstream_port))
            return after["clients"] == 0 and after["other"] <= idle_kinds["other"] + FD_SLACK
        deadline = time.monotonic() + 15
        while not fds_back() and time.monotonic() < deadline:
            time.sleep(0.1)
        after_fds = proc_sample(gateway.pid)[1]
        after_rss = proc_sample(gateway.pid)[0]

        with open(out_dir / "samples.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["t_s", "rss_kb", "fds", "cpu_percent"])
            writer.writeheader()
            writer.writerows(samples)

        problems = []
        if after["clients"] or after["other"] > idle_kinds["other"] + FD_SLACK:
            problems.append(f"fds 15 s after the load: {after} (idle before it: {idle_kinds})")
        if after["upstream"] > POOL_IDLE * workers:
            problems.append(f"{after['upstream']} upstream connections kept, more than the pool's "
                            f"{POOL_IDLE} per worker")
        gateway_text = gateway_log.read_text(errors="replace")
        if "panicked" in gateway_text:
            problems.append("the gateway logged a panic")
        reload_lines = gateway_text.count("reload: configuration from")
        if reload_lines < reloads:
            problems.append(f"{reloads} SIGHUPs sent, {reload_lines} reloads applied")
        for name, report in reports.items():
            if name == "idle-sse":
                streams_report = report.get("streams") or {}
                if streams_report.get("opened") != IDLE_STREAMS or streams_report.get("dropped"):
                    problems.append(f"idle-sse: {streams_report}")
                continue
            if report["errors"]:
                problems.append(f"{name}: {report['errors']} failed requests, first: "
                                f"{report['first_error']}")
            achieved = report["requests"] / max(report["window_seconds"], 1e-9)
            if achieved < 0.95 * targets[name]:
                problems.append(f"{name}: {achieved:.0f} req/s of {targets[name]:.0f} intended")
        if len(samples) >= 3:
            third = max(1, len(samples) // 3)
            first = max(s["rss_kb"] for s in samples[:third])
            last = max(s["rss_kb"] for s in samples[-third:])
            if last > first * RSS_GROWTH_RATIO + RSS_GROWTH_SLACK_KB:
                problems.append(f"RSS grew: highest of the first third {first} KiB, of the last "
                                f"third {last} KiB")
        else:
            problems.append(f"only {len(samples)} samples: run longer than 3 intervals")

        total = sum(r["requests"] for n, r in reports.items() if n != "idle-sse")
        cpu_samples = sorted(s["cpu_percent"] for s in samples)
        summary = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "commit": tested_commit,
            "duration_s": args.duration,
            "load": args.load,
            "reloads_sent": reloads,
            "reload_log_lines": reload_lines,
            "classes": {
                n: {"intended_rps": round(targets[n], 1), "requests": reports[n]["requests"],
                    "errors": reports[n]["errors"],
                    "p99_us": reports[n]["latency_us"]["p99"], "max_us": reports[n]["latency_us"]["max"]}
                for n, *_ in CLASSES
            },
            "idle_streams": reports["idle-sse"].get("streams"),
            "requests": total,
            "rss_kb": {"idle": idle_rss, "first_sample": samples[0]["rss_kb"] if samples else None,
                       "max": max((s["rss_kb"] for s in samples), default=None),
                       "last_sample": samples[-1]["rss_kb"] if samples else None,
                       "after": after_rss},
            "fds": {"idle": idle_fds, "max": max((s["fds"] for s in samples), default=None),
                    "after": after_fds, "idle_by_kind": idle_kinds, "after_by_kind": after},
            "cpu_percent_median": cpu_samples[len(cpu_samples) // 2] if cpu_samples else None,
            "problems": problems,
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        log(f"summary: {out_dir / 'summary.json'}")
        print(json.dumps(summary, indent=2))
        if args.record:
            record(summary)
        if problems:
            fail("; ".join(problems))
        log(f"ok: {total} requests, 0 failed; RSS {summary['rss_kb']}; fds {summary['fds']}")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def record(summary):
    path = ROOT / "bench" / "soak" / "RESULTS.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(
            "# Soak results\n\n"
            "Appended by `scripts/soak.py --record` (see its header for what runs and what fails "
            "a run). RSS in MiB: idle before the load / first sample / highest / last sample / "
            "after the load. fds: idle / highest / after. CPU: median of the gateway's samples "
            "(100 % = one core).\n\n"
            "| Date | Machine | Commit | Duration | Requests (failed) | Classes req/s intended | "
            "RSS MiB | fds | CPU % | SIGHUPs | Result |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    rss = summary["rss_kb"]
    mib = lambda kb: "-" if kb is None else f"{kb / 1024:.1f}"  # noqa: E731
    classes = ", ".join(f"{n} {c['intended_rps']:.0f}" for n, c in summary["classes"].items())
    failed = sum(c["errors"] for c in summary["classes"].values())
    row = (f"| {summary['date']} | {summary['machine']} | {summary['commit']} | "
           f"{summary['duration_s'] / 60:.0f} min | {summary['requests']} ({failed}) | {classes} | "
           f"{mib(rss['idle'])} / {mib(rss['first_sample'])} / {mib(rss['max'])} / "
           f"{mib(rss['last_sample'])} / {mib(rss['after'])} | "
           f"{summary['fds']['idle']} / {summary['fds']['max']} / {summary['fds']['after']} | "
           f"{summary['cpu_percent_median']} | {summary['reloads_sent']} | "
           f"{'ok' if not summary['problems'] else '; '.join(summary['problems'])} |\n")
    with open(path, "a") as f:
        f.write(row)
    log(f"recorded in {path}")


if __name__ == "__main__":
    main()
