//! Reading a process's CPU time and memory from /proc, for "CPU per request" and RSS figures.
//! `/proc/PID/stat` utime+stime already sums every thread of the process; multi-process servers
//! (nginx master + workers) are measured by summing the pids of the tree.

use std::io;
use std::time::Duration;

/// CPU time (user + system) and resident memory of a set of processes at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub cpu_ticks: u64,
    pub rss_kb: u64,
    /// Proportional set size: shared pages split between the processes sharing them, so a
    /// master + workers group is not counted several times over.
    pub pss_kb: u64,
}

/// Clock ticks per second, the unit of utime/stime in /proc.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

pub fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_micros(ticks.saturating_mul(1_000_000) / clock_ticks_per_sec())
}

/// The fields of /proc/PID/stat after the `(comm)` field, which may itself hold spaces or ')'.
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let close = text.rfind(')')?;
    Some(text.get(close + 1..)?.split_ascii_whitespace().collect())
}

/// utime + stime of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc stat"))
}

fn parse_cpu_ticks(text: &str) -> Option<u64> {
    let f = stat_fields(text)?;
    // After comm: [0]=state (field 3), so utime (field 14) is [11] and stime (field 15) is [12].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn parse_ppid(text: &str) -> Option<u32> {
    stat_fields(text)?.get(1)?.parse().ok()
}

/// VmRSS of `pid` in KiB (0 for a zombie or kernel thread, which have none).
pub fn rss_kb(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0))
}

/// Pss of `pid` in KiB from smaps_rollup (0 when the kernel does not provide it).
pub fn pss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Direct children of `pid` (nginx workers of a master).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|t| parse_ppid(&t))
                == Some(pid)
        })
        .collect()
}

/// Sums CPU and RSS over `pids`; a pid that has gone away is an error (the measurement would lie).
pub fn sample(pids: &[u32]) -> io::Result<Sample> {
    let mut s = Sample::default();
    for &pid in pids {
        s.cpu_ticks += cpu_ticks(pid)?;
        s.rss_kb += rss_kb(pid)?;
        s.pss_kb += pss_kb(pid);
    }
    Ok(s)
}

/// CPU and memory of `pids` between two samples: CPU per request over `requests` when
/// `per_request` (closed/open loop runs; not idle streams), CPU % of one core over `window_s`.
pub fn watched(
    pids: &[u32],
    before: &Sample,
    after: &Sample,
    requests: u64,
    window_s: f64,
    per_request: bool,
) -> crate::report::Watched {
    let cpu_us = u64::try_from(
        ticks_to_duration(after.cpu_ticks.saturating_sub(before.cpu_ticks)).as_micros(),
    )
    .unwrap_or(u64::MAX);
    crate::report::Watched {
        pids: pids.to_vec(),
        cpu_us,
        cpu_us_per_request: (requests > 0 && per_request).then(|| cpu_us as f64 / requests as f64),
        cpu_percent: cpu_us as f64 / (window_s.max(1e-9) * 1e6) * 100.0,
        rss_kb_start: before.rss_kb,
        rss_kb_end: after.rss_kb,
        pss_kb_end: after.pss_kb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let line = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 1000 50";
        assert_eq!(parse_cpu_ticks(line), Some(325));
        assert_eq!(parse_ppid(line), Some(1));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_process_is_measurable_and_cpu_grows() {
        let me = std::process::id();
        let before = sample(&[me]).unwrap_or_default();
        assert!(before.rss_kb > 0);
        assert!(
            before.pss_kb > 0 && before.pss_kb <= before.rss_kb,
            "{before:?}"
        );
        // Burn a little CPU (more than one clock tick) and check the counter moves.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = sample(&[me]).unwrap_or_default();
        assert!(
            after.cpu_ticks > before.cpu_ticks,
            "cpu ticks {before:?} -> {after:?}"
        );
    }
}
