//! `perf` around a measured window: `perf stat` counts (syscalls by name, context switches) of
//! the proxy's processes, or a `perf record -g` profile, over the same seconds the load generator
//! measures, so they can be divided by the same request count. The side-by-side driver starts
//! perf when the window opens (`-p PIDS -- sleep SECONDS`) and reads its CSV output afterwards.
//!
//! Tracepoint counting costs the traced process a little per syscall, so runs with `--perf-stat`
//! are for counting, not for the CPU-per-request ratios (take those in a run without it).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Events counted by default: CPU time as perf sees it, scheduling, every syscall, the syscalls
/// a proxy makes per request with io_uring (mcpgate) or epoll (nginx), and io_uring's own work:
/// operations submitted, operations that found no data and armed a poll (a read issued before
/// the bytes were there), operations punted to io-wq worker threads, and task-work runs.
pub const DEFAULT_EVENTS: &str = "task-clock,context-switches,cpu-migrations,\
raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait,\
syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_recvfrom,\
syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_write,\
syscalls:sys_enter_readv,syscalls:sys_enter_writev,syscalls:sys_enter_sendmsg,\
syscalls:sys_enter_recvmsg,syscalls:sys_enter_accept4,syscalls:sys_enter_close,\
syscalls:sys_enter_futex,io_uring:io_uring_submit_req,io_uring:io_uring_poll_arm,\
io_uring:io_uring_queue_async_work,io_uring:io_uring_task_work_run";

/// What perf does over a window.
#[derive(Debug, Clone)]
pub enum PerfMode {
    /// `perf stat -x, -e EVENTS`.
    Stat { events: String },
    /// `perf record -g` (call graphs, default frequency).
    Record,
}

/// Starts perf on `pids` for `seconds`, writing to `out` (CSV for stat, perf.data for record).
pub fn start(
    perf: &Path,
    mode: &PerfMode,
    pids: &[u32],
    seconds: f64,
    out: &Path,
) -> std::io::Result<Child> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let mut cmd = Command::new(perf);
    match mode {
        PerfMode::Stat { events } => {
            cmd.args(["stat", "-x", ",", "-e", events]);
        }
        PerfMode::Record => {
            cmd.args(["record", "-g", "-q"]);
        }
    }
    cmd.arg("-o")
        .arg(out)
        .args(["-p", &pids.join(",")])
        .args(["--", "sleep", &format!("{seconds:.3}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
}

/// Counts from `perf stat -x,` output: event name → count (events perf could not count are
/// left out).
pub fn parse_stat_csv(text: &str) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(value), Some(event)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            // perf prefixes tracepoints with nothing and software events with nothing either;
            // keep the name as given on the command line.
            counts.insert(event.trim().to_owned(), v);
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perf_stat_csv() {
        let text =
            "# started on Mon\n\n5023.12,msec,task-clock,5023120000,100.00,0.999,CPUs utilized\n\
                    1234,,context-switches,5023120000,100.00,245.6,/sec\n\
                    <not counted>,,syscalls:sys_enter_epoll_wait,0,0.00,,\n\
                    99,,syscalls:sys_enter_io_uring_enter,5023120000,100.00,,\n";
        let c = parse_stat_csv(text);
        assert_eq!(c.get("context-switches"), Some(&1234.0));
        assert_eq!(c.get("task-clock"), Some(&5023.12));
        assert_eq!(c.get("syscalls:sys_enter_io_uring_enter"), Some(&99.0));
        assert!(!c.contains_key("syscalls:sys_enter_epoll_wait"));
    }
}
