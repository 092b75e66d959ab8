//! The textual forms of limits: a rate `"N/INTERVAL"` (`"10/1m"`, `"5/60s"`, `"100/s"`), a quota
//! `"N/PERIOD"` (`"1000/day"`, `"50000/month"`), and the command line's
//! `--limit 'METHOD[:NAME]=N/INTERVAL'`.

use std::time::Duration;

use super::quota::Period;
use super::LimitError;

/// An interval: an integer and a unit (`ms`, `s`, `m`, `h`, `d`), or a bare unit meaning one.
pub fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = if digits.is_empty() {
        1
    } else {
        digits.parse().ok()?
    };
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

fn split_count(s: &str, field: &str) -> Result<(u32, String), LimitError> {
    let (count, rest) = s
        .split_once('/')
        .ok_or_else(|| LimitError::new(field, format!("`{s}`: expected N/{}", unit_hint(field))))?;
    let count: u32 = count.trim().parse().map_err(|_| {
        LimitError::new(field, format!("`{s}`: the count must be an integer from 1"))
    })?;
    if count == 0 {
        return Err(LimitError::new(
            field,
            format!("`{s}`: the count must be at least 1"),
        ));
    }
    Ok((count, rest.trim().to_string()))
}

fn unit_hint(field: &str) -> &'static str {
    if field == "quota" {
        "hour|day|month"
    } else {
        "INTERVAL (like 10/1m, 5/60s)"
    }
}

/// `"N/INTERVAL"`.
pub fn parse_rate(s: &str) -> Result<(u32, Duration), LimitError> {
    let (count, interval) = split_count(s, "rate")?;
    let interval = parse_interval(&interval).ok_or_else(|| {
        LimitError::new(
            "rate",
            format!("`{s}`: the interval is an integer and a unit (ms, s, m, h, d), like 60s"),
        )
    })?;
    Ok((count, interval))
}

/// `"N/hour"`, `"N/day"`, `"N/month"`.
pub fn parse_quota(s: &str) -> Result<(u32, Period), LimitError> {
    let (count, period) = split_count(s, "quota")?;
    let period = Period::parse(&period).ok_or_else(|| {
        LimitError::new(
            "quota",
            format!("`{s}`: the period is hour, day or month (UTC calendar)"),
        )
    })?;
    Ok((count, period))
}

/// One `--limit` of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliLimit {
    pub method: String,
    pub name: Option<String>,
    pub count: u32,
    pub interval: Duration,
}

/// `METHOD[:NAME]=N/INTERVAL`. The method has no `:`; the name (a tool, prompt or resource URI)
/// is everything between the first `:` and the last `=`.
pub fn parse_cli_limit(s: &str) -> Result<CliLimit, LimitError> {
    let (selector, rate) = s.rsplit_once('=').ok_or_else(|| {
        LimitError::new(
            "--limit",
            format!("`{s}`: expected METHOD[:NAME]=N/INTERVAL"),
        )
    })?;
    let (method, name) = match selector.split_once(':') {
        Some((m, n)) => (m, Some(n)),
        None => (selector, None),
    };
    if method.is_empty() || method.trim() != method {
        return Err(LimitError::new("--limit", format!("`{s}`: no method")));
    }
    if name.is_some_and(str::is_empty) {
        return Err(LimitError::new(
            "--limit",
            format!("`{s}`: empty name after `:`"),
        ));
    }
    let (count, interval) = parse_rate(rate)
        .map_err(|e| LimitError::new("--limit", format!("`{s}`: {}", e.message)))?;
    Ok(CliLimit {
        method: method.to_string(),
        name: name.map(str::to_string),
        count,
        interval,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_quotas() {
        assert_eq!(parse_rate("10/1m").unwrap(), (10, Duration::from_secs(60)));
        assert_eq!(parse_rate("5/60s").unwrap(), (5, Duration::from_secs(60)));
        assert_eq!(parse_rate("100/s").unwrap(), (100, Duration::from_secs(1)));
        assert_eq!(
            parse_rate(" 3 / 250ms ").unwrap(),
            (3, Duration::from_millis(250))
        );
        for bad in ["10", "0/1s", "x/1s", "10/0s", "10/1w", "10/", "-1/1s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_quota("1000/day").unwrap(), (1000, Period::Day));
        assert_eq!(parse_quota("5/month").unwrap(), (5, Period::Month));
        assert!(parse_quota("5/week").is_err());
    }

    #[test]
    fn cli_limits() {
        assert_eq!(
            parse_cli_limit("tools/call=5/60s").unwrap(),
            CliLimit {
                method: "tools/call".into(),
                name: None,
                count: 5,
                interval: Duration::from_secs(60)
            }
        );
        let named = parse_cli_limit("tools/call:echo=2/10s").unwrap();
        assert_eq!(named.name.as_deref(), Some("echo"));
        let uri = parse_cli_limit("resources/read:file:///a=b=1/1s").unwrap();
        assert_eq!(uri.method, "resources/read");
        assert_eq!(uri.name.as_deref(), Some("file:///a=b"));
        for bad in ["tools/call", "=1/1s", "tools/call:=1/1s", "tools/call=1/x"] {
            let e = parse_cli_limit(bad).unwrap_err();
            assert_eq!(e.at, "--limit", "{bad}");
        }
    }
}
