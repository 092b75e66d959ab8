//! The JSON the load generator prints and the side-by-side driver reads back and aggregates.
//! One struct on both sides so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// CPU and memory of one watched group of processes (e.g. "proxy", "mock") over the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Watched {
    pub pids: Vec<u32>,
    pub cpu_us: u64,
    /// CPU time over requests completed in the window; absent when no request completed.
    pub cpu_us_per_request: Option<f64>,
    /// CPU time over wall time of the window, in percent of one core.
    pub cpu_percent: f64,
    pub rss_kb_start: u64,
    pub rss_kb_end: u64,
    pub pss_kb_end: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IdleStreams {
    pub wanted: u64,
    pub opened: u64,
    pub failed: u64,
    /// Streams that ended before the hold was over.
    pub dropped: u64,
    pub keepalive_bytes: u64,
    pub open_seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadReport {
    pub scenario: String,
    /// "closed", "open" or "idle".
    pub mode: String,
    pub url: String,
    pub driver: String,
    pub connections: u64,
    pub threads: u64,
    /// Target rate of the open loop, requests/s.
    pub rate: Option<f64>,
    pub window_seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub rps: f64,
    /// Open loop: from the intended send time (see README, "Method"); closed loop: from send.
    pub latency_us: Percentiles,
    /// Open loop only: from the moment the request was actually written.
    pub service_us: Option<Percentiles>,
    pub watched: BTreeMap<String, Watched>,
    pub streams: Option<IdleStreams>,
}

/// Median of the values (mean of the two middle ones for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn report_roundtrips_through_json() {
        let mut r = LoadReport {
            scenario: "call-json".into(),
            requests: 7,
            ..Default::default()
        };
        r.watched.insert(
            "proxy".into(),
            Watched {
                pids: vec![1, 2],
                cpu_us: 10,
                ..Default::default()
            },
        );
        let text = serde_json::to_string(&r).unwrap_or_default();
        let back: LoadReport = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, r);
    }
}
