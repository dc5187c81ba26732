//! Reading the server's `GET /metrics` (Prometheus text format): the board
//! cache's hit and miss counters around each phase, and the gauge of open
//! event streams.

use hyper::Method;
use serde::Serialize;

use crate::http::Http;

/// Counter: board views served from the cache.
pub const CACHE_HITS: &str = "orgboard_board_cache_hits_total";
/// Counter: board views built from the database (cache misses).
pub const CACHE_MISSES: &str = "orgboard_board_cache_misses_total";
/// Gauge: event streams open on the node.
pub const STREAMS_OPEN: &str = "orgboard_event_streams_open";

/// The sum of every sample of `name` (all label sets) in a scrape, `None`
/// when the metric is absent.
pub fn value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // `name 12` or `name{label="x"} 12`, not `name_other 12`.
        let rest = if let Some(r) = rest.strip_prefix('{') {
            match r.rfind('}') {
                Some(i) => &r[i + 1..],
                None => continue,
            }
        } else if rest.starts_with(' ') || rest.starts_with('\t') {
            rest
        } else {
            continue;
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// One scrape of `/metrics`; `None` when it does not answer 200.
pub async fn scrape(http: &Http) -> Option<String> {
    let r = http
        .send(Method::GET, "/metrics", None, None, None)
        .await
        .ok()?;
    (r.status == 200).then(|| String::from_utf8_lossy(&r.body).into_owned())
}

/// `(hits, misses)` of the board cache now; `None` when `/metrics` or the
/// counters are missing (a counter never incremented may be absent: 0).
pub async fn cache_counters(http: &Http) -> Option<(u64, u64)> {
    let text = scrape(http).await?;
    let hits = value(&text, CACHE_HITS);
    let misses = value(&text, CACHE_MISSES);
    if hits.is_none() && misses.is_none() && !text.contains("orgboard_") {
        return None;
    }
    Some((
        hits.unwrap_or(0.0).max(0.0) as u64,
        misses.unwrap_or(0.0).max(0.0) as u64,
    ))
}

/// The board cache during one phase (difference of the counters read
/// before and after it, warm-up included).
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    /// Board views served from the cache.
    pub hits: u64,
    /// Board views read from the database through the cache (misses).
    pub misses: u64,
    /// `hits / (hits + misses)`; `None` when the phase asked the cache
    /// nothing (uncached requests are neither).
    pub hit_rate: Option<f64>,
}

impl CacheStats {
    /// From the counters before and after.
    pub fn between(before: (u64, u64), after: (u64, u64)) -> Self {
        let hits = after.0.saturating_sub(before.0);
        let misses = after.1.saturating_sub(before.1);
        let total = hits + misses;
        Self {
            hits,
            misses,
            hit_rate: (total > 0).then(|| hits as f64 / total as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let text = "# HELP orgboard_board_cache_hits_total Board views served from the cache.\n\
                    # TYPE orgboard_board_cache_hits_total counter\n\
                    orgboard_board_cache_hits_total 41\n\
                    orgboard_board_cache_hits_total_other 7\n\
                    orgboard_board_cache_misses_total{node=\"a\"} 3\n\
                    orgboard_board_cache_misses_total{node=\"b\"} 2\n\
                    orgboard_event_streams_open 1000\n";
        assert_eq!(value(text, CACHE_HITS), Some(41.0));
        assert_eq!(value(text, CACHE_MISSES), Some(5.0));
        assert_eq!(value(text, STREAMS_OPEN), Some(1000.0));
        assert_eq!(value(text, "orgboard_nothing"), None);
        let s = CacheStats::between((41, 5), (141, 5));
        assert_eq!((s.hits, s.misses, s.hit_rate), (100, 0, Some(1.0)));
        assert_eq!(CacheStats::between((1, 1), (1, 1)).hit_rate, None);
    }
}
