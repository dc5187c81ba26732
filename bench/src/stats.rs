//! Latency and outcome recording: one HDR histogram (microsecond precision,
//! 3 significant digits) per virtual user, merged at the end of a phase.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency the histograms hold (longer ones are clamped): 10 minutes.
const MAX_US: u64 = 600_000_000;

/// How one answered request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// `412 Precondition Failed` on a conditional write: counted apart,
    /// not as an error (the client re-reads and carries on).
    Conflict,
    /// Anything else: the HTTP status (`"500"`), `"io"`, `"timeout"`, or a
    /// database error code in limit mode (`"db:…"`).
    Error(String),
}

/// Outcomes and latencies of one phase (or one operation inside a mix).
#[derive(Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    conflicts: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"),
            errors: BTreeMap::new(),
            conflicts: 0,
        }
    }

    /// Records one answered request.
    pub fn record(&mut self, latency: Duration, outcome: &Outcome) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_US);
        self.hist.saturating_record(us);
        match outcome {
            Outcome::Ok => {}
            Outcome::Conflict => self.conflicts += 1,
            Outcome::Error(e) => *self.errors.entry(e.clone()).or_default() += 1,
        }
    }

    /// Adds `other` into this one.
    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.hist.add(&other.hist);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.conflicts += other.conflicts;
    }

    /// The figures of this recorder over a measured window of `secs`.
    pub fn summary(&self, secs: f64) -> Summary {
        let q = |p: f64| self.hist.value_at_quantile(p);
        let n = self.hist.len();
        Summary {
            requests: n,
            seconds: secs,
            rps: if secs > 0.0 { n as f64 / secs } else { 0.0 },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            max_us: self.hist.max(),
            mean_us: self.hist.mean(),
            errors: self.errors.clone(),
            error_count: self.errors.values().sum(),
            conflicts_412: self.conflicts,
        }
    }
}

/// What a phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Answered requests (or database transactions in limit mode) in the window.
    pub requests: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// `requests / seconds`.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Slowest, µs.
    pub max_us: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Errors by status (`"500"`, `"io"`, `"db:5"`, …).
    pub errors: BTreeMap<String, u64>,
    /// Sum of `errors`.
    pub error_count: u64,
    /// `412` answers to conditional writes (re-read and counted apart).
    pub conflicts_412: u64,
}

/// Parses `10s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s or m)")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn recorder_counts_and_merges() {
        let mut a = Recorder::new();
        a.record(Duration::from_micros(100), &Outcome::Ok);
        a.record(Duration::from_micros(300), &Outcome::Conflict);
        let mut b = Recorder::new();
        b.record(Duration::from_millis(2), &Outcome::Error("500".into()));
        a.merge(&b);
        let s = a.summary(1.0);
        assert_eq!(s.requests, 3);
        assert_eq!(s.conflicts_412, 1);
        assert_eq!(s.errors.get("500"), Some(&1));
        assert!(s.max_us >= 1_990 && s.max_us <= 2_010, "{}", s.max_us);
        assert!(s.p50_us >= 299 && s.p50_us <= 301, "{}", s.p50_us);
    }
}
