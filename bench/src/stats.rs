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

/// A distribution of signed durations (µs) in two HDR histograms (the
/// negative values by magnitude, and the others), so that e.g. "event
/// received − write acknowledged" keeps its sign when the event wins the
/// race. Same bounds and precision as [`Recorder`].
#[derive(Clone)]
pub struct Dist {
    neg: Histogram<u64>,
    pos: Histogram<u64>,
    sum: f64,
}

impl Default for Dist {
    fn default() -> Self {
        Self::new()
    }
}

impl Dist {
    /// An empty distribution.
    pub fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds");
        Self {
            neg: h(),
            pos: h(),
            sum: 0.0,
        }
    }

    /// Records `us` microseconds (may be negative; magnitudes are clamped
    /// to 1 µs … 10 min, 0 counts as +1 µs).
    pub fn record_us(&mut self, us: i64) {
        let mag = us.unsigned_abs().clamp(1, MAX_US);
        if us < 0 {
            self.neg.saturating_record(mag);
        } else {
            self.pos.saturating_record(mag);
        }
        self.sum += us as f64;
    }

    /// Records `later − earlier`.
    pub fn record_between(&mut self, earlier: std::time::Instant, later: std::time::Instant) {
        let us = if later >= earlier {
            (later - earlier).as_micros() as i64
        } else {
            -((earlier - later).as_micros() as i64)
        };
        self.record_us(us);
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.neg.len() + self.pos.len()
    }

    /// The value at quantile `q` (0…1) of the signed distribution.
    pub fn quantile(&self, q: f64) -> i64 {
        let (nn, np) = (self.neg.len(), self.pos.len());
        let n = nn + np;
        if n == 0 {
            return 0;
        }
        // 1-based rank in ascending (signed) order.
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        if rank <= nn {
            // The rank-th most negative: rank (nn − rank + 1) by magnitude.
            let qq = (nn - rank + 1) as f64 / nn as f64;
            -(self.neg.value_at_quantile(qq) as i64)
        } else {
            let qq = (rank - nn) as f64 / np as f64;
            self.pos.value_at_quantile(qq) as i64
        }
    }

    /// Its figures.
    pub fn summary(&self) -> DistSummary {
        let n = self.len();
        DistSummary {
            count: n,
            min_us: if !self.neg.is_empty() {
                -(self.neg.max() as i64)
            } else {
                self.pos.min() as i64
            },
            p50_us: self.quantile(0.50),
            p90_us: self.quantile(0.90),
            p99_us: self.quantile(0.99),
            max_us: if !self.pos.is_empty() {
                self.pos.max() as i64
            } else {
                -(self.neg.min() as i64)
            },
            mean_us: if n > 0 { self.sum / n as f64 } else { 0.0 },
            negative: self.neg.len(),
        }
    }
}

/// The figures of a [`Dist`], in µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DistSummary {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min_us: i64,
    /// Median.
    pub p50_us: i64,
    /// 90th percentile.
    pub p90_us: i64,
    /// 99th percentile.
    pub p99_us: i64,
    /// Largest.
    pub max_us: i64,
    /// Mean.
    pub mean_us: f64,
    /// How many were negative.
    pub negative: u64,
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
    fn signed_distribution() {
        let mut d = Dist::new();
        for us in [-300, -100, 50, 200, 400, 1_000, 2_000, 3_000, 4_000, 5_000] {
            d.record_us(us);
        }
        let s = d.summary();
        assert_eq!(s.count, 10);
        assert_eq!(s.negative, 2);
        assert!((-301..=-299).contains(&s.min_us), "{}", s.min_us);
        assert!(
            (-301..=-299).contains(&d.quantile(0.1)),
            "{}",
            d.quantile(0.1)
        );
        assert!(
            (-101..=-99).contains(&d.quantile(0.2)),
            "{}",
            d.quantile(0.2)
        );
        assert_eq!(d.quantile(0.3), 50);
        assert!((399..=401).contains(&s.p50_us), "{}", s.p50_us);
        assert!((3_990..=4_010).contains(&s.p90_us), "{}", s.p90_us);
        assert!((4_990..=5_010).contains(&s.max_us), "{}", s.max_us);
        assert!((s.mean_us - 1_525.0).abs() < 0.01, "{}", s.mean_us);
        let mut only_neg = Dist::new();
        only_neg.record_us(-20);
        only_neg.record_us(-10);
        let s = only_neg.summary();
        assert_eq!((s.min_us, s.max_us), (-20, -10));
        assert_eq!(Dist::new().summary().count, 0);
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
