//! `[gateway.traces]`: OpenTelemetry traces of exchanges exported over OTLP/HTTP protobuf (docs
//! observability.md, "Traces"). Off unless the table is present with an `endpoint`. Read at
//! start, like `[gateway.log]`: a reload keeps the exporter it has.
//!
//! ```toml
//! [gateway.traces]
//! endpoint = "http://otel-collector:4318/v1/traces"
//! sample_ratio = 0.1          # of new traces; a client's sampled flag is followed
//! batch_size = 512
//! batch_interval = "1s"
//! queue_capacity = 8192       # spans waiting; past it, dropped and counted
//! timeout = "5s"
//! max_attempts = 3
//! service_name = "mcpgate"
//! headers = { "x-api-key" = "…" }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};
use crate::observe::trace::TracesConfig;

/// `[gateway.traces]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTraces {
    pub enabled: Option<bool>,
    pub endpoint: Option<Spanned<String>>,
    pub sample_ratio: Option<Spanned<f64>>,
    pub batch_size: Option<usize>,
    pub batch_interval: Option<Spanned<String>>,
    pub queue_capacity: Option<usize>,
    pub timeout: Option<Spanned<String>>,
    pub max_attempts: Option<u32>,
    pub service_name: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Validator<'_> {
    pub(super) fn traces(
        &self,
        t: Option<UserTraces>,
    ) -> Result<Option<TracesConfig>, ConfigError> {
        let Some(t) = t else {
            return Ok(None);
        };
        let enabled = t.enabled.unwrap_or(true);
        if !enabled && t.endpoint.is_none() {
            return Ok(None);
        }
        let Some(endpoint) = t.endpoint else {
            return Err(self.invalid(
                None,
                "gateway.traces.endpoint",
                "traces need `endpoint = \"http://collector:4318/v1/traces\"` (or `enabled = false`)",
            ));
        };
        crate::engine::http_client::HttpUrl::parse(endpoint.get_ref()).map_err(|e| {
            self.invalid(
                Some(endpoint.span()),
                "gateway.traces.endpoint",
                e.to_string(),
            )
        })?;
        let sample_ppm = match t.sample_ratio {
            None => 1_000_000,
            Some(r) if (0.0..=1.0).contains(r.get_ref()) => (r.get_ref() * 1e6).round() as u32,
            Some(r) => {
                return Err(self.invalid(
                    Some(r.span()),
                    "gateway.traces.sample_ratio",
                    "must be between 0.0 and 1.0",
                ))
            }
        };
        let bounded = |v: Option<usize>, field: &str, default: usize, max: usize| match v {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(_) => Err(self.invalid(None, field, format!("must be between 1 and {max}"))),
        };
        let batch_size = bounded(t.batch_size, "gateway.traces.batch_size", 512, 65_536)?;
        let queue_capacity = bounded(
            t.queue_capacity,
            "gateway.traces.queue_capacity",
            8192,
            10_000_000,
        )?;
        let max_attempts = match t.max_attempts {
            None => 3,
            Some(n) if (1..=10).contains(&n) => n,
            Some(_) => {
                return Err(self.invalid(
                    None,
                    "gateway.traces.max_attempts",
                    "must be between 1 and 10",
                ))
            }
        };
        for (name, value) in &t.headers {
            let bad_name =
                name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            let bad_value = value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
            if bad_name || bad_value {
                return Err(self.invalid(
                    None,
                    &format!("gateway.traces.headers.{name}"),
                    "not a valid HTTP header name and value",
                ));
            }
        }
        let config = TracesConfig {
            endpoint: endpoint.into_inner(),
            sample_ppm,
            batch_size,
            batch_interval: self.duration_at(
                t.batch_interval,
                "gateway.traces.batch_interval",
                Duration::from_secs(1),
            )?,
            queue_capacity,
            headers: t.headers.into_iter().collect(),
            timeout: self.duration_at(
                t.timeout,
                "gateway.traces.timeout",
                Duration::from_secs(5),
            )?,
            max_attempts,
            service_name: t.service_name.unwrap_or_else(|| "mcpgate".into()),
        };
        // A disabled table is still checked: turning it on later must not be the surprise.
        Ok(enabled.then_some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load_str, Config, ConfigError, Overrides};

    const BASE: &str = "[gateway]\nlisten = \"127.0.0.1:0\"\n";
    const API: &str =
        "[[api]]\nname = \"a\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n";

    fn load(extra: &str) -> Result<Config, ConfigError> {
        load_str(
            &format!("{BASE}{extra}{API}"),
            "test.toml",
            &Overrides::default(),
        )
    }

    #[test]
    fn off_by_default_and_read_when_present() {
        let cfg = load("").unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.traces.is_none());
        let cfg = load(
            "[gateway.traces]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nsample_ratio = 0.25\n\
             batch_size = 10\nbatch_interval = \"200ms\"\nqueue_capacity = 100\ntimeout = \"2s\"\n\
             max_attempts = 1\nservice_name = \"gw\"\nheaders = { \"x-key\" = \"v\" }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = cfg.traces.unwrap_or_else(|| panic!("traces"));
        assert_eq!(t.sample_ppm, 250_000);
        assert_eq!(
            (t.batch_size, t.queue_capacity, t.max_attempts),
            (10, 100, 1)
        );
        assert_eq!(t.batch_interval, std::time::Duration::from_millis(200));
        assert_eq!(t.headers, vec![("x-key".to_string(), "v".to_string())]);
        assert_eq!(t.service_name, "gw");
        let off = load("[gateway.traces]\nenabled = false\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(off.traces.is_none());
        let off =
            load("[gateway.traces]\nenabled = false\nendpoint = \"http://c:4318/v1/traces\"\n")
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(off.traces.is_none());
        assert!(load(
            "[gateway.traces]\nenabled = false\nendpoint = \"http://c/\"\nbatch_size = 0\n"
        )
        .is_err());
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("[gateway.traces]\nsample_ratio = 0.5\n", "gateway.traces.endpoint"),
            ("[gateway.traces]\nendpoint = \"ftp://x/\"\n", "gateway.traces.endpoint"),
            (
                "[gateway.traces]\nendpoint = \"http://c/v1/traces\"\nsample_ratio = 1.5\n",
                "gateway.traces.sample_ratio",
            ),
            (
                "[gateway.traces]\nendpoint = \"http://c/v1/traces\"\nbatch_size = 0\n",
                "gateway.traces.batch_size",
            ),
            (
                "[gateway.traces]\nendpoint = \"http://c/v1/traces\"\nbatch_interval = \"soon\"\n",
                "gateway.traces.batch_interval",
            ),
            (
                "[gateway.traces]\nendpoint = \"http://c/v1/traces\"\nheaders = { \"a b\" = \"v\" }\n",
                "gateway.traces.headers.a b",
            ),
        ] {
            let e = load(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}
